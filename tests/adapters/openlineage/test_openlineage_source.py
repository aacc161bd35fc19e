"""The `openlineage` source kind: a non-Airflow producer's runs, parent chain included."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
from openlineage.client.facet_v2 import parent_run
from openlineage.client.serde import Serde
from sqlalchemy import Engine
from sqlmodel import Session, select

from gateway.api.app import create_app
from gateway.config import parse_config
from gateway.store.models import Run as RunRow


def _event(run_id: str, state: RunState, name: str, parent: str | None = None) -> dict:  # type: ignore[type-arg]
    facets = {}
    if parent:
        facets["parent"] = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=parent), job=parent_run.Job(namespace="spark", name="nightly")
        )
    event = RunEvent(
        eventType=state,
        eventTime="2026-11-25T23:12:07+00:00",
        run=Run(runId=run_id, facets=facets),
        job=Job(namespace="spark", name=name),
        producer="https://github.com/OpenLineage/OpenLineage/tree/1.54.0/integration/spark",
    )
    return dict(Serde.to_dict(event))


def test_spark_job_and_its_child_land_with_the_parent_link(sqlite_engine: Engine) -> None:
    config = parse_config(
        {"sources": [{"name": "lineage", "kind": "openlineage", "options": {"api_key": "k1"}}]}
    )
    parent, child = str(uuid.uuid4()), str(uuid.uuid4())
    with TestClient(create_app(config, sqlite_engine)) as client:
        denied = client.post("/api/v1/lineage", json=_event(parent, RunState.START, "nightly"))
        assert denied.status_code == 401
        headers = {"Authorization": "Bearer k1"}
        batch = [
            _event(parent, RunState.START, "nightly"),
            _event(child, RunState.FAIL, "nightly.stage_3", parent=parent),
        ]
        r = client.post("/api/v1/lineage/batch", json=batch, headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "success"
    with Session(sqlite_engine) as session:
        rows = {
            row.key: row for row in session.exec(select(RunRow).where(RunRow.source == "lineage"))
        }
    assert rows[parent].state == "running"
    assert rows[child].state == "failed"
    assert rows[child].parent_key == parent
    assert rows[child].trace_id == rows[parent].trace_id


def test_poll_is_a_no_op_that_keeps_the_cursor() -> None:
    from adapters.openlineage import create
    from gateway.contract import SourceConfig

    source = create(SourceConfig(name="lineage", kind="openlineage"))
    assert source.poll("c1").cursor == "c1"
    assert source.poll("c1").events == []
    assert source.discover() == []
