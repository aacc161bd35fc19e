"""Two real gateway processes on one PostgreSQL: each source polled by exactly one.

Each replica is `python -m gateway.runtime --config …` in its own process,
with the scripted test adapter registered through a real entry point (a
dist-info directory on the subprocess's `PYTHONPATH`). One replica is killed
with SIGKILL; the other takes its sources over once the leases expire, and
the store ends up with every event exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Engine

from gateway.runtime.poller import read_cursor
from gateway.store.models import Lease, Run, RunEventRow
from tests.fakes.scripted_adapter import write_entry_point_dist

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SOURCES = ["alpha", "beta", "gamma"]
LEASE_TTL_S = 2.0


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def holders(engine: Engine) -> dict[str, str]:
    t = Lease.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return {r.name: r.holder for r in conn.execute(sa.select(t.c.name, t.c.holder))}


def cursor_of(engine: Engine, source: str) -> int:
    return int(read_cursor(engine, source) or 0)


def poll_log(path: Path) -> list[tuple[int, int]]:
    """(pid, monotonic ns) of every poll, in file order."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        pid, _cursor, ns = line.split("\t")
        out.append((int(pid), int(ns)))
    return out


@pytest.fixture
def replicas(tmp_path: Path, pg_url: str) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    entry_points = tmp_path / "entry-points"
    write_entry_point_dist(entry_points)
    config = {
        "database_url": pg_url,
        "lease_ttl": f"{LEASE_TTL_S}s",
        "retention": "off",
        "sources": [
            {
                "name": name,
                "kind": "scripted",
                "interval": "0.1s",
                "options": {"per_poll": 2, "poll_log": str(tmp_path / f"{name}.log")},
            }
            for name in SOURCES
        ],
    }
    config_path = tmp_path / "switchyard.yaml"
    config_path.write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(entry_points), str(REPO)]),
    }
    procs: list[subprocess.Popen[bytes]] = []

    def start(replica_id: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"{replica_id}.stderr").open("wb")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.runtime",
                "--config",
                str(config_path),
                "--replica-id",
                replica_id,
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_two_processes_split_sources_and_survivor_takes_over_after_kill_9(
    replicas: Callable[[str], subprocess.Popen[bytes]], pg_engine: Engine, tmp_path: Path
) -> None:
    procs = {"A": replicas("A"), "B": replicas("B")}
    assert wait_until(
        lambda: (
            sorted(holders(pg_engine)) == [":housekeeping", *SOURCES]
            and all(cursor_of(pg_engine, s) >= 10 for s in SOURCES)
        ),
        timeout=60,
    ), [p.poll() for p in procs.values()]
    before = holders(pg_engine)
    victim = before["alpha"]
    survivor = "B" if victim == "A" else "A"
    victim_sources = [s for s in SOURCES if before[s] == victim]

    # Exactly one process polled each source so far.
    for s in SOURCES:
        pids = {pid for pid, _ in poll_log(tmp_path / f"{s}.log")}
        assert pids == {procs[before[s]].pid}, (s, pids)

    kill_ns = time.monotonic_ns()
    procs[victim].send_signal(signal.SIGKILL)
    procs[victim].wait(timeout=10)
    marks = {s: cursor_of(pg_engine, s) for s in SOURCES}

    # The survivor takes every source over within the TTL plus one renewal
    # round and a margin for a loaded machine.
    assert wait_until(
        lambda: (
            all(h == survivor for h in holders(pg_engine).values())
            and len(holders(pg_engine)) == len(SOURCES) + 1
        ),
        timeout=LEASE_TTL_S * 4 / 3 + 10,
    )
    assert wait_until(
        lambda: all(cursor_of(pg_engine, s) >= marks[s] + 10 for s in SOURCES), timeout=30
    )

    survivor_pid, victim_pid = procs[survivor].pid, procs[victim].pid
    for s in SOURCES:
        log = poll_log(tmp_path / f"{s}.log")
        assert {pid for pid, _ in log} <= {survivor_pid, victim_pid}
        # The victim never polled after it died, and never polled a source it
        # did not hold; the survivor polled the victim's sources only after.
        assert all(ns < kill_ns for pid, ns in log if pid == victim_pid)
        if s in victim_sources:
            assert all(ns > kill_ns for pid, ns in log if pid == survivor_pid)
        else:
            assert {pid for pid, _ in log} == {survivor_pid}

    procs[survivor].send_signal(signal.SIGTERM)
    assert procs[survivor].wait(timeout=30) == 0
    assert holders(pg_engine) == {}  # released on a clean stop

    for s in SOURCES:
        cursor = cursor_of(pg_engine, s)
        with pg_engine.connect() as conn:
            events = conn.execute(
                sa.select(sa.func.count()).select_from(RunEventRow).where(RunEventRow.source == s)  # type: ignore[arg-type]
            ).scalar_one()
            runs = conn.execute(
                sa.select(sa.func.count()).select_from(Run).where(Run.source == s)  # type: ignore[arg-type]
            ).scalar_one()
        # Every event 0..cursor-1 stored exactly once: no gap, no duplicate.
        assert events == cursor
        assert runs == cursor // 2
