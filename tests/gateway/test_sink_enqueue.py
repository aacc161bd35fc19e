"""GroupCommitSink.enqueue: the non-blocking half of submit that push routes await."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.contract import RunEvent, State
from gateway.ingest import SourceMismatch
from gateway.sink import GroupCommitSink

T0 = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)


def ping(source: str, n: int) -> RunEvent:
    return RunEvent(
        source=source,
        key=f"check/{n}",
        state=State.succeeded,
        observed_at=T0 + timedelta(seconds=n),
    )


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.text("SELECT count(*) FROM run")) or 0)


def test_awaited_enqueues_are_committed_when_they_resolve(engine: Engine) -> None:
    async def main(sink: GroupCommitSink) -> list[int]:
        async def one(i: int) -> int:
            await asyncio.wrap_future(sink.enqueue("cron-a", [ping("cron-a", i)]))
            return count(engine)

        return await asyncio.gather(*(one(i) for i in range(40)))

    with GroupCommitSink(engine) as sink:
        seen = asyncio.run(main(sink))
    assert min(seen) >= 1 and count(engine) == 40


def test_enqueue_refuses_a_wrong_source_before_queueing(engine: Engine) -> None:
    with GroupCommitSink(engine) as sink, pytest.raises(SourceMismatch):
        sink.enqueue("cron-a", [ping("cron-b", 1)])
    assert count(engine) == 0


def test_a_cancelled_wait_still_writes_its_events_and_the_writer_goes_on(engine: Engine) -> None:
    with GroupCommitSink(engine) as sink:
        abandoned = [sink.enqueue("cron-a", [ping("cron-a", i)]) for i in range(20)]
        for future in abandoned[::2]:
            future.cancel()  # the client went away; its ping was never acknowledged
        sink.submit("cron-a", [ping("cron-a", 100)])  # the writer is still alive
        for future in abandoned[1::2]:
            assert future.result(timeout=30) is None
    assert count(engine) == 21
