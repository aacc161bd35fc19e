"""The adapter against a real Airflow 3 (`airflow standalone`, see harness.py).

Every assertion compares the adapter's view with what Airflow's own REST API
says about the same runs and tries, read independently with plain httpx.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from adapters.airflow import AirflowAdapter, create
from adapters.airflow.normalize import parse_time
from gateway.contract import RunEvent, RunKind, SourceConfig, SourceError, State
from gateway.states import default_state_map
from tests.adapters.airflow.harness import RealAirflow, TcpProxy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

KESTRA_CONF = {
    "source": "kestra",
    "flow": "orders",
    "namespace": "company.team",
    "task": "trigger",
    "execution": "4VtCmKyVq3UJ8xNpbJgGoE",
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
}
WAIT_S = 240.0


def _api(airflow: RealAirflow) -> httpx.Client:
    return httpx.Client(
        base_url=f"{airflow.url}/api/v2",
        headers={"Authorization": f"Bearer {airflow.token()}"},
        timeout=30,
    )


def _wait_for(what: str, check: Callable[[], Any], timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def _adapter(airflow: RealAirflow, **options: Any) -> AirflowAdapter:
    base = {"url": airflow.url, "username": "admin", "password": airflow.password, "api": "v2"}
    return create(SourceConfig(name="af3", kind="airflow", options={**base, **options}))


class Estate:
    """The runs this module triggers, and Airflow's view of them."""

    def __init__(self, airflow: RealAirflow) -> None:
        self.airflow = airflow
        self.api = _api(airflow)
        self.runs: dict[str, str] = {}

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        r = self.api.post(
            f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}}
        )
        assert r.status_code == 200, r.text
        self.runs[dag_id] = r.json()["dag_run_id"]
        return self.runs[dag_id]

    def run(self, dag_id: str) -> dict[str, Any]:
        r = self.api.get(f"/dags/{dag_id}/dagRuns/{self.runs[dag_id]}")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def task_instances(self, dag_id: str) -> list[dict[str, Any]]:
        r = self.api.get(f"/dags/{dag_id}/dagRuns/{self.runs[dag_id]}/taskInstances")
        assert r.status_code == 200, r.text
        return list(r.json()["task_instances"])

    def tries(self, dag_id: str, ti: dict[str, Any]) -> list[dict[str, Any]]:
        path = f"/dags/{dag_id}/dagRuns/{self.runs[dag_id]}/taskInstances/{ti['task_id']}"
        if ti["map_index"] >= 0:
            path += f"/{ti['map_index']}"
        r = self.api.get(f"{path}/tries")
        assert r.status_code == 200, r.text
        return list(r.json()["task_instances"])

    def finished(self, dag_id: str) -> bool:
        return self.run(dag_id)["state"] in ("success", "failed")


@pytest.fixture(scope="module")
def estate(real_airflow: RealAirflow) -> Iterator[Estate]:
    estate = Estate(real_airflow)
    _wait_for(
        "the DAG processor to register the test DAGs",
        lambda: len(estate.api.get("/dags", params={"limit": 100}).json()["dags"]) >= 6,
    )
    for dag_id in ("sy_long", "sy_success", "sy_failure", "sy_mapped"):
        estate.trigger(dag_id)
    yield estate
    estate.api.close()


def _by_key(events: list[RunEvent]) -> dict[str, RunEvent]:
    latest: dict[str, RunEvent] = {}
    for e in events:
        latest[e.key] = e
    return latest


def _ti_key(dag_id: str, run_id: str, entry: dict[str, Any]) -> str:
    return f"{dag_id}/{run_id}/{entry['task_id']}/{entry['map_index']}/{entry['try_number']}"


def test_long_running_task_is_seen_running_then_finished(estate: Estate) -> None:
    def sleep_running() -> bool:
        tis = estate.task_instances("sy_long")
        return bool(tis) and tis[0]["state"] == "running"

    _wait_for("sy_long.sleep to be running", sleep_running)
    adapter = _adapter(estate.airflow)
    first = _by_key(adapter.poll(None).events)
    run_id = estate.runs["sy_long"]
    attempt = first[f"sy_long/{run_id}/sleep/-1/1"]
    assert attempt.state is State.running
    assert attempt.ended_at is None
    assert first[f"sy_long/{run_id}"].state is State.running

    _wait_for("sy_long to finish", lambda: estate.finished("sy_long"), timeout_s=180)
    cursor = adapter.poll(None).cursor
    later = _by_key(adapter.poll(cursor).events + adapter.poll(None).events)
    assert later[f"sy_long/{run_id}/sleep/-1/1"].state is State.succeeded
    assert later[f"sy_long/{run_id}"].state is State.succeeded


def test_poll_matches_airflow_api_for_runs_and_every_try(estate: Estate) -> None:
    for dag_id in ("sy_success", "sy_failure", "sy_mapped", "sy_long"):
        _wait_for(f"{dag_id} to finish", lambda d=dag_id: estate.finished(d))
    states = default_state_map()
    events = _by_key(_adapter(estate.airflow).poll(None).events)
    checked = 0
    for dag_id, run_id in estate.runs.items():
        run = estate.run(dag_id)
        event = events[f"{dag_id}/{run_id}"]
        assert event.kind is RunKind.run
        assert event.state is states.map("airflow.dag_run", run["state"])
        assert event.attributes["airflow.state"] == run["state"]
        assert event.started_at == parse_time(run["start_date"])
        assert event.ended_at == parse_time(run["end_date"])
        for ti in estate.task_instances(dag_id):
            entries = estate.tries(dag_id, ti) if ti["try_number"] > 0 else [ti]
            for entry in entries:
                entry.setdefault("map_index", ti["map_index"])
                attempt = events[_ti_key(dag_id, run_id, entry)]
                assert attempt.kind is RunKind.attempt
                assert attempt.parent_key == attempt.root_key == f"{dag_id}/{run_id}"
                assert attempt.state is states.map("airflow.task_instance", entry["state"])
                assert attempt.attributes["airflow.state"] == entry["state"]
                assert attempt.started_at == parse_time(entry["start_date"])
                assert attempt.ended_at == parse_time(entry["end_date"])
                assert attempt.attempt == entry["try_number"]
                checked += 1
    # sy_success 2 + sy_failure explode x2 and after + sy_mapped 3 + sy_long 1
    assert checked == 9
    polled_attempts = {k for k, e in events.items() if e.kind is RunKind.attempt}
    assert len(polled_attempts) == checked


def test_failed_tries_carry_the_exception_line_from_their_log(estate: Estate) -> None:
    _wait_for("sy_failure to finish", lambda: estate.finished("sy_failure"))
    events = _by_key(_adapter(estate.airflow).poll(None).events)
    run_id = estate.runs["sy_failure"]
    message = "ValueError: switchyard-marker: the orders file has 0 rows"
    for try_number in (1, 2):
        attempt = events[f"sy_failure/{run_id}/explode/-1/{try_number}"]
        assert attempt.state is State.failed
        assert attempt.error is not None
        assert attempt.error.kind == "ValueError"
        assert attempt.error.message == message
    after = events[f"sy_failure/{run_id}/after/-1/0"]
    assert after.attributes["airflow.state"] == "upstream_failed"
    assert after.state is State.skipped
    run = events[f"sy_failure/{run_id}"]
    assert run.state is State.failed
    assert run.error is not None and run.error.message == message


def test_mapped_task_instances_become_one_attempt_per_map_index(estate: Estate) -> None:
    _wait_for("sy_mapped to finish", lambda: estate.finished("sy_mapped"))
    events = _by_key(_adapter(estate.airflow).poll(None).events)
    run_id = estate.runs["sy_mapped"]
    mapped = [e for e in events.values() if e.job == "sy_mapped" and e.kind is RunKind.attempt]
    assert sorted(e.attributes["airflow.map_index"] for e in mapped) == [0, 1, 2]
    assert {e.name for e in mapped} == {"square[0]", "square[1]", "square[2]"}
    refs = {r.namespace: r.value for r in events[f"sy_mapped/{run_id}/square/1/1"].refs}
    assert refs["airflow.ti"] == f"sy_mapped/{run_id}/square/1/1"


def test_idle_cycle_costs_two_requests_and_emits_nothing_new(estate: Estate) -> None:
    adapter = _adapter(estate.airflow)
    first = adapter.poll(None)
    before = adapter.client.requests
    second = adapter.poll(first.cursor)
    assert adapter.client.requests - before == 2
    assert second.events == []


def test_manual_trigger_with_kestra_conf_carries_its_refs(estate: Estate) -> None:
    adapter = _adapter(estate.airflow)
    payload = adapter.trigger("sy_manual", run_id="from_kestra_4VtC", conf=KESTRA_CONF)
    assert payload["dag_run_id"] == "from_kestra_4VtC"
    estate.runs["sy_manual"] = "from_kestra_4VtC"
    _wait_for("sy_manual to finish", lambda: estate.finished("sy_manual"))
    events = _by_key(adapter.poll(None).events)
    run = events["sy_manual/from_kestra_4VtC"]
    assert run.state is State.succeeded
    assert run.attributes["airflow.run_type"] == "manual"
    refs = {(r.namespace, r.value) for r in run.refs}
    assert ("kestra.execution", "4VtCmKyVq3UJ8xNpbJgGoE") in refs
    assert ("w3c.traceparent", KESTRA_CONF["traceparent"]) in refs


def test_pause_and_resume_flip_is_paused_in_airflow(estate: Estate) -> None:
    adapter = _adapter(estate.airflow)
    adapter.pause("sy_success")
    assert estate.api.get("/dags/sy_success").json()["is_paused"] is True
    adapter.resume("sy_success")
    assert estate.api.get("/dags/sy_success").json()["is_paused"] is False


def test_discover_describes_every_dag_enough_to_translate_it(estate: Estate) -> None:
    specs = {s.key: s for s in _adapter(estate.airflow).discover()}
    assert set(specs) >= {
        "sy_success",
        "sy_failure",
        "sy_mapped",
        "sy_long",
        "sy_paused",
        "sy_manual",
    }
    paused = specs["sy_paused"]
    assert paused.paused is True
    assert paused.schedule == "15 3 * * *"
    assert paused.timezone == "Europe/Paris"
    assert paused.owner == "finance"
    assert paused.labels == {"tag.nightly": "true", "tag.switchyard": "true"}
    assert paused.tasks[0].type == "BashOperator"
    assert paused.tasks[0].arguments["bash_command"] == "echo report"
    assert paused.tasks[0].retries == 3
    assert paused.source_text is not None and 'dag_id="sy_paused"' in paused.source_text
    etl = specs["sy_success"]
    assert etl.edges == [("extract", "load")]
    assert {t.id: t.upstream for t in etl.tasks} == {"extract": [], "load": ["extract"]}
    assert specs["sy_success"].paused is False


def test_expired_token_is_renewed_once_and_the_poll_succeeds(estate: Estate) -> None:
    adapter = _adapter(estate.airflow, token="not-a-jwt")
    result = adapter.poll(None)
    assert result.events
    assert adapter.client.requests >= 4  # refused page, POST /auth/token, the page again, TIs


def test_credentials_that_a_new_token_cannot_cure_raise_source_error(estate: Estate) -> None:
    adapter = _adapter(estate.airflow, password="wrong")
    with pytest.raises(SourceError) as info:
        adapter.poll(None)
    assert info.value.source == "af3"
    assert info.value.retryable is False


def test_auto_detects_airflow_3(estate: Estate) -> None:
    adapter = _adapter(estate.airflow, api="auto")
    assert adapter.client.api_version == "v2"


def test_outage_raises_source_error_and_the_next_poll_catches_up(estate: Estate) -> None:
    proxy = TcpProxy(estate.airflow.port).start()
    try:
        adapter = create(
            SourceConfig(
                name="af3",
                kind="airflow",
                options={
                    "url": f"http://127.0.0.1:{proxy.port}",
                    "username": "admin",
                    "password": estate.airflow.password,
                    "api": "v2",
                    "timeout_s": 5,
                },
            )
        )
        cursor = adapter.poll(None).cursor
        proxy.stop()
        with pytest.raises(SourceError) as info:
            adapter.poll(cursor)
        assert info.value.retryable is True
        run_id = estate.trigger("sy_success")
        _wait_for("the new sy_success run to finish", lambda: estate.finished("sy_success"))
        proxy.start()
        caught_up = _by_key(adapter.poll(cursor).events)
        assert caught_up[f"sy_success/{run_id}"].state is State.succeeded
        assert caught_up[f"sy_success/{run_id}/load/-1/1"].state is State.succeeded
    finally:
        proxy.stop()
