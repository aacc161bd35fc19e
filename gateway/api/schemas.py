"""The API's public shapes: what clients read and send.

Rows from the store are turned into these explicitly, so a new column never
leaks into the API by accident and the OpenAPI document says exactly what a
client gets.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gateway.contract import JobSpec, RunEvent
from gateway.queries import JobDetail, LinkView, RunDetail, SourceView, TraceView
from gateway.store.models import Job, Link, Run, RunEventRow, RunRef


class ErrorPublic(BaseModel):
    kind: str
    message: str | None = None
    exit_code: int | None = None


class RunPublic(BaseModel):
    id: str
    trace_id: str
    parent_id: str | None
    source: str
    key: str
    parent_key: str | None
    root_key: str
    kind: str
    job: str | None
    name: str | None
    state: str
    attempt: int
    started_at: datetime | None
    ended_at: datetime | None
    observed_at: datetime | None
    nominal_time: datetime | None
    duration_s: float | None
    error: ErrorPublic | None
    attributes: dict[str, Any]
    url: str | None

    @classmethod
    def of(cls, run: Run) -> RunPublic:
        duration = (
            (run.ended_at - run.started_at).total_seconds()
            if run.started_at and run.ended_at
            else None
        )
        error = (
            ErrorPublic(kind=run.error_kind, message=run.error_message, exit_code=run.exit_code)
            if run.error_kind
            else None
        )
        return cls(
            id=run.id,
            trace_id=run.trace_id,
            parent_id=run.parent_id,
            source=run.source,
            key=run.key,
            parent_key=run.parent_key,
            root_key=run.root_key,
            kind=run.kind,
            job=run.job,
            name=run.name,
            state=run.state,
            attempt=run.attempt,
            started_at=run.started_at,
            ended_at=run.ended_at,
            observed_at=run.observed_at,
            nominal_time=run.nominal_time,
            duration_s=duration,
            error=error,
            attributes=dict(run.attributes or {}),
            url=run.url,
        )


class RunsPublic(BaseModel):
    data: list[RunPublic]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null on the last page"
    )


class RunEventPublic(BaseModel):
    seq: int
    state: str
    attempt: int
    observed_at: datetime | None
    received_at: datetime | None
    payload: dict[str, Any]

    @classmethod
    def of(cls, row: RunEventRow) -> RunEventPublic:
        return cls(
            seq=row.seq or 0,
            state=row.state,
            attempt=row.attempt,
            observed_at=row.observed_at,
            received_at=row.received_at,
            payload=dict(row.payload or {}),
        )


class RefPublic(BaseModel):
    namespace: str
    value: str

    @classmethod
    def of(cls, ref: RunRef) -> RefPublic:
        return cls(namespace=ref.namespace, value=ref.value)


class LinkPublic(BaseModel):
    id: int
    from_run_id: str
    to_run_id: str
    strength: str
    relation: str
    confidence: float
    evidence: dict[str, Any]
    created_at: datetime | None

    @classmethod
    def of(cls, link: Link) -> LinkPublic:
        return cls(
            id=link.id or 0,
            from_run_id=link.from_run_id,
            to_run_id=link.to_run_id,
            strength=link.strength,
            relation=link.relation,
            confidence=link.confidence,
            evidence=dict(link.evidence or {}),
            created_at=link.created_at,
        )


class LinkedRunPublic(BaseModel):
    link: LinkPublic
    run: RunPublic | None = Field(description="the run at the other end, if it is stored")

    @classmethod
    def of(cls, view: LinkView) -> LinkedRunPublic:
        return cls(
            link=LinkPublic.of(view.link),
            run=RunPublic.of(view.other) if view.other else None,
        )


class RunDetailPublic(RunPublic):
    history: list[RunEventPublic]
    refs: list[RefPublic]
    links_out: list[LinkedRunPublic]
    links_in: list[LinkedRunPublic]
    children: list[RunPublic]

    @classmethod
    def of_detail(cls, detail: RunDetail) -> RunDetailPublic:
        return cls(
            **RunPublic.of(detail.run).model_dump(),
            history=[RunEventPublic.of(e) for e in detail.history],
            refs=[RefPublic.of(r) for r in detail.refs],
            links_out=[LinkedRunPublic.of(v) for v in detail.links_out],
            links_in=[LinkedRunPublic.of(v) for v in detail.links_in],
            children=[RunPublic.of(c) for c in detail.children],
        )


class TracePublic(BaseModel):
    trace_id: str
    traces: list[str] = Field(description="trace ids included, the requested one first")
    spans: list[RunPublic]
    links: list[LinkPublic]
    truncated: bool = Field(description="a bound on linked traces or spans stopped the walk")

    @classmethod
    def of(cls, view: TraceView) -> TracePublic:
        return cls(
            trace_id=view.trace_id,
            traces=view.traces,
            spans=[RunPublic.of(r) for r in view.spans],
            links=[LinkPublic.of(lk) for lk in view.links],
            truncated=view.truncated,
        )


class JobPublic(BaseModel):
    id: str
    source: str
    key: str
    kind: str
    name: str | None
    schedule: str | None
    timezone: str
    paused: bool
    owner: str | None
    labels: dict[str, Any]
    migration_state: str
    discovered_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> JobPublic:
        return cls(
            id=job.id,
            source=job.source,
            key=job.key,
            kind=job.kind,
            name=job.name,
            schedule=job.schedule,
            timezone=job.timezone,
            paused=job.paused,
            owner=job.owner,
            labels=dict(job.labels or {}),
            migration_state=job.migration_state,
            discovered_at=job.discovered_at,
            updated_at=job.updated_at,
        )


class JobsPublic(BaseModel):
    data: list[JobPublic]
    next_cursor: str | None


class JobDetailPublic(JobPublic):
    spec: dict[str, Any]
    recent_runs: list[RunPublic]

    @classmethod
    def of_detail(cls, detail: JobDetail) -> JobDetailPublic:
        return cls(
            **JobPublic.of(detail.job).model_dump(),
            spec=dict(detail.job.spec or {}),
            recent_runs=[RunPublic.of(r) for r in detail.recent_runs],
        )


class SourcePublic(BaseModel):
    name: str
    kind: str
    enabled: bool
    interval_s: float
    status: str
    lag_s: float | None
    last_poll_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    holder: str | None = Field(description="the replica polling it now, if any")
    lease_expires_at: datetime | None
    cursor_updated_at: datetime | None
    cursor_age_s: float | None

    @classmethod
    def of(cls, view: SourceView) -> SourcePublic:
        return cls(
            **view.status.__dict__,
            cursor_updated_at=view.cursor_updated_at,
            cursor_age_s=view.cursor_age_s,
        )


class SourcesPublic(BaseModel):
    data: list[SourcePublic]


class EventIn(RunEvent):
    """A RunEvent as a script sends it: `source` may be left out (the batch names it)."""

    source: str | None = Field(default=None, min_length=1, max_length=128)  # type: ignore[assignment]  # optional here, filled from the batch


class JobIn(JobSpec):
    """A JobSpec as a script sends it: `source` may be left out (the batch names it)."""

    source: str | None = Field(default=None, min_length=1, max_length=128)  # type: ignore[assignment]  # optional here, filled from the batch


class EventBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    events: list[EventIn] = Field(default_factory=list, max_length=10_000)
    jobs: list[JobIn] = Field(default_factory=list, max_length=10_000)


class IngestReportPublic(BaseModel):
    source: str
    events: int
    applied: int
    duplicates: int
    runs_created: int
    runs_updated: int
    links_created: int
    run_ids: list[str]


class HealthPublic(BaseModel):
    status: str
    detail: str | None = None
