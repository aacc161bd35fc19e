"""Incremental reading of Lambda log groups into invocation `RunEvent`s.

One `filter_log_events` query (plus its pages) per log group per poll, from
the older of that group's watermark and `now - overlap`, because CloudWatch
delivers late: an event may become readable after newer ones were already
read, up to the ingestion lag the overlap allows for. Every
event in the overlap that was already seen is dropped by its `eventId`, so a
repeat never becomes a second observation; a late event inside the window is
picked up. A group that many functions share is read once for all of them.

The cursor is JSON::

    {"v": 1, "groups": {"<log group>": {
        "ts": <watermark: newest event timestamp, epoch ms>,
        "ids": {"<timestamp>": ["<eventId digest>", ...]},  # seen, inside the overlap
        "open": {"<request id>": {...Invocation...}},  # started, not yet reported
        "owners": {"<stream>": "<request id>"},        # invocation open per stream
        "done": {"<request id digest>": [<attempt>, <timestamp>]}}}}  # for async retries

Seen events are remembered by a 48-bit digest of their `eventId` (AWS ids are
56 digits), grouped by timestamp, which keeps the cursor about five times
smaller; a false match inside one overlap window of a million events has a
probability of about 4e-3 · (events/10^6)^2. An invocation leaves the cursor with
its REPORT into `done` for 20 minutes: Lambda writes nothing more for that try,
but an async retry (1 and 2 minutes later by default) reuses the request id and
becomes the next `attempt` of the same run.

A log group that no longer exists (its function was deleted) is dropped from
the cursor without failing the poll.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from adapters.aws_lambda.clients import AwsClients, error_code, source_error
from adapters.aws_lambda.normalize import (
    FoldState,
    Invocation,
    LogEvent,
    fold_log_events,
    invocation_event,
)
from gateway.contract import RunEvent, SourceError
from gateway.states import StateMap

CURSOR_VERSION = 1
# An invocation may run 15 minutes and async retries follow within minutes; an open
# invocation whose report never came, or a reported one, is forgotten after this.
OPEN_INVOCATION_TTL_MS = 20 * 60 * 1000


def event_digest(event_id: str) -> str:
    return hashlib.blake2b(event_id.encode(), digest_size=6).hexdigest()


@dataclass
class GroupCursor:
    ts: int | None = None
    ids: dict[str, int] = field(default_factory=dict)  # event digest -> timestamp
    fold: FoldState = field(default_factory=FoldState)

    def to_json(self) -> dict[str, Any]:
        by_ts: dict[str, list[str]] = {}
        for digest, ts in sorted(self.ids.items(), key=lambda kv: (kv[1], kv[0])):
            by_ts.setdefault(str(ts), []).append(digest)
        return {
            "ts": self.ts,
            "ids": by_ts,
            "open": {rid: inv.to_json() for rid, inv in self.fold.invocations.items()},
            "owners": {k.split("\n", 1)[1]: v for k, v in self.fold.stream_owner.items()},
            "done": {d: list(v) for d, v in self.fold.done.items()},
        }

    @classmethod
    def from_json(cls, group: str, data: Mapping[str, Any]) -> GroupCursor:
        ts = data.get("ts")
        ids = data.get("ids", {})
        if (ts is not None and not isinstance(ts, int)) or not isinstance(ids, dict):
            raise ValueError(f"cursor for log group {group!r} has a bad ts or ids")
        fold = FoldState(
            invocations={
                rid: Invocation.from_json(inv) for rid, inv in dict(data.get("open", {})).items()
            },
            stream_owner={
                f"{group}\n{stream}": rid for stream, rid in dict(data.get("owners", {})).items()
            },
            done={str(d): (int(a), int(t)) for d, (a, t) in dict(data.get("done", {})).items()},
        )
        seen = {str(d): int(t) for t, digests in ids.items() for d in digests}
        return cls(ts=ts, ids=seen, fold=fold)


def load_cursor(source: str, cursor: str | None) -> dict[str, GroupCursor]:
    if cursor is None:
        return {}
    try:
        data = json.loads(cursor)
        if not isinstance(data, dict) or data.get("v") != CURSOR_VERSION:
            raise ValueError(f"expected a version {CURSOR_VERSION} cursor object")
        groups = data.get("groups", {})
        if not isinstance(groups, dict):
            raise ValueError("groups must be an object")
        return {g: GroupCursor.from_json(g, c) for g, c in groups.items()}
    except (ValueError, TypeError, AttributeError) as exc:
        raise SourceError(source, f"stored cursor is not readable: {exc}", retryable=False) from exc


def dump_cursor(groups: Mapping[str, GroupCursor]) -> str:
    return json.dumps(
        {"v": CURSOR_VERSION, "groups": {g: c.to_json() for g, c in sorted(groups.items())}},
        separators=(",", ":"),
    )


@dataclass(frozen=True)
class GroupRead:
    group: str
    cursor: GroupCursor | None  # None: the group is gone
    events: list[RunEvent]


class LogReader:
    """Reads log groups incrementally and folds their lines into invocations."""

    def __init__(
        self,
        clients: AwsClients,
        *,
        source: str,
        states: StateMap,
        overlap_ms: int = 120_000,
        lookback_ms: int = 3_600_000,
        concurrency: int = 4,
    ) -> None:
        self.clients = clients
        self.source = source
        self.states = states
        self.overlap_ms = overlap_ms
        self.lookback_ms = lookback_ms
        self.concurrency = max(1, concurrency)

    def read(
        self,
        groups: Mapping[str, str | None],
        cursor: str | None,
        *,
        now: datetime,
    ) -> tuple[list[RunEvent], str]:
        """Events since `cursor` for every group (group → its function, None if shared)."""
        previous = load_cursor(self.source, cursor)
        order = sorted(groups)

        def one(group: str) -> GroupRead:
            return self._read_group(group, groups[group], previous.get(group), now)

        if self.concurrency == 1 or len(order) <= 1:
            results = [one(g) for g in order]
        else:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="lambda-logs") as pool:
                results = list(pool.map(one, order))
        events: list[RunEvent] = []
        merged: dict[str, GroupCursor] = {}
        for result in results:
            events.extend(result.events)
            if result.cursor is not None:
                merged[result.group] = result.cursor
        # A group no longer read keeps its cursor while a returning function's
        # first read would otherwise re-read what was already seen (the look-back).
        horizon = int(now.timestamp() * 1000) - self.lookback_ms
        for group, old in previous.items():
            if group not in groups and (old.ts or 0) >= horizon:
                merged[group] = old
        events.sort(key=lambda e: (e.ended_at or e.started_at or e.observed_at, e.key))
        return events, dump_cursor(merged)

    def _filter(self, group: str, start_ms: int) -> list[dict[str, Any]] | None:
        out: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"logGroupName": group, "startTime": start_ms}
        try:
            while True:
                page = self.clients.logs.filter_log_events(**kwargs)
                out.extend(page.get("events", []))
                token = page.get("nextToken")
                if not token or token == kwargs.get("nextToken"):
                    return out
                kwargs["nextToken"] = token
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise source_error(self.source, exc, f"reading log group {group}") from exc
        except BotoCoreError as exc:
            raise source_error(self.source, exc, f"reading log group {group}") from exc

    def _read_group(
        self, group: str, function: str | None, gc: GroupCursor | None, now: datetime
    ) -> GroupRead:
        gc = gc or GroupCursor()
        now_ms = int(now.timestamp() * 1000)
        # Late delivery is bounded by wall-clock lag, so re-read back to `now - overlap`
        # (or from the watermark itself when that is older: a quiet group re-reads nothing).
        recent = now_ms - self.overlap_ms
        start = now_ms - self.lookback_ms if gc.ts is None else min(gc.ts, recent)
        raw = self._filter(group, max(0, start))
        if raw is None:
            return GroupRead(group, None, [])
        fresh = [
            LogEvent(
                group=group,
                stream=e.get("logStreamName", ""),
                event_id=str(e["eventId"]),
                timestamp_ms=int(e["timestamp"]),
                message=e.get("message", ""),
            )
            for e in raw
            if event_digest(str(e.get("eventId"))) not in gc.ids
        ]
        # One execution environment writes one stream in order; keep that order.
        fresh.sort(key=lambda e: (e.stream, e.timestamp_ms, _id_order(e.event_id)))
        touched = fold_log_events(
            fresh,
            gc.fold,
            {group: function} if function else None,
        )
        events = [
            invocation_event(
                gc.fold.invocations[rid],
                source=self.source,
                observed_at=now,
                states=self.states,
                region=self.clients.region,
            )
            for rid in touched
        ]
        if gc.ts is None and not fresh:
            # Nothing ever seen: anything older than the overlap can no longer arrive.
            ts = max(0, start, recent)
        else:
            ts = max([gc.ts or 0, *(e.timestamp_ms for e in fresh)])
        horizon = min(ts, recent)
        ids = {i: t for i, t in gc.ids.items() if t >= horizon}
        ids.update(
            {event_digest(e.event_id): e.timestamp_ms for e in fresh if e.timestamp_ms >= horizon}
        )
        gc.fold.settle(recent, OPEN_INVOCATION_TTL_MS)  # retries follow by wall clock
        return GroupRead(group, GroupCursor(ts=ts, ids=ids, fold=gc.fold), events)


def _id_order(event_id: str) -> tuple[int, str]:
    return (int(event_id), "") if event_id.isdigit() else (0, event_id)


def log_groups_for(log_groups: Mapping[str, str]) -> dict[str, str | None]:
    """group → its function, or None when several functions share the group."""
    owners: dict[str, set[str]] = {}
    for fn, group in log_groups.items():
        owners.setdefault(group, set()).add(fn)
    return {g: (next(iter(fns)) if len(fns) == 1 else None) for g, fns in owners.items()}


__all__: Sequence[str] = ["LogReader", "dump_cursor", "load_cursor", "log_groups_for"]
