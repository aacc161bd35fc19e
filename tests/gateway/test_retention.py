"""Retention prunes exactly the finished, long-unobserved run trees, in batches."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.contract import RunEvent, State, span_id_for, trace_id_for
from gateway.ingest import apply_batch
from gateway.runtime.retention import prune
from gateway.store.models import Link, Run, RunEventRow, RunRef

NOW = datetime(2026, 6, 1, tzinfo=UTC)
DAY = 86400.0


def add_run(
    conn: sa.Connection,
    source: str,
    key: str,
    *,
    state: str,
    age_days: float,
    root_key: str | None = None,
) -> str:
    """A run row with one event row and one ref row, observed `age_days` ago."""
    root = root_key or key
    rid = span_id_for(source, key)
    seen = NOW - timedelta(days=age_days)
    conn.execute(
        sa.insert(Run.__table__).values(  # type: ignore[attr-defined]
            id=rid,
            trace_id=trace_id_for(source, root),
            parent_id=None if root == key else span_id_for(source, root),
            source=source,
            key=key,
            parent_key=None if root == key else root,
            root_key=root,
            kind="run" if root == key else "task",
            state=state,
            attempt=1,
            observed_at=seen,
            attributes={},
        )
    )
    conn.execute(
        sa.insert(RunEventRow.__table__).values(  # type: ignore[attr-defined]
            digest=hashlib.sha256(f"{source}/{key}".encode()).hexdigest(),
            run_id=rid,
            source=source,
            state=state,
            attempt=1,
            observed_at=seen,
            payload={},
        )
    )
    conn.execute(
        sa.insert(RunRef.__table__).values(
            namespace="test.key", value=f"{source}/{key}", run_id=rid
        )  # type: ignore[attr-defined]
    )
    return rid


def link(conn: sa.Connection, a: str, b: str) -> None:
    conn.execute(
        sa.insert(Link.__table__).values(  # type: ignore[attr-defined]
            from_run_id=a,
            to_run_id=b,
            strength="exact",
            relation="launched",
            confidence=1.0,
            evidence={},
        )
    )


def ids(engine: Engine, model: Any, column: str) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(model.__table__.c[column])).scalars())


@pytest.mark.parametrize("batch", [1, 3, 200])
def test_prune_removes_exactly_the_old_finished_trees(engine: Engine, batch: int) -> None:
    with engine.begin() as c:
        old_ok = add_run(c, "airflow", "dag/1", state="succeeded", age_days=100)
        old_ok_task = add_run(
            c, "airflow", "dag/1/t", state="failed", age_days=100, root_key="dag/1"
        )
        # An old try left at up_for_retry goes with its finished run.
        old_ok_try = add_run(
            c, "airflow", "dag/1/t/1", state="up_for_retry", age_days=100, root_key="dag/1"
        )
        old_fail = add_run(c, "k8s", "job-a", state="failed", age_days=95)
        recent = add_run(c, "k8s", "job-b", state="succeeded", age_days=10)
        # Old but still running: kept, it is what a user must see as stuck.
        stuck = add_run(c, "cron", "host/backup/1", state="running", age_days=200)
        # Finished root, but a child was observed recently: the tree is not old.
        mixed_root = add_run(c, "airflow", "dag/2", state="failed", age_days=120)
        mixed_child = add_run(c, "airflow", "dag/2/t", state="failed", age_days=1, root_key="dag/2")
        # No root row ever seen: pruned only if every run of the tree is terminal.
        orphan_done = add_run(
            c, "airflow", "dag/3/t", state="skipped", age_days=99, root_key="dag/3"
        )
        orphan_open = add_run(
            c, "airflow", "dag/4/t", state="queued", age_days=99, root_key="dag/4"
        )
        orphan_open_2 = add_run(
            c, "airflow", "dag/4/u", state="succeeded", age_days=99, root_key="dag/4"
        )
        link(c, old_ok_task, old_fail)  # both pruned
        link(c, recent, old_fail)  # half pruned: the link goes
        link(c, recent, stuck)  # neither pruned: kept
    deleted = prune(engine, 90 * DAY, now=NOW, batch_trees=batch, scan_rows=batch + 1)
    gone = {old_ok, old_ok_task, old_ok_try, old_fail, orphan_done}
    kept = {recent, stuck, mixed_root, mixed_child, orphan_open, orphan_open_2}
    assert deleted == len(gone)
    assert ids(engine, Run, "id") == kept
    assert ids(engine, RunEventRow, "run_id") == kept
    assert ids(engine, RunRef, "run_id") == kept
    with engine.connect() as conn:
        links = conn.execute(
            sa.select(Link.__table__.c.from_run_id, Link.__table__.c.to_run_id)  # type: ignore[attr-defined]
        ).all()
    assert [tuple(r) for r in links] == [(recent, stuck)]
    # A second pass finds nothing more to do.
    assert prune(engine, 90 * DAY, now=NOW, batch_trees=batch) == 0


def test_prune_of_ingested_runs_keeps_young_ones_and_reingest_recreates(engine: Engine) -> None:
    def event(key: str, state: State, age_days: float) -> RunEvent:
        at = NOW - timedelta(days=age_days)
        return RunEvent(source="k8s", key=key, state=state, started_at=at, observed_at=at)

    events = [
        event("old", State.running, 40),
        event("old", State.succeeded, 39),
        event("young", State.succeeded, 2),
        event("old-running", State.running, 50),
    ]
    apply_batch(engine, "k8s", events)
    assert prune(engine, 30 * DAY, now=NOW) == 1
    with engine.connect() as conn:
        keys = set(conn.execute(sa.select(Run.__table__.c.key)).scalars())  # type: ignore[attr-defined]
        event_count = conn.execute(sa.select(sa.func.count()).select_from(RunEventRow)).scalar()
    assert keys == {"young", "old-running"}
    assert event_count == 2
    # Observed again after pruning, a run simply reappears.
    assert apply_batch(engine, "k8s", events[:2]).runs_created == 1


def test_prune_works_through_a_backlog_larger_than_one_batch(engine: Engine) -> None:
    with engine.begin() as c:
        for i in range(120):
            add_run(c, "cron", f"job/{i}", state="succeeded", age_days=100 + i % 7)
        for i in range(30):
            add_run(c, "cron", f"live/{i}", state="running", age_days=100)
    assert prune(engine, 90 * DAY, now=NOW, batch_trees=7, scan_rows=11) == 120
    assert len(ids(engine, Run, "id")) == 30


def test_prune_rejects_a_negative_age(sqlite_engine: Engine) -> None:
    with pytest.raises(ValueError, match="older_than_s"):
        prune(sqlite_engine, -1)
