"""Polling one source: one synchronous cycle, and the thread that repeats it.

`poll_once(engine, adapter)` is one cycle: read the stored cursor, optionally
`discover()`, `poll(cursor)`, then `apply_batch` the events, the new cursor
and the discovered jobs in ONE transaction. A crash anywhere before that
commit leaves the old cursor in place, so the next cycle re-reads the same
window (the merge is idempotent); nothing is ever half applied.

`SourcePoller` repeats the cycle for one configured source while its replica
holds the source's lease:

- every `interval` after a success; after `n` consecutive failures it waits a
  jittered `min(cap, interval x 2^(n-1))` with `cap = max(interval,
  min(10 x interval, 5 min))` (half of the wait fixed, half random, so
  replicas recovering from a shared outage do not stampede);
- `discover()` when it gains the lease and then every `DISCOVER_EVERY`
  intervals;
- while it holds the lease it remembers what it committed (`Committed`): the
  next cycle starts from that cursor without reading it back, and of a
  discovery only the jobs that changed are written, so an unchanged estate
  costs the ingest transaction nothing however many jobs it has;
- an adapter with `set_wakeup` (`contract.WakingAdapter`) is handed a
  callback; when it reports buffered events the poller polls without waiting
  for the interval, but never sooner than `min(interval, WAKE_MIN_GAP_S)`
  after the previous cycle ended (a busy stream must leave the database to
  the API's readers between batches, also when a cycle runs long) and never
  while backing off after failures;
- `request_poll()` (`Runtime.poll_now`, the dashboard's "Re-poll now")
  makes the next cycle due at once, even while backing off; a request made
  during a cycle is kept and served by another cycle right after it;
- a `SourceError`, or any other exception, is caught, logged redacted and
  recorded on the source's status row; the poller never dies of it;
- it polls only while its `LeaseKeeper` trusts the lease, and the batch is
  fenced inside the ingest transaction (`poll_once(..., lease=…)`): a batch
  read by a replica that lost the lease meanwhile is dropped, and the next
  holder re-reads it from the stored cursor.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from gateway.config import Config, SourceEntry
from gateway.contract import Adapter, JobSpec, SourceError, WakingAdapter, create_adapter
from gateway.ingest import UNSET, IngestReport, Unset, apply_batch, check_batch, ingest_events
from gateway.runtime import status
from gateway.runtime.leases import LeaseKeeper, holds_lease
from gateway.store.models import Cursor

log = logging.getLogger(__name__)

_CURSOR: sa.Table = Cursor.__table__  # type: ignore[attr-defined]  # set by SQLModel

DISCOVER_EVERY = 10  # intervals between discoveries
BACKOFF_CAP_S = 300.0
BACKOFF_CAP_INTERVALS = 10.0
WAKE_MIN_GAP_S = 0.05  # bounds the cycles a busy streaming source can cause


class LeaseLost(RuntimeError):
    """This replica no longer holds the source's lease; the batch is dropped."""

    def __init__(self, source: str) -> None:
        super().__init__(f"{source}: lease lost before the batch was applied")
        self.source = source


class Committed:
    """What a poller last committed for its source while holding the lease.

    Every batch is fenced by the lease, so while the poller holds it, it is
    the source's only writer and what it committed is what is stored. Two
    reads per cycle are then unnecessary:

    - the cursor: the next cycle starts from the one it committed, without a
      read of its own (on SQLite every transaction takes the write lock, so
      that read was one more wait behind the API's readers each cycle);
    - unchanged jobs: of a discovery, only the jobs whose spec differs from
      the one committed are written. Ingest would compare each by digest (a
      canonical JSON dump and a sha256 per job) inside the batch's
      transaction; with thousands of Jobs that made every discovery cycle
      hundreds of milliseconds longer, holding back the events sharing it.
      Ingest never deletes a job a discovery leaves out, so the batch writes
      the same rows.

    Only a committed transaction is recorded. `forget()` whenever the lease
    is (re)gained (another replica may have written meanwhile) or a cycle
    fails (its outcome is not known for certain).
    """

    def __init__(self) -> None:
        self.cursor: str | Unset | None = UNSET
        self._jobs: dict[str, JobSpec] = {}

    def changed_jobs(self, jobs: list[JobSpec]) -> list[JobSpec]:
        """The jobs whose spec differs from the one committed (all, at first)."""
        known = self._jobs
        out = []
        for job in jobs:
            before = known.get(job.key)
            if before is None or (before is not job and before != job):
                out.append(job)
        return out

    def record(self, cursor: str | None, jobs: list[JobSpec]) -> None:
        self.cursor = cursor
        for job in jobs:
            self._jobs[job.key] = job

    def forget(self) -> None:
        self.cursor = UNSET
        self._jobs = {}


def read_cursor(engine: Engine, source: str) -> str | None:
    with engine.connect() as conn:
        value: str | None = conn.execute(
            sa.select(_CURSOR.c.value).where(_CURSOR.c.source == source)
        ).scalar_one_or_none()
    return value


def poll_once(
    engine: Engine,
    adapter: Adapter,
    *,
    discover: bool = True,
    lease: tuple[str, str] | None = None,
    on_applied: Callable[[Connection], None] | None = None,
    committed: Committed | None = None,
) -> IngestReport:
    """One poll cycle of `adapter`, applied in one transaction; its report.

    `discover=True` also stores a fresh `discover()`. With `lease=(name,
    holder)` the batch is fenced: the same transaction that writes the events
    and the cursor first checks (and on PostgreSQL locks, `FOR UPDATE`) the
    lease row, and raises `LeaseLost` — writing nothing — unless `holder`
    still holds an unexpired lease. A take-over by another replica is an
    update of that row, so it orders strictly before or after this
    transaction: no batch is ever committed by a replica that lost the lease.
    `on_applied(conn)` runs last inside that same transaction (the runtime
    records the source's status there). A `SourceError` from the adapter
    propagates unchanged and nothing is written. With `committed` (the
    runtime's, see `Committed`) the cycle starts from its cursor and writes
    only the jobs that differ from its own; it records the cycle once the
    transaction has committed.
    """
    if committed is not None and not isinstance(committed.cursor, Unset):
        cursor = committed.cursor
    else:
        cursor = read_cursor(engine, adapter.name)
    jobs: list[JobSpec] | None = list(adapter.discover()) if discover else None
    result = adapter.poll(cursor)
    if result.jobs is not None:
        jobs = [*(jobs or []), *result.jobs]
    if jobs and committed is not None:
        jobs = committed.changed_jobs(jobs)
    if lease is None and on_applied is None:
        report = apply_batch(engine, adapter.name, result.events, cursor=result.cursor, jobs=jobs)
    else:
        check_batch(adapter.name, result.events, jobs or ())
        with engine.begin() as conn:
            if lease is not None and not holds_lease(conn, *lease):
                raise LeaseLost(adapter.name)
            report = ingest_events(
                conn, adapter.name, result.events, cursor=result.cursor, jobs=jobs
            )
            if on_applied is not None:
                on_applied(conn)
    if committed is not None:
        committed.record(result.cursor, jobs or [])
    return report


def backoff_s(interval_s: float, failures: int, rng: random.Random) -> float:
    """How long to wait after `failures` consecutive failures (see module doc)."""
    cap = max(interval_s, min(BACKOFF_CAP_INTERVALS * interval_s, BACKOFF_CAP_S))
    delay = min(cap, interval_s * 2 ** max(0, failures - 1))
    return delay / 2 + rng.uniform(0, delay / 2)


def describe_error(exc: BaseException) -> str:
    """The message recorded for a failed cycle (redacted by the caller)."""
    if isinstance(exc, SourceError):
        return str(exc)
    return f"{exc.__class__.__name__}: {exc}"


class SourcePoller:
    """Polls one source on its interval while this replica holds its lease."""

    def __init__(
        self,
        *,
        engine: Engine,
        config: Config,
        entry: SourceEntry,
        keeper: LeaseKeeper,
        stopping: threading.Event,
        adapter: Adapter | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.config = config
        self.entry = entry
        self.name = entry.name
        self.keeper = keeper
        self.stopping = stopping
        self.adapter = adapter
        self.owns_adapter = adapter is None
        self.rng = rng or random.Random()
        self.wake = threading.Event()
        self.cycles = 0
        self._poll_requested = False  # request_poll() was called
        self._source_ready = False  # the adapter said it has events buffered
        self._wakeup_set = False
        self._last_ended = 0.0
        self._holding = False
        self._failures = 0
        self._last_success: datetime | None = None
        self._next_due = 0.0
        self._next_discover = 0.0
        self._committed = Committed()
        self.thread = threading.Thread(target=self.run, name=f"poller-{self.name}", daemon=True)

    # -- thread ------------------------------------------------------------
    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._step()
            except Exception:  # never let the thread die; status is best effort
                log.error(
                    "poller %s: unexpected error\n%s",
                    self.name,
                    self.config.redact(traceback.format_exc()),
                )
                self._sleep(self.entry.interval)

    def _sleep(self, seconds: float) -> None:
        self.wake.wait(max(0.0, seconds))
        self.wake.clear()

    def _step(self) -> None:
        if not self.keeper.holds(self.name):
            self._holding = False
            self._sleep(self.keeper.renew_every_s)
            return
        if not self._holding:
            # Just gained the lease: take over the failure count and poll now.
            self._holding = True
            self._failures, self._last_success = status.load_failures(self.engine, self.name)
            self._committed.forget()
            self._next_due = self._next_discover = time.monotonic()
        if self._poll_requested:
            # Consumed before the cycle, so a request made during it is not lost.
            self._poll_requested = False
            self._next_due = time.monotonic()
        due = self._next_due
        if self._source_ready and self._failures == 0:
            due = min(due, self._last_ended + min(self.entry.interval, WAKE_MIN_GAP_S))
        wait = due - time.monotonic()
        if wait > 0:
            self._sleep(min(wait, self.keeper.renew_every_s))
            return
        self.cycle()

    def _source_has_events(self) -> None:
        """The adapter's wake-up callback (any thread): poll without waiting."""
        if self._source_ready:
            # Already known: `_step` has timed the next cycle by the flag. A
            # busy stream calls this per change; waking the poller for each
            # only to have it wait out the gap again cost the watch threads
            # the GIL and a lock round trip every time.
            return
        self._source_ready = True
        self.wake.set()

    def request_poll(self) -> None:
        """Poll as soon as possible, once (any thread); see the module docstring."""
        self._poll_requested = True  # set before waking, so the woken step sees it
        self.wake.set()

    # -- one cycle -----------------------------------------------------------
    def cycle(self) -> IngestReport | None:
        """Poll once and record the outcome; None if it failed or was dropped."""
        started = time.monotonic()
        # Cleared before polling: events buffered during this cycle wake the next.
        self._source_ready = False
        discover = started >= self._next_discover
        succeeded_at: list[datetime] = []

        def record(conn: Connection) -> None:
            now = datetime.now(UTC)
            succeeded_at.append(now)
            status.record_success(
                conn,
                source=self.name,
                kind=self.entry.kind,
                interval_s=self.entry.interval,
                holder=self.keeper.holder,
                now=now,
            )

        try:
            if self.adapter is None:
                self.adapter = create_adapter(self.entry.source_config())
            if not self._wakeup_set and isinstance(self.adapter, WakingAdapter):
                self.adapter.set_wakeup(self._source_has_events)
                self._wakeup_set = True
            if not self.keeper.holds(self.name):
                raise LeaseLost(self.name)
            report = poll_once(
                self.engine,
                self.adapter,
                discover=discover,
                lease=(self.name, self.keeper.holder),
                on_applied=record,
                committed=self._committed,
            )
        except LeaseLost:
            # Poll no more until the keeper holds the lease again.
            self._committed.forget()
            self.keeper.distrust(self.name)
            log.warning("poller %s: lease lost; batch dropped", self.name)
            return None
        except Exception as exc:
            self._committed.forget()
            self._failed(exc)
            return None
        finally:
            self._last_ended = time.monotonic()
        self.cycles += 1
        if discover:
            self._next_discover = started + DISCOVER_EVERY * self.entry.interval
        self._failures = 0
        self._last_success = succeeded_at[0]
        self._next_due = started + self.entry.interval
        log.debug("poller %s: %d events, %d applied", self.name, report.events, report.applied)
        return report

    def _failed(self, exc: Exception) -> None:
        self._failures += 1
        delay = backoff_s(self.entry.interval, self._failures, self.rng)
        self._next_due = time.monotonic() + delay
        message = self.config.redact(describe_error(exc))
        if isinstance(exc, SourceError):
            log.warning("poller %s: %s (retry in %.1fs)", self.name, message, delay)
        else:
            log.error(
                "poller %s: unexpected %s (retry in %.1fs)\n%s",
                self.name,
                message,
                delay,
                self.config.redact("".join(traceback.format_exception(exc))),
            )
        if self.keeper.holds(self.name):
            status.record_failure(
                self.engine,
                self.config,
                source=self.name,
                kind=self.entry.kind,
                interval_s=self.entry.interval,
                holder=self.keeper.holder,
                error=message,
                consecutive_failures=self._failures,
                last_success_at=self._last_success,
                now=datetime.now(UTC),
            )

    def close(self) -> None:
        if self._wakeup_set and isinstance(self.adapter, WakingAdapter):
            self.adapter.set_wakeup(None)
            self._wakeup_set = False
        closer = getattr(self.adapter, "close", None)
        if self.owns_adapter and callable(closer):
            try:
                closer()
            except Exception as exc:
                log.warning("poller %s: close failed: %s", self.name, self.config.redact(str(exc)))
