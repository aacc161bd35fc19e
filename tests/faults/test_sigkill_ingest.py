"""SIGKILL the gateway during ingest, again and again: nothing is lost, nothing doubled.

Two real process shapes:

- `python -m gateway.runtime` polling a scripted source (SQLite), killed with
  SIGKILL 50 times at random moments and restarted; after every kill the
  store holds exactly the script's events up to the stored cursor, and at the
  end a clean run carries on from there.
- `switchyard serve` receiving `POST /api/v1/events` from a client that
  resends every batch until it is acknowledged (PostgreSQL), killed at random
  moments; at the end every event the client sent is stored exactly once.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import Engine

from gateway.auth import create_token
from gateway.runtime.poller import read_cursor
from gateway.store.db import make_engine
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

pytestmark = pytest.mark.slow

KILLS = 50
KILLS_SERVE = 8
SOURCE = "killed-src"


def _poll_log_starts(path: Path) -> dict[int, list[int]]:
    """pid → the cursor each of its polls started from, in order."""
    out: dict[int, list[int]] = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        pid, cursor, _ns = line.split("\t")
        out.setdefault(int(pid), []).append(int(cursor) if cursor != "None" else 0)
    return out


def test_runtime_killed_50_times_mid_ingest_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    migrated_engine(url).dispose()
    poll_log = tmp_path / "polls.log"
    config = tmp_path / "switchyard.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database_url": url,
                "lease_ttl": "5s",
                "retention": "off",
                "sources": [
                    {
                        "name": SOURCE,
                        "kind": "scripted",
                        "interval": "0.02s",
                        "options": {"per_poll": 20, "max_batch": 20, "poll_log": str(poll_log)},
                    }
                ],
            }
        )
    )
    # One stable replica id, as a restarted pod keeps its name: the restarted
    # process renews its own lease at once instead of waiting out the TTL.
    gateway = GatewayProcess(
        config, gateway_env(tmp_path), tmp_path / "runtime.log", mode="runtime", replica_id="r1"
    )
    engine = make_engine(url)
    rng = random.Random(0x5157)
    progress: list[int] = []
    interrupted = 0
    deadline = time.monotonic() + 240
    try:
        while len(progress) < KILLS and time.monotonic() < deadline:
            gateway.start()
            pid = gateway.pid
            time.sleep(rng.uniform(0.02, 0.35))
            gateway.kill()
            progress.append(assert_store_matches_script(engine, SOURCE))
            starts = _poll_log_starts(poll_log).get(pid, [])
            # The last poll this process began never committed: killed mid-cycle.
            if starts and starts[-1] == progress[-1]:
                interrupted += 1

        assert len(progress) == KILLS, f"only {len(progress)} kills before the deadline"
        assert progress == sorted(progress), "the cursor moved backwards"
        assert interrupted >= 1, "no kill landed inside a poll cycle"

        mark = progress[-1]
        gateway.start()
        assert wait_until(lambda: int(read_cursor(engine, SOURCE) or 0) >= mark + 200, 60)
        assert gateway.stop() == 0, gateway.output()[-3000:]
        final = assert_store_matches_script(engine, SOURCE)
        assert final >= mark + 200
    finally:
        gateway.kill()
        engine.dispose()


def test_serve_killed_while_a_client_resends_unacknowledged_batches_stores_each_event_once(
    tmp_path: Path, pg_url: str, pg_engine: Engine
) -> None:
    token = create_token(pg_engine, role="operator", name="pusher")
    config = tmp_path / "switchyard.yaml"
    config.write_text(yaml.safe_dump({"database_url": pg_url, "retention": "off"}))
    gateway = GatewayProcess(config, gateway_env(tmp_path), tmp_path / "serve.log")
    # Enough batches that the client is still sending at the last kill, even on a quiet machine.
    pusher = EventPusher("pushed", token, batches=1500, batch_size=10, timeout_s=180)
    rng = random.Random(0x9E7)
    kills = 0
    acked_at_kill: list[int] = []
    try:
        pusher.start()
        for _ in range(KILLS_SERVE):
            pusher.base_url = gateway.start().base_url
            time.sleep(rng.uniform(0.2, 1.0))
            gateway.kill()
            kills += 1
            acked_at_kill.append(pusher.acknowledged)
        pusher.base_url = gateway.start().base_url
        assert pusher.done.wait(180), pusher.errors or "client did not finish"
        assert not pusher.errors, pusher.errors
        assert gateway.stop() in CLEAN_EXIT, gateway.output()[-3000:]
    finally:
        pusher.stop()
        gateway.kill()

    assert kills == KILLS_SERVE
    # The kills landed while the client was still sending.
    assert acked_at_kill[-1] < pusher.batches, acked_at_kill
    assert_store_holds_exactly(pg_engine, "pushed", pushed_as_stored("pushed", pusher.total_events))
