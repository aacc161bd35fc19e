"""Correlation cost at scale: incident latency and ingest throughput with it on vs off.

    .venv/bin/python bench/correlate.py [--runs 1000000] [--rounds 6] [--json]

1. **Seed** a SQLite store (WAL, migrated to head, in a temp directory) with
   `--runs` historical runs through the raw `sqlite3` driver: the run
   table's indexes are dropped, rows go in with `executemany` in one
   transaction, and the indexes are rebuilt — the same schema the gateway
   uses, built in under two minutes for a million rows. No ANALYZE: the
   gateway never runs it, so the planner sees what it sees in production. Flows with
   declared edges between the bench's cron jobs and Lambda functions are
   synced, so correlation has real edges to look up.
2. **Throughput.** Batches of fresh events (a mix of sources, ~2% failures
   whose cron→Lambda edges open and join incidents) go through the real
   `apply_batch`, alternating rounds with correlation on and off
   (`gateway.ingest.correlate_batch` replaced by a no-op) in the same
   process and store. Prints events/s of each and their ratio.
3. **Latency.** A Lambda times out (an incident opens), then the cron run
   that invoked it fails: from just before that last event is ingested until
   `GET /api/v1/incidents/{id}` (the real app, in process) shows both runs.

`--json` prints one object with `incident_latency_ms` (p95), `ingest_ratio_with_correlation`,
`stored_runs` and the figures behind them. Targets: ≤ 1000 ms and ≥ 0.7.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

import gateway.ingest as ingest  # noqa: E402
from gateway.api.app import create_app  # noqa: E402
from gateway.auth import create_token  # noqa: E402
from gateway.config import parse_config  # noqa: E402
from gateway.contract import ErrorInfo, Ref, RunEvent, State, span_id_for, trace_id_for  # noqa: E402
from gateway.store.db import make_engine  # noqa: E402
from gateway.store.migrate import upgrade  # noqa: E402

SOURCES = ("bench-airflow", "bench-k8s", "bench-lambda", "bench-cron", "bench-kestra")
JOBS_PER_SOURCE = 400
FLOWS = 20
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def seed(db_path: Path, runs: int) -> float:
    """Bulk-insert `runs` historical runs with the raw driver; seconds taken."""
    started = time.perf_counter()
    conn = sqlite3.connect(db_path, isolation_level=None)
    # A throwaway bulk load: no journal, no fsync, sorts in memory; WAL again after.
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA cache_size=-400000")
    indexes = [
        (name, sql)
        for name, sql in conn.execute(
            "SELECT name, sql FROM sqlite_master "
            "WHERE type='index' AND tbl_name='run' AND sql IS NOT NULL"
        )
    ]
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    rng = random.Random(7)
    span = timedelta(days=90).total_seconds()
    columns = (
        "id, trace_id, trace_adopted, parent_id, source, key, parent_key, root_key, kind, job, "
        "name, state, state_at, attempt, started_at, ended_at, observed_at, nominal_time, "
        "error_kind, error_message, exit_code, attributes, url, created_at, updated_at"
    )
    sql = f"INSERT INTO run ({columns}) VALUES ({', '.join('?' * 25)})"
    conn.execute("BEGIN")
    batch: list[tuple[Any, ...]] = []
    base = NOW.replace(tzinfo=None) - timedelta(days=1)  # naive UTC, as the store keeps it
    for i in range(runs):
        source = SOURCES[i % len(SOURCES)]
        job = f"job-{rng.randrange(JOBS_PER_SOURCE)}"
        key = f"hist/{job}/{i}"
        start = base - timedelta(seconds=rng.random() * span)
        start_s = start.isoformat(sep=" ")
        end_s = (start + timedelta(seconds=rng.randrange(5, 600))).isoformat(sep=" ")
        failed = rng.random() < 0.03
        batch.append(
            (
                span_id_for(source, key),
                trace_id_for(source, key),
                0,
                None,
                source,
                key,
                None,
                key,
                "run",
                job,
                job,
                "failed" if failed else "succeeded",
                end_s,
                1,
                start_s,
                end_s,
                end_s,
                None,
                "exit_code" if failed else None,
                None,
                1 if failed else None,
                "{}",
                None,
                end_s,
                end_s,
            )
        )
        if len(batch) >= 50_000:
            conn.executemany(sql, batch)
            batch.clear()
    if batch:
        conn.executemany(sql, batch)
    conn.execute("COMMIT")
    for _, create in indexes:
        conn.execute(create)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    return time.perf_counter() - started


def flow_docs() -> list[dict[str, Any]]:
    return [
        {
            "name": f"bench-{n}",
            "owner": "bench@example.com",
            "jobs": [f"bench-cron:job-{n}", f"bench-lambda:job-{n}", f"bench-k8s:job-{n}"],
            "edges": [
                f"bench-cron:job-{n} invokes bench-lambda:job-{n} within 5m",
                f"bench-lambda:job-{n} triggers bench-k8s:job-{n} within 10m",
            ],
        }
        for n in range(FLOWS)
    ]


class Workload:
    """Fresh events, each batch from one source, with ~2% failures."""

    def __init__(self) -> None:
        self.rng = random.Random(11)
        self.n = 0
        self.clock = NOW

    def batch(self, size: int) -> tuple[str, list[RunEvent]]:
        source = SOURCES[self.n % len(SOURCES)]
        events: list[RunEvent] = []
        for _ in range(size):
            self.n += 1
            self.clock += timedelta(milliseconds=200)
            job = f"job-{self.rng.randrange(JOBS_PER_SOURCE)}"
            failed = self.rng.random() < 0.02
            events.append(
                RunEvent(
                    source=source,
                    key=f"live/{job}/{self.n}",
                    job=job,
                    name=job,
                    state=State.failed if failed else State.succeeded,
                    started_at=self.clock,
                    ended_at=self.clock + timedelta(seconds=3),
                    observed_at=self.clock + timedelta(seconds=3),
                    error=ErrorInfo(kind="timeout") if failed else None,
                    refs=[Ref(namespace="bench.id", value=f"{source}/{self.n}")],
                )
            )
        return source, events


def throughput(engine: Any, rounds: int, batches: int, size: int) -> dict[str, float]:
    from gateway.ingest import apply_batch

    real = ingest.correlate_batch
    work = Workload()
    spent = {"on": 0.0, "off": 0.0}
    events = {"on": 0, "off": 0}
    for r in range(rounds * 2):
        mode = "on" if r % 2 == 0 else "off"
        ingest.correlate_batch = real if mode == "on" else (lambda conn, ids, now=None: None)  # type: ignore[assignment]
        try:
            for _ in range(batches):
                source, evs = work.batch(size)
                t = time.perf_counter()
                apply_batch(engine, source, evs)
                spent[mode] += time.perf_counter() - t
                events[mode] += len(evs)
        finally:
            ingest.correlate_batch = real
    on, off = events["on"] / spent["on"], events["off"] / spent["off"]
    return {"events_per_s_on": on, "events_per_s_off": off, "ratio": on / off}


def latency(engine: Any, client: TestClient, auth: dict[str, str], samples: int) -> list[float]:
    from gateway.ingest import apply_batch

    out: list[float] = []
    base = NOW + timedelta(days=2)
    for i in range(samples):
        n = i % FLOWS
        t0 = base + timedelta(hours=i)
        apply_batch(
            engine,
            "bench-cron",
            [
                RunEvent(
                    source="bench-cron",
                    key=f"lat/{i}",
                    job=f"job-{n}",
                    state=State.running,
                    started_at=t0,
                    observed_at=t0,
                )
            ],
        )
        apply_batch(
            engine,
            "bench-lambda",
            [
                RunEvent(
                    source="bench-lambda",
                    key=f"lat-req/{i}",
                    job=f"job-{n}",
                    state=State.failed,
                    started_at=t0 + timedelta(seconds=1),
                    ended_at=t0 + timedelta(seconds=61),
                    observed_at=t0 + timedelta(seconds=61),
                    error=ErrorInfo(kind="timeout"),
                )
            ],
        )
        cron_id = span_id_for("bench-cron", f"lat/{i}")
        last = RunEvent(
            source="bench-cron",
            key=f"lat/{i}",
            job=f"job-{n}",
            state=State.failed,
            started_at=t0,
            ended_at=t0 + timedelta(seconds=62),
            observed_at=t0 + timedelta(seconds=62),
            error=ErrorInfo(kind="exit_code", exit_code=1),
        )
        start = time.perf_counter()
        apply_batch(engine, "bench-cron", [last])
        deadline = start + 30
        while time.perf_counter() < deadline:
            page = client.get(
                "/api/v1/incidents", params={"status": "open", "limit": 5}, headers=auth
            )
            ids = [row["id"] for row in page.json()["data"]]
            found = False
            for incident_id in ids:
                detail = client.get(f"/api/v1/incidents/{incident_id}", headers=auth).json()
                if any(step["run"]["id"] == cron_id for step in detail["chain"]):
                    found = len(detail["chain"]) == 2
                    break
            if found:
                out.append((time.perf_counter() - start) * 1000)
                break
        else:
            raise SystemExit(f"incident {i} never became readable")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="switchyard-bench-") as tmp:
        db = Path(tmp) / "bench.db"
        engine = make_engine(f"sqlite:///{db}")
        upgrade(engine)
        engine.dispose()
        seed_s = seed(db, args.runs)
        engine = make_engine(f"sqlite:///{db}")
        flows_dir = Path(tmp) / "flows"
        flows_dir.mkdir()
        for doc in flow_docs():
            (flows_dir / f"{doc['name']}.yaml").write_text(yaml.safe_dump(doc))
        # The app validates and syncs the flow files, as `switchyard serve` does.
        app = create_app(parse_config({"flows_dir": str(flows_dir)}), engine)
        stored = engine.connect().exec_driver_sql("SELECT count(*) FROM run").scalar_one()
        rates = throughput(engine, args.rounds, args.batches, args.batch_size)
        auth = {"Authorization": f"Bearer {create_token(engine, role='viewer', name='bench')}"}
        with TestClient(app) as client:
            samples = latency(engine, client, auth, args.samples)
        engine.dispose()

    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    result = {
        "incident_latency_ms": round(p95, 1),
        "incident_latency_median_ms": round(statistics.median(samples), 1),
        "incident_latency_max_ms": round(samples[-1], 1),
        "ingest_ratio_with_correlation": round(rates["ratio"], 3),
        "events_per_s_correlation_on": round(rates["events_per_s_on"], 1),
        "events_per_s_correlation_off": round(rates["events_per_s_off"], 1),
        "stored_runs": int(stored),
        "seed_s": round(seed_s, 1),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"seeded {result['stored_runs']:,} runs in {seed_s:.1f} s (raw sqlite3, bulk)")
    print(
        f"ingest: {rates['events_per_s_on']:.0f} ev/s with correlation, "
        f"{rates['events_per_s_off']:.0f} ev/s without → ratio {rates['ratio']:.3f} (target ≥ 0.7)"
    )
    print(
        f"incident latency (last event → readable via API): median "
        f"{result['incident_latency_median_ms']} ms, p95 {result['incident_latency_ms']} ms, "
        f"max {result['incident_latency_max_ms']} ms (target ≤ 1000 ms)"
    )


if __name__ == "__main__":
    main()
