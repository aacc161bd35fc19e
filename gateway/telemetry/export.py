"""Cursor-driven OTLP export of finished runs, run by the housekeeping replica.

`export_finished_runs(engine, exporter, ...)` sends every run that reached a
finished state (or changed after it was sent) since the last call, as spans
(`gateway.telemetry.otlp`), through any SDK `SpanExporter` (the OTLP/HTTP one
in production, `InMemorySpanExporter` in tests).

Its position lives in `source_cursor` under `EXPORT_CURSOR` (source names
cannot contain ':', so it never collides with a source's cursor). Guarantees:

- **Nothing lost.** The position moves only after the exporter reported
  success for the spans it covers; a receiver that is down or refuses raises
  `OtlpExportFailed`, and the next call sends the same runs again.
- **No gap from commit order.** `run.updated_at` is the ingest clock, and
  transactions commit out of order, so a row can become visible with an
  `updated_at` below rows already sent. Each call re-reads from `OVERLAP_S`
  before the watermark and skips what the position remembers having sent
  (run id → `updated_at` for that window), so a late commit inside the window
  is caught and nothing inside it is sent twice. A run whose row changes
  after it was sent (enriched, trace re-adopted) is sent again with the same
  ids, so the receiver sees its latest version.
- **One writer.** The position is written by compare-and-set on its previous
  value: a replica that lost the housekeeping lease mid-export cannot move it
  back (it stops with `ExportPositionMoved`).
- **Hops.** A cross-source link (exact or declared) is sent as a CLIENT→SERVER
  pair once both of its runs have finished, with the batch holding the later one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from sqlalchemy.engine import Connection, Engine

from gateway.config import Config, OtlpSettings
from gateway.contract import LinkStrength, RunKind, State
from gateway.links import chunks, dialect_insert, one_of, table
from gateway.telemetry.otlp import (
    EXPORTABLE_STATES,
    RUN_COLUMNS,
    Hop,
    ResourceCatalog,
    RunRecord,
    caller_and_callee,
    spans_for,
)

log = logging.getLogger(__name__)

EXPORT_CURSOR = ":otlp-export"
OVERLAP_S = 300.0
PAGE_SIZE = 500
MAX_RUNS_PER_CALL = 20_000
HOP_STRENGTHS = (LinkStrength.exact.value, LinkStrength.declared.value)


class OtlpExportFailed(RuntimeError):
    """The exporter did not accept a batch; the position was not moved."""

    def __init__(self, destination: str, runs: int) -> None:
        super().__init__(
            f"OTLP export to {destination} failed for {runs} runs; they will be sent again"
        )
        self.destination = destination
        self.runs = runs


class ExportPositionMoved(RuntimeError):
    """Another replica moved the export position while this one was exporting."""


@dataclass
class ExportPosition:
    """Where the export stands: the newest `updated_at` sent, and what was sent
    in the overlap window below it (run id → its `updated_at`, ISO text)."""

    watermark: datetime | None = None
    sent: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: str | None) -> ExportPosition:
        if raw is None:
            return cls()
        try:
            data = json.loads(raw)
            watermark = datetime.fromisoformat(data["watermark"]) if data["watermark"] else None
            return cls(watermark=watermark, sent={str(k): str(v) for k, v in data["sent"].items()})
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{EXPORT_CURSOR}: unreadable export position: {exc}") from exc

    def dump(self) -> str:
        return json.dumps(
            {
                "watermark": self.watermark.isoformat() if self.watermark else None,
                "sent": dict(sorted(self.sent.items())),
            },
            separators=(",", ":"),
        )

    def low(self, overlap_s: float) -> datetime | None:
        return self.watermark - timedelta(seconds=overlap_s) if self.watermark else None

    def after(
        self, rows: Sequence[RunRecord], stamps: Sequence[datetime], overlap_s: float
    ) -> ExportPosition:
        watermark = max([*stamps, *([self.watermark] if self.watermark else [])])
        sent = dict(self.sent)
        sent.update({run.id: stamp.isoformat() for run, stamp in zip(rows, stamps, strict=True)})
        floor = watermark - timedelta(seconds=overlap_s)
        sent = {k: v for k, v in sent.items() if datetime.fromisoformat(v) >= floor}
        return ExportPosition(watermark=watermark, sent=sent)


def read_position(engine: Engine) -> str | None:
    cursor = table("source_cursor")
    with engine.connect() as conn:
        value: str | None = conn.scalar(
            sa.select(cursor.c.value).where(cursor.c.source == EXPORT_CURSOR)
        )
        return value


def _write_position(conn: Connection, old: str | None, new: str, now: datetime) -> bool:
    """Compare-and-set: write `new` only if the stored value is still `old`."""
    cursor = table("source_cursor")
    if old is None:
        stmt = dialect_insert(conn, cursor).values(source=EXPORT_CURSOR, value=new, updated_at=now)
        inserted = conn.execute(stmt.on_conflict_do_nothing().returning(cursor.c.source))
        return inserted.first() is not None
    result = conn.execute(
        cursor.update()
        .where(cursor.c.source == EXPORT_CURSOR, cursor.c.value == old)
        .values(value=new, updated_at=now)
    )
    return result.rowcount == 1


def source_kinds(engine: Engine, configured: Mapping[str, str]) -> dict[str, str]:
    """Source name → kind: the configuration first, then the `source` table."""
    source = table("source")
    with engine.connect() as conn:
        kinds = {name: kind for name, kind in conn.execute(sa.select(source.c.name, source.c.kind))}
    kinds.update(configured)
    return kinds


def _finished(run: sa.Table) -> sa.ColumnElement[bool]:
    """Spans that are over: terminal runs, and tries that failed and will be
    retried (the retry is a new span). A task or run waiting for a retry is not."""
    terminal = [s.value for s in EXPORTABLE_STATES if s is not State.up_for_retry]
    return sa.or_(
        run.c.state.in_(terminal),
        sa.and_(run.c.state == State.up_for_retry.value, run.c.kind == RunKind.attempt.value),
    )


def _page(
    conn: Connection, low: datetime | None, after: tuple[datetime, str] | None, limit: int
) -> list[tuple[RunRecord, datetime]]:
    run = table("run")
    query = sa.select(*(run.c[c] for c in RUN_COLUMNS), run.c.updated_at).where(
        _finished(run), run.c.updated_at.is_not(None)
    )
    if low is not None:
        query = query.where(run.c.updated_at >= low)
    if after is not None:
        stamp, run_id = after
        query = query.where(
            sa.or_(run.c.updated_at > stamp, sa.and_(run.c.updated_at == stamp, run.c.id > run_id))
        )
    query = query.order_by(run.c.updated_at, run.c.id).limit(limit)
    return [(RunRecord.from_row(row), row["updated_at"]) for row in conn.execute(query).mappings()]


def _is_finished(run: RunRecord) -> bool:
    if run.state == State.up_for_retry.value:
        return run.kind == RunKind.attempt.value
    return run.state in {s.value for s in EXPORTABLE_STATES}


def _hops(conn: Connection, runs: Sequence[RunRecord]) -> list[Hop]:
    """Cross-source links touching `runs` whose both ends have finished."""
    link, run = table("link"), table("run")
    ids = [r.id for r in runs]
    found: dict[int, Any] = {}
    for part in chunks(ids):
        query = sa.select(link).where(
            link.c.strength.in_(HOP_STRENGTHS),
            sa.or_(one_of(conn, link.c.from_run_id, part), one_of(conn, link.c.to_run_id, part)),
        )
        for row in conn.execute(query).mappings():
            found[row["id"]] = row
    if not found:
        return []
    ends = {r.id: r for r in runs}
    missing = sorted(
        {e for row in found.values() for e in (row["from_run_id"], row["to_run_id"])} - set(ends)
    )
    for part in chunks(missing):
        query = sa.select(*(run.c[c] for c in RUN_COLUMNS)).where(one_of(conn, run.c.id, part))
        for row in conn.execute(query).mappings():
            ends[row["id"]] = RunRecord.from_row(row)
    hops: list[Hop] = []
    for row in sorted(found.values(), key=lambda r: r["id"]):
        a, b = ends.get(row["from_run_id"]), ends.get(row["to_run_id"])
        if a is None or b is None or a.source == b.source:
            continue
        if not (_is_finished(a) and _is_finished(b)):
            continue
        caller, callee = caller_and_callee(a, b, strength=row["strength"])
        hops.append(
            Hop(
                caller,
                callee,
                relation=row["relation"],
                strength=row["strength"],
                evidence=dict(row["evidence"] or {}),
            )
        )
    return hops


def export_finished_runs(
    engine: Engine,
    exporter: SpanExporter,
    *,
    kinds: Mapping[str, str] | None = None,
    destination: str = "exporter",
    now: datetime | None = None,
    page_size: int = PAGE_SIZE,
    max_runs: int = MAX_RUNS_PER_CALL,
    overlap_s: float = OVERLAP_S,
) -> int:
    """Send the runs finished (or changed) since the stored position; return how many.

    Pages of `page_size` runs in `updated_at` order, each exported and then
    recorded; stops after `max_runs` so one call stays bounded.
    """
    now = now or datetime.now(UTC)
    resources = ResourceCatalog(source_kinds(engine, kinds or {}))
    raw = read_position(engine)
    position = ExportPosition.parse(raw)
    low = position.low(overlap_s)
    after: tuple[datetime, str] | None = None
    sent = 0
    read = 0
    while read < max_runs:
        with engine.connect() as conn:
            page = _page(conn, low, after, page_size)
            if not page:
                break
            fresh = [run for run, stamp in page if position.sent.get(run.id) != stamp.isoformat()]
            hops = _hops(conn, fresh) if fresh else []
        read += len(page)
        after = (page[-1][1], page[-1][0].id)
        if fresh:
            result = exporter.export(spans_for(fresh, hops, resources))
            if result is not SpanExportResult.SUCCESS:
                raise OtlpExportFailed(destination, len(fresh))
        moved = position.after([run for run, _ in page], [stamp for _, stamp in page], overlap_s)
        new_raw = moved.dump()
        with engine.begin() as conn:
            if not _write_position(conn, raw, new_raw, now):
                raise ExportPositionMoved(
                    f"{EXPORT_CURSOR}: moved by another replica; this one stops exporting"
                )
        raw, position = new_raw, moved
        sent += len(fresh)
        if len(page) < page_size:
            break
    return sent


class OtlpExportTask:
    """The housekeeping task (`fn(engine, now) -> runs sent`) for `config.otlp`.

    Housekeeping calls it every round under the `:housekeeping` lease, so one
    replica exports at a time; it exports when `otlp.interval` has passed since
    its last attempt (an interval shorter than the housekeeping round is
    effectively the round). A failed export raises (housekeeping logs it) and
    is retried at the next interval from the unmoved position.
    """

    name = "otlp-export"

    def __init__(self, config: Config, *, exporter: SpanExporter | None = None) -> None:
        if config.otlp is None:
            raise ValueError("OtlpExportTask needs an `otlp:` section in the configuration")
        self.settings: OtlpSettings = config.otlp
        self.kinds = {s.name: s.kind for s in config.sources}
        self._exporter = exporter
        self._last_attempt: datetime | None = None

    @property
    def exporter(self) -> SpanExporter:
        if self._exporter is None:
            self._exporter = OTLPSpanExporter(
                endpoint=self.settings.endpoint,
                headers=dict(self.settings.headers),
                timeout=self.settings.timeout,
            )
        return self._exporter

    def __call__(self, engine: Engine, now: datetime) -> int:
        if self._last_attempt is not None and (
            (now - self._last_attempt).total_seconds() < self.settings.interval
        ):
            return 0
        self._last_attempt = now
        return export_finished_runs(
            engine, self.exporter, kinds=self.kinds, destination=self.settings.endpoint, now=now
        )


__all__ = [
    "EXPORT_CURSOR",
    "OVERLAP_S",
    "ExportPosition",
    "ExportPositionMoved",
    "OtlpExportFailed",
    "OtlpExportTask",
    "export_finished_runs",
    "read_position",
    "source_kinds",
]
