"""What a readiness probe costs: `/readyz` against `/healthz` on a real `switchyard serve`.

    .venv/bin/python bench/readyz.py [--requests 500] [--clients 8]
                                     [--database-url URL] [--json] [--smoke]

Starts `switchyard serve` (uvicorn, 127.0.0.1, ephemeral port) on a fresh
SQLite file in a temp directory (or `--database-url`, migrated first), then
from this process:

1. idle: `--requests` requests to each endpoint, one at a time, alternating;
2. loaded: `--clients` threads each sending `--requests` / `--clients`
   requests to `/readyz` while as many threads post event batches
   (`POST /api/v1/events`), so the probe meets the writers it meets in
   production.

`/healthz` answers without touching anything; `/readyz` adds one query
(`SELECT version_num FROM alembic_version`, the head revision being read
from the scripts once per process). Prints the median of each endpoint idle,
their ratio, and `/readyz`'s median and p99 under load; `--json` prints
`healthz_median_ms`, `readyz_median_ms`, `ratio`, `loaded_readyz_median_ms`,
`loaded_readyz_p99_ms`, `loaded_events`, `errors`. `--smoke` runs tiny sizes (the test
suite runs it so the script cannot rot).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.load import batch_body, p, serving  # noqa: E402  (after the path)


def timed(client: httpx.Client, path: str) -> tuple[float, bool]:
    t0 = time.perf_counter()
    ok = client.get(path).status_code == 200
    return time.perf_counter() - t0, ok


def idle(base: str, requests: int) -> tuple[dict[str, list[float]], int]:
    """Latencies of each endpoint, alternating, one request at a time."""
    out: dict[str, list[float]] = {"/healthz": [], "/readyz": []}
    errors = 0
    with httpx.Client(base_url=base, timeout=30) as client:
        for path in out:  # warm-up: connection, first query, the head revision
            timed(client, path)
        for _ in range(requests):
            for path, latencies in out.items():
                seconds, ok = timed(client, path)
                latencies.append(seconds)
                errors += not ok
    return out, errors


def loaded(base: str, token: str, requests: int, clients: int) -> tuple[list[float], int, int]:
    """`/readyz` latencies from `clients` probes while as many writers post batches."""
    stop = threading.Event()
    lock = threading.Lock()
    latencies: list[float] = []
    written = [0]
    errors = [0]

    def probe(n: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            for _ in range(n):
                seconds, ok = timed(client, "/readyz")
                with lock:
                    latencies.append(seconds)
                    errors[0] += not ok

    def write(w: int) -> None:
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, timeout=30, headers=auth) as client:
            seq = 0
            while not stop.is_set():
                r = client.post("/api/v1/events", json=batch_body(w, seq, 20))
                with lock:
                    if r.status_code == 200:
                        written[0] += 20
                    else:
                        errors[0] += 1
                seq += 1

    writers = [threading.Thread(target=write, args=(w,)) for w in range(clients)]
    probes = [
        threading.Thread(target=probe, args=(max(1, requests // clients),)) for _ in range(clients)
    ]
    for t in writers + probes:
        t.start()
    for t in probes:
        t.join()
    stop.set()
    for t in writers:
        t.join()
    return latencies, written[0], errors[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for the test suite")
    args = parser.parse_args(argv)
    if args.smoke:
        args.requests, args.clients = 10, 2

    with serving(args.database_url, "readyz") as (_server, base, token):
        quiet, idle_errors = idle(base, args.requests)
        under_load, events, load_errors = loaded(base, token, args.requests, args.clients)

    health = statistics.median(quiet["/healthz"]) * 1000
    ready = statistics.median(quiet["/readyz"]) * 1000
    result: dict[str, Any] = {
        "healthz_median_ms": round(health, 3),
        "readyz_median_ms": round(ready, 3),
        "ratio": round(ready / health, 2),
        "loaded_readyz_median_ms": round(statistics.median(under_load) * 1000, 3),
        "loaded_readyz_p99_ms": round(p(under_load, 0.99), 3),
        "loaded_events": events,
        "errors": idle_errors + load_errors,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"idle, {args.requests} requests each, one at a time:")
        print(f"  /healthz median {result['healthz_median_ms']:.2f} ms")
        print(f"  /readyz  median {result['readyz_median_ms']:.2f} ms  ({result['ratio']}x)")
        print(f"under load ({args.clients} probes, {args.clients} writers, {events} events):")
        print(
            f"  /readyz  median {result['loaded_readyz_median_ms']:.2f} ms, "
            f"p99 {result['loaded_readyz_p99_ms']:.2f} ms"
        )
        print(f"errors: {result['errors']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
