"""gateway.server: `switchyard serve --workers N` serves pings from every worker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.config import Config, SourceEntry
from gateway.server import rid_less_pairing_warning, serve
from gateway.store.db import make_engine

ROOT = Path(__file__).resolve().parents[2]
SWITCHYARD = str(Path(sys.executable).with_name("switchyard"))


def test_pairing_warning_names_cron_sources_only_with_several_workers() -> None:
    config = Config(sources=[SourceEntry(name="hosts", kind="cron", options={})])
    assert rid_less_pairing_warning(config, 1) is None
    warning = rid_less_pairing_warning(config, 2)
    assert warning is not None and "hosts" in warning and "rid" in warning
    assert rid_less_pairing_warning(Config(sources=[]), 4) is None


def test_several_workers_need_a_factory_import_string() -> None:
    with pytest.raises(ValueError, match="import string"):
        serve(object(), workers=2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return int(reply.status)


@pytest.mark.slow
def test_two_workers_commit_every_acknowledged_ping_and_stop_on_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    config = tmp_path / "switchyard.yaml"
    config.write_text(
        f"database_url: sqlite:///{db}\n"
        "sources:\n"
        "  - name: cron-w\n"
        "    kind: cron\n"
        "    options:\n"
        "      {token: t, auto_provision: true, "
        f"control_file: {tmp_path / 'control.json'}}}\n"
    )
    port = _free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [SWITCHYARD, "serve", "-c", str(config), "--port", str(port), "--workers", "2"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SWITCHYARD_SESSION_SECRET": "two-workers-share-this-key-0123456789",
        },
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if _get(f"http://127.0.0.1:{port}/healthz") == 200:
                    break
            except OSError:
                assert time.monotonic() < deadline, "serve --workers 2 never answered"
                time.sleep(0.2)
        checks = [str(uuid.uuid4()) for _ in range(5)]
        # A fresh connection per ping: the kernel spreads them over both workers.
        answers = [_get(f"http://127.0.0.1:{port}/ping/{checks[i % 5]}") for i in range(30)]
        assert answers == [200] * 30
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    engine = make_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM run")) == 30
        assert conn.scalar(sa.text("SELECT count(*) FROM job")) == 5
    assert "pair a /start ping" in (tmp_path / "serve.log").read_text()


def test_startup_objects_are_frozen_out_of_full_collections() -> None:
    import gc

    from gateway.server import freeze_startup_objects

    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()  # the test process collects as usual afterwards
