"""The demo estate: every emulated system, filled with a story, and the config for it.

`DemoEstate(data_dir)` owns everything the demo starts, all on 127.0.0.1:

* **Airflow** — `emulators.airflow.AirflowReplay`, runs recorded from a real
  Airflow 3.3.2 (moved to the last few minutes), among them `sy_failure`,
  whose task `explode` fails on its second try;
* **Kubernetes** — `emulators.kube_apiserver`: a CronJob `billing/invoice-export`
  that spawns a Job every tick, and the pod KubernetesPodOperator launched for
  `sy_failure.explode` try 2, labelled exactly as KPO labels it, OOMKilled
  (exit 137) — its `airflow.ti_label` ref links it to the failed Airflow try;
* **AWS Lambda** — moto in server mode (`emulators.lambda_estate`): two
  functions with an EventBridge rule and a Scheduler schedule, and
  START/END/REPORT log lines for each invocation, every third one timing out;
* **cron** — `CronLoop`: real shell commands through the real
  `switchyard-cron` wrapper on this machine, one of which fails every other round;
* **Kestra** — `emulators.kestra`: a native flow executed every tick, and the
  CronJob's flow translated and deployed through the migration lifecycle once
  the gateway has discovered it (`migration.py`), so the job shows `translated`.

`start()` brings the emulators up and returns the `Config` (SQLite in the data
directory, one source per system, 5 s polls). `start_live(url, engine)` starts
what needs the gateway: the cron loop, the ticker (one new CronJob Job, Lambda
invocation and Kestra execution per tick) and the migration step. `stop()`
stops all of it — threads joined, wrapper subprocesses reaped — and is safe to
call twice or after a partial start.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from emulators.airflow import AirflowReplay
from emulators.airflow.kpo import kpo_pod_labels
from emulators.kestra import KestraEmulator, Scenario
from emulators.kube_apiserver import Cluster, KubeApiServer
from emulators.lambda_estate import LambdaEstate
from gateway.config import Config, parse_config
from gateway.demo.cron_loop import CronLine, CronLoop
from gateway.demo.migration import migrate_job
from gateway.links import table
from migration_tools.kestra_api import KestraApi
from migration_tools.translate import render_flow

log = logging.getLogger(__name__)

AWS_KEY_ENV = "SWITCHYARD_DEMO_AWS_KEY"
AWS_SECRET_ENV = "SWITCHYARD_DEMO_AWS_SECRET"

SOURCES = {
    "airflow": "airflow-demo",
    "kubernetes": "k8s-demo",
    "lambda": "lambda-demo",
    "cron": "cron-demo",
    "kestra": "kestra-demo",
}
KPO_DAG, KPO_TASK, KPO_TRY = "sy_failure", "explode", 2
CRONJOB_NS, CRONJOB_NAME = "billing", "invoice-export"
KESTRA_NS, KESTRA_FLOW_ID = "company.analytics", "daily-digest"
LOG_TASK = "io.kestra.plugin.core.log.Log"

CRON_LINES = [
    CronLine("backup-etc", "echo 'archiving /etc'; tar -czf etc-backup.tgz -C /etc hostname"),
    CronLine("rotate-logs", "echo 'rotating logs'; sleep 1; echo done"),
    # Fails every other round, starting with the first, so a red run shows at once.
    CronLine(
        "sync-inventory",
        "n=$(cat sync-count 2>/dev/null || echo 0); echo $((n + 1)) > sync-count; "
        "if [ $((n % 2)) -eq 0 ]; then echo 'inventory API answered 503' >&2; exit 1; fi; "
        "echo 'inventory synced'",
    ),
]

# The native flow the demo's Kestra runs, as data; `render_flow` makes its text.
KESTRA_FLOW: dict[str, Any] = {
    "id": KESTRA_FLOW_ID,
    "namespace": KESTRA_NS,
    "labels": [{"key": "team", "value": "analytics"}],
    "tasks": [
        {"id": "extract", "type": LOG_TASK, "message": "reading yesterday's orders"},
        {"id": "publish", "type": LOG_TASK, "message": "digest published"},
    ],
    "triggers": [
        {
            "id": "every-minute",
            "type": "io.kestra.plugin.core.trigger.Schedule",
            "cron": "* * * * *",
        },
    ],
}


class DemoEstate:
    def __init__(
        self,
        data_dir: Path,
        *,
        tick_s: float = 60.0,
        poll_interval_s: float = 5.0,
        migrate_timeout_s: float = 120.0,
    ) -> None:
        self.data_dir = data_dir
        self.tick_s = tick_s
        self.poll_interval_s = poll_interval_s
        self.migrate_timeout_s = migrate_timeout_s
        self.cron_token = secrets.token_urlsafe(24)
        self.airflow: AirflowReplay | None = None
        self.kube: KubeApiServer | None = None
        self.cluster: Cluster | None = None
        self.aws: LambdaEstate | None = None
        self.kestra: KestraEmulator | None = None
        self.kestra_token = secrets.token_urlsafe(16)
        self.cron: CronLoop | None = None
        self.migrated: str | None = None  # "<namespace>.<flow id>" once deployed
        self.ticks = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lambda_arns: dict[str, str] = {}

    # --- lifecycle ----------------------------------------------------------

    def start(self) -> Config:
        """Start the emulators, write the opening story, return the gateway config."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # moto's werkzeug server logs every request; the demo's console is for the banner.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        now = datetime.now(UTC)
        self.airflow = AirflowReplay(
            anchor=now - timedelta(minutes=2), password=secrets.token_urlsafe(12)
        ).start()
        self.kube = KubeApiServer(token=secrets.token_urlsafe(16)).start()
        self.cluster = Cluster(self.kube.store)
        self.aws = LambdaEstate().start()
        self.kestra = KestraEmulator(token=self.kestra_token).start()
        self._opening_story(now)
        return self.config()

    def config(self) -> Config:
        assert self.airflow and self.kube and self.aws and self.kestra, "start() first"
        kubeconfig = self.kube.write_kubeconfig(self.data_dir / "kubeconfig")
        os.environ.setdefault(AWS_KEY_ENV, "testing")
        os.environ.setdefault(AWS_SECRET_ENV, "testing")
        every = self.poll_interval_s
        doc: dict[str, Any] = {
            "database_url": f"sqlite:///{(self.data_dir / 'switchyard.db').resolve()}",
            "sources": [
                {
                    "name": SOURCES["airflow"],
                    "kind": "airflow",
                    "interval": every,
                    "options": {
                        "url": self.airflow.url,
                        "api": "v2",
                        "username": "admin",
                        "password": self.airflow.password,
                    },
                },
                {
                    "name": SOURCES["kubernetes"],
                    "kind": "kubernetes",
                    "interval": every,
                    "options": {"kubeconfig": str(kubeconfig)},
                },
                {
                    "name": SOURCES["lambda"],
                    "kind": "lambda",
                    "interval": every,
                    "options": {
                        "region": "us-east-1",
                        "endpoint_url": self.aws.url,
                        "access_key_id_env": AWS_KEY_ENV,
                        "secret_access_key_env": AWS_SECRET_ENV,
                        "discover_interval_s": 60,
                        "max_requests_per_s": 50,
                    },
                },
                {
                    "name": SOURCES["cron"],
                    "kind": "cron",
                    "interval": 60,
                    "options": {
                        "token": self.cron_token,
                        "control_file": str(self.data_dir / "cron-control.json"),
                    },
                },
                {
                    "name": SOURCES["kestra"],
                    "kind": "kestra",
                    "interval": every,
                    "options": {"url": self.kestra.url, "token": self.kestra_token},
                },
            ],
        }
        return parse_config(doc, origin="<demo>", env={})

    def start_live(self, gateway_url: str, engine: Engine) -> None:
        """Start what needs the gateway: cron loop, ticker, migration step."""
        self.cron = CronLoop(
            CRON_LINES,
            gateway_url=gateway_url,
            token=self.cron_token,
            workdir=self.data_dir / "cron",
            interval_s=self.tick_s,
        ).start()
        for name, target in (
            ("demo-ticker", self._tick_loop),
            ("demo-migration", lambda: self._migrate_when_discovered(engine)),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        if self.cron is not None:
            self.cron.stop()
        for thread in self._threads:
            thread.join(timeout=10)
        for server in (self.kestra, self.aws, self.kube, self.airflow):
            if server is not None:
                try:
                    server.stop()
                except Exception:  # one emulator failing to stop must not keep the others up
                    log.warning("stopping %s failed", type(server).__name__, exc_info=True)
        self.kestra = self.aws = self.kube = self.airflow = None

    def __enter__(self) -> DemoEstate:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the story ----------------------------------------------------------

    def _opening_story(self, now: datetime) -> None:
        assert self.airflow and self.cluster and self.aws and self.kestra
        cluster = self.cluster
        # The pod KubernetesPodOperator started for sy_failure.explode, try 2: OOMKilled.
        run_id = self.airflow.recording.run_id(KPO_DAG)
        pod = cluster.create_pod(
            "airflow",
            name=f"{KPO_TASK}-{secrets.token_hex(4)}",
            labels=kpo_pod_labels(KPO_DAG, KPO_TASK, run_id, KPO_TRY),
        )
        cluster.schedule_pod(pod, node="worker-2")
        cluster.run_pod(pod)
        cluster.record_event(
            pod, "OOMKilling", "Memory cgroup out of memory: Killed process (python)"
        )
        cluster.end_pod(pod, 137, "OOMKilled")

        # A CronJob with a little history: two Jobs that completed.
        self._cronjob = cluster.create_cronjob(
            CRONJOB_NS, CRONJOB_NAME, "* * * * *", labels={"team": "billing"}
        )
        for minutes_ago in (2, 1):
            self._cronjob_run(now - timedelta(minutes=minutes_ago), fail=False)

        # Lambda: two scheduled functions and their last half hour of invocations.
        aws = self.aws
        ingest = aws.function(
            "orders-ingest", timeout_s=3, tags={"team": "orders"}, description="pull orders"
        )
        report = aws.function("nightly-report", timeout_s=30, memory_mb=256, tags={"team": "bi"})
        aws.rule("orders-ingest-every-5m", "rate(5 minutes)", ingest)
        aws.schedule("nightly-report", "cron(0 2 * * ? *)", report, timezone="Europe/Paris")
        self._lambda_arns = {"orders-ingest": ingest, "nightly-report": report}
        for i, minutes_ago in enumerate((25, 20, 15, 10, 5)):
            self.aws.invocation(
                "orders-ingest",
                now - timedelta(minutes=minutes_ago),
                message="pulled 120 orders",
                cold=i == 0,
                timeout_s=3 if minutes_ago == 10 else None,
            )
        self.aws.invocation(
            "nightly-report", now - timedelta(minutes=30), duration_ms=8200.0, memory_mb=256
        )

        # Kestra: a native flow that has already run once.
        api = self.kestra_api()
        self.kestra.set_scenario(KESTRA_NS, KESTRA_FLOW_ID, Scenario(duration_s=2.0))
        api.put_flow(KESTRA_NS, KESTRA_FLOW_ID, render_flow(KESTRA_FLOW))
        api.trigger_execution(KESTRA_NS, KESTRA_FLOW_ID)

    def kestra_api(self) -> KestraApi:
        assert self.kestra is not None
        return KestraApi(self.kestra.url, token=self.kestra_token, timeout=10)

    def _cronjob_run(self, scheduled: datetime, *, fail: bool) -> None:
        assert self.cluster is not None
        cluster = self.cluster
        name = f"{CRONJOB_NAME}-{int(scheduled.timestamp() // 60)}"
        job = cluster.create_job(CRONJOB_NS, name, cronjob=self._cronjob, scheduled_time=scheduled)
        pod = cluster.create_pod(CRONJOB_NS, job=job)
        cluster.schedule_pod(pod)
        cluster.run_pod(pod)
        if fail:
            cluster.end_pod(pod, 1, "Error")
            cluster.fail_job(
                job, "BackoffLimitExceeded", "Job has reached the specified backoff limit"
            )
        else:
            cluster.end_pod(pod, 0)
            cluster.complete_job(job)

    def _tick(self) -> None:
        assert self.aws is not None
        now = datetime.now(UTC)
        self.ticks += 1
        self._cronjob_run(now, fail=False)
        self.aws.invocation(
            "orders-ingest",
            now,
            message="pulled 80 orders",
            timeout_s=3 if self.ticks % 3 == 0 else None,
        )
        self.kestra_api().trigger_execution(KESTRA_NS, KESTRA_FLOW_ID)

    def _tick_loop(self) -> None:
        while not self._stop.wait(self.tick_s):
            try:
                self._tick()
            except Exception:  # a failed tick must not end the demo; the next one tries again
                log.warning("demo tick failed", exc_info=True)

    def _migrate_when_discovered(self, engine: Engine) -> None:
        """Once the gateway has discovered the CronJob, translate and deploy it to Kestra."""
        job = table("job")
        source = SOURCES["kubernetes"]
        deadline = time.monotonic() + self.migrate_timeout_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            with engine.connect() as conn:
                key = conn.execute(
                    sa.select(job.c.key).where(
                        job.c.source == source, job.c.kind == "cronjob", job.c.name == CRONJOB_NAME
                    )
                ).scalar()
            if key is not None:
                try:
                    view = migrate_job(engine, self.kestra_api(), source=source, key=key)
                except Exception:  # the lifecycle audited the failure; the demo goes on without it
                    log.warning("the demo migration step failed", exc_info=True)
                    return
                self.migrated = f"{view.namespace}.{view.flow_id}"
                return
            self._stop.wait(1.0)
        if not self._stop.is_set():
            log.warning("the CronJob was not discovered in time; the migration step did not run")


__all__ = ["SOURCES", "DemoEstate"]
