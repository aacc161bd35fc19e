"""apply_batch: one transaction for events, cursor and jobs; idempotent; typed refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from gateway.contract import (
    ErrorInfo,
    JobSpec,
    Ref,
    RunEvent,
    RunKind,
    State,
    job_id_for,
    span_id_for,
    trace_id_for,
)
from gateway.ingest import SourceMismatch, apply_batch, ingest_events, read_cursor
from gateway.merge import PUSH_CLOCK_SKEW, as_pushed, canonical_payload
from gateway.sink import GroupCommitSink
from gateway.store.db import session_scope

T0 = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


def ev(key: str, state: State, minute: int, **kw: Any) -> RunEvent:
    kw.setdefault("source", "airflow-prod")
    return RunEvent(key=key, state=state, observed_at=T0 + timedelta(minutes=minute), **kw)


def rows(engine: Engine, table: str, **where: Any) -> list[dict[str, Any]]:
    target = SQLModel.metadata.tables[table]
    query = sa.select(target).where(*(target.c[k] == v for k, v in where.items()))
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def run_row(engine: Engine, source: str, key: str) -> dict[str, Any]:
    (row,) = rows(engine, "run", id=span_id_for(source, key))
    return row


def test_batch_writes_runs_events_refs_cursor_and_jobs(engine: Engine) -> None:
    job = JobSpec(source="airflow-prod", key="orders_etl", kind="dag", schedule="0 * * * *")
    events = [
        ev("orders/r1", State.running, 0, job="orders_etl", started_at=T0),
        ev(
            "orders/r1/extract",
            State.succeeded,
            1,
            kind=RunKind.task,
            parent_key="orders/r1",
            ended_at=T0 + timedelta(minutes=1),
            refs=[Ref(namespace="airflow.ti", value="orders/r1/extract/-1/1")],
        ),
    ]
    report = apply_batch(engine, "airflow-prod", events, cursor="c-1", jobs=[job])

    assert (report.events, report.applied, report.duplicates) == (2, 2, 0)
    assert (report.runs_created, report.runs_updated) == (2, 0)
    assert set(report.run_ids) == {
        span_id_for("airflow-prod", "orders/r1"),
        span_id_for("airflow-prod", "orders/r1/extract"),
    }
    task = run_row(engine, "airflow-prod", "orders/r1/extract")
    assert task["parent_id"] == span_id_for("airflow-prod", "orders/r1")
    assert task["root_key"] == "orders/r1"
    assert task["trace_id"] == trace_id_for("airflow-prod", "orders/r1")
    assert task["state"] == "succeeded"
    assert len(rows(engine, "run_event")) == 2
    assert rows(engine, "run_ref")[0]["value"] == "orders/r1/extract/-1/1"
    assert read_cursor(engine, "airflow-prod") == "c-1"
    (stored_job,) = rows(engine, "job")
    assert stored_job["id"] == job_id_for("airflow-prod", "orders_etl")


def test_replaying_a_batch_changes_nothing(engine: Engine) -> None:
    events = [ev("r1", State.running, 0), ev("r1", State.failed, 2, error=ErrorInfo(kind="x"))]
    apply_batch(engine, "airflow-prod", events, cursor="c-1")
    before = run_row(engine, "airflow-prod", "r1")

    again = apply_batch(engine, "airflow-prod", events + events, cursor="c-1")

    assert (again.applied, again.duplicates, again.runs_updated) == (0, 4, 0)
    assert run_row(engine, "airflow-prod", "r1") == before
    assert len(rows(engine, "run_event")) == 2


def test_mismatched_event_source_writes_nothing_and_keeps_cursor(engine: Engine) -> None:
    apply_batch(engine, "airflow-prod", [ev("r0", State.running, 0)], cursor="c-1")
    batch = [ev("r1", State.running, 1), ev("r2", State.running, 1, source="k8s-prod")]

    with pytest.raises(SourceMismatch) as info:
        apply_batch(engine, "airflow-prod", batch, cursor="c-2")

    assert info.value.source == "airflow-prod" and info.value.got == "k8s-prod"
    assert "event #1" in str(info.value) and "'r2'" in str(info.value)
    assert read_cursor(engine, "airflow-prod") == "c-1"
    assert [r["key"] for r in rows(engine, "run")] == ["r0"]


def test_failure_inside_the_transaction_rolls_back_events_and_cursor(engine: Engine) -> None:
    apply_batch(engine, "airflow-prod", [ev("r0", State.running, 0)], cursor="c-1")
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        ingest_events(session, "airflow-prod", [ev("r1", State.running, 1)], cursor="c-2")
        raise RuntimeError("poller crashed after ingest, before commit")
    assert read_cursor(engine, "airflow-prod") == "c-1"
    assert [r["key"] for r in rows(engine, "run")] == ["r0"]


def test_terminal_state_does_not_regress_on_late_running_event(engine: Engine) -> None:
    apply_batch(engine, "airflow-prod", [ev("r1", State.succeeded, 5, ended_at=T0)])
    apply_batch(engine, "airflow-prod", [ev("r1", State.running, 9, started_at=T0)])
    row = run_row(engine, "airflow-prod", "r1")
    assert row["state"] == "succeeded"
    assert row["started_at"] == T0 and row["ended_at"] == T0
    assert row["observed_at"] == T0 + timedelta(minutes=9)


@pytest.mark.parametrize("push_first", [True, False])
def test_a_push_does_not_overwrite_a_terminal_state_the_source_reported(
    engine: Engine, push_first: bool
) -> None:
    oom = ErrorInfo(kind="OOMKilled", exit_code=137)
    polled = ev("t", State.failed, 5, ended_at=T0 + timedelta(minutes=5), error=oom)
    # Arrives later and claims a later instant and a later end: it still loses.
    (pushed,) = as_pushed(
        [ev("t", State.succeeded, 9, ended_at=T0 + timedelta(minutes=9))],
        T0 + timedelta(minutes=9),
    )
    for event in [pushed, polled] if push_first else [polled, pushed]:
        apply_batch(engine, "airflow-prod", [event])
    row = run_row(engine, "airflow-prod", "t")
    assert (row["state"], row["state_pushed"], row["error_kind"]) == ("failed", False, "OOMKilled")
    assert row["ended_at"] == T0 + timedelta(minutes=5)


def test_a_pushed_end_stands_until_the_source_reports_its_own(engine: Engine) -> None:
    (pushed,) = as_pushed([ev("t", State.succeeded, 3, ended_at=T0)], T0 + timedelta(minutes=3))
    apply_batch(engine, "airflow-prod", [ev("t", State.running, 1), pushed])
    row = run_row(engine, "airflow-prod", "t")
    assert (row["state"], row["state_pushed"], row["ended_at"]) == ("succeeded", True, T0)
    # The poller reads the same try a little later: its word replaces the push's.
    end = T0 + timedelta(minutes=2)
    apply_batch(engine, "airflow-prod", [ev("t", State.failed, 4, ended_at=end)])
    row = run_row(engine, "airflow-prod", "t")
    assert (row["state"], row["state_pushed"], row["ended_at"]) == ("failed", False, end)


def test_a_pushed_observation_is_clamped_to_its_receipt_plus_the_skew() -> None:
    received = T0 + timedelta(minutes=10)
    future, past = as_pushed([ev("a", State.running, 60 * 24), ev("b", State.running, 1)], received)
    assert (future.pushed, future.observed_at) == (True, received + PUSH_CLOCK_SKEW)
    assert (past.pushed, past.observed_at) == (True, T0 + timedelta(minutes=1))


def test_a_report_resent_by_a_host_whose_clock_runs_fast_is_stored_once(engine: Engine) -> None:
    # The host says it is T0+60min; the gateway receives it at T0+10min and
    # again, after a lost answer, at T0+12min: two different clamps, one event.
    report = ev("r", State.succeeded, 60, source="cron-hosts", ended_at=T0)
    for minute in (10, 12):
        (pushed,) = as_pushed([report], T0 + timedelta(minutes=minute))
        apply_batch(engine, "cron-hosts", [pushed])
    with GroupCommitSink(engine) as sink:  # and once more through the push routes' sink
        sink.submit("cron-hosts", [report])
    assert len(rows(engine, "run_event")) == 1
    row = run_row(engine, "cron-hosts", "r")
    assert row["observed_at"] == T0 + timedelta(minutes=10) + PUSH_CLOCK_SKEW


def test_a_polled_event_keeps_the_digest_it_had_before_pushes_were_marked() -> None:
    event = ev("r", State.running, 1)
    assert "pushed" not in canonical_payload(event)
    assert canonical_payload(as_pushed([event], T0)[0])["pushed"] is True


def test_newer_try_supersedes_failure_and_clears_its_error(engine: Engine) -> None:
    oom = ErrorInfo(kind="OOMKilled", exit_code=137)
    apply_batch(engine, "airflow-prod", [ev("t", State.failed, 5, error=oom, attempt=1)])
    assert run_row(engine, "airflow-prod", "t")["error_kind"] == "OOMKilled"
    # The second try's success is observed *earlier* by a lagging poller.
    apply_batch(engine, "airflow-prod", [ev("t", State.succeeded, 4, attempt=2)])
    row = run_row(engine, "airflow-prod", "t")
    assert (row["state"], row["attempt"], row["error_kind"], row["exit_code"]) == (
        "succeeded",
        2,
        None,
        None,
    )


def test_late_event_refolds_attributes_by_observation_time(engine: Engine) -> None:
    apply_batch(engine, "airflow-prod", [ev("r", State.running, 1, attributes={"a": 1})])
    apply_batch(engine, "airflow-prod", [ev("r", State.running, 3, attributes={"b": 3})])
    apply_batch(engine, "airflow-prod", [ev("r", State.running, 2, attributes={"a": 2, "c": 2})])
    assert run_row(engine, "airflow-prod", "r")["attributes"] == {"a": 2, "b": 3, "c": 2}


@pytest.mark.parametrize("root_first", [True, False])
def test_tree_adopts_w3c_trace_whichever_arrives_first(engine: Engine, root_first: bool) -> None:
    root = ev("r", State.running, 0, refs=[Ref(namespace="w3c.traceparent", value=TRACEPARENT)])
    child = ev("r/t", State.running, 1, kind=RunKind.task, parent_key="r")
    for event in [root, child] if root_first else [child, root]:
        apply_batch(engine, "airflow-prod", [event])
    for key in ("r", "r/t"):
        row = run_row(engine, "airflow-prod", key)
        assert (row["trace_id"], row["trace_adopted"]) == (TRACE, True)


def test_jobs_keep_their_whole_spec_and_migration_state(engine: Engine) -> None:
    job = JobSpec(source="cron-a", key="backup", kind="crontab", definition={"line": "0 2 * * *"})
    apply_batch(engine, "cron-a", [], jobs=[job])
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE job SET migration_state = 'shadow'"))
    apply_batch(engine, "cron-a", [], jobs=[job.model_copy(update={"owner": "ops"})])
    (row,) = rows(engine, "job")
    assert row["migration_state"] == "shadow" and row["owner"] == "ops"
    assert row["spec"]["definition"] == {"line": "0 2 * * *"}


def test_mismatched_job_source_is_refused(engine: Engine) -> None:
    job = JobSpec(source="other", key="backup", kind="crontab")
    with pytest.raises(SourceMismatch, match="job #0"):
        apply_batch(engine, "cron-a", [], jobs=[job], cursor="x")
    assert read_cursor(engine, "cron-a") is None
