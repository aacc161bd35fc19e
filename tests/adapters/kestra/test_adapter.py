"""The Kestra adapter against the Kestra emulator: poll → events, cursor, dedupe, discovery."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from adapters.kestra import KestraAdapter
from adapters.kestra.client import KestraApi
from emulators.kestra import KestraEmulator, Scenario
from gateway.contract import RunKind, SourceConfig, SourceError, State, create_adapter
from migration_tools.translate import translate
from tests.migration_tools.conftest import ManualClock
from tests.migration_tools.corpus_loader import CORPUS, load_case

NS = "switchyard.migrated"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def kestra(clock: ManualClock) -> Iterator[KestraEmulator]:
    with KestraEmulator(clock=clock) as emulator:
        yield emulator


@pytest.fixture
def deployed(kestra: KestraEmulator) -> KestraApi:
    """The corpus' fully translatable jobs deployed, triggers enabled."""
    api = KestraApi(kestra.url)
    for rel in ("dags/data_quality.yaml", "crontab/db1_pg_backup.yaml"):
        spec, options = load_case(CORPUS / rel)
        api.create_flow(translate(spec, **options, enable_triggers=True).yaml_text)
    return api


def _adapter(kestra: KestraEmulator, clock: ManualClock, **options: object) -> KestraAdapter:
    config = SourceConfig(name="kestra-prod", kind="kestra", options={"url": kestra.url, **options})
    return KestraAdapter(config, clock=clock)


def test_the_entry_point_builds_a_kestra_adapter() -> None:
    adapter = create_adapter(
        SourceConfig(name="k", kind="kestra", options={"url": "http://127.0.0.1:9"})
    )
    assert isinstance(adapter, KestraAdapter)


def test_missing_url_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"options\.url is required"):
        create_adapter(SourceConfig(name="k", kind="kestra"))


def test_poll_follows_an_execution_to_success_and_then_stays_quiet(
    kestra: KestraEmulator, deployed: KestraApi, clock: ManualClock
) -> None:
    adapter = _adapter(kestra, clock)
    ex = deployed.trigger_execution(NS, "pg_backup", labels={"switchyard.traceparent": TRACEPARENT})
    clock.advance(0.5)
    first = adapter.poll(None)
    (run,) = [e for e in first.events if e.kind is RunKind.run]
    assert run.state is State.running and run.ended_at is None
    assert run.key == f"{NS}/pg_backup/{ex['id']}"
    assert run.attributes["switchyard.legacy_job"] == "cron-hosts:db1:/etc/cron.d/pg_backup:3"
    assert run.traceparent == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
    clock.advance(5)
    second = adapter.poll(first.cursor)
    states = {(e.kind, e.name): e.state for e in second.events}
    assert states[(RunKind.run, "pg_backup")] is State.succeeded
    assert states[(RunKind.task, "command")] is State.succeeded
    assert states[(RunKind.attempt, "command")] is State.succeeded
    clock.advance(60)
    assert adapter.poll(second.cursor).events == []


def test_failed_execution_maps_to_failed_with_the_failing_task_named(
    kestra: KestraEmulator, deployed: KestraApi, clock: ManualClock
) -> None:
    kestra.set_scenario(NS, "data_quality", Scenario("FAILED", 3, failing_task="check"))
    deployed.trigger_execution(NS, "data_quality")
    clock.advance(10)
    events = _adapter(kestra, clock).poll(None).events
    run = next(e for e in events if e.kind is RunKind.run)
    assert run.state is State.failed
    assert run.error is not None and run.error.message == "task check failed"
    tasks = {e.name: e.state for e in events if e.kind is RunKind.task}
    assert tasks == {"fetch": State.succeeded, "digest": State.succeeded, "check": State.failed}


def test_watermark_does_not_pass_a_running_execution(
    kestra: KestraEmulator, deployed: KestraApi, clock: ManualClock
) -> None:
    adapter = _adapter(kestra, clock, overlap="10s")
    kestra.set_scenario(NS, "data_quality", Scenario("SUCCESS", 3600))
    slow = deployed.trigger_execution(NS, "data_quality")
    clock.advance(600)
    deployed.trigger_execution(NS, "pg_backup")
    clock.advance(5)
    cursor = adapter.poll(None).cursor
    assert cursor is not None
    assert json.loads(cursor)["since"].startswith("2026-03-01T02:00:00")
    clock.advance(3600)
    events = adapter.poll(cursor).events
    finished = [e for e in events if e.kind is RunKind.run]
    assert [(e.key.rsplit("/", 1)[-1], e.state) for e in finished] == [
        (slow["id"], State.succeeded)
    ]


def test_executions_are_emitted_once_across_overlapping_polls(
    kestra: KestraEmulator, deployed: KestraApi, clock: ManualClock
) -> None:
    adapter = _adapter(kestra, clock, overlap="1h")
    for _ in range(3):
        deployed.trigger_execution(NS, "pg_backup")
        clock.advance(10)
    cursor = None
    runs: list[str] = []
    for _ in range(4):
        result = adapter.poll(cursor)
        runs += [e.key for e in result.events if e.kind is RunKind.run]
        cursor = result.cursor
        clock.advance(30)
    assert len(runs) == len(set(runs)) == 3


def test_discover_lists_deployed_flows_as_kestra_flow_jobs(
    kestra: KestraEmulator, deployed: KestraApi, clock: ManualClock
) -> None:
    jobs = {j.key: j for j in _adapter(kestra, clock, namespace="switchyard").discover()}
    assert set(jobs) == {f"{NS}/data_quality", f"{NS}/pg_backup"}
    job = jobs[f"{NS}/data_quality"]
    assert job.kind == "kestra_flow"
    assert job.labels["switchyard.job"] == "airflow-prod:data_quality"
    assert job.schedule == "0 * * * *"
    assert {t.id for t in job.tasks} == {"fetch", "digest", "check", "alert"}


def test_an_unreachable_server_raises_a_retryable_source_error(clock: ManualClock) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = SourceConfig(
        name="kestra-prod", kind="kestra", options={"url": f"http://127.0.0.1:{port}"}
    )
    with pytest.raises(SourceError) as err:
        KestraAdapter(config, clock=clock).poll(None)
    assert err.value.source == "kestra-prod" and err.value.retryable


def test_a_corrupt_cursor_is_a_non_retryable_source_error(
    kestra: KestraEmulator, clock: ManualClock
) -> None:
    with pytest.raises(SourceError, match="unreadable cursor") as err:
        _adapter(kestra, clock).poll("{not json")
    assert not err.value.retryable


def test_polled_events_and_discovered_jobs_ingest_in_one_batch(
    kestra: KestraEmulator, deployed: KestraApi, clock: ManualClock, sqlite_engine: Engine
) -> None:
    from gateway.ingest import apply_batch

    adapter = _adapter(kestra, clock)
    deployed.trigger_execution(NS, "data_quality", labels={"switchyard.traceparent": TRACEPARENT})
    clock.advance(5)
    result = adapter.poll(None)
    report = apply_batch(
        sqlite_engine, "kestra-prod", result.events, cursor=result.cursor, jobs=adapter.discover()
    )
    # the run, its 4 task runs and one attempt each (the emulator runs leaf tasks only)
    assert report.runs_created == len(result.events) == 1 + 4 * 2
    assert report.jobs == 2 and report.cursor_written
    again = apply_batch(sqlite_engine, "kestra-prod", result.events, cursor=result.cursor)
    assert again.runs_created == 0
