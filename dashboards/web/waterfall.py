"""Waterfall layout of a trace: rows in causal order, bar geometry, the critical path.

Pure functions over the spans and links `gateway.queries.get_trace` returns.

- **Order.** Each span sits under its parent. A span whose parent is not in
  the view (the root of another system's trace, e.g. the pod a task
  launched) sits under the span it is linked to that started first, since
  links are stored undirected (ordered by run id) and the earlier end is the
  cause. Anything left (cycles, orphans) follows at top level; every span
  appears exactly once.
- **Critical path.** From the top-level row that ends last, repeatedly step to
  the successor (a child, or a span placed under it by a link) that ends
  last; the chain is what decided when the whole thing finished. A running
  span ends "now".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from gateway.store.models import Link, Run


@dataclass(frozen=True)
class WaterfallRow:
    run: Run
    depth: int
    offset_pct: float
    width_pct: float
    critical: bool
    via_link: Link | None
    """The link that placed this span here (None: placed under its parent)."""


@dataclass
class Waterfall:
    rows: list[WaterfallRow] = field(default_factory=list)
    start: datetime | None = None
    end: datetime | None = None
    critical_ids: list[str] = field(default_factory=list)
    omitted: int = 0

    @property
    def span_s(self) -> float:
        if self.start is None or self.end is None:
            return 0.0
        return max(0.0, (self.end - self.start).total_seconds())


def _start(run: Run) -> datetime | None:
    return run.started_at or run.observed_at


def _end(run: Run, now: datetime) -> datetime | None:
    if run.ended_at is not None:
        return run.ended_at
    if run.state in ("running", "queued", "scheduled", "up_for_retry"):
        return now
    return run.ended_at or run.state_at or run.observed_at


def _key_end(run: Run, now: datetime) -> tuple[datetime, datetime, str]:
    end = _end(run, now) or now
    start = _start(run) or end
    return end, start, run.id


def build_waterfall(
    spans: Sequence[Run],
    links: Sequence[Link],
    *,
    now: datetime,
    primary_trace: str,
    max_rows: int = 400,
) -> Waterfall:
    by_id = {s.id: s for s in spans}
    children: dict[str, list[str]] = defaultdict(list)
    via: dict[str, Link] = {}
    placed_under: dict[str, str] = {}
    for span in spans:
        if span.parent_id and span.parent_id in by_id:
            placed_under[span.id] = span.parent_id

    # Orient each link from its earlier-started end to the later one and use
    # it to place a span that has no parent in view.
    for link in links:
        a, b = by_id.get(link.from_run_id), by_id.get(link.to_run_id)
        if a is None or b is None or a.id == b.id:
            continue
        first, second = sorted((a, b), key=lambda r: (_start(r) or now, r.id))
        if second.id in placed_under or second.trace_id == first.trace_id:
            continue
        # Never place a span under one of its own descendants.
        cursor: str | None = first.id
        seen: set[str] = set()
        cyclic = False
        while cursor is not None and cursor not in seen:
            if cursor == second.id:
                cyclic = True
                break
            seen.add(cursor)
            cursor = placed_under.get(cursor)
        if cyclic:
            continue
        placed_under[second.id] = first.id
        via[second.id] = link

    for child, parent in placed_under.items():
        children[parent].append(child)
    for kids in children.values():
        kids.sort(key=lambda i: (_start(by_id[i]) or now, by_id[i].id))

    tops = sorted(
        (s for s in spans if s.id not in placed_under),
        key=lambda r: (r.trace_id != primary_trace, _start(r) or now, r.id),
    )

    order: list[tuple[str, int]] = []
    visited: set[str] = set()

    def walk(run_id: str, depth: int) -> None:
        stack = [(run_id, depth)]
        while stack:
            current, d = stack.pop()
            if current in visited:
                continue
            visited.add(current)
            order.append((current, d))
            for kid in reversed(children.get(current, [])):
                stack.append((kid, d + 1))

    for top in tops:
        walk(top.id, 0)
    for span in spans:  # a cycle of placements leaves spans unvisited
        walk(span.id, 0)

    critical: list[str] = []
    if tops:
        current = max(tops, key=lambda r: _key_end(r, now)).id
        seen_c: set[str] = set()
        while current not in seen_c:
            seen_c.add(current)
            critical.append(current)
            kids = children.get(current, [])
            if not kids:
                break
            current = max(kids, key=lambda i: _key_end(by_id[i], now))

    starts = [t for t in (_start(s) for s in spans) if t is not None]
    ends = [t for t in (_end(s, now) for s in spans) if t is not None]
    view = Waterfall(critical_ids=critical)
    if starts:
        view.start = min(starts)
        view.end = max([*ends, *starts])
    total = view.span_s
    critical_set = set(critical)
    for run_id, depth in order[:max_rows]:
        run = by_id[run_id]
        start, end = _start(run), _end(run, now)
        if view.start is None or start is None or total <= 0:
            offset, width = 0.0, 100.0 if total <= 0 else 0.0
        else:
            offset = (start - view.start).total_seconds() / total * 100
            finish = end if end is not None and end >= start else start
            width = (finish - start).total_seconds() / total * 100
        view.rows.append(
            WaterfallRow(
                run=run,
                depth=depth,
                offset_pct=round(min(100.0, max(0.0, offset)), 3),
                width_pct=round(min(100.0 - min(100.0, offset), max(0.4, width)), 3),
                critical=run_id in critical_set,
                via_link=via.get(run_id),
            )
        )
    view.omitted = max(0, len(order) - max_rows)
    return view


__all__ = ["Waterfall", "WaterfallRow", "build_waterfall"]
