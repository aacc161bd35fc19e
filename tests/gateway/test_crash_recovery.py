"""Crash safety: SIGKILL a writer anywhere; on restart from the cursor nothing is lost.

A child process applies a deterministic synthetic source in batches, each
with its cursor in the same transaction. The test kills it with SIGKILL at
random moments (between and inside batches), and after every kill checks the
store: the events up to the stored cursor are all there, none beyond it, and
every run is present once. Finally a last writer resumes from the cursor and
completes the source.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.ingest import read_cursor
from gateway.store.db import make_engine
from tests.dbs import migrated_engine
from tests.gateway.crash.writer import EVENTS_PER_RUN

ROOT = Path(__file__).resolve().parents[2]
TOTAL = 60_000  # large enough that the writer never finishes before the last kill
BATCH = 300
KILLS = 10

pytestmark = pytest.mark.slow


def start_writer(url: str, source: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.gateway.crash.writer", url, source, str(TOTAL), str(BATCH)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
    )


def stored(engine: Engine, source: str) -> tuple[int, int, int, int]:
    """(cursor, events stored, runs stored, distinct run keys stored)."""
    with engine.connect() as conn:
        events = conn.scalar(
            sa.text("SELECT count(*) FROM run_event WHERE source = :s"), {"s": source}
        )
        runs, keys = conn.execute(
            sa.text("SELECT count(*), count(DISTINCT key) FROM run WHERE source = :s"),
            {"s": source},
        ).one()
    return int(read_cursor(engine, source) or 0), int(events or 0), int(runs), int(keys)


def check_consistent(engine: Engine, source: str) -> int:
    cursor, events, runs, keys = stored(engine, source)
    assert events == cursor, "events stored must be exactly those up to the cursor"
    assert runs == keys == -(-cursor // EVENTS_PER_RUN), "each run present exactly once"
    return cursor


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_sigkill_anywhere_loses_nothing_and_resumes_from_cursor(
    database: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if database == "sqlite":
        url = f"sqlite:///{tmp_path / 'crash.db'}"
        migrated_engine(url).dispose()
    else:
        url = request.getfixturevalue("pg_url")
    engine = make_engine(url)
    source = "cron-crash"
    rng = random.Random(20261125)
    progress: list[int] = []
    kills = 0
    deadline = time.monotonic() + 120
    while kills < KILLS and time.monotonic() < deadline:
        writer = start_writer(url, source)
        # Imports take ~0.5 s; the delay lands the kill between or inside batches.
        time.sleep(rng.uniform(0.6, 1.2))
        if writer.poll() is not None:
            assert writer.returncode == 0, writer.stderr.read().decode() if writer.stderr else ""
            break
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
        kills += 1
        progress.append(check_consistent(engine, source))

    final = start_writer(url, source)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()
    assert check_consistent(engine, source) == TOTAL
    assert kills == KILLS and progress == sorted(progress) and progress[-1] > 0
    with engine.connect() as conn:
        states = conn.execute(
            sa.text("SELECT state, count(*) FROM run WHERE source = :s GROUP BY state"),
            {"s": source},
        ).all()
    assert dict(states) == {"succeeded": TOTAL // EVENTS_PER_RUN}
    engine.dispose()
