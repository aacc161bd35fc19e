"""Incremental poll of one Airflow: DAG runs and task tries changed since a watermark.

What one cycle does, and why it is safe:

1. The cursor holds a watermark ``since`` (the server's clock). Both list
   endpoints are read across all DAGs (``~``) with ``updated_at_gte=since``,
   ordered by ``id`` and paged at 100 — by keyset cursor where the server
   offers one (Airflow 3.3), else by offset. Ordering by the primary key, not
   by ``updated_at``, keeps paging stable while rows change underneath: a row
   updated mid-read keeps its place, so nothing is skipped; a row that enters
   the window mid-read is read now or next cycle.
2. The new watermark is the server's ``Date`` at the *first* response of the
   cycle minus ``overlap_s`` (default 120 s): every row committed after that
   instant is re-read next cycle, including rows whose transaction was still
   open while we paged. An idle cycle is therefore two requests (one page of
   each list, usually empty or a few overlap rows), however many DAGs exist.
3. Rows re-read in the overlap are dropped when nothing about them changed
   (an in-memory fingerprint per key), but only while the gateway keeps handing
   back the cursor this poller last returned — proof the last result was
   committed. Any other cursor (a failed commit, a restart, another replica)
   clears the memory, so the re-read is sent again; the idempotent merge
   absorbs it.
4. A task instance row is only its latest try. When a row shows try N > 1 the
   earlier tries are read once from ``…/tries`` so each becomes its own span
   with Airflow's final state for it.
5. A failed try's log is read once (bounded bytes, tail kept) and its last
   meaningful error line becomes the try's error message; a log that cannot be
   read leaves the error without a message rather than failing the poll.
6. Any failure of the list reads raises `SourceError` before anything is
   returned, so the stored cursor does not move and the next cycle catches up.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.airflow import normalize
from adapters.airflow.client import PAGE_LIMIT, AirflowClient, Page, iter_pages
from adapters.airflow.logs import error_from_log, records_from_lines
from gateway.contract import ErrorInfo, PollResult, RunEvent, RunKind, SourceError
from gateway.states import StateMap

CURSOR_VERSION = 1
_MAX_REMEMBERED = 500_000
_FINAL_TRY_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})


def encode_cursor(since: datetime, seq: int = 0) -> str:
    return json.dumps({"v": CURSOR_VERSION, "since": since.astimezone(UTC).isoformat(), "seq": seq})


def decode_cursor(source: str, cursor: str | None) -> datetime | None:
    if not cursor:
        return None
    try:
        data = json.loads(cursor)
        since = normalize.parse_time(data["since"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SourceError(
            source, f"stored cursor is not an Airflow cursor: {cursor[:80]!r}", retryable=False
        ) from exc
    return since


class Poller:
    def __init__(
        self,
        client: AirflowClient,
        *,
        source: str,
        states: StateMap,
        overlap_s: float = 120.0,
        lookback_s: float | None = None,
        base_url: str | None = None,
        ol_namespace: str = "default",
        fetch_logs: bool = True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.source = source
        self.states = states
        self.overlap = timedelta(seconds=overlap_s)
        self.lookback = timedelta(seconds=lookback_s) if lookback_s else None
        self.base_url = base_url
        self.ol_namespace = ol_namespace
        self.fetch_logs = fetch_logs
        self.clock = clock
        self._fingerprints: OrderedDict[str, tuple[Any, ...]] = OrderedDict()
        self._tries_known: set[tuple[str, int]] = set()
        self._errors: dict[str, ErrorInfo] = {}
        self._seq = 0
        self._last_cursor: str | None = None

    # -- reading -------------------------------------------------------------
    def _read_all(
        self, fetch: Callable[..., Page], since: datetime | None
    ) -> tuple[list[dict[str, Any]], datetime | None]:
        items: dict[str, dict[str, Any]] = {}
        first_time: datetime | None = None
        for page in iter_pages(lambda **kw: fetch(updated_since=since, **kw), PAGE_LIMIT):
            if first_time is None:
                first_time = page.server_time
            for item in page.items:
                items[self._identity(item)] = item  # a repeated row keeps its latest read
        return list(items.values()), first_time

    @staticmethod
    def _identity(item: Mapping[str, Any]) -> str:
        if "task_id" in item:
            return normalize.task_try_key(item)
        return normalize.dag_run_key(
            str(item["dag_id"]), str(item.get("dag_run_id") or item.get("run_id"))
        )

    def poll(self, cursor: str | None) -> PollResult:
        since = decode_cursor(self.source, cursor)
        if cursor is None or cursor != self._last_cursor:
            # The previous result was not committed (or another replica polled):
            # what we remember having sent may never have landed, so forget it.
            self._fingerprints.clear()
        cycle_start = self.clock()
        if since is None and self.lookback is not None:
            since = cycle_start - self.lookback
        runs, server_time = self._read_all(self.client.list_dag_runs, since)
        tis, _ = self._read_all(self.client.list_task_instances, since)
        observed_at = self.clock()
        start = server_time or cycle_start
        new_since = start - self.overlap
        if since is not None and new_since < since:
            new_since = since

        events: list[RunEvent] = []
        failed_message: dict[str, str] = {}
        for ti in tis:
            for event in self._task_events(ti, observed_at):
                events.append(event)
                if event.error and event.error.message and event.parent_key:
                    failed_message.setdefault(event.parent_key, event.error.message)
        for run in runs:
            key = normalize.dag_run_key(
                str(run["dag_id"]), str(run.get("dag_run_id") or run.get("run_id"))
            )
            events.append(
                normalize.dag_run_event(
                    self.source,
                    run,
                    observed_at=observed_at,
                    states=self.states,
                    base_url=self.base_url,
                    ol_namespace=self.ol_namespace,
                    error_message=failed_message.get(key),
                )
            )
        fresh = [e for e in events if self._is_new(e)]
        fresh.sort(key=_change_order)
        self._seq += 1
        self._last_cursor = encode_cursor(new_since, self._seq)
        return PollResult(events=fresh, cursor=self._last_cursor)

    # -- task tries ------------------------------------------------------------
    def _task_events(self, ti: dict[str, Any], observed_at: datetime) -> list[RunEvent]:
        out: list[RunEvent] = []
        try_number = int(ti.get("try_number") or 0)
        map_index = int(ti["map_index"]) if ti.get("map_index") is not None else -1
        base = "/".join(
            (
                str(ti["dag_id"]),
                str(ti.get("dag_run_id") or ti.get("run_id")),
                str(ti["task_id"]),
                str(map_index),
            )
        )
        if try_number > 1 and (base, try_number) not in self._tries_known:
            earlier = self._earlier_tries(ti, map_index, try_number)
            for payload in earlier:
                event = self._try_event(payload, observed_at)
                if event:
                    out.append(event)
            if all(p.get("state") in _FINAL_TRY_STATES for p in earlier):
                self._tries_known.add((base, try_number))
        event = self._try_event(ti, observed_at)
        if event:
            out.append(event)
        return out

    def _earlier_tries(
        self, ti: Mapping[str, Any], map_index: int, try_number: int
    ) -> list[dict[str, Any]]:
        tries = self.client.task_tries(
            str(ti["dag_id"]),
            str(ti.get("dag_run_id") or ti.get("run_id")),
            str(ti["task_id"]),
            map_index,
        )
        earlier = []
        for entry in tries:
            if int(entry.get("try_number") or 0) < try_number:
                merged = dict(entry)
                merged.setdefault("dag_run_id", ti.get("dag_run_id") or ti.get("run_id"))
                merged.setdefault("map_index", map_index)
                for date_field in ("logical_date", "execution_date", "run_after"):
                    if ti.get(date_field) is not None:
                        merged.setdefault(date_field, ti[date_field])
                earlier.append(merged)
        return earlier

    def _try_event(self, payload: Mapping[str, Any], observed_at: datetime) -> RunEvent | None:
        error = None
        if (
            payload.get("state") in normalize.FAILED_TRY_STATES
            and int(payload.get("try_number") or 0) > 0
        ):
            error = self._failure_error(payload)
        return normalize.task_try_event(
            self.source,
            payload,
            observed_at=observed_at,
            states=self.states,
            base_url=self.base_url,
            ol_namespace=self.ol_namespace,
            error=error,
        )

    def _failure_error(self, payload: Mapping[str, Any]) -> ErrorInfo:
        key = normalize.task_try_key(payload)
        if key in self._errors:
            return self._errors[key]
        fallback = ErrorInfo(kind="task_failed")
        if not self.fetch_logs:
            return fallback
        map_index = int(payload["map_index"]) if payload.get("map_index") is not None else -1
        try:
            lines = self.client.log_lines(
                str(payload["dag_id"]),
                str(payload.get("dag_run_id") or payload.get("run_id")),
                str(payload["task_id"]),
                map_index,
                int(payload["try_number"]),
            )
        except SourceError as exc:
            if exc.retryable:
                return fallback  # try the log again when the row is next seen
            lines = []
        found = error_from_log(records_from_lines(lines)) or fallback
        self._errors[key] = found
        return found

    # -- dedupe ------------------------------------------------------------------
    def _is_new(self, event: RunEvent) -> bool:
        fingerprint = (
            event.state,
            event.started_at,
            event.ended_at,
            event.error.message if event.error else None,
        )
        if self._fingerprints.get(event.key) == fingerprint:
            self._fingerprints.move_to_end(event.key)
            return False
        self._fingerprints[event.key] = fingerprint
        self._fingerprints.move_to_end(event.key)
        while len(self._fingerprints) > _MAX_REMEMBERED:
            self._fingerprints.popitem(last=False)
        return True


def _change_order(event: RunEvent) -> tuple[datetime, int]:
    # Source order as best the API shows it: last change time, runs before their tries.
    when = event.ended_at or event.started_at or event.observed_at
    return (when, 0 if event.kind is RunKind.run else 1)
