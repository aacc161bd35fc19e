"""Correlation, per ingested batch: declared and suggested links, and incidents.

`correlate_batch(conn, run_ids, now=…)` runs inside the ingest transaction,
right after the batch's runs, refs and exact links are written (exact links
come from `gateway.links`). It reads only what the batch touched and their
neighbours, through indexes — never a scan of history:

0. **Inferred exact links** (`write_inferred_links`): an OpenLineage parent
   run id held by another source's run, and an AWS request id quoted in a
   failure's error message (a task's log tail), linked like equal refs.
1. **Declared links.** For each touched source run (kind `run`) of a job in
   a flow edge (`flow_edge`, looked up by job), the runs of the other job in
   the edge's window (`ix_run_job_sort`) are linked: strength `declared`,
   relation = the edge's verb, from the upstream run to the downstream one,
   evidence = the edge as written, its flow and the time gap.
2. **Incidents.** Each touched failure (`failed`, `missed`) or skip walks its
   neighbourhood — tree parent and root, a source run's failed or skipped
   spans, exact and declared links — at most `MAX_DEPTH` hops and `MAX_NODES`
   runs. If an open incident holds any run found, the failure joins it (two
   open incidents bridged by it merge into the older). If not, it opens one
   only if it is an *opener*: a failed or missed source run (kind `run`) that
   no Airflow try launched and that is not provisional (a ping check a push
   created and nobody adopted yet, `contract.PROVISIONAL`: whoever knows a
   ping URL must not be able to page anyone). A try (kind `attempt`) never opens an incident,
   because a try that fails and is retried is not a failure of the work: the
   task's outcome is its last try, and the DAG run that owns it reports the
   final outcome. A pod launched by a try (it carries `airflow.ti` refs) is
   part of that try, for the same reason. So a flaky task that fails and
   then succeeds on retry opens nothing, while a task that fails for good
   fails its DAG run, which opens the incident and pulls the tries in. A
   job that fails again while an open incident still waits for it to
   recover joins that incident rather than opening another.
3. **Suggested links.** When an incident opens, failed source runs of
   *other* sources within `SUGGEST_WINDOW_S` of its opener whose names share
   most tokens with it are linked with strength `suggested`, a confidence
   and the evidence (at most `MAX_SUGGESTIONS`). Only failures are compared:
   a suggestion answers "is that other red run the same story?", and the
   state index keeps the scan small. Suggestions are shown, never followed
   when grouping.
4. **Recovery.** A succeeded source run of a job that an open incident is
   waiting on marks that job recovered; when all have, the incident resolves.

Roles, root cause and impact are computed by `gateway.incidents`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.contract import LinkStrength, State
from gateway.incidents import (
    RunView,
    attach,
    awaiting_incidents,
    awaiting_jobs,
    launched_runs,
    load_runs,
    mark_recovered,
    open_incidents,
    open_incidents_of,
    open_lone_incidents,
    refresh_incidents,
)
from gateway.links import chunks, dialect_insert, one_of, table

MAX_DEPTH = 4
MAX_IDS_IN_MESSAGE = 5
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
MAX_NODES = 300
MAX_TREE_SPANS = 200
MAX_LINKS_PER_RUN = 100
MAX_DECLARED_PER_EDGE = 20
SUGGEST_WINDOW_S = 300.0
SUGGEST_MIN_SIMILARITY = 0.5
SUGGEST_SCAN = 500
MAX_SUGGESTIONS = 5

BAD = frozenset({State.failed.value, State.missed.value})
IMPACT = frozenset({State.skipped.value})


@dataclass
class CorrelationReport:
    declared_links: int = 0
    inferred_links: int = 0
    suggested_links: int = 0
    incidents_opened: list[int] = field(default_factory=list)
    incidents_touched: set[int] = field(default_factory=set)
    incidents_resolved: list[int] = field(default_factory=list)


def sort_at() -> Any:
    run = table("run")
    return sa.func.coalesce(run.c.started_at, run.c.observed_at)


Light = tuple[str, str, str | None, str, str | None]  # source, kind, job, state, parent_key


def correlate_batch(
    conn: Connection,
    run_ids: Sequence[str],
    *,
    now: datetime | None = None,
    known: Mapping[str, Light] | None = None,
) -> CorrelationReport:
    """Correlate the runs one batch touched (inside the batch's transaction).

    Most runs of a batch are successes of jobs in no flow and no incident: a
    light view of their plain columns settles that, and only the rest (failures,
    skips, flow members, awaited jobs) are read in full. Ingest passes that
    view as `known` (the rows it has just written); without it they are read.
    """
    now = now or datetime.now(UTC)
    report = CorrelationReport()
    if not run_ids:
        return report
    parents: dict[str, str] = {}
    light = _light(conn, run_ids, parents, known)
    edges = flow_edges(conn)
    edge_jobs = {(e.up_source, e.up_job) for e in edges} | {
        (e.down_source, e.down_job) for e in edges
    }
    interesting = {i for i, (_, kind, _, state) in light.items() if state in BAD or state in IMPACT}
    in_flows = {
        i
        for i, (source, kind, job, _) in light.items()
        if kind == "run" and (source, job) in edge_jobs
    }
    succeeded = [
        (i, source, job)
        for i, (source, kind, job, state) in light.items()
        if kind == "run" and job and state == State.succeeded.value
    ]
    awaited = (
        awaiting_jobs(conn, {(source, job) for _, source, job in succeeded}) if succeeded else set()
    )
    recovering = {i for i, source, job in succeeded if (source, job) in awaited}
    runs = load_runs(conn, sorted(interesting | in_flows | recovering))
    if in_flows and edges:
        report.declared_links = write_declared_links(
            conn, [runs[i] for i in sorted(in_flows) if i in runs], edges, now=now
        )
    seeds = [runs[i] for i in sorted(interesting) if i in runs]
    report.inferred_links = write_inferred_links(
        conn, parents, [r for r in seeds if r.state in BAD and r.error_message], now=now
    )
    if seeds:
        _group(conn, seeds, now, report)
    if recovering:
        report.incidents_resolved = mark_recovered(
            conn, [runs[i] for i in sorted(recovering) if i in runs], now=now
        )
    return report


def _light(
    conn: Connection,
    run_ids: Sequence[str],
    parents: dict[str, str],
    known: Mapping[str, Light] | None,
) -> dict[str, tuple[str, str, str | None, str]]:
    """id → (source, kind, job, state): plain strings, cheap for a whole batch.

    Fills `parents` with id → parent_key for runs whose parent is an
    OpenLineage run id (a uuid), which may live in another source.
    """
    rows: Iterable[tuple[str, str, str, str | None, str, str | None]]
    if known is not None:
        rows = ((run_id, *known[run_id]) for run_id in run_ids)
    else:
        run = table("run")
        rows = (
            tuple(found)
            for part in chunks(list(run_ids))
            for found in conn.execute(
                sa.select(
                    run.c.id, run.c.source, run.c.kind, run.c.job, run.c.state, run.c.parent_key
                ).where(one_of(conn, run.c.id, part))
            )
        )
    out: dict[str, tuple[str, str, str | None, str]] = {}
    for run_id, source, kind, job, state, parent_key in rows:
        out[run_id] = (source, kind, job, state)
        if parent_key and _UUID.fullmatch(parent_key):
            parents[run_id] = parent_key.lower()
    return out


def write_inferred_links(
    conn: Connection, parents: dict[str, str], failures: Sequence[RunView], *, now: datetime
) -> int:
    """Exact links the adapters' refs do not make by themselves.

    - An OpenLineage `parent` facet naming a run id that another source's run
      carries as its `openlineage.run` ref (an Airflow try → the Spark job it
      started): relation `parent:openlineage.run`, the parent's run first.
    - An AWS request id quoted in a failure's error message (an Airflow task
      whose log tail says which Lambda invocation failed it): relation
      `ref:aws.request_id`, evidence `found_in: error_message`.
    """
    run_ref = table("run_ref")
    wanted: dict[tuple[str, str], list[tuple[str, str, str]]] = defaultdict(list)
    for run_id, parent_key in parents.items():
        wanted[("openlineage.run", parent_key)].append((run_id, "parent:openlineage.run", "parent"))
    for r in failures:
        for found in _UUID.findall(r.error_message or "")[:MAX_IDS_IN_MESSAGE]:
            wanted[("aws.request_id", found.lower())].append(
                (r.id, "ref:aws.request_id", "error_message")
            )
    if not wanted:
        return 0
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for namespace in sorted({n for n, _ in wanted}):
        values = sorted({v for n, v in wanted if n == namespace})
        for part in chunks(values):
            query = sa.select(run_ref.c.value, run_ref.c.run_id).where(
                run_ref.c.namespace == namespace, one_of(conn, run_ref.c.value, part)
            )
            for value, holder in conn.execute(query):
                for run_id, relation, found_in in wanted[(namespace, value)]:
                    if holder == run_id:
                        continue
                    # The parent (or the invocation the message names) is the `from` end.
                    pair = (holder, run_id) if found_in == "parent" else sorted((holder, run_id))
                    rows[(pair[0], pair[1], relation)] = {
                        "from_run_id": pair[0],
                        "to_run_id": pair[1],
                        "strength": LinkStrength.exact.value,
                        "relation": relation,
                        "confidence": 1.0,
                        "evidence": {
                            "ref": {"namespace": namespace, "value": value},
                            "found_in": found_in,
                        },
                        "created_at": now,
                    }
    if not rows:
        return 0
    link = table("link")
    stmt = dialect_insert(conn, link).on_conflict_do_nothing().returning(link.c.id)
    return len(conn.execute(stmt, list(rows.values())).all())


# --- declared links ----------------------------------------------------------


def flow_edges(conn: Connection) -> list[sa.Row[Any]]:
    """Every declared edge: the flow files' edges, a small table read whole."""
    return list(conn.execute(_all_edges()).all())


@cache
def _all_edges() -> Any:
    return sa.select(table("flow_edge"))


def write_declared_links(
    conn: Connection, runs: Iterable[RunView], edges: Sequence[sa.Row[Any]], *, now: datetime
) -> int:
    """Link each source run to the runs its flow edges expect, by time window."""
    roots = [r for r in runs if r.kind == "run" and r.job and r.at is not None]
    if not roots or not edges:
        return 0
    run = table("run")
    at = sort_at()
    links: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in roots:
        assert r.at is not None
        for e in edges:
            window = timedelta(seconds=e.within_s)
            if (e.up_source, e.up_job) == (r.source, r.job):
                other_source, other_job = e.down_source, e.down_job
                lo, hi = r.at, r.at + window
            elif (e.down_source, e.down_job) == (r.source, r.job):
                other_source, other_job = e.up_source, e.up_job
                lo, hi = r.at - window, r.at
            else:
                continue
            query = (
                sa.select(run.c.id, at)
                .where(
                    run.c.source == other_source,
                    run.c.job == other_job,
                    at >= lo,
                    at <= hi,
                    run.c.kind == "run",
                )
                .order_by(at)
                .limit(MAX_DECLARED_PER_EDGE)
            )
            for other_id, other_at in conn.execute(query):
                if other_id == r.id:
                    continue
                up_id, down_id = (
                    (r.id, other_id)
                    if e.up_source == r.source and e.up_job == r.job
                    else (other_id, r.id)
                )
                up_at, down_at = (r.at, other_at) if up_id == r.id else (other_at, r.at)
                links[(up_id, down_id, e.relation)] = {
                    "from_run_id": up_id,
                    "to_run_id": down_id,
                    "strength": LinkStrength.declared.value,
                    "relation": e.relation,
                    "confidence": 1.0,
                    "evidence": {
                        "flow": e.flow,
                        "edge": e.declared_as,
                        "window_s": e.within_s,
                        "gap_s": round((_aware(down_at) - _aware(up_at)).total_seconds(), 3),
                    },
                    "created_at": now,
                }
    if not links:
        return 0
    link = table("link")
    stmt = dialect_insert(conn, link).on_conflict_do_nothing().returning(link.c.id)
    return len(conn.execute(stmt, list(links.values())).all())


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# --- grouping ------------------------------------------------------------------


@dataclass
class _Found:
    run: RunView
    evidence: dict[str, Any]


@dataclass
class Neighbourhood:
    """Runs reached from the seeds, and which reached which (for components)."""

    found: dict[str, _Found]
    edges: list[tuple[str, str]]

    def components(self) -> list[list[str]]:
        """Connected groups of found runs (union-find over the edges followed)."""
        parent = {i: i for i in self.found}

        def root(i: str) -> str:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for a, b in self.edges:
            if a in parent and b in parent:
                parent[root(a)] = root(b)
        groups: dict[str, list[str]] = defaultdict(list)
        for i in self.found:
            groups[root(i)].append(i)
        return list(groups.values())


def neighbourhood(conn: Connection, seeds: Sequence[RunView]) -> Neighbourhood:
    """Runs reachable from `seeds` by tree and exact/declared links (bounded BFS).

    All seeds of a batch walk together, so each hop is a few `IN` queries for
    the whole batch, not per run.
    """
    run, link = table("run"), table("link")
    found: dict[str, _Found] = {s.id: _Found(s, {"via": "event"}) for s in seeds}
    edges: list[tuple[str, str]] = []
    frontier = list(seeds)
    strong = [LinkStrength.exact.value, LinkStrength.declared.value]

    def reach(
        wanted: dict[str, dict[str, Any]], target: str, origin: str, evidence: dict[str, Any]
    ) -> None:
        edges.append((origin, target))
        if target not in found:
            wanted.setdefault(target, evidence)

    for _ in range(MAX_DEPTH):
        if not frontier or len(found) >= MAX_NODES:
            break
        wanted: dict[str, dict[str, Any]] = {}
        # Tree: the parent and the source run at the top of the tree.
        for node in frontier:
            if node.parent_id:
                reach(wanted, node.parent_id, node.id, {"via": "tree", "child": node.id})
            if node.kind != "run" and node.root_id != node.parent_id:
                reach(wanted, node.root_id, node.id, {"via": "tree", "child": node.id})
        # Tree: a source run's failed or skipped spans.
        # (One source per query: a row-value IN would not use ix_run_root.)
        runs_by_key = {(n.source, n.key): n.id for n in frontier if n.kind == "run"}
        keys_by_source: dict[str, list[str]] = defaultdict(list)
        for source, key in runs_by_key:
            keys_by_source[source].append(key)
        for source, keys in sorted(keys_by_source.items()):
            for part in chunks(sorted(keys)):
                query = (
                    sa.select(run.c.id, run.c.root_key)
                    .where(
                        run.c.source == source,
                        one_of(conn, run.c.root_key, part),
                        run.c.state.in_(sorted(BAD | IMPACT)),
                        run.c.kind != "run",
                    )
                    .limit(MAX_TREE_SPANS * len(part))
                )
                for child_id, root_key in conn.execute(query):
                    origin = runs_by_key[(source, root_key)]
                    reach(wanted, child_id, origin, {"via": "tree", "parent": origin})
        # Links, both directions, exact and declared (never suggested).
        for part in chunks([n.id for n in frontier]):
            query = (
                sa.select(link)
                .where(
                    sa.or_(
                        one_of(conn, link.c.from_run_id, part), one_of(conn, link.c.to_run_id, part)
                    ),
                    link.c.strength.in_(strong),
                )
                .limit(MAX_LINKS_PER_RUN * len(part))
            )
            ids = set(part)
            for row in conn.execute(query).mappings():
                evidence = {
                    "via": "link",
                    "strength": row["strength"],
                    "relation": row["relation"],
                    "link_id": row["id"],
                    "evidence": row["evidence"],
                }
                a, b = row["from_run_id"], row["to_run_id"]
                if a in ids:
                    reach(wanted, b, a, evidence)
                if b in ids:
                    reach(wanted, a, b, evidence)
        room = MAX_NODES - len(found)
        loaded = load_runs(conn, list(wanted)[:room]) if room > 0 else {}
        frontier = []
        for run_id, view in loaded.items():
            found[run_id] = _Found(view, wanted[run_id])
            frontier.append(view)
    return Neighbourhood(found, edges)


def _superseded(conn: Connection, attempts: Sequence[RunView]) -> set[str]:
    """Tries with a newer try of the same task under the same parent."""
    run = table("run")
    out: set[str] = set()
    by_parent: dict[str, list[RunView]] = defaultdict(list)
    for a in attempts:
        if a.parent_id:
            by_parent[a.parent_id].append(a)
    for part in chunks(sorted(by_parent)):
        query = (
            sa.select(run.c.parent_id, run.c.name, sa.func.max(run.c.attempt))
            .where(one_of(conn, run.c.parent_id, part), run.c.kind == "attempt")
            .group_by(run.c.parent_id, run.c.name)
        )
        newest = {(p, n): m for p, n, m in conn.execute(query)}
        for parent_id in part:
            for a in by_parent[parent_id]:
                if newest.get((parent_id, a.name), a.attempt) > a.attempt:
                    out.add(a.id)
    return out


def _group(
    conn: Connection, seeds: list[RunView], now: datetime, report: CorrelationReport
) -> None:
    hood = neighbourhood(conn, seeds)
    found = hood.found
    candidates = [f.run for f in found.values() if f.run.state in BAD or f.run.state in IMPACT]
    superseded = _superseded(conn, [r for r in candidates if r.kind == "attempt"])
    launched = launched_runs(conn, [r.id for r in candidates if r.kind == "run"])
    member_of = open_incidents_of(conn, list(found))
    # A job that fails again while its incident waits for it joins that incident.
    still_failing = awaiting_incidents(
        conn, [r for r in candidates if r.kind == "run" and r.state in BAD and r.id not in launched]
    )
    openers: list[RunView] = []
    alone: list[RunView] = []
    # Refreshed together after the loop; an incident about to be merged away is
    # refreshed first, as it was before it lost its members.
    touched: list[int] = []
    # Opened together after the loop, in this order: nothing later in the loop
    # can reach an incident that did not exist when the batch began.
    opening: list[tuple[RunView, dict[str, _Found]]] = []
    for component in hood.components():
        joining = {
            i: found[i]
            for i in component
            if (found[i].run.state in BAD or found[i].run.state in IMPACT) and i not in superseded
        }
        # Skips alone open nothing; they only join an incident found around them.
        incidents = sorted({member_of[i] for i in component if i in member_of})
        for i in joining:
            run = found[i].run
            again = still_failing.get((run.source, run.job or ""))
            if again is not None and run.kind == "run" and i not in launched:
                incidents = sorted({*incidents, again})
                found[i].evidence = {**found[i].evidence, "job_still_failing": again}
        if incidents:
            if set(incidents[1:]) & set(touched):
                refresh_incidents(conn, touched, now=now)
                touched.clear()
            target = attach(conn, incidents, joining, now=now)
        else:
            candidates_here = [
                f.run
                for f in joining.values()
                if f.run.kind == "run"
                and f.run.state in BAD
                and f.run.id not in launched
                and not f.run.provisional
            ]
            if not candidates_here:
                continue
            opener = min(candidates_here, key=lambda r: (r.failed_at or now, r.id))
            openers.append(opener)
            if set(joining) == {opener.id}:
                alone.append(opener)  # written in bulk below, complete
                continue
            opening.append((opener, joining))
            continue
        touched.append(target)
        report.incidents_touched.add(target)
    opened = open_incidents(conn, opening, now=now)
    report.incidents_opened.extend(opened)
    report.incidents_touched.update(opened)
    refresh_incidents(conn, [*touched, *opened], now=now)
    if alone:
        opened = open_lone_incidents(conn, alone, now=now)
        report.incidents_opened.extend(opened)
        report.incidents_touched.update(opened)
    if openers:
        report.suggested_links += write_suggestions(conn, openers, now=now)


# --- suggestions -----------------------------------------------------------------

_TOKEN = re.compile(r"[a-z0-9]+")


def name_tokens(text: str | None) -> set[str]:
    """Lower-case word tokens of a job or run name.

    Short numbers stay (`shard-3` is not `shard-4`); long ones (dates, ids) go.
    """
    return {t for t in _TOKEN.findall((text or "").lower()) if not (t.isdigit() and len(t) > 4)}


def name_similarity(a: str | None, b: str | None) -> float:
    ta, tb = name_tokens(a), name_tokens(b)
    if not ta or not tb:
        return 0.0
    return len(ta & tb) / len(ta | tb)


def write_suggestions(conn: Connection, openers: Sequence[RunView], *, now: datetime) -> int:
    """Suggested links from each opener to similarly named failures of other sources nearby.

    One index range scan over the batch's time span serves every opener in it.
    """
    timed = [o for o in openers if o.at is not None]
    if not timed:
        return 0
    run, link = table("run"), table("link")
    at = sort_at()
    window = timedelta(seconds=SUGGEST_WINDOW_S)
    lo = min(o.at for o in timed if o.at) - window
    hi = max(o.at for o in timed if o.at) + window
    query = (
        sa.select(run.c.id, run.c.source, run.c.job, run.c.name, at)
        .where(at >= lo, at <= hi, run.c.kind == "run", run.c.state.in_(sorted(BAD)))
        .limit(SUGGEST_SCAN * len(timed))
    )
    nearby = conn.execute(query).all()
    rows: list[dict[str, Any]] = []
    for opener in timed:
        assert opener.at is not None
        mine = opener.job or opener.name
        mine_tokens = name_tokens(mine)
        if not mine_tokens:
            continue
        scored: list[dict[str, Any]] = []
        for other_id, source, job, name, other_at in nearby:
            if source == opener.source:
                continue
            gap = abs((_aware(other_at) - opener.at).total_seconds())
            if gap > SUGGEST_WINDOW_S:
                continue
            theirs = job or name
            similarity = name_similarity(mine, theirs)
            if similarity < SUGGEST_MIN_SIMILARITY:
                continue
            first, second = sorted((opener.id, other_id))
            scored.append(
                {
                    "from_run_id": first,
                    "to_run_id": second,
                    "strength": LinkStrength.suggested.value,
                    "relation": "name_time",
                    "confidence": round(0.6 * similarity + 0.4 * (1.0 - gap / SUGGEST_WINDOW_S), 3),
                    "evidence": {
                        "names": [mine, theirs],
                        "shared_tokens": sorted(mine_tokens & name_tokens(theirs)),
                        "name_similarity": round(similarity, 3),
                        "gap_s": round(gap, 3),
                        "window_s": SUGGEST_WINDOW_S,
                    },
                    "created_at": now,
                }
            )
        scored.sort(key=lambda r: -r["confidence"])
        rows.extend(scored[:MAX_SUGGESTIONS])
    if not rows:
        return 0
    stmt = dialect_insert(conn, link).on_conflict_do_nothing().returning(link.c.id)
    return len(conn.execute(stmt, rows).all())


__all__ = [
    "BAD",
    "IMPACT",
    "CorrelationReport",
    "Neighbourhood",
    "correlate_batch",
    "flow_edges",
    "name_similarity",
    "name_tokens",
    "neighbourhood",
    "write_declared_links",
    "write_inferred_links",
    "write_suggestions",
]
