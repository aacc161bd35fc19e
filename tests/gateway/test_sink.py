"""GroupCommitSink: concurrent submitters share commits; errors stay with their submitter."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.contract import RunEvent, State
from gateway.ingest import SourceMismatch
from gateway.sink import CHECKPOINT_EVENTS, GroupCommitSink, SinkClosed
from gateway.store.upkeep import AUTOCHECKPOINT_PAGES

T0 = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)


def ping(source: str, n: int) -> RunEvent:
    return RunEvent(
        source=source,
        key=f"check/{n}",
        state=State.succeeded,
        observed_at=T0 + timedelta(seconds=n),
    )


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.text(f"SELECT count(*) FROM {table}")) or 0)


def run_threads(targets: list[Callable[[], None]]) -> None:
    threads = [threading.Thread(target=t) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive()


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_concurrent_submits_are_all_committed_when_submit_returns(engine: Engine) -> None:
    committed: list[int] = []

    def submitter(i: int) -> Callable[[], None]:
        def go() -> None:
            sink.submit("cron-a" if i % 2 else "cron-b", [ping("cron-a" if i % 2 else "cron-b", i)])
            committed.append(count(engine, "run"))  # visible the moment submit returns

        return go

    with GroupCommitSink(engine) as sink:
        run_threads([submitter(i) for i in range(40)])
    assert count(engine, "run") == 40
    assert all(seen >= 1 for seen in committed)


def test_submits_queued_behind_a_busy_writer_share_one_transaction(sqlite_engine: Engine) -> None:
    sink = GroupCommitSink(sqlite_engine)
    blocker = sqlite_engine.connect()
    hold = blocker.begin()  # BEGIN IMMEDIATE: the writer's first group must wait for it
    try:
        first = threading.Thread(target=sink.submit, args=("cron-a", [ping("cron-a", 0)]))
        first.start()
        wait_until(lambda: sink._queue.qsize() == 0)  # the writer took it and is blocked
        rest = [
            threading.Thread(target=sink.submit, args=("cron-a", [ping("cron-a", i)]))
            for i in range(1, 20)
        ]
        for t in rest:
            t.start()
        wait_until(lambda: sink._queue.qsize() == 19)
    finally:
        hold.rollback()
        blocker.close()
    for t in [first, *rest]:
        t.join(timeout=60)
    sink.close()
    assert count(sqlite_engine, "run") == 20
    assert sink.groups_committed == 2


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
def test_one_bad_submit_fails_alone_and_the_rest_of_its_group_commits(engine: Engine) -> None:
    # A malformed event that slipped past validation breaks the merge itself.
    poison = RunEvent.model_construct(**{**ping("cron-a", 999).__dict__, "state": "bogus"})
    errors: dict[int, BaseException] = {}

    def submitter(i: int) -> Callable[[], None]:
        def go() -> None:
            try:
                sink.submit("cron-a", [poison] if i == 7 else [ping("cron-a", i)])
            except Exception as exc:
                errors[i] = exc

        return go

    with GroupCommitSink(engine) as sink:
        run_threads([submitter(i) for i in range(20)])
    assert list(errors) == [7]
    assert count(engine, "run") == 19
    assert count(engine, "run_event") == 19


def test_mismatched_source_is_refused_to_its_caller(engine: Engine) -> None:
    with GroupCommitSink(engine) as sink, pytest.raises(SourceMismatch):
        sink.submit("cron-a", [ping("cron-b", 1)])
    assert count(engine, "run") == 0


def test_close_drains_queued_submits_and_refuses_new_ones(engine: Engine) -> None:
    sink = GroupCommitSink(engine)
    run_threads([lambda i=i: sink.submit("cron-a", [ping("cron-a", i)]) for i in range(10)])
    sink.close()
    assert count(engine, "run") == 10
    with pytest.raises(SinkClosed):
        sink.submit("cron-a", [ping("cron-a", 11)])


def test_on_sqlite_the_writer_checkpoints_the_wal_itself_and_restores_autocheckpoint(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    database = Path(str(sqlite_engine.url.database))
    with GroupCommitSink(sqlite_engine) as sink:
        for f in [sink.enqueue("s", [ping("s", n)]) for n in range(CHECKPOINT_EVENTS)]:
            f.result(timeout=30)
        # The commits left the WAL alone (no autocheckpoint on the writer's
        # connection); the writer copies it into the database after answering,
        # so soon the database file alone, without its WAL, holds every run.
        deadline = time.monotonic() + 30
        while _runs_in_file_alone(database, tmp_path) != CHECKPOINT_EVENTS:
            assert time.monotonic() < deadline, "the WAL was not checkpointed"
            time.sleep(0.05)
    with sqlite_engine.connect() as conn:
        # Every pooled connection has SQLite's own autocheckpoint back.
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == AUTOCHECKPOINT_PAGES


def test_close_checkpoints_what_is_left(sqlite_engine: Engine, tmp_path: Path) -> None:
    database = Path(str(sqlite_engine.url.database))
    with GroupCommitSink(sqlite_engine) as sink:
        sink.submit("s", [ping("s", 1)])  # too few for a checkpoint of its own
    assert _runs_in_file_alone(database, tmp_path) == 1


def _runs_in_file_alone(database: Path, tmp_path: Path) -> int:
    """Runs in the database file as it is on disk, without its WAL."""
    alone = tmp_path / "alone.db"
    shutil.copyfile(database, alone)
    copy = sqlite3.connect(alone)
    try:
        return int(copy.execute("SELECT count(*) FROM run").fetchone()[0])
    except sqlite3.OperationalError:  # not even the schema is in the file yet
        return 0
    finally:
        copy.close()
