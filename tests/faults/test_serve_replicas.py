"""Two `switchyard serve` replicas on one PostgreSQL, seen through the API.

The runtime-only variant (`tests/gateway/test_runtime_processes.py`) proves
lease hand-over for `python -m gateway.runtime`. This is the deployment
shape: two full gateways (API + pollers) on one database. Through
`GET /api/v1/sources` each source shows exactly one holder, and the poll
logs show only that process polling it; after the holder of a source is
killed with SIGKILL, the survivor's API shows it holding every source within
the lease TTL plus a renewal round, and its `/api/v1/runs` lists every run of
every source exactly once, equal to the sources' scripts.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy.engine import Engine

from gateway.auth import create_token
from gateway.runtime.poller import read_cursor
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

SOURCES = ["alpha", "beta", "gamma"]
LEASE_TTL_S = 2.0
EVENTS = 300  # per source, 4 per poll: still polling when the holder dies


def holder_pid(holder: str | None) -> int | None:
    """The pid in a default replica id `host:pid:suffix`."""
    return int(holder.split(":")[-2]) if holder else None


def polls_by_pid(path: Path) -> list[tuple[int, int]]:
    if not path.exists():
        return []
    return [
        (int(pid), int(ns))
        for pid, _cursor, ns in (line.split("\t") for line in path.read_text().splitlines())
    ]


def test_two_serve_replicas_split_sources_and_survivor_api_shows_takeover_without_duplicates(
    tmp_path: Path, pg_url: str, pg_engine: Engine
) -> None:
    headers = {"Authorization": f"Bearer {create_token(pg_engine, role='viewer')}"}
    config = tmp_path / "switchyard.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database_url": pg_url,
                "lease_ttl": f"{LEASE_TTL_S}s",
                "retention": "off",
                "sources": [
                    {
                        "name": s,
                        "kind": "scripted",
                        "interval": "0.1s",
                        "options": {
                            "available": EVENTS,
                            "max_batch": 4,
                            "poll_log": str(tmp_path / f"{s}.polls"),
                        },
                    }
                    for s in SOURCES
                ],
            }
        )
    )
    env = gateway_env(tmp_path)
    a = GatewayProcess(config, env, tmp_path / "a.log")
    b = GatewayProcess(config, env, tmp_path / "b.log")
    try:
        a.start()
        b.start()
        by_pid = {a.pid: a, b.pid: b}
        with httpx.Client(timeout=10) as client:
            client.base_url = httpx.URL(a.base_url or "")

            def all_held_and_polled() -> bool:
                view = api_sources(client, headers)
                return all(
                    holder_pid(view[s]["holder"]) in by_pid
                    and int(read_cursor(pg_engine, s) or 0) >= 10
                    for s in SOURCES
                )

            assert wait_until(all_held_and_polled, 60)
            view = api_sources(client, headers)
            # Each replica's API agrees on who holds what.
            client.base_url = httpx.URL(b.base_url or "")
            assert {s: v["holder"] for s, v in api_sources(client, headers).items()} == {
                s: v["holder"] for s, v in view.items()
            }
            owner = {s: holder_pid(view[s]["holder"]) for s in SOURCES}
            for s in SOURCES:
                assert {pid for pid, _ in polls_by_pid(tmp_path / f"{s}.polls")} == {owner[s]}

            victim = by_pid[owner["alpha"]]
            survivor = b if victim is a else a
            kill_ns = time.monotonic_ns()
            victim.kill()
            marks = {s: int(read_cursor(pg_engine, s) or 0) for s in SOURCES}
            client.base_url = httpx.URL(survivor.base_url or "")

            def survivor_holds_all() -> bool:
                v = api_sources(client, headers)
                return all(holder_pid(v[s]["holder"]) == survivor.pid for s in SOURCES)

            assert wait_until(survivor_holds_all, LEASE_TTL_S * 4 / 3 + 10)
            # The survivor polls every source to its end; its API lists each
            # run exactly once, and the store equals every script.
            assert wait_until(
                lambda: all(int(read_cursor(pg_engine, s) or 0) == EVENTS for s in SOURCES), 60
            ), {s: read_cursor(pg_engine, s) for s in SOURCES}
            view = api_sources(client, headers)
            assert all(view[s]["status"] == "healthy" for s in SOURCES), view
            for s in SOURCES:
                keys = api_run_keys(client, headers, s)
                assert sorted(keys) == sorted(f"run-{i}" for i in range(EVENTS // 2)), s
                assert assert_store_matches_script(pg_engine, s) == EVENTS
                log = polls_by_pid(tmp_path / f"{s}.polls")
                assert {pid for pid, _ in log} <= {victim.pid, survivor.pid}
                assert all(ns < kill_ns for pid, ns in log if pid == victim.pid)
                if owner[s] == victim.pid:
                    assert marks[s] < EVENTS, f"{s} was finished before the kill"
                    assert all(ns > kill_ns for pid, ns in log if pid == survivor.pid)
            assert survivor.stop() in CLEAN_EXIT, survivor.output()[-3000:]
    finally:
        a.kill()
        b.kill()
