"""The Lambda source: discovery, incremental log polling, control and pushes.

`LambdaAdapter` implements `Adapter`, `ControlAdapter` and `WebhookAdapter`.
The function list (and so the set of log groups) is cached between
discoveries: `poll` rediscovers only when the cache is older than
`options.discover_interval_s` (default 600), returning the fresh jobs in
`PollResult.jobs`. All AWS calls share one rate limiter (see `clients`).

Options besides those of `clients`: `overlap_s` (late-delivery window, default
120), `lookback_s` (how far back a first poll reads, default 3600),
`concurrency` (log groups read in parallel, default 4), `discover_interval_s`,
`destinations` / `scheduler` (read destinations / Scheduler schedules, default
true).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from adapters.aws_lambda.clients import AwsClients, build_clients
from adapters.aws_lambda.control import pause_schedules, resume_schedules
from adapters.aws_lambda.discover import Discovery, discover
from adapters.aws_lambda.logs import LogReader, log_groups_for
from adapters.aws_lambda.webhook import destination_events
from gateway.contract import (
    ControlReceipt,
    JobSpec,
    PollResult,
    RunEvent,
    SourceConfig,
    SourceError,
)
from gateway.states import StateMap, default_state_map


def _seconds(config: SourceConfig, name: str, default: float) -> float:
    value = config.options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise SourceError(
            config.name,
            f"options.{name} must be a number of seconds, got {value!r}",
            retryable=False,
        )
    return float(value)


class LambdaAdapter:
    kind = "lambda"

    def __init__(
        self,
        config: SourceConfig,
        *,
        clients: AwsClients | None = None,
        states: StateMap | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.name = config.name
        self.config = config
        self.clients = clients or build_clients(config)
        self.states = states or default_state_map()
        self._clock = clock
        options = config.options
        self.discover_interval_s = _seconds(config, "discover_interval_s", 600)
        concurrency = options.get("concurrency", 4)
        if not isinstance(concurrency, int) or concurrency < 1:
            raise SourceError(
                config.name,
                f"options.concurrency must be a positive integer, got {concurrency!r}",
                retryable=False,
            )
        self.reader = LogReader(
            self.clients,
            source=config.name,
            states=self.states,
            overlap_ms=int(_seconds(config, "overlap_s", 120) * 1000),
            lookback_ms=int(_seconds(config, "lookback_s", 3600) * 1000),
            concurrency=concurrency,
        )
        self._with_destinations = bool(options.get("destinations", True))
        self._with_scheduler = bool(options.get("scheduler", True))
        self._discovery: Discovery | None = None
        self._discovered_at = 0.0
        self._lock = threading.Lock()

    def discover(self) -> list[JobSpec]:
        found = discover(
            self.clients,
            source=self.name,
            destinations=self._with_destinations,
            scheduler=self._with_scheduler,
        )
        with self._lock:
            self._discovery = found
            self._discovered_at = time.monotonic()
        return found.jobs

    def poll(self, cursor: str | None) -> PollResult:
        jobs = None
        with self._lock:
            stale = (
                self._discovery is None
                or time.monotonic() - self._discovered_at >= self.discover_interval_s
            )
        if stale:
            jobs = self.discover()
        assert self._discovery is not None
        groups = log_groups_for(self._discovery.log_groups)
        events, new_cursor = self.reader.read(groups, cursor, now=self._clock())
        return PollResult(events=events, cursor=new_cursor, jobs=jobs)

    def pause(self, job_key: str) -> ControlReceipt:
        return pause_schedules(self.clients, job_key)

    def resume(self, job_key: str, receipt: ControlReceipt | None = None) -> None:
        resume_schedules(self.clients, job_key, receipt)

    def webhook_events(self, payload: Any) -> list[RunEvent]:
        return destination_events(payload, source=self.name)
