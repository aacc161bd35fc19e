"""A locked database: API calls and pings get 503 with `Retry-After` within seconds, not a 500.

Another connection holds the lock (`tests.dbs.database_locked`): SQLite's
write lock, or ACCESS EXCLUSIVE on PostgreSQL tables. The app runs on the
engine as `make_engine` builds it by default, so the bound on each wait is
the one a deployment gets. The old behaviour was a 500 after SQLite's 30 s
busy timeout (and no bound at all on PostgreSQL); the time limit asserted
here is generous on purpose.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from gateway.api.app import create_app
from gateway.api.problems import RETRY_AFTER_S
from gateway.auth import create_token
from gateway.config import parse_config
from tests.dbs import database_locked
from tests.gateway.test_api import event
from tests.gateway.test_sink import count

pytestmark = pytest.mark.slow  # three bounded lock waits per database

CHECK = "5f0c8a4e-3f59-4a3a-9a38-2a9f0e6b8c11"
WELL_UNDER_THE_OLD_30_S = 15.0


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    config = parse_config(
        {
            "sources": [
                {
                    "name": "cron-a",
                    "kind": "cron",
                    "options": {
                        "control_file": str(tmp_path / "control.json"),
                        "checks": {CHECK: {"name": "backup"}},
                    },
                }
            ]
        }
    )
    with TestClient(create_app(config, engine)) as c:
        yield c


def assert_unavailable(response: httpx.Response, seconds: float) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == str(RETRY_AFTER_S)
    body: dict[str, Any] = response.json()
    assert body["type"].endswith(":database-unavailable")
    assert "locked or unreachable" in body["detail"]
    assert seconds < WELL_UNDER_THE_OLD_30_S


def timed(call: Any) -> tuple[httpx.Response, float]:
    t0 = time.monotonic()
    response = call()
    return response, time.monotonic() - t0


def test_reads_writes_and_pings_get_503_with_retry_after_while_the_database_is_locked(
    client: TestClient, engine: Engine
) -> None:
    auth = {"Authorization": "Bearer " + create_token(engine, role="operator", name="ops")}
    batch = {"source": "scripts", "events": [event("k1")]}
    with database_locked(engine):
        assert_unavailable(*timed(lambda: client.get("/api/v1/runs", headers=auth)))
        assert_unavailable(*timed(lambda: client.post("/api/v1/events", headers=auth, json=batch)))
        assert_unavailable(*timed(lambda: client.get(f"/ping/{CHECK}")))
    assert count(engine, "run") == 0  # nothing of the refused requests was written
    assert client.post("/api/v1/events", headers=auth, json=batch).status_code == 200
    assert client.get(f"/ping/{CHECK}").status_code == 200
    assert count(engine, "run") == 2
