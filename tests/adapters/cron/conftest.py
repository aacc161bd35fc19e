"""A real gateway on loopback for the cron tests, and the wrapper as a real subprocess.

`cron_gateway` serves `gateway.api.app.create_app` with one cron source over
uvicorn on 127.0.0.1 (ephemeral port), backed by a migrated SQLite store. The
adapter records what each submit carried, so tests can check order as well as
the stored outcome.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import APIRouter, FastAPI
from sqlalchemy import text
from sqlalchemy.engine import Engine

from adapters.cron.adapter import CronAdapter
from gateway.config import Config, SourceEntry
from gateway.contract import EventSink, JobSpec, RunEvent, SourceConfig

TOKEN = "cron-test-token"
SOURCE = "cron-hosts"
WRAPPER = Path(__file__).resolve().parents[3] / "adapters" / "cron" / "wrapper.py"


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 on a free port; yield its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)


def closed_port_url() -> str:
    """A loopback URL where nothing listens (a gateway that is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class RecordingSink:
    """Passes submits through to the real sink and remembers their events in order."""

    def __init__(self, inner: EventSink) -> None:
        self.inner = inner
        self.events: list[RunEvent] = []
        self._lock = threading.Lock()

    def submit(
        self, source: str, events: Sequence[RunEvent], *, jobs: Sequence[JobSpec] = ()
    ) -> None:
        self.inner.submit(source, events, jobs=jobs)
        with self._lock:
            self.events.extend(events)


class RecordingCronAdapter(CronAdapter):
    def __init__(self, config: SourceConfig) -> None:
        super().__init__(config)
        self.recorder: RecordingSink | None = None

    def routes(self, sink: EventSink) -> APIRouter:
        self.recorder = RecordingSink(sink)
        return super().routes(self.recorder)


@dataclass
class CronGateway:
    url: str
    engine: Engine
    adapter: RecordingCronAdapter
    spool: Path
    env: dict[str, str] = field(default_factory=dict)

    def runs(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT * FROM run ORDER BY created_at, key")).mappings()
            return [_decoded(r) for r in rows]

    def run(self, key: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(text("SELECT * FROM run WHERE key = :k"), {"k": key}).mappings()
            found = row.first()
        assert found is not None, f"no run {key!r}; have {[r['key'] for r in self.runs()]}"
        return _decoded(found)

    def jobs(self) -> dict[str, dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT * FROM job")).mappings()
            return {r["key"]: _decoded(r) for r in rows}

    @property
    def recorded(self) -> list[RunEvent]:
        assert self.adapter.recorder is not None
        return self.adapter.recorder.events


def _decoded(row: Any) -> dict[str, Any]:
    """A row with its JSON columns decoded (raw SQL returns them as text on SQLite)."""
    out = dict(row)
    for name in ("attributes", "labels", "spec"):
        if isinstance(out.get(name), str):
            out[name] = json.loads(out[name])
    return out


def cron_options(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"token": TOKEN, "control_file": str(tmp_path / "control.json"), **extra}


@contextmanager
def running_gateway(engine: Engine, tmp_path: Path, **options: Any) -> Iterator[CronGateway]:
    from gateway.api.app import create_app

    opts = cron_options(tmp_path, **options)
    config = Config(sources=[SourceEntry(name=SOURCE, kind="cron", options=opts)])
    adapter = RecordingCronAdapter(SourceConfig(name=SOURCE, kind="cron", options=opts))
    app = create_app(config, engine, adapters={SOURCE: adapter})
    with serve(app) as url:
        spool = tmp_path / "spool"
        yield CronGateway(url=url, engine=engine, adapter=adapter, spool=spool)


@pytest.fixture
def cron_gateway(engine: Engine, tmp_path: Path) -> Iterator[CronGateway]:
    """The gateway on SQLite and on PostgreSQL (the `engine` fixture's two params).

    With `auto_provision`: a ping to an unknown uuid creates its (provisional) check.
    """
    with running_gateway(engine, tmp_path, auto_provision=True) as gw:
        yield gw


def run_wrapper(
    args: list[str],
    *,
    url: str,
    spool: Path,
    token: str = TOKEN,
    timeout: float = 60,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """`switchyard-cron ARGS` as a host runs it: system python, isolated, no site-packages."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(spool.parent),
        "SWITCHYARD_URL": url,
        "SWITCHYARD_TOKEN": token,
        "SWITCHYARD_SPOOL": str(spool),
        "SWITCHYARD_HOST": "host-a",
        # generous: other test suites share this machine's two cores
        "SWITCHYARD_TIMEOUT": "15",
        **(extra_env or {}),
    }
    return subprocess.run(
        [sys.executable, "-I", "-S", str(WRAPPER), *args],
        env=env,
        capture_output=True,
        timeout=timeout,
    )
