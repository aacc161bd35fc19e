"""An attacker's requests against a running `switchyard serve`, judged by the database.

A real `switchyard serve` subprocess (real uvicorn, real HTTP on loopback, a
SQLite file) serves an Airflow source with its OpenLineage routes (keyed), a
cron source with one registered ping check, and the API. Each party holds the
credential it would have in the field and tries to write what it may not:

- anonymous: events, lineage without a key or with a wrong one, pings to an
  unknown uuid and a slug, the cron host API, a migration action;
- a viewer: events and a migration action;
- a cron host (its source's token): events through the API, and reports that
  name other sources;
- an operator token handed to CI: events into the configured sources;
- an ingest token scoped to `airflow-prod`: events into other sources, reads,
  and a push that would overwrite what the Airflow poller reported.

Afterwards the store must hold exactly what each role may write, and nothing
else: no run, job, event, token or migration row that a refused request
could have left. A gateway configured with a keyless lineage source must not
start at all.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Engine

from gateway.auth import create_token
from gateway.contract import PROVISIONAL, JobSpec, RunEvent, State, job_id_for
from gateway.ingest import apply_batch
from gateway.merge import PUSH_CLOCK_SKEW
from tests.dbs import migrated_engine
from tests.faults.gateway_process import SWITCHYARD, GatewayProcess, gateway_env

pytestmark = pytest.mark.slow  # one gateway process for the module

LINEAGE_KEY = "lineage-key-e2e"
CRON_TOKEN = "cron-host-token-e2e"
REGISTERED = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
DAG = "orders_etl"
POLLED_KEY = f"{DAG}/scheduled__2026-11-25T00:00:00+00:00"
T0 = datetime(2026, 11, 25, tzinfo=UTC)


@dataclass
class Estate:
    url: str
    engine: Engine
    tokens: dict[str, str]
    process: GatewayProcess

    def rows(self, query: str, **params: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.text(query), params).mappings()]

    def count(self, table: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def config(tmp: Path, db: Path) -> dict[str, Any]:
    return {
        "database_url": f"sqlite:///{db}",
        "retention": "off",
        "sources": [
            {
                "name": "airflow-prod",
                "kind": "airflow",
                # Nothing listens there: the poller fails quietly; the poll is played below.
                "interval": "1h",
                "options": {
                    "url": "http://127.0.0.1:9",
                    "openlineage": True,
                    "openlineage_api_key": LINEAGE_KEY,
                },
            },
            {
                "name": "cron-hosts",
                "kind": "cron",
                "interval": "1h",
                "options": {
                    "token": CRON_TOKEN,
                    "control_file": str(tmp / "control.json"),
                    "checks": {REGISTERED: {"name": "backup"}},
                },
            },
        ],
    }


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    tmp = tmp_path_factory.mktemp("attacker")
    db = tmp / "switchyard.db"
    engine = migrated_engine(f"sqlite:///{db}")
    tokens = {
        role: create_token(engine, role=role, name=f"{role}-e2e") for role in ("viewer", "operator")
    }
    tokens["ingest"] = create_token(engine, role="ingest", name="ci", sources=["airflow-prod"])
    # What the Airflow poller reported: the DAG and a run that failed.
    polled = RunEvent(
        source="airflow-prod",
        key=POLLED_KEY,
        job=DAG,
        state=State.failed,
        started_at=T0,
        ended_at=T0 + timedelta(minutes=5),
        observed_at=T0 + timedelta(minutes=6),
    )
    dag = JobSpec(source="airflow-prod", key=DAG, kind="dag", schedule="0 0 * * *")
    apply_batch(engine, "airflow-prod", [polled], jobs=[dag])
    path = tmp / "switchyard.yaml"
    path.write_text(yaml.safe_dump(config(tmp, db)))
    process = GatewayProcess(path, gateway_env(tmp), tmp / "serve.log").start()
    assert process.base_url is not None
    try:
        yield Estate(process.base_url, engine, tokens, process)
    finally:
        process.stop()
        engine.dispose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def event(key: str, state: str = "succeeded", at: datetime = T0) -> dict[str, Any]:
    return {"key": key, "state": state, "observed_at": at.isoformat()}


def lineage_event() -> dict[str, Any]:
    return {
        "eventType": "COMPLETE",
        "eventTime": "2026-11-25T00:05:00+00:00",
        "run": {"runId": str(uuid.uuid4())},
        "job": {"namespace": "spark", "name": "forged"},
        "producer": "https://example.invalid/attacker",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
    }


def report(host: str, job: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "phase": "finish",
        "run_id": f"{host}/{job}/{uuid.uuid4().hex[:12]}",
        "job": job,
        "host": host,
        "started_at": now,
        "ended_at": now,
        "sent_at": now,
        "exit_code": 0,
    }


def expect(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.request.url, response.text[:400])
    if status >= 400 and response.headers.get("content-type") == "application/problem+json":
        body: dict[str, Any] = response.json()
        return body
    return {}


def test_each_party_writes_only_what_its_credential_allows(estate: Estate) -> None:
    tokens_before = estate.count("api_token")
    dag_id = job_id_for("airflow-prod", DAG)
    action = f"/api/v1/migrations/{dag_id}/actions/translate"
    unknown = str(uuid.uuid4())
    with httpx.Client(base_url=estate.url, timeout=30) as http:
        api_401 = expect(http.get("/api/v1/runs"), 401)

        # Anonymous: no write path without a credential.
        expect(http.post("/api/v1/events", json={"source": "x", "events": [event("a")]}), 401)
        for headers in ({}, bearer("wrong-key"), bearer(estate.tokens["operator"])):
            refused = expect(
                http.post("/api/v1/lineage", json=lineage_event(), headers=headers), 401
            )
            assert refused["type"] == api_401["type"]
        expect(http.post("/api/v1/lineage/batch", json=[lineage_event()]), 401)
        assert http.get(f"/ping/{unknown}/fail").status_code == 404
        assert http.get(f"/ping/{unknown}/start?rid={uuid.uuid4()}").status_code == 404
        assert http.get("/ping/guessed-key/new-slug?create=1").status_code == 404
        expect(http.post("/api/v1/cron/report", json={"reports": [report("h", "j")]}), 401)
        expect(http.post(action), 401)
        expect(http.post("/api/v1/sources/airflow-prod/webhook", json={}), 404)

        # A viewer reads, and writes nothing.
        viewer = bearer(estate.tokens["viewer"])
        body = {"source": "scratch", "events": [event("v")]}
        expect(http.post("/api/v1/events", json=body, headers=viewer), 403)
        expect(http.post(action, headers=viewer), 403)

        # A cron host: its token is no API token, and its reports land in its own source.
        host = bearer(CRON_TOKEN)
        expect(http.post("/api/v1/events", json=body, headers=host), 401)
        forged = report("db-1", "airflow-prod")
        forged["source"] = "airflow-prod"
        r = http.post("/api/v1/cron/report", json={"reports": [forged]}, headers=host)
        assert r.status_code == 200, r.text
        assert http.get(f"/ping/{REGISTERED}").status_code == 200  # the registered check

        # An operator token given to CI: its own name, never a configured source's.
        ci = bearer(estate.tokens["operator"])
        for source in ("airflow-prod", "cron-hosts"):
            refused = expect(
                http.post(
                    "/api/v1/events",
                    json={"source": source, "events": [event(POLLED_KEY)]},
                    headers=ci,
                ),
                403,
            )
            assert "--role ingest" in refused["detail"]
        r = http.post(
            "/api/v1/events",
            json={"source": "ci-pipeline", "events": [event("build-7")]},
            headers=ci,
        )
        assert r.status_code == 200, r.text

        # An ingest token scoped to airflow-prod: that source only, and it reads nothing.
        ingest = bearer(estate.tokens["ingest"])
        for source in ("cron-hosts", "ci-pipeline"):
            expect(
                http.post(
                    "/api/v1/events",
                    json={"source": source, "events": [event("i")]},
                    headers=ingest,
                ),
                403,
            )
        expect(http.get("/api/v1/runs", headers=ingest), 403)
        expect(http.post(action, headers=ingest), 403)
        future = datetime.now(UTC) + timedelta(days=30)
        granted = {
            "source": "airflow-prod",
            # Claims the polled failure succeeded, from the future, and a run of its own.
            "events": [
                event(POLLED_KEY, "succeeded", future),
                event("pushed-by-ci", "running", future),
            ],
        }
        r = http.post("/api/v1/events", json=granted, headers=ingest)
        assert r.status_code == 200, r.text
        done = datetime.now(UTC)

    runs = {
        (r["source"], r["key"]): r
        for r in estate.rows("SELECT source, key, job, state, state_pushed, observed_at FROM run")
    }
    cron_keys = {key for source, key in runs if source == "cron-hosts"}
    assert set(runs) == {
        ("airflow-prod", POLLED_KEY),
        ("airflow-prod", "pushed-by-ci"),
        ("ci-pipeline", "build-7"),
        *(("cron-hosts", key) for key in cron_keys),
    }
    assert {runs[("cron-hosts", k)]["job"] for k in cron_keys} == {
        "airflow-prod",
        f"ping/{REGISTERED}",
    }
    # The poller's word on how the run ended stands; the push's clock was clamped.
    polled = runs[("airflow-prod", POLLED_KEY)]
    assert (polled["state"], bool(polled["state_pushed"])) == ("failed", False)
    pushed = runs[("airflow-prod", "pushed-by-ci")]
    assert bool(pushed["state_pushed"])
    observed = datetime.fromisoformat(str(pushed["observed_at"])).replace(tzinfo=UTC)
    assert observed <= done + PUSH_CLOCK_SKEW
    # Every event a push route took is marked pushed; the one the poller wrote is not.
    marks: dict[str, list[bool]] = {}
    for row in estate.rows("SELECT source, payload FROM run_event ORDER BY source"):
        marks.setdefault(row["source"], []).append(json.loads(row["payload"]).get("pushed", False))
    assert {source: sorted(flags) for source, flags in marks.items()} == {
        "airflow-prod": [False, True, True],
        "ci-pipeline": [True],
        "cron-hosts": [True, True],
    }

    jobs = estate.rows("SELECT source, key, labels FROM job")
    assert not [j for j in jobs if PROVISIONAL in json.loads(j["labels"])]
    assert {(j["source"], j["key"]) for j in jobs} <= {
        ("airflow-prod", DAG),
        ("cron-hosts", f"ping/{REGISTERED}"),
    }
    assert estate.count("migration") == estate.count("migration_audit") == 0
    assert estate.count("api_token") == tokens_before
    assert estate.count("webhook_delivery") == 0
    assert estate.process.alive()


def test_a_keyless_lineage_source_stops_serve_before_it_listens(tmp_path: Path) -> None:
    doc = config(tmp_path, tmp_path / "refused.db")
    del doc["sources"][0]["options"]["openlineage_api_key"]
    path = tmp_path / "switchyard.yaml"
    path.write_text(yaml.safe_dump(doc))
    done = subprocess.run(
        [SWITCHYARD, "serve", "--config", str(path), "--port", "0"],
        env=gateway_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "sources[0]: options.openlineage_api_key:" in done.stderr
    assert "allow_anonymous: true" in done.stderr
    assert not (tmp_path / "refused.db").exists()
