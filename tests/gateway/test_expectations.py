"""Missed, stuck and too-fast runs, on SQLite and PostgreSQL, across DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from gateway.contract import JobSpec, RunEvent, State
from gateway.expectations import RUN, check_expectations, default_grace_s, fire_times
from gateway.ingest import apply_batch

LONDON = ZoneInfo("Europe/London")
SRC = "cron-hosts"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]  # year, month, day… positional


def add_job(
    engine: Engine, key: str, schedule: str | None, *, discovered: datetime, **spec: Any
) -> None:
    job = JobSpec(source=SRC, key=key, kind="crontab", schedule=schedule, **spec)
    apply_batch(engine, SRC, [], jobs=[job])
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE job SET discovered_at = :d WHERE key = :k"), {"d": discovered, "k": key}
        )


def add_run(
    engine: Engine, key: str, job: str, state: State, start: datetime, end: datetime | None = None
) -> None:
    event = RunEvent(
        source=SRC,
        key=key,
        job=job,
        state=state,
        started_at=start,
        ended_at=end,
        observed_at=end or start,
    )
    apply_batch(engine, SRC, [event])


def missed(engine: Engine, job: str) -> list[datetime]:
    stmt = (
        select(RUN.c.nominal_time)
        .where(RUN.c.job == job, RUN.c.state == State.missed)
        .order_by(RUN.c.nominal_time)
    )
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(stmt)]


def run_row(engine: Engine, key: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(RUN).where(RUN.c.key == key)).mappings().one()
    return dict(row)


def sweep(engine: Engine, start: datetime, end: datetime, step: timedelta) -> int:
    """Run the check as housekeeping would, every `step` from `start` to `end`."""
    applied, now = 0, start
    while now <= end:
        applied += check_expectations(engine, now)
        now += step
    return applied


def test_spring_forward_expects_the_skipped_0130_once_right_after_the_change(
    engine: Engine,
) -> None:
    add_job(
        engine,
        "daily-0130",
        "30 1 * * *",
        timezone="Europe/London",
        discovered=utc(2026, 3, 27, 12),
    )
    sweep(engine, utc(2026, 3, 27, 12), utc(2026, 3, 31, 12), timedelta(hours=6))
    assert missed(engine, "daily-0130") == [
        utc(2026, 3, 28, 1, 30),  # 01:30 GMT
        utc(2026, 3, 29, 1, 0),  # 01:30 does not exist; cron runs it at 02:00 BST
        utc(2026, 3, 30, 0, 30),  # 01:30 BST
        utc(2026, 3, 31, 0, 30),
    ]


def test_fall_back_expects_a_fixed_time_job_once_and_a_wildcard_job_on_both_passes(
    engine: Engine,
) -> None:
    add_job(
        engine,
        "daily-0130",
        "30 1 * * *",
        timezone="Europe/London",
        discovered=utc(2026, 10, 24, 12),
    )
    add_job(
        engine,
        "half-hourly",
        "*/30 * * * *",
        timezone="Europe/London",
        discovered=utc(2026, 10, 24, 23, 50),
    )
    sweep(engine, utc(2026, 10, 24, 12), utc(2026, 10, 25, 12), timedelta(hours=1))
    assert missed(engine, "daily-0130") == [utc(2026, 10, 25, 0, 30)]
    halfhourly = [t for t in missed(engine, "half-hourly") if t < utc(2026, 10, 25, 2)]
    # 01:00 and 01:30 local happen twice (BST, then GMT): four fire times in two real hours
    assert halfhourly == [
        utc(2026, 10, 25, 0),
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 25, 1),
        utc(2026, 10, 25, 1, 30),
    ]


def test_fire_times_dedupe_only_fixed_time_jobs() -> None:
    fixed = fire_times("30 1 * * *", LONDON, utc(2026, 10, 24, 12), utc(2026, 10, 26, 12))
    assert fixed == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


def test_a_start_within_grace_satisfies_the_fire_time_and_a_late_one_does_not(
    engine: Engine,
) -> None:
    add_job(engine, "hourly", "0 * * * *", discovered=utc(2026, 6, 1, 0), grace_s=120)
    add_run(
        engine, "r1", "hourly", State.succeeded, utc(2026, 6, 1, 1, 0, 40), utc(2026, 6, 1, 1, 5)
    )
    add_run(engine, "r2", "hourly", State.succeeded, utc(2026, 6, 1, 2, 10), utc(2026, 6, 1, 2, 15))
    applied = check_expectations(engine, utc(2026, 6, 1, 2, 30))
    assert applied == 1
    assert missed(engine, "hourly") == [utc(2026, 6, 1, 2)]
    row = run_row(engine, "expected/hourly/2026-06-01T02:00:00Z")
    assert row["error_kind"] == "missed"
    assert row["source"] == SRC


def test_rerunning_the_check_is_a_no_op(engine: Engine) -> None:
    add_job(engine, "every5", "*/5 * * * *", discovered=utc(2026, 6, 1, 0))
    now = utc(2026, 6, 1, 1)
    first = check_expectations(engine, now)
    assert first == 11  # 00:05 … 00:55; 01:00 is still within its 150 s grace
    assert check_expectations(engine, now) == 0
    assert check_expectations(engine, now + timedelta(seconds=30)) == 0
    assert len(missed(engine, "every5")) == 11


def test_default_grace_is_half_the_interval_capped_at_five_minutes() -> None:
    at = utc(2026, 6, 1)
    assert default_grace_s("*/5 * * * *", LONDON, at) == 150
    assert default_grace_s("0 * * * *", LONDON, at) == 300


def test_a_run_past_max_duration_fails_with_timeout_once(engine: Engine) -> None:
    add_job(engine, "long", None, discovered=utc(2026, 6, 1), max_duration_s=3600)
    add_run(engine, "stuck", "long", State.running, utc(2026, 6, 1, 1))
    add_run(engine, "young", "long", State.running, utc(2026, 6, 1, 2, 30))
    assert check_expectations(engine, utc(2026, 6, 1, 3)) == 1
    row = run_row(engine, "stuck")
    assert (row["state"], row["error_kind"]) == ("failed", "timeout")
    assert run_row(engine, "young")["state"] == "running"
    assert check_expectations(engine, utc(2026, 6, 1, 3, 1)) == 0


def test_a_run_faster_than_min_duration_is_flagged_and_keeps_its_state(engine: Engine) -> None:
    add_job(engine, "backup", None, discovered=utc(2026, 6, 1), min_duration_s=60)
    add_run(
        engine, "quick", "backup", State.succeeded, utc(2026, 6, 1, 1), utc(2026, 6, 1, 1, 0, 2)
    )
    add_run(engine, "normal", "backup", State.succeeded, utc(2026, 6, 1, 2), utc(2026, 6, 1, 2, 5))
    assert check_expectations(engine, utc(2026, 6, 1, 3)) == 1
    quick = run_row(engine, "quick")
    assert quick["state"] == "succeeded"
    assert quick["attributes"]["switchyard.too_fast"] is True
    assert check_expectations(engine, utc(2026, 6, 1, 3, 5)) == 0


def test_paused_jobs_and_times_before_discovery_are_not_missed(engine: Engine) -> None:
    add_job(engine, "paused", "* * * * *", discovered=utc(2026, 6, 1), paused=True)
    add_job(engine, "new", "0 * * * *", discovered=utc(2026, 6, 1, 5, 30))
    assert check_expectations(engine, utc(2026, 6, 1, 6, 1)) == 0
    assert missed(engine, "paused") == []


def test_any_source_with_a_schedule_is_expected_not_only_cron(engine: Engine) -> None:
    job = JobSpec(
        source="k8s-prod",
        key="batch/nightly-report",
        kind="cronjob",
        schedule="0 2 * * *",
        timezone="America/New_York",
        grace_s=600,
    )
    apply_batch(engine, "k8s-prod", [], jobs=[job])
    with engine.begin() as conn:
        conn.execute(text("UPDATE job SET discovered_at = :d"), {"d": utc(2026, 7, 1)})
    apply_batch(
        engine,
        "k8s-prod",
        [
            RunEvent(
                source="k8s-prod",
                key="batch/nightly-report-29123",
                job="batch/nightly-report",
                state=State.succeeded,
                started_at=utc(2026, 7, 1, 6, 0, 5),  # 02:00 EDT
                ended_at=utc(2026, 7, 1, 6, 3),
                observed_at=utc(2026, 7, 1, 6, 3),
            )
        ],
    )
    assert check_expectations(engine, utc(2026, 7, 2, 12)) == 1
    assert missed(engine, "batch/nightly-report") == [utc(2026, 7, 2, 6)]
