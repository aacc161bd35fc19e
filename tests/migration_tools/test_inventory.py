"""Inventory over the store (SQLite and PostgreSQL) and the pure wave planner."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.contract import JobSpec, RunEvent, State, TaskSpec
from gateway.ingest import apply_batch
from gateway.store.models import FlowEdge
from migration_tools.inventory import collect_inventory, render
from migration_tools.waves import WaveInput, plan_waves

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)


def _jobs() -> list[JobSpec]:
    return [
        JobSpec(
            source="cron-a",
            key="web1/alice/extract",
            kind="crontab",
            name="extract",
            schedule="0 1 * * *",
            owner="alice",
            definition={"command": "/bin/extract", "host": "web1", "user": "alice"},
        ),
        JobSpec(
            source="cron-a",
            key="web1/alice/load",
            kind="crontab",
            name="load",
            schedule="0 2 * * *",
            owner="alice",
            definition={"command": "/bin/load", "host": "web1", "user": "alice"},
        ),
        JobSpec(
            source="cron-a",
            key="web1/bob/boot",
            kind="crontab",
            name="boot",
            schedule_native="@reboot",
            definition={"command": "/bin/boot", "host": "web1"},
        ),
        JobSpec(
            source="kestra",
            key="x/y",
            kind="job",
            name="odd",
            tasks=[TaskSpec(id="t", type="Unknown")],
        ),
    ]


def _runs(job: str, durations: list[float], failed: int) -> list[RunEvent]:
    out = []
    for i, d in enumerate(durations):
        start = NOW - timedelta(days=i + 1)
        out.append(
            RunEvent(
                source="cron-a",
                key=f"{job}/{i}",
                job=job,
                state=State.failed if i < failed else State.succeeded,
                started_at=start,
                ended_at=start + timedelta(seconds=d),
                observed_at=start + timedelta(seconds=d),
            )
        )
    # a run outside the 30-day window does not count
    old = NOW - timedelta(days=40)
    out.append(
        RunEvent(
            source="cron-a",
            key=f"{job}/old",
            job=job,
            state=State.failed,
            started_at=old,
            ended_at=old + timedelta(seconds=1),
            observed_at=old,
        )
    )
    return out


def test_inventory_counts_runs_durations_dependencies_readiness_and_waves(engine: Engine) -> None:
    jobs = _jobs()
    apply_batch(engine, "cron-a", [], jobs=jobs[:3])
    apply_batch(engine, "kestra", [], jobs=jobs[3:])
    apply_batch(
        engine,
        "cron-a",
        _runs("web1/alice/extract", [10, 20, 30, 40], 0)
        + _runs("web1/alice/load", [100, 100, 100, 100, 500], 1),
    )
    with engine.begin() as conn:
        conn.execute(
            sa.insert(FlowEdge.__table__).values(  # type: ignore[attr-defined]
                flow="nightly",
                up_source="cron-a",
                up_job="web1/alice/load",
                down_source="cron-a",
                down_job="web1/alice/extract",
                relation="triggers",
                within_s=600,
                declared_as="load >> extract",
            )
        )
    inv = collect_inventory(engine, now=NOW)
    by_key = {i.key: i for i in inv.items}
    extract, load = by_key["web1/alice/extract"], by_key["web1/alice/load"]
    assert (extract.runs, extract.failures, extract.failure_rate) == (4, 0, 0.0)
    assert extract.p50_s == 25.0 and extract.p95_s is not None and 38 <= extract.p95_s <= 40
    assert (load.runs, load.failures, load.failure_rate) == (5, 1, 0.2)
    assert load.p50_s == 100.0
    assert extract.upstream == ["cron-a:web1/alice/load"]
    assert load.downstream == ["cron-a:web1/alice/extract"]
    assert extract.readiness == "full" and load.readiness == "full"
    boot = by_key["web1/bob/boot"]
    assert boot.readiness == "partial" and any("@reboot" in r for r in boot.reasons)
    assert by_key["x/y"].readiness == "none"
    # load is unhealthy (20 % failures) → wave 2; extract depends on it → wave 3
    assert load.wave == 2 and "fails 20%" in load.wave_reason
    assert extract.wave == 3 and "after its upstream cron-a:web1/alice/load" in extract.wave_reason
    order = [i.key for i in inv.items]
    assert order.index("web1/alice/load") < order.index("web1/alice/extract")

    as_json = json.loads(render(inv, "json"))
    assert as_json["summary"]["jobs"] == 4
    rows = list(csv.DictReader(io.StringIO(render(inv, "csv"))))
    assert {r["key"] for r in rows} == set(by_key)
    md = render(inv, "markdown")
    assert md.startswith("# Migration inventory") and "| web1/alice/load |" in md


def test_waves_put_dependencies_first_and_report_cycles() -> None:
    a, b, c, d = ("s", "a"), ("s", "b"), ("s", "c"), ("s", "d")
    plan = plan_waves(
        [
            WaveInput(a, "full", 0.0),
            WaveInput(b, "full", 0.0),
            WaveInput(c, "full", 0.0),
            WaveInput(d, "none", None),
        ],
        [(a, b), (b, c), (c, b)],
    )
    assert plan.waves[a] == 1
    assert plan.waves[b] == plan.waves[c] >= 2
    assert plan.cycles == [[b, c]]
    assert plan.waves[d] == 3 and "hand-written" in plan.reasons[d]
