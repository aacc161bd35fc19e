"""Kubernetes watch lag: emulator change → run visible through the REST API.

Drives N Job lifecycles (create Job, pod Pending → Running → Succeeded, Job
SuccessCriteriaMet → Complete, the Job controller's Event) through the
emulated API server at a steady rate. The Kubernetes adapter watches it
through the official client; the gateway's own `Runtime` (lease, fenced
`poll_once`, source status) polls it every `--interval` s into a migrated
SQLite store, woken early when the adapter has events. The emulator and the
driver run in a child process, as a real API server would not share the
gateway's interpreter.

Lag = the moment a Job first shows as succeeded in `GET /api/v1/runs` minus
the moment the emulator committed its `Complete` condition. The observer asks
only about what it still waits for: every look pages (keyset cursor) through
the succeeded runs whose start is at or after the earliest start among the
Jobs it is still waiting for, so no run can hide behind a page limit.

The final accounting is exact: it pages through every run and attempt of the
source and checks that each Job driven has exactly one run, in state
succeeded, and each pod exactly one attempt, succeeded. `missing` counts
Jobs without a run; `wrong` counts runs or attempts that are absent or in
another state; the exit status is 1 unless both are 0.

    .venv/bin/python bench/k8s_watch.py [--jobs 5000] [--rate 100] [--interval 0.2] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from adapters.kubernetes import create, normalize
from emulators.kube_apiserver import Cluster, KubeApiServer
from emulators.kube_apiserver.store import Change
from gateway.api.app import create_app
from gateway.auth import create_token
from gateway.config import Config, SourceEntry
from gateway.contract import SourceConfig
from gateway.runtime import Runtime
from gateway.runtime.poller import poll_once
from gateway.server import freeze_startup_objects
from gateway.store.db import make_engine
from gateway.store.migrate import upgrade

SOURCE = "k8s-bench"
PAGE = 500


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _pages(http: TestClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    """Every run matching `params`, all pages (keyset cursor)."""
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": PAGE, **({"cursor": cursor} if cursor else {})}
        resp = http.get("/api/v1/runs", params=query, headers=headers)
        resp.raise_for_status()
        body = resp.json()
        out += body["data"]
        cursor = body.get("next_cursor")
        if not cursor:
            return out


def drive(events: Any, commands: Any, jobs: int, rate: float, workdir: str) -> None:
    """The emulated API server and the Job lifecycles, in their own process.

    A real API server does not share the gateway's interpreter; running the
    emulator (and its deep copies and JSON) in a child keeps the bench from
    charging the emulator's CPU to the gateway. `time.monotonic()` is the
    system's CLOCK_MONOTONIC, so the child's timestamps compare with the
    parent's.
    """
    server = KubeApiServer(bookmark_interval_s=1.0).start()
    cluster = Cluster(server.store)

    def on_change(change: Change) -> None:
        if change.resource != "jobs" or change.type != "MODIFIED":
            return
        status = change.obj.get("status") or {}
        if any(c.get("type") == "Complete" for c in status.get("conditions") or []):
            meta = change.obj["metadata"]
            key = normalize.job_key(meta["namespace"], meta["name"], meta["uid"])
            events.put(("complete", key, status.get("startTime"), time.monotonic()))

    server.store.change_listeners.append(on_change)
    events.put(("ready", str(server.write_kubeconfig(Path(workdir) / "kubeconfig"))))
    commands.get()  # the gateway has listed and is polling
    driven: list[tuple[str, str]] = []  # (job key, pod key)
    begun = time.monotonic()
    for i in range(jobs):
        job = cluster.create_job("bench", f"job-{i:05d}")
        pod = cluster.create_pod("bench", job=job)
        cluster.schedule_pod(pod)
        cluster.run_pod(pod)
        cluster.end_pod(pod, 0)
        cluster.complete_job(job)
        jm, pm = job["metadata"], pod["metadata"]
        driven.append(
            (
                normalize.job_key(jm["namespace"], jm["name"], jm["uid"]),
                normalize.pod_key(pm["namespace"], pm["name"], pm["uid"]),
            )
        )
        pause = begun + (i + 1) / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    events.put(("driven", driven, time.monotonic() - begun))
    commands.get()  # the gateway is done
    server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument(
        "--rate", type=float, default=100.0, help="Job lifecycles started per second"
    )
    parser.add_argument("--interval", type=float, default=0.2, help="the source's poll interval")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    load_before = round(os.getloadavg()[0], 2)  # other work on the machine skews lag

    tmp = Path(tempfile.mkdtemp(prefix="k8s-bench-"))
    engine = make_engine(f"sqlite:///{tmp / 'bench.db'}")
    upgrade(engine)
    mp = multiprocessing.get_context("spawn")
    from_driver, to_driver = mp.Queue(), mp.Queue()
    child = mp.Process(
        target=drive, args=(from_driver, to_driver, args.jobs, args.rate, str(tmp)), daemon=True
    )
    child.start()
    kind, kubeconfig = from_driver.get(timeout=60)
    assert kind == "ready", kind

    lock = threading.Lock()
    completed_at: dict[str, float] = {}  # job key -> monotonic time Complete was committed
    started: dict[str, datetime] = {}  # job key -> its status.startTime
    pending: set[str] = set()  # completed, not yet seen as succeeded through the API
    driven: list[tuple[str, str]] = []
    driven_s: list[float] = []
    finished = threading.Event()

    def listen() -> None:
        while True:
            message = from_driver.get()
            if message[0] == "driven":
                driven.extend(message[1])
                driven_s.append(message[2])
                finished.set()
                return
            _, key, start_text, at = message
            start = normalize.parse_time(start_text)
            assert start is not None, f"{key} completed without a startTime"
            with lock:
                if key not in completed_at:
                    completed_at[key] = at
                    started[key] = start
                    pending.add(key)

    options = {"kubeconfig": kubeconfig, "page_size": 500}
    adapter = create(SourceConfig(name=SOURCE, kind="kubernetes", options=options))
    config = Config(
        sources=[
            SourceEntry(name=SOURCE, kind="kubernetes", interval=args.interval, options=options)
        ]
    )
    app = create_app(config, engine, adapters={SOURCE: adapter})
    headers = {"Authorization": f"Bearer {create_token(engine, role='viewer', name='bench')}"}
    seen_at: dict[str, float] = {}
    looks: list[float] = []
    stop = threading.Event()

    def observer(http: TestClient) -> None:
        while not stop.is_set():
            with lock:
                waiting = list(pending)
                since = min((started[k] for k in waiting), default=None)
            if since is not None:
                asked = time.monotonic()
                runs = _pages(
                    http,
                    headers,
                    source=SOURCE,
                    kind="run",
                    state="succeeded",
                    # A Job run's start is the Job's status.startTime, the
                    # very value the driver reported: `since` is exact.
                    since=since.isoformat(),
                )
                now = time.monotonic()
                looks.append((now - asked) * 1000)
                with lock:
                    for run in runs:
                        if run["key"] in pending:
                            pending.discard(run["key"])
                            seen_at[run["key"]] = now
            stop.wait(0.02)

    poll_once(engine, adapter)  # the initial list
    runtime = Runtime(config, engine, adapters={SOURCE: adapter}, housekeeping=[])
    with TestClient(app) as http:
        runtime.start()
        freeze_startup_objects()  # as `switchyard serve` and `python -m gateway.runtime` do
        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        watcher = threading.Thread(target=observer, args=(http,), daemon=True)
        watcher.start()
        to_driver.put("go")
        finished.wait(args.jobs / args.rate * 3 + 120)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with lock:
                if not pending and len(completed_at) == len(driven):
                    break
            time.sleep(0.1)
        stop.set()
        watcher.join(30)
        cycles = runtime.pollers[SOURCE].cycles
        runtime.stop()
        # Exact accounting: every run and attempt of the source, all pages.
        runs = _pages(http, headers, source=SOURCE, kind="run")
        attempts = _pages(http, headers, source=SOURCE, kind="attempt")
    adapter.close()
    to_driver.put("stop")
    child.join(30)

    run_count = Counter(r["key"] for r in runs)
    run_state = {r["key"]: r["state"] for r in runs}
    attempt_count = Counter(a["key"] for a in attempts)
    attempt_state = {a["key"]: a["state"] for a in attempts}
    missing = [j for j, _ in driven if j not in run_state]
    wrong = [j for j, _ in driven if run_state.get(j, "succeeded") != "succeeded"]
    wrong += [p for _, p in driven if attempt_state.get(p) != "succeeded"]
    duplicated = [k for k, n in (run_count + attempt_count).items() if n > 1]

    lags = [(seen_at[k] - t) * 1000 for k, t in completed_at.items() if k in seen_at]
    result = {
        "jobs": len(driven),
        "seen": len(lags),
        "missing": len(missing),
        "wrong": len(wrong),
        "duplicated": len(duplicated),
        "lag_p50_ms": round(statistics.median(lags), 1) if lags else None,
        "lag_p95_ms": round(_pct(lags, 0.95), 1) if lags else None,
        "lag_max_ms": round(max(lags), 1) if lags else None,
        "look_p50_ms": round(statistics.median(looks), 1) if looks else None,
        "poll_cycles": cycles,
        "driven_s": round(driven_s[0], 1) if driven_s else None,
        "interval_s": args.interval,
        "load_1m": [load_before, round(os.getloadavg()[0], 2)],
    }
    if args.json:
        print(json.dumps(result))
    else:
        rate = f"{result['jobs']} in {result['driven_s']} s ({args.rate:g}/s requested)"
        print(f"jobs driven          {rate}")
        print(f"seen through the API {result['seen']} as they completed")
        print(
            f"final accounting     missing {len(missing)}, wrong state {len(wrong)}, "
            f"duplicated {len(duplicated)} (of {len(runs)} runs, {len(attempts)} attempts)"
        )
        for key in (missing + wrong + duplicated)[:10]:
            print(f"  {key}: run {run_state.get(key)} attempt {attempt_state.get(key)}")
        lags_text = f"{result['lag_p50_ms']} / {result['lag_p95_ms']} / {result['lag_max_ms']}"
        print(f"lag p50 / p95 / max  {lags_text} ms")
        print(f"observer look p50    {result['look_p50_ms']} ms; {cycles} poll cycles")
        print(f"load (1 min) before / after  {result['load_1m']}")
    return 0 if not missing and not wrong and not duplicated else 1


if __name__ == "__main__":
    sys.exit(main())
