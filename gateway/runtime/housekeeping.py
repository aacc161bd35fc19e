"""Housekeeping: periodic whole-store tasks, run by one replica at a time.

Tasks are `(name, fn(engine, now) -> int)`; the number is what the task did
(rows pruned, verdicts written) and is only logged. The replica holding the
lease `HOUSEKEEPING_LEASE` runs every task once per housekeeping interval, in
order; a task that raises is logged (redacted) and the next one still runs.

The default list (`default_tasks`) is retention (`prune` with
`config.retention`, when set) and `gateway.expectations.check_expectations`
(missed and stuck runs), then incident notifications (`gateway.alerts`, with an
`alerts:` section), then, with an `otlp:` section, the OTLP export of
finished runs (`gateway.telemetry.export`). `Runtime(..., housekeeping=[...])`
replaces it.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from gateway.alerts import deliver_alerts
from gateway.config import Config
from gateway.expectations import check_expectations
from gateway.runtime.leases import LeaseKeeper
from gateway.runtime.retention import prune
from gateway.telemetry.export import OtlpExportTask

log = logging.getLogger(__name__)

# Source names cannot contain ':', so this lease never collides with a source's.
HOUSEKEEPING_LEASE = ":housekeeping"
DEFAULT_INTERVAL_S = 60.0


@dataclass(frozen=True)
class HousekeepingTask:
    name: str
    run: Callable[[Engine, datetime], int]


def default_tasks(config: Config) -> list[HousekeepingTask]:
    tasks: list[HousekeepingTask] = []
    retention = config.retention
    if retention is not None:
        tasks.append(
            HousekeepingTask("retention", lambda engine, now: prune(engine, retention, now=now))
        )
    tasks.append(HousekeepingTask("expectations", check_expectations))
    alerts = config.alerts
    if alerts.enabled:
        tasks.append(
            HousekeepingTask(
                "alerts",
                lambda engine, now: deliver_alerts(engine, alerts, now=now, redact=config.redact),
            )
        )
    if config.otlp is not None:
        tasks.append(HousekeepingTask(OtlpExportTask.name, OtlpExportTask(config)))
    return tasks


def run_tasks(
    engine: Engine,
    config: Config,
    tasks: Sequence[HousekeepingTask],
    *,
    now: datetime | None = None,
    still_held: Callable[[], bool] = lambda: True,
) -> dict[str, int | None]:
    """Run each task once; name → its count, or None if it raised."""
    now = now or datetime.now(UTC)
    done: dict[str, int | None] = {}
    for task in tasks:
        if not still_held():
            break
        try:
            done[task.name] = task.run(engine, now)
        except Exception:
            done[task.name] = None
            log.error(
                "housekeeping %s failed\n%s", task.name, config.redact(traceback.format_exc())
            )
    return done


class Housekeeper:
    """Runs the tasks every `interval_s` while this replica holds the lease."""

    def __init__(
        self,
        *,
        engine: Engine,
        config: Config,
        keeper: LeaseKeeper,
        stopping: threading.Event,
        tasks: Sequence[HousekeepingTask],
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        self.engine = engine
        self.config = config
        self.keeper = keeper
        self.stopping = stopping
        self.tasks = list(tasks)
        self.interval_s = interval_s
        self.wake = threading.Event()
        self.rounds = 0
        self.last_counts: dict[str, int | None] = {}
        self.thread = threading.Thread(target=self.run, name="housekeeping", daemon=True)

    def _held(self) -> bool:
        return not self.stopping.is_set() and self.keeper.holds(HOUSEKEEPING_LEASE)

    def run(self) -> None:
        while not self.stopping.is_set():
            if self._held():
                self.last_counts = run_tasks(
                    self.engine, self.config, self.tasks, still_held=self._held
                )
                self.rounds += 1
                wait = self.interval_s
            else:
                wait = self.keeper.renew_every_s
            self.wake.wait(wait)
            self.wake.clear()
