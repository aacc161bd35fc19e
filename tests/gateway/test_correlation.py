"""Incidents from scripted multi-source event streams, through the real ingest path.

Each scenario pushes events as the adapters would emit them (same keys, refs,
error kinds and native states) through `apply_batch`, on SQLite and
PostgreSQL, then reads the incidents through `list_incidents` /
`incident_detail` — what the API and dashboard serve.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from gateway.contract import ErrorInfo, Ref, RunEvent, RunKind, State
from gateway.flows import parse_flow, sync_flows
from gateway.incidents import IncidentDetail, incident_detail, list_incidents
from gateway.ingest import apply_batch
from gateway.store.models import Link

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def ev(
    source: str,
    key: str,
    state: State,
    *,
    kind: RunKind = RunKind.run,
    job: str | None = None,
    name: str | None = None,
    parent: str | None = None,
    start: float | None = None,
    end: float | None = None,
    seen: float,
    error: ErrorInfo | None = None,
    refs: dict[str, str] | None = None,
    attempt: int = 1,
    attributes: dict[str, Any] | None = None,
    nominal: float | None = None,
) -> RunEvent:
    return RunEvent(
        source=source,
        key=key,
        kind=kind,
        parent_key=parent,
        root_key=parent,
        job=job,
        name=name,
        state=state,
        started_at=at(start) if start is not None else None,
        ended_at=at(end) if end is not None else None,
        observed_at=at(seen),
        nominal_time=at(nominal) if nominal is not None else None,
        error=error,
        refs=[Ref(namespace=n, value=v) for n, v in (refs or {}).items()],
        attempt=attempt,
        attributes=attributes or {},
    )


def flows(engine: Engine, *docs: dict[str, Any]) -> None:
    sync_flows(engine, [parse_flow(d, file=f"{d['name']}.yaml") for d in docs])


def incidents(engine: Engine, status: str | None = None) -> list[IncidentDetail]:
    with Session(engine) as session:
        page = list_incidents(session, status=status)
        details = [incident_detail(session, s.id) for s in page.data]
    return [d for d in details if d is not None]


def only_incident(engine: Engine) -> IncidentDetail:
    found = incidents(engine)
    assert len(found) == 1, [i.title for i in found]
    return found[0]


def roles(incident: IncidentDetail) -> dict[str, str]:
    return {step.run.key: step.role for step in incident.chain}


# --- a KPO pod OOMKilled → task failed → DAG run failed → downstream DAG skipped ---

TI = "orders_etl/manual__1/transform/-1/1"


def test_oomkilled_pod_is_root_cause_of_failed_dag_and_skipped_downstream(engine: Engine) -> None:
    flows(
        engine,
        {
            "name": "orders",
            "owner": "data@example.com",
            "jobs": ["airflow-prod:orders_etl", "airflow-prod:orders_report"],
            "edges": ["airflow-prod:orders_etl triggers airflow-prod:orders_report within 3h"],
        },
    )
    pod = ev(
        "k8s-prod",
        "pod/airflow/transform-abc/uid-1",
        State.failed,
        job="pod/airflow/orders_etl.transform",
        name="transform-abc",
        start=1,
        end=6,
        seen=6,
        error=ErrorInfo(kind="OOMKilled", message="container base", exit_code=137),
        refs={"airflow.ti": TI, "k8s.pod.uid": "uid-1"},
    )
    apply_batch(engine, "k8s-prod", [pod])
    assert incidents(engine) == []  # a pod a try launched is part of the try: no incident yet

    dag = "orders_etl/manual__1"
    apply_batch(
        engine,
        "airflow-prod",
        [
            ev("airflow-prod", dag, State.running, job="orders_etl", start=0, seen=0),
            ev(
                "airflow-prod",
                TI,
                State.failed,
                kind=RunKind.attempt,
                parent=dag,
                job="orders_etl",
                name="transform",
                start=0.5,
                end=6.5,
                seen=7,
                error=ErrorInfo(kind="task_failed"),
                refs={"airflow.ti": TI},
                attributes={"airflow.state": "failed"},
            ),
            ev(
                "airflow-prod",
                dag,
                State.failed,
                job="orders_etl",
                start=0,
                end=7,
                seen=7.5,
                error=ErrorInfo(kind="dag_run_failed"),
            ),
        ],
    )
    report_dag = "orders_report/scheduled__1"
    apply_batch(
        engine,
        "airflow-prod",
        [
            ev(
                "airflow-prod",
                report_dag,
                State.succeeded,
                job="orders_report",
                start=30,
                end=31,
                seen=31,
            ),
            *(
                ev(
                    "airflow-prod",
                    f"{report_dag}/{task}/-1/0",
                    State.skipped,
                    kind=RunKind.attempt,
                    parent=report_dag,
                    job="orders_report",
                    name=task,
                    seen=31,
                    attempt=0,
                    attributes={"airflow.state": native},
                )
                for task, native in (("load", "upstream_failed"), ("publish", "skipped"))
            ),
        ],
    )

    incident = only_incident(engine)
    assert incident.root_cause is not None
    assert incident.root_cause.key == pod.key
    assert incident.root_error_kind == "OOMKilled"
    assert roles(incident) == {
        pod.key: "root_cause",
        TI: "member",
        dag: "member",
        f"{report_dag}/load/-1/0": "impact",
        f"{report_dag}/publish/-1/0": "impact",
    }
    assert sorted((i.kind, i.run.name if i.run else None) for i in incident.impact) == [
        ("skipped", "publish"),
        ("upstream_failed", "load"),
    ]
    assert incident.flows == ["orders"]
    by_key = {s.run.key: s for s in incident.chain}
    assert by_key[TI].evidence["via"] in {"link", "tree", "event"}
    assert by_key[pod.key].causes == [by_key[TI].run.id]
    assert any(
        link.relation == "ref:airflow.ti" and link.evidence["ref"]["value"] == TI
        for link in incident.links
    )
    assert incident.status == "open"
    assert [j.job for j in incident.jobs] == ["orders_etl"]  # the pod's job is the try's


# --- a cron script → the Lambda it invokes times out → the cron run fails ---

INVENTORY = {
    "name": "inventory",
    "owner": "retail@example.com",
    "jobs": ["etl-01:sync_inventory", "lambda-prod:inventory-sync", "k8s-prod:job/search/reindex"],
    "edges": [
        "etl-01:sync_inventory invokes lambda-prod:inventory-sync within 5m",
        "lambda-prod:inventory-sync triggers k8s-prod:job/search/reindex within 10m",
    ],
}


def test_lambda_timeout_is_root_cause_of_the_cron_run_that_invoked_it_and_resolves(
    engine: Engine,
) -> None:
    flows(engine, INVENTORY)
    cron_start = ev(
        "etl-01", "sync_inventory/r1", State.running, job="sync_inventory", start=0, seen=0
    )
    apply_batch(engine, "etl-01", [cron_start])
    lam = ev(
        "lambda-prod",
        "req-1",
        State.failed,
        job="inventory-sync",
        start=0.2,
        end=1.2,
        seen=1.5,
        error=ErrorInfo(kind="timeout", message="Task timed out after 60.00 seconds"),
        refs={"aws.request_id": "req-1"},
    )
    apply_batch(engine, "lambda-prod", [lam])
    cron_fail = ev(
        "etl-01",
        "sync_inventory/r1",
        State.failed,
        job="sync_inventory",
        start=0,
        end=1.3,
        seen=1.6,
        error=ErrorInfo(kind="exit_code", message="exit status 1", exit_code=1),
    )
    apply_batch(engine, "etl-01", [cron_fail])

    incident = only_incident(engine)
    assert incident.root_cause is not None and incident.root_cause.key == "req-1"
    assert roles(incident) == {"req-1": "root_cause", "sync_inventory/r1": "member"}
    invokes = [link for link in incident.links if link.strength == "declared"]
    assert [(link.relation, link.evidence["edge"]) for link in invokes] == [
        ("invokes", "etl-01:sync_inventory invokes lambda-prod:inventory-sync within 5m")
    ]
    assert invokes[0].evidence["gap_s"] == 12.0
    by_key = {s.run.key: s for s in incident.chain}
    assert by_key["sync_inventory/r1"].caused_by == [by_key["req-1"].run.id]

    # Both jobs succeed again: the incident resolves.
    apply_batch(
        engine,
        "etl-01",
        [
            ev(
                "etl-01",
                "sync_inventory/r2",
                State.succeeded,
                job="sync_inventory",
                start=60,
                end=61,
                seen=61,
            )
        ],
    )
    assert incidents(engine, "open") != []
    apply_batch(
        engine,
        "lambda-prod",
        [
            ev(
                "lambda-prod",
                "req-2",
                State.succeeded,
                job="inventory-sync",
                start=60.1,
                end=60.5,
                seen=61,
            )
        ],
    )
    resolved = incidents(engine, "resolved")
    assert [i.id for i in resolved] == [incident.id]
    assert resolved[0].resolved_at == at(61)  # the last job to recover
    assert {j.job: j.recovered_at for j in resolved[0].jobs} == {
        "sync_inventory": at(61),
        "inventory-sync": at(60.5),
    }
    assert [e.what for e in resolved[0].timeline][-1] == "incident resolved"


# --- a CronJob misses its schedule → an Airflow sensor waiting for its output times out ---


def test_missed_cronjob_is_root_cause_of_sensor_timeout(engine: Engine) -> None:
    flows(
        engine,
        {
            "name": "orders",
            "jobs": ["k8s-prod:cronjob/batch/nightly-export", "airflow-prod:orders_etl"],
            "edges": [
                "airflow-prod:orders_etl waits_for k8s-prod:cronjob/batch/nightly-export within 2h"
            ],
        },
    )
    missed = ev(
        "k8s-prod",
        "cronjob/batch/nightly-export/missed/2026-11-20T02:00:00Z",
        State.missed,
        job="cronjob/batch/nightly-export",
        nominal=0,
        seen=5,
        error=ErrorInfo(kind="missed", message="Missed scheduled time to start a job"),
    )
    apply_batch(engine, "k8s-prod", [missed])
    dag = "orders_etl/scheduled__2026-11-20"
    sensor_key = f"{dag}/wait_for_export/-1/1"
    apply_batch(
        engine,
        "airflow-prod",
        [
            ev("airflow-prod", dag, State.running, job="orders_etl", start=30, seen=30),
            ev(
                "airflow-prod",
                sensor_key,
                State.failed,
                kind=RunKind.attempt,
                parent=dag,
                job="orders_etl",
                name="wait_for_export",
                start=30,
                end=90,
                seen=91,
                error=ErrorInfo(
                    kind="task_failed",
                    message="Sensor has timed out; run duration of 3600.0 seconds exceeds the "
                    "specified timeout of 3600.0.",
                ),
                attributes={"airflow.state": "failed", "airflow.operator": "S3KeySensor"},
            ),
            ev(
                "airflow-prod",
                dag,
                State.failed,
                job="orders_etl",
                start=30,
                end=91,
                seen=92,
                error=ErrorInfo(kind="dag_run_failed"),
            ),
        ],
    )
    incident = only_incident(engine)
    assert incident.root_cause is not None and incident.root_cause.key == missed.key
    assert roles(incident) == {missed.key: "root_cause", dag: "member", sensor_key: "impact"}
    assert [(i.kind, i.run.key if i.run else None) for i in incident.impact] == [
        ("sensor_timeout", sensor_key)
    ]
    assert incident.opened_at == at(5)


# --- a throttled Lambda → nothing downstream ran ---


def test_throttled_lambda_lists_the_downstream_that_never_started(engine: Engine) -> None:
    flows(engine, INVENTORY)
    apply_batch(
        engine,
        "lambda-prod",
        [
            ev(
                "lambda-prod",
                "req-9",
                State.failed,
                job="inventory-sync",
                end=3,
                seen=3,
                error=ErrorInfo(kind="event_age_exceeded", message="EventAgeExceeded"),
                refs={"aws.request_id": "req-9"},
                attributes={"aws.lambda.condition": "EventAgeExceeded"},
            )
        ],
    )
    incident = only_incident(engine)
    assert incident.root_error_kind == "event_age_exceeded"
    never = [i for i in incident.impact if i.kind == "never_started"]
    assert [(i.job, i.edge, i.window_closed) for i in never] == [
        (
            "k8s-prod:job/search/reindex",
            "lambda-prod:inventory-sync triggers k8s-prod:job/search/reindex within 10m",
            True,
        )
    ]
    assert never[0].window_start == at(3) and never[0].window_end == at(13)


# --- two unrelated failures in the same minute stay two incidents ---


def test_unrelated_failures_in_the_same_minute_stay_two_incidents(engine: Engine) -> None:
    apply_batch(
        engine,
        "etl-01",
        [
            ev(
                "etl-01",
                "cleanup_tmp/r1",
                State.failed,
                job="cleanup_tmp",
                start=0,
                end=0.2,
                seen=0.3,
                error=ErrorInfo(kind="exit_code", exit_code=2),
            )
        ],
    )
    apply_batch(
        engine,
        "lambda-prod",
        [
            ev(
                "lambda-prod",
                "req-77",
                State.failed,
                job="resize-images",
                start=0.1,
                end=0.4,
                seen=0.5,
                error=ErrorInfo(kind="unhandled", message="KeyError: 'bucket'"),
            )
        ],
    )
    found = incidents(engine)
    assert sorted(i.title for i in found) == [
        "etl-01:cleanup_tmp exit_code",
        "lambda-prod:resize-images unhandled",
    ]
    assert all(len(i.chain) == 1 and i.suggestions == [] for i in found)


def test_similar_names_nearby_are_suggested_with_evidence_but_never_merged(engine: Engine) -> None:
    apply_batch(
        engine,
        "lambda-prod",
        [
            ev(
                "lambda-prod",
                "req-5",
                State.failed,
                job="sync-orders",
                start=0,
                end=1,
                seen=1,
                error=ErrorInfo(kind="unhandled"),
            )
        ],
    )
    apply_batch(
        engine,
        "etl-01",
        [
            ev(
                "etl-01",
                "sync_orders/r1",
                State.failed,
                job="sync_orders",
                start=0.5,
                end=2,
                seen=2,
                error=ErrorInfo(kind="exit_code", exit_code=1),
            )
        ],
    )
    found = incidents(engine)
    assert len(found) == 2
    suggestion = found[0].suggestions[0]
    assert suggestion.strength == "suggested" and 0 < suggestion.confidence <= 1
    assert suggestion.evidence["shared_tokens"] == ["orders", "sync"]
    assert suggestion.evidence["gap_s"] == 30.0
    with Session(engine) as session:
        strengths = {link.strength for link in session.exec(select(Link))}
    assert strengths == {"suggested"}


# --- a flaky task that fails then succeeds on retry opens no incident ---


def test_flaky_task_that_succeeds_on_retry_opens_no_incident(engine: Engine) -> None:
    dag = "orders_etl/manual__7"
    try1, try2 = f"{dag}/extract/-1/1", f"{dag}/extract/-1/2"
    apply_batch(
        engine,
        "airflow-prod",
        [
            ev("airflow-prod", dag, State.running, job="orders_etl", start=0, seen=0),
            ev(
                "airflow-prod",
                try1,
                State.failed,
                kind=RunKind.attempt,
                parent=dag,
                job="orders_etl",
                name="extract",
                start=0,
                end=1,
                seen=1,
                error=ErrorInfo(kind="task_failed"),
                refs={"airflow.ti": try1},
                attributes={"airflow.state": "failed"},
            ),
        ],
    )
    assert incidents(engine) == []
    apply_batch(
        engine,
        "airflow-prod",
        [
            ev(
                "airflow-prod",
                try2,
                State.succeeded,
                kind=RunKind.attempt,
                parent=dag,
                job="orders_etl",
                name="extract",
                start=6,
                end=7,
                seen=7,
                attempt=2,
                refs={"airflow.ti": try2},
            ),
            ev("airflow-prod", dag, State.succeeded, job="orders_etl", start=0, end=8, seen=8),
        ],
    )
    assert incidents(engine) == []
    with Session(engine) as session:
        assert list_incidents(session, status="merged").data == []


# --- exact links the adapters' refs do not make by themselves ---

REQUEST_ID = "6f1c2a9e-3b7d-4c0e-9a51-0d2f8e4b7c11"
OL_TRY = "0193a5c2-7e4f-7b21-8c3d-5e6f7a8b9c0d"


def test_request_id_in_a_task_error_links_the_lambda_that_failed_it(engine: Engine) -> None:
    apply_batch(
        engine,
        "lambda-prod",
        [
            ev(
                "lambda-prod",
                REQUEST_ID,
                State.failed,
                job="price-feed",
                start=0,
                end=2,
                seen=2,
                error=ErrorInfo(kind="out_of_memory", message="Runtime.OutOfMemory"),
                refs={"aws.request_id": REQUEST_ID},
            )
        ],
    )
    dag = "pricing/manual__1"
    apply_batch(
        engine,
        "airflow-prod",
        [
            ev(
                "airflow-prod",
                f"{dag}/invoke/-1/1",
                State.failed,
                kind=RunKind.attempt,
                parent=dag,
                job="pricing",
                name="invoke",
                start=0,
                end=2.5,
                seen=3,
                error=ErrorInfo(
                    kind="task_failed",
                    message=("LambdaFunctionError: Unhandled, RequestId: " + REQUEST_ID.upper()),
                ),
            ),
            ev(
                "airflow-prod",
                dag,
                State.failed,
                job="pricing",
                start=0,
                end=3,
                seen=3.5,
                error=ErrorInfo(kind="dag_run_failed"),
            ),
        ],
    )
    incident = only_incident(engine)
    assert incident.root_cause is not None and incident.root_cause.key == REQUEST_ID
    (link,) = [x for x in incident.links if x.relation == "ref:aws.request_id"]
    assert link.evidence == {
        "ref": {"namespace": "aws.request_id", "value": REQUEST_ID},
        "found_in": "error_message",
    }
    assert len(incident.chain) == 3


def test_openlineage_parent_facet_links_the_child_job_to_the_airflow_try(engine: Engine) -> None:
    dag = "reports/manual__2"
    try_key = f"{dag}/spark_submit/-1/1"
    apply_batch(
        engine,
        "airflow-prod",
        [
            ev("airflow-prod", dag, State.running, job="reports", start=0, seen=0),
            ev(
                "airflow-prod",
                try_key,
                State.running,
                kind=RunKind.attempt,
                parent=dag,
                job="reports",
                name="spark_submit",
                start=0.5,
                seen=0.5,
                refs={"openlineage.run": OL_TRY},
            ),
        ],
    )
    apply_batch(
        engine,
        "spark-ol",
        [
            ev(
                "spark-ol",
                "0193a5c2-aaaa-7b21-8c3d-5e6f7a8b9c0d",
                State.failed,
                kind=RunKind.task,
                parent=OL_TRY,
                job="reports.spark_submit.execute",
                start=1,
                end=4,
                seen=4,
                error=ErrorInfo(
                    kind="OOMKilled", message="Container killed on request. Exit code is 137"
                ),
            )
        ],
    )
    with Session(engine) as session:
        (link,) = session.exec(select(Link).where(Link.relation == "parent:openlineage.run")).all()
    assert link.strength == "exact"
    assert link.evidence["found_in"] == "parent"
    apply_batch(
        engine,
        "airflow-prod",
        [
            ev(
                "airflow-prod",
                try_key,
                State.failed,
                kind=RunKind.attempt,
                parent=dag,
                job="reports",
                name="spark_submit",
                start=0.5,
                end=4.5,
                seen=5,
                error=ErrorInfo(kind="task_failed"),
                refs={"openlineage.run": OL_TRY},
            ),
            ev(
                "airflow-prod",
                dag,
                State.failed,
                job="reports",
                start=0,
                end=5,
                seen=5.5,
                error=ErrorInfo(kind="dag_run_failed"),
            ),
        ],
    )
    incident = only_incident(engine)
    assert incident.root_error_kind == "OOMKilled"
    assert incident.root_cause is not None and incident.root_cause.source == "spark-ol"
