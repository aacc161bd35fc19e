"""Leases: one atomic statement to acquire, renew and take over; expiry moves them."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.runtime.leases import LeaseKeeper, acquire, live_holders, release
from gateway.store.db import make_engine
from gateway.store.models import Lease

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _rows(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [
            (r.name, r.holder)
            for r in conn.execute(sa.select(Lease.__table__.c.name, Lease.__table__.c.holder))  # type: ignore[attr-defined]
        ]


def wait_until(predicate, timeout: float = 10.0, step: float = 0.02) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


def test_free_lease_is_acquired_and_a_live_one_is_refused(engine: Engine) -> None:
    assert acquire(engine, "airflow-prod", "a", 30, now=T0) == T0 + timedelta(seconds=30)
    assert acquire(engine, "airflow-prod", "b", 30, now=T0 + timedelta(seconds=29)) is None
    assert _rows(engine) == [("airflow-prod", "a")]


def test_holder_renews_and_keeps_its_acquisition_time(engine: Engine) -> None:
    acquire(engine, "s", "a", 30, now=T0)
    later = T0 + timedelta(seconds=20)
    assert acquire(engine, "s", "a", 30, now=later) == later + timedelta(seconds=30)
    with engine.connect() as conn:
        row = conn.execute(sa.select(Lease.__table__)).one()  # type: ignore[attr-defined]
    assert row.acquired_at == T0
    assert row.expires_at == later + timedelta(seconds=30)


def test_expired_lease_is_taken_over_and_the_old_holder_cannot_renew(engine: Engine) -> None:
    acquire(engine, "s", "a", 30, now=T0)
    after_expiry = T0 + timedelta(seconds=31)
    assert acquire(engine, "s", "b", 30, now=after_expiry) is not None
    assert acquire(engine, "s", "a", 30, now=after_expiry + timedelta(seconds=1)) is None
    assert _rows(engine) == [("s", "b")]
    assert live_holders(engine, now=after_expiry) == {"s": "b"}


def test_release_only_drops_the_callers_own_lease(engine: Engine) -> None:
    acquire(engine, "s", "a", 30, now=T0)
    assert release(engine, "s", "b") is False
    assert _rows(engine) == [("s", "a")]
    assert release(engine, "s", "a") is True
    assert _rows(engine) == []


def test_racing_replicas_take_over_an_expired_lease_exactly_once(pg_engine: Engine) -> None:
    """Eight threads, each with its own connection, race for one expired lease."""
    contenders = 8
    for round_no in range(10):
        name = f"race-{round_no}"
        acquire(pg_engine, name, "dead", 1, now=T0)
        barrier = threading.Barrier(contenders)
        winners: list[str] = []
        errors: list[BaseException] = []

        def contend(
            me: str,
            name: str = name,
            barrier: threading.Barrier = barrier,
            winners: list[str] = winners,
            errors: list[BaseException] = errors,
        ) -> None:
            try:
                with pg_engine.connect() as conn:
                    barrier.wait(timeout=10)
                    with conn.begin():
                        if acquire(conn, name, me, 30, now=T0 + timedelta(seconds=5)):
                            winners.append(me)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=contend, args=(f"r{i}",)) for i in range(contenders)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert errors == []
        assert len(winners) == 1, winners
        assert live_holders(pg_engine, now=T0 + timedelta(seconds=6))[name] == winners[0]


def test_keepers_split_leases_and_a_dead_keepers_leases_move(engine: Engine) -> None:
    names = ["s1", "s2", "s3"]
    first = LeaseKeeper(engine, "first", 0.6, names)
    second = LeaseKeeper(engine, "second", 0.6, names)
    first.start()
    second.start()
    try:
        assert sorted(first.held()) == names
        assert second.held() == []
        # "Dies": stops renewing without releasing, like a kill -9.
        first.stop(release_leases=False)
        assert wait_until(lambda: sorted(second.held()) == names)
        assert Counter(h for _, h in _rows(engine)) == {"second": 3}
    finally:
        first.stop(release_leases=False)
        second.stop()
    assert _rows(engine) == []


def test_keeper_that_cannot_reach_the_database_stops_trusting_its_lease(
    sqlite_engine: Engine,
) -> None:
    """Fencing: renewals fail, so the lease is distrusted before the row expires."""
    changes: list[tuple[str, bool]] = []
    keeper = LeaseKeeper(
        sqlite_engine, "a", 0.6, ["s"], on_change=lambda n, held: changes.append((n, held))
    )
    keeper.start()
    unreachable = make_engine("postgresql://postgres@127.0.0.1:1/none", pool_pre_ping=False)
    try:
        assert keeper.holds("s")
        keeper.engine = unreachable
        assert wait_until(lambda: not keeper.holds("s"))
        assert wait_until(lambda: len(changes) == 2)
        # Nobody took the row over, yet the keeper gave the lease up by itself.
        assert _rows(sqlite_engine) == [("s", "a")]
        assert changes == [("s", True), ("s", False)]
    finally:
        keeper.stop(release_leases=False)
        unreachable.dispose()


def test_keeper_rejects_a_non_positive_ttl(sqlite_engine: Engine) -> None:
    with pytest.raises(ValueError, match="lease_ttl"):
        LeaseKeeper(sqlite_engine, "a", 0, ["s"])
