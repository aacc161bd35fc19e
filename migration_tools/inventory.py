"""The migration inventory: every discovered job, its health, its dependencies, its readiness.

`collect_inventory(engine)` reads the `job` table (what discovery stored) and,
per job, the last `days` of its source runs: count and failures in one
grouped SQL query over the window, p50/p95 duration in Python over at most
`max_samples` newest finished runs of that job (an index range on
(source, job)). Dependencies are the declared flow edges (`flow_edge`,
loaded from `mappings/flows`) and the jobs its runs are linked to (`link`,
exact or declared links found by correlation). Readiness comes from
`translate()`: full, partial or none, with the reasons. Waves come from
`waves.plan_waves`. Renderers give Markdown, CSV and JSON.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.contract import JobSpec
from gateway.store.models import FlowEdge, Job, Link, Run
from migration_tools.translate import TranslationError, translate
from migration_tools.waves import WaveInput, plan_waves

DEFAULT_DAYS = 30
MAX_SAMPLES = 2000
FAILED_STATES = ("failed", "missed", "cancelled")
FORMATS = ("markdown", "csv", "json")


@dataclass
class InventoryItem:
    source: str
    key: str
    system: str
    name: str | None
    schedule: str | None
    timezone: str
    owner: str | None
    paused: bool
    migration_state: str
    runs: int = 0
    failures: int = 0
    failure_rate: float | None = None
    p50_s: float | None = None
    p95_s: float | None = None
    tasks: int = 0
    upstream: list[str] = field(default_factory=list)
    downstream: list[str] = field(default_factory=list)
    linked: list[str] = field(default_factory=list)
    readiness: str = "none"
    reasons: list[str] = field(default_factory=list)
    wave: int = 0
    wave_reason: str = ""

    @property
    def ref(self) -> str:
        return f"{self.source}:{self.key}"


@dataclass(frozen=True)
class Inventory:
    generated_at: datetime
    days: int
    items: list[InventoryItem]
    cycles: list[list[str]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "generated_at": self.generated_at.isoformat(),
            "window_days": self.days,
            "jobs": [asdict(i) for i in self.items],
            "cycles": self.cycles,
            "summary": summary(self.items),
        }


def summary(items: Sequence[InventoryItem]) -> dict[str, Any]:
    out: dict[str, Any] = {"jobs": len(items), "readiness": {}, "waves": {}}
    for i in items:
        out["readiness"][i.readiness] = out["readiness"].get(i.readiness, 0) + 1
        out["waves"][str(i.wave)] = out["waves"].get(str(i.wave), 0) + 1
    return out


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def _table(model: Any) -> sa.Table:
    table: sa.Table = model.__table__
    return table


def collect_inventory(
    engine: Engine,
    *,
    now: datetime | None = None,
    days: int = DEFAULT_DAYS,
    max_samples: int = MAX_SAMPLES,
    source: str | None = None,
) -> Inventory:
    now = now or datetime.now(UTC)
    since = now - timedelta(days=days)
    job_t, run_t, edge_t, link_t = _table(Job), _table(Run), _table(FlowEdge), _table(Link)
    items: dict[tuple[str, str], InventoryItem] = {}
    specs: dict[tuple[str, str], dict[str, Any]] = {}
    with engine.connect() as conn:
        query = sa.select(job_t).order_by(job_t.c.source, job_t.c.key)
        if source:
            query = query.where(job_t.c.source == source)
        for row in conn.execute(query):
            ref = (row.source, row.key)
            specs[ref] = row.spec
            items[ref] = InventoryItem(
                source=row.source,
                key=row.key,
                system=row.kind,
                name=row.name,
                schedule=row.schedule,
                timezone=row.timezone,
                owner=row.owner,
                paused=bool(row.paused),
                migration_state=row.migration_state,
            )
        failed = sa.func.sum(sa.case((run_t.c.state.in_(FAILED_STATES), 1), else_=0))
        stats = conn.execute(
            sa.select(run_t.c.source, run_t.c.job, sa.func.count(), failed)
            .where(run_t.c.kind == "run", run_t.c.started_at >= since)
            .group_by(run_t.c.source, run_t.c.job)
        )
        for src, job, count, failures in stats:
            item = items.get((src, job))
            if item is not None:
                item.runs, item.failures = int(count), int(failures or 0)
                item.failure_rate = item.failures / item.runs if item.runs else None
        for ref, item in items.items():
            if not item.runs:
                continue
            rows = conn.execute(
                sa.select(run_t.c.started_at, run_t.c.ended_at)
                .where(
                    run_t.c.source == ref[0],
                    run_t.c.job == ref[1],
                    run_t.c.kind == "run",
                    run_t.c.started_at >= since,
                    run_t.c.ended_at.is_not(None),
                )
                .order_by(run_t.c.started_at.desc())
                .limit(max_samples)
            ).all()
            durations = sorted(
                (e - s).total_seconds() for s, e in rows if s is not None and e is not None
            )
            item.p50_s = _percentile(durations, 0.5)
            item.p95_s = _percentile(durations, 0.95)
        edges: list[tuple[tuple[str, str], tuple[str, str]]] = [
            ((r.up_source, r.up_job), (r.down_source, r.down_job))
            for r in conn.execute(sa.select(edge_t))
        ]
        up_run, down_run = run_t.alias("up_run"), run_t.alias("down_run")
        linked = conn.execute(
            sa.select(up_run.c.source, up_run.c.job, down_run.c.source, down_run.c.job)
            .distinct()
            .select_from(
                link_t.join(up_run, up_run.c.id == link_t.c.from_run_id).join(
                    down_run, down_run.c.id == link_t.c.to_run_id
                )
            )
            .where(up_run.c.started_at >= since)
            .limit(10_000)
        ).all()
    for up, down in edges:
        if up in items:
            items[up].downstream.append(f"{down[0]}:{down[1]}")
        if down in items:
            items[down].upstream.append(f"{up[0]}:{up[1]}")
    for us, uj, ds, dj in linked:
        if (us, uj) == (ds, dj):
            continue
        if (us, uj) in items and f"{ds}:{dj}" not in items[(us, uj)].linked:
            items[(us, uj)].linked.append(f"{ds}:{dj}")
        if (ds, dj) in items and f"{us}:{uj}" not in items[(ds, dj)].linked:
            items[(ds, dj)].linked.append(f"{us}:{uj}")
    for ref, item in items.items():
        try:
            spec = JobSpec.model_validate(specs[ref])
            item.tasks = len(spec.tasks) or 1
            t = translate(spec)
            item.readiness, item.reasons = t.readiness, list(t.reasons)
        except (TranslationError, ValueError) as exc:
            item.readiness, item.reasons = "none", [str(exc)]
    plan = plan_waves(
        [WaveInput(r, i.readiness, i.failure_rate, i.tasks) for r, i in items.items()], edges
    )
    for ref, item in items.items():
        item.wave, item.wave_reason = plan.waves[ref], plan.reasons[ref]
    ordered = sorted(items.values(), key=lambda i: (i.wave, i.tasks, i.failure_rate or 0, i.ref))
    return Inventory(now, days, ordered, [[f"{s}:{k}" for s, k in c] for c in plan.cycles])


# --- renderers ---------------------------------------------------------------

COLUMNS = (
    "wave",
    "source",
    "key",
    "system",
    "schedule",
    "owner",
    "runs",
    "failure_rate",
    "p50_s",
    "p95_s",
    "readiness",
    "upstream",
    "downstream",
    "linked",
    "migration_state",
    "reasons",
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)


def render(inventory: Inventory, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(inventory.as_dict(), indent=2, default=str)
    rows = [{c: _cell(getattr(i, c)) for c in COLUMNS} for i in inventory.items]
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    if fmt == "markdown":
        head = (
            f"# Migration inventory\n\n{len(inventory.items)} jobs; runs over the last "
            f"{inventory.days} days; generated {inventory.generated_at:%Y-%m-%d %H:%M} UTC.\n\n"
        )
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        for r in rows:
            lines.append("| " + " | ".join(r[c].replace("|", "\\|") for c in COLUMNS) + " |")
        tail = ""
        if inventory.cycles:
            tail = "\n\nDependency cycles: " + "; ".join(", ".join(c) for c in inventory.cycles)
        return head + "\n".join(lines) + tail + "\n"
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")


__all__ = ["FORMATS", "Inventory", "InventoryItem", "collect_inventory", "render", "summary"]
