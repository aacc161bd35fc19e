"""The lifecycle against the Kestra emulator and the cron adapter's real pause/restore state.

Legacy side: a crontab line of a `cron` source whose pause/resume writes the
desired state the host's `switchyard-cron sync` applies (ControlState file).
Kestra side: the emulator over HTTP through `KestraApi` (every exchange is
checked against Kestra's OpenAPI document by the `kestra` fixture).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from adapters.kestra.normalize import job_key as kestra_job_key
from emulators.kestra import KestraEmulator
from gateway.contract import JobSpec, RunEvent, SourceConfig, State, create_adapter
from gateway.ingest import apply_batch
from migration_tools.kestra_api import KestraApi
from migration_tools.lifecycle import (
    Migrations,
    MigrationState,
    ParityPolicy,
    ParityTooLow,
    SideEffectFailed,
    TransitionRefused,
)
from tests.migration_tools.conftest import ManualClock
from tests.migration_tools.lifecycle_support import lose_trigger

SOURCE = "cron-a"
KEY = "web1/alice/0f3a2b"
NS = "switchyard.migrated"


def crontab_spec() -> JobSpec:
    return JobSpec(
        source=SOURCE,
        key=KEY,
        kind="crontab",
        name="nightly_backup",
        schedule="30 2 * * *",
        owner="alice",
        definition={"command": "/usr/local/bin/backup.sh", "host": "web1", "user": "alice"},
    )


@pytest.fixture
def cron_adapter(tmp_path: Path) -> Iterator[Any]:
    adapter = create_adapter(
        SourceConfig(name=SOURCE, kind="cron", options={"control_file": str(tmp_path / "c.json")})
    )
    yield adapter
    adapter.close()  # type: ignore[attr-defined]  # the cron adapter has close()


@pytest.fixture
def migrations(
    sqlite_engine: Engine, kestra: KestraEmulator, cron_adapter: Any, clock: ManualClock
) -> Migrations:
    apply_batch(sqlite_engine, SOURCE, [], jobs=[crontab_spec()])
    return Migrations(
        sqlite_engine,
        kestra=KestraApi(kestra.url),
        legacy={SOURCE: cron_adapter},
        parity=ParityPolicy(min_parity=0.95, min_runs=4, tolerance_s=120),
        clock=clock,
    )


def legacy_paused(adapter: Any) -> bool:
    return bool(adapter.control.read().get(KEY, False))


def trigger_states(kestra: KestraEmulator, flow_id: str) -> dict[str, bool]:
    return {
        k[3]: bool(v["disabled"]) is False
        for k, v in kestra.state.triggers.items()
        if k[1] == NS and k[2] == flow_id
    }


def audit_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM migration_audit ORDER BY id")).mappings()
        out = [dict(r) for r in rows]
    for r in out:  # SQLite hands JSON back as text through a raw query
        if isinstance(r["detail"], str):
            r["detail"] = json.loads(r["detail"])
    return out


def job_state(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                sa.text("SELECT migration_state FROM job WHERE source = :s AND key = :k"),
                {"s": SOURCE, "k": KEY},
            ).scalar_one()
        )


def shadow_runs(
    engine: Engine, native_job: str, n: int, *, native_fails: int = 0, start: datetime
) -> None:
    """n scheduled ticks: a legacy run and a native run for each, 20 s apart."""
    legacy, native = [], []
    for i in range(n):
        t = start + timedelta(days=i)
        legacy.append(
            RunEvent(
                source=SOURCE,
                key=f"{KEY}/run/{i}",
                job=KEY,
                state=State.succeeded,
                started_at=t,
                ended_at=t + timedelta(seconds=60),
                observed_at=t + timedelta(seconds=60),
            )
        )
        native.append(
            RunEvent(
                source="kestra",
                key=f"exec-{i}",
                job=native_job,
                state=State.failed if i < native_fails else State.succeeded,
                started_at=t + timedelta(seconds=20),
                ended_at=t + timedelta(seconds=75),
                observed_at=t + timedelta(seconds=75),
                attributes={"switchyard.legacy_job": f"{SOURCE}:{KEY}"},
            )
        )
    apply_batch(engine, SOURCE, legacy)
    apply_batch(engine, "kestra", native)


def to_shadow(m: Migrations) -> str:
    view = m.translate(SOURCE, KEY, actor="alice")
    assert view.readiness == "full", view.reasons
    m.deploy(SOURCE, KEY, actor="alice")
    m.shadow(SOURCE, KEY, actor="alice", safe=True)
    assert view.flow_id is not None
    return view.flow_id


def test_full_lifecycle_translate_shadow_cutover_retire_updates_job_and_both_sides(
    migrations: Migrations, kestra: KestraEmulator, cron_adapter: Any, sqlite_engine: Engine
) -> None:
    flow_id = to_shadow(migrations)
    assert job_state(sqlite_engine) == "shadow"
    assert trigger_states(kestra, flow_id) == {"schedule": True}
    assert not legacy_paused(cron_adapter)  # shadow: both run

    shadow_runs(sqlite_engine, kestra_job_key(NS, flow_id), 5, start=migrations.clock())
    view = migrations.cutover(SOURCE, KEY, actor="bob")
    assert view.state == MigrationState.cut_over
    assert legacy_paused(cron_adapter)
    assert trigger_states(kestra, flow_id) == {"schedule": True}
    assert job_state(sqlite_engine) == "cut_over"

    migrations.retire(SOURCE, KEY, actor="bob")
    assert job_state(sqlite_engine) == "retired"
    rows = audit_rows(sqlite_engine)
    assert [(r["action"], r["before"], r["after"], r["outcome"]) for r in rows] == [
        ("translate", "observed", "translated", "ok"),
        ("deploy", "translated", "translated", "ok"),
        ("shadow", "translated", "shadow", "ok"),
        ("cutover", "shadow", "cut_over", "ok"),
        ("retire", "cut_over", "retired", "ok"),
    ]
    assert [r["actor"] for r in rows] == ["alice"] * 3 + ["bob"] * 2
    assert all(r["at"] is not None for r in rows)
    assert rows[3]["detail"]["parity"] == 1.0 and rows[3]["detail"]["compared"] == 5


def test_cutover_whose_trigger_enable_fails_leaves_legacy_unpaused_and_audits_it(
    migrations: Migrations, kestra: KestraEmulator, cron_adapter: Any, sqlite_engine: Engine
) -> None:
    flow_id = to_shadow(migrations)
    shadow_runs(sqlite_engine, kestra_job_key(NS, flow_id), 5, start=migrations.clock())
    # Kestra loses the trigger: enabling it answers 404 over the wire.
    lose_trigger(kestra, flow_id)

    with pytest.raises(SideEffectFailed) as failed:
        migrations.cutover(SOURCE, KEY, actor="bob")
    assert failed.value.compensated
    assert "enable native trigger schedule" in str(failed.value)
    assert not legacy_paused(cron_adapter)  # paused, then resumed by the undo
    assert migrations.status(SOURCE, KEY).state == "shadow"
    assert job_state(sqlite_engine) == "shadow"
    last = audit_rows(sqlite_engine)[-1]
    assert (last["action"], last["before"], last["after"], last["outcome"]) == (
        "cutover",
        "shadow",
        "shadow",
        "compensated",
    )
    detail = last["detail"]
    assert detail["failed_step"] == "enable native trigger schedule"
    assert detail["undone"] == ["pause legacy schedule"]
    assert "404" in detail["error"]


def test_cutover_refused_below_parity_and_accepted_with_force(
    migrations: Migrations, kestra: KestraEmulator, cron_adapter: Any, sqlite_engine: Engine
) -> None:
    flow_id = to_shadow(migrations)
    shadow_runs(
        sqlite_engine, kestra_job_key(NS, flow_id), 5, native_fails=2, start=migrations.clock()
    )
    with pytest.raises(ParityTooLow) as refused:
        migrations.cutover(SOURCE, KEY, actor="bob")
    assert "parity 0.60 over 5 runs is below 0.95" in str(refused.value)
    assert refused.value.report.counts == {"agree": 3, "differ": 2}
    assert not legacy_paused(cron_adapter)
    assert audit_rows(sqlite_engine)[-1]["outcome"] == "refused"

    view = migrations.cutover(SOURCE, KEY, actor="bob", force=True)
    assert view.state == "cut_over"
    assert legacy_paused(cron_adapter)
    detail = audit_rows(sqlite_engine)[-1]["detail"]
    assert detail["forced"] is True and "below 0.95" in detail["forced_over"]


def test_cutover_refused_with_too_few_shadow_runs(
    migrations: Migrations, sqlite_engine: Engine
) -> None:
    flow_id = to_shadow(migrations)
    shadow_runs(sqlite_engine, kestra_job_key(NS, flow_id), 2, start=migrations.clock())
    with pytest.raises(ParityTooLow, match="only 2 runs compared in shadow; 4 needed"):
        migrations.cutover(SOURCE, KEY, actor="bob")


@pytest.mark.parametrize("stop_at", ["translated", "deployed", "shadow", "cut_over", "retired"])
def test_rollback_from_every_state_returns_to_observed_with_both_sides_restored(
    stop_at: str,
    migrations: Migrations,
    kestra: KestraEmulator,
    cron_adapter: Any,
    sqlite_engine: Engine,
) -> None:
    view = migrations.translate(SOURCE, KEY, actor="alice")
    flow_id = str(view.flow_id)
    if stop_at != "translated":
        migrations.deploy(SOURCE, KEY, actor="alice")
    if stop_at in ("shadow", "cut_over", "retired"):
        migrations.shadow(SOURCE, KEY, actor="alice", safe=True)
    if stop_at in ("cut_over", "retired"):
        migrations.cutover(SOURCE, KEY, actor="alice", force=True)
        assert legacy_paused(cron_adapter)
    if stop_at == "retired":
        migrations.retire(SOURCE, KEY, actor="alice")

    back = migrations.rollback(SOURCE, KEY, actor="carol")
    assert back.state == "observed" and back.sides == {}
    assert job_state(sqlite_engine) == "observed"
    assert not legacy_paused(cron_adapter)
    assert ("main", NS, flow_id) not in kestra.state.flows
    assert trigger_states(kestra, flow_id) == {}
    last = audit_rows(sqlite_engine)[-1]
    assert (last["action"], last["after"], last["outcome"], last["actor"]) == (
        "rollback",
        "observed",
        "ok",
        "carol",
    )


def test_illegal_transitions_are_refused_and_audited(
    migrations: Migrations, sqlite_engine: Engine
) -> None:
    with pytest.raises(TransitionRefused, match="cannot cutover from observed"):
        migrations.cutover(SOURCE, KEY, actor="mallory")
    with pytest.raises(TransitionRefused, match="cannot rollback from observed"):
        migrations.rollback(SOURCE, KEY, actor="mallory")
    migrations.translate(SOURCE, KEY, actor="alice")
    with pytest.raises(TransitionRefused, match="--safe"):
        migrations.shadow(SOURCE, KEY, actor="alice", safe=False)
    rows = audit_rows(sqlite_engine)
    assert [(r["action"], r["outcome"]) for r in rows] == [
        ("cutover", "refused"),
        ("rollback", "refused"),
        ("translate", "ok"),
        ("shadow", "refused"),
    ]
    assert job_state(sqlite_engine) == "translated"


def test_audit_rows_carry_who_when_before_after_on_postgres_too(
    engine: Engine, kestra: KestraEmulator, cron_adapter: Any, clock: ManualClock
) -> None:
    apply_batch(engine, SOURCE, [], jobs=[crontab_spec()])
    m = Migrations(engine, kestra=KestraApi(kestra.url), legacy={SOURCE: cron_adapter}, clock=clock)
    m.translate(SOURCE, KEY, actor="alice")
    clock.advance(60)
    m.rollback(SOURCE, KEY, actor="bob")
    rows = m.audit(SOURCE, KEY)
    assert [(r.actor, r.action, r.before, r.after) for r in rows] == [
        ("alice", "translate", "observed", "translated"),
        ("bob", "rollback", "translated", "observed"),
    ]
    assert rows[0].at == datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
    assert rows[1].at == datetime(2026, 3, 1, 2, 1, tzinfo=UTC)


def test_wrap_moves_the_schedule_to_kestra_and_cutover_then_rollback_restore_both_sides(
    migrations: Migrations, kestra: KestraEmulator, cron_adapter: Any, sqlite_engine: Engine
) -> None:
    view = migrations.translate(SOURCE, KEY, actor="alice")
    wrapped = migrations.wrap(SOURCE, KEY, actor="alice")
    wrap_id = str(wrapped.wrap_flow_id)
    assert wrapped.state == "wrapped" and legacy_paused(cron_adapter)
    assert trigger_states(kestra, wrap_id) == {"schedule": True}
    # the wrap trigger fires: an execution that will stamp its traceparent on the legacy call
    assert kestra.fire_trigger(NS, wrap_id, "schedule")

    migrations.shadow(SOURCE, KEY, actor="alice", safe=True)
    migrations.cutover(SOURCE, KEY, actor="alice", force=True)
    assert trigger_states(kestra, wrap_id) == {"schedule": False}
    assert trigger_states(kestra, str(view.flow_id)) == {"schedule": True}
    assert legacy_paused(cron_adapter)

    migrations.rollback(SOURCE, KEY, actor="alice")
    assert not legacy_paused(cron_adapter)
    assert ("main", NS, wrap_id) not in kestra.state.flows
    assert ("main", NS, str(view.flow_id)) not in kestra.state.flows


def test_wrap_with_kestra_unreachable_leaves_legacy_running_and_audits_it(
    migrations: Migrations, kestra: KestraEmulator, cron_adapter: Any, sqlite_engine: Engine
) -> None:
    migrations.translate(SOURCE, KEY, actor="alice")
    kestra.stop()  # Kestra unreachable: the first step fails, legacy was never paused
    with pytest.raises(SideEffectFailed, match="deploy wrap flow"):
        migrations.wrap(SOURCE, KEY, actor="alice")
    assert not legacy_paused(cron_adapter)
    assert migrations.status(SOURCE, KEY).state == "translated"
    assert audit_rows(sqlite_engine)[-1]["outcome"] == "compensated"
