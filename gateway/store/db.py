"""The engine: SQLite (WAL) by default, PostgreSQL by URL.

`SWITCHYARD_DATABASE_URL` chooses the database; without it the store is
`./switchyard.db`. Both behave the same to the rest of the gateway.

Waits on the database are bounded (`LOCK_TIMEOUT_S`, a few seconds): SQLite's
busy timeout, PostgreSQL's `lock_timeout` and `connect_timeout`, and the wait
for a pooled connection. A locked or unreachable database is then an error
within seconds, which `database_unavailable` recognises: the API answers it
with 503 and `Retry-After`, pollers back off and try again, the group-commit
writer fails the whole group at once.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import NullPool
from sqlmodel import Session, create_engine

DEFAULT_URL = "sqlite:///./switchyard.db"

# How long any one wait on the database may last: a lock, a connection, a
# pooled connection. Long enough for a busy writer's transaction, short enough
# that a client is told to retry well before it gives up on its own.
LOCK_TIMEOUT_S = 5.0

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
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    # pysqlite's own transaction handling defers BEGIN; emit it ourselves so
    # a read-then-write transaction holds its lock from the first statement.
    if conn.get_execution_options().get(READ_ONLY):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(
    url: str | None = None, *, lock_timeout_s: float = LOCK_TIMEOUT_S, **kwargs: Any
) -> Engine:
    """An engine for `url` (or the configured one), set up for this gateway.

    `lock_timeout_s` bounds each wait on the database (see the module docstring).
    """
    url = database_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(db)), exist_ok=True)
        # pysqlite's `timeout` is SQLite's busy timeout: how long a statement
        # waits for another connection's lock before "database is locked".
        sqlite_args: dict[str, Any] = {"check_same_thread": False, "timeout": lock_timeout_s}
        kwargs["connect_args"] = sqlite_args | dict(kwargs.get("connect_args") or {})
        if db in (None, "", ":memory:"):
            kwargs.setdefault("poolclass", NullPool)
        else:
            kwargs.setdefault("pool_timeout", lock_timeout_s)
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
    kwargs.setdefault("pool_timeout", lock_timeout_s)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    # psycopg prepares a statement on its 5th run, and PostgreSQL may then keep
    # one generic plan for the connection's life. Planned while the store was
    # still small, that plan (a sequential scan) was kept as `run` grew and made
    # ingest slow down with the store's size (bench/ingest.py: 2x slower per
    # batch by 200k events, when autovacuum has not analysed the tables yet).
    # Custom plans are made with the actual values and current table sizes.
    connect_args: dict[str, Any] = dict(kwargs.pop("connect_args", {}))
    options = connect_args.get("options") or parsed.query.get("options") or ""
    if not isinstance(options, str):  # the URL named it more than once
        options = " ".join(options)
    # A lock wait is bounded unless the URL's own options say otherwise (they come later).
    lock_wait = f"-c lock_timeout={round(lock_timeout_s * 1000)}"
    connect_args["options"] = f"{lock_wait} {options} -c plan_cache_mode=force_custom_plan"
    if "connect_timeout" not in parsed.query:
        # libpq counts whole seconds and treats anything under 2 as 2.
        connect_args.setdefault("connect_timeout", max(2, round(lock_timeout_s)))
    return create_engine(url, connect_args=connect_args, **kwargs)


# SQLite result codes (the low byte of an extended code) that mean the file is
# busy or out of reach rather than a statement being wrong.
_SQLITE_UNAVAILABLE = {
    5,  # SQLITE_BUSY: another connection holds the lock ("database is locked")
    6,  # SQLITE_LOCKED: a table is locked
    10,  # SQLITE_IOERR
    13,  # SQLITE_FULL
    14,  # SQLITE_CANTOPEN
    15,  # SQLITE_PROTOCOL
}
# PostgreSQL SQLSTATEs (or their class, the first two characters) of the same kind.
_PG_UNAVAILABLE_CLASSES = {"08", "53", "57"}  # connection, resources, operator intervention
_PG_UNAVAILABLE = {"55P03", "55006"}  # lock_not_available (lock_timeout), object_in_use


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` is the database being locked, busy or out of reach: worth retrying later.

    True for SQLite's "database is locked" and its kin, PostgreSQL's
    `lock_timeout`, refused or lost connections, a server shutting down or
    out of connections, and no pooled connection free in time. False for
    errors that belong to the statement or its data (a constraint, a
    missing table, a value too large), which retrying would only repeat.
    """
    if isinstance(exc, sa_exc.TimeoutError):  # the pool had no connection to give in time
        return True
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        return isinstance(code, int) and (code & 0xFF) in _SQLITE_UNAVAILABLE
    if not isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        return False
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is None:  # no answer from the server at all: refused, reset, timed out
        return True
    return sqlstate in _PG_UNAVAILABLE or sqlstate[:2] in _PG_UNAVAILABLE_CLASSES


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
