"""Flow files: which jobs across sources form one business flow, and how they connect.

A flow file (`mappings/flows/<name>.yaml`, format in `mappings/flows/README.md`)
names a flow, its owner, its member jobs as `<source>:<job>` and declared
edges such as `etl-01:sync_inventory invokes lambda-prod:inventory-sync within
5m`. `load_flows(directory)` reads and validates every `*.yaml`/`*.yml` file
there; any problem is a `FlowError` naming the file and the key
(`orders.yaml: edges[1]: unknown relation 'calls'`), raised before anything is
written. `sync_flows(engine, flows)` replaces the stored flows with these in
one transaction (idempotent; several replicas may run it at start).

Every edge is stored normalised as (upstream, downstream, relation, within):
a run of the downstream job is expected to start within `within` after a run
of the upstream job starts. `A waits_for B` is stored as upstream B,
downstream A; the other verbs keep their order.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from pydantic import BaseModel
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from gateway.config import Config, parse_duration
from gateway.links import dialect_insert, table
from gateway.store.db import session_scope

log = logging.getLogger(__name__)

DEFAULT_FLOWS_DIR = "mappings/flows"
DEFAULT_WITHIN_S = 3600.0

# verb → (the written left side is upstream?, failures propagate callee→caller?)
# `invokes` is a synchronous call: the callee's failure fails the caller, and a
# caller that fails before calling leaves the callee never started.
RELATIONS: dict[str, bool] = {
    "invokes": True,
    "triggers": True,
    "feeds": True,
    "waits_for": False,
}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_SOURCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_EDGE = re.compile(r"^\s*(\S+)\s+([a-z_]+)\s+(\S+)(?:\s+within\s+(\S+))?\s*$")
_TOP_KEYS = {"name", "owner", "description", "jobs", "edges"}
_EDGE_KEYS = {"from", "relation", "to", "within"}


class FlowError(ValueError):
    """A flow file is wrong; the message names the file and the key."""

    def __init__(self, file: str, key: str, message: str) -> None:
        super().__init__(f"{file}: {key}: {message}" if key else f"{file}: {message}")
        self.file = file
        self.key = key


@dataclass(frozen=True, order=True)
class JobRef:
    """A job as runs name it: the configured source and the run's `job` value."""

    source: str
    job: str

    def __str__(self) -> str:
        return f"{self.source}:{self.job}"


@dataclass(frozen=True)
class Edge:
    upstream: JobRef
    downstream: JobRef
    relation: str
    within_s: float
    declared_as: str

    @property
    def callee_fails_caller(self) -> bool:
        return self.relation == "invokes"


@dataclass(frozen=True)
class FlowDef:
    name: str
    owner: str | None
    description: str | None
    jobs: tuple[JobRef, ...]
    edges: tuple[Edge, ...]
    file: str = ""
    definition: dict[str, Any] = field(default_factory=dict)


def parse_job_ref(text: Any, *, file: str, key: str) -> JobRef:
    """`<source>:<job>`; the job part may contain anything (CronJob keys have '/')."""
    if not isinstance(text, str) or ":" not in text:
        raise FlowError(file, key, f"{text!r} is not <source>:<job>")
    source, _, job = text.strip().partition(":")
    if not _SOURCE.match(source):
        raise FlowError(file, key, f"{source!r} is not a source name")
    if not job:
        raise FlowError(file, key, f"{text!r} names no job after the ':'")
    return JobRef(source, job)


def _edge(node: Any, *, file: str, key: str, members: set[JobRef]) -> Edge:
    if isinstance(node, str):
        m = _EDGE.match(node)
        if not m:
            raise FlowError(
                file, key, f"{node!r} is not '<source>:<job> <relation> <source>:<job> [within D]'"
            )
        left_text, relation, right_text, within_text = m.groups()
        declared = " ".join(node.split())
    elif isinstance(node, dict):
        unknown = set(node) - _EDGE_KEYS
        if unknown:
            raise FlowError(file, f"{key}.{sorted(unknown)[0]}", "unknown key")
        for required in ("from", "relation", "to"):
            if required not in node:
                raise FlowError(file, f"{key}.{required}", "is required")
        left_text, relation, right_text = node["from"], node["relation"], node["to"]
        within_text = node.get("within")
        declared = f"{left_text} {relation} {right_text}" + (
            f" within {within_text}" if within_text is not None else ""
        )
    else:
        raise FlowError(file, key, "an edge is a sentence or a mapping {from, relation, to}")
    if relation not in RELATIONS:
        raise FlowError(
            file,
            f"{key}" if isinstance(node, str) else f"{key}.relation",
            f"unknown relation {relation!r}; use one of {', '.join(RELATIONS)}",
        )
    left = parse_job_ref(left_text, file=file, key=key if isinstance(node, str) else f"{key}.from")
    right = parse_job_ref(right_text, file=file, key=key if isinstance(node, str) else f"{key}.to")
    for ref in (left, right):
        if ref not in members:
            raise FlowError(file, key, f"job {str(ref)!r} is not listed in jobs")
    if left == right:
        raise FlowError(file, key, "an edge needs two different jobs")
    try:
        within = DEFAULT_WITHIN_S if within_text is None else parse_duration(within_text)
    except ValueError as exc:
        raise FlowError(
            file, f"{key}.within" if isinstance(node, dict) else key, str(exc)
        ) from None
    if within <= 0:
        raise FlowError(file, key, "within must be positive")
    upstream, downstream = (left, right) if RELATIONS[relation] else (right, left)
    return Edge(upstream, downstream, relation, within, declared)


def parse_flow(data: Any, *, file: str) -> FlowDef:
    """One flow file's content, validated; errors name `file` and the key."""
    if not isinstance(data, dict):
        raise FlowError(file, "", "the top level must be a mapping")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise FlowError(
            file, sorted(unknown)[0], f"unknown key; allowed: {', '.join(sorted(_TOP_KEYS))}"
        )
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise FlowError(file, "name", "required: letters, digits, '.', '_' or '-'")
    owner = data.get("owner")
    if owner is not None and not isinstance(owner, str):
        raise FlowError(file, "owner", "must be a string")
    description = data.get("description")
    if description is not None and not isinstance(description, str):
        raise FlowError(file, "description", "must be a string")
    jobs_node = data.get("jobs")
    if not isinstance(jobs_node, list) or not jobs_node:
        raise FlowError(file, "jobs", "required: a non-empty list of <source>:<job>")
    jobs: list[JobRef] = []
    for i, node in enumerate(jobs_node):
        ref = parse_job_ref(node, file=file, key=f"jobs[{i}]")
        if ref in jobs:
            raise FlowError(file, f"jobs[{i}]", f"{str(ref)!r} is listed twice")
        jobs.append(ref)
    edges_node = data.get("edges") or []
    if not isinstance(edges_node, list):
        raise FlowError(file, "edges", "must be a list")
    members = set(jobs)
    edges = tuple(
        _edge(node, file=file, key=f"edges[{i}]", members=members)
        for i, node in enumerate(edges_node)
    )
    return FlowDef(
        name=name,
        owner=owner,
        description=description,
        jobs=tuple(jobs),
        edges=edges,
        file=file,
        definition=data,
    )


def load_flows(directory: str | Path) -> list[FlowDef]:
    """Every flow file in `directory` (sorted by name), validated; flow names unique."""
    path = Path(directory)
    if not path.is_dir():
        raise FlowError(str(path), "", "flows directory does not exist")
    flows: list[FlowDef] = []
    seen: dict[str, str] = {}
    for file in sorted([*path.glob("*.yaml"), *path.glob("*.yml")]):
        try:
            data = yaml.safe_load(file.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise FlowError(str(file), "", f"cannot read as YAML: {exc}") from None
        flow = parse_flow(data, file=str(file))
        if flow.name in seen:
            raise FlowError(
                str(file), "name", f"flow {flow.name!r} is also defined in {seen[flow.name]}"
            )
        seen[flow.name] = str(file)
        flows.append(flow)
    return flows


def configured_flows_dir(config: Config) -> tuple[Path, bool]:
    """The flows directory and whether the config named it (else the default)."""
    if config.flows_dir:
        flows_dir = Path(config.flows_dir)
        if not flows_dir.is_absolute() and config.path and Path(config.path).is_file():
            flows_dir = Path(config.path).parent / flows_dir
        return flows_dir, True
    return Path(DEFAULT_FLOWS_DIR), False


def load_configured_flows(config: Config) -> list[FlowDef]:
    """The config's flows; a missing default directory means no flows, a named one is an error."""
    flows_dir, named = configured_flows_dir(config)
    if not named and not flows_dir.is_dir():
        return []
    flows = load_flows(flows_dir)
    known = {s.name for s in config.sources}
    if known:
        for flow in flows:
            for i, ref in enumerate(flow.jobs):
                if ref.source not in known:
                    log.warning(
                        "%s: jobs[%d]: source %r is not configured here", flow.file, i, ref.source
                    )
    return flows


def sync_flows(engine: Engine, flows: Sequence[FlowDef], *, now: datetime | None = None) -> None:
    """Make the stored flows exactly `flows` (one transaction, safe to repeat)."""
    now = now or datetime.now(UTC)
    with session_scope(engine) as session:
        write_flows(session.connection(), flows, now=now)


def write_flows(conn: Connection, flows: Iterable[FlowDef], *, now: datetime) -> None:
    flows = list(flows)
    flow_t, job_t, edge_t = table("flow"), table("flow_job"), table("flow_edge")
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(1398341888, 7)"))
    conn.execute(edge_t.delete())
    conn.execute(job_t.delete())
    conn.execute(flow_t.delete())
    if not flows:
        return
    conn.execute(
        dialect_insert(conn, flow_t),
        [
            {
                "name": f.name,
                "owner": f.owner,
                "description": f.description,
                "definition": {**f.definition, "file": f.file},
                "updated_at": now,
            }
            for f in flows
        ],
    )
    jobs = [{"flow": f.name, "source": j.source, "job": j.job} for f in flows for j in f.jobs]
    conn.execute(dialect_insert(conn, job_t), jobs)
    edges = [
        {
            "flow": f.name,
            "up_source": e.upstream.source,
            "up_job": e.upstream.job,
            "down_source": e.downstream.source,
            "down_job": e.downstream.job,
            "relation": e.relation,
            "within_s": e.within_s,
            "declared_as": e.declared_as,
        }
        for f in flows
        for e in f.edges
    ]
    if edges:
        conn.execute(dialect_insert(conn, edge_t), edges)


# --- reading: flows with their jobs and recent flow runs -----------------------

RECENT_FLOW_RUNS = 10
MAX_FLOW_RUN_SPANS = 100


class FlowJobPublic(BaseModel):
    source: str
    job: str
    last_state: str | None = None
    last_run_id: str | None = None
    last_at: datetime | None = None


class FlowEdgePublic(BaseModel):
    upstream: str
    downstream: str
    relation: str
    within_s: float
    declared_as: str


class FlowRunMember(BaseModel):
    run_id: str
    source: str
    job: str | None
    state: str
    started_at: datetime | None
    ended_at: datetime | None
    linked_by: str | None = None


class FlowRunPublic(BaseModel):
    """Runs of a flow's jobs stitched together by its declared edges."""

    started_at: datetime | None
    state: str
    runs: list[FlowRunMember]


class FlowPublic(BaseModel):
    name: str
    owner: str | None
    description: str | None
    file: str | None
    jobs: list[FlowJobPublic]
    edges: list[FlowEdgePublic]
    recent_runs: list[FlowRunPublic]


class FlowsPublic(BaseModel):
    data: list[FlowPublic]


def _flow_state(states: Iterable[str]) -> str:
    found = set(states)
    for state in ("failed", "missed", "running", "queued", "scheduled", "up_for_retry"):
        if state in found:
            return state
    return "succeeded" if found <= {"succeeded", "skipped"} else sorted(found)[0]


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _flow(conn: Connection, row: Any, recent: int) -> FlowPublic:
    job_t, edge_t, run, link = table("flow_job"), table("flow_edge"), table("run"), table("link")
    at = sa.func.coalesce(run.c.started_at, run.c.observed_at)
    listed = [str(j) for j in (row.definition or {}).get("jobs") or []]
    jobs = sorted(
        conn.execute(sa.select(job_t).where(job_t.c.flow == row.name)).mappings().all(),
        key=lambda j: (
            listed.index(f"{j['source']}:{j['job']}")
            if f"{j['source']}:{j['job']}" in listed
            else len(listed),
            j["source"],
            j["job"],
        ),
    )
    edges = conn.execute(sa.select(edge_t).where(edge_t.c.flow == row.name)).mappings().all()
    members = {(j["source"], j["job"]) for j in jobs}
    downstream = {(e["down_source"], e["down_job"]) for e in edges}
    job_views: list[FlowJobPublic] = []
    entries: list[Any] = []
    for j in jobs:
        query = (
            sa.select(
                run.c.id,
                run.c.source,
                run.c.job,
                run.c.state,
                run.c.started_at,
                run.c.ended_at,
                at.label("at"),
            )
            .where(run.c.source == j["source"], run.c.job == j["job"], run.c.kind == "run")
            .order_by(at.desc())
            .limit(recent)
        )
        rows = conn.execute(query).all()
        last = rows[0] if rows else None
        job_views.append(
            FlowJobPublic(
                source=j["source"],
                job=j["job"],
                last_state=last.state if last else None,
                last_run_id=last.id if last else None,
                last_at=_aware(last.at) if last else None,
            )
        )
        if (j["source"], j["job"]) not in downstream or not edges:
            entries.extend(rows)
    entries.sort(key=lambda r: _aware(r.at) or datetime.min.replace(tzinfo=UTC), reverse=True)
    flow_runs: list[FlowRunPublic] = []
    relations = {e["relation"] for e in edges}
    for entry in entries[:recent]:
        spans = {
            entry.id: FlowRunMember(
                run_id=entry.id,
                source=entry.source,
                job=entry.job,
                state=entry.state,
                started_at=_aware(entry.started_at),
                ended_at=_aware(entry.ended_at),
            )
        }
        frontier = [entry.id]
        while frontier and len(spans) < MAX_FLOW_RUN_SPANS:
            query = (
                sa.select(
                    link.c.to_run_id,
                    link.c.relation,
                    run.c.source,
                    run.c.job,
                    run.c.state,
                    run.c.started_at,
                    run.c.ended_at,
                )
                .join(run, run.c.id == link.c.to_run_id)
                .where(
                    link.c.from_run_id.in_(frontier),
                    link.c.strength == "declared",
                    link.c.relation.in_(sorted(relations)),
                )
            )
            frontier = []
            for to_id, relation, source, job, state, started, ended in conn.execute(query):
                if to_id in spans or (source, job) not in members:
                    continue
                spans[to_id] = FlowRunMember(
                    run_id=to_id,
                    source=source,
                    job=job,
                    state=state,
                    started_at=_aware(started),
                    ended_at=_aware(ended),
                    linked_by=relation,
                )
                frontier.append(to_id)
        flow_runs.append(
            FlowRunPublic(
                started_at=_aware(entry.started_at) or _aware(entry.at),
                state=_flow_state(s.state for s in spans.values()),
                runs=list(spans.values()),
            )
        )
    definition = row.definition or {}
    return FlowPublic(
        name=row.name,
        owner=row.owner,
        description=row.description,
        file=definition.get("file"),
        jobs=job_views,
        edges=[
            FlowEdgePublic(
                upstream=f"{e['up_source']}:{e['up_job']}",
                downstream=f"{e['down_source']}:{e['down_job']}",
                relation=e["relation"],
                within_s=e["within_s"],
                declared_as=e["declared_as"],
            )
            for e in edges
        ],
        recent_runs=flow_runs,
    )


def list_flows(session: Session, *, recent: int = 5) -> FlowsPublic:
    """Every flow with its jobs (last run each), edges and recent stitched flow runs."""
    conn = session.connection()
    flow_t = table("flow")
    rows = conn.execute(sa.select(flow_t).order_by(flow_t.c.name)).all()
    return FlowsPublic(data=[_flow(conn, row, recent) for row in rows])


def flow_detail(
    session: Session, name: str, *, recent: int = RECENT_FLOW_RUNS
) -> FlowPublic | None:
    conn = session.connection()
    flow_t = table("flow")
    row = conn.execute(sa.select(flow_t).where(flow_t.c.name == name)).first()
    return None if row is None else _flow(conn, row, recent)


__all__ = [
    "DEFAULT_FLOWS_DIR",
    "RELATIONS",
    "Edge",
    "FlowDef",
    "FlowError",
    "FlowPublic",
    "FlowsPublic",
    "JobRef",
    "configured_flows_dir",
    "flow_detail",
    "list_flows",
    "load_configured_flows",
    "load_flows",
    "parse_flow",
    "parse_job_ref",
    "sync_flows",
    "write_flows",
]
