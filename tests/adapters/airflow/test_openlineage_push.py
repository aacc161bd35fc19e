"""OpenLineage push: the real openlineage-python client → the gateway on uvicorn.

The gateway is `create_app` with one Airflow source whose ``openlineage``
option is on, served on an ephemeral loopback port; events land in a real
SQLite store through the group-commit sink.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import attr
import httpx
import pytest
import uvicorn
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
from openlineage.client.facet_v2 import RunFacet, error_message_run
from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport
from sqlalchemy import Engine
from sqlmodel import Session, select

from adapters.airflow import normalize
from adapters.airflow.openlineage import InvalidEvent, to_run_event, validate_event
from gateway.api.app import create_app
from gateway.config import parse_config
from gateway.ingest import apply_batch
from gateway.states import default_state_map
from gateway.store.models import Run as RunRow
from tests.adapters.airflow.harness import free_port

PRODUCER = "https://github.com/apache/airflow/tree/providers-openlineage/2.20.3"
DAG_ID = "orders_etl"
RUN_ID = "manual__2026-11-25T23:12:06.123456+00:00"
LINEAGE_KEY = "lineage-test-key"
AUTH = {"Authorization": f"Bearer {LINEAGE_KEY}"}


@attr.define
class AirflowRunFacet(RunFacet):
    """The provider's `airflow` run facet, field for field."""

    dag: dict  # type: ignore[type-arg]
    dagRun: dict  # type: ignore[type-arg]
    task: dict  # type: ignore[type-arg]
    taskInstance: dict  # type: ignore[type-arg]
    taskUuid: str


@attr.define
class AirflowDagRunFacet(RunFacet):
    dag: dict  # type: ignore[type-arg]
    dagRun: dict  # type: ignore[type-arg]


@pytest.fixture
def gateway(sqlite_engine: Engine) -> Iterator[tuple[str, Engine]]:
    config = parse_config(
        {
            "sources": [
                {
                    "name": "af3",
                    "kind": "airflow",
                    "options": {
                        "url": "http://127.0.0.1:9",
                        "openlineage": True,
                        "openlineage_api_key": LINEAGE_KEY,
                    },
                }
            ]
        }
    )
    app = create_app(config, sqlite_engine)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}", sqlite_engine
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _client(url: str) -> OpenLineageClient:
    # The provider's own api_key auth: what AIRFLOW__OPENLINEAGE__TRANSPORT configures.
    config = HttpConfig(url=url, timeout=10, auth=ApiKeyTokenProvider({"apiKey": LINEAGE_KEY}))
    return OpenLineageClient(transport=HttpTransport(config))


def _task_facets(try_number: int, map_index: int | None = None) -> dict[str, RunFacet]:
    return {
        "airflow": AirflowRunFacet(
            dag={"dag_id": DAG_ID, "owner": "data-eng"},
            dagRun={
                "dag_id": DAG_ID,
                "run_id": RUN_ID,
                "clear_number": 0,
                "run_after": "2026-11-25T23:12:06.123456+00:00",
            },
            task={"task_id": "transform", "operator_class": "BashOperator"},
            taskInstance={"try_number": try_number, "map_index": map_index, "pool": "default_pool"},
            taskUuid=str(uuid.uuid4()),
        )
    }


def _runs(engine: Engine) -> list[RunRow]:
    with Session(engine) as session:
        return list(session.exec(select(RunRow).where(RunRow.source == "af3")))


def test_airflow_task_events_from_the_real_client_land_as_one_attempt(
    gateway: tuple[str, Engine],
) -> None:
    url, engine = gateway
    client = _client(url)
    run_uuid = str(uuid.uuid4())
    job = Job(namespace="default", name=f"{DAG_ID}.transform")
    start = datetime(2026, 11, 25, 23, 12, 8, tzinfo=UTC)
    client.emit(
        RunEvent(
            eventType=RunState.START,
            eventTime=start.isoformat(),
            run=Run(runId=run_uuid, facets=_task_facets(2)),
            job=job,
            producer=PRODUCER,
        )
    )
    failed_facets = {
        **_task_facets(2),
        "errorMessage": error_message_run.ErrorMessageRunFacet(
            message="ValueError: bad rows", programmingLanguage="python"
        ),
    }
    client.emit(
        RunEvent(
            eventType=RunState.FAIL,
            eventTime="2026-11-25T23:12:19+00:00",
            run=Run(runId=run_uuid, facets=failed_facets),
            job=job,
            producer=PRODUCER,
        )
    )
    rows = _runs(engine)
    key = f"{DAG_ID}/{RUN_ID}/transform/-1/2"
    assert [r.key for r in rows] == [key]
    row = rows[0]
    assert row.kind == "attempt"
    assert row.state == "failed"
    assert row.attempt == 2
    assert row.error_message == "ValueError: bad rows"
    assert row.started_at is not None and row.ended_at is not None


def test_pushed_and_polled_events_for_one_try_merge_into_one_run(
    gateway: tuple[str, Engine],
) -> None:
    url, engine = gateway
    client = _client(url)
    client.emit(
        RunEvent(
            eventType=RunState.START,
            eventTime="2026-11-25T23:12:08+00:00",
            run=Run(runId=str(uuid.uuid4()), facets=_task_facets(1)),
            job=Job(namespace="default", name=f"{DAG_ID}.transform"),
            producer=PRODUCER,
        )
    )
    polled = normalize.task_try_event(
        "af3",
        {
            "dag_id": DAG_ID,
            "dag_run_id": RUN_ID,
            "task_id": "transform",
            "map_index": -1,
            "try_number": 1,
            "state": "success",
            "start_date": "2026-11-25T23:12:08.100000Z",
            "end_date": "2026-11-25T23:12:30.000000Z",
            "run_after": "2026-11-25T23:12:06.123456Z",
        },
        observed_at=datetime.now(UTC),
        states=default_state_map(),
    )
    assert polled is not None
    apply_batch(engine, "af3", [polled])
    rows = _runs(engine)
    assert len(rows) == 1
    assert rows[0].key == f"{DAG_ID}/{RUN_ID}/transform/-1/1"
    assert rows[0].state == "succeeded"


def test_dag_run_event_is_keyed_like_the_polled_dag_run(gateway: tuple[str, Engine]) -> None:
    url, engine = gateway
    facets = {
        "airflowDagRun": AirflowDagRunFacet(
            dag={"dag_id": DAG_ID},
            dagRun={
                "dag_id": DAG_ID,
                "run_id": RUN_ID,
                "start_date": "2026-11-25T23:12:07+00:00",
                "conf": {"source": "kestra", "execution": "5xYz"},
            },
        )
    }
    _client(url).emit(
        RunEvent(
            eventType=RunState.START,
            eventTime="2026-11-25T23:12:07+00:00",
            run=Run(runId=str(uuid.uuid4()), facets=facets),
            job=Job(namespace="default", name=DAG_ID),
            producer=PRODUCER,
        )
    )
    rows = _runs(engine)
    assert [(r.key, r.kind, r.state) for r in rows] == [(f"{DAG_ID}/{RUN_ID}", "run", "running")]


def test_invalid_event_is_422_naming_the_field_and_nothing_is_stored(
    gateway: tuple[str, Engine],
) -> None:
    url, engine = gateway
    body = {
        "eventTime": "2026-11-25T23:12:07+00:00",
        "eventType": "START",
        "producer": PRODUCER,
        "run": {"runId": "not-a-uuid"},
        "job": {"namespace": "default", "name": "x"},
    }
    r = httpx.post(f"{url}/api/v1/lineage", json=body, headers=AUTH)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["errors"][0]["field"] == "run.runId"
    assert _runs(engine) == []


def test_batch_reports_partial_success_with_counts(gateway: tuple[str, Engine]) -> None:
    url, engine = gateway
    good = {
        "eventTime": "2026-11-25T23:12:07+00:00",
        "eventType": "COMPLETE",
        "producer": "https://example.invalid/producer",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": str(uuid.uuid4())},
        "job": {"namespace": "spark", "name": "nightly"},
    }
    bad = {**good, "job": {"namespace": "spark"}}
    r = httpx.post(f"{url}/api/v1/lineage/batch", json=[good, bad], headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "partial_success"
    assert (body["received"], body["accepted"], body["failed"]) == (2, 1, 1)
    assert body["errors"][0]["loc"] == ["body", 1, "job", "name"]
    assert [row.state for row in _runs(engine)] == ["succeeded"]
    assert (
        httpx.post(f"{url}/api/v1/lineage/batch", json={"not": "a list"}, headers=AUTH).status_code
        == 422
    )


def test_validate_event_names_missing_event_time() -> None:
    with pytest.raises(InvalidEvent) as info:
        validate_event({"producer": "p", "run": {"runId": str(uuid.uuid4())}, "job": {}})
    assert info.value.loc == ["eventTime"]


def test_other_event_type_carries_no_state() -> None:
    event = {
        "eventTime": "2026-11-25T23:12:07+00:00",
        "eventType": "OTHER",
        "producer": "p",
        "run": {"runId": str(uuid.uuid4())},
        "job": {"namespace": "n", "name": "j"},
    }
    assert to_run_event("s", event, observed_at=datetime.now(UTC)) is None
