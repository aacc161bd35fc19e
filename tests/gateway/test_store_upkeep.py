"""Ingest keeps PostgreSQL's planner statistics fresh as the store grows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from gateway.contract import RunEvent, State
from gateway.ingest import apply_batch
from gateway.store.db import make_engine
from gateway.store.upkeep import AUTOCHECKPOINT_PAGES, MIN_ROWS, note_writes
from tests.dbs import fresh_pg_database, migrated_engine

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def fresh_pg(pg_engine: Engine) -> Iterator[Engine]:
    """A store no process has written to yet: no table has been analysed.

    Takes `pg_engine` only for its skip when no PostgreSQL is configured; the
    session's shared store has been written to, so this is a database of its own.
    """
    with fresh_pg_database("switchyard_upkeep") as url:
        migrated_engine(url).dispose()
        engine = make_engine(url)  # a new engine: nothing counted yet
        yield engine
        engine.dispose()


def _events(start: int, count: int) -> list[RunEvent]:
    return [
        RunEvent(
            source="s",
            key=f"run-{i}",
            state=State.succeeded,
            observed_at=T0 + timedelta(seconds=i),
        )
        for i in range(start, start + count)
    ]


def _reltuples(engine: Engine, table: str) -> float:
    with engine.connect() as conn:
        value = conn.exec_driver_sql(
            "SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)", (table,)
        ).scalar_one()
    return float(value)


def test_a_table_is_analysed_when_first_grown_and_again_once_it_doubles(
    fresh_pg: Engine,
) -> None:
    assert _reltuples(fresh_pg, "run") == -1  # never analysed

    apply_batch(fresh_pg, "s", _events(0, MIN_ROWS - 1))
    assert _reltuples(fresh_pg, "run") == -1  # fewer rows than are worth a look

    apply_batch(fresh_pg, "s", _events(MIN_ROWS - 1, 201))
    analysed_at = _reltuples(fresh_pg, "run")
    assert analysed_at == MIN_ROWS + 200

    apply_batch(fresh_pg, "s", _events(MIN_ROWS + 200, 1000))
    assert _reltuples(fresh_pg, "run") == analysed_at  # grown, not yet doubled

    apply_batch(fresh_pg, "s", _events(2 * MIN_ROWS + 200, 300))
    assert _reltuples(fresh_pg, "run") == 2 * MIN_ROWS + 500  # doubled: analysed again


def test_a_table_another_replica_analysed_meanwhile_is_left_alone(fresh_pg: Engine) -> None:
    apply_batch(fresh_pg, "s", _events(0, MIN_ROWS))
    assert _reltuples(fresh_pg, "run") == MIN_ROWS

    replica = make_engine(fresh_pg.url.render_as_string(hide_password=False))  # its own counts
    try:
        apply_batch(replica, "s", _events(MIN_ROWS, 4 * MIN_ROWS))
    finally:
        replica.dispose()
    assert _reltuples(fresh_pg, "run") == 5 * MIN_ROWS  # it looked, and analysed

    with fresh_pg.begin() as conn:
        # This process has now written as much again as it saw analysed, but
        # the table is already analysed at five times that: nothing to do.
        assert note_writes(conn, {"run": MIN_ROWS}) == []
        assert note_writes(conn, {"run": 4 * MIN_ROWS}) == []
        assert note_writes(conn, {"run": MIN_ROWS}) == ["run"]


def test_only_the_tables_ingest_grows_are_counted(fresh_pg: Engine) -> None:
    with fresh_pg.begin() as conn:
        assert note_writes(conn, {"job": 10 * MIN_ROWS, "no_such_table": 10 * MIN_ROWS}) == []
    assert _reltuples(fresh_pg, "job") == -1


def test_autocheckpoint_restored_is_sqlites_default(sqlite_engine: Engine) -> None:
    with sqlite_engine.connect() as conn:
        default = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    assert default == AUTOCHECKPOINT_PAGES


def test_sqlite_needs_no_statistics(sqlite_engine: Engine) -> None:
    with sqlite_engine.begin() as conn:
        assert note_writes(conn, {"run": 10 * MIN_ROWS}) == []
