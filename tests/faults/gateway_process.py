"""Real gateway processes for fault tests, and the truth they are checked against.

`GatewayProcess` starts `switchyard serve` (uvicorn on an ephemeral loopback
port) or `python -m gateway.runtime` with the scripted test adapter
registered through a real entry point, appends its output to one log file
across restarts, and kills it with SIGKILL or stops it with SIGINT.
`EventPusher` is an HTTP client that posts numbered batches to
`POST /api/v1/events` and resends every batch until it is acknowledged,
whichever gateway process is answering. `assert_store_matches_script` and
`assert_store_holds_exactly` compare the store with the source's truth.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.contract import RunEvent, State
from gateway.merge import as_pushed, canonical_payload, event_digest
from gateway.runtime.poller import read_cursor
from tests.fakes.scripted_adapter import scripted_event, write_entry_point_dist

REPO = Path(__file__).resolve().parents[2]
SWITCHYARD = str(Path(sys.executable).parent / "switchyard")
LISTENING = re.compile(rb"Uvicorn running on http://127\.0\.0\.1:(\d+)")
RUNNING = re.compile(rb"runtime (\S+) running")
# A clean stop on SIGINT: uvicorn re-raises the signal after its graceful
# shutdown, which `switchyard` reports as the conventional 130.
CLEAN_EXIT = (0, 130)


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def gateway_env(directory: Path, **extra: str) -> dict[str, str]:
    """An environment in which `kind: scripted` is an installed adapter kind."""
    plugins = directory / "plugins"
    write_entry_point_dist(plugins)
    env = dict(os.environ)
    env.pop("SWITCHYARD_CONFIG", None)
    env.pop("SWITCHYARD_DATABASE_URL", None)
    env["PYTHONPATH"] = os.pathsep.join([str(plugins), str(REPO)])
    env.update(extra)
    return env


class GatewayProcess:
    """One gateway process, restartable; its output accumulates in `log_path`."""

    def __init__(
        self,
        config_path: Path,
        env: dict[str, str],
        log_path: Path,
        *,
        mode: str = "serve",
        replica_id: str | None = None,
    ) -> None:
        if mode not in ("serve", "runtime"):
            raise ValueError(f"mode must be serve or runtime, not {mode!r}")
        self.config_path = config_path
        self.env = env
        self.log_path = log_path
        self.mode = mode
        self.replica_id = replica_id
        self.proc: subprocess.Popen[bytes] | None = None
        self.base_url: str | None = None
        self.starts = 0
        self._log_offset = 0

    def _argv(self) -> list[str]:
        if self.mode == "serve":
            return [
                SWITCHYARD,
                "serve",
                "--config",
                str(self.config_path),
                "--host",
                "127.0.0.1",
                "--port",
                "0",
            ]
        argv = [sys.executable, "-m", "gateway.runtime", "--config", str(self.config_path)]
        if self.replica_id:
            argv += ["--replica-id", self.replica_id]
        return argv

    def start(self, timeout: float = 60.0) -> GatewayProcess:
        """Start and wait until it serves (serve) or runs its pollers (runtime)."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("already running")
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self._argv(), cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        self.starts += 1
        marker = LISTENING if self.mode == "serve" else RUNNING
        found: list[re.Match[bytes]] = []

        def ready() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                return True
            m = marker.search(self.log_path.read_bytes()[self._log_offset :])
            if m:
                found.append(m)
            return bool(m)

        wait_until(ready, timeout, step=0.02)
        if not found:
            tail = self.log_path.read_bytes()[self._log_offset :].decode(errors="replace")
            self.kill()
            raise AssertionError(f"gateway did not start ({self.mode}):\n{tail[-4000:]}")
        if self.mode == "serve":
            base = f"http://127.0.0.1:{found[0].group(1).decode()}"
            # uvicorn prints its address before the app's startup has run;
            # ready means answering.
            if not wait_until(lambda: self._answers(base), timeout, step=0.02):
                tail = self.log_path.read_bytes()[self._log_offset :].decode(errors="replace")
                self.kill()
                raise AssertionError(f"gateway printed {base} but never answered:\n{tail[-4000:]}")
            self.base_url = base
        return self

    def _answers(self, base: str) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            return True  # died: let the caller's next request say so
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, leases and transactions are left as they are."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)
        self.base_url = None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGINT (clean stop); SIGKILL if it does not stop in time. The exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.base_url = None
        return self.proc.returncode

    def output(self) -> str:
        return self.log_path.read_bytes().decode(errors="replace") if self.log_path.exists() else ""


# -- a client that resends unacknowledged batches ------------------------------
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def pushed_event(source: str, i: int) -> RunEvent:
    """Pushed event `i`: run `i // 2` goes running (even) then succeeded (odd)."""
    run = i // 2
    started = T0 + timedelta(seconds=run)
    done = i % 2 == 1
    return RunEvent(
        source=source,
        key=f"push-{run}",
        job="pushed-job",
        state=State.succeeded if done else State.running,
        started_at=started,
        ended_at=started + timedelta(seconds=1) if done else None,
        observed_at=started + timedelta(seconds=1 if done else 0),
        attributes={"seq": i},
    )


def pushed_as_stored(source: str, count: int) -> list[RunEvent]:
    """Pushed events 0..count-1 as the gateway stores them: marked as pushes on receipt."""
    return as_pushed([pushed_event(source, i) for i in range(count)], datetime.now(UTC))


class EventPusher:
    """Posts `batches` batches of `batch_size` events, each until it is acknowledged.

    `base_url` is read before every attempt, so the test can point it at a
    restarted gateway. A batch counts as acknowledged only on a 200 answer;
    connection errors, timeouts and 5xx answers make it wait and resend the
    very same batch. Any 4xx is a test failure (recorded in `errors`).
    """

    def __init__(
        self, source: str, token: str, *, batches: int, batch_size: int, timeout_s: float = 120
    ) -> None:
        self.source = source
        self.token = token
        self.batches = batches
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        self.base_url: str | None = None
        self.acknowledged = 0
        self.resends = 0
        self.server_errors = 0
        self.errors: list[str] = []
        self.done = threading.Event()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="event-pusher", daemon=True)

    @property
    def total_events(self) -> int:
        return self.batches * self.batch_size

    def batch_body(self, b: int) -> dict[str, Any]:
        start = b * self.batch_size
        events = [
            pushed_event(self.source, i).model_dump(mode="json", exclude={"source"})
            for i in range(start, start + self.batch_size)
        ]
        return {"source": self.source, "events": events}

    def start(self) -> EventPusher:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=30)

    def _run(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(timeout=10) as client:
            for b in range(self.batches):
                body = self.batch_body(b)
                attempts = 0
                while not self._stop.is_set():
                    if time.monotonic() > deadline:
                        self.errors.append(f"batch {b} not acknowledged in {self.timeout_s}s")
                        return
                    base = self.base_url
                    if base is None:
                        time.sleep(0.02)
                        continue
                    attempts += 1
                    try:
                        r = client.post(f"{base}/api/v1/events", json=body, headers=headers)
                    except httpx.TransportError:
                        time.sleep(0.02)
                        continue
                    if r.status_code == 200:
                        break
                    if r.status_code >= 500:
                        self.server_errors += 1
                        time.sleep(0.05)
                        continue
                    self.errors.append(f"batch {b}: {r.status_code} {r.text[:300]}")
                    return
                else:
                    return
                self.resends += attempts - 1
                self.acknowledged = b + 1
        self.done.set()


# -- the store against the truth ------------------------------------------------
def _digests(engine: Engine, source: str) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text("SELECT digest FROM run_event WHERE source = :s"), {"s": source}
            ).scalars()
        )


def _run_keys(engine: Engine, source: str) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(sa.text("SELECT key FROM run WHERE source = :s"), {"s": source}).scalars()
        )


def assert_store_holds_exactly(engine: Engine, source: str, events: Sequence[RunEvent]) -> None:
    """The store has each of `events` once, nothing else for `source`, one run per key."""
    stored = _digests(engine, source)
    expected = {event_digest(canonical_payload(e)) for e in events}
    assert len(stored) == len(set(stored)), "an event is stored twice"
    missing = expected - set(stored)
    extra = set(stored) - expected
    assert not missing, f"{len(missing)} acknowledged event(s) lost"
    assert not extra, f"{len(extra)} event(s) stored that the source never produced"
    keys = _run_keys(engine, source)
    assert len(keys) == len(set(keys)) == len({e.key for e in events}), "runs lost or duplicated"


def assert_store_matches_script(engine: Engine, source: str) -> int:
    """The scripted source's events 0..cursor-1 are stored, each once, nothing beyond.

    Returns the cursor. The truth is the script itself (`scripted_event`), so
    this catches a lost batch, a batch applied twice and a cursor that moved
    without its events (or events without their cursor).
    """
    cursor = int(read_cursor(engine, source) or 0)
    assert_store_holds_exactly(engine, source, [scripted_event(source, i) for i in range(cursor)])
    return cursor


# -- reading through the API -----------------------------------------------------
def api_sources(client: httpx.Client, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    r = client.get("/api/v1/sources", headers=headers)
    assert r.status_code == 200, r.text
    return {s["name"]: s for s in r.json()["data"]}


def api_run_keys(client: httpx.Client, headers: dict[str, str], source: str) -> list[str]:
    """Every run key of `source`, paging through `GET /api/v1/runs` to the end."""
    keys: list[str] = []
    cursor: str | None = None
    for _ in range(10_000):
        params: dict[str, Any] = {"source": source, "limit": 500}
        if cursor:
            params["cursor"] = cursor
        r = client.get("/api/v1/runs", headers=headers, params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        keys += [run["key"] for run in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            return keys
    raise AssertionError("runs pagination did not end")
