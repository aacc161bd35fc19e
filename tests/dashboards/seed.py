"""A realistic multi-system estate for dashboard tests, written through `apply_batch`.

An Airflow DAG run `orders_etl` whose `transform` task launched a
KubernetesPodOperator pod (linked by the `airflow.ti` ref the pod carries as
labels) that was OOMKilled; a Lambda invocation; a cron backup; and a cron
heartbeat every 20 minutes for a day, so the runs list has more than one page.
Times are relative to `now`, so the default "last 24 hours" views show them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from gateway.config import Config
from gateway.contract import ErrorInfo, JobSpec, Ref, RunEvent, State, trace_id_for
from gateway.ingest import apply_batch
from gateway.runtime.status import record_failure, record_success

AIRFLOW, K8S, LAMBDA, CRON = "airflow-prod", "k8s-prod", "lambda-prod", "cron-hosts"
SOURCES = {AIRFLOW: "airflow", K8S: "kubernetes", LAMBDA: "lambda", CRON: "cron"}
HEARTBEATS = 72


class Standin:
    """A configured source's adapter in a gateway whose pollers are off."""

    def __init__(self, name: str, kind: str) -> None:
        self.name, self.kind = name, kind


def dashboard_config() -> Config:
    return Config.model_validate(
        {"sources": [{"name": n, "kind": k, "interval": "30s"} for n, k in SOURCES.items()]}
    )


def standins() -> dict[str, Any]:
    return {n: Standin(n, k) for n, k in SOURCES.items()}


@dataclass(frozen=True)
class Seeded:
    now: datetime
    dag_run_key: str
    dag_trace_id: str
    pod_key: str


def seed_estate(engine: Engine, config: Config, now: datetime | None = None) -> Seeded:
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    t0 = now - timedelta(minutes=40)
    run_id = f"scheduled__{t0:%Y-%m-%dT%H:%M:%S}"
    dag_key = f"orders_etl/{run_id}"
    ti = f"orders_etl/{run_id}/transform/1"
    af_url = "http://airflow.example.internal/dags/orders_etl/runs/" + run_id
    boom = ErrorInfo(kind="PodFailed", message="pod orders-etl-transform-7d9f OOMKilled")
    airflow = [
        RunEvent(
            source=AIRFLOW,
            kind="run",
            key=dag_key,
            job="orders_etl",
            name="orders_etl",
            state=State.failed,
            started_at=t0,
            ended_at=t0 + timedelta(minutes=31),
            observed_at=t0 + timedelta(minutes=31),
            url=af_url,
            error=boom,
        ),
        RunEvent(
            source=AIRFLOW,
            kind="task",
            key=f"{dag_key}/extract",
            parent_key=dag_key,
            job="orders_etl",
            name="extract",
            state=State.succeeded,
            started_at=t0,
            ended_at=t0 + timedelta(minutes=6),
            observed_at=t0 + timedelta(minutes=6),
            url=af_url + "/tasks/extract",
        ),
        RunEvent(
            source=AIRFLOW,
            kind="attempt",
            key=f"{dag_key}/extract/1",
            parent_key=f"{dag_key}/extract",
            root_key=dag_key,
            job="orders_etl",
            name="extract try 1",
            state=State.succeeded,
            started_at=t0,
            ended_at=t0 + timedelta(minutes=6),
            observed_at=t0 + timedelta(minutes=6),
        ),
        RunEvent(
            source=AIRFLOW,
            kind="task",
            key=f"{dag_key}/transform",
            parent_key=dag_key,
            job="orders_etl",
            name="transform",
            state=State.failed,
            started_at=t0 + timedelta(minutes=6),
            ended_at=t0 + timedelta(minutes=31),
            observed_at=t0 + timedelta(minutes=31),
            error=boom,
            url=af_url + "/tasks/transform",
        ),
        RunEvent(
            source=AIRFLOW,
            kind="attempt",
            key=ti,
            parent_key=f"{dag_key}/transform",
            root_key=dag_key,
            job="orders_etl",
            name="transform try 1",
            state=State.failed,
            started_at=t0 + timedelta(minutes=6),
            ended_at=t0 + timedelta(minutes=31),
            observed_at=t0 + timedelta(minutes=31),
            error=boom,
            refs=[Ref(namespace="airflow.ti", value=ti)],
        ),
    ]
    jobs_af = [
        JobSpec(
            source=AIRFLOW,
            key="orders_etl",
            kind="dag",
            name="orders_etl",
            schedule="0 * * * *",
            timezone="Europe/Berlin",
            owner="data-platform",
            url="http://airflow.example.internal/dags/orders_etl",
        )
    ]
    apply_batch(engine, AIRFLOW, airflow, jobs=jobs_af)

    pod_key = "data/orders-etl-transform-7d9f"
    pod = RunEvent(
        source=K8S,
        kind="run",
        key=pod_key,
        job="data/orders-etl-transform",
        name="orders-etl-transform-7d9f",
        state=State.failed,
        started_at=t0 + timedelta(minutes=7),
        ended_at=t0 + timedelta(minutes=30),
        observed_at=t0 + timedelta(minutes=30),
        error=ErrorInfo(kind="OOMKilled", message="container base: OOMKilled", exit_code=137),
        attributes={"k8s.namespace.name": "data", "k8s.pod.name": "orders-etl-transform-7d9f"},
        refs=[Ref(namespace="airflow.ti", value=ti)],
        url="http://k8s.example.internal/#/pod/data/orders-etl-transform-7d9f",
    )
    apply_batch(
        engine,
        K8S,
        [pod],
        jobs=[
            JobSpec(
                source=K8S,
                key="data/report-builder",
                kind="cronjob",
                name="report-builder",
                schedule="15 6 * * 1-5",
                timezone="UTC",
                owner="reporting",
            )
        ],
    )

    lam_start = now - timedelta(minutes=25)
    apply_batch(
        engine,
        LAMBDA,
        [
            RunEvent(
                source=LAMBDA,
                kind="run",
                key="thumbnailer/4f1c2a7e-0b1d-4c43-9a59-1f6f0d3b2c11",
                job="thumbnailer",
                name="thumbnailer",
                state=State.succeeded,
                started_at=lam_start,
                ended_at=lam_start + timedelta(seconds=2.4),
                observed_at=lam_start + timedelta(seconds=3),
                attributes={"faas.name": "thumbnailer", "faas.invocation_id": "4f1c2a7e"},
                refs=[
                    Ref(namespace="aws.request_id", value="4f1c2a7e-0b1d-4c43-9a59-1f6f0d3b2c11")
                ],
                url="https://console.aws.example/lambda/thumbnailer",
            )
        ],
        jobs=[
            JobSpec(
                source=LAMBDA,
                key="thumbnailer",
                kind="lambda",
                name="thumbnailer",
                schedule="*/5 * * * *",
                owner="media",
            )
        ],
    )

    cron_events = [
        RunEvent(
            source=CRON,
            kind="run",
            key=f"backup-host/nightly-backup/{(now - timedelta(hours=3)):%Y%m%dT%H%M}",
            job="nightly-backup",
            name="nightly-backup",
            state=State.succeeded,
            started_at=now - timedelta(hours=3),
            ended_at=now - timedelta(hours=3) + timedelta(minutes=12),
            observed_at=now - timedelta(hours=3) + timedelta(minutes=12),
            attributes={"host.name": "backup-host"},
        )
    ]
    for i in range(HEARTBEATS):
        at = now - timedelta(minutes=20 * i + 1)
        cron_events.append(
            RunEvent(
                source=CRON,
                kind="run",
                key=f"web-1/heartbeat/{at:%Y%m%dT%H%M}",
                job="heartbeat",
                name="heartbeat",
                state=State.failed if i % 17 == 5 else State.succeeded,
                started_at=at,
                ended_at=at + timedelta(seconds=1),
                observed_at=at + timedelta(seconds=2),
                error=ErrorInfo(kind="exit", message="curl: (7) connection refused", exit_code=7)
                if i % 17 == 5
                else None,
            )
        )
    apply_batch(
        engine,
        CRON,
        cron_events,
        jobs=[
            JobSpec(
                source=CRON,
                key="nightly-backup",
                kind="crontab",
                name="nightly-backup",
                schedule="30 2 * * *",
                timezone="America/New_York",
                owner="ops",
            ),
            JobSpec(
                source=CRON,
                key="heartbeat",
                kind="crontab",
                name="heartbeat",
                schedule="*/20 * * * *",
                owner="ops",
            ),
        ],
    )

    for name, kind in SOURCES.items():
        record_success(engine, source=name, kind=kind, interval_s=30.0, holder="test", now=now)
    record_failure(
        engine,
        config,
        source=LAMBDA,
        kind="lambda",
        interval_s=30.0,
        holder="test",
        error="ThrottlingException: Rate exceeded (FilterLogEvents)",
        consecutive_failures=2,
        last_success_at=now - timedelta(seconds=20),
        now=now,
    )
    return Seeded(
        now=now, dag_run_key=dag_key, dag_trace_id=trace_id_for(AIRFLOW, dag_key), pod_key=pod_key
    )
