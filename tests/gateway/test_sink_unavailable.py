"""GroupCommitSink under a locked database: a group fails at once, not submit by submit.

Another connection holds the lock the writer needs — SQLite's write lock
(`BEGIN IMMEDIATE`), or on PostgreSQL an ACCESS EXCLUSIVE lock on the event
tables. The sink's engine waits at most `lock_timeout_s` for a lock. One
submit is taken by the writer and waits; four more queue behind it and form
the next group. Each transaction fails once its wait runs out, and because the
error is the database's (`database_unavailable`), the group of four is not
retried submit by submit: two failed transactions, not six, and every
submitter gets the error. Once the lock is gone the same sink writes again.
"""

from __future__ import annotations

from concurrent.futures import Future

from sqlalchemy.engine import Engine

from gateway.sink import GroupCommitSink
from gateway.store.db import database_unavailable, make_engine
from tests.dbs import database_locked
from tests.gateway.test_sink import count, ping, wait_until

LOCK_WAIT_S = 2.0  # long enough that the next group surely gathers while the first waits


def failure(future: Future[None]) -> BaseException | None:
    return future.exception(timeout=60)


def test_a_locked_database_fails_the_whole_group_at_once_and_the_sink_recovers(
    engine: Engine,
) -> None:
    impatient = make_engine(
        engine.url.render_as_string(hide_password=False), lock_timeout_s=LOCK_WAIT_S
    )
    sink = GroupCommitSink(impatient)
    try:
        with database_locked(engine):
            first = sink.enqueue("cron-a", [ping("cron-a", 0)])
            wait_until(lambda: sink._queue.qsize() == 0)  # the writer took it and waits
            rest = [sink.enqueue("cron-a", [ping("cron-a", i)]) for i in range(1, 5)]
            errors = [failure(f) for f in [first, *rest]]
        assert all(e is not None and database_unavailable(e) for e in errors), errors
        assert sink.writes_failed == 2  # the first alone, then the group of four once
        assert count(engine, "run") == 0
        sink.submit("cron-a", [ping("cron-a", 9)])
        assert count(engine, "run") == 1
    finally:
        sink.close()
        impatient.dispose()
