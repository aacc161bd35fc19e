"""Geometry for the server-rendered charts: stacked run counts, time axes, the Gantt.

Pure functions from query results to numbers the templates draw as SVG or
CSS widths. Colours are assigned per source from a fixed palette chosen to
keep AA contrast against white; every chart also has a text equivalent in
its template (a table or labels), so colour is never the only carrier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gateway.queries import RunCounts
from gateway.store.models import Run

# Dark enough for 3:1 against white (graphical objects, WCAG 1.4.11).
PALETTE = ["#1f5fbf", "#b35900", "#2e7d32", "#8e24aa", "#c62828", "#00796b", "#5d4037"]

CHART_W = 720
CHART_H = 160


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    source: str
    count: int
    label: str
    colour: str


@dataclass
class StackedBars:
    bars: list[Bar] = field(default_factory=list)
    legend: list[tuple[str, str, int]] = field(default_factory=list)
    ticks: list[tuple[float, str]] = field(default_factory=list)
    max_total: int = 0
    width: int = CHART_W
    height: int = CHART_H


def colour_for(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def stacked_bars(counts: RunCounts) -> StackedBars:
    """One bar per bucket, stacked by source, scaled to the busiest bucket."""
    chart = StackedBars()
    n = counts.buckets
    if n == 0:
        return chart
    totals = [sum(row[i] for row in counts.counts.values()) for i in range(n)]
    chart.max_total = max(totals) if totals else 0
    slot = CHART_W / n
    for index, (source, row) in enumerate(counts.counts.items()):
        chart.legend.append((source, colour_for(index), sum(row)))
    for i in range(n):
        start = counts.since + timedelta(seconds=counts.bucket_s * i)
        y = float(CHART_H)
        for index, (source, row) in enumerate(counts.counts.items()):
            if not row[i] or not chart.max_total:
                continue
            h = row[i] / chart.max_total * (CHART_H - 4)
            y -= h
            chart.bars.append(
                Bar(
                    x=round(i * slot + 1, 2),
                    y=round(y, 2),
                    w=round(max(1.0, slot - 2), 2),
                    h=round(h, 2),
                    source=source,
                    count=row[i],
                    label=f"{source}: {row[i]} runs from {start:%Y-%m-%d %H:%M} UTC",
                    colour=colour_for(index),
                )
            )
    step = max(1, n // 6)
    for i in range(0, n, step):
        start = counts.since + timedelta(seconds=counts.bucket_s * i)
        chart.ticks.append((round(i * slot, 2), f"{start:%H:%M}"))
    return chart


def time_axis(
    start: datetime | None, end: datetime | None, ticks: int = 5
) -> list[tuple[float, str]]:
    """(percent from the left, label) for evenly spaced times across `[start, end]`."""
    if start is None or end is None or end <= start:
        return []
    total = (end - start).total_seconds()
    fmt = "%H:%M:%S" if total < 3 * 3600 else "%m-%d %H:%M"
    return [
        (round(100 * i / ticks, 2), f"{start + timedelta(seconds=total * i / ticks):{fmt}}")
        for i in range(ticks + 1)
    ]


@dataclass(frozen=True)
class GanttBar:
    run: Run
    offset_pct: float
    width_pct: float


@dataclass
class GanttGroup:
    source: str
    colour: str
    bars: list[GanttBar] = field(default_factory=list)


@dataclass
class Gantt:
    groups: list[GanttGroup] = field(default_factory=list)
    axis: list[tuple[float, str]] = field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None

    @property
    def rows(self) -> int:
        return sum(len(g.bars) for g in self.groups)


def gantt(runs: Sequence[Run], *, since: datetime, until: datetime, now: datetime) -> Gantt:
    """Runs as bars over `[since, until]`, grouped by source, earliest first within a group."""
    chart = Gantt(axis=time_axis(since, until, ticks=6), since=since, until=until)
    total = (until - since).total_seconds()
    groups: dict[str, GanttGroup] = {}
    for run in sorted(runs, key=lambda r: (r.source, r.started_at or r.observed_at or now, r.id)):
        group = groups.get(run.source)
        if group is None:
            group = groups[run.source] = GanttGroup(run.source, colour_for(len(groups)))
        start = run.started_at or run.observed_at or now
        end = run.ended_at or (now if run.state == "running" else start)
        left = max(0.0, (start - since).total_seconds() / total * 100) if total > 0 else 0.0
        right = min(100.0, (end - since).total_seconds() / total * 100) if total > 0 else 100.0
        group.bars.append(
            GanttBar(run, round(min(left, 99.6), 3), round(max(0.4, right - left), 3))
        )
    chart.groups = list(groups.values())
    return chart


__all__ = [
    "PALETTE",
    "Gantt",
    "GanttBar",
    "StackedBars",
    "colour_for",
    "gantt",
    "stacked_bars",
    "time_axis",
]
