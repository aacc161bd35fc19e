"""Group commit: many concurrent pushes, one writer, one transaction per group.

`GroupCommitSink(engine)` implements `contract.EventSink`. `submit` blocks
until the caller's events are committed (or raises why not). Push routes run
on many threads at once; each submit joins a queue, and one writer thread takes
everything waiting, applies it through `gateway.ingest.ingest_events` (one call
per source, so a thousand single-event pings become one bulk merge) and
commits once. The commit, not the request count, is what a database pays for,
so throughput grows with load instead of collapsing under it: while a group
is being written, the next one gathers in the queue.

On SQLite the writer checkpoints the WAL itself after answering a group, not
inside the commit (`gateway.store.upkeep`), so the answer does not wait for
the checkpoint's fsyncs.

Everything submitted here is a push: events are marked `pushed` and their
`observed_at` clamped to the receipt time (`gateway.merge.as_pushed`) before
they join the queue, whatever the push route built.

Errors stay with their submitter: a refused submit (wrong source) is raised in
the caller before it joins the queue, and if a group's transaction fails, each
of its submits is retried alone so that only the bad one sees the error. A
failure that is the database's, not a submit's (locked, unreachable:
`gateway.store.db.database_unavailable`), fails the whole group at once, after
one bounded wait: retrying each submit alone would only wait again per submit,
and the push routes answer it with 503 and `Retry-After`.
`close()` stops new submits, drains what is queued and joins the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from gateway.contract import JobSpec, RunEvent
from gateway.ingest import check_batch, ingest_events
from gateway.merge import as_pushed
from gateway.store.db import database_unavailable
from gateway.store.upkeep import checkpoint, checkpoints_deferred

log = logging.getLogger(__name__)

MAX_GROUP_EVENTS = 5000
# SQLite: the writer checkpoints the WAL itself, after answering a group, once
# this many events were written since its last checkpoint (at about ten WAL
# pages an event, about SQLite's own 1,000-page threshold), or when a second
# has passed since its last one. See `gateway.store.upkeep`.
CHECKPOINT_EVENTS = 64
CHECKPOINT_S = 1.0


class SinkClosed(RuntimeError):
    """The sink is closed; nothing of this submit was written."""


@dataclass(slots=True)
class _Submit:
    source: str
    events: Sequence[RunEvent]
    jobs: Sequence[JobSpec]
    # Set by `enqueue`: the future a thread waits on. (A loop's submit has none:
    # a thread future costs a Condition and a lock, a tenth of a ping's work.)
    done: Future[None] | None = None
    # False once its submitter stopped waiting (a cancelled future): the events
    # are still written, there is just nobody to tell.
    waited: bool = True
    # Set by `commit_async`: the submitter's loop and the future it awaits.
    loop: asyncio.AbstractEventLoop | None = None
    awaited: asyncio.Future[None] | None = None


_STOP = object()


class GroupCommitSink:
    """Batches concurrent submitters into one transaction; returns once committed."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_group_events: int = MAX_GROUP_EVENTS,
    ) -> None:
        self._engine = engine
        self._max_group_events = max_group_events
        self._queue: queue.SimpleQueue[_Submit | object] = queue.SimpleQueue()
        self._closed = False
        self._close_lock = threading.Lock()
        self.groups_committed = 0
        self.writes_failed = 0  # transactions that failed, a group's or a retried submit's
        self._uncheckpointed = 0  # events written since the writer last checkpointed
        self._checkpointed_at = time.monotonic()
        self._writer = threading.Thread(target=self._run, name="switchyard-sink", daemon=True)
        self._writer.start()

    def submit(
        self,
        source: str,
        events: Sequence[RunEvent],
        *,
        jobs: Sequence[JobSpec] = (),
    ) -> None:
        """Write `events` (and `jobs`) of `source`; return when they are committed."""
        self.enqueue(source, events, jobs=jobs).result()

    def enqueue(
        self,
        source: str,
        events: Sequence[RunEvent],
        *,
        jobs: Sequence[JobSpec] = (),
    ) -> Future[None]:
        """Queue `events` (and `jobs`) of `source`; the future resolves once committed.

        The non-blocking half of `submit`, for callers on an event loop
        (`asyncio.wrap_future`): waiting costs no thread per pending push.
        A refused batch raises here, before anything is queued.
        """
        check_batch(source, events, jobs)
        done: Future[None] = Future()
        received = as_pushed(events, datetime.now(UTC))
        self._put(_Submit(source, received, list(jobs), done=done))
        return done

    def _put(self, item: _Submit) -> None:
        with self._close_lock:
            if self._closed:
                raise SinkClosed(f"{item.source}: the event sink is closed")
            self._queue.put(item)

    def commit_async(
        self,
        source: str,
        events: Sequence[RunEvent],
        *,
        jobs: Sequence[JobSpec] = (),
    ) -> asyncio.Future[None]:
        """`enqueue` for a caller on a running event loop: await the result.

        The writer settles every such future of a group that shares a loop
        with one `call_soon_threadsafe`, rather than waking the loop once per
        submit as `asyncio.wrap_future(enqueue(...))` would.
        """
        loop = asyncio.get_running_loop()
        awaited: asyncio.Future[None] = loop.create_future()
        check_batch(source, events, jobs)
        received = as_pushed(events, datetime.now(UTC))
        item = _Submit(source, received, list(jobs), loop=loop, awaited=awaited)
        self._put(item)
        return awaited

    def close(self) -> None:
        """Refuse new submits, commit everything already queued, stop the writer."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._writer.join()

    def __enter__(self) -> GroupCommitSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if not isinstance(first, _Submit):
                break  # _STOP
            _take(first)
            group = [first]
            size = len(group[0].events)
            while size < self._max_group_events:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stopping = True  # finish this group, then stop: close() drains
                    break
                assert isinstance(more, _Submit)
                _take(more)
                group.append(more)
                size += len(more.events)
            self._commit(group)
        self._checkpoint(final=True)

    def _commit(self, group: list[_Submit]) -> None:
        self._commit_group(group)
        self._checkpoint(final=False)

    def _commit_group(self, group: list[_Submit]) -> None:
        try:
            self._write(group)
        except Exception as exc:
            self.writes_failed += 1
            if len(group) == 1 or database_unavailable(exc):
                if len(group) > 1:
                    log.warning(
                        "a group of %d submits failed: the database is unavailable (%s)",
                        len(group),
                        type(exc).__name__,
                    )
                _settle(group, exc)
                return
            # One bad submit must not fail the others: retry each on its own.
            for item in group:
                self._commit_group([item])
            return
        self._uncheckpointed += sum(len(item.events) for item in group)
        _settle(group, None)

    def _checkpoint(self, *, final: bool) -> None:
        """Checkpoint SQLite's WAL when due (everyone of the group has been answered)."""
        if not self._uncheckpointed:
            return
        due = self._uncheckpointed >= CHECKPOINT_EVENTS
        if not (final or due or time.monotonic() - self._checkpointed_at >= CHECKPOINT_S):
            return
        try:
            checkpoint(self._engine)
        except Exception:
            # A later checkpoint (or another writer's autocheckpoint) catches up.
            log.warning("WAL checkpoint failed", exc_info=True)
            return
        self._uncheckpointed = 0
        self._checkpointed_at = time.monotonic()

    def _write(self, group: list[_Submit]) -> None:
        by_source: dict[str, tuple[list[RunEvent], list[JobSpec]]] = defaultdict(lambda: ([], []))
        for item in group:
            events, jobs = by_source[item.source]
            events.extend(item.events)
            jobs.extend(item.jobs)
        with self._engine.connect() as conn, checkpoints_deferred(conn), conn.begin():
            # Sources in a fixed order, so two sinks never lock them crosswise.
            for source in sorted(by_source):
                events, jobs = by_source[source]
                ingest_events(conn, source, events, jobs=jobs)
        self.groups_committed += 1


def _take(item: _Submit) -> None:
    # From here on the submitter can no longer cancel: its result will be set.
    if item.done is not None:
        item.waited = item.done.set_running_or_notify_cancel()


def _settle(group: list[_Submit], error: BaseException | None) -> None:
    """Tell each submitter: thread futures directly, each loop's futures in one call."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = defaultdict(list)
    for item in group:
        if item.loop is not None and item.awaited is not None:
            by_loop[item.loop].append(item.awaited)
        elif item.done is not None and item.waited:
            if error is None:
                item.done.set_result(None)
            else:
                item.done.set_exception(error)
    for loop, futures in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_resolve, futures, error)


def _resolve(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    # On the submitters' loop. A future whose request went away is cancelled.
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


__all__ = ["MAX_GROUP_EVENTS", "GroupCommitSink", "SinkClosed"]
