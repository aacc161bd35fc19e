"""Runs the schedule promised but nobody saw: missed, stuck and too-fast runs.

`check_expectations(engine, now)` is called from housekeeping (one replica at
a time, but correct on several). For every job with a schedule that is not
paused, whatever its source (crontab lines, Kubernetes CronJobs, Lambda
rules, ping checks):

1. **Missed.** Expected fire times come from the job's cron expression in its
   own time zone (croniter), in `(max(discovered_at, now - LOOKBACK), now -
   grace]`. A fire time with no run of the job starting in `[t - early, t +
   grace]` becomes a run in state `missed` with key
   `expected/<job key>/<t in UTC>`, `nominal_time = t` and `observed_at = t +
   grace`. Grace is `JobSpec.grace_s`, else min(interval / 2, 5 min).
2. **Stuck.** A `running` run of a job with `max_duration_s` that started
   longer ago than that becomes `failed` with error kind `timeout`
   (`observed_at = started_at + max_duration_s`).
3. **Too fast.** A finished run shorter than the job's `min_duration_s` gets
   the attribute `switchyard.too_fast = true`; its state stays.

Every verdict is a `RunEvent` whose content is a function of the job and the
run only (no `now` in it), written through `gateway.ingest.apply_batch`: the
event log drops a digest it already holds, so re-running the check, or two
replicas running it at once, writes each verdict once.

DST: fixed-time jobs (`30 1 * * *`) follow Vixie cron: a wall-clock time that
occurs twice at fall-back is expected once, and one that does not exist at
spring-forward is expected right after the change (croniter yields 02:00
BST for 01:30 Europe/London). Wildcard jobs (minute or hour `*`) are expected
on real elapsed time, both passes of the repeated hour included.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter  # type: ignore[import-untyped, unused-ignore]  # no type hints; mypy flags only the first importer
from sqlalchemy import Table, and_, false, func, or_, select
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from gateway.contract import ErrorInfo, RunEvent, RunKind, State
from gateway.ingest import apply_batch
from gateway.store.models import Job, Run

log = logging.getLogger(__name__)

RUN: Table = SQLModel.metadata.tables[Run.__tablename__]
JOB: Table = SQLModel.metadata.tables[Job.__tablename__]

LOOKBACK = timedelta(hours=24)
MAX_FIRES_PER_JOB = 500
DEFAULT_MAX_GRACE_S = 300.0
EARLY_TOLERANCE_S = 60.0  # host clocks run a little ahead of the gateway's


@dataclass(frozen=True)
class Expectation:
    """What a job's spec promises: its schedule, zone and time limits."""

    source: str
    key: str
    name: str | None
    schedule: str
    tz: ZoneInfo
    discovered_at: datetime
    grace_s: float | None
    max_duration_s: float | None
    min_duration_s: float | None


def fire_times(schedule: str, tz: ZoneInfo, after: datetime, until: datetime) -> list[datetime]:
    """Fire times (UTC) in `(after, until]`, DST handled as Vixie cron does (module docstring)."""
    wildcard = any(f.startswith("*") for f in schedule.split()[:2])
    it = croniter(schedule, after.astimezone(tz))
    out: list[datetime] = []
    seen_wall: set[datetime] = set()
    while True:
        t: datetime = it.get_next(datetime)
        if t > until:
            break
        wall = t.replace(tzinfo=None)
        if not wildcard and wall in seen_wall:
            continue  # the repeated hour at fall-back: cron does not run it again
        seen_wall.add(wall)
        out.append(t.astimezone(UTC))
    return out


def default_grace_s(schedule: str, tz: ZoneInfo, at: datetime) -> float:
    """min(interval / 2, 5 min), the interval measured at `at` in the job's zone."""
    it = croniter(schedule, at.astimezone(tz))
    first: datetime = it.get_next(datetime)
    second: datetime = it.get_next(datetime)
    return min((second - first).total_seconds() / 2, DEFAULT_MAX_GRACE_S)


def check_expectations(engine: Engine, now: datetime) -> int:
    """Write the verdicts due at `now`; return how many new events were applied."""
    if now.tzinfo is None:
        raise ValueError("check_expectations: now must carry a timezone")
    by_source: dict[str, list[RunEvent]] = defaultdict(list)
    for exp in _expectations(engine):
        for event in _missed(engine, exp, now) + _stuck_and_fast(engine, exp, now):
            by_source[exp.source].append(event)
    applied = 0
    for source, events in by_source.items():
        applied += apply_batch(engine, source, events).applied
    return applied


def _expectations(engine: Engine) -> list[Expectation]:
    out = []
    stmt = select(JOB).where(or_(JOB.c.paused == false(), JOB.c.paused.is_(None)))
    with engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    for row in rows:
        spec: dict[str, Any] = row["spec"] or {}
        schedule = row["schedule"]
        if not schedule and not (spec.get("max_duration_s") or spec.get("min_duration_s")):
            continue
        try:
            tz = ZoneInfo(row["timezone"] or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            log.warning(
                "job %s/%s: unknown time zone %r", row["source"], row["key"], row["timezone"]
            )
            continue
        if schedule and not croniter.is_valid(schedule):
            log.warning("job %s/%s: invalid schedule %r", row["source"], row["key"], schedule)
            continue
        out.append(
            Expectation(
                source=row["source"],
                key=row["key"],
                name=row["name"],
                schedule=schedule or "",
                tz=tz,
                discovered_at=row["discovered_at"] or datetime.now(UTC),
                grace_s=spec.get("grace_s"),
                max_duration_s=spec.get("max_duration_s"),
                min_duration_s=spec.get("min_duration_s"),
            )
        )
    return out


def _missed(engine: Engine, exp: Expectation, now: datetime) -> list[RunEvent]:
    if not exp.schedule:
        return []
    grace = exp.grace_s if exp.grace_s is not None else default_grace_s(exp.schedule, exp.tz, now)
    after = max(exp.discovered_at, now - LOOKBACK)
    fires = fire_times(exp.schedule, exp.tz, after, now - timedelta(seconds=grace))
    fires = fires[-MAX_FIRES_PER_JOB:]
    if not fires:
        return []
    early = min(EARLY_TOLERANCE_S, grace)
    seen_at = func.coalesce(RUN.c.started_at, RUN.c.ended_at, RUN.c.nominal_time)
    stmt = select(seen_at, RUN.c.key, RUN.c.state).where(
        and_(
            RUN.c.source == exp.source,
            RUN.c.job == exp.key,
            seen_at >= fires[0] - timedelta(seconds=early),
        )
    )
    with engine.connect() as conn:
        observed = conn.execute(stmt).all()
    starts = sorted(at for at, _key, state in observed if at is not None and state != State.missed)
    recorded = {key for _at, key, state in observed if state == State.missed}
    events = []
    for t in fires:
        key = f"expected/{exp.key}/{t.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        if key in recorded:
            continue
        lo, hi = t - timedelta(seconds=early), t + timedelta(seconds=grace)
        if any(lo <= s <= hi for s in starts):
            continue
        local = t.astimezone(exp.tz)
        events.append(
            RunEvent(
                source=exp.source,
                kind=RunKind.run,
                key=key,
                job=exp.key,
                name=exp.name,
                state=State.missed,
                observed_at=hi,
                nominal_time=t,
                error=ErrorInfo(
                    kind="missed",
                    message=f"no start within {grace:g}s of {local.isoformat()} ({exp.tz.key})",
                ),
                attributes={"switchyard.expected_at": t.isoformat(), "switchyard.grace_s": grace},
            )
        )
    return events


def _stuck_and_fast(engine: Engine, exp: Expectation, now: datetime) -> list[RunEvent]:
    if exp.max_duration_s is None and exp.min_duration_s is None:
        return []
    stmt = select(RUN).where(
        and_(
            RUN.c.source == exp.source,
            RUN.c.job == exp.key,
            RUN.c.started_at.is_not(None),
            or_(
                RUN.c.state == State.running,
                and_(
                    RUN.c.state.in_([State.succeeded, State.failed]),
                    RUN.c.ended_at.is_not(None),
                    RUN.c.ended_at >= now - LOOKBACK,
                ),
            ),
        )
    )
    with engine.connect() as conn:
        runs = conn.execute(stmt).mappings().all()
    return [e for row in runs for e in _verdicts_for_run(exp, row, now)]


def _verdicts_for_run(exp: Expectation, row: Any, now: datetime) -> Sequence[RunEvent]:
    base: dict[str, Any] = {
        "source": row["source"],
        "kind": RunKind(row["kind"]),
        "key": row["key"],
        "parent_key": row["parent_key"],
        "root_key": row["root_key"] if row["root_key"] != row["key"] else None,
        "attempt": row["attempt"],
        "job": exp.key,
    }
    started: datetime = row["started_at"]
    if row["state"] == State.running:
        if exp.max_duration_s is None:
            return []
        deadline = started + timedelta(seconds=exp.max_duration_s)
        if deadline > now:
            return []
        return [
            RunEvent(
                **base,
                state=State.failed,
                observed_at=deadline,
                error=ErrorInfo(
                    kind="timeout",
                    message=f"no finish within max_duration_s={exp.max_duration_s:g}",
                ),
                attributes={"switchyard.max_duration_s": exp.max_duration_s},
            )
        ]
    attributes = row["attributes"] or {}
    if exp.min_duration_s is None or attributes.get("switchyard.too_fast"):
        return []
    duration = (row["ended_at"] - started).total_seconds()
    if duration >= exp.min_duration_s:
        return []
    return [
        RunEvent(
            **base,
            state=State(row["state"]),
            observed_at=row["ended_at"],
            attributes={
                "switchyard.too_fast": True,
                "switchyard.min_duration_s": exp.min_duration_s,
                "switchyard.duration_s": duration,
            },
        )
    ]
