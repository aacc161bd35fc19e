"""GroupCommitSink: concurrent submitters share commits; errors stay with their submitter."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.contract import RunEvent, State
from gateway.ingest import SourceMismatch
from gateway.sink import GroupCommitSink, SinkClosed

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


def test_under_load_a_group_waits_for_company_and_a_lone_submit_does_not(
    sqlite_engine: Engine,
) -> None:
    with GroupCommitSink(sqlite_engine, linger_s=1.0) as sink:
        # Alone: written at once, no linger (a fresh sink has seen no crowd).
        started = time.monotonic()
        sink.submit("s", [ping("s", 0)])
        assert time.monotonic() - started < 1.0
        # A burst: its last group holds several submits, so the next one lingers.
        for f in [sink.enqueue("s", [ping("s", n)]) for n in range(1, 21)]:
            f.result(timeout=30)
        before = sink.groups_committed
        first = sink.enqueue("s", [ping("s", 21)])
        time.sleep(0.05)
        second = sink.enqueue("s", [ping("s", 22)])
        first.result(timeout=30)
        second.result(timeout=30)
        assert sink.groups_committed - before == 1  # both rode one commit
    assert count(sqlite_engine, "run") == 23
