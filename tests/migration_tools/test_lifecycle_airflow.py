"""The lifecycle of a DAG against the real Airflow 3 of the test session, and the wrap's wire calls.

Legacy side: `airflow standalone` (tests/adapters/airflow/harness.py) with the
DAG `sy_migrate` (scheduled, unpaused, first interval in 2099); the real
`airflow` adapter discovers it and pauses/unpauses it. `is_paused` is read
back through Airflow's own REST API with plain httpx. Kestra side: the emulator.

The wrap flow's Airflow calls are sent to the real Airflow exactly as the
flow spells them (method, URI, headers, body), with only their Pebble
expressions evaluated here, so a wrong path or body shape fails the test.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from adapters.airflow import AirflowAdapter, create
from emulators.kestra import KestraEmulator
from gateway.contract import SourceConfig
from gateway.ingest import apply_batch
from migration_tools.kestra_api import KestraApi
from migration_tools.lifecycle import Migrations
from migration_tools.wrap import AirflowTarget, WrapOptions, wrap
from tests.adapters.airflow.harness import RealAirflow
from tests.migration_tools.conftest import ManualClock

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SOURCE = "af3"
DAG = "sy_migrate"
NS = "switchyard.migrated"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
EXECUTION_ID = "5vUxGdL1RKS8Y4y9fXj3Qz"


def airflow_api(airflow: RealAirflow) -> httpx.Client:
    return httpx.Client(
        base_url=f"{airflow.url}/api/v2",
        headers={"Authorization": f"Bearer {airflow.token()}"},
        timeout=30,
    )


def is_paused(airflow: RealAirflow) -> bool:
    with airflow_api(airflow) as api:
        r = api.get(f"/dags/{DAG}")
    assert r.status_code == 200, r.text
    return bool(r.json()["is_paused"])


def wait_for_dag(airflow: RealAirflow, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    with airflow_api(airflow) as api:
        while time.monotonic() < deadline:
            if api.get(f"/dags/{DAG}").status_code == 200:
                return
            time.sleep(1)
    raise AssertionError(f"Airflow did not parse {DAG} within {timeout_s:.0f}s")


@pytest.fixture
def legacy(real_airflow: RealAirflow) -> Iterator[AirflowAdapter]:
    wait_for_dag(real_airflow)
    options = {
        "url": real_airflow.url,
        "username": real_airflow.username,
        "password": real_airflow.password,
        "api": "v2",
    }
    adapter = create(SourceConfig(name=SOURCE, kind="airflow", options=options))
    yield adapter
    adapter.resume(DAG)  # the session's Airflow is shared: leave the DAG as found
    adapter.close()


def make_migrations(
    engine: Engine, airflow: RealAirflow, legacy: AirflowAdapter, kestra: KestraEmulator, clock: Any
) -> Migrations:
    (spec,) = [s for s in legacy.discover() if s.key == DAG]
    apply_batch(engine, SOURCE, [], jobs=[spec])
    return Migrations(
        engine,
        kestra=KestraApi(kestra.url),
        legacy={SOURCE: legacy},
        wrap_options=WrapOptions(namespace=NS, airflow=AirflowTarget(url=airflow.url)),
        clock=clock,
    )


def audit(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT action, after, outcome FROM migration_audit ORDER BY id")
        ).all()
    return [(r[0], r[1], r[2]) for r in rows]


def test_airflow_dag_is_paused_at_cutover_and_unpaused_by_rollback(
    sqlite_engine: Engine,
    real_airflow: RealAirflow,
    legacy: AirflowAdapter,
    kestra: KestraEmulator,
    clock: ManualClock,
) -> None:
    m = make_migrations(sqlite_engine, real_airflow, legacy, kestra, clock)
    assert not is_paused(real_airflow)
    view = m.translate(SOURCE, DAG, actor="alice")
    assert view.readiness == "full", view.reasons
    m.deploy(SOURCE, DAG, actor="alice")
    m.shadow(SOURCE, DAG, actor="alice", safe=True)
    assert not is_paused(real_airflow)  # shadow: both run

    m.cutover(SOURCE, DAG, actor="bob", force=True)  # parity is covered by the other kinds
    assert is_paused(real_airflow)
    assert [s.paused for s in legacy.discover() if s.key == DAG] == [True]

    m.rollback(SOURCE, DAG, actor="carol")
    assert not is_paused(real_airflow)
    assert ("main", NS, str(view.flow_id)) not in kestra.state.flows
    assert audit(sqlite_engine) == [
        ("translate", "translated", "ok"),
        ("deploy", "translated", "ok"),
        ("shadow", "shadow", "ok"),
        ("cutover", "cut_over", "ok"),
        ("rollback", "observed", "ok"),
    ]


def test_airflow_wrap_pauses_the_dag_and_rollback_unpauses_it(
    sqlite_engine: Engine,
    real_airflow: RealAirflow,
    legacy: AirflowAdapter,
    kestra: KestraEmulator,
    clock: ManualClock,
) -> None:
    m = make_migrations(sqlite_engine, real_airflow, legacy, kestra, clock)
    m.translate(SOURCE, DAG, actor="alice")
    wrap_id = str(m.wrap(SOURCE, DAG, actor="alice").wrap_flow_id)
    assert is_paused(real_airflow)
    assert ("main", NS, wrap_id) in kestra.state.flows
    m.rollback(SOURCE, DAG, actor="alice")
    assert not is_paused(real_airflow)
    assert ("main", NS, wrap_id) not in kestra.state.flows


# --- the wrap flow's HTTP calls, sent to the real Airflow --------------------------------

_PEBBLE = re.compile(r"\{\{.*?\}\}")


def render(value: Any, known: dict[str, str]) -> Any:
    """`value` with each Pebble expression in `known` replaced; any other one is an error."""
    if isinstance(value, dict):
        return {k: render(v, known) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, known) for v in value]
    if not isinstance(value, str):
        return value

    def sub(match: re.Match[str]) -> str:
        expression = match.group(0)
        assert expression in known, f"unexpected Pebble expression {expression!r}"
        return known[expression]

    return _PEBBLE.sub(sub, value)


def send(task: dict[str, Any], known: dict[str, str]) -> httpx.Response:
    """Send a `core.http.Request` task as Kestra would: method, uri, headers, body."""
    task = render(task, known)
    body = task.get("body")
    content = body if isinstance(body, str) else json.dumps(body) if body is not None else None
    headers = dict(task.get("headers") or {})
    if task.get("contentType"):
        headers["Content-Type"] = task["contentType"]
    return httpx.request(
        task.get("method", "GET"), task["uri"], headers=headers, content=content, timeout=30
    )


def test_the_airflow3_wrap_flow_calls_create_a_dag_run_carrying_the_traceparent(
    real_airflow: RealAirflow, legacy: AirflowAdapter
) -> None:
    (spec,) = [s for s in legacy.discover() if s.key == DAG]
    flow = wrap(spec, WrapOptions(namespace=NS, airflow=AirflowTarget(url=real_airflow.url))).flow
    tasks = {t["id"]: t for t in flow["tasks"]}
    known = {
        "{{ secret('AIRFLOW_USERNAME') }}": real_airflow.username,
        "{{ secret('AIRFLOW_PASSWORD') }}": real_airflow.password,
        "{{ outputs.switchyard_trace.values.traceparent }}": TRACEPARENT,
        "{{ execution.id }}": EXECUTION_ID,
    }

    token = send(tasks["airflow_token"], known)
    assert token.status_code in (200, 201), token.text
    known["{{ outputs.airflow_token.body | jq('.access_token') | first }}"] = token.json()[
        "access_token"
    ]

    created = send(tasks["trigger_dag_run"], known)
    assert created.status_code == 200, created.text
    run_id = f"kestra__{EXECUTION_ID}"
    assert created.json()["dag_run_id"] == run_id

    (poll,) = tasks["wait_dag_run"]["tasks"]
    polled = send(poll, known)
    assert polled.status_code == 200, polled.text
    run = polled.json()
    assert run["dag_run_id"] == run_id
    assert run["conf"]["traceparent"] == TRACEPARENT
    assert run["conf"]["airflow/dagrun_parent_trace_context"] == {"traceparent": TRACEPARENT}
    assert run["conf"]["switchyard.kestra_execution"] == EXECUTION_ID
    # the LoopUntil condition reads `.state`; Airflow answers one of its run states there
    assert run["state"] in {"queued", "running", "success", "failed"}
