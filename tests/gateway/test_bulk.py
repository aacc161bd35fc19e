"""The driver-level bulk writes store exactly what SQLAlchemy's types would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.ingest import EVENT_COLUMNS, RUN_INSERT_COLUMNS, RUN_UPDATE_COLUMNS
from gateway.links import table
from gateway.store.bulk import bulk_insert, bulk_update

AT = datetime(2026, 3, 29, 1, 30, 0, tzinfo=UTC)  # a whole second: no micros to print
ELSEWHERE = timezone(timedelta(hours=5, minutes=30))


def _run_row(run_id: str, key: str) -> dict[str, Any]:
    return {
        "id": run_id,
        "source": "s",
        "key": key,
        "kind": "task",
        "parent_key": "root",
        "parent_id": "p" * 16,
        "root_key": "root",
        "trace_id": "t" * 32,
        "trace_adopted": True,
        "job": "j",
        "name": "ünïcode name",
        "state": "failed",
        "state_at": AT,
        "state_pushed": True,
        "attempt": 2,
        "started_at": AT.astimezone(ELSEWHERE),
        "ended_at": AT + timedelta(microseconds=7),
        "observed_at": AT,
        "nominal_time": None,
        "error_kind": "OOMKilled",
        "error_message": "line\nbreak",
        "exit_code": 137,
        "attributes": {"k": [1, "ü", None, {"n": 1.5}], "b": True},
        "url": None,
        "created_at": AT,
        "updated_at": AT,
    }


def _stored(conn: sa.Connection, name: str, where: str, value: str) -> dict[str, Any]:
    """The row as the driver returns it, with no SQLAlchemy type in between."""
    result = conn.exec_driver_sql(
        f'SELECT * FROM {name} WHERE "{where}" = '
        + ("?" if conn.dialect.name == "sqlite" else "%s"),
        (value,),
    )
    row = dict(result.mappings().one())
    row.pop(where)
    return row


def test_bulk_insert_of_a_run_stores_what_sqlalchemy_stores(engine: Engine) -> None:
    assert set(RUN_INSERT_COLUMNS) == {c.name for c in table("run").columns}
    dialect = engine.dialect.name
    with engine.begin() as conn:
        conn.execute(table("run").insert(), [_run_row("a" * 16, "k1")])
        bulk_insert("run", RUN_INSERT_COLUMNS, dialect).run(conn, [_run_row("b" * 16, "k2")])
        via_orm = _stored(conn, "run", "id", "a" * 16)
        via_bulk = _stored(conn, "run", "id", "b" * 16)
    assert via_orm.pop("key") == "k1" and via_bulk.pop("key") == "k2"
    assert via_bulk == via_orm


def test_bulk_update_of_a_run_stores_what_sqlalchemy_stores(engine: Engine) -> None:
    dialect = engine.dialect.name
    run = table("run")
    changed = {"state": "succeeded", "ended_at": AT + timedelta(hours=1), "attributes": {}}
    with engine.begin() as conn:
        conn.execute(run.insert(), [_run_row("a" * 16, "k1"), _run_row("b" * 16, "k2")])
        conn.execute(
            run.update().where(run.c.id == "a" * 16), {**_run_row("a" * 16, "k1"), **changed}
        )
        bulk_update("run", "id", RUN_UPDATE_COLUMNS, dialect).run(
            conn, [{**_run_row("b" * 16, "k1"), **changed, "key": "k2"}]
        )
        via_orm = _stored(conn, "run", "id", "a" * 16)
        via_bulk = _stored(conn, "run", "id", "b" * 16)
    assert via_orm.pop("key") == "k1" and via_bulk.pop("key") == "k2"
    assert via_bulk == via_orm


def test_bulk_insert_of_an_event_stores_what_sqlalchemy_stores(engine: Engine) -> None:
    dialect = engine.dialect.name

    def row(digest: str) -> dict[str, Any]:
        return {
            "digest": digest,
            "run_id": "r" * 16,
            "source": "s",
            "state": "running",
            "attempt": 1,
            "observed_at": AT.astimezone(ELSEWHERE),
            "received_at": AT + timedelta(microseconds=123456),
            "payload": {"x": "ü", "n": [1, 2]},
        }

    with engine.begin() as conn:
        conn.execute(table("run_event").insert(), [row("a" * 64)])
        bulk_insert("run_event", EVENT_COLUMNS, dialect).run(conn, [row("b" * 64)])
        via_orm = _stored(conn, "run_event", "digest", "a" * 64)
        via_bulk = _stored(conn, "run_event", "digest", "b" * 64)
    assert via_bulk.pop("seq") == via_orm.pop("seq") + 1
    assert via_bulk == via_orm


def test_a_naive_time_is_refused_like_the_column_type_refuses_it(engine: Engine) -> None:
    naive = {**_run_row("c" * 16, "k3"), "started_at": datetime(2026, 1, 1)}
    with pytest.raises(ValueError, match="naive datetime"), engine.begin() as conn:
        bulk_insert("run", RUN_INSERT_COLUMNS, engine.dialect.name).run(conn, [naive])
