"""Requests and time per Airflow poll cycle at 1,000 DAGs / 10,000 runs / 100,000 TIs.

An in-process HTTP server on 127.0.0.1 answers the Airflow 3 `/api/v2` list
endpoints the poller uses (``POST /auth/token``, ``GET dags/~/dagRuns`` and
``dags/~/dagRuns/~/taskInstances`` with ``updated_at_gte``, ``order_by=id``,
``limit``/``offset``, ``total_entries`` and a ``Date`` header). Row shapes are
copied from the cassettes recorded from a real Airflow 3.3.2; counts are
emulated. The server's clock is driven by the bench, so "time passes" without
waiting.

Phases:
1. idle: the watermark is past every row; one cycle (target <= 2 requests).
2. catch-up: K rows change (K/10 runs, 9K/10 task instances, all succeeding,
   so no log is read); one cycle (target <= ceil(K/100) + 2 requests).
3. overlap re-read: the very next cycle, still inside the overlap window,
   re-reads those K rows (reported, not a target: it costs O(K), not O(DAGs)).

Usage: python bench/airflow_poll.py [--changes K] [--repeat N] [--json]
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.airflow import create
from adapters.airflow.poller import encode_cursor
from gateway.contract import SourceConfig

DAGS, RUNS_PER_DAG, TASKS_PER_RUN = 1000, 10, 10
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


class Estate:
    """Rows kept sorted by updated_at so a window is a bisect, like an index scan."""

    def __init__(self) -> None:
        self.now = T0
        self.lock = threading.Lock()
        self.runs: dict[int, dict[str, Any]] = {}
        self.tis: dict[int, dict[str, Any]] = {}
        self.updated: dict[str, list[tuple[datetime, int]]] = {"runs": [], "tis": []}
        old = T0 - timedelta(days=1)
        run_pk = ti_pk = 0
        for d in range(DAGS):
            dag_id = f"dag_{d:04d}"
            for r in range(RUNS_PER_DAG):
                run_pk += 1
                run_id = f"scheduled__2026-10-{r + 1:02d}T00:00:00+00:00"
                self.runs[run_pk] = {
                    "dag_run_id": run_id,
                    "dag_id": dag_id,
                    "logical_date": f"2026-10-{r + 1:02d}T00:00:00Z",
                    "queued_at": _iso(old),
                    "start_date": _iso(old),
                    "end_date": _iso(old + timedelta(minutes=5)),
                    "run_after": f"2026-10-{r + 1:02d}T00:00:00Z",
                    "run_type": "scheduled",
                    "state": "success",
                    "triggered_by": "timetable",
                    "conf": {},
                    "dag_display_name": dag_id,
                    "dag_versions": [],
                    "_updated_at": old,
                }
                for t in range(TASKS_PER_RUN):
                    ti_pk += 1
                    self.tis[ti_pk] = {
                        "id": str(uuid.UUID(int=ti_pk)),
                        "task_id": f"task_{t}",
                        "dag_id": dag_id,
                        "dag_run_id": run_id,
                        "map_index": -1,
                        "logical_date": f"2026-10-{r + 1:02d}T00:00:00Z",
                        "run_after": f"2026-10-{r + 1:02d}T00:00:00Z",
                        "start_date": _iso(old),
                        "end_date": _iso(old + timedelta(minutes=1)),
                        "duration": 60.0,
                        "state": "success",
                        "try_number": 1,
                        "max_tries": 0,
                        "task_display_name": f"task_{t}",
                        "dag_display_name": dag_id,
                        "hostname": "worker-1",
                        "pool": "default_pool",
                        "queue": "default",
                        "operator": "BashOperator",
                        "executor_config": "{}",
                        "_updated_at": old,
                    }
        self._reindex()

    def _reindex(self) -> None:
        for name, table in (("runs", self.runs), ("tis", self.tis)):
            self.updated[name] = sorted((row["_updated_at"], pk) for pk, row in table.items())

    def change(self, k: int) -> None:
        """K rows change now: a tenth are DAG runs, the rest task instances."""
        with self.lock:
            n_runs = k // 10
            for pk in list(self.runs)[:n_runs]:
                self.runs[pk]["_updated_at"] = self.now
                self.runs[pk]["end_date"] = _iso(self.now)
            for pk in list(self.tis)[: k - n_runs]:
                self.tis[pk]["_updated_at"] = self.now
                self.tis[pk]["end_date"] = _iso(self.now)
            self._reindex()

    def page(
        self, name: str, since: datetime | None, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        with self.lock:
            index = self.updated[name]
            start = 0 if since is None else bisect.bisect_left(index, (since, -1))
            pks = sorted(pk for _, pk in index[start:])  # order_by=id
            table = self.runs if name == "runs" else self.tis
            rows = [
                {k: v for k, v in table[pk].items() if not k.startswith("_")}
                for pk in pks[offset : offset + limit]
            ]
            return rows, len(pks)


def make_handler(estate: Estate, counter: dict[str, int]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def date_time_string(self, timestamp: float | None = None) -> str:
            return format_datetime(estate.now, usegmt=True)  # the emulated server clock

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            counter["requests"] += 1
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/auth/token":
                self._send(201, {"access_token": "bench-token"})
            else:
                self._send(404, {"detail": "not found"})

        def do_GET(self) -> None:
            counter["requests"] += 1
            url = urlparse(self.path)
            q = parse_qs(url.query)
            since = (
                datetime.fromisoformat(q["updated_at_gte"][0].replace("Z", "+00:00"))
                if "updated_at_gte" in q
                else None
            )
            limit = min(int(q.get("limit", ["50"])[0]), 100)
            offset = int(q.get("offset", ["0"])[0])
            if url.path == "/api/v2/dags/~/dagRuns":
                rows, total = estate.page("runs", since, offset, limit)
                self._send(200, {"dag_runs": rows, "total_entries": total})
            elif url.path == "/api/v2/dags/~/dagRuns/~/taskInstances":
                rows, total = estate.page("tis", since, offset, limit)
                self._send(200, {"task_instances": rows, "total_entries": total})
            else:
                self._send(404, {"detail": "not found"})

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    estate = Estate()
    counter = {"requests": 0}
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(estate, counter))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    overlap_s = 120.0
    options = {
        "url": url,
        "api": "v2",
        "username": "bench",
        "password": "bench",
        "overlap": overlap_s,
    }
    adapter = create(SourceConfig(name="bench", kind="airflow", options=options))

    idle_req: list[int] = []
    idle_ms: list[float] = []
    catch_req: list[int] = []
    catch_ms: list[float] = []
    reread_req: list[int] = []
    caught: list[int] = []
    cursor = encode_cursor(estate.now - timedelta(seconds=overlap_s))
    adapter.poll(cursor)  # warm-up: fetches the token, primes the poller
    cursor = adapter.poller._last_cursor
    for _ in range(args.repeat):
        estate.now += timedelta(seconds=overlap_s * 2)  # the last changes leave the overlap
        adapter.poll(cursor)
        cursor = adapter.poller._last_cursor
        estate.now += timedelta(seconds=30)
        before, started = counter["requests"], time.perf_counter()
        result = adapter.poll(cursor)
        idle_ms.append((time.perf_counter() - started) * 1000)
        idle_req.append(counter["requests"] - before)
        cursor = result.cursor

        estate.now += timedelta(seconds=30)
        estate.change(args.changes)
        estate.now += timedelta(seconds=1)
        before, started = counter["requests"], time.perf_counter()
        result = adapter.poll(cursor)
        catch_ms.append((time.perf_counter() - started) * 1000)
        catch_req.append(counter["requests"] - before)
        caught.append(len(result.events))
        cursor = result.cursor

        estate.now += timedelta(seconds=30)
        before = counter["requests"]
        result = adapter.poll(cursor)
        reread_req.append(counter["requests"] - before)
        cursor = result.cursor
    server.shutdown()

    figures = {
        "dags": DAGS,
        "runs": len(estate.runs),
        "task_instances": len(estate.tis),
        "idle_requests": max(idle_req),
        "catchup_changes": args.changes,
        "catchup_requests": max(catch_req),
        "catchup_target": math.ceil(args.changes / 100) + 2,
        "catchup_events": min(caught),
        "overlap_reread_requests": max(reread_req),
        "cycle_ms": round(statistics.median(idle_ms), 1),
        "idle_cycle_ms_p95": round(sorted(idle_ms)[max(0, math.ceil(0.95 * len(idle_ms)) - 1)], 1),
        "catchup_cycle_ms": round(statistics.median(catch_ms), 1),
    }
    if args.json:
        print(json.dumps(figures))
        return
    print(f"estate: {DAGS} DAGs, {len(estate.runs)} runs, {len(estate.tis)} task instances")
    print(
        f"idle cycle: {figures['idle_requests']} requests (target <= 2), "
        f"median {figures['cycle_ms']} ms, p95 {figures['idle_cycle_ms_p95']} ms"
    )
    print(
        f"catch-up after {args.changes} changes: {figures['catchup_requests']} requests "
        f"(target <= {figures['catchup_target']}), {figures['catchup_events']} events, "
        f"median {figures['catchup_cycle_ms']} ms"
    )
    print(
        f"next cycle inside the {overlap_s:.0f}s overlap re-reads them: "
        f"{figures['overlap_reread_requests']} requests, 0 new events"
    )


if __name__ == "__main__":
    main()
