"""The engine: SQLite (WAL) by default, PostgreSQL by URL.

`SWITCHYARD_DATABASE_URL` chooses the database; without it the store is
`./switchyard.db`. Both behave the same to the rest of the gateway.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import NullPool
from sqlmodel import Session, create_engine

DEFAULT_URL = "sqlite:///./switchyard.db"

# Execution option for a connection that only reads (`/readyz`): on SQLite its
# transaction begins deferred, so in WAL mode it never waits for a writer.
READ_ONLY = "switchyard_read_only"


def database_url(url: str | None = None) -> str:
    """Normalise a database URL: `postgresql://` uses psycopg 3."""
    url = url or os.environ.get("SWITCHYARD_DATABASE_URL") or DEFAULT_URL
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    # pysqlite's own transaction handling defers BEGIN; emit it ourselves so
    # a read-then-write transaction holds its lock from the first statement.
    if conn.get_execution_options().get(READ_ONLY):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for `url` (or the configured one), set up for this gateway."""
    url = database_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(db)), exist_ok=True)
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        if db in (None, "", ":memory:"):
            kwargs.setdefault("poolclass", NullPool)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        event.listen(
            engine,
            "connect",
            lambda dbapi_conn, _r: setattr(dbapi_conn, "isolation_level", None),
        )
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    # psycopg prepares a statement on its 5th run, and PostgreSQL may then keep
    # one generic plan for the connection's life. Planned while the store was
    # still small, that plan (a sequential scan) was kept as `run` grew and made
    # ingest slow down with the store's size (bench/ingest.py: 2x slower per
    # batch by 200k events, when autovacuum has not analysed the tables yet).
    # Custom plans are made with the actual values and current table sizes.
    connect_args = dict(kwargs.pop("connect_args", {}))
    options = connect_args.get("options") or parsed.query.get("options") or ""
    if not isinstance(options, str):  # the URL named it more than once
        options = " ".join(options)
    connect_args["options"] = f"{options} -c plan_cache_mode=force_custom_plan".strip()
    return create_engine(url, connect_args=connect_args, **kwargs)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session whose work commits on success and rolls back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
