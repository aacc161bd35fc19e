"""`switchyard serve` as a real process: uvicorn on an ephemeral loopback port.

It migrates an empty database, answers /readyz, refuses anonymous API calls,
serves a token made by `switchyard token create`, and runs the pollers: the
runs of a scripted source show up through the API. With `--workers N` and no
usable `SWITCHYARD_SESSION_SECRET` it refuses to start.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.scripted_adapter import write_entry_point_dist

ROOT = Path(__file__).resolve().parents[2]
SWITCHYARD = str(Path(sys.executable).parent / "switchyard")
LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")

pytestmark = pytest.mark.slow


@pytest.fixture
def serve_env(tmp_path: Path) -> dict[str, str]:
    plugins = tmp_path / "plugins"
    write_entry_point_dist(plugins)
    env = dict(os.environ)
    env.pop("SWITCHYARD_CONFIG", None)
    env["SWITCHYARD_DATABASE_URL"] = f"sqlite:///{tmp_path / 'serve.db'}"
    env["PYTHONPATH"] = os.pathsep.join([str(plugins), str(ROOT)])
    return env


@pytest.fixture
def server(tmp_path: Path, serve_env: dict[str, str]) -> Iterator[str]:
    config = tmp_path / "switchyard.yaml"
    config.write_text(
        "lease_ttl: 5s\n"
        "retention: never\n"  # the script's runs are dated 2026-01-01: keep them
        "sources:\n"
        "  - {name: scripted-1, kind: scripted, interval: 0.2s, options: {available: 6}}\n"
    )
    proc = subprocess.Popen(
        [SWITCHYARD, "serve", "--config", str(config), "--host", "127.0.0.1", "--port", "0"],
        env=serve_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    base = None
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            m = LISTENING.search(line)
            if m:
                base = f"http://127.0.0.1:{m.group(1)}"
                break
        assert base, "server did not start:\n" + "".join(lines)
        # Keep reading so a chatty server never blocks on a full pipe.
        threading.Thread(target=lines.extend, args=(proc.stdout,), daemon=True).start()
        # uvicorn prints its address before the app's startup has run: ready
        # means answering.
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        else:
            raise AssertionError("server never answered /healthz:\n" + "".join(lines))
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_serve_is_ready_authenticated_and_polls(server: str, serve_env: dict[str, str]) -> None:
    with httpx.Client(base_url=server, timeout=10) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        anonymous = client.get("/api/v1/runs")
        assert anonymous.status_code == 401
        assert anonymous.headers["content-type"] == "application/problem+json"

        made = subprocess.run(
            [SWITCHYARD, "token", "create", "--role", "viewer", "--name", "e2e"],
            env=serve_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert made.returncode == 0, made.stderr
        headers = {"Authorization": f"Bearer {made.stdout.strip()}"}

        keys: list[str] = []
        for _ in range(100):
            r = client.get("/api/v1/runs", headers=headers, params={"source": "scripted-1"})
            assert r.status_code == 200, r.text
            keys = sorted(x["key"] for x in r.json()["data"])
            if len(keys) == 3:
                break
            time.sleep(0.1)
        assert keys == ["run-0", "run-1", "run-2"]
        [source] = client.get("/api/v1/sources", headers=headers).json()["data"]
        assert source["name"] == "scripted-1" and source["holder"]


@pytest.mark.parametrize(
    ("secret", "named"),
    [(None, "SWITCHYARD_SESSION_SECRET"), ("short", "at least 16 bytes")],
)
def test_serve_with_several_workers_refuses_to_start_without_a_usable_session_secret(
    tmp_path: Path, serve_env: dict[str, str], secret: str | None, named: str
) -> None:
    env = {k: v for k, v in serve_env.items() if k != "SWITCHYARD_SESSION_SECRET"}
    if secret is not None:
        env["SWITCHYARD_SESSION_SECRET"] = secret
    done = subprocess.run(
        [SWITCHYARD, "serve", "--workers", "2", "--host", "127.0.0.1", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert named in done.stderr and "Traceback" not in done.stderr
    assert "Uvicorn running" not in done.stdout + done.stderr
