"""A test adapter whose source is a deterministic script, able to fail on demand.

The source's history is an endless, fixed sequence of events: event `i` is
run `run-{i // 2}` going `running` (even `i`) then `succeeded` (odd `i`), with
timestamps derived from `i` alone, so the same script always yields the same
events (and the same digests). The cursor is the index of the next event.

What a poll sees is bounded by `available` (events the source has "produced"
so far) and `max_batch` (page size); `per_poll > 0` makes the source produce
that many new events before every poll, so a long-running gateway keeps
finding work.

Failing on demand, in process: `fail(times=n, message=…)` (a `SourceError`),
`fail(times=n, unexpected=True)` (a `RuntimeError`), `heal()`. Across
processes: the option `fail_file` names a file whose existence makes every
poll raise a `SourceError` carrying its text. The option `poll_log` names a
file to which every poll appends one line `pid<TAB>cursor<TAB>monotonic_ns`,
so a test can see which process polled which source.

Registered under the `switchyard.adapters` entry-point group as `scripted` by
`write_entry_point_dist` (a dist-info in a temporary directory), never in the
project's own metadata.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.contract import JobSpec, PollResult, RunEvent, SourceConfig, SourceError, State

BASE = datetime(2026, 1, 1, tzinfo=UTC)
JOB_KEY = "scripted-job"


def scripted_event(source: str, i: int, *, base: datetime = BASE) -> RunEvent:
    """Event `i` of the script for `source` (pure)."""
    run = i // 2
    started = base + timedelta(seconds=run)
    if i % 2 == 0:
        return RunEvent(
            source=source,
            key=f"run-{run}",
            job=JOB_KEY,
            name=f"run {run}",
            state=State.running,
            started_at=started,
            observed_at=started,
        )
    return RunEvent(
        source=source,
        key=f"run-{run}",
        job=JOB_KEY,
        name=f"run {run}",
        state=State.succeeded,
        started_at=started,
        ended_at=started + timedelta(milliseconds=500),
        observed_at=started + timedelta(milliseconds=500),
    )


class ScriptedAdapter:
    """The scripted source; see the module docstring."""

    kind = "scripted"

    def __init__(
        self,
        name: str,
        *,
        available: int = 0,
        max_batch: int = 100,
        per_poll: int = 0,
        base: datetime = BASE,
        fail_file: str | None = None,
        poll_log: str | None = None,
        secret: str | None = None,
    ) -> None:
        self.name = name
        self.available = available
        self.max_batch = max_batch
        self.per_poll = per_poll
        self.base = base
        self.fail_file = Path(fail_file) if fail_file else None
        self.poll_log = Path(poll_log) if poll_log else None
        self.secret = secret
        self.polls = 0
        self.discoveries = 0
        self.cursors_seen: list[str | None] = []
        self._fail_times = 0
        self._fail_message = "source unreachable"
        self._fail_unexpected = False
        self._lock = threading.Lock()
        self.closed = False

    # -- controls ----------------------------------------------------------
    def publish(self, n: int) -> None:
        """The source produces `n` more events."""
        with self._lock:
            self.available += n

    def fail(self, times: int = 1_000_000, *, message: str = "", unexpected: bool = False) -> None:
        with self._lock:
            self._fail_times = times
            self._fail_message = message or "source unreachable"
            self._fail_unexpected = unexpected

    def heal(self) -> None:
        with self._lock:
            self._fail_times = 0

    # -- the Adapter protocol ----------------------------------------------
    def discover(self) -> list[JobSpec]:
        self._maybe_fail()
        with self._lock:
            self.discoveries += 1
        return [
            JobSpec(source=self.name, key=JOB_KEY, kind="job", name="scripted job", schedule=None)
        ]

    def poll(self, cursor: str | None) -> PollResult:
        with self._lock:
            self.polls += 1
            self.cursors_seen.append(cursor)
        if self.poll_log is not None:
            line = f"{os.getpid()}\t{cursor}\t{time.monotonic_ns()}\n".encode()
            fd = os.open(self.poll_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        self._maybe_fail()
        start = int(cursor) if cursor else 0
        with self._lock:
            if self.per_poll:
                self.available = max(self.available, start) + self.per_poll
            end = min(self.available, start + self.max_batch)
        events = [scripted_event(self.name, i, base=self.base) for i in range(start, end)]
        return PollResult(events=events, cursor=str(max(start, end)))

    def close(self) -> None:
        self.closed = True

    def _maybe_fail(self) -> None:
        if self.fail_file is not None and self.fail_file.exists():
            raise SourceError(self.name, self.fail_file.read_text().strip() or "failing")
        with self._lock:
            if self._fail_times <= 0:
                return
            self._fail_times -= 1
            message, unexpected = self._fail_message, self._fail_unexpected
        if unexpected:
            raise RuntimeError(message)
        raise SourceError(self.name, message)


def create(config: SourceConfig) -> ScriptedAdapter:
    """Entry-point factory: options `available`, `max_batch`, `per_poll`,
    `fail_file`, `poll_log`, `secret`."""
    o = config.options
    unknown = set(o) - {"available", "max_batch", "per_poll", "fail_file", "poll_log", "secret"}
    if unknown:
        raise ValueError(f"{config.name}: unknown scripted options {sorted(unknown)}")
    return ScriptedAdapter(
        config.name,
        available=int(o.get("available", 0)),
        max_batch=int(o.get("max_batch", 100)),
        per_poll=int(o.get("per_poll", 0)),
        fail_file=o.get("fail_file"),
        poll_log=o.get("poll_log"),
        secret=o.get("secret"),
    )


def write_entry_point_dist(directory: Path) -> Path:
    """Write a dist-info registering `scripted` under `switchyard.adapters`.

    Put `directory` on `sys.path` (or `PYTHONPATH` of a subprocess) and
    `importlib.metadata` finds the entry point like any installed package's.
    """
    dist = directory / "switchyard_test_adapters-0.0.0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: switchyard-test-adapters\nVersion: 0.0.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[switchyard.adapters]\nscripted = tests.fakes.scripted_adapter:create\n"
    )
    return dist


@contextmanager
def scripted_kind_registered(directory: Path) -> Iterator[Path]:
    """Within the block, `kind: scripted` is an installed adapter kind."""
    write_entry_point_dist(directory)
    sys.path.insert(0, str(directory))
    try:
        yield directory
    finally:
        sys.path.remove(str(directory))
