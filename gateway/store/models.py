"""The store's tables.

One row per run (a span) with its current merged state, an append-only event
log that is both the state history and the dedupe key for replays, refs in an
indexed table, links with their evidence, jobs, flows, source status, cursors,
leases and API tokens. Every schema change is an Alembic migration in
`gateway/migrations/versions/`; `tests/gateway/test_migrations.py` checks that
the migrations produce exactly these tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from gateway.store.types import JSONType, UTCDateTime


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def _json() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))


class Run(SQLModel, table=True):
    """The current merged view of one span: a source run, a task or one try."""

    __tablename__ = "run"
    __table_args__ = (
        UniqueConstraint("source", "key", name="uq_run_source_key"),
        Index("ix_run_observed", "observed_at", "id"),
        Index("ix_run_started", "started_at", "id"),
        Index("ix_run_source_job", "source", "job"),
        Index("ix_run_state_observed", "state", "observed_at"),
        Index("ix_run_trace", "trace_id"),
        Index("ix_run_parent", "parent_id"),
        Index("ix_run_root", "source", "root_key"),
    )

    id: str = Field(sa_column=Column(String(16), primary_key=True))
    trace_id: str = Field(sa_column=Column(String(32), nullable=False))
    trace_adopted: bool = Field(default=False, description="trace id came from a W3C ref")
    parent_id: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    source: str = Field(sa_column=Column(String(128), nullable=False))
    key: str = Field(sa_column=Column(String(1024), nullable=False))
    parent_key: str | None = Field(default=None, sa_column=Column(String(1024), nullable=True))
    root_key: str = Field(sa_column=Column(String(1024), nullable=False))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    job: str | None = Field(default=None, sa_column=Column(String(1024), nullable=True))
    name: str | None = Field(default=None, sa_column=Column(String(1024), nullable=True))
    state: str = Field(sa_column=Column(String(16), nullable=False))
    state_at: datetime | None = _ts()
    state_pushed: bool = Field(
        default=False, description="the state came from a push, not from the source's API"
    )
    attempt: int = Field(default=1, sa_column=Column(Integer, nullable=False))
    started_at: datetime | None = _ts()
    ended_at: datetime | None = _ts()
    observed_at: datetime | None = _ts()
    nominal_time: datetime | None = _ts()
    error_kind: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))
    error_message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    exit_code: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    attributes: dict[str, Any] = _json()
    url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime | None = _ts()
    updated_at: datetime | None = _ts()


class RunEventRow(SQLModel, table=True):
    """Append-only log of every distinct event applied to a run.

    `digest` is a hash of the event's canonical JSON: replaying an event that
    is already here changes nothing. Ordered by `seq`, it is the run's state
    history and the audit of what each source said.
    """

    __tablename__ = "run_event"
    __table_args__ = (
        UniqueConstraint("digest", name="uq_run_event_digest"),
        Index("ix_run_event_run", "run_id", "observed_at"),
    )

    seq: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    digest: str = Field(sa_column=Column(String(64), nullable=False))
    run_id: str = Field(sa_column=Column(String(16), nullable=False))
    source: str = Field(sa_column=Column(String(128), nullable=False))
    state: str = Field(sa_column=Column(String(16), nullable=False))
    attempt: int = Field(default=1, sa_column=Column(Integer, nullable=False))
    observed_at: datetime | None = _ts()
    received_at: datetime | None = _ts()
    payload: dict[str, Any] = _json()


class RunRef(SQLModel, table=True):
    """A correlation key of a run; equal (namespace, value) across runs link them."""

    __tablename__ = "run_ref"
    __table_args__ = (Index("ix_run_ref_run", "run_id"),)

    namespace: str = Field(sa_column=Column(String(64), primary_key=True))
    value: str = Field(sa_column=Column(String(512), primary_key=True))
    run_id: str = Field(sa_column=Column(String(16), primary_key=True))


class Link(SQLModel, table=True):
    """A relation between two runs, with its strength and the evidence for it."""

    __tablename__ = "link"
    __table_args__ = (
        UniqueConstraint("from_run_id", "to_run_id", "strength", "relation", name="uq_link"),
        Index("ix_link_to", "to_run_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    from_run_id: str = Field(sa_column=Column(String(16), nullable=False))
    to_run_id: str = Field(sa_column=Column(String(16), nullable=False))
    strength: str = Field(sa_column=Column(String(16), nullable=False))
    relation: str = Field(sa_column=Column(String(64), nullable=False))
    confidence: float = 1.0
    evidence: dict[str, Any] = _json()
    created_at: datetime | None = _ts()


class Job(SQLModel, table=True):
    """A schedulable unit as discovered in its source (a JobSpec, stored)."""

    __tablename__ = "job"
    __table_args__ = (UniqueConstraint("source", "key", name="uq_job_source_key"),)

    id: str = Field(sa_column=Column(String(16), primary_key=True))
    source: str = Field(sa_column=Column(String(128), nullable=False, index=True))
    key: str = Field(sa_column=Column(String(1024), nullable=False))
    kind: str = Field(sa_column=Column(String(32), nullable=False))
    name: str | None = Field(default=None, sa_column=Column(String(1024), nullable=True))
    schedule: str | None = Field(default=None, sa_column=Column(String(256), nullable=True))
    timezone: str = Field(default="UTC", sa_column=Column(String(64), nullable=False))
    paused: bool = False
    owner: str | None = Field(default=None, sa_column=Column(String(256), nullable=True))
    labels: dict[str, Any] = _json()
    spec: dict[str, Any] = _json()
    spec_digest: str | None = Field(
        default=None,
        sa_column=Column(String(64), nullable=True),
        description="sha256 of the spec's canonical JSON: rediscovery skips unchanged jobs",
    )
    migration_state: str = Field(default="observed", sa_column=Column(String(32), nullable=False))
    discovered_at: datetime | None = _ts()
    updated_at: datetime | None = _ts()


class Flow(SQLModel, table=True):
    """A business flow: jobs across sources with declared edges and an owner."""

    __tablename__ = "flow"

    name: str = Field(sa_column=Column(String(256), primary_key=True))
    owner: str | None = Field(default=None, sa_column=Column(String(256), nullable=True))
    description: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    definition: dict[str, Any] = _json()
    updated_at: datetime | None = _ts()


class SourceRow(SQLModel, table=True):
    """A configured source and its health as the runtime last saw it."""

    __tablename__ = "source"

    name: str = Field(sa_column=Column(String(128), primary_key=True))
    kind: str = Field(sa_column=Column(String(64), nullable=False))
    interval_s: float = 30.0
    status: str = Field(default="unknown", sa_column=Column(String(16), nullable=False))
    last_poll_at: datetime | None = _ts()
    last_success_at: datetime | None = _ts()
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    last_error_at: datetime | None = _ts()
    consecutive_failures: int = 0
    lag_s: float | None = None
    holder: str | None = Field(default=None, sa_column=Column(String(256), nullable=True))
    updated_at: datetime | None = _ts()


class Cursor(SQLModel, table=True):
    """A source's poll position; written in the same transaction as its events."""

    __tablename__ = "source_cursor"

    source: str = Field(sa_column=Column(String(128), primary_key=True))
    value: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    updated_at: datetime | None = _ts()


class Lease(SQLModel, table=True):
    """Who holds a source's poller, until when. Taken over only after expiry."""

    __tablename__ = "lease"

    name: str = Field(sa_column=Column(String(128), primary_key=True))
    holder: str = Field(sa_column=Column(String(256), nullable=False))
    acquired_at: datetime | None = _ts()
    expires_at: datetime | None = _ts(nullable=False)


class ApiToken(SQLModel, table=True):
    """A bearer token, stored only as its SHA-256; the plain token is shown once."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(128), nullable=False))
    role: str = Field(sa_column=Column(String(16), nullable=False))
    # The sources an `ingest` token may push events into; None for the other roles.
    sources: list[str] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))
    token_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    prefix: str = Field(sa_column=Column(String(16), nullable=False))
    created_at: datetime | None = _ts()
    last_used_at: datetime | None = _ts()
    revoked_at: datetime | None = _ts()


class DashboardSession(SQLModel, table=True):
    """A dashboard login, stored so logout, revocation and expiry end it on every replica.

    Keyed by the SHA-256 of the cookie's nonce: a stolen database yields no
    usable cookie (the cookie also needs the signing key).
    """

    __tablename__ = "dashboard_session"

    nonce_hash: str = Field(sa_column=Column(String(64), primary_key=True))
    token_id: int = Field(sa_column=Column(Integer, nullable=False, index=True))
    created_at: datetime | None = _ts()
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))


class WebhookDelivery(SQLModel, table=True):
    """A signed webhook already accepted; a second delivery of it is a replay."""

    __tablename__ = "webhook_delivery"

    digest: str = Field(sa_column=Column(String(64), primary_key=True))
    source: str = Field(sa_column=Column(String(128), nullable=False))
    received_at: datetime | None = _ts(index=True)


# --- Flows, incidents and alerts (gateway.flows, gateway.correlate, gateway.incidents,
# gateway.alerts). Flow definitions live in `flow`; these index them for lookups.


class FlowJob(SQLModel, table=True):
    """A job (by source and run `job`) that belongs to a flow."""

    __tablename__ = "flow_job"
    __table_args__ = (Index("ix_flow_job_job", "source", "job"),)

    flow: str = Field(sa_column=Column(String(256), primary_key=True))
    source: str = Field(sa_column=Column(String(128), primary_key=True))
    job: str = Field(sa_column=Column(String(1024), primary_key=True))


class FlowEdge(SQLModel, table=True):
    """A declared edge: a run of `downstream` is expected within `within_s` of `upstream`'s."""

    __tablename__ = "flow_edge"
    __table_args__ = (
        Index("ix_flow_edge_up", "up_source", "up_job"),
        Index("ix_flow_edge_down", "down_source", "down_job"),
    )

    id: int | None = Field(default=None, primary_key=True)
    flow: str = Field(sa_column=Column(String(256), nullable=False))
    up_source: str = Field(sa_column=Column(String(128), nullable=False))
    up_job: str = Field(sa_column=Column(String(1024), nullable=False))
    down_source: str = Field(sa_column=Column(String(128), nullable=False))
    down_job: str = Field(sa_column=Column(String(1024), nullable=False))
    relation: str = Field(sa_column=Column(String(32), nullable=False))
    within_s: float = 3600.0
    declared_as: str = Field(default="", sa_column=Column(Text, nullable=False))


class Incident(SQLModel, table=True):
    """One failure story: the runs that failed together, a root cause, an impact."""

    __tablename__ = "incident"
    __table_args__ = (
        Index("ix_incident_opened", "opened_at", "id"),
        Index("ix_incident_status_opened", "status", "opened_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    status: str = Field(default="open", sa_column=Column(String(16), nullable=False))
    title: str = Field(default="", sa_column=Column(Text, nullable=False))
    opened_at: datetime | None = _ts(nullable=False)
    detected_at: datetime | None = _ts()
    updated_at: datetime | None = _ts()
    resolved_at: datetime | None = _ts()
    root_run_id: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    root_error_kind: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))
    merged_into: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    flows: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))


class IncidentMember(SQLModel, table=True):
    """A run in an incident: root_cause, member or impact, and why it is there."""

    __tablename__ = "incident_member"
    __table_args__ = (Index("ix_incident_member_run", "run_id", unique=True),)

    incident_id: int = Field(sa_column=Column(Integer, primary_key=True))
    run_id: str = Field(sa_column=Column(String(16), primary_key=True))
    role: str = Field(default="member", sa_column=Column(String(16), nullable=False))
    evidence: dict[str, Any] = _json()
    joined_at: datetime | None = _ts()


class IncidentJob(SQLModel, table=True):
    """A job whose failure is in an incident; the incident resolves when all recover."""

    __tablename__ = "incident_job"
    __table_args__ = (Index("ix_incident_job_job", "source", "job"),)

    incident_id: int = Field(sa_column=Column(Integer, primary_key=True))
    source: str = Field(sa_column=Column(String(128), primary_key=True))
    job: str = Field(sa_column=Column(String(1024), primary_key=True))
    failed_at: datetime | None = _ts()
    recovered_at: datetime | None = _ts()
    recovered_by: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))


class AlertDelivery(SQLModel, table=True):
    """A notification claimed by one replica; the unique key makes the claim atomic."""

    __tablename__ = "alert_delivery"
    __table_args__ = (UniqueConstraint("incident_id", "kind", name="uq_alert_delivery"),)

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(sa_column=Column(Integer, nullable=False))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    status: str = Field(default="sending", sa_column=Column(String(16), nullable=False))
    attempts: int = 1
    claimed_by: str = Field(default="", sa_column=Column(String(256), nullable=False))
    claimed_at: datetime | None = _ts()
    sent_at: datetime | None = _ts()
    targets: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


# --- Migration lifecycle (migration_tools.lifecycle). One row per job in the
# lifecycle; every action on it is a row in migration_audit.


class Migration(SQLModel, table=True):
    """Where one job stands in its migration to Kestra, and what each side holds."""

    __tablename__ = "migration"
    __table_args__ = (
        UniqueConstraint("source", "job_key", name="uq_migration_job"),
        Index("ix_migration_state", "state"),
    )

    job_id: str = Field(sa_column=Column(String(16), primary_key=True))
    source: str = Field(sa_column=Column(String(128), nullable=False))
    job_key: str = Field(sa_column=Column(String(1024), nullable=False))
    state: str = Field(default="observed", sa_column=Column(String(32), nullable=False))
    namespace: str | None = Field(default=None, sa_column=Column(String(150), nullable=True))
    flow_id: str | None = Field(default=None, sa_column=Column(String(100), nullable=True))
    readiness: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    reasons: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    translated_yaml: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    wrap_flow_id: str | None = Field(default=None, sa_column=Column(String(100), nullable=True))
    wrap_yaml: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # What Switchyard changed on each side, so rollback restores exactly that.
    sides: dict[str, Any] = _json()
    deployed_revision: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    created_at: datetime | None = _ts()
    updated_at: datetime | None = _ts()
    state_changed_at: datetime | None = _ts()
    # The action holding the job while it works on the schedulers (see
    # migration_tools.lifecycle): taken by one conditional UPDATE, cleared by
    # the commit of its outcome; a claim past its expiry may be taken over.
    claim_token: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    claimed_by: str | None = Field(default=None, sa_column=Column(String(256), nullable=True))
    claim_action: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    claim_expires_at: datetime | None = _ts()


class MigrationAudit(SQLModel, table=True):
    """One lifecycle action: who, when, what, the state before and after, the outcome."""

    __tablename__ = "migration_audit"
    __table_args__ = (Index("ix_migration_audit_job", "job_id", "id"),)

    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    job_id: str = Field(sa_column=Column(String(16), nullable=False))
    source: str = Field(sa_column=Column(String(128), nullable=False))
    job_key: str = Field(sa_column=Column(String(1024), nullable=False))
    actor: str = Field(sa_column=Column(String(256), nullable=False))
    at: datetime | None = _ts(nullable=False)
    action: str = Field(sa_column=Column(String(32), nullable=False))
    before: str = Field(sa_column=Column(String(32), nullable=False))
    after: str = Field(sa_column=Column(String(32), nullable=False))
    outcome: str = Field(sa_column=Column(String(16), nullable=False))
    detail: dict[str, Any] = _json()
