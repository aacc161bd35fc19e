"""Fast tests replaying HTTP recorded from a real Airflow 3.3.2 (see cassettes/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import vcr

from adapters.airflow import AirflowAdapter, create
from gateway.contract import RunKind, SourceConfig, State

CASSETTES = Path(__file__).parent / "cassettes" / "airflow-3.3.2"
replay = vcr.VCR(cassette_library_dir=str(CASSETTES), record_mode="none")


@pytest.fixture
def adapter() -> AirflowAdapter:
    options = {
        "url": "http://airflow.test:8080",
        "api": "v2",
        "username": "admin",
        "password": "scrubbed",
    }
    return create(SourceConfig(name="recorded", kind="airflow", options=options))


def test_first_poll_reads_runs_tries_and_failure_logs(adapter: AirflowAdapter) -> None:
    with replay.use_cassette("poll_initial.yaml"):
        result = adapter.poll(None)
    assert adapter.client.requests == 6  # token, runs, TIs, tries of explode, 2 logs
    runs = {e.key: e for e in result.events if e.kind is RunKind.run}
    attempts = {e.key: e for e in result.events if e.kind is RunKind.attempt}
    assert len(runs) == 5
    assert len(attempts) == 10
    failed = [e for e in attempts.values() if e.state is State.failed]
    assert [e.attempt for e in sorted(failed, key=lambda e: e.attempt)] == [1, 2]
    assert all(
        e.error is not None
        and e.error.message == "ValueError: switchyard-marker: the orders file has 0 rows"
        for e in failed
    )
    upstream_failed = [
        e for e in attempts.values() if e.attributes["airflow.state"] == "upstream_failed"
    ]
    assert [e.state for e in upstream_failed] == [State.skipped]
    mapped = sorted(
        e.attributes["airflow.map_index"] for e in attempts.values() if e.job == "sy_mapped"
    )
    assert mapped == [0, 1, 2]
    kestra = runs["sy_manual/from_kestra_1"]
    assert {r.namespace for r in kestra.refs} >= {"w3c.traceparent", "kestra.execution"}


def test_idle_cycle_is_two_requests(adapter: AirflowAdapter) -> None:
    with replay.use_cassette("poll_initial.yaml"):
        first = adapter.poll(None)
    before = adapter.client.requests
    with replay.use_cassette("poll_idle.yaml"):
        second = adapter.poll(first.cursor)
    assert adapter.client.requests - before == 2
    assert second.events == []


def test_discover_from_recorded_dags() -> None:
    # Recorded with a token already in hand, so replay starts from one too.
    options = {"url": "http://airflow.test:8080", "api": "v2", "token": "scrubbed-jwt"}
    adapter = create(SourceConfig(name="recorded", kind="airflow", options=options))
    with replay.use_cassette("discover.yaml"):
        specs = {s.key: s for s in adapter.discover()}
    assert sorted(specs) == [
        "sy_failure",
        "sy_long",
        "sy_manual",
        "sy_mapped",
        "sy_paused",
        "sy_success",
    ]
    paused = specs["sy_paused"]
    assert (paused.schedule, paused.timezone, paused.paused) == ("15 3 * * *", "Europe/Paris", True)
    failure = specs["sy_failure"]
    assert failure.edges == [("explode", "after")]
    assert {t.id: t.type for t in failure.tasks} == {
        "after": "BashOperator",
        "explode": "PythonOperator",
    }
    assert failure.tasks[0].arguments["bash_command"] == "echo never"
    assert specs["sy_mapped"].tasks[0].arguments["_is_mapped"] is True


V1 = vcr.VCR(
    cassette_library_dir=str(Path(__file__).parent / "cassettes" / "airflow-2.10.5"),
    record_mode="none",
)


def _v1_adapter() -> AirflowAdapter:
    options = {"url": "http://airflow.test:8080", "api": "v1", "username": "admin", "password": "x"}
    return create(SourceConfig(name="recorded2", kind="airflow", options=options))


def test_airflow2_v1_poll_reads_tries_states_and_text_log_errors() -> None:
    adapter = _v1_adapter()
    with V1.use_cassette("poll_initial.yaml"):
        result = adapter.poll(None)
    events = {e.key: e for e in result.events}
    run = events["sy2_failure/manual_sy2_1"]
    assert run.state is State.failed
    assert {(r.namespace, r.value) for r in run.refs} >= {("kestra.execution", "6aBc")}
    for try_number in (1, 2):
        attempt = events[f"sy2_failure/manual_sy2_1/explode/-1/{try_number}"]
        assert attempt.state is State.failed
        assert attempt.error is not None
        assert attempt.error.message == "ValueError: switchyard-marker: the orders file has 0 rows"
    assert events["sy2_failure/manual_sy2_1/after/-1/0"].state is State.skipped
    assert events["sy2_failure/manual_sy2_1/ok/-1/1"].state is State.succeeded
    before = adapter.client.requests
    with V1.use_cassette("poll_idle.yaml"):
        assert adapter.poll(result.cursor).events == []
    assert adapter.client.requests - before == 2


def test_airflow2_v1_discover() -> None:
    with V1.use_cassette("discover.yaml"):
        specs = _v1_adapter().discover()
    assert [s.key for s in specs] == ["sy2_failure"]
    assert specs[0].edges == [("explode", "after")]
    assert specs[0].owner == "payments"
    assert specs[0].source_text is not None and "sy2_failure" in specs[0].source_text
