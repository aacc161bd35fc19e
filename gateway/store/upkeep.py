"""Store upkeep on the write path: planner statistics (PostgreSQL), WAL checkpoints (SQLite).

**Planner statistics.**

PostgreSQL plans from the statistics `ANALYZE` gathers. Autovacuum gathers
them once a table has changed by a tenth, about a minute later, and never
when it is turned off. Until then the planner knows nothing of a new table
and guesses: on a store that had never been analysed, ingest looked a batch's
runs up by a sequential scan and chose the `(source, job)` index for a
`(source, root_key)` lookup, so every batch cost more as the store grew
(bench/ingest.py, 200,000 events: 133 ms a batch in the first quarter,
165 ms in the last; analysed as it grew, a flat 110-120 ms).

So ingest tells `note_writes` how many rows it added to each table. When the
rows this process added since it last looked reach the table's analysed size
(at least `MIN_ROWS`), it looks at `pg_class.reltuples`: a table never
analysed, or one that has at least doubled since, is analysed there and then,
inside the caller's transaction. `ANALYZE` reads a bounded sample (30,000 rows
at the default statistics target), and doubling keeps the number of runs
logarithmic in the store's size, so the cost stays small and bounded. A table
another process or autovacuum has analysed meanwhile is left alone.

`ANALYZE` in a transaction takes a SHARE UPDATE EXCLUSIVE lock until the
commit: reads and writes go on, and autovacuum skips the table meanwhile.
SQLite needs none of this: its planner prefers an index whenever one applies.

**WAL checkpoints.** SQLite copies the write-ahead log back into the database
(a checkpoint, with two fsyncs) inside whichever commit finds the log past
1,000 pages. A group of pings dirties about ten random index pages per ping,
so under load every second group commit also paid a checkpoint: 13-19 ms
instead of 2-3 ms, while every ping of the group waited for it. The group
commit sink therefore writes with `checkpoints_deferred` and runs
`checkpoint` itself once the group's submitters have been answered, so that
the copy overlaps the next group's requests instead of delaying this one's.
It is PASSIVE (it waits for no reader or writer), run from the writer thread
between groups so that no commit races it and the log starts over from its
beginning, keeping the file small. Other writers keep the autocheckpoint.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

MIN_ROWS = 1000
AUTOCHECKPOINT_PAGES = 1000  # SQLite's default, restored after a deferred write
_AUTOCHECKPOINT_ON = "PRAGMA wal_autocheckpoint=1000"  # AUTOCHECKPOINT_PAGES

# The tables ingest grows, each with its literal statement (no SQL is built
# from names at run time); others are not counted.
_ANALYZE = {
    "run": "ANALYZE run",
    "run_event": "ANALYZE run_event",
    "run_ref": "ANALYZE run_ref",
}


@dataclass
class _Table:
    written: int = 0  # rows this process added since it last looked
    due: int = MIN_ROWS  # look once `written` reaches this


@dataclass
class _Upkeep:
    lock: threading.Lock = field(default_factory=threading.Lock)
    tables: dict[str, _Table] = field(default_factory=dict)


_UPKEEP: weakref.WeakKeyDictionary[Engine, _Upkeep] = weakref.WeakKeyDictionary()
_UPKEEP_LOCK = threading.Lock()

_RELTUPLES = sa.text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:name)")


def note_writes(conn: Connection, rows: Mapping[str, int]) -> list[str]:
    """Count rows added to tables; analyse those that are due. The tables analysed."""
    if conn.dialect.name != "postgresql":
        return []
    upkeep = _upkeep_of(conn.engine)
    due: list[tuple[str, int]] = []
    with upkeep.lock:
        for name, count in rows.items():
            if name not in _ANALYZE:
                continue
            table = upkeep.tables.setdefault(name, _Table())
            table.written += count
            if table.written >= table.due:
                due.append((name, table.written))
                # Counted again from here; a concurrent batch will not look too.
                table.written, table.due = 0, _never()
    analysed = []
    for name, written in due:
        size = 0.0  # also if this fails: look again after another MIN_ROWS rows
        try:
            before = conn.scalar(_RELTUPLES, {"name": name})
            if before is None:
                continue  # not created on the search path (yet): nothing to analyse
            if before < 0 or written >= before:
                conn.exec_driver_sql(_ANALYZE[name])
                analysed.append(name)
                size = conn.scalar(_RELTUPLES, {"name": name}) or 0.0
            else:
                size = before
        finally:
            with upkeep.lock:
                upkeep.tables[name].due = max(MIN_ROWS, int(size))
    return analysed


def _never() -> int:
    return 1 << 62


def _upkeep_of(engine: Engine) -> _Upkeep:
    with _UPKEEP_LOCK:
        upkeep = _UPKEEP.get(engine)
        if upkeep is None:
            upkeep = _UPKEEP[engine] = _Upkeep()
        return upkeep


@contextmanager
def checkpoints_deferred(conn: Connection) -> Iterator[None]:
    """On SQLite, commits made on `conn` inside this block leave the WAL to `checkpoint`.

    Enter it before the transaction begins; the connection gets its
    autocheckpoint back on the way out, before it returns to the pool.
    """
    if conn.dialect.name != "sqlite":
        yield
        return
    raw = _sqlite3(conn)
    raw.execute("PRAGMA wal_autocheckpoint=0")
    try:
        yield
    finally:
        raw.execute(_AUTOCHECKPOINT_ON)


def checkpoint(engine: Engine) -> None:
    """On SQLite, copy the committed WAL into the database now (PASSIVE); else nothing."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        # Outside any transaction: SQLAlchemy would begin one on its own execute.
        _sqlite3(conn).execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _sqlite3(conn: Connection) -> sqlite3.Connection:
    raw = conn.connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    return raw


__all__ = ["AUTOCHECKPOINT_PAGES", "MIN_ROWS", "checkpoint", "checkpoints_deferred", "note_writes"]
