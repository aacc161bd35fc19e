"""Incidents: failures grouped into one story, with a root cause, an impact and an end.

Written by `gateway.correlate` inside the ingest transaction; read by the API
and the dashboard through `list_incidents` and `incident_detail`.

- **Members.** Each run is in at most one incident (`incident_member.run_id`
  is unique) with a role: `root_cause`, `member` or `impact`, and the evidence
  that brought it in (the tree edge or link followed).
- **Root cause.** Failures cause each other along `CAUSES`: a try fails its
  run, a pod fails the try that launched it, an upstream fails what waits for
  it, a callee fails its caller (`invokes`). The root cause is, among the
  failures nothing else in the incident caused, the one with the most
  specific error (`ERROR_SPECIFICITY`), then the earliest.
- **Impact.** Skipped and `upstream_failed` tasks (native state kept in
  `attributes["airflow.state"]`), sensors that timed out, and — computed when
  read — declared downstream jobs that have no run in their window.
- **Resolution.** The incident waits on the jobs of its failed source runs
  (`incident_job`); a later successful run of each marks it recovered, and
  when all have recovered the incident is `resolved`.
- **Merging.** A failure that bridges two open incidents merges the newer into
  the older (`status = merged`, `merged_into`); lists hide merged incidents.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Connection
from sqlmodel import Session

from gateway.contract import PROVISIONAL, LinkStrength, State, span_id_for
from gateway.links import (
    chunks,
    dialect_insert,
    in_parameter,
    one_of,
    one_of_parameter,
    table,
)

# How specific an error kind is: higher names the cause more precisely.
# OOMKilled beats exit 137 beats "task failed". Unknown kinds rank 2.
ERROR_SPECIFICITY: Mapping[str, int] = {
    # the platform named what killed the work
    "OOMKilled": 6,
    "out_of_memory": 6,
    "Evicted": 6,
    "DeadlineExceeded": 5,
    "ImagePullBackOff": 5,
    "ErrImagePull": 5,
    "CreateContainerConfigError": 5,
    "CrashLoopBackOff": 5,
    "throttled": 5,
    "event_age_exceeded": 5,
    "timeout": 5,
    "missed": 5,
    "signal": 4,
    # the work exited badly and said so
    "exit_code": 3,
    "exec_failed": 3,
    "unhandled": 3,
    "handled": 3,
    "BackoffLimitExceeded": 3,
    "Error": 3,
    # a scheduler's verdict with no cause in it
    "failed": 1,
    "fail": 1,
    "killed": 1,
    "task_failed": 1,
    "dag_run_failed": 1,
}
DEFAULT_SPECIFICITY = 2

BAD = frozenset({State.failed.value, State.missed.value})
SKIPPED = frozenset({State.skipped.value})
LAUNCHED_BY = frozenset({"airflow.ti", "airflow.ti_label"})
MAX_MEMBERS = 1000
MAX_NEVER_STARTED_EDGES = 50
# Above any incident id: the largest integer the database drivers take. A larger
# number names no incident, and passed on it overflows the driver (a 500).
MAX_INCIDENT_ID = 2**63 - 1


def specificity(error_kind: str | None, exit_code: int | None = None) -> int:
    if error_kind is None:
        return 0 if exit_code is None else ERROR_SPECIFICITY["exit_code"]
    return ERROR_SPECIFICITY.get(error_kind, DEFAULT_SPECIFICITY)


_RUN_COLUMNS = (
    "id",
    "source",
    "key",
    "kind",
    "job",
    "name",
    "state",
    "attempt",
    "parent_id",
    "root_key",
    "started_at",
    "ended_at",
    "observed_at",
    "state_at",
    "nominal_time",
    "error_kind",
    "error_message",
    "exit_code",
    "attributes",
    "url",
)


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RunView:
    """The columns correlation reads of a run."""

    id: str
    source: str
    key: str
    kind: str
    job: str | None
    name: str | None
    state: str
    attempt: int
    parent_id: str | None
    root_key: str
    started_at: datetime | None
    ended_at: datetime | None
    observed_at: datetime | None
    state_at: datetime | None
    nominal_time: datetime | None
    error_kind: str | None
    error_message: str | None
    exit_code: int | None
    attributes: Mapping[str, Any]
    url: str | None

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> RunView:
        values = dict(row)
        for name in ("started_at", "ended_at", "observed_at", "state_at", "nominal_time"):
            values[name] = _aware(values[name])
        values["attributes"] = dict(values["attributes"] or {})
        return cls(**values)

    @property
    def at(self) -> datetime | None:
        """When the run is placed in time (the index's sort key)."""
        return self.started_at or self.observed_at

    @property
    def failed_at(self) -> datetime | None:
        return self.ended_at or self.state_at or self.observed_at

    @property
    def root_id(self) -> str:
        return span_id_for(self.source, self.root_key)

    @property
    def provisional(self) -> bool:
        """Made by a push on its own and not adopted yet (`contract.PROVISIONAL`)."""
        return self.attributes.get(PROVISIONAL) is True

    @property
    def is_sensor_timeout(self) -> bool:
        text = f"{self.attributes.get('airflow.operator') or ''} {self.name or ''}".lower()
        timed_out = (
            self.error_kind == "timeout" or "timed out" in (self.error_message or "").lower()
        )
        return self.state in BAD and self.kind != "run" and "sensor" in text and timed_out

    @property
    def impact_kind(self) -> str | None:
        if self.state in SKIPPED:
            native = self.attributes.get("airflow.state")
            return str(native) if native in ("upstream_failed", "skipped") else "skipped"
        if self.is_sensor_timeout:
            return "sensor_timeout"
        return None


def load_runs(conn: Connection, run_ids: Iterable[str]) -> dict[str, RunView]:
    run = table("run")
    columns = [run.c[name] for name in _RUN_COLUMNS]
    out: dict[str, RunView] = {}
    for part in chunks(list(dict.fromkeys(run_ids))):
        for row in conn.execute(sa.select(*columns).where(one_of(conn, run.c.id, part))).mappings():
            out[row["id"]] = RunView.of(row)
    return out


def launched_runs(conn: Connection, run_ids: Sequence[str]) -> set[str]:
    """Runs that carry a ref saying an Airflow try launched them (a KPO pod)."""
    run_ref = table("run_ref")
    out: set[str] = set()
    for part in chunks(list(run_ids)):
        query = sa.select(run_ref.c.run_id).where(
            one_of(conn, run_ref.c.run_id, part), run_ref.c.namespace.in_(sorted(LAUNCHED_BY))
        )
        out.update(conn.scalars(query))
    return out


# --- writing -------------------------------------------------------------------


def open_incidents_of(conn: Connection, run_ids: Sequence[str]) -> dict[str, int]:
    """run id → the open incident it is a member of, for those that are in one."""
    member, incident = table("incident_member"), table("incident")
    found: dict[str, int] = {}
    for part in chunks(list(run_ids)):
        query = (
            sa.select(member.c.run_id, member.c.incident_id)
            .join(incident, incident.c.id == member.c.incident_id)
            .where(one_of(conn, member.c.run_id, part), incident.c.status == "open")
        )
        found.update({run_id: int(incident_id) for run_id, incident_id in conn.execute(query)})
    return found


def _add_members(
    conn: Connection,
    incident_id: int,
    joining: Mapping[str, Any],
    now: datetime,
    *,
    role: str = "member",
) -> None:
    if not joining:
        return
    member = table("incident_member")
    rows = [
        {
            "incident_id": incident_id,
            "run_id": run_id,
            "role": role,
            "evidence": found.evidence,
            "joined_at": now,
        }
        for run_id, found in joining.items()
    ]
    conn.execute(dialect_insert(conn, member).on_conflict_do_nothing(), rows)


def _insert_incidents(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Insert incident rows; their ids, in the order of `rows`.

    Each row's root run is its own (openers are distinct runs), so the ids are
    matched by it: asking the driver to keep parameter order instead makes
    SQLAlchemy insert one row per statement.
    """
    incident = table("incident")
    roots = [r["root_run_id"] for r in rows]
    if len(set(roots)) != len(roots):
        stmt = incident.insert().returning(incident.c.id, sort_by_parameter_order=True)
        return [int(r[0]) for r in conn.execute(stmt, list(rows)).all()]
    stmt = incident.insert().returning(incident.c.id, incident.c.root_run_id)
    by_root = {root: int(i) for i, root in conn.execute(stmt, list(rows)).all()}
    return [by_root[root] for root in roots]


def open_incident(
    conn: Connection, opener: RunView, joining: Mapping[str, Any], *, now: datetime
) -> int:
    """A new open incident around `opener` with the runs in `joining` (then refresh it)."""
    return open_incidents(conn, [(opener, joining)], now=now)[0]


def open_incidents(
    conn: Connection, opening: Sequence[tuple[RunView, Mapping[str, Any]]], *, now: datetime
) -> list[int]:
    """New open incidents, one per (opener, joining), in order (then refresh them).

    One insert for the incidents and one for their members, however many.
    """
    if not opening:
        return []
    member = table("incident_member")
    ids = _insert_incidents(
        conn,
        [
            {
                "status": "open",
                "title": _title(opener),
                "opened_at": opener.failed_at or now,
                "detected_at": now,
                "updated_at": now,
                "root_run_id": opener.id,
                "root_error_kind": opener.error_kind,
                "flows": [],
            }
            for opener, _ in opening
        ],
    )
    joined = [
        {
            "incident_id": incident_id,
            "run_id": run_id,
            "role": "member",
            "evidence": found.evidence,
            "joined_at": now,
        }
        for incident_id, (_, joining) in zip(ids, opening, strict=True)
        for run_id, found in joining.items()
    ]
    if joined:
        conn.execute(dialect_insert(conn, member).on_conflict_do_nothing(), joined)
    return ids


def open_lone_incidents(
    conn: Connection, openers: Sequence[RunView], *, now: datetime
) -> list[int]:
    """Incidents of one failure each, written whole and in bulk.

    Nothing else is there to weigh, so each is complete without
    `refresh_incident`: the opener is the root cause, its job is awaited.
    """
    member, job_t = table("incident_member"), table("incident_job")
    flows = _flows_by_job(conn, openers)
    ids = _insert_incidents(
        conn,
        [
            {
                "status": "open",
                "title": _title(o),
                "opened_at": o.failed_at or now,
                "detected_at": now,
                "updated_at": now,
                "root_run_id": o.id,
                "root_error_kind": o.error_kind,
                "flows": sorted(flows.get((o.source, o.job or ""), ())),
                "resolved_at": None,
                "merged_into": None,
            }
            for o in openers
        ],
    )
    conn.execute(
        dialect_insert(conn, member).on_conflict_do_nothing(),
        [
            {
                "incident_id": incident_id,
                "run_id": o.id,
                "role": "root_cause",
                "evidence": {"via": "event"},
                "joined_at": now,
            }
            for incident_id, o in zip(ids, openers, strict=True)
        ],
    )
    awaited = [
        {
            "incident_id": incident_id,
            "source": o.source,
            "job": o.job,
            "failed_at": o.at or o.failed_at,
        }
        for incident_id, o in zip(ids, openers, strict=True)
        if o.job
    ]
    if awaited:
        conn.execute(dialect_insert(conn, job_t).on_conflict_do_nothing(), awaited)
    return ids


def attach(
    conn: Connection, incidents: Sequence[int], joining: Mapping[str, Any], *, now: datetime
) -> int:
    """Join `joining` to the oldest of `incidents`, merging the others into it."""
    incident, member, job = table("incident"), table("incident_member"), table("incident_job")
    target, others = min(incidents), sorted(set(incidents) - {min(incidents)})
    for other in others:
        conn.execute(
            member.update().where(member.c.incident_id == other).values(incident_id=target)
        )
        rows = conn.execute(sa.select(job).where(job.c.incident_id == other)).mappings().all()
        if rows:
            conn.execute(
                dialect_insert(conn, job).on_conflict_do_nothing(),
                [{**dict(r), "incident_id": target} for r in rows],
            )
            conn.execute(job.delete().where(job.c.incident_id == other))
        conn.execute(
            incident.update()
            .where(incident.c.id == other)
            .values(status="merged", merged_into=target, updated_at=now)
        )
    _add_members(conn, target, joining, now)
    return target


def _title(root: RunView) -> str:
    what = root.job or root.name or root.key
    why = root.error_kind or root.state
    return f"{root.source}:{what} {why}"


@dataclass(frozen=True)
class Cause:
    cause: str
    effect: str
    why: str


def causes_among(members: Mapping[str, RunView], links: Iterable[Mapping[str, Any]]) -> list[Cause]:
    """Which member's failure explains which (see the module docstring)."""
    out: list[Cause] = []
    for m in members.values():
        for parent in {m.parent_id, m.root_id} - {None, m.id}:
            if parent in members:
                out.append(Cause(m.id, str(parent), "tree"))
    for row in links:
        a, b = row["from_run_id"], row["to_run_id"]
        if a not in members or b not in members:
            continue
        relation, strength = row["relation"], row["strength"]
        if strength == LinkStrength.declared.value:
            cause, effect = (b, a) if relation == "invokes" else (a, b)
            out.append(Cause(cause, effect, f"declared:{relation}"))
            # What failed under the effect (its tries, a sensor) was caused too.
            for m in members.values():
                if m.kind != "run" and m.root_id == effect:
                    out.append(Cause(cause, m.id, f"declared:{relation}"))
            continue
        ra, rb = members[a], members[b]
        if relation.startswith("ref:airflow.ti"):
            cause, effect = (a, b) if ra.kind == "run" and rb.kind != "run" else (b, a)
        else:
            # An equal ref says who called whom only by time: the callee fails first.
            fa, fb = ra.failed_at, rb.failed_at
            cause, effect = (
                (a, b)
                if (fa or datetime.max.replace(tzinfo=UTC))
                <= (fb or datetime.max.replace(tzinfo=UTC))
                else (b, a)
            )
        out.append(Cause(cause, effect, relation))
    return out


def choose_root(members: Mapping[str, RunView], causes: Sequence[Cause]) -> str | None:
    """The root cause: an uncaused failure, most specific error first, then earliest."""
    bad = {i: m for i, m in members.items() if m.state in BAD}
    if not bad:
        return None
    caused = {c.effect for c in causes if c.cause in bad and c.cause != c.effect}
    candidates = [m for i, m in bad.items() if i not in caused] or list(bad.values())
    far = datetime.max.replace(tzinfo=UTC)
    return min(
        candidates,
        key=lambda m: (-specificity(m.error_kind, m.exit_code), m.failed_at or far, m.id),
    ).id


def _member_links(conn: Connection, ids: Sequence[str]) -> list[Mapping[str, Any]]:
    link = table("link")
    strong = [LinkStrength.exact.value, LinkStrength.declared.value]
    rows: dict[int, Mapping[str, Any]] = {}
    for part in chunks(list(ids)):
        query = sa.select(link).where(
            one_of(conn, link.c.from_run_id, part), link.c.strength.in_(strong)
        )
        for row in conn.execute(query).mappings():
            rows[row["id"]] = dict(row)
    idset = set(ids)
    return [r for r in rows.values() if r["to_run_id"] in idset]


def refresh_incident(conn: Connection, incident_id: int, *, now: datetime) -> None:
    """Recompute roles, root cause, title, flows and awaited jobs of one incident."""
    refresh_incidents(conn, [incident_id], now=now)


@dataclass
class _Refreshed:
    """What `refresh_incidents` computed for one incident, before writing it."""

    roles: dict[str, str]
    latest: dict[tuple[str, str], datetime]
    values: dict[str, Any]


def _members_of(conn: Connection, incident_ids: Sequence[int]) -> dict[int, dict[str, str]]:
    """incident → {run id: current role}, at most `MAX_MEMBERS` runs each."""
    member = table("incident_member")
    out: dict[int, dict[str, str]] = {i: {} for i in incident_ids}
    for part in chunks(list(incident_ids)):
        numbered = (
            sa.select(
                member.c.incident_id,
                member.c.run_id,
                member.c.role,
                sa.func.row_number().over(partition_by=member.c.incident_id).label("n"),
            )
            .where(one_of(conn, member.c.incident_id, part))
            .subquery()
        )
        query = sa.select(numbered.c.incident_id, numbered.c.run_id, numbered.c.role).where(
            numbered.c.n <= MAX_MEMBERS
        )
        for incident_id, run_id, role in conn.execute(query):
            out[int(incident_id)][run_id] = role
    return out


def refresh_incidents(conn: Connection, incident_ids: Iterable[int], *, now: datetime) -> None:
    """Recompute roles, root cause, title, flows and awaited jobs of these incidents.

    A fixed number of statements however many incidents a batch touched: each
    read is one `IN` query for all of them, each write one `executemany`; the
    per-incident computation is the same as for one.
    """
    ids = sorted(dict.fromkeys(int(i) for i in incident_ids))
    if not ids:
        return
    incident, member, job_t = table("incident"), table("incident_member"), table("incident_job")
    current = _members_of(conn, ids)
    runs = load_runs(conn, [r for roles in current.values() for r in roles])
    # A run is in at most one incident, so a link between two members of the
    # same incident belongs to it, and any other link to none.
    incident_of = {r: i for i, roles in current.items() for r in roles}
    links_of: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for row in _member_links(conn, list(runs)):
        i = incident_of[row["from_run_id"]]
        if incident_of[row["to_run_id"]] == i:
            links_of[i].append(row)
    launched = launched_runs(
        conn, [m.id for m in runs.values() if m.state in BAD and m.kind == "run"]
    )
    flows = _flows_by_job(conn, runs.values())
    done: dict[int, _Refreshed] = {}
    for incident_id in ids:
        members = {r: runs[r] for r in current[incident_id] if r in runs}
        causes = causes_among(members, links_of[incident_id])
        root = choose_root(members, causes)
        roles = {
            i: "root_cause" if i == root else ("impact" if m.impact_kind else "member")
            for i, m in members.items()
        }
        bad = [m for m in members.values() if m.state in BAD]
        awaited = [m for m in bad if m.kind == "run" and m.job and m.id not in launched]
        latest: dict[tuple[str, str], datetime] = {}
        for m in awaited:
            when = m.at or m.failed_at
            if m.job and when is not None:
                key = (m.source, m.job)
                latest[key] = max(when, latest.get(key, when))
        values: dict[str, Any] = {
            "updated_at": now,
            "flows": sorted(
                {f for m in members.values() for f in flows.get((m.source, m.job or ""), ())}
            ),
        }
        if root is not None:
            r = members[root]
            values.update(root_run_id=root, root_error_kind=r.error_kind, title=_title(r))
        opened = [m.failed_at for m in bad if m.failed_at]
        if opened:
            values["opened_at"] = min(opened)
        done[incident_id] = _Refreshed(roles, latest, values)
    # Roles: only those that changed, one statement per role (run ids are unique).
    by_role: dict[str, list[str]] = defaultdict(list)
    for incident_id, d in done.items():
        for run_id, role in d.roles.items():
            if current[incident_id].get(run_id) != role:
                by_role[role].append(run_id)
    for role in ("root_cause", "member", "impact"):
        for part in chunks(sorted(by_role[role])):
            conn.execute(
                member.update().where(one_of(conn, member.c.run_id, part)).values(role=role)
            )
    awaited_rows = [
        {"incident_id": incident_id, "source": s, "job": j, "failed_at": at}
        for incident_id, d in done.items()
        for (s, j), at in d.latest.items()
    ]
    if awaited_rows:
        conn.execute(dialect_insert(conn, job_t).on_conflict_do_nothing(), awaited_rows)
        # A later failure of a job it waits on moves the bar for recovery.
        conn.execute(
            job_t.update()
            .where(
                job_t.c.incident_id == sa.bindparam("b_incident"),
                job_t.c.source == sa.bindparam("b_source"),
                job_t.c.job == sa.bindparam("b_job"),
                job_t.c.failed_at < sa.bindparam("b_at"),
            )
            .values(failed_at=sa.bindparam("b_at"), recovered_at=None, recovered_by=None),
            [
                {
                    "b_incident": r["incident_id"],
                    "b_source": r["source"],
                    "b_job": r["job"],
                    "b_at": r["failed_at"],
                }
                for r in awaited_rows
            ],
        )
    # Incidents: one executemany per set of columns written (at most four).
    shaped: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for incident_id, d in done.items():
        shaped[tuple(sorted(d.values))].append(
            {"b_id": incident_id, **{f"v_{k}": v for k, v in d.values.items()}}
        )
    for columns, rows in shaped.items():
        conn.execute(
            incident.update()
            .where(incident.c.id == sa.bindparam("b_id"))
            .values({c: sa.bindparam(f"v_{c}") for c in columns}),
            rows,
        )


def _flows_by_job(conn: Connection, runs: Iterable[RunView]) -> dict[tuple[str, str], set[str]]:
    flow_job = table("flow_job")
    jobs_by_source: dict[str, set[str]] = defaultdict(set)
    for r in runs:
        if r.job:
            jobs_by_source[r.source].add(r.job)
    out: dict[tuple[str, str], set[str]] = defaultdict(set)
    for source, jobs in sorted(jobs_by_source.items()):
        for part in chunks(sorted(jobs)):
            query = sa.select(flow_job.c.flow, flow_job.c.job).where(
                flow_job.c.source == source, one_of(conn, flow_job.c.job, part)
            )
            for flow, job in conn.execute(query):
                out[(source, job)].add(flow)
    return out


def awaiting_incidents(conn: Connection, runs: Iterable[RunView]) -> dict[tuple[str, str], int]:
    """(source, job) → the open incident still waiting for that job to succeed."""
    job_t, incident = table("incident_job"), table("incident")
    jobs_by_source: dict[str, set[str]] = defaultdict(set)
    for r in runs:
        if r.job:
            jobs_by_source[r.source].add(r.job)
    out: dict[tuple[str, str], int] = {}
    for source, jobs in sorted(jobs_by_source.items()):
        for part in chunks(sorted(jobs)):
            query = (
                sa.select(job_t.c.job, job_t.c.incident_id)
                .join(incident, incident.c.id == job_t.c.incident_id)
                .where(
                    job_t.c.source == source,
                    one_of(conn, job_t.c.job, part),
                    job_t.c.recovered_at.is_(None),
                    incident.c.status == "open",
                )
            )
            for job, incident_id in conn.execute(query):
                key = (source, job)
                out[key] = min(out.get(key, incident_id), int(incident_id))
    return out


def awaiting_jobs(conn: Connection, jobs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of these (source, job) an open incident is waiting on to succeed."""
    by_source: dict[str, set[str]] = defaultdict(set)
    for source, job in jobs:
        by_source[source].add(job)
    out: set[tuple[str, str]] = set()
    query = _awaiting_query(conn.dialect.name)
    for source, names in sorted(by_source.items()):
        for part in chunks(sorted(names)):
            found = conn.scalars(query, {"source": source, "jobs": in_parameter(conn, part)})
            out.update((source, job) for job in found)
    return out


@cache
def _awaiting_query(dialect: str) -> Any:
    # Built once: every ingest batch with a successful run asks it.
    job_t, incident = table("incident_job"), table("incident")
    return (
        sa.select(job_t.c.job)
        .join(incident, incident.c.id == job_t.c.incident_id)
        .where(
            job_t.c.source == sa.bindparam("source"),
            one_of_parameter(dialect, job_t.c.job, "jobs"),
            job_t.c.recovered_at.is_(None),
            incident.c.status == "open",
        )
    )


def mark_recovered(conn: Connection, runs: Sequence[RunView], *, now: datetime) -> list[int]:
    """Record successful runs of awaited jobs; resolve incidents whose jobs all recovered."""
    incident, job_t = table("incident"), table("incident_job")
    by_job: dict[tuple[str, str], list[RunView]] = defaultdict(list)
    for r in runs:
        if r.job and r.at is not None:
            by_job[(r.source, r.job)].append(r)
    if not by_job:
        return []
    touched: set[int] = set()
    jobs_by_source: dict[str, list[str]] = defaultdict(list)
    for source, job in by_job:
        jobs_by_source[source].append(job)
    # One source per query: a row-value IN would not use ix_incident_job_job.
    found: list[Any] = []
    for source, jobs in sorted(jobs_by_source.items()):
        for part in chunks(sorted(jobs)):
            query = (
                sa.select(job_t)
                .join(incident, incident.c.id == job_t.c.incident_id)
                .where(
                    job_t.c.source == source,
                    one_of(conn, job_t.c.job, part),
                    job_t.c.recovered_at.is_(None),
                    incident.c.status == "open",
                )
            )
            found.extend(conn.execute(query).mappings())
    updates: list[dict[str, Any]] = []
    for row in found:
        failed_at = _aware(row["failed_at"])
        later = [
            r
            for r in by_job[(row["source"], row["job"])]
            if failed_at is None or (r.at and r.at > failed_at)
        ]
        if not later:
            continue
        first = min(later, key=lambda r: (r.at, r.id))
        updates.append(
            {
                "b_incident": row["incident_id"],
                "b_source": row["source"],
                "b_job": row["job"],
                "recovered_at": first.ended_at or first.at,
                "recovered_by": first.id,
            }
        )
        touched.add(row["incident_id"])
    if not updates:
        return []
    conn.execute(
        job_t.update().where(
            job_t.c.incident_id == sa.bindparam("b_incident"),
            job_t.c.source == sa.bindparam("b_source"),
            job_t.c.job == sa.bindparam("b_job"),
        ),
        updates,
    )
    pending_q = (
        sa.select(
            job_t.c.incident_id,
            sa.func.count(job_t.c.job).filter(job_t.c.recovered_at.is_(None)),
            sa.func.max(job_t.c.recovered_at),
        )
        .where(job_t.c.incident_id.in_(sorted(touched)))
        .group_by(job_t.c.incident_id)
    )
    done = {int(i): last for i, pending, last in conn.execute(pending_q) if not pending}
    if done:
        conn.execute(
            incident.update()
            .where(incident.c.id == sa.bindparam("b_id"), incident.c.status == "open")
            .values(status="resolved", resolved_at=sa.bindparam("b_resolved"), updated_at=now),
            [
                {"b_id": incident_id, "b_resolved": _aware(last) or now}
                for incident_id, last in sorted(done.items())
            ],
        )
    return sorted(done)


# --- reading -------------------------------------------------------------------


class RunBrief(BaseModel):
    id: str
    source: str
    kind: str
    job: str | None
    name: str | None
    key: str
    state: str
    native_state: str | None
    started_at: datetime | None
    ended_at: datetime | None
    error_kind: str | None
    error_message: str | None
    exit_code: int | None
    url: str | None

    @classmethod
    def of(cls, r: RunView) -> RunBrief:
        native = r.attributes.get("airflow.state") or r.attributes.get("kestra.state")
        return cls(
            id=r.id,
            source=r.source,
            kind=r.kind,
            job=r.job,
            name=r.name,
            key=r.key,
            state=r.state,
            native_state=str(native) if native is not None else None,
            started_at=r.started_at,
            ended_at=r.ended_at,
            error_kind=r.error_kind,
            error_message=r.error_message,
            exit_code=r.exit_code,
            url=r.url,
        )


class IncidentSummary(BaseModel):
    id: int
    status: str
    title: str
    opened_at: datetime
    detected_at: datetime | None
    resolved_at: datetime | None
    root_run_id: str | None
    root_error_kind: str | None
    flows: list[str]
    merged_into: int | None


class IncidentsPage(BaseModel):
    data: list[IncidentSummary]
    next_cursor: str | None


class ChainStep(BaseModel):
    """A member run, its role, why it is here, and what its failure caused."""

    run: RunBrief
    role: str
    specificity: int
    evidence: dict[str, Any]
    causes: list[str]
    caused_by: list[str]


class ImpactItem(BaseModel):
    kind: str  # upstream_failed | skipped | sensor_timeout | never_started
    run: RunBrief | None = None
    job: str | None = None
    edge: str | None = None
    flow: str | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    window_closed: bool | None = None


class LinkEvidence(BaseModel):
    from_run_id: str
    to_run_id: str
    strength: str
    relation: str
    confidence: float
    evidence: dict[str, Any]


class TimelineEntry(BaseModel):
    at: datetime
    what: str
    run_id: str | None = None


class AwaitedJob(BaseModel):
    source: str
    job: str
    failed_at: datetime | None
    recovered_at: datetime | None
    recovered_by: str | None


class IncidentDetail(IncidentSummary):
    root_cause: RunBrief | None
    chain: list[ChainStep]
    impact: list[ImpactItem]
    links: list[LinkEvidence]
    suggestions: list[LinkEvidence]
    jobs: list[AwaitedJob]
    timeline: list[TimelineEntry]


def _summary(row: Mapping[Any, Any]) -> IncidentSummary:
    return IncidentSummary(
        id=row["id"],
        status=row["status"],
        title=row["title"],
        opened_at=_aware(row["opened_at"]) or datetime.min.replace(tzinfo=UTC),
        detected_at=_aware(row["detected_at"]),
        resolved_at=_aware(row["resolved_at"]),
        root_run_id=row["root_run_id"],
        root_error_kind=row["root_error_kind"],
        flows=list(row["flows"] or []),
        merged_into=row["merged_into"],
    )


def list_incidents(
    session: Session, *, status: str | None = None, limit: int = 50, cursor: str | None = None
) -> IncidentsPage:
    """Incidents newest first (by `opened_at`, then id); merged ones only when asked.

    A bad `cursor` raises `gateway.queries.InvalidCursor`.
    """
    # Imported here: gateway.queries pulls in the runtime, which imports ingest,
    # which calls gateway.correlate, which imports this module.
    from gateway.queries import InvalidCursor, _cursor_instant, _decode_cursor, _encode_cursor

    incident = table("incident")
    limit = max(1, min(limit, 500))
    query = sa.select(incident)
    if status:
        query = query.where(incident.c.status == status)
    else:
        query = query.where(incident.c.status != "merged")
    if cursor:
        ts_text, last = _decode_cursor(cursor, 2)
        last_ts = _cursor_instant(ts_text)
        # An id the column can hold: a larger one overflows the driver (a 500).
        if type(last) is not int or not 0 <= last <= MAX_INCIDENT_ID:
            raise InvalidCursor("cursor is not one this server issued")
        query = query.where(
            sa.or_(
                incident.c.opened_at < last_ts,
                sa.and_(incident.c.opened_at == last_ts, incident.c.id < last),
            )
        )
    query = query.order_by(incident.c.opened_at.desc(), incident.c.id.desc()).limit(limit + 1)
    rows = [_summary(r) for r in session.connection().execute(query).mappings()]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = _encode_cursor([rows[-1].opened_at.astimezone(UTC).isoformat(), rows[-1].id])
    return IncidentsPage(data=rows, next_cursor=next_cursor)


def incident_detail(
    session: Session, incident_id: int, *, now: datetime | None = None
) -> IncidentDetail | None:
    """One incident with its causal chain, evidence, impact and timeline (None if unknown)."""
    now = now or datetime.now(UTC)
    conn = session.connection()
    incident, member, job_t = table("incident"), table("incident_member"), table("incident_job")
    row = conn.execute(sa.select(incident).where(incident.c.id == incident_id)).mappings().first()
    if row is None:
        return None
    summary = _summary(row)
    mrows = (
        conn.execute(
            sa.select(member).where(member.c.incident_id == incident_id).limit(MAX_MEMBERS)
        )
        .mappings()
        .all()
    )
    runs = load_runs(conn, [m["run_id"] for m in mrows])
    ids = list(runs)
    strong = _member_links(conn, ids)
    causes = causes_among(runs, strong)
    causes_of: dict[str, list[str]] = defaultdict(list)
    caused_by: dict[str, list[str]] = defaultdict(list)
    for c in causes:
        if c.cause in runs and runs[c.cause].state in BAD:
            causes_of[c.cause].append(c.effect)
            caused_by[c.effect].append(c.cause)
    order = {"root_cause": 0, "member": 1, "impact": 2}
    chain = sorted(
        (
            ChainStep(
                run=RunBrief.of(runs[m["run_id"]]),
                role=m["role"],
                specificity=specificity(runs[m["run_id"]].error_kind, runs[m["run_id"]].exit_code),
                evidence=dict(m["evidence"] or {}),
                causes=sorted(set(causes_of[m["run_id"]])),
                caused_by=sorted(set(caused_by[m["run_id"]])),
            )
            for m in mrows
            if m["run_id"] in runs
        ),
        key=lambda s: (order.get(s.role, 3), s.run.ended_at or s.run.started_at or now, s.run.id),
    )
    impact = [
        ImpactItem(kind=runs[s.run.id].impact_kind or "", run=s.run)
        for s in chain
        if runs[s.run.id].impact_kind
    ]
    impact.extend(_never_started(conn, runs.values(), now))
    suggestions = _suggestions(conn, ids)
    jobs = [
        AwaitedJob(
            source=j["source"],
            job=j["job"],
            failed_at=_aware(j["failed_at"]),
            recovered_at=_aware(j["recovered_at"]),
            recovered_by=j["recovered_by"],
        )
        for j in conn.execute(sa.select(job_t).where(job_t.c.incident_id == incident_id)).mappings()
    ]
    root = runs.get(summary.root_run_id or "")
    return IncidentDetail(
        **summary.model_dump(),
        root_cause=RunBrief.of(root) if root else None,
        chain=chain,
        impact=impact,
        links=[_link_evidence(r) for r in strong],
        suggestions=suggestions,
        jobs=jobs,
        timeline=_timeline(summary, runs.values(), jobs),
    )


def _link_evidence(row: Mapping[Any, Any]) -> LinkEvidence:
    return LinkEvidence(
        from_run_id=row["from_run_id"],
        to_run_id=row["to_run_id"],
        strength=row["strength"],
        relation=row["relation"],
        confidence=float(row["confidence"]),
        evidence=dict(row["evidence"] or {}),
    )


def _suggestions(conn: Connection, ids: Sequence[str]) -> list[LinkEvidence]:
    link = table("link")
    out: dict[int, LinkEvidence] = {}
    for part in chunks(list(ids)):
        query = sa.select(link).where(
            sa.or_(one_of(conn, link.c.from_run_id, part), one_of(conn, link.c.to_run_id, part)),
            link.c.strength == LinkStrength.suggested.value,
        )
        for row in conn.execute(query).mappings():
            out[row["id"]] = _link_evidence(row)
    return sorted(out.values(), key=lambda s: -s.confidence)


def _never_started(conn: Connection, runs: Iterable[RunView], now: datetime) -> list[ImpactItem]:
    """Declared downstream jobs of failed source runs with no run in their window."""
    failed = [r for r in runs if r.state in BAD and r.kind == "run" and r.job and r.at]
    if not failed:
        return []
    edge, run = table("flow_edge"), table("run")
    at = sa.func.coalesce(run.c.started_at, run.c.observed_at)
    out: list[ImpactItem] = []
    for r in failed:
        assert r.at is not None
        query = (
            sa.select(edge)
            .where(edge.c.up_source == r.source, edge.c.up_job == r.job)
            .limit(MAX_NEVER_STARTED_EDGES)
        )
        for e in conn.execute(query).mappings():
            start, end = r.at, r.at + timedelta(seconds=e["within_s"])
            exists = conn.scalar(
                sa.select(run.c.id)
                .where(
                    run.c.source == e["down_source"],
                    run.c.job == e["down_job"],
                    at >= start,
                    at <= end,
                    run.c.kind == "run",
                )
                .limit(1)
            )
            if exists is None:
                out.append(
                    ImpactItem(
                        kind="never_started",
                        job=f"{e['down_source']}:{e['down_job']}",
                        edge=e["declared_as"],
                        flow=e["flow"],
                        window_start=start,
                        window_end=end,
                        window_closed=now >= end,
                    )
                )
    return out


def _timeline(
    summary: IncidentSummary, runs: Iterable[RunView], jobs: Sequence[AwaitedJob]
) -> list[TimelineEntry]:
    entries: list[TimelineEntry] = []
    for r in runs:
        label = f"{r.source}:{r.job or r.name or r.key}"
        if r.name and r.kind != "run":
            label += f" / {r.name}"
        if r.started_at:
            entries.append(TimelineEntry(at=r.started_at, what=f"{label} started", run_id=r.id))
        end = r.failed_at if r.state in BAD or r.state in SKIPPED else r.ended_at
        if end:
            why = f" ({r.error_kind})" if r.error_kind else ""
            entries.append(TimelineEntry(at=end, what=f"{label} {r.state}{why}", run_id=r.id))
    # Data time, like every other entry (detected_at is the gateway's own clock).
    entries.append(TimelineEntry(at=summary.opened_at, what="incident opened"))
    for j in jobs:
        if j.recovered_at:
            entries.append(
                TimelineEntry(
                    at=j.recovered_at, what=f"{j.source}:{j.job} recovered", run_id=j.recovered_by
                )
            )
    if summary.resolved_at:
        entries.append(TimelineEntry(at=summary.resolved_at, what="incident resolved"))
    return sorted(entries, key=lambda e: e.at)


__all__ = [
    "DEFAULT_SPECIFICITY",
    "ERROR_SPECIFICITY",
    "AwaitedJob",
    "Cause",
    "ChainStep",
    "ImpactItem",
    "IncidentDetail",
    "IncidentSummary",
    "IncidentsPage",
    "LinkEvidence",
    "RunBrief",
    "RunView",
    "TimelineEntry",
    "attach",
    "awaiting_incidents",
    "awaiting_jobs",
    "causes_among",
    "choose_root",
    "incident_detail",
    "launched_runs",
    "list_incidents",
    "load_runs",
    "mark_recovered",
    "open_incident",
    "open_incidents",
    "open_incidents_of",
    "open_lone_incidents",
    "refresh_incident",
    "refresh_incidents",
    "specificity",
]
