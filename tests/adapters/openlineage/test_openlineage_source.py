"""The `openlineage` source kind: a non-Airflow producer's runs, parent chain included."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
from openlineage.client.facet_v2 import parent_run
from openlineage.client.serde import Serde
from sqlalchemy import Engine
from sqlmodel import Session, select

from gateway.api.app import create_app
from gateway.config import ConfigError, parse_config
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


@pytest.mark.parametrize(
    ("source", "key"),
    [
        ({"name": "lineage", "kind": "openlineage"}, "options.api_key"),
        (
            {"name": "af", "kind": "airflow", "options": {"url": "http://x", "openlineage": True}},
            "options.openlineage_api_key",
        ),
    ],
)
def test_a_lineage_source_without_a_key_is_refused_naming_the_key(
    source: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError, match=rf"sources\[0\]: {re.escape(key)}: .*allow_anonymous"):
        parse_config({"sources": [source]})


def test_the_routes_refuse_to_mount_without_a_key_whatever_the_config_check_said() -> None:
    from adapters.openlineage import create
    from gateway.contract import SourceConfig

    source = create(SourceConfig(name="lineage", kind="openlineage"))
    with pytest.raises(ValueError, match="need an API key"):
        source.routes(sink=None)  # type: ignore[arg-type]  # refused before the sink is used


def test_the_lineage_401_is_the_api_401(sqlite_engine: Engine) -> None:
    config = parse_config(
        {"sources": [{"name": "lineage", "kind": "openlineage", "options": {"api_key": "k1"}}]}
    )
    with TestClient(create_app(config, sqlite_engine)) as client:
        body = _event(str(uuid.uuid4()), RunState.START, "nightly")
        api = client.get("/api/v1/runs")
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic k1"}):
            lineage = client.post("/api/v1/lineage", json=body, headers=headers)
            assert lineage.status_code == api.status_code == 401
            assert lineage.headers["content-type"] == api.headers["content-type"]
            assert lineage.headers["www-authenticate"].startswith("Bearer")
            assert {k: v for k, v in lineage.json().items() if k != "detail"} == {
                k: v for k, v in api.json().items() if k != "detail"
            }
    with Session(sqlite_engine) as session:
        assert session.exec(select(RunRow)).all() == []


def test_anonymous_lineage_is_an_explicit_opt_in_logged_at_start(
    sqlite_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    config = parse_config(
        {
            "sources": [
                {"name": "lineage", "kind": "openlineage", "options": {"allow_anonymous": True}}
            ]
        }
    )
    with caplog.at_level(logging.WARNING), TestClient(create_app(config, sqlite_engine)) as client:
        r = client.post("/api/v1/lineage", json=_event(str(uuid.uuid4()), RunState.START, "x"))
        assert r.status_code == 200, r.text
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("'lineage' serves POST /api/v1/lineage without a key" in m for m in warned)
