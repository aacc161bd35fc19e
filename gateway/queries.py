"""Read-side queries for the API and the dashboard.

Every list is keyset-paginated: a page ends with an opaque cursor naming the
last row's sort key, and the next page starts strictly after it, so rows
inserted while a reader pages never duplicate or shift what it has yet to
see. Runs sort newest first by `coalesce(started_at, observed_at)` then id;
jobs by source then key. Nothing here writes.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    bindparam,
    column,
    func,
    or_,
    true,
    union_all,
)
from sqlalchemy import select as core_select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from gateway.config import Config
from gateway.contract import in_utc_range, one_line
from gateway.runtime.status import SourceStatus, source_statuses
from gateway.store.models import Cursor, Job, Link, Run, RunEventRow, RunRef

T = TypeVar("T")

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
# A trace view follows links into other traces; these bound how far, so one
# densely linked estate cannot turn a request into a full-table walk.
MAX_LINKED_TRACES = 20
MAX_TRACE_SPANS = 5000
MAX_HISTORY_EVENTS = 1000
_IN_CHUNK = 500


class InvalidCursor(ValueError):
    """A pagination cursor that this server did not produce (or that is corrupted)."""


def _encode_cursor(parts: Sequence[Any]) -> str:
    raw = json.dumps(list(parts), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidCursor("cursor is not one this server issued") from None
    if not isinstance(parts, list) or len(parts) != arity:
        raise InvalidCursor("cursor is not one this server issued")
    return parts


def _cursor_instant(value: Any) -> datetime:
    """A cursor's timestamp: ISO text with an offset, inside what UTC can hold."""
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return in_utc_range(datetime.fromisoformat(value))
    except ValueError:
        raise InvalidCursor("cursor is not one this server issued") from None


def _cursor_name(value: Any) -> str:
    """A cursor's id, source or key: one line of text, as every stored one is."""
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return one_line(value)
    except ValueError:
        raise InvalidCursor("cursor is not one this server issued") from None


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _contains(session: Session, columns: Sequence[Any], text: str) -> ColumnElement[bool]:
    """Any of `columns` contains `text`, ignoring case.

    Written per dialect because a text search filters every run of its
    window row by row: PostgreSQL's ILIKE is about 3x cheaper than
    `lower(col) LIKE`, and SQLite's LIKE already ignores (ASCII) case, as its
    `lower()` only folds ASCII too (at 1M runs, 24 h window: PG 31 -> 11 ms,
    SQLite 13 -> 6 ms).
    """
    pattern = _like(text)
    if session.get_bind().dialect.name == "postgresql":
        return or_(*(c.ilike(pattern, escape="\\") for c in columns))
    return or_(*(c.like(pattern, escape="\\") for c in columns))


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def run_sort_key() -> ColumnElement[datetime]:
    """The time a run is listed and filtered by: when it started, else when last seen."""
    return func.coalesce(col(Run.started_at), col(Run.observed_at))


def list_runs(
    session: Session,
    *,
    source: str | None = None,
    job: str | None = None,
    state: Sequence[str] = (),
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    q: str | None = None,
    trace_id: str | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[Run]:
    """Runs newest first, filtered; `since` inclusive, `until` exclusive."""
    limit = max(1, min(limit, MAX_LIMIT))
    sort = run_sort_key()
    stmt = select(Run)
    if source:
        stmt = stmt.where(Run.source == source)
    if job:
        stmt = stmt.where(Run.job == job)
    if state:
        stmt = stmt.where(col(Run.state).in_(list(state)))
    if kind:
        stmt = stmt.where(Run.kind == kind)
    if trace_id:
        stmt = stmt.where(Run.trace_id == trace_id)
    if since is not None:
        stmt = stmt.where(sort >= since)
    if until is not None:
        stmt = stmt.where(sort < until)
    if q:
        stmt = stmt.where(
            _contains(
                session,
                (col(Run.key), col(Run.name), col(Run.job), col(Run.error_message)),
                q,
            )
        )
    if cursor:
        ts_text, id_text = _decode_cursor(cursor, 2)
        last_ts, last_id = _cursor_instant(ts_text), _cursor_name(id_text)
        # `sort <= last_ts` is implied by the OR, but stated on its own it
        # bounds the index range scan (SQLite does not derive it from an OR).
        stmt = stmt.where(
            sort <= last_ts,
            or_(sort < last_ts, and_(sort == last_ts, col(Run.id) < last_id)),
        )
    stmt = stmt.order_by(sort.desc(), col(Run.id).desc()).limit(limit + 1)
    rows = list(session.exec(stmt))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        last_key = last.started_at or last.observed_at
        if last_key is not None:
            next_cursor = _encode_cursor([last_key.astimezone(UTC).isoformat(), last.id])
    return Page(rows, next_cursor)


@dataclass(frozen=True)
class LinkView:
    """A link seen from one run: the link row and the run at its other end (if stored)."""

    link: Link
    other: Run | None


@dataclass(frozen=True)
class RunDetail:
    run: Run
    history: list[RunEventRow]
    refs: list[RunRef]
    links_out: list[LinkView]
    links_in: list[LinkView]
    children: list[Run]


def _runs_by_id(session: Session, ids: Iterable[str]) -> dict[str, Run]:
    wanted = list(dict.fromkeys(ids))
    found: dict[str, Run] = {}
    for i in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[i : i + _IN_CHUNK]
        for run in session.exec(select(Run).where(col(Run.id).in_(chunk))):
            found[run.id] = run
    return found


def get_run(session: Session, run_id: str) -> RunDetail | None:
    run = session.get(Run, run_id)
    if run is None:
        return None
    history = list(
        session.exec(
            select(RunEventRow)
            .where(RunEventRow.run_id == run_id)
            .order_by(col(RunEventRow.seq))
            .limit(MAX_HISTORY_EVENTS)
        )
    )
    refs = list(
        session.exec(
            select(RunRef)
            .where(RunRef.run_id == run_id)
            .order_by(col(RunRef.namespace), col(RunRef.value))
        )
    )
    out_links = list(
        session.exec(select(Link).where(Link.from_run_id == run_id).order_by(col(Link.id)))
    )
    in_links = list(
        session.exec(select(Link).where(Link.to_run_id == run_id).order_by(col(Link.id)))
    )
    others = _runs_by_id(
        session, [lk.to_run_id for lk in out_links] + [lk.from_run_id for lk in in_links]
    )
    children = list(
        session.exec(
            select(Run)
            .where(Run.parent_id == run_id)
            .order_by(run_sort_key(), col(Run.id))
            .limit(MAX_LIMIT)
        )
    )
    return RunDetail(
        run=run,
        history=history,
        refs=refs,
        links_out=[LinkView(lk, others.get(lk.to_run_id)) for lk in out_links],
        links_in=[LinkView(lk, others.get(lk.from_run_id)) for lk in in_links],
        children=children,
    )


@dataclass
class TraceView:
    """Every span of a trace, plus the runs linked to them and those runs' traces.

    `traces` lists the trace ids included, the asked-for one first. `truncated`
    says a bound (`MAX_LINKED_TRACES`, `MAX_TRACE_SPANS`) stopped the walk.
    """

    trace_id: str
    spans: list[Run] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    traces: list[str] = field(default_factory=list)
    truncated: bool = False


def get_trace(
    session: Session,
    trace_id: str,
    *,
    max_traces: int = MAX_LINKED_TRACES,
    max_spans: int = MAX_TRACE_SPANS,
) -> TraceView | None:
    view = TraceView(trace_id=trace_id)
    spans: dict[str, Run] = {}
    links: dict[int, Link] = {}
    pending = [trace_id]
    seen_traces: set[str] = set()
    while pending:
        current = pending.pop(0)
        if current in seen_traces:
            continue
        if len(seen_traces) >= max_traces:
            view.truncated = True
            break
        seen_traces.add(current)
        view.traces.append(current)
        budget = max_spans - len(spans)
        tree = list(
            session.exec(
                select(Run)
                .where(Run.trace_id == current)
                .order_by(run_sort_key(), col(Run.id))
                .limit(budget + 1)
            )
        )
        if len(tree) > budget:
            tree = tree[:budget]
            view.truncated = True
        new_ids = [r.id for r in tree if r.id not in spans]
        for r in tree:
            spans[r.id] = r
        linked_ids: set[str] = set()
        for i in range(0, len(new_ids), _IN_CHUNK):
            chunk = new_ids[i : i + _IN_CHUNK]
            for lk in session.exec(
                select(Link).where(
                    or_(col(Link.from_run_id).in_(chunk), col(Link.to_run_id).in_(chunk))
                )
            ):
                if lk.id is not None:
                    links[lk.id] = lk
                linked_ids.update((lk.from_run_id, lk.to_run_id))
        for other in _runs_by_id(session, linked_ids - spans.keys()).values():
            if other.trace_id not in seen_traces:
                pending.append(other.trace_id)
        if view.truncated:
            break
    if not spans:
        return None
    view.spans = list(spans.values())
    # A link whose other end fell outside the bounds is still shown: its
    # evidence explains why the walk would have gone there.
    view.links = sorted(links.values(), key=lambda lk: lk.id or 0)
    return view


def list_jobs(
    session: Session,
    *,
    source: str | None = None,
    q: str | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[Job]:
    """Jobs by source then key."""
    limit = max(1, min(limit, MAX_LIMIT))
    stmt = select(Job)
    if source:
        stmt = stmt.where(Job.source == source)
    if q:
        pattern = _like(q)
        stmt = stmt.where(
            or_(
                func.lower(col(Job.key)).like(pattern, escape="\\"),
                func.lower(col(Job.name)).like(pattern, escape="\\"),
            )
        )
    if cursor:
        last_source, last_key = (_cursor_name(p) for p in _decode_cursor(cursor, 2))
        stmt = stmt.where(
            or_(
                col(Job.source) > last_source,
                and_(col(Job.source) == last_source, col(Job.key) > last_key),
            )
        )
    stmt = stmt.order_by(col(Job.source), col(Job.key)).limit(limit + 1)
    rows = list(session.exec(stmt))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = _encode_cursor([rows[-1].source, rows[-1].key])
    return Page(rows, next_cursor)


@dataclass(frozen=True)
class JobDetail:
    job: Job
    recent_runs: list[Run]


def get_job(session: Session, job_id: str, *, recent: int = 20) -> JobDetail | None:
    job = session.get(Job, job_id)
    if job is None:
        return None
    runs = list(
        session.exec(
            select(Run)
            .where(Run.source == job.source, Run.job == job.key, Run.kind == "run")
            .order_by(run_sort_key().desc(), col(Run.id).desc())
            .limit(recent)
        )
    )
    return JobDetail(job, runs)


@dataclass(frozen=True)
class SourceView:
    """A configured source: the runtime's status of it plus where its cursor stands."""

    status: SourceStatus
    cursor_updated_at: datetime | None
    cursor_age_s: float | None


def list_sources(engine: Engine, config: Config, *, now: datetime) -> list[SourceView]:
    """Each configured source, in config order.

    Status, lag, last error (redacted) and lease holder come from
    `gateway.runtime.source_statuses`, the one place that classifies source
    health; this adds the age of each source's cursor.
    """
    statuses = source_statuses(engine, config, now)
    names = [s.name for s in statuses]
    with Session(engine) as session:
        cursors = {
            c.source: c.updated_at
            for c in session.exec(select(Cursor).where(col(Cursor.source).in_(names)))
        }
    out = []
    for status in statuses:
        at = cursors.get(status.name)
        out.append(
            SourceView(
                status=status,
                cursor_updated_at=at,
                cursor_age_s=max(0.0, (now - at).total_seconds()) if at else None,
            )
        )
    return out


@dataclass(frozen=True)
class RunCounts:
    """Root runs per source per time bucket over `[since, until)`.

    `counts[source][i]` is the number of runs whose sort key falls in bucket
    `i`, which starts at `since + i * bucket_s`.
    """

    since: datetime
    until: datetime
    bucket_s: float
    counts: dict[str, list[int]]

    @property
    def buckets(self) -> int:
        return len(next(iter(self.counts.values()), []))


def _bucket_expr(session: Session, since: datetime, bucket_s: float) -> ColumnElement[Any]:
    sort = run_sort_key()
    if session.get_bind().dialect.name == "postgresql":
        seconds: ColumnElement[Any] = func.extract("epoch", sort - since)
    else:
        # SQLite keeps UTC text without an offset; julianday reads it as UTC.
        start = since.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
        seconds = (func.julianday(sort) - func.julianday(start)) * 86400.0
    return func.floor(seconds / bucket_s)


def run_counts(
    session: Session,
    *,
    since: datetime,
    until: datetime,
    buckets: int = 24,
    kind: str = "run",
) -> RunCounts:
    """How many runs of `kind` each source had per bucket in `[since, until)`.

    Bounded by the window: one range scan of the `(kind, sort key, source)`
    index, grouped in the database; nothing outside the window is read.
    """
    if until <= since:
        raise ValueError("run_counts: until must be after since")
    buckets = max(1, min(buckets, 500))
    bucket_s = (until - since).total_seconds() / buckets
    sort = run_sort_key()
    bucket = _bucket_expr(session, since, bucket_s).label("bucket")
    stmt = (
        select(col(Run.source), bucket, func.count().label("n"))
        .where(Run.kind == kind, sort >= since, sort < until)
        # Bucket first: grouped by source first, SQLite walks the
        # (source, sort key) index instead and reads every row of every kind
        # in the window from the table (45 ms rather than 14 at 1M runs).
        .group_by(bucket, col(Run.source))
    )
    counts: dict[str, list[int]] = {}
    for source, index, n in session.exec(stmt):
        row = counts.setdefault(source, [0] * buckets)
        i = min(buckets - 1, max(0, int(index)))
        row[i] += int(n)
    return RunCounts(
        since=since, until=until, bucket_s=bucket_s, counts=dict(sorted(counts.items()))
    )


@dataclass(frozen=True)
class RunMark:
    """One run as a job's recent-runs strip shows it."""

    id: str
    trace_id: str
    state: str
    at: datetime | None


_RECENT_CHUNK = 100  # jobs per statement: well inside SQLite's 500 compound terms


def recent_runs_by_job(
    session: Session, jobs: Sequence[Job], *, per_job: int = 10
) -> dict[str, list[RunMark]]:
    """The newest root runs of each job (by job id), newest first.

    One statement for a page of jobs (up to `_RECENT_CHUNK` jobs each), in
    which every job is a LIMITed probe of the `(source, job, sort key)`
    index: on PostgreSQL a `LATERAL` subquery joined to the jobs unnested
    from two array parameters; on SQLite (no LATERAL) a `UNION ALL` of one
    LIMITed subquery per job — a window function there would read every run
    of each job before keeping `per_job`. Either way a page costs one round
    trip and a page of index probes, whatever the store's size and however
    long each job's history. The statements are built once per shape and
    reused with bound values (building a 50-term union costs more than
    running it).
    """
    out: dict[str, list[RunMark]] = {job.id: [] for job in jobs}
    if not jobs or per_job < 1:
        return out
    by_key = {(job.source, job.key): job.id for job in jobs}
    keys = list(by_key)
    conn = session.connection()
    postgres = conn.dialect.name == "postgresql"
    for i in range(0, len(keys), _RECENT_CHUNK):
        chunk = keys[i : i + _RECENT_CHUNK]
        if postgres:
            stmt = _recent_lateral(per_job)
            params: dict[str, Any] = {
                "sources": [source for source, _ in chunk],
                "jobs": [job_key for _, job_key in chunk],
            }
        else:
            stmt = _recent_union(len(chunk), per_job)
            params = {f"source_{n}": source for n, (source, _) in enumerate(chunk)}
            params.update({f"job_{n}": job_key for n, (_, job_key) in enumerate(chunk)})
        for source, job_key, run_id, trace_id, state, at in conn.execute(stmt, params):
            if isinstance(at, str):  # SQLite hands back the expression's raw text
                at = datetime.fromisoformat(at)
            if at is not None and at.tzinfo is None:
                at = at.replace(tzinfo=UTC)
            out[by_key[(source, job_key)]].append(RunMark(run_id, trace_id, state, at))
    for marks in out.values():
        # Each job's rows come out of its probe in order, but SQL does not
        # promise that a subquery's order survives the join or the union.
        marks.sort(key=lambda m: m.at or datetime.min.replace(tzinfo=UTC), reverse=True)
    return out


def _recent_probe(per_job: int) -> Any:
    sort = run_sort_key()
    return core_select(
        col(Run.source), col(Run.job), col(Run.id), col(Run.trace_id), col(Run.state),
        sort.label("at"),
    ).where(col(Run.kind) == "run").order_by(sort.desc()).limit(per_job)  # fmt: skip


@lru_cache(maxsize=16)
def _recent_lateral(per_job: int) -> Any:
    """PostgreSQL: `unnest(:sources, :jobs) AS wanted(source, job)` x LATERAL probe."""
    wanted = (
        func.unnest(
            bindparam("sources", type_=ARRAY(String)), bindparam("jobs", type_=ARRAY(String))
        )
        .table_valued(column("source", String), column("job", String))
        .render_derived(name="wanted")
    )
    probe = (
        _recent_probe(per_job)
        .where(col(Run.source) == wanted.c.source, col(Run.job) == wanted.c.job)
        .lateral("recent")
    )
    return core_select(
        probe.c.source, probe.c.job, probe.c.id, probe.c.trace_id, probe.c.state, probe.c.at
    ).select_from(wanted.join(probe, true()))


@lru_cache(maxsize=64)
def _recent_union(jobs: int, per_job: int) -> Any:
    """SQLite: one LIMITed probe per job (`:source_<n>`, `:job_<n>`), UNION ALL."""
    terms = [
        core_select(
            _recent_probe(per_job)
            .where(
                col(Run.source) == bindparam(f"source_{n}", type_=String),
                col(Run.job) == bindparam(f"job_{n}", type_=String),
            )
            .subquery()
        )
        for n in range(jobs)
    ]
    return terms[0] if jobs == 1 else union_all(*terms)


__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "InvalidCursor",
    "JobDetail",
    "LinkView",
    "Page",
    "RunCounts",
    "RunDetail",
    "RunMark",
    "SourceView",
    "TraceView",
    "get_job",
    "get_run",
    "get_trace",
    "list_jobs",
    "list_runs",
    "list_sources",
    "recent_runs_by_job",
    "run_counts",
    "run_sort_key",
]
