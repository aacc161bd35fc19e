"""Ingest: a source's events, its cursor and its jobs, written in ONE transaction.

`apply_batch(engine, source, events, cursor=…, jobs=…)` is what pollers call;
`ingest_events(conn_or_session, …)` does the same work inside a transaction
the caller already holds (API routes, the runtime, the group-commit sink).

Guarantees:

- **All or nothing.** Every event's and job's `source` must be the batch's
  source (else `SourceMismatch`, before anything is written); any error rolls
  back the events, runs, refs, links, jobs and the cursor together, so a
  crash or failure replays from the old cursor.
- **Idempotent.** Each distinct event is appended once to `run_event`, keyed
  by the sha256 of its canonical JSON; an event already stored is counted as a
  duplicate and changes nothing, so replaying a batch is a no-op.
- **Order-free.** A run's row is the fold of `gateway.merge.RULES` over all its
  events in one total order, whatever order they arrive in (see
  `gateway.merge`); late events re-fold that run from its own event log.
- **Bulk.** Per batch: one `IN` read of digests, one of runs, one of adopted
  trees, one of refs; then `executemany` INSERTs and UPDATEs (plain
  statements, safe because the batch holds its lock, and cached compiled by
  SQLAlchemy). No per-event round trip.

On PostgreSQL, concurrent batches are serialised per source (their runs) and
per ref bucket (their links) with transaction-scoped advisory locks taken in
one fixed order; SQLite's `BEGIN IMMEDIATE` already serialises writers.
"""

from __future__ import annotations

import enum
import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from gateway.contract import JobSpec, RunEvent, job_id_for, span_id_for
from gateway.correlate import correlate_batch
from gateway.inline_secrets import mask_spec_data
from gateway.links import (
    chunks,
    dialect_insert,
    in_parameter,
    one_of,
    one_of_parameter,
    table,
    write_refs_and_links,
)
from gateway.merge import (
    SPAN_COLUMNS,
    Span,
    adopt_trace,
    canonical_payload,
    digest_payload,
    event_digest,
    fold,
    fold_continues,
    tree_trace,
)
from gateway.store.bulk import bulk_insert, bulk_update, generic_plans
from gateway.store.db import session_scope
from gateway.store.upkeep import note_writes


class Unset(enum.Enum):
    """Marks "leave the cursor alone" (None is a cursor value: from the start)."""

    UNSET = "UNSET"


UNSET = Unset.UNSET

# Advisory-lock classes (PostgreSQL two-int form): one per source, one per
# ref bucket. Few buckets keep the lock count per transaction small.
_LOCK_SOURCE = 0x53590001
_LOCK_REF_BUCKET = 0x53590002
_REF_BUCKETS = 64


class IngestError(ValueError):
    """A batch was refused; nothing of it was written."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source


class SourceMismatch(IngestError):
    """An event or job in the batch names another source than the batch."""

    def __init__(self, source: str, *, item: str, index: int, key: str, got: str) -> None:
        super().__init__(
            source,
            f"{item} #{index} (key {key!r}) has source {got!r}, but the batch is for {source!r}",
        )
        self.item = item
        self.index = index
        self.key = key
        self.got = got


@dataclass
class IngestReport:
    """What one batch did."""

    source: str
    events: int = 0
    applied: int = 0
    duplicates: int = 0
    runs_created: int = 0
    runs_updated: int = 0
    links_created: int = 0
    refs_created: int = 0
    jobs: int = 0
    cursor_written: bool = False
    run_ids: list[str] = field(default_factory=list)


def check_batch(source: str, events: Sequence[RunEvent], jobs: Sequence[JobSpec] = ()) -> None:
    """Refuse a batch whose events or jobs name another source."""
    for index, event in enumerate(events):
        if event.source != source:
            raise SourceMismatch(source, item="event", index=index, key=event.key, got=event.source)
    for index, job in enumerate(jobs):
        if job.source != source:
            raise SourceMismatch(source, item="job", index=index, key=job.key, got=job.source)


def apply_batch(
    engine: Engine,
    source: str,
    events: Sequence[RunEvent],
    *,
    cursor: str | Unset | None = UNSET,
    jobs: Sequence[JobSpec] | None = None,
) -> IngestReport:
    """Apply events, the source's new cursor and discovered jobs atomically."""
    check_batch(source, events, jobs or ())
    with session_scope(engine) as session:
        return ingest_events(session, source, events, cursor=cursor, jobs=jobs)


def ingest_events(
    target: Session | Connection,
    source: str,
    events: Sequence[RunEvent],
    *,
    cursor: str | Unset | None = UNSET,
    jobs: Sequence[JobSpec] | None = None,
    now: datetime | None = None,
) -> IngestReport:
    """Apply a batch inside the caller's transaction (the caller commits)."""
    jobs = jobs or ()
    check_batch(source, events, jobs)
    conn = target.connection() if isinstance(target, Session) else target
    now = now or datetime.now(UTC)
    report = IngestReport(source=source, events=len(events))

    prepared = _distinct(events)
    if conn.dialect.name == "postgresql":
        _lock(conn, source, prepared)
    fresh = _unseen(conn, prepared)
    report.applied = len(fresh)
    report.duplicates = len(events) - len(fresh)
    if fresh:
        merged = _merge_runs(conn, source, fresh, now, report)
        # Same transaction: an incident is readable the moment its last event is.
        known = {
            run_id: (s.source, s.kind, s.job, s.state.value if s.state else "", s.parent_key)
            for run_id, s in merged.items()
        }
        correlate_batch(conn, report.run_ids, now=now, known=known)
        note_writes(
            conn,
            {
                "run": report.runs_created,
                "run_event": report.applied,
                "run_ref": report.refs_created,
            },
        )
    if jobs:
        _upsert_jobs(conn, jobs, now)
        report.jobs = len(jobs)
    if not isinstance(cursor, Unset):
        _write_cursor(conn, source, cursor, now)
        report.cursor_written = True
    return report


@dataclass(slots=True)
class _Prepared:
    event: RunEvent
    payload: dict[str, Any]
    digest: str
    run_id: str


def _distinct(events: Sequence[RunEvent]) -> dict[str, _Prepared]:
    prepared: dict[str, _Prepared] = {}
    for event in events:
        payload = canonical_payload(event)
        digest = event_digest(digest_payload(event, payload))
        if digest not in prepared:
            prepared[digest] = _Prepared(
                event, payload, digest, span_id_for(event.source, event.key)
            )
    return prepared


def _lock_key(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


def _lock(conn: Connection, source: str, prepared: dict[str, _Prepared]) -> None:
    buckets = sorted(
        {
            _lock_key(f"{ref.namespace}\x1f{ref.value}") % _REF_BUCKETS
            for p in prepared.values()
            for ref in p.event.refs
        }
    )
    classes = [_LOCK_SOURCE] + [_LOCK_REF_BUCKET] * len(buckets)
    keys = [_lock_key(source), *buckets]
    conn.execute(
        sa.text(
            "SELECT pg_advisory_xact_lock(c, k) FROM "
            "(SELECT c, k FROM unnest(CAST(:cs AS int[]), CAST(:ks AS int[])) AS t(c, k) "
            "ORDER BY c, k) AS ordered"
        ),
        {"cs": classes, "ks": keys},
    )


@dataclass(frozen=True)
class _Statements:
    """Every statement of the write path, built once.

    A statement object memoises its cache key, so reusing one skips both the
    construction and the cache-key walk SQLAlchemy would do per batch. Each
    list of keys is one parameter (`links.one_of_parameter`), so one statement
    serves every batch size.
    """

    seen: Any
    runs: Any
    trees: Any


@cache
def _statements(dialect: str) -> _Statements:
    run, run_event = table("run"), table("run_event")
    return _Statements(
        seen=sa.select(run_event.c.digest).where(
            one_of_parameter(dialect, run_event.c.digest, "digests")
        ),
        runs=sa.select(*(run.c[name] for name in SPAN_COLUMNS)).where(
            one_of_parameter(dialect, run.c.id, "ids")
        ),
        trees=sa.select(run.c.root_key, sa.func.min(run.c.trace_id))
        .where(
            run.c.source == sa.bindparam("source"),
            one_of_parameter(dialect, run.c.root_key, "roots"),
            run.c.trace_adopted,
        )
        .group_by(run.c.root_key),
    )


def _unseen(conn: Connection, prepared: dict[str, _Prepared]) -> list[_Prepared]:
    seen: set[str] = set()
    statement = _statements(conn.dialect.name).seen
    for part in chunks(list(prepared)):
        seen.update(conn.scalars(statement, {"digests": in_parameter(conn, part)}))
    return [p for digest, p in prepared.items() if digest not in seen]


def _merge_runs(
    conn: Connection, source: str, fresh: list[_Prepared], now: datetime, report: IngestReport
) -> dict[str, Span]:
    """Fold, place and write the batch's runs, events and refs; the merged spans."""
    statements = _statements(conn.dialect.name)
    by_run: dict[str, list[_Prepared]] = defaultdict(list)
    for p in fresh:
        by_run[p.run_id].append(p)

    stored: dict[str, Span] = {}
    for part in chunks(list(by_run)):
        for found in conn.execute(statements.runs, {"ids": in_parameter(conn, part)}).mappings():
            stored[found["id"]] = Span.from_row(dict(found))

    merged: dict[str, Span] = {}
    late: list[str] = []
    for run_id, items in by_run.items():
        items.sort(key=lambda p: (p.event.observed_at, p.digest))
        span = stored.get(run_id)
        if span is None:
            merged[run_id] = fold(None, (p.event for p in items))
        elif fold_continues(span, items[0].event.observed_at):
            merged[run_id] = fold(span, (p.event for p in items))
        else:
            late.append(run_id)
    if late:
        merged.update(_refold(conn, late, by_run))

    _place_in_trees(conn, source, merged, stored, by_run, now)

    created: list[dict[str, Any]] = []
    updated: list[dict[str, Any]] = []
    for run_id, span in merged.items():
        row = span.row()
        row["updated_at"] = now
        if run_id in stored:
            updated.append(row)
        else:
            row["created_at"] = now
            created.append(row)
    # Plain INSERT/UPDATE rather than an upsert: the rows were read under the
    # batch's lock. Through the driver's executemany (`gateway.store.bulk`).
    report.runs_created, report.runs_updated = len(created), len(updated)
    report.run_ids = list(merged)
    dialect = conn.dialect.name
    with generic_plans(conn):
        bulk_insert("run", RUN_INSERT_COLUMNS, dialect).run(conn, created)
        bulk_update("run", "id", RUN_UPDATE_COLUMNS, dialect).run(conn, updated)
        bulk_insert("run_event", EVENT_COLUMNS, dialect).run(
            conn,
            (
                {
                    "digest": p.digest,
                    "run_id": p.run_id,
                    "source": source,
                    "state": p.event.state.value,
                    "attempt": p.event.attempt,
                    "observed_at": p.event.observed_at,
                    "received_at": now,
                    "payload": p.payload,
                }
                for p in fresh
            ),
        )

    refs: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for p in fresh:
        for ref in p.event.refs:
            refs[(ref.namespace, ref.value)][p.run_id] = source
    report.refs_created, report.links_created = write_refs_and_links(conn, refs, now=now)
    return merged


def _place_in_trees(
    conn: Connection,
    source: str,
    merged: dict[str, Span],
    stored: dict[str, Span],
    by_run: dict[str, list[_Prepared]],
    now: datetime,
) -> None:
    """Give every touched span its tree's trace; move stored spans when it changes.

    A tree's trace is the least W3C trace id any of its spans carries, stored
    already or arriving now (`merge.tree_trace`), so the result does not depend
    on whether the root or a child brought the traceparent, or in which order.
    """
    run = table("run")
    spans_of: dict[str, list[Span]] = defaultdict(list)
    candidates: dict[str, set[str]] = defaultdict(set)
    adopted_before: dict[str, str] = {}
    # Every stored span of a tree carries the tree's trace (adoption moves them
    # all, joining spans take it), so a stored row of the same root already says
    # whether, and to what, its tree was adopted: only other trees are read.
    known: set[str] = set()
    for run_id, span in merged.items():
        spans_of[span.root_key].append(span)
        for p in by_run[run_id]:
            parsed = p.event.traceparent
            if parsed is not None:
                candidates[span.root_key].add(parsed[0])
        if span.trace_adopted:
            candidates[span.root_key].add(span.trace_id)
        before = stored.get(run_id)
        if before is not None and before.root_key == span.root_key:
            known.add(span.root_key)
            if before.trace_adopted:
                adopted_before[span.root_key] = before.trace_id
                candidates[span.root_key].add(before.trace_id)
    unknown = [root_key for root_key in spans_of if root_key not in known]
    for part in chunks(unknown):
        for root_key, trace_id in conn.execute(
            _statements(conn.dialect.name).trees,
            {"source": source, "roots": in_parameter(conn, part)},
        ):
            adopted_before[root_key] = trace_id
            candidates[root_key].add(trace_id)
    for root_key, spans in spans_of.items():
        trace_id, adopted = tree_trace(source, root_key, candidates[root_key])
        if adopted and adopted_before.get(root_key) != trace_id:
            conn.execute(
                run.update()
                .where(
                    run.c.source == source,
                    run.c.root_key == root_key,
                    run.c.trace_id != trace_id,
                )
                .values(trace_id=trace_id, trace_adopted=True, updated_at=now)
            )
        for span in spans:
            adopt_trace(span, (trace_id, adopted))


def _refold(
    conn: Connection, late: list[str], by_run: dict[str, list[_Prepared]]
) -> dict[str, Span]:
    """Re-fold runs whose new events sort before merged ones, from their log."""
    run_event = table("run_event")
    logs: dict[str, list[tuple[datetime, str, RunEvent]]] = defaultdict(list)
    for part in chunks(late):
        query = sa.select(run_event.c.run_id, run_event.c.digest, run_event.c.payload).where(
            one_of(conn, run_event.c.run_id, part)
        )
        for run_id, digest, payload in conn.execute(query):
            event = RunEvent.model_validate(payload)
            logs[run_id].append((event.observed_at, digest, event))
    result: dict[str, Span] = {}
    for run_id in late:
        log = logs[run_id] + [(p.event.observed_at, p.digest, p.event) for p in by_run[run_id]]
        log.sort(key=lambda item: (item[0], item[1]))
        result[run_id] = fold(None, (event for _, _, event in log))
    return result


RUN_INSERT_COLUMNS = (*SPAN_COLUMNS, "created_at", "updated_at")
RUN_UPDATE_COLUMNS = (*(c for c in SPAN_COLUMNS if c != "id"), "updated_at")
EVENT_COLUMNS = (
    "digest",
    "run_id",
    "source",
    "state",
    "attempt",
    "observed_at",
    "received_at",
    "payload",
)


def _upsert_jobs(conn: Connection, jobs: Sequence[JobSpec], now: datetime) -> None:
    """Insert new jobs and rewrite changed ones; an unchanged job is not touched.

    Discovery repeats every few intervals and usually finds nothing new, so
    comparing one digest per job (an indexed primary-key read) is far cheaper
    than rewriting every definition each time. Credentials written inline in a
    definition are masked first (`gateway.inline_secrets`).
    """
    job = table("job")
    rows = {}
    for spec in jobs:
        job_id = job_id_for(spec.source, spec.key)
        # Viewers can read stored specs: inline credentials never reach the table.
        dumped = mask_spec_data(spec.model_dump(mode="json"))
        rows[job_id] = {
            "id": job_id,
            "source": spec.source,
            "key": spec.key,
            "kind": spec.kind,
            "name": spec.name,
            "schedule": spec.schedule,
            "timezone": spec.timezone,
            "paused": spec.paused,
            "owner": spec.owner,
            "labels": dict(spec.labels),
            "spec": dumped,
            "spec_digest": event_digest(dumped),
            "migration_state": "observed",
            "discovered_at": now,
            "updated_at": now,
        }
    for part in chunks(list(rows)):
        query = sa.select(job.c.id, job.c.spec_digest).where(one_of(conn, job.c.id, part))
        for job_id, digest in conn.execute(query):
            if digest is not None and digest == rows[job_id]["spec_digest"]:
                del rows[job_id]
    if not rows:
        return
    stmt = dialect_insert(conn, job)
    # The migration state belongs to the migration workflow, not to discovery.
    keep = {"id", "migration_state", "discovered_at"}
    stmt = stmt.on_conflict_do_update(
        index_elements=[job.c.id],
        set_={c.name: stmt.excluded[c.name] for c in job.columns if c.name not in keep},
    )
    conn.execute(stmt, list(rows.values()))


def _write_cursor(conn: Connection, source: str, value: str | None, now: datetime) -> None:
    # Update-then-insert is safe here: the batch holds its source's lock
    # (PostgreSQL) or the database's write lock (SQLite).
    cursor = table("source_cursor")
    changed = conn.execute(
        cursor.update().where(cursor.c.source == source).values(value=value, updated_at=now)
    )
    if changed.rowcount == 0:
        conn.execute(cursor.insert().values(source=source, value=value, updated_at=now))


def read_cursor(target: Engine | Connection, source: str) -> str | None:
    """The stored cursor of `source` (None if it has none yet)."""
    cursor = table("source_cursor")
    query = sa.select(cursor.c.value).where(cursor.c.source == source)
    if isinstance(target, Engine):
        with target.connect() as conn:
            return conn.scalar(query)
    return target.scalar(query)


__all__ = [
    "UNSET",
    "IngestError",
    "IngestReport",
    "SourceMismatch",
    "Unset",
    "apply_batch",
    "check_batch",
    "ingest_events",
    "read_cursor",
]
