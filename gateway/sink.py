"""Group commit: many concurrent pushes, one writer, one transaction per group.

`GroupCommitSink(engine)` implements `contract.EventSink`. `submit` blocks
until the caller's events are committed (or raises why not). Push routes run
on many threads at once; each submit joins a queue, and one writer thread takes
everything waiting, applies it through `gateway.ingest.ingest_events` (one call
per source, so a thousand single-event pings become one bulk merge) and
commits once. The commit, not the request count, is what a database pays for,
so throughput grows with load instead of collapsing under it. Under load
(the last group held several submits) the writer lingers `LINGER_S` for more
before it writes, so that each commit carries more.

Errors stay with their submitter: a refused submit (wrong source) is raised in
the caller before it joins the queue, and if a group's transaction fails, each
of its submits is retried alone so that only the bad one sees the error.
`close()` stops new submits, drains what is queued and joins the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from gateway.contract import JobSpec, RunEvent
from gateway.ingest import check_batch, ingest_events

MAX_GROUP_EVENTS = 5000
# Once pushes arrive together, a group waits this long for more before it is
# written: a commit's fixed cost (its reads, its WAL pages, the commit itself)
# is then shared by more pushes. bench/ping.py: 22 -> 38 pings per commit and
# about a quarter less server CPU per ping. A push that arrives alone (the
# last group held one submit) is written at once.
LINGER_S = 0.002


class SinkClosed(RuntimeError):
    """The sink is closed; nothing of this submit was written."""


@dataclass(slots=True)
class _Submit:
    source: str
    events: Sequence[RunEvent]
    jobs: Sequence[JobSpec]
    done: Future[None] = field(default_factory=Future)
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
        linger_s: float = LINGER_S,
    ) -> None:
        self._engine = engine
        self._max_group_events = max_group_events
        self._linger_s = linger_s
        self._queue: queue.SimpleQueue[_Submit | object] = queue.SimpleQueue()
        self._closed = False
        self._close_lock = threading.Lock()
        self.groups_committed = 0
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
        item = _Submit(source, list(events), list(jobs))
        self._put(item)
        return item.done

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
        item = _Submit(source, list(events), list(jobs), loop=loop, awaited=awaited)
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
        together = False  # did the last group hold more than one submit?
        while not stopping:
            first = self._queue.get()
            if not isinstance(first, _Submit):
                return  # _STOP
            _take(first)
            group = [first]
            size = len(group[0].events)
            linger_until = time.monotonic() + (self._linger_s if together else 0.0)
            while size < self._max_group_events:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    wait = linger_until - time.monotonic()
                    if wait <= 0:
                        break
                    try:
                        more = self._queue.get(timeout=wait)
                    except queue.Empty:
                        break
                if more is _STOP:
                    stopping = True  # finish this group, then stop: close() drains
                    break
                assert isinstance(more, _Submit)
                _take(more)
                group.append(more)
                size += len(more.events)
            together = len(group) > 1
            self._commit(group)

    def _commit(self, group: list[_Submit]) -> None:
        try:
            self._write(group)
        except Exception as exc:
            if len(group) == 1:
                _settle(group, exc)
                return
            # One bad submit must not fail the others: retry each on its own.
            for item in group:
                self._commit([item])
            return
        _settle(group, None)

    def _write(self, group: list[_Submit]) -> None:
        by_source: dict[str, tuple[list[RunEvent], list[JobSpec]]] = defaultdict(lambda: ([], []))
        for item in group:
            events, jobs = by_source[item.source]
            events.extend(item.events)
            jobs.extend(item.jobs)
        with self._engine.begin() as conn:
            # Sources in a fixed order, so two sinks never lock them crosswise.
            for source in sorted(by_source):
                events, jobs = by_source[source]
                ingest_events(conn, source, events, jobs=jobs)
        self.groups_committed += 1


def _take(item: _Submit) -> None:
    # From here on the submitter can no longer cancel: its result will be set.
    if item.awaited is None:
        item.waited = item.done.set_running_or_notify_cancel()


def _settle(group: list[_Submit], error: BaseException | None) -> None:
    """Tell each submitter: thread futures directly, each loop's futures in one call."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = defaultdict(list)
    for item in group:
        if item.loop is not None and item.awaited is not None:
            by_loop[item.loop].append(item.awaited)
        elif item.waited:
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
