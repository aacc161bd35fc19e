"""Rediscovery writes only what changed (issue 4: discovery must not stall the watch)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.contract import JobSpec
from gateway.ingest import apply_batch


def _job(key: str, schedule: str) -> JobSpec:
    return JobSpec(source="k8s", key=key, kind="cronjob", schedule=schedule, timezone="UTC")


def _rows(engine: Engine) -> dict[str, tuple[str | None, object]]:
    with engine.connect() as conn:
        return {
            key: (schedule, updated)
            for key, schedule, updated in conn.execute(
                sa.text("SELECT key, schedule, updated_at FROM job ORDER BY key")
            )
        }


def test_unchanged_jobs_are_not_rewritten_and_changed_ones_are(engine: Engine) -> None:
    apply_batch(engine, "k8s", [], jobs=[_job("a", "0 * * * *"), _job("b", "5 * * * *")])
    first = _rows(engine)
    apply_batch(engine, "k8s", [], jobs=[_job("a", "0 * * * *"), _job("b", "10 * * * *")])
    second = _rows(engine)
    assert second["a"] == first["a"]  # untouched: same updated_at
    assert second["b"][0] == "10 * * * *"
    assert second["b"][1] != first["b"][1]


def test_rediscovery_keeps_the_migration_state(engine: Engine) -> None:
    apply_batch(engine, "k8s", [], jobs=[_job("a", "0 * * * *")])
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE job SET migration_state = 'shadow' WHERE key = 'a'"))
    apply_batch(engine, "k8s", [], jobs=[_job("a", "15 * * * *")])
    with engine.connect() as conn:
        state, schedule = conn.execute(
            sa.text("SELECT migration_state, schedule FROM job WHERE key = 'a'")
        ).one()
    assert (state, schedule) == ("shadow", "15 * * * *")
