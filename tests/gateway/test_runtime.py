"""The runtime: pollers ingest with their cursor, back off, report status, recover."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.config import Config, parse_config
from gateway.contract import JobSpec, SourceError
from gateway.ingest import apply_batch
from gateway.runtime import Runtime, poll_once, source_statuses
from gateway.runtime.housekeeping import HOUSEKEEPING_LEASE, HousekeepingTask
from gateway.runtime.poller import Committed, backoff_s, read_cursor
from gateway.store.models import Job, Lease, Run, RunEventRow, SourceRow
from tests.fakes.scripted_adapter import ScriptedAdapter, scripted_kind_registered

SECRET = "s3cr3t-token-value"


@pytest.fixture
def scripted_kind(tmp_path: Path) -> Iterator[None]:
    with scripted_kind_registered(tmp_path / "entry-points"):
        yield


def make_config(
    *names: str, interval: str = "0.1s", lease_ttl: str = "1.5s", **extra: Any
) -> Config:
    return parse_config(
        {
            "lease_ttl": lease_ttl,
            "sources": [
                {"name": n, "kind": "scripted", "interval": interval, "options": {"secret": "${T}"}}
                for n in names
            ],
            **extra,
        },
        env={"T": SECRET},
    )


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def count(engine: Engine, model: Any, **where: Any) -> int:
    table = model.__table__
    stmt = sa.select(sa.func.count()).select_from(table)
    for k, v in where.items():
        stmt = stmt.where(table.c[k] == v)
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def source_row(engine: Engine, name: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(SourceRow.__table__).where(SourceRow.__table__.c.name == name)  # type: ignore[attr-defined]
        ).one()


# -- poll_once ---------------------------------------------------------------


def test_poll_once_ingests_events_stores_cursor_and_discovered_jobs(engine: Engine) -> None:
    adapter = ScriptedAdapter("src", available=10)
    report = poll_once(engine, adapter)
    assert (report.events, report.applied) == (10, 10)
    assert read_cursor(engine, "src") == "10"
    assert count(engine, Run, source="src") == 5
    assert count(engine, RunEventRow, source="src") == 10
    assert count(engine, Job, source="src") == 1
    # Nothing new: the stored cursor is where the next poll starts.
    assert poll_once(engine, adapter, discover=False).events == 0
    adapter.publish(4)
    assert poll_once(engine, adapter, discover=False).applied == 4
    assert adapter.cursors_seen == [None, "10", "10"]
    assert read_cursor(engine, "src") == "14"
    assert count(engine, Run, source="src") == 7


def test_poll_once_that_fails_writes_nothing_and_keeps_the_cursor(engine: Engine) -> None:
    adapter = ScriptedAdapter("src", available=4)
    poll_once(engine, adapter)
    adapter.publish(4)
    adapter.fail(times=1, message="HTTP 503 from the source")
    with pytest.raises(SourceError, match="HTTP 503"):
        poll_once(engine, adapter, discover=False)
    assert read_cursor(engine, "src") == "4"
    assert count(engine, RunEventRow) == 4


def test_fenced_poll_once_without_the_lease_writes_nothing(engine: Engine) -> None:
    from gateway.runtime.leases import acquire
    from gateway.runtime.poller import LeaseLost

    acquire(engine, "src", "other-replica", 60)
    adapter = ScriptedAdapter("src", available=6)
    with pytest.raises(LeaseLost):
        poll_once(engine, adapter, lease=("src", "me"))
    assert read_cursor(engine, "src") is None
    assert count(engine, RunEventRow) == 0


def test_poll_once_with_committed_state_writes_only_the_jobs_that_changed(
    engine: Engine,
) -> None:
    class Renamed(ScriptedAdapter):
        job_name = "nightly"

        def discover(self) -> list[JobSpec]:
            return [
                JobSpec(source=self.name, key="etl", kind="job", name=self.job_name),
                JobSpec(source=self.name, key="steady", kind="job", name="steady"),
            ]

    adapter = Renamed("src", available=2)
    committed = Committed()
    assert poll_once(engine, adapter, committed=committed).jobs == 2
    assert poll_once(engine, adapter, committed=committed).jobs == 0
    adapter.job_name = "nightly v2"
    assert poll_once(engine, adapter, committed=committed).jobs == 1
    with engine.connect() as conn:
        names = dict(conn.execute(sa.select(Job.__table__.c.key, Job.__table__.c.name)).all())  # type: ignore[attr-defined]
    assert names == {"etl": "nightly v2", "steady": "steady"}
    # Forgotten (the lease was regained): everything is written again.
    committed.forget()
    assert poll_once(engine, adapter, committed=committed).jobs == 2


def test_poll_once_starts_from_the_committed_cursor_until_it_is_forgotten(
    engine: Engine,
) -> None:
    adapter = ScriptedAdapter("src", available=4)
    committed = Committed()
    poll_once(engine, adapter, discover=False, committed=committed)
    # Another writer moves the stored cursor: a holder of the lease would not,
    # so the poller trusts what it committed until it forgets it.
    apply_batch(engine, "src", [], cursor="2")
    poll_once(engine, adapter, discover=False, committed=committed)
    assert read_cursor(engine, "src") == "4"
    apply_batch(engine, "src", [], cursor="2")
    committed.forget()
    poll_once(engine, adapter, discover=False, committed=committed)
    assert adapter.cursors_seen == [None, "4", "2"]


def test_a_failed_cycle_makes_the_poller_read_the_stored_cursor_again(
    scripted_kind: None, engine: Engine
) -> None:
    config = make_config("src", interval="1h", lease_ttl="1h")
    adapter = ScriptedAdapter("src", available=2)
    with Runtime(config, engine, adapters={"src": adapter}, housekeeping=[]) as rt:
        assert wait_until(lambda: read_cursor(engine, "src") == "2")
        adapter.fail(times=1, message="HTTP 503")
        assert rt.poll_now("src")
        assert wait_until(lambda: source_row(engine, "src").consecutive_failures == 1)
        apply_batch(engine, "src", [], cursor="1")
        assert rt.poll_now("src")
        assert wait_until(lambda: source_row(engine, "src").consecutive_failures == 0)
    assert adapter.cursors_seen[-1] == "1"


# -- backoff and status rules (pure) -----------------------------------------


def test_backoff_doubles_per_failure_with_jitter_and_is_capped() -> None:
    rng = random.Random(7)
    for failures, full in [(1, 30), (2, 60), (3, 120), (4, 240), (5, 300), (12, 300)]:
        for _ in range(50):
            assert full / 2 <= backoff_s(30, failures, rng) <= full
    # The cap is ten intervals for short intervals, never less than one interval.
    assert backoff_s(1, 30, rng) <= 10
    assert backoff_s(3600, 5, rng) >= 1800


# -- the runtime --------------------------------------------------------------


def test_runtime_polls_every_source_and_stores_each_cursor(
    scripted_kind: None, engine: Engine
) -> None:
    config = make_config("a", "b")
    adapters = {"a": ScriptedAdapter("a", available=6), "b": ScriptedAdapter("b", available=3)}
    with Runtime(config, engine, adapters=adapters, housekeeping=[]) as rt:
        assert wait_until(
            lambda: read_cursor(engine, "a") == "6" and read_cursor(engine, "b") == "3"
        )
        adapters["a"].publish(10)
        assert wait_until(lambda: read_cursor(engine, "a") == "16")
        assert wait_until(
            lambda: (
                {s.name: s.status for s in source_statuses(engine, config)}
                == {"a": "healthy", "b": "healthy"}
            )
        )
        statuses = {s.name: s for s in source_statuses(engine, config)}
        assert statuses["a"].holder == rt.replica_id
        assert statuses["a"].consecutive_failures == 0
    assert count(engine, RunEventRow, source="a") == 16
    assert count(engine, Run, source="b") == 2
    assert count(engine, Lease) == 0  # released on stop
    assert not adapters["a"].closed  # given adapters belong to the caller


def test_failing_source_backs_off_turns_degraded_then_stale_and_catches_up(
    scripted_kind: None, engine: Engine
) -> None:
    config = make_config("flaky", interval="0.2s")
    adapter = ScriptedAdapter("flaky", available=4)
    with Runtime(config, engine, adapters={"flaky": adapter}, housekeeping=[]):
        assert wait_until(lambda: read_cursor(engine, "flaky") == "4")
        adapter.fail(message=f"login refused for token {SECRET}")
        adapter.publish(20)
        assert wait_until(lambda: source_row(engine, "flaky").consecutive_failures >= 3)
        row = source_row(engine, "flaky")
        assert row.last_error == "flaky: login refused for token ***"
        assert SECRET not in (row.last_error or "")
        # While failing, the events the source produced are not lost, only late.
        assert read_cursor(engine, "flaky") == "4"
        assert wait_until(lambda: source_statuses(engine, config)[0].status == "stale", timeout=30)
        # Status is a function of the row and the clock: degraded inside 2 intervals.
        last_ok = row.last_success_at
        at = source_statuses(engine, config, now=last_ok + timedelta(seconds=0.3))[0]
        assert (at.status, at.consecutive_failures >= 3) == ("degraded", True)
        assert source_statuses(engine, config, now=last_ok + timedelta(seconds=0.5))[0].status == (
            "stale"
        )
        adapter.heal()
        assert wait_until(lambda: read_cursor(engine, "flaky") == "24", timeout=30)
        assert wait_until(lambda: source_statuses(engine, config)[0].status == "healthy")
        row = source_row(engine, "flaky")
        assert row.consecutive_failures == 0
    assert count(engine, RunEventRow, source="flaky") == 24
    with engine.connect() as conn:
        states = conn.execute(
            sa.select(Run.__table__.c.state).where(Run.__table__.c.source == "flaky")  # type: ignore[attr-defined]
        ).scalars()
        assert set(states) == {"succeeded"}


def test_poller_survives_unexpected_exceptions_and_records_them(
    scripted_kind: None, sqlite_engine: Engine
) -> None:
    config = make_config("odd")
    adapter = ScriptedAdapter("odd", available=2)
    adapter.fail(times=2, message="list index out of range", unexpected=True)
    with Runtime(config, sqlite_engine, adapters={"odd": adapter}, housekeeping=[]):
        assert wait_until(lambda: read_cursor(sqlite_engine, "odd") == "2")
        row = source_row(sqlite_engine, "odd")
    assert row.last_error == "RuntimeError: list index out of range"
    assert row.consecutive_failures == 0
    assert adapter.discoveries >= 1 and adapter.polls >= 1


def test_adapter_created_through_the_entry_point_is_closed_on_stop(
    scripted_kind: None, sqlite_engine: Engine
) -> None:
    config = parse_config(
        {
            "sources": [
                {"name": "ep", "kind": "scripted", "interval": "0.1s", "options": {"available": 8}}
            ]
        }
    )
    rt = Runtime(config, sqlite_engine, housekeeping=[]).start()
    try:
        assert wait_until(lambda: read_cursor(sqlite_engine, "ep") == "8")
    finally:
        rt.stop()
    adapter = rt.pollers["ep"].adapter
    assert isinstance(adapter, ScriptedAdapter) and adapter.closed


def test_status_turns_stale_when_no_replica_holds_the_lease(
    scripted_kind: None, engine: Engine
) -> None:
    config = make_config("orphan", interval="30s")
    from gateway.runtime.status import record_success, register_sources

    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    register_sources(engine, config, now=t0)
    assert source_statuses(engine, config, now=t0)[0].status == "unknown"
    record_success(engine, source="orphan", kind="scripted", interval_s=30, holder="gone", now=t0)
    fresh = source_statuses(engine, config, now=t0 + timedelta(seconds=45))[0]
    assert (fresh.status, fresh.lag_s, fresh.holder) == ("healthy", 45.0, None)
    old = source_statuses(engine, config, now=t0 + timedelta(seconds=61))[0]
    assert (old.status, old.lag_s) == ("stale", 61.0)


def test_disabled_source_is_not_polled_and_shows_disabled(
    scripted_kind: None, sqlite_engine: Engine
) -> None:
    config = parse_config({"sources": [{"name": "off", "kind": "scripted", "enabled": False}]})
    rt = Runtime(config, sqlite_engine, housekeeping=[])
    assert rt.pollers == {}
    with rt:
        assert [s.status for s in source_statuses(sqlite_engine, config)] == ["disabled"]


def test_stop_is_prompt_even_with_long_intervals(scripted_kind: None, engine: Engine) -> None:
    config = make_config("slow", interval="1h", lease_ttl="1h")
    adapter = ScriptedAdapter("slow", available=2)
    rt = Runtime(config, engine, adapters={"slow": adapter}, housekeeping=[]).start()
    assert wait_until(lambda: read_cursor(engine, "slow") == "2")
    rt.stop(timeout_s=10)
    assert not rt.pollers["slow"].thread.is_alive()
    assert not rt.keeper._thread or not rt.keeper._thread.is_alive()
    assert count(engine, Lease) == 0


def test_two_runtimes_poll_each_source_exactly_once_and_hand_over_on_stop(
    scripted_kind: None, pg_engine: Engine
) -> None:
    names = ["s1", "s2", "s3", "s4"]
    config = make_config(*names, interval="0.05s", lease_ttl="3s")
    fleet = {rid: {n: ScriptedAdapter(n, per_poll=2) for n in names} for rid in ("one", "two")}
    one = Runtime(config, pg_engine, replica_id="one", adapters=fleet["one"], housekeeping=[])
    two = Runtime(config, pg_engine, replica_id="two", adapters=fleet["two"], housekeeping=[])
    starters = [threading.Thread(target=rt.start) for rt in (one, two)]
    for t in starters:
        t.start()
    for t in starters:
        t.join()
    try:
        assert wait_until(lambda: all(int(read_cursor(pg_engine, n) or 0) >= 20 for n in names))
        for n in names:
            polled_by = {rid for rid in fleet if fleet[rid][n].polls > 0}
            assert len(polled_by) == 1, (n, polled_by)
        assert sorted(one.held() + two.held()) == names
        # One replica stops cleanly: it releases, the other takes everything over.
        one.stop()
        marks = {n: int(read_cursor(pg_engine, n) or 0) for n in names}
        assert wait_until(lambda: sorted(two.held()) == names)
        assert wait_until(
            lambda: all(int(read_cursor(pg_engine, n) or 0) >= marks[n] + 10 for n in names)
        )
    finally:
        one.stop()
        two.stop()
    for n in names:
        cursor = int(read_cursor(pg_engine, n) or 0)
        # Every event 0..cursor-1 stored exactly once: no gap, no duplicate.
        assert count(pg_engine, RunEventRow, source=n) == cursor
        assert count(pg_engine, Run, source=n) == (cursor + 1) // 2


def test_housekeeping_runs_on_one_replica_only(scripted_kind: None, engine: Engine) -> None:
    config = make_config(lease_ttl="3s")
    calls: dict[str, int] = {"one": 0, "two": 0}

    def task_for(rid: str) -> HousekeepingTask:
        def run(engine: Engine, now: datetime) -> int:
            calls[rid] += 1
            return 0

        return HousekeepingTask("count", run)

    one = Runtime(
        config,
        engine,
        replica_id="one",
        housekeeping=[task_for("one")],
        housekeeping_interval_s=0.05,
    )
    two = Runtime(
        config,
        engine,
        replica_id="two",
        housekeeping=[task_for("two")],
        housekeeping_interval_s=0.05,
    )
    with one, two:
        assert wait_until(lambda: calls["one"] + calls["two"] >= 5)
        holder = "one" if HOUSEKEEPING_LEASE in one.held() else "two"
        other = "two" if holder == "one" else "one"
        assert calls[other] == 0
        assert calls[holder] >= 5


class LeaseThief(ScriptedAdapter):
    """Another replica takes the lease over while this poll is in flight."""

    def __init__(self, name: str, engine: Engine, **kw: Any) -> None:
        super().__init__(name, **kw)
        self.engine = engine
        self.stolen = False

    def poll(self, cursor: str | None) -> Any:
        result = super().poll(cursor)
        if not self.stolen:
            from gateway.runtime.leases import acquire

            # "now" past any expiry: the take-over statement succeeds.
            far = datetime.now(UTC) + timedelta(days=1)
            assert acquire(self.engine, self.name, "thief", 3600, now=far)
            self.stolen = True
        return result


def test_batch_read_by_a_replica_that_lost_its_lease_is_never_committed(
    scripted_kind: None, engine: Engine
) -> None:
    config = make_config("fenced", interval="0.05s", lease_ttl="3s")
    adapter = LeaseThief("fenced", engine, available=6)
    with Runtime(config, engine, adapters={"fenced": adapter}, housekeeping=[]) as rt:
        assert wait_until(lambda: adapter.stolen and "fenced" not in rt.held())
        assert rt.pollers["fenced"].cycles == 0
        polls = adapter.polls
        time.sleep(0.3)  # six intervals: a poller that lost its lease stays idle
        assert adapter.polls == polls
    assert read_cursor(engine, "fenced") is None
    assert count(engine, RunEventRow) == 0
    with engine.connect() as conn:
        holder = conn.execute(sa.select(Lease.__table__.c.holder)).scalar_one()  # type: ignore[attr-defined]
    assert holder == "thief"  # our stop() did not release someone else's lease


def test_runtime_housekeeping_applies_configured_retention(
    scripted_kind: None, engine: Engine
) -> None:
    old = datetime.now(UTC) - timedelta(days=40)
    from gateway.contract import RunEvent, State
    from gateway.ingest import apply_batch

    apply_batch(
        engine,
        "k8s",
        [
            RunEvent(source="k8s", key="old", state=State.succeeded, observed_at=old),
            RunEvent(source="k8s", key="new", state=State.succeeded, observed_at=datetime.now(UTC)),
        ],
    )
    config = make_config(retention="30d")
    with Runtime(config, engine, housekeeping_interval_s=0.05) as rt:
        assert [t.name for t in rt.tasks] == ["retention", "expectations"]
        assert wait_until(lambda: count(engine, Run) == 1)
        assert wait_until(lambda: rt.housekeeper is not None and rt.housekeeper.rounds >= 1)
        assert rt.housekeeper is not None
        assert rt.housekeeper.last_counts.get("retention") in (0, 1)
    with engine.connect() as conn:
        assert conn.execute(sa.select(Run.__table__.c.key)).scalar_one() == "new"  # type: ignore[attr-defined]


# -- poll_now -----------------------------------------------------------------


def test_poll_now_polls_a_held_source_at_once_despite_a_long_interval_and_backoff(
    scripted_kind: None, engine: Engine
) -> None:
    from gateway.runtime.replica import UnknownSource

    # An hour's interval and lease TTL: nothing but poll_now wakes the poller.
    config = make_config("slow", interval="1h", lease_ttl="1h")
    adapter = ScriptedAdapter("slow", available=2)
    rt = Runtime(config, engine, adapters={"slow": adapter}, housekeeping=[])
    assert rt.poll_now("slow") is False  # not started: nothing here polls
    with rt:
        assert wait_until(lambda: read_cursor(engine, "slow") == "2")  # on gaining the lease
        adapter.publish(4)
        assert rt.poll_now("slow") is True
        assert wait_until(lambda: read_cursor(engine, "slow") == "6", timeout=10)
        # A failed cycle backs off for about half an hour; poll_now still polls at once.
        adapter.fail(times=1, message="HTTP 503")
        polls = adapter.polls
        assert rt.poll_now("slow") is True
        assert wait_until(lambda: source_row(engine, "slow").consecutive_failures == 1)
        assert adapter.polls == polls + 1
        adapter.publish(2)
        assert rt.poll_now("slow") is True
        assert wait_until(lambda: read_cursor(engine, "slow") == "8", timeout=10)
        assert source_row(engine, "slow").consecutive_failures == 0
        with pytest.raises(UnknownSource, match="no enabled source named 'nope'"):
            rt.poll_now("nope")
    assert rt.poll_now("slow") is False  # stopped


def test_poll_now_answers_false_when_another_replica_holds_the_lease(
    scripted_kind: None, engine: Engine
) -> None:
    from gateway.runtime.leases import acquire

    assert acquire(engine, "taken", "replica-b", 3600)
    config = make_config("taken", interval="0.05s", lease_ttl="3s")
    adapter = ScriptedAdapter("taken", available=2)
    with Runtime(config, engine, adapters={"taken": adapter}, housekeeping=[]) as rt:
        assert "taken" not in rt.held()
        assert rt.poll_now("taken") is False
        assert source_statuses(engine, config)[0].holder == "replica-b"
    assert adapter.polls == 0
    assert read_cursor(engine, "taken") is None


def test_python_m_runtime_refuses_a_bad_config_with_a_clear_message(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "switchyard.yaml"
    bad.write_text("sources:\n  - name: x\n    kind: nosuchkind\n")
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.runtime", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "sources[0].kind" in proc.stderr and "nosuchkind" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_python_m_runtime_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    import subprocess
    import sys

    cfg = tmp_path / "switchyard.yaml"
    cfg.write_text(f"database_url: sqlite:///{tmp_path / 'empty.db'}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.runtime", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "switchyard db upgrade" in proc.stderr
