"""PostgreSQL restarted under load: the gateway reconnects and nothing is lost.

A `switchyard serve` process polls a scripted source and takes batches from
a client that resends until acknowledged, on a private PostgreSQL server
(`tests/faults/private_postgres.py`; the shared one is never touched). The
server is restarted (`pg_ctl restart -m fast`, which cuts every connection)
three times while both kinds of ingest run. The same gateway process must
carry on — no restart of its own — and at the end every acknowledged event is
stored exactly once and the polled source's store matches its script.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from gateway.auth import create_token
from gateway.runtime.poller import read_cursor
from tests.dbs import migrated_engine
from tests.faults.gateway_process import (
    CLEAN_EXIT,
    EventPusher,
    GatewayProcess,
    assert_store_holds_exactly,
    assert_store_matches_script,
    gateway_env,
    pushed_as_stored,
    wait_until,
)
from tests.faults.private_postgres import PrivatePostgres, private_postgres, server_bin_dir

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        server_bin_dir() is None,
        reason="needs the PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql",
    ),
]

POLLED = "polled-src"
RESTARTS = 3


@pytest.fixture
def server() -> Iterator[PrivatePostgres]:
    with private_postgres() as pg:
        yield pg


def test_gateway_reconnects_after_postgres_restarts_and_loses_nothing(
    server: PrivatePostgres, tmp_path: Path
) -> None:
    engine = migrated_engine(server.url)
    token = create_token(engine, role="operator", name="pusher")
    viewer = {"Authorization": f"Bearer {token}"}
    config = tmp_path / "switchyard.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database_url": server.url,
                "retention": "off",
                "lease_ttl": "5s",
                "sources": [
                    {
                        "name": POLLED,
                        "kind": "scripted",
                        "interval": "0.05s",
                        "options": {"per_poll": 10, "max_batch": 10},
                    }
                ],
            }
        )
    )
    gateway = GatewayProcess(config, gateway_env(tmp_path), tmp_path / "serve.log")
    pusher = EventPusher("pushed", token, batches=300, batch_size=10, timeout_s=150)
    try:
        pusher.base_url = gateway.start().base_url
        pid = gateway.pid
        pusher.start()
        marks = []
        for _ in range(RESTARTS):
            assert wait_until(lambda: pusher.acknowledged > len(marks) * 40 + 20, 60)
            server.restart()
            marks.append(int(read_cursor(engine, POLLED) or 0))
        acked_before_last_restart = pusher.acknowledged
        assert pusher.done.wait(150), pusher.errors or "client did not finish"
        assert not pusher.errors, pusher.errors
        # The poller, too, came back: its cursor moves on after the last restart.
        assert wait_until(lambda: int(read_cursor(engine, POLLED) or 0) >= marks[-1] + 100, 60)
        assert gateway.alive() and gateway.pid == pid, "the gateway had to be restarted"
        with httpx.Client(base_url=gateway.base_url or "", timeout=10) as client:
            assert wait_until(
                lambda: (
                    client.get("/api/v1/sources", headers=viewer).json()["data"][0]["status"]
                    == "healthy"
                ),
                30,
            )
        assert gateway.stop() in CLEAN_EXIT, gateway.output()[-3000:]
    finally:
        pusher.stop()
        gateway.kill()

    assert acked_before_last_restart < pusher.batches, "restarts happened after the load"
    # The restarts were felt: some batches failed and were sent again.
    assert pusher.resends > 0
    assert_store_holds_exactly(engine, "pushed", pushed_as_stored("pushed", pusher.total_events))
    assert assert_store_matches_script(engine, POLLED) >= marks[-1] + 100
    engine.dispose()
