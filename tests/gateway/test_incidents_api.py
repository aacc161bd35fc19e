"""`/api/v1/incidents` and `/api/v1/flows` over a real app, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from gateway.api.app import create_app
from gateway.auth import create_token
from gateway.config import parse_config
from gateway.contract import ErrorInfo, State
from gateway.ingest import apply_batch
from tests.gateway.test_correlation import INVENTORY, ev

FLOW_YAML = """
name: inventory
owner: retail@example.com
jobs: [etl-01:sync_inventory, lambda-prod:inventory-sync, k8s-prod:job/search/reindex]
edges:
  - etl-01:sync_inventory invokes lambda-prod:inventory-sync within 5m
  - lambda-prod:inventory-sync triggers k8s-prod:job/search/reindex within 10m
"""


def _client(engine: Engine, tmp_path: Path) -> tuple[TestClient, dict[str, str]]:
    (tmp_path / "inventory.yaml").write_text(FLOW_YAML)
    app = create_app(parse_config({"flows_dir": str(tmp_path)}), engine)
    token = create_token(engine, role="viewer", name="v")
    return TestClient(app), {"Authorization": f"Bearer {token}"}


def _fail(engine: Engine, n: int, minute: float) -> None:
    apply_batch(
        engine,
        "etl-01",
        [
            ev(
                "etl-01",
                f"other_{n}/r",
                State.failed,
                job=f"other_{n}",
                start=minute,
                end=minute + 0.5,
                seen=minute + 0.5,
                error=ErrorInfo(kind="exit_code", exit_code=n),
            )
        ],
    )


def test_incidents_list_pages_by_keyset_filters_by_status_and_serves_detail(
    engine: Engine, tmp_path: Path
) -> None:
    client, auth = _client(engine, tmp_path)
    with client:
        for n in range(5):
            _fail(engine, n + 1, minute=n)
        # Recover one job: its incident resolves.
        apply_batch(
            engine,
            "etl-01",
            [ev("etl-01", "other_1/r2", State.succeeded, job="other_1", start=30, end=31, seen=31)],
        )
        seen: list[int] = []
        cursor = None
        for _ in range(5):
            params: dict[str, str | int] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/api/v1/incidents", params=params, headers=auth).json()
            seen.extend(i["id"] for i in page["data"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == 5 and len(set(seen)) == 5
        opened = [
            client.get(f"/api/v1/incidents/{i}", headers=auth).json()["opened_at"] for i in seen
        ]
        assert opened == sorted(opened, reverse=True)

        resolved = client.get("/api/v1/incidents", params={"status": "resolved"}, headers=auth)
        assert [i["title"] for i in resolved.json()["data"]] == ["etl-01:other_1 exit_code"]
        detail = client.get(f"/api/v1/incidents/{resolved.json()['data'][0]['id']}", headers=auth)
        body = detail.json()
        assert body["status"] == "resolved"
        assert body["root_cause"]["job"] == "other_1"
        assert [s["role"] for s in body["chain"]] == ["root_cause"]
        assert [e["what"] for e in body["timeline"]][-1] == "incident resolved"

        assert client.get("/api/v1/incidents/999999", headers=auth).status_code == 404
        bad = client.get("/api/v1/incidents", params={"cursor": "nope"}, headers=auth)
        assert bad.status_code == 422
        assert client.get("/api/v1/incidents").status_code == 401


def test_flows_api_lists_jobs_edges_and_runs_stitched_across_sources(
    engine: Engine, tmp_path: Path
) -> None:
    client, auth = _client(engine, tmp_path)
    assert INVENTORY["name"] == "inventory"
    with client:
        apply_batch(
            engine,
            "etl-01",
            [ev("etl-01", "inv/r1", State.succeeded, job="sync_inventory", start=0, end=2, seen=2)],
        )
        apply_batch(
            engine,
            "lambda-prod",
            [
                ev(
                    "lambda-prod",
                    "req-1",
                    State.succeeded,
                    job="inventory-sync",
                    start=0.5,
                    end=1,
                    seen=1,
                )
            ],
        )
        apply_batch(
            engine,
            "k8s-prod",
            [
                ev(
                    "k8s-prod",
                    "job/search/reindex-1/u",
                    State.running,
                    job="job/search/reindex",
                    start=4,
                    seen=4,
                )
            ],
        )
        flows = client.get("/api/v1/flows", headers=auth).json()["data"]
        assert [f["name"] for f in flows] == ["inventory"]
        flow = client.get("/api/v1/flows/inventory", headers=auth).json()
        assert flow["owner"] == "retail@example.com"
        assert [j["last_state"] for j in flow["jobs"]] == ["succeeded", "succeeded", "running"]
        assert [e["relation"] for e in flow["edges"]] == ["invokes", "triggers"]
        (run,) = flow["recent_runs"]
        assert run["state"] == "running"
        assert [(r["source"], r["linked_by"]) for r in run["runs"]] == [
            ("etl-01", None),
            ("lambda-prod", "invokes"),
            ("k8s-prod", "triggers"),
        ]
        assert client.get("/api/v1/flows/nope", headers=auth).status_code == 404
