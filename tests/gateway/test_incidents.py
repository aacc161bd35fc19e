"""Root-cause choice (the specificity table) and merging of bridged incidents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from gateway.contract import ErrorInfo, RunEvent, State
from gateway.incidents import Cause, RunView, choose_root, list_incidents, specificity
from gateway.ingest import apply_batch
from tests.gateway.test_correlation import ev, flows, incidents

T0 = datetime(2026, 11, 20, tzinfo=UTC)


def view(
    run_id: str,
    error_kind: str | None,
    *,
    minute: float,
    exit_code: int | None = None,
    kind: str = "run",
) -> RunView:
    at = T0 + timedelta(minutes=minute)
    return RunView(
        id=run_id,
        source="s",
        key=run_id,
        kind=kind,
        job=run_id,
        name=run_id,
        state="failed",
        attempt=1,
        parent_id=None,
        root_key=run_id,
        started_at=at,
        ended_at=at,
        observed_at=at,
        state_at=at,
        nominal_time=None,
        error_kind=error_kind,
        error_message=None,
        exit_code=exit_code,
        attributes={},
        url=None,
    )


def test_specificity_ranks_oomkilled_over_exit_137_over_task_failed() -> None:
    assert (
        specificity("OOMKilled", 137) > specificity("exit_code", 137) > specificity("task_failed")
    )
    assert specificity(None, 137) == specificity("exit_code", 137)
    assert specificity("something_new") > specificity("task_failed")


def test_root_is_the_most_specific_uncaused_failure_then_the_earliest() -> None:
    members = {
        "generic": view("generic", "task_failed", minute=0),
        "exit": view("exit", "exit_code", minute=1, exit_code=137),
        "oom": view("oom", "OOMKilled", minute=2, exit_code=137),
    }
    assert choose_root(members, []) == "oom"
    # Once something caused the OOM, the OOM is an effect, not the root.
    assert choose_root(members, [Cause("exit", "oom", "declared:feeds")]) == "exit"
    tie = {"late": view("late", "timeout", minute=5), "early": view("early", "timeout", minute=1)}
    assert choose_root(tie, []) == "early"


def test_a_failure_that_bridges_two_open_incidents_merges_them_into_the_older(
    engine: Engine,
) -> None:
    flows(
        engine,
        {
            "name": "bridge",
            "jobs": ["etl-01:extract", "lambda-prod:enrich", "airflow-prod:publish"],
            "edges": [
                "etl-01:extract feeds airflow-prod:publish within 1h",
                "lambda-prod:enrich feeds airflow-prod:publish within 1h",
            ],
        },
    )
    apply_batch(
        engine,
        "etl-01",
        [
            ev(
                "etl-01",
                "extract/r1",
                State.failed,
                job="extract",
                start=0,
                end=1,
                seen=1,
                error=ErrorInfo(kind="exit_code", exit_code=3),
            )
        ],
    )
    apply_batch(
        engine,
        "lambda-prod",
        [
            ev(
                "lambda-prod",
                "req-1",
                State.failed,
                job="enrich",
                start=2,
                end=3,
                seen=3,
                error=ErrorInfo(kind="out_of_memory"),
            )
        ],
    )
    assert len(incidents(engine)) == 2
    apply_batch(
        engine,
        "airflow-prod",
        [
            ev(
                "airflow-prod",
                "publish/r1",
                State.failed,
                job="publish",
                start=30,
                end=31,
                seen=31,
                error=ErrorInfo(kind="dag_run_failed"),
            )
        ],
    )
    (merged_into,) = incidents(engine)
    assert {s.run.key: s.role for s in merged_into.chain} == {
        "req-1": "root_cause",  # out_of_memory is more specific than exit status 3
        "extract/r1": "member",
        "publish/r1": "member",
    }
    with Session(engine) as session:
        (gone,) = list_incidents(session, status="merged").data
    assert gone.merged_into == merged_into.id and gone.id > merged_into.id
    assert sorted(j.job for j in merged_into.jobs) == ["enrich", "extract", "publish"]


def test_one_batch_of_unrelated_failures_opens_one_incident_each_and_recoveries_resolve(
    engine: Engine,
) -> None:
    def failed(job: str, minute: float) -> RunEvent:
        return ev(
            "etl-01",
            f"{job}/{minute}",
            State.failed,
            job=job,
            start=minute,
            end=minute + 1,
            seen=minute + 1,
            error=ErrorInfo(kind="exit_code", exit_code=1),
        )

    apply_batch(engine, "etl-01", [failed(j, 0) for j in ("alpha", "beta", "gamma")])
    opened = incidents(engine)
    assert sorted((i.title, i.root_cause.key if i.root_cause else None) for i in opened) == [
        ("etl-01:alpha exit_code", "alpha/0"),
        ("etl-01:beta exit_code", "beta/0"),
        ("etl-01:gamma exit_code", "gamma/0"),
    ]
    assert all([s.role for s in i.chain] == ["root_cause"] for i in opened)
    # alpha and beta succeed again in one batch; gamma fails once more and,
    # its incident still waiting for it, joins that incident.
    apply_batch(
        engine,
        "etl-01",
        [
            ev("etl-01", "alpha/r2", State.succeeded, job="alpha", start=10, end=11, seen=11),
            ev("etl-01", "beta/r2", State.succeeded, job="beta", start=10, end=12, seen=12),
            failed("gamma", 10),
        ],
    )
    assert sorted(i.title for i in incidents(engine, "resolved")) == [
        "etl-01:alpha exit_code",
        "etl-01:beta exit_code",
    ]
    (still,) = incidents(engine, "open")
    assert still.title == "etl-01:gamma exit_code"
    assert [(s.run.key, s.role) for s in still.chain] == [
        ("gamma/0", "root_cause"),
        ("gamma/10", "member"),
    ]
    assert still.chain[1].evidence["job_still_failing"] == still.id
