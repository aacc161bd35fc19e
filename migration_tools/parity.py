"""Parity between a legacy job and its native Kestra flow, run by run.

In shadow both sides run on the same schedule. `pair_runs` (pure) pairs
each legacy run with the native run whose anchor time (nominal time, else
start time) is nearest within a tolerance, walking both lists in time order
once; a run left without a partner is a miss of the other side. A pair
agrees when both ended in the same outcome class (succeeded, or failed —
`failed`/`cancelled`/`missed` are one class); pairs still running are left
out until they end. Parity is agreeing pairs over everything compared
(finished pairs plus misses), so a native flow that skips runs cannot look
perfect.

`parity_report` reads both sides from the `run` table: legacy runs by
(source, job key), native runs by the Kestra job key `<namespace>/<flow id>`
the Kestra adapter gives its executions; both bounded by a time window and a
row limit, newest first, so one report is a few indexed range reads.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.store.models import Run

DEFAULT_TOLERANCE_S = 300.0
DEFAULT_LIMIT = 1000
FINISHED = frozenset({"succeeded", "failed", "cancelled", "skipped", "missed"})
_OUTCOME = {
    "succeeded": "ok",
    "skipped": "ok",
    "failed": "failed",
    "cancelled": "failed",
    "missed": "failed",
}


@dataclass(frozen=True)
class RunSample:
    """The parts of a run parity looks at."""

    key: str
    state: str
    anchor: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class RunPair:
    legacy: RunSample | None
    native: RunSample | None

    @property
    def verdict(self) -> str:
        """`agree`, `differ`, `native_missed`, `legacy_missed` or `pending`."""
        if self.legacy is None:
            return "legacy_missed" if self.native and self.native.finished else "pending"
        if self.native is None:
            return "native_missed" if self.legacy.finished else "pending"
        if not (self.legacy.finished and self.native.finished):
            return "pending"
        same = _OUTCOME[self.legacy.state] == _OUTCOME[self.native.state]
        return "agree" if same else "differ"

    @property
    def duration_ratio(self) -> float | None:
        """native duration / legacy duration, when both are known and non-zero."""
        if self.legacy is None or self.native is None:
            return None
        a, b = self.legacy.duration_s, self.native.duration_s
        if a is None or b is None or a <= 0:
            return None
        return b / a


@dataclass(frozen=True)
class ParityReport:
    pairs: tuple[RunPair, ...]
    tolerance_s: float
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def compared(self) -> int:
        return sum(n for v, n in self.counts.items() if v != "pending")

    @property
    def agreeing(self) -> int:
        return self.counts.get("agree", 0)

    @property
    def parity(self) -> float | None:
        return self.agreeing / self.compared if self.compared else None

    @property
    def duration_ratio_p50(self) -> float | None:
        ratios = [r for p in self.pairs if (r := p.duration_ratio) is not None]
        return statistics.median(ratios) if ratios else None

    def as_dict(self) -> dict[str, object]:
        return {
            "parity": self.parity,
            "compared": self.compared,
            "agreeing": self.agreeing,
            "counts": dict(self.counts),
            "tolerance_s": self.tolerance_s,
            "duration_ratio_p50": self.duration_ratio_p50,
            "pairs": [
                {
                    "verdict": p.verdict,
                    "legacy": _sample_dict(p.legacy),
                    "native": _sample_dict(p.native),
                    "duration_ratio": p.duration_ratio,
                }
                for p in self.pairs
            ],
        }


def _sample_dict(s: RunSample | None) -> dict[str, object] | None:
    if s is None:
        return None
    return {
        "key": s.key,
        "state": s.state,
        "at": s.anchor.isoformat(),
        "duration_s": s.duration_s,
    }


def pair_runs(
    legacy: Sequence[RunSample],
    native: Sequence[RunSample],
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> ParityReport:
    """Pair runs by anchor time within `tolerance_s` (one pass over both sorted lists)."""
    if tolerance_s < 0:
        raise ValueError(f"tolerance_s must be ≥ 0, got {tolerance_s}")
    a = sorted(legacy, key=lambda s: (s.anchor, s.key))
    b = sorted(native, key=lambda s: (s.anchor, s.key))
    tol = timedelta(seconds=tolerance_s)
    pairs: list[RunPair] = []
    i = j = 0
    while i < len(a) and j < len(b):
        gap = b[j].anchor - a[i].anchor
        if abs(gap) <= tol:
            # The next native run may be nearer to this legacy run than this one.
            if j + 1 < len(b) and abs(b[j + 1].anchor - a[i].anchor) < abs(gap):
                pairs.append(RunPair(None, b[j]))
                j += 1
                continue
            pairs.append(RunPair(a[i], b[j]))
            i += 1
            j += 1
        elif gap > tol:
            pairs.append(RunPair(a[i], None))
            i += 1
        else:
            pairs.append(RunPair(None, b[j]))
            j += 1
    pairs += [RunPair(s, None) for s in a[i:]]
    pairs += [RunPair(None, s) for s in b[j:]]
    counts: dict[str, int] = {}
    for p in pairs:
        counts[p.verdict] = counts.get(p.verdict, 0) + 1
    return ParityReport(tuple(pairs), tolerance_s, counts)


def _samples(
    engine: Engine,
    where: sa.ColumnElement[bool],
    since: datetime,
    until: datetime | None,
    limit: int,
) -> list[RunSample]:
    t = Run.__table__  # type: ignore[attr-defined]  # SQLModel tables expose __table__
    query = (
        sa.select(t.c.key, t.c.state, t.c.nominal_time, t.c.started_at, t.c.ended_at)
        .where(where, t.c.kind == "run", t.c.started_at >= since)
        .order_by(t.c.started_at.desc())
        .limit(limit)
    )
    if until is not None:
        query = query.where(t.c.started_at < until)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        RunSample(r.key, r.state, r.nominal_time or r.started_at, r.started_at, r.ended_at)
        for r in rows
        if (r.nominal_time or r.started_at) is not None
    ]


def parity_report(
    engine: Engine,
    *,
    source: str,
    job_key: str,
    native_job: str,
    since: datetime,
    until: datetime | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    limit: int = DEFAULT_LIMIT,
) -> ParityReport:
    """Legacy runs of (source, job_key) against native runs of `native_job` since `since`."""
    t = Run.__table__  # type: ignore[attr-defined]  # SQLModel tables expose __table__
    legacy = _samples(
        engine, sa.and_(t.c.source == source, t.c.job == job_key), since, until, limit
    )
    native = _samples(engine, t.c.job == native_job, since, until, limit)
    return pair_runs(legacy, native, tolerance_s=tolerance_s)


__all__ = [
    "DEFAULT_TOLERANCE_S",
    "ParityReport",
    "RunPair",
    "RunSample",
    "pair_runs",
    "parity_report",
]
