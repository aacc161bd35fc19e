"""Kubernetes watch lag: emulator change → run visible through the REST API.

Drives N Job lifecycles (create Job, pod Pending → Running → Succeeded, Job
SuccessCriteriaMet → Complete, the Job controller's Event) through the
emulated API server at a steady rate. The Kubernetes adapter watches it
through the official client; a poller thread runs the runtime's `poll_once`
every 0.2 s into a migrated SQLite store; an observer thread reads
`GET /api/v1/runs` (newest first) and notes when each Job first shows as
succeeded. Lag = that moment minus the moment the emulator committed the Job's
`Complete` condition.

    .venv/bin/python bench/k8s_watch.py [--jobs 5000] [--rate 100] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from fastapi.testclient import TestClient

from adapters.kubernetes import create, normalize
from emulators.kube_apiserver import Cluster, KubeApiServer
from emulators.kube_apiserver.store import Change
from gateway.api.app import create_app
from gateway.auth import create_token
from gateway.config import Config, SourceEntry
from gateway.contract import SourceConfig
from gateway.runtime.poller import poll_once
from gateway.store.db import make_engine
from gateway.store.migrate import upgrade

SOURCE = "k8s-bench"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument(
        "--rate", type=float, default=100.0, help="Job lifecycles started per second"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="k8s-bench-"))
    engine = make_engine(f"sqlite:///{tmp / 'bench.db'}")
    upgrade(engine)
    server = KubeApiServer(bookmark_interval_s=1.0).start()
    cluster = Cluster(server.store)
    completed_at: dict[str, float] = {}

    def on_change(change: Change) -> None:
        if change.resource != "jobs" or change.type != "MODIFIED":
            return
        conditions = (change.obj.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Complete" for c in conditions):
            meta = change.obj["metadata"]
            key = normalize.job_key(meta["namespace"], meta["name"], meta["uid"])
            completed_at.setdefault(key, time.monotonic())

    server.store.change_listeners.append(on_change)
    options = {"kubeconfig": str(server.write_kubeconfig(tmp / "kubeconfig")), "page_size": 500}
    adapter = create(SourceConfig(name=SOURCE, kind="kubernetes", options=options))
    config = Config(
        sources=[SourceEntry(name=SOURCE, kind="kubernetes", interval=0.2, options=options)]
    )
    app = create_app(config, engine, adapters={SOURCE: adapter})
    headers = {"Authorization": f"Bearer {create_token(engine, role='viewer', name='bench')}"}
    seen_at: dict[str, float] = {}
    stop = threading.Event()

    def poller() -> None:
        while not stop.is_set():
            poll_once(engine, adapter, discover=False)
            stop.wait(0.2)

    def observer(http: TestClient) -> None:
        while not stop.is_set():
            resp = http.get(
                "/api/v1/runs",
                params={"source": SOURCE, "kind": "run", "state": "succeeded", "limit": 200},
                headers=headers,
            )
            now = time.monotonic()
            for run in resp.json()["data"]:
                seen_at.setdefault(run["key"], now)
            stop.wait(0.05)

    poll_once(engine, adapter)  # the initial list
    with TestClient(app) as http:
        threads = [
            threading.Thread(target=poller, daemon=True),
            threading.Thread(target=observer, args=(http,), daemon=True),
        ]
        for t in threads:
            t.start()
        started = time.monotonic()
        for i in range(args.jobs):
            job = cluster.create_job("bench", f"job-{i:05d}")
            pod = cluster.create_pod("bench", job=job)
            cluster.schedule_pod(pod)
            cluster.run_pod(pod)
            cluster.end_pod(pod, 0)
            cluster.complete_job(job)
            pause = started + (i + 1) / args.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        driven_s = time.monotonic() - started
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not set(completed_at) <= set(seen_at):
            time.sleep(0.1)
        stop.set()
        for t in threads:
            t.join(10)
    adapter.close()
    server.stop()

    lags = [(seen_at[k] - t) * 1000 for k, t in completed_at.items() if k in seen_at]
    missing = len(completed_at) - len(lags)
    result = {
        "jobs": len(completed_at),
        "seen": len(lags),
        "missing": missing,
        "lag_p50_ms": round(statistics.median(lags), 1) if lags else None,
        "lag_p95_ms": round(_pct(lags, 0.95), 1) if lags else None,
        "lag_max_ms": round(max(lags), 1) if lags else None,
        "driven_s": round(driven_s, 1),
    }
    if args.json:
        print(json.dumps(result))
    else:
        driven = f"{result['jobs']} in {result['driven_s']} s ({args.rate:g}/s requested)"
        print(f"jobs driven          {driven}")
        print(f"seen through the API {result['seen']} (missing {missing})")
        lags_text = f"{result['lag_p50_ms']} / {result['lag_p95_ms']} / {result['lag_max_ms']}"
        print(f"lag p50 / p95 / max  {lags_text} ms")
    return 0 if missing == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
