"""Test databases: a fresh SQLite file, or a fresh database on the local PostgreSQL.

PostgreSQL tests use `SWITCHYARD_TEST_DATABASE_URL` (CI sets it to the local
server); each test session creates its own database there and drops it at the
end, so runs never see each other's rows.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import psycopg
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import Engine, make_url
from sqlmodel import SQLModel

from gateway.store.db import database_url, make_engine
from gateway.store.migrate import upgrade

PG_ENV = "SWITCHYARD_TEST_DATABASE_URL"
PG_SKIP_REASON = f"needs PostgreSQL: set {PG_ENV} (make test / .ci/run set it)"


def pg_admin_url() -> str | None:
    url = os.environ.get(PG_ENV)
    return database_url(url) if url else None


@contextmanager
def fresh_pg_database(prefix: str = "switchyard_test") -> Iterator[str]:
    """Create a new empty database on the test server; yield its URL; drop it."""
    admin = pg_admin_url()
    if admin is None:
        raise RuntimeError(PG_SKIP_REASON)
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin_engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin_engine.connect() as conn:
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        admin_engine.dispose()


def migrated_engine(url: str) -> Engine:
    engine = make_engine(url)
    upgrade(engine)
    return engine


def truncate_all(engine: Engine) -> None:
    """Empty every table (keeps the schema and alembic_version)."""
    tables = [t.name for t in SQLModel.metadata.sorted_tables]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        else:
            for t in tables:
                conn.exec_driver_sql(f"DELETE FROM {t}")


@contextmanager
def database_locked(
    engine: Engine, pg_tables: Sequence[str] = ("api_token", "run", "run_event")
) -> Iterator[None]:
    """Another connection holds what writers wait for, until the block ends.

    SQLite: the write lock (`BEGIN IMMEDIATE`), which every transaction of
    the gateway's engine takes. PostgreSQL: ACCESS EXCLUSIVE on `pg_tables`,
    so even a read of them waits (for `lock_timeout`).
    """
    url = make_url(engine.url)
    if engine.dialect.name == "sqlite":
        holder = sqlite3.connect(str(url.database), isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            yield
            holder.execute("ROLLBACK")
        finally:
            holder.close()
        return
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain) as conn:
        names = sql.SQL(", ").join(sql.Identifier(t) for t in pg_tables)
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(names))
        yield
        conn.rollback()


def statements_during(engine: Engine, work: Callable[[], object]) -> list[str]:
    """The SQL statements `engine` ran while `work()` ran, in order, as sent."""
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        work()
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    return seen
