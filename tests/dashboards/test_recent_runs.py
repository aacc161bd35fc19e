"""`recent_runs_by_job` (the jobs page's strips) in one statement = one probe per job.

The reference below is the per-job probe the jobs page used before: one
LIMITed index probe per job. The single statement (LATERAL on PostgreSQL,
UNION ALL on SQLite) must return exactly what it returned, on both databases.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import bindparam, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from gateway.contract import JobSpec, RunEvent, State
from gateway.ingest import apply_batch
from gateway.queries import RunMark, recent_runs_by_job, run_sort_key
from gateway.store.models import Job, Run

T0 = datetime(2026, 2, 1, tzinfo=UTC)


def per_job_reference(session: Session, jobs: list[Job], per_job: int) -> dict[str, list[RunMark]]:
    """The old behaviour: one LIMITed probe per job, newest first."""
    sort = run_sort_key()
    probe = (
        select(col(Run.id), col(Run.trace_id), col(Run.state), sort.label("at"))
        .where(
            col(Run.source) == bindparam("source"),
            col(Run.job) == bindparam("job"),
            col(Run.kind) == "run",
        )
        .order_by(sort.desc())
        .limit(per_job)
    )
    out: dict[str, list[RunMark]] = {}
    for job in jobs:
        marks = []
        for run_id, trace_id, state, at in session.connection().execute(
            probe, {"source": job.source, "job": job.key}
        ):
            at = datetime.fromisoformat(at) if isinstance(at, str) else at
            marks.append(RunMark(run_id, trace_id, state, at.replace(tzinfo=at.tzinfo or UTC)))
        out[job.id] = marks
    return out


def seed_jobs(engine: Engine, jobs_per_source: int) -> None:
    """Jobs with 0..29 root runs each (plus a task per run carrying the job's key),
    the same job keys in two sources, distinct start times, some runs never started."""
    minute = 0
    for source in ("alpha", "beta"):
        events: list[RunEvent] = []
        specs = []
        for j in range(jobs_per_source):
            key = f"job-{j:03d}"
            specs.append(JobSpec(source=source, key=key, kind="job", name=key))
            for r in range((j * 7) % 30):
                minute += 1
                at = T0 + timedelta(minutes=minute * 3 + (j % 5))
                started = None if r % 9 == 4 else at  # sorted by observed_at then
                state = State.failed if r % 4 == 1 else State.succeeded
                run_key = f"{key}/run-{r}"
                events.append(
                    RunEvent(
                        source=source, kind="run", key=run_key, job=key, name=key,
                        state=state, started_at=started, observed_at=at,
                    )
                )  # fmt: skip
                events.append(
                    RunEvent(
                        source=source, kind="task", key=f"{run_key}/main", parent_key=run_key,
                        job=key, name="main", state=state, started_at=at + timedelta(hours=9),
                        observed_at=at + timedelta(hours=9),
                    )
                )  # fmt: skip
        apply_batch(engine, source, events, jobs=specs)


@pytest.mark.parametrize("per_job", [1, 12])
def test_one_statement_returns_what_one_probe_per_job_returned(
    engine: Engine, per_job: int
) -> None:
    # 2 x 70 jobs: more than one statement's worth (100), so chunking is covered too.
    seed_jobs(engine, 70)
    with Session(engine) as session:
        jobs = list(session.exec(select(Job).order_by(col(Job.source), col(Job.key))).scalars())
        assert len(jobs) == 140
        got = recent_runs_by_job(session, jobs, per_job=per_job)
        want = per_job_reference(session, jobs, per_job)
    assert got == want
    sizes = {len(marks) for marks in got.values()}
    assert 0 in sizes and per_job in sizes  # jobs without runs and jobs with more than a strip
    for marks in got.values():
        assert [m.at for m in marks] == sorted((m.at for m in marks), reverse=True)
        assert all(m.at is not None and m.at.tzinfo is not None for m in marks)


def test_no_jobs_and_a_single_job(engine: Engine) -> None:
    seed_jobs(engine, 3)
    with Session(engine) as session:
        assert recent_runs_by_job(session, [], per_job=12) == {}
        job = (
            session.exec(select(Job).where(Job.source == "beta", Job.key == "job-002"))
            .scalars()
            .one()
        )
        got = recent_runs_by_job(session, [job], per_job=5)
        assert got == per_job_reference(session, [job], 5)
        assert len(got[job.id]) == 5 and {m.state for m in got[job.id]} <= {"failed", "succeeded"}
