"""Ingest throughput against the raw driver, on SQLite and PostgreSQL.

    .venv/bin/python bench/ingest.py [--n 200000] [--batch 1000] [--json]

Pushes N synthetic events (DAG runs with 3-5 tasks and their tries, mixed
states, ~2% delivered late across batches, ~3% duplicated) through
`gateway.ingest.apply_batch` in poller-sized batches, then writes the same
final rows (run, run_event, run_ref) with the raw driver (`sqlite3` /
`psycopg` `executemany`, one transaction per batch) into a second empty store.

Both sides start from the same `RunEvent` objects (generated lazily, outside
the timed region). The raw side's timed work is what any writer must do: turn
each event into its `run_event` row (canonical JSON and digest) and insert the
rows; it is handed the final run and ref rows for free (read back from the
ingest store, untimed), so it does no merging, no dedupe and no reads.
`ratio_to_raw` = raw time / ingest time: 1.0 means ingest is as fast as the raw
driver, 0.33 means three times slower.

PostgreSQL: fresh databases are created on `--pg` (default
postgresql://postgres@127.0.0.1:5432/postgres) and dropped afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.types.json import Jsonb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.contract import ErrorInfo, Ref, RunEvent, RunKind, State, span_id_for
from gateway.ingest import apply_batch
from gateway.store.db import make_engine
from gateway.store.migrate import upgrade

SOURCE = "airflow-bench"
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def run_block(rng: random.Random, r: int) -> list[RunEvent]:
    """The events of one DAG run: root, 3-5 tasks, 1-2 tries each."""
    root = f"dag-{r % 50}/run-{r}"
    base = T0 + timedelta(minutes=r)
    tick = iter(range(10_000))

    def at() -> datetime:
        return base + timedelta(seconds=next(tick))

    refs = []
    if rng.random() < 0.1:
        refs = [
            Ref(
                namespace="w3c.traceparent",
                value=f"00-{uuid.UUID(int=r + 1).hex}-00f067aa0ba902b7-01",
            )
        ]
    common: dict[str, Any] = {"source": SOURCE, "job": f"dag-{r % 50}", "nominal_time": base}
    out = [
        RunEvent(key=root, state=State.queued, observed_at=at(), refs=refs, **common),
        RunEvent(key=root, state=State.running, observed_at=at(), started_at=base, **common),
    ]
    failed = False
    for t in range(rng.randint(3, 5)):
        task = f"{root}/task-{t}"
        tries = 2 if rng.random() < 0.2 else 1
        for k in range(1, tries + 1):
            last = k == tries
            ok = last and rng.random() > 0.1
            failed |= last and not ok
            end_state = State.succeeded if ok else (State.failed if last else State.up_for_retry)
            error = None if ok else ErrorInfo(kind="exit_code", exit_code=1, message="boom")
            attempt = f"{task}/try-{k}"
            ti = Ref(namespace="airflow.ti", value=f"{root}/task-{t}/-1/{k}")
            started = at()
            shared: dict[str, Any] = {"source": SOURCE, "root_key": root, "attempt": k}
            out += [
                RunEvent(
                    key=task,
                    kind=RunKind.task,
                    parent_key=root,
                    state=State.running,
                    observed_at=started,
                    started_at=started,
                    name=f"task-{t}",
                    **shared,
                ),
                RunEvent(
                    key=attempt,
                    kind=RunKind.attempt,
                    parent_key=task,
                    state=State.running,
                    observed_at=at(),
                    started_at=started,
                    refs=[ti],
                    attributes={"host": f"worker-{rng.randint(1, 8)}"},
                    **shared,
                ),
                RunEvent(
                    key=attempt,
                    kind=RunKind.attempt,
                    parent_key=task,
                    state=end_state,
                    observed_at=(ended := at()),
                    ended_at=ended,
                    error=error,
                    refs=[ti],
                    attributes={"exit": 0 if ok else 1},
                    **shared,
                ),
                RunEvent(
                    key=task,
                    kind=RunKind.task,
                    parent_key=root,
                    state=end_state,
                    observed_at=at(),
                    ended_at=ended,
                    error=error,
                    **shared,
                ),
            ]
    end = at()
    out.append(
        RunEvent(
            key=root,
            state=State.failed if failed else State.succeeded,
            observed_at=end,
            ended_at=end,
            **common,
        )
    )
    return out


def synthetic_events(n: int, seed: int = 7) -> Iterator[RunEvent]:
    """Exactly n events, lazily: some swapped, some held back across batches, some twice."""
    rng = random.Random(seed)
    late: list[tuple[int, RunEvent]] = []
    produced, r = 0, 0
    while True:
        block = run_block(rng, r)
        for i in range(len(block) - 1):
            if rng.random() < 0.05:
                block[i], block[i + 1] = block[i + 1], block[i]
        due = [e for when, e in late if when <= r]
        late = [(when, e) for when, e in late if when > r]
        for event in due + block:
            if rng.random() < 0.02 and event in block:
                late.append((r + rng.randint(20, 80), event))  # delivered a few polls later
                continue
            for _ in range(2 if rng.random() < 0.03 else 1):
                yield event
                produced += 1
                if produced >= n:
                    return
        r += 1


def batches(n: int, size: int) -> Iterator[list[RunEvent]]:
    events = synthetic_events(n)
    while chunk := list(islice(events, size)):
        yield chunk


def bench_ingest(url: str, n: int, size: int) -> float:
    engine = make_engine(url)
    upgrade(engine)
    elapsed = 0.0
    for i, batch in enumerate(batches(n, size)):
        start = time.perf_counter()
        apply_batch(engine, SOURCE, batch, cursor=str(i))
        elapsed += time.perf_counter() - start
    engine.dispose()
    return elapsed


def event_row(event: RunEvent, received: datetime) -> tuple[Any, ...]:
    payload = event.model_dump(mode="json")
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return (
        digest,
        span_id_for(event.source, event.key),
        event.source,
        event.state.value,
        event.attempt,
        event.observed_at,
        received,
        text,
    )


RUN_COLS = (
    "id",
    "trace_id",
    "trace_adopted",
    "parent_id",
    "source",
    "key",
    "parent_key",
    "root_key",
    "kind",
    "job",
    "name",
    "state",
    "state_at",
    "attempt",
    "started_at",
    "ended_at",
    "observed_at",
    "nominal_time",
    "error_kind",
    "error_message",
    "exit_code",
    "attributes",
    "url",
    "created_at",
    "updated_at",
)
EVENT_COLS = (
    "digest",
    "run_id",
    "source",
    "state",
    "attempt",
    "observed_at",
    "received_at",
    "payload",
)


def _insert_sql(table: str, cols: tuple[str, ...], mark: str) -> str:
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))})"


def bench_raw_sqlite(ingested: str, target: str, n: int, size: int) -> float:
    """Raw sqlite3: the ingest store's final rows into an empty store, same schema."""
    seen: set[str] = set()
    elapsed = 0.0
    conn = sqlite3.connect(target, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    ev_sql = _insert_sql("run_event", EVENT_COLS, "?")
    for batch in batches(n, size):
        start = time.perf_counter()
        now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ")
        rows = []
        for event in batch:
            row = event_row(event, datetime.now(UTC))
            if row[0] in seen:
                continue
            seen.add(row[0])
            rows.append(
                (*row[:5], row[5].astimezone(UTC).replace(tzinfo=None).isoformat(" "), now, row[7])
            )
        conn.execute("BEGIN")
        conn.executemany(ev_sql, rows)
        conn.execute("COMMIT")
        elapsed += time.perf_counter() - start
    source = sqlite3.connect(ingested)
    for table, cols in (("run", RUN_COLS), ("run_ref", ("namespace", "value", "run_id"))):
        cursor = source.execute(f"SELECT {', '.join(cols)} FROM {table}")
        sql = _insert_sql(table, cols, "?")
        while rows := cursor.fetchmany(size):
            start = time.perf_counter()
            conn.execute("BEGIN")
            conn.executemany(sql, rows)
            conn.execute("COMMIT")
            elapsed += time.perf_counter() - start
    source.close()
    conn.close()
    return elapsed


def bench_raw_postgres(ingested: str, target: str, n: int, size: int) -> float:
    """Raw psycopg: the same rows, `executemany`, one transaction per batch."""
    seen: set[str] = set()
    elapsed = 0.0
    with psycopg.connect(target) as conn, psycopg.connect(ingested) as source:
        ev_sql = _insert_sql("run_event", EVENT_COLS, "%s")
        for batch in batches(n, size):
            start = time.perf_counter()
            now = datetime.now(UTC)
            rows = []
            for event in batch:
                row = event_row(event, now)
                if row[0] in seen:
                    continue
                seen.add(row[0])
                rows.append((*row[:7], row[7]))
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(ev_sql, rows)
            elapsed += time.perf_counter() - start
        for table, cols in (("run", RUN_COLS), ("run_ref", ("namespace", "value", "run_id"))):
            sql = _insert_sql(table, cols, "%s")
            with source.cursor(name=f"read_{table}") as read:
                read.execute(f"SELECT {', '.join(cols)} FROM {table}")
                while rows := read.fetchmany(size):
                    fixed = [tuple(Jsonb(v) if isinstance(v, dict) else v for v in r) for r in rows]
                    start = time.perf_counter()
                    with conn.transaction(), conn.cursor() as cur:
                        cur.executemany(sql, fixed)
                    elapsed += time.perf_counter() - start
    return elapsed


@contextmanager
def pg_database(admin: str) -> Iterator[str]:
    name = f"switchyard_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    result: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ingest_db, raw_db = f"{tmp}/ingest.db", f"{tmp}/raw.db"
        t_ingest = bench_ingest(f"sqlite:///{ingest_db}", args.n, args.batch)
        raw_engine = make_engine(f"sqlite:///{raw_db}")
        upgrade(raw_engine)
        raw_engine.dispose()
        t_raw = bench_raw_sqlite(ingest_db, raw_db, args.n, args.batch)
    result["sqlite_events_per_s"] = args.n / t_ingest
    result["sqlite_raw_events_per_s"] = args.n / t_raw
    result["sqlite_ratio_to_raw"] = t_raw / t_ingest

    with pg_database(args.pg) as ingest_url, pg_database(args.pg) as raw_url:
        t_ingest = bench_ingest(ingest_url, args.n, args.batch)
        raw_engine = make_engine(raw_url)
        upgrade(raw_engine)
        raw_engine.dispose()
        plain = lambda u: u.replace("postgresql+psycopg://", "postgresql://")  # noqa: E731
        t_raw = bench_raw_postgres(plain(ingest_url), plain(raw_url), args.n, args.batch)
    result["postgres_events_per_s"] = args.n / t_ingest
    result["postgres_raw_events_per_s"] = args.n / t_raw
    result["postgres_ratio_to_raw"] = t_raw / t_ingest
    result["peak_rss_mb"] = peak_rss_mb()

    if args.json:
        print(json.dumps({k: round(v, 3) for k, v in result.items()}))
        return 0
    print(f"events: {args.n}, batch: {args.batch}")
    for db in ("sqlite", "postgres"):
        print(
            f"{db:9} ingest {result[f'{db}_events_per_s']:>9.0f} ev/s   raw driver "
            f"{result[f'{db}_raw_events_per_s']:>9.0f} ev/s   ratio raw/ingest time "
            f"{result[f'{db}_ratio_to_raw']:.2f} (≥ 0.33 = within 3x)"
        )
    print(f"peak RSS {result['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
