"""Bulk writes through the driver's own `executemany`, for the ingest hot path.

SQLAlchemy's `execute(insert, [dict, ...])` runs every value of every row
through its type processors and builds an execution context per call; on a
1,000-event batch that is a large share of ingest's CPU. `BulkWrite` has
SQLAlchemy compile the statement once per table and dialect (positional
parameters, no RETURNING), converts each row's values with one
function per column chosen from the column's type (the same conversions the
types make: `UTCDateTime` to naive UTC text on SQLite and aware UTC on
PostgreSQL, JSON to text on SQLite and `Jsonb` on PostgreSQL), and hands the
tuples to the DBAPI cursor in the caller's transaction.

What is written is exactly what the SQLAlchemy types would write, so every
reader, through SQLAlchemy or not, sees the same rows; the tests compare both
paths row for row on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import gateway.store.models  # noqa: F401  # registers the tables on SQLModel.metadata
from gateway.store.types import UTCDateTime

Convert = Callable[[Any], Any] | None


@lru_cache(maxsize=8192)  # a batch repeats its times (now, observed, started...)
def _sqlite_time(value: datetime | None) -> str | None:
    # SQLAlchemy's SQLite DATETIME storage format ("2026-11-26 03:04:05.000000"),
    # of the naive UTC time `UTCDateTime` hands it.
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTCDateTime column")
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _pg_time(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTCDateTime column")
    return value


def _sqlite_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _pg_json(value: Any) -> Any:
    from psycopg.types.json import Jsonb

    return None if value is None else Jsonb(value)


def _converter(column: sa.ColumnElement[Any], dialect: str) -> Convert:
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return _sqlite_time if dialect == "sqlite" else _pg_time
    if isinstance(kind, sa.JSON) or isinstance(getattr(kind, "impl", None), sa.JSON):
        return _sqlite_json if dialect == "sqlite" else _pg_json
    return None


class BulkWrite:
    """One compiled statement and its parameters' order, run by `executemany`.

    `sql` is SQLAlchemy's own compilation of the statement for the dialect,
    with positional parameters; `order` names the row keys that fill them.
    """

    def __init__(self, statement: Any, dialect: str, column_of: Mapping[str, str]) -> None:
        compiled = statement.compile(
            dialect=_positional_dialect(dialect),
            column_keys=list(column_of) if isinstance(statement, sa.Insert) else None,
            for_executemany=True,
        )
        self.sql = str(compiled)
        target = statement.table
        self.order = tuple(column_of[name] for name in compiled.positiontup or ())
        self.converters = tuple(_converter(target.c[key], dialect) for key in self.order)
        getter = operator.itemgetter(*self.order)
        self._get = getter if len(self.order) > 1 else (lambda row: (getter(row),))
        self._convert = [(i, c) for i, c in enumerate(self.converters) if c is not None]

    def rows(self, rows: Iterable[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        get, convert = self._get, self._convert
        out = []
        for row in rows:
            values = list(get(row))
            for i, c in convert:
                values[i] = c(values[i])
            out.append(tuple(values))
        return out

    def run(self, conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        params = self.rows(rows)
        if params:
            conn.exec_driver_sql(self.sql, params)


@cache
def _positional_dialect(name: str) -> sa.Dialect:
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

        return SQLiteDialect_pysqlite()  # qmark
    from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

    return PGDialect_psycopg(paramstyle="format")


@cache
def bulk_insert(table: str, columns: tuple[str, ...], dialect: str) -> BulkWrite:
    """`INSERT INTO table (columns) VALUES (...)`, one row per mapping of those keys."""
    return BulkWrite(_table(table).insert(), dialect, {name: name for name in columns})


@cache
def bulk_update(table: str, key: str, columns: tuple[str, ...], dialect: str) -> BulkWrite:
    """`UPDATE table SET columns WHERE key = ...`, one row per mapping of key and columns."""
    target = _table(table)
    statement = (
        target.update()
        .where(target.c[key] == sa.bindparam(f"b_{key}"))
        .values({name: sa.bindparam(f"b_{name}") for name in columns})
    )
    return BulkWrite(statement, dialect, {f"b_{name}": name for name in (*columns, key)})


@contextmanager
def generic_plans(conn: Connection) -> Iterator[None]:
    """On PostgreSQL, let the enclosed writes reuse one plan per statement.

    The gateway's connections plan every statement with its own values
    (`plan_cache_mode=force_custom_plan`, see `gateway.store.db`), which the
    reads need. A bulk write is one prepared statement run once per row, and a
    row's INSERT or primary-key UPDATE has one sensible plan: planning it anew
    per row cost more than the write itself (bench/ingest.py: the 1,000-row
    `run_event` INSERT took 85 ms a batch with custom plans, 17 ms without).
    The setting is transaction-local and put back to the connection's own on
    the way out, so the reads after it plan as before.
    """
    if conn.dialect.name != "postgresql":
        yield
        return
    conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
    yield
    conn.exec_driver_sql("SET LOCAL plan_cache_mode TO DEFAULT")


def _table(name: str) -> sa.Table:
    return SQLModel.metadata.tables[name]


__all__ = ["BulkWrite", "bulk_insert", "bulk_update", "generic_plans"]
