"""The Kestra source: polls executions into the trace model, discovers flows.

Options (`sources[].options` in `switchyard.yaml`):

- `url` (required): the Kestra server base URL; `ui_url` for deep links
  (default: `url`); `tenant` (default `main`).
- `token`, or `username` + `password`.
- `namespace`: only flows/executions in this namespace and below.
- `overlap` (default `120s`): how far each poll re-reads behind its watermark.
- `lookback` (default `24h`): how far back the first poll reads.
- `page_size` (default 100), `max_pages` (default 20) per poll.

Cursor (opaque JSON): `since`, the start date below which every execution
is known to be finished, and `seen`, the fingerprint of each finished
execution in the overlap window, so re-read executions are not re-emitted.
The watermark never passes an execution that is still running.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.kestra import normalize
from adapters.kestra.client import KestraApi, KestraApiError
from gateway.contract import JobSpec, PollResult, RunEvent, SourceConfig, SourceError
from gateway.states import StateMap, default_state_map

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def _duration_s(source: str, name: str, value: Any, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"source {source!r}: options.{name} must be a duration like 120s or 5m")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _fingerprint(execution: dict[str, Any]) -> str:
    state = execution.get("state") or {}
    return f"{state.get('current')}:{len(state.get('histories') or [])}"


class KestraAdapter:
    kind = "kestra"

    def __init__(
        self,
        config: SourceConfig,
        *,
        api: KestraApi | None = None,
        states: StateMap | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        options: Mapping[str, Any] = config.options
        url = options.get("url")
        if not url:
            raise ValueError(f"source {config.name!r}: options.url is required")
        self.name = config.name
        self.url = str(url)
        self.ui_url = str(options.get("ui_url") or url)
        self.tenant = str(options.get("tenant", "main"))
        self.namespace = options.get("namespace")
        self.overlap_s = _duration_s(config.name, "overlap", options.get("overlap"), 120.0)
        self.lookback_s = _duration_s(config.name, "lookback", options.get("lookback"), 86400.0)
        self.page_size = int(options.get("page_size", 100))
        self.max_pages = int(options.get("max_pages", 20))
        self.states = states or default_state_map()
        self.clock = clock
        self._api = api
        self._options = options

    @property
    def api(self) -> KestraApi:
        if self._api is None:
            self._api = KestraApi(
                self.url,
                tenant=self.tenant,
                token=self._options.get("token"),
                username=self._options.get("username"),
                password=self._options.get("password"),
            )
        return self._api

    def _source_error(self, exc: KestraApiError) -> SourceError:
        return SourceError(self.name, str(exc), retryable=exc.retryable)

    def discover(self) -> list[JobSpec]:
        jobs: list[JobSpec] = []
        try:
            for page in range(1, self.max_pages + 1):
                flows, total = self.api.search_flows(
                    namespace=self.namespace, page=page, size=self.page_size
                )
                jobs += [
                    normalize.flow_job(self.name, f, ui_base=self.ui_url, tenant=self.tenant)
                    for f in flows
                ]
                if not flows or len(jobs) >= total:
                    break
        except KestraApiError as exc:
            raise self._source_error(exc) from exc
        return jobs

    def poll(self, cursor: str | None) -> PollResult:
        now = self.clock()
        since, seen = self._read_cursor(cursor, now)
        window_start = since - timedelta(seconds=self.overlap_s)
        events: list[RunEvent] = []
        open_starts: list[datetime] = []
        newest = since
        new_seen: dict[str, str] = {}
        try:
            for page in range(1, self.max_pages + 1):
                batch, _total = self.api.search_executions(
                    namespace=self.namespace,
                    since=window_start,
                    page=page,
                    size=self.page_size,
                    sort="state.startDate:asc",
                )
                for light in batch:
                    start = normalize._dt((light.get("state") or {}).get("startDate")) or now
                    newest = max(newest, start)
                    fingerprint = _fingerprint(light)
                    finished = (light.get("state") or {}).get(
                        "current"
                    ) in normalize.TERMINAL_NATIVE
                    if finished:
                        new_seen[light["id"]] = fingerprint
                    else:
                        open_starts.append(start)
                    if seen.get(light["id"]) == fingerprint:
                        continue  # finished and already emitted in an earlier poll
                    # The search form has no task runs (Kestra 2.0); read the execution.
                    full = self.api.get_execution(light["id"])
                    events += normalize.execution_events(
                        self.name,
                        full,
                        states=self.states,
                        observed_at=now,
                        ui_base=self.ui_url,
                        tenant=self.tenant,
                    )
                if len(batch) < self.page_size:
                    break
        except KestraApiError as exc:
            raise self._source_error(exc) from exc
        watermark = min(open_starts) if open_starts else newest
        # The next window starts at watermark - overlap ≥ this window's start, so
        # this window's finished executions are all the fingerprints it needs.
        new_cursor = json.dumps(
            {"since": watermark.isoformat(), "seen": dict(sorted(new_seen.items()))},
            separators=(",", ":"),
        )
        return PollResult(events=events, cursor=new_cursor)

    def _read_cursor(self, cursor: str | None, now: datetime) -> tuple[datetime, dict[str, str]]:
        if not cursor:
            return now - timedelta(seconds=self.lookback_s), {}
        try:
            data = json.loads(cursor)
            since = datetime.fromisoformat(data["since"])
            seen = {str(k): str(v) for k, v in (data.get("seen") or {}).items()}
        except (ValueError, KeyError, TypeError) as exc:
            raise SourceError(
                self.name, f"unreadable cursor {cursor[:80]!r}", retryable=False
            ) from exc
        return since, seen


def create(config: SourceConfig) -> KestraAdapter:
    return KestraAdapter(config)
