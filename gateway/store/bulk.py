"""Bulk writes through the driver's own `executemany`, for the ingest hot path.

SQLAlchemy's `execute(insert, [dict, ...])` runs every value of every row
through its type processors and builds an execution context per call; on a
1,000-event batch that is a large share of ingest's CPU. `BulkWrite` compiles
one plain statement per table and dialect, converts each row's values with one
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import gateway.store.models  # noqa: F401  # registers the tables on SQLModel.metadata
from gateway.store.types import UTCDateTime

Convert = Callable[[Any], Any] | None


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


def _converter(column: sa.Column[Any], dialect: str) -> Convert:
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return _sqlite_time if dialect == "sqlite" else _pg_time
    if isinstance(kind, sa.JSON) or isinstance(getattr(kind, "impl", None), sa.JSON):
        return _sqlite_json if dialect == "sqlite" else _pg_json
    return None


class BulkWrite:
    """One compiled INSERT or UPDATE-by-key of named columns, run by `executemany`."""

    def __init__(self, sql: str, columns: Sequence[sa.Column[Any]], dialect: str) -> None:
        self.sql = sql
        self.names = tuple(c.name for c in columns)
        self.converters = tuple(_converter(c, dialect) for c in columns)

    def rows(self, rows: Iterable[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        pairs = tuple(zip(self.names, self.converters, strict=True))
        return [tuple(row[n] if c is None else c(row[n]) for n, c in pairs) for row in rows]

    def run(self, conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        params = self.rows(rows)
        if params:
            conn.exec_driver_sql(self.sql, params)


def _quote(name: str) -> str:
    # Every identifier quoted: `key` is a keyword to SQLite.
    return f'"{name}"'


@cache
def bulk_insert(table: str, columns: tuple[str, ...], dialect: str) -> BulkWrite:
    """`INSERT INTO table (columns) VALUES (...)` for `executemany`."""
    target = SQLModel.metadata.tables[table]
    cols = [target.c[name] for name in columns]
    mark = "?" if dialect == "sqlite" else "%s"
    names = ", ".join(_quote(c.name) for c in cols)
    sql = f"INSERT INTO {table} ({names}) VALUES ({', '.join([mark] * len(cols))})"
    return BulkWrite(sql, cols, dialect)


@cache
def bulk_update(table: str, key: str, columns: tuple[str, ...], dialect: str) -> BulkWrite:
    """`UPDATE table SET columns... WHERE key = ?` for `executemany` (key comes last)."""
    target = SQLModel.metadata.tables[table]
    cols = [target.c[name] for name in columns]
    mark = "?" if dialect == "sqlite" else "%s"
    sets = ", ".join(f"{_quote(c.name)} = {mark}" for c in cols)
    sql = f"UPDATE {table} SET {sets} WHERE {_quote(key)} = {mark}"
    return BulkWrite(sql, [*cols, target.c[key]], dialect)


__all__ = ["BulkWrite", "bulk_insert", "bulk_update"]
