"""Mixed load on a real `switchyard serve`: ingest and reads at once, with server RSS.

    .venv/bin/python bench/load.py [--seconds 60] [--writers 2] [--readers 2]
                                   [--batch 100] [--database-url URL] [--json]

Starts `switchyard serve` (uvicorn, 127.0.0.1, ephemeral port) on a fresh
SQLite file in a temp directory (or `--database-url`, migrated first), makes
an operator token, and from this separate process drives for `--seconds`:

- `--writers` threads posting `POST /api/v1/events` batches of `--batch`
  events (each batch: new runs going running → succeeded), each batch sent
  again until acknowledged;
- `--readers` threads cycling `GET /api/v1/runs?limit=50`,
  `GET /api/v1/sources` and the dashboard's overview `/` (logged in through
  its form).

Meanwhile the server's RSS is sampled every 0.5 s from /proc (psutil). The
first quarter of the run (at least 5 s) is warm-up; RSS start is the first
sample after it, end the last, and the slope is a least-squares fit over the
samples after warm-up, in MB per minute (flat ≈ 0).

Prints sustained events/s, p50/p95 latency per endpoint, error counts and the
RSS figures; `--json` prints one object with `events_per_s`, `p95_ms` (per
endpoint), `rss_start_mb`, `rss_end_mb`, and `rss_peak_mb`,
`rss_slope_mb_per_min`, `requests`, `errors`, `seconds`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CSRF_FIELD = re.compile(r'name="csrf" value="([^"]*)"')
T0 = datetime(2026, 6, 1, tzinfo=UTC)


class Recorder:
    """Latencies and errors per endpoint, from many threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.events = 0

    def record(self, endpoint: str, seconds: float, ok: bool) -> None:
        with self.lock:
            if ok:
                self.latencies[endpoint].append(seconds)
            else:
                self.errors[endpoint] += 1


def start_server(
    config: Path, env: dict[str, str], log: Path
) -> tuple[subprocess.Popen[bytes], str]:
    switchyard = str(Path(sys.executable).parent / "switchyard")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [switchyard, "serve", "--config", str(config), "--host", "127.0.0.1", "--port", "0"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    # Logging at warning keeps access logs out of the measurement, so the
    # port is read from the process's listening socket, not from its output.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            ports = [
                c.laddr.port
                for c in psutil.Process(proc.pid).net_connections(kind="tcp")
                if c.status == psutil.CONN_LISTEN
            ]
        except psutil.Error:
            ports = []
        if ports:
            base = f"http://127.0.0.1:{ports[0]}"
            try:
                if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                    return proc, base
            except httpx.HTTPError:
                pass
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"switchyard serve did not start:\n{log.read_text(errors='replace')[-3000:]}")


@contextmanager
def serving(
    database_url: str | None, name: str
) -> Iterator[tuple[subprocess.Popen[bytes], str, str]]:
    """`switchyard serve` on a migrated store (a fresh SQLite file unless `database_url`).

    Yields the server process, its base URL and an operator token; stops the
    server (SIGINT, then SIGKILL) and removes its directory on exit.
    """
    from gateway.auth import create_token
    from gateway.store.db import make_engine
    from gateway.store.migrate import upgrade

    workdir = Path(tempfile.mkdtemp(prefix=f"switchyard-{name}-"))
    server: subprocess.Popen[bytes] | None = None
    try:
        url = database_url or f"sqlite:///{workdir / f'{name}.db'}"
        engine = make_engine(url)
        upgrade(engine)
        token = create_token(engine, role="operator", name=f"{name}-bench")
        engine.dispose()
        config = workdir / "switchyard.yaml"
        config.write_text(f"database_url: {json.dumps(url)}\nretention: off\n")
        env = {k: v for k, v in os.environ.items() if k != "SWITCHYARD_CONFIG"}
        env["SWITCHYARD_LOG_LEVEL"] = "warning"
        env["PYTHONPATH"] = str(ROOT)
        server, base = start_server(config, env, workdir / "serve.log")
        yield server, base, token
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def batch_body(writer: int, seq: int, size: int) -> dict[str, Any]:
    events = []
    for i in range(size):
        run = (seq * size + i) // 2
        started = T0 + timedelta(seconds=run)
        done = i % 2 == 1
        events.append(
            {
                "key": f"load-{writer}-{run}",
                "job": f"load-job-{run % 50}",
                "state": "succeeded" if done else "running",
                "started_at": started.isoformat(),
                "ended_at": (started + timedelta(seconds=2)).isoformat() if done else None,
                "observed_at": (started + timedelta(seconds=2 if done else 0)).isoformat(),
                "attributes": {"bench.seq": seq},
            }
        )
    return {"source": "load-bench", "events": events}


def writer(base: str, token: str, n: int, size: int, stop: threading.Event, rec: Recorder) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    seq = 0
    with httpx.Client(base_url=base, timeout=30, headers=headers) as client:
        while not stop.is_set():
            body = batch_body(n, seq, size)
            t = time.perf_counter()
            try:
                r = client.post("/api/v1/events", json=body)
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            rec.record("POST /api/v1/events", time.perf_counter() - t, ok)
            if ok:
                with rec.lock:
                    rec.events += size
                seq += 1


def dashboard_login(client: httpx.Client, token: str) -> bool:
    page = client.get("/login")
    field = CSRF_FIELD.search(page.text)
    if page.status_code != 200 or not field:
        return False
    r = client.post("/login", data={"token": token, "csrf": field.group(1), "next": "/"})
    return r.status_code in (200, 303) and client.get("/").status_code == 200


def reader(base: str, token: str, stop: threading.Event, rec: Recorder) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, timeout=30, follow_redirects=True) as client:
        paths = [("/api/v1/runs", {"limit": 50}), ("/api/v1/sources", None)]
        if dashboard_login(client, token):
            paths.append(("/", None))
        while not stop.is_set():
            for path, params in paths:
                t = time.perf_counter()
                try:
                    r = client.get(path, params=params, headers=headers if path != "/" else None)
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                rec.record(f"GET {path}", time.perf_counter() - t, ok)


def sample_rss(pid: int, stop: threading.Event, out: list[tuple[float, float]]) -> None:
    proc = psutil.Process(pid)
    t0 = time.monotonic()
    while not stop.wait(0.5):
        try:
            out.append((time.monotonic() - t0, proc.memory_info().rss / 2**20))
        except psutil.Error:
            return


def slope_per_min(samples: list[tuple[float, float]]) -> float:
    if len(samples) < 2:
        return 0.0
    xs = [t for t, _ in samples]
    ys = [m for _, m in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with serving(args.database_url, "load") as (server, base, token):
        rec = Recorder()
        stop = threading.Event()
        rss: list[tuple[float, float]] = []
        threads = [threading.Thread(target=sample_rss, args=(server.pid, stop, rss))]
        threads += [
            threading.Thread(target=writer, args=(base, token, n, args.batch, stop, rec))
            for n in range(args.writers)
        ]
        threads += [
            threading.Thread(target=reader, args=(base, token, stop, rec))
            for _ in range(args.readers)
        ]
        started = time.monotonic()
        for t in threads:
            t.start()
        time.sleep(args.seconds)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        elapsed = time.monotonic() - started

    warmup = max(5.0, elapsed / 4)
    steady = [s for s in rss if s[0] >= warmup] or rss
    result = {
        "seconds": round(elapsed, 1),
        "events_per_s": round(rec.events / elapsed, 1),
        "p95_ms": {e: round(p(v, 0.95), 1) for e, v in sorted(rec.latencies.items())},
        "p50_ms": {e: round(p(v, 0.50), 1) for e, v in sorted(rec.latencies.items())},
        "requests": {e: len(v) for e, v in sorted(rec.latencies.items())},
        "errors": dict(sorted(rec.errors.items())),
        "rss_start_mb": round(steady[0][1], 1) if steady else None,
        "rss_end_mb": round(steady[-1][1], 1) if steady else None,
        "rss_peak_mb": round(max(m for _, m in rss), 1) if rss else None,
        "rss_slope_mb_per_min": round(slope_per_min(steady), 2),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"{elapsed:.0f} s, {args.writers} writers x {args.batch}-event batches, "
        f"{args.readers} readers"
    )
    print(f"sustained ingest: {result['events_per_s']} events/s ({rec.events} events)")
    for endpoint in result["p95_ms"]:
        print(
            f"  {endpoint:<24} n={result['requests'][endpoint]:<6} "
            f"p50 {result['p50_ms'][endpoint]:>7} ms  p95 {result['p95_ms'][endpoint]:>7} ms"
        )
    if rec.errors:
        print(f"errors: {result['errors']}")
    print(
        f"server RSS after {warmup:.0f} s warm-up: start {result['rss_start_mb']} MB, "
        f"end {result['rss_end_mb']} MB, peak {result['rss_peak_mb']} MB, "
        f"slope {result['rss_slope_mb_per_min']} MB/min"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
