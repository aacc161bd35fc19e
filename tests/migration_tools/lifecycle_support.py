"""What the per-source lifecycle tests share: the Migrations they drive, Kestra's trigger
switches, the migration audit as they read it back, and the steps that bring a job to shadow."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from emulators.kestra import KestraEmulator
from migration_tools.kestra_api import KestraApi
from migration_tools.lifecycle import Migrations, ParityPolicy
from tests.migration_tools.conftest import ManualClock

NS = "switchyard.migrated"


def migrations_for(
    engine: Engine,
    kestra: KestraEmulator,
    source: str,
    legacy: Any,
    clock: ManualClock,
    *,
    min_runs: int,
) -> Migrations:
    """Migrations over the emulator with `legacy` as `source`'s adapter."""
    return Migrations(
        engine,
        kestra=KestraApi(kestra.url),
        legacy={source: legacy},
        parity=ParityPolicy(min_parity=0.95, min_runs=min_runs, tolerance_s=120),
        clock=clock,
    )


def trigger_enabled(kestra: KestraEmulator, flow_id: str) -> dict[str, bool]:
    """Each trigger of the migrated flow `flow_id`: is it enabled?"""
    return {
        k[3]: not v.get("disabled")
        for k, v in kestra.state.triggers.items()
        if k[1] == NS and k[2] == flow_id
    }


def lose_trigger(kestra: KestraEmulator, flow_id: str) -> None:
    """Kestra loses the flow's schedule trigger: enabling it then answers 404."""
    with kestra.state.lock:
        del kestra.state.triggers[("main", NS, flow_id, "schedule")]


def to_shadow(m: Migrations, source: str, key: str) -> str:
    """Translate, deploy and shadow a job; returns the native flow's id."""
    flow_id = str(m.translate(source, key, actor="alice").flow_id)
    m.deploy(source, key, actor="alice")
    m.shadow(source, key, actor="alice", safe=True)
    return flow_id


def audit(engine: Engine, source: str) -> list[tuple[str, str, str, str]]:
    """(action, before, after, outcome) of `source`'s audit rows, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT action, before, after, outcome FROM migration_audit "
                "WHERE source = :s ORDER BY id"
            ),
            {"s": source},
        ).all()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def last_detail(engine: Engine) -> dict[str, Any]:
    """The detail of the newest audit row (SQLite hands JSON back as text)."""
    with engine.connect() as conn:
        detail = conn.execute(
            sa.text("SELECT detail FROM migration_audit ORDER BY id DESC LIMIT 1")
        ).scalar_one()
    return json.loads(detail) if isinstance(detail, str) else dict(detail)
