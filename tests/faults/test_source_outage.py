"""A source goes down for a while: the API shows it stale, then caught up.

`switchyard serve` polls two scripted sources. One starts failing (its
`fail_file` appears) while it still has a backlog; through
`GET /api/v1/sources` it turns degraded and then stale — every reading with
more than two intervals since the last success says stale, none with less —
and its error is shown. The other source keeps being polled meanwhile. When
the failing source returns it catches up completely: healthy again, no
failures counted, every run of its backlog readable through `/api/v1/runs`
and the store equal to its script.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import yaml

from gateway.auth import create_token
from gateway.runtime.poller import read_cursor
from tests.dbs import migrated_engine
from tests.faults.gateway_process import (
    CLEAN_EXIT,
    GatewayProcess,
    api_run_keys,
    api_sources,
    assert_store_matches_script,
    gateway_env,
    wait_until,
)

pytestmark = pytest.mark.slow

DOWN, STEADY = "flaky-src", "steady-src"
INTERVAL_S = 0.2
BACKLOG = 120  # events; 6 per poll, so the source is down mid-backlog


def test_source_down_turns_stale_within_two_intervals_and_catches_up_via_api(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'outage.db'}"
    engine = migrated_engine(url)
    headers = {"Authorization": f"Bearer {create_token(engine, role='viewer')}"}
    fail_file = tmp_path / "source-down"
    config = tmp_path / "switchyard.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database_url": url,
                "retention": "off",
                "sources": [
                    {
                        "name": DOWN,
                        "kind": "scripted",
                        "interval": f"{INTERVAL_S}s",
                        "options": {
                            "available": BACKLOG,
                            "max_batch": 6,
                            "fail_file": str(fail_file),
                        },
                    },
                    {
                        "name": STEADY,
                        "kind": "scripted",
                        "interval": f"{INTERVAL_S}s",
                        "options": {"per_poll": 2},
                    },
                ],
            }
        )
    )
    gateway = GatewayProcess(config, gateway_env(tmp_path), tmp_path / "serve.log")
    try:
        gateway.start()
        with httpx.Client(base_url=gateway.base_url or "", timeout=10) as client:
            assert wait_until(lambda: api_sources(client, headers)[DOWN]["status"] == "healthy", 30)
            fail_file.write_text("connection refused by flaky-src.example:443")
            down_at = int(read_cursor(engine, DOWN) or 0)
            steady_at = int(read_cursor(engine, STEADY) or 0)

            readings: list[dict[str, object]] = []

            def stale() -> bool:
                readings.append(api_sources(client, headers)[DOWN])
                return readings[-1]["status"] == "stale"

            assert wait_until(stale, 30, step=0.05), readings[-3:]
            time.sleep(4 * INTERVAL_S)  # down for a while longer
            readings.append(api_sources(client, headers)[DOWN])
            for r in readings:
                lag = r["lag_s"]
                assert isinstance(lag, float)
                # The status page's rule, as seen from outside: stale exactly
                # when the last success is more than two intervals old.
                assert (r["status"] == "stale") == (lag > 2 * INTERVAL_S), r
                if r["consecutive_failures"]:
                    assert "connection refused" in str(r["last_error"]), r
            assert readings[-1]["consecutive_failures"] >= 1
            assert down_at < BACKLOG, "the source had no backlog left when it went down"
            assert int(read_cursor(engine, DOWN) or 0) == down_at, "polled while down"
            assert int(read_cursor(engine, STEADY) or 0) > steady_at, "the other source stalled"

            fail_file.unlink()

            def caught_up() -> bool:
                s = api_sources(client, headers)[DOWN]
                return (
                    s["status"] == "healthy"
                    and s["consecutive_failures"] == 0
                    and len(api_run_keys(client, headers, DOWN)) == BACKLOG // 2
                )

            assert wait_until(caught_up, 60, step=0.1), api_sources(client, headers)[DOWN]
            keys = api_run_keys(client, headers, DOWN)
            assert sorted(keys) == sorted(f"run-{i}" for i in range(BACKLOG // 2))
        assert gateway.stop() in CLEAN_EXIT, gateway.output()[-3000:]
    finally:
        gateway.kill()
    assert assert_store_matches_script(engine, DOWN) == BACKLOG
    engine.dispose()
