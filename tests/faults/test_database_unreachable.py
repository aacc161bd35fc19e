"""PostgreSQL stopped under a running gateway: 503 with `Retry-After` at once, then recovery.

A `switchyard serve` process runs on a private PostgreSQL server
(`tests/faults/private_postgres.py`; the shared one is never touched). The
server is stopped: API reads and writes are answered with a 503 problem and
`Retry-After` (connections are refused, so well within the bounded wait),
not a 500 and not a hang. The server is started again and the same process
serves again without a restart of its own.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import yaml

from gateway.api.problems import RETRY_AFTER_S
from gateway.auth import create_token
from tests.dbs import migrated_engine
from tests.faults import test_postgres_restart as restart_test
from tests.faults.gateway_process import CLEAN_EXIT, GatewayProcess, gateway_env, pushed_event
from tests.faults.private_postgres import PrivatePostgres

# Same needs as the restart test (slow, and skipped without the server binaries), same server.
pytestmark = restart_test.pytestmark
server = restart_test.server

WELL_UNDER_THE_OLD_30_S = 15.0


def test_stopped_postgres_gets_503_with_retry_after_and_the_gateway_recovers(
    server: PrivatePostgres, tmp_path: Path
) -> None:
    engine = migrated_engine(server.url)
    auth = {"Authorization": "Bearer " + create_token(engine, role="operator", name="ops")}
    engine.dispose()
    config = tmp_path / "switchyard.yaml"
    config.write_text(yaml.safe_dump({"database_url": server.url, "retention": "off"}))
    gateway = GatewayProcess(config, gateway_env(tmp_path), tmp_path / "serve.log")
    event = pushed_event("pushed", 0).model_dump(mode="json", exclude={"source"})
    batch = {"source": "pushed", "events": [event]}
    try:
        base = gateway.start().base_url or ""
        with httpx.Client(base_url=base, headers=auth, timeout=60) as client:
            assert client.get("/api/v1/runs").status_code == 200
            server.stop()
            for method, path, body in (
                ("GET", "/api/v1/runs", None),
                ("POST", "/api/v1/events", batch),
            ):
                t0 = time.monotonic()
                response = client.request(method, path, json=body)
                assert time.monotonic() - t0 < WELL_UNDER_THE_OLD_30_S
                assert response.status_code == 503, response.text
                assert response.headers["content-type"] == "application/problem+json"
                assert response.headers["retry-after"] == str(RETRY_AFTER_S)
            server.start()
            accepted = client.post("/api/v1/events", json=batch)
            assert accepted.status_code == 200, accepted.text
            assert [r["key"] for r in client.get("/api/v1/runs").json()["data"]] == [event["key"]]
        assert gateway.stop() in CLEAN_EXIT, gateway.output()[-3000:]
    finally:
        gateway.kill()
    assert "unhandled error" not in gateway.output()  # answered as unavailable, not as a 500
