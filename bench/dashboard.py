"""Dashboard page times on a large store (SQLite and PostgreSQL).

Seeds `--n` runs (default 1,000,000) across five sources over the last 30
days — root runs, their tasks and task tries, ~4% failed, the newest still
running — plus 1,000 jobs, with the raw driver in bulk (indexes dropped during
the load and rebuilt after, then ANALYZE). Then serves the real app in
process (ASGI through Starlette's TestClient, logged in with a viewer token)
and times each dashboard page: median and p95 over `--requests` requests
after two warm-up requests. The time is measured around the in-process
request, so it is server time with no network in it.

    .venv/bin/python bench/dashboard.py               # both databases, 1M runs
    .venv/bin/python bench/dashboard.py --n 200000 --only sqlite
    .venv/bin/python bench/dashboard.py --json        # {"sqlite": {page: p95_ms}, ...}

PostgreSQL: a fresh database is created on `--pg-url` (default
postgresql://postgres@127.0.0.1:5432/postgres) and dropped afterwards.

`--keep DIR` seeds into `DIR/bench-<n>.db` and the PostgreSQL database
`switchyard_bench_keep_<n>` and keeps both; a later run with the same `--keep`
and `--n` measures them again without seeding (for comparing query changes).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine, make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.api.app import create_app
from gateway.auth import create_token
from gateway.config import Config
from gateway.contract import job_id_for, span_id_for, trace_id_for
from gateway.runtime.status import record_success
from gateway.store.db import database_url, make_engine
from gateway.store.migrate import upgrade

SOURCES = {
    "airflow-prod": "airflow",
    "k8s-prod": "kubernetes",
    "lambda-prod": "lambda",
    "cron-hosts": "cron",
    "kestra-prod": "kestra",
}
JOBS_PER_SOURCE = 200
SPAN_DAYS = 30
RUN_COLUMNS = [
    "id", "trace_id", "trace_adopted", "parent_id", "source", "key", "parent_key", "root_key",
    "kind", "job", "name", "state", "state_at", "attempt", "started_at", "ended_at",
    "observed_at", "error_kind", "error_message", "exit_code", "attributes", "url",
    "created_at", "updated_at",
]  # fmt: skip


class Standin:
    def __init__(self, name: str, kind: str) -> None:
        self.name, self.kind = name, kind


def bench_config() -> Config:
    return Config.model_validate(
        {"sources": [{"name": n, "kind": k, "interval": "30s"} for n, k in SOURCES.items()]}
    )


def generate_runs(n: int, now: datetime) -> Iterator[tuple[Any, ...]]:
    """`n` spans: trees of (root run, task, task try), spread evenly over 30 days."""
    names = list(SOURCES)
    trees = max(1, n // 3)
    step = timedelta(days=SPAN_DAYS) / trees
    start0 = now - timedelta(days=SPAN_DAYS)
    made = 0
    for t in range(trees + 1):
        source = names[t % len(names)]
        job = f"job-{(t // len(names)) % JOBS_PER_SOURCE:03d}"
        started = start0 + step * t
        newest = t >= trees - 5
        failed = t % 25 == 7
        state = "running" if newest else ("failed" if failed else "succeeded")
        ended = None if newest else started + timedelta(seconds=30 + t % 600)
        root_key = f"{job}/run-{t}"
        trace = trace_id_for(source, root_key)
        root_id = span_id_for(source, root_key)
        task_key, try_key = f"{root_key}/main", f"{root_key}/main/1"
        task_id = span_id_for(source, task_key)
        error = ("exit_code", f"exit status 1 in {job}", 1) if failed else (None, None, None)
        spans = [
            (root_id, None, root_key, None, "run", job),
            (task_id, root_id, task_key, root_key, "task", "main"),
            (span_id_for(source, try_key), task_id, try_key, task_key, "attempt", "main try 1"),
        ]
        for span_id, parent_id, key, parent_key, kind, name in spans:
            if made >= n:
                return
            made += 1
            seen = ended or started
            yield (
                span_id, trace, False, parent_id, source, key, parent_key, root_key, kind, job,
                name, state, seen, 1, started, ended, seen, *error, "{}",
                f"http://{source}.example.internal/{key}", seen, seen,
            )  # fmt: skip


def _sqlite_ts(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


@contextmanager
def without_run_indexes(engine: Engine) -> Iterator[None]:
    """Drop the run table's secondary indexes for a bulk load; rebuild them (same DDL) after."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            ddl = conn.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name='run' "
                "AND sql IS NOT NULL"
            ).all()
        else:
            ddl = conn.exec_driver_sql(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename='run' "
                "AND position('UNIQUE' in indexdef) = 0"
            ).all()
        for name, _sql in ddl:
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
    try:
        yield
    finally:
        with engine.begin() as conn:
            for _name, sql in ddl:
                conn.exec_driver_sql(sql)
            conn.exec_driver_sql("ANALYZE")


def seed(engine: Engine, n: int, now: datetime) -> None:
    rows = generate_runs(n, now)
    with without_run_indexes(engine):
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            if engine.dialect.name == "sqlite":
                marks = ",".join("?" * len(RUN_COLUMNS))
                sql = f"INSERT INTO run ({','.join(RUN_COLUMNS)}) VALUES ({marks})"
                batch: list[tuple[Any, ...]] = []
                for row in rows:
                    batch.append(tuple(_sqlite_ts(v) for v in row))
                    if len(batch) >= 20_000:
                        cur.executemany(sql, batch)
                        batch.clear()
                if batch:
                    cur.executemany(sql, batch)
            else:
                copy_sql = f"COPY run ({','.join(RUN_COLUMNS)}) FROM STDIN"
                with cur.copy(copy_sql) as copy:  # type: ignore[attr-defined]  # psycopg 3 cursor
                    for row in rows:
                        copy.write_row(row)
            raw.commit()
        finally:
            raw.close()
    job_rows = [
        {
            "id": job_id_for(source, f"job-{j:03d}"),
            "source": source,
            "key": f"job-{j:03d}",
            "kind": "job",
            "name": f"job-{j:03d}",
            "schedule": f"{j % 60} * * * *",
            "timezone": "Europe/Berlin" if j % 2 else "UTC",
            "paused": False,
            "owner": f"team-{j % 7}",
            "labels": {},
            "spec": {},
            "migration_state": "observed",
            "discovered_at": now,
            "updated_at": now,
        }
        for source in SOURCES
        for j in range(JOBS_PER_SOURCE)
    ]
    job = sa.Table("job", sa.MetaData(), autoload_with=engine)
    with engine.begin() as conn:
        conn.execute(job.insert(), job_rows)
    for name, kind in SOURCES.items():
        record_success(engine, source=name, kind=kind, interval_s=30.0, holder="bench", now=now)


def pages(client: TestClient, now: datetime) -> dict[str, str]:
    """The page URLs to time; the trace and the second runs page are found by reading pages."""
    first = client.get("/runs").text
    trace = re.search(r'href="(/traces/[0-9a-f]+)"', first)
    older = re.search(r'href="(/runs\?[^"]+)" rel="next"', first)
    if trace is None or older is None:
        raise SystemExit("bench: the runs page shows no trace link or next page; seeding failed")
    return {
        "overview": "/",
        "runs": "/runs",
        "runs_page2": older.group(1).replace("&amp;", "&"),
        "runs_filtered": "/runs?source=cron-hosts&state=failed&kind=run",
        "runs_text": "/runs?q=job-042",
        "runs_live_rows": "/runs/rows?source=k8s-prod",
        "trace": trace.group(1),
        "jobs": "/jobs",
        "timeline": "/timeline?window=6h",
        "incidents": "/incidents",
    }


def measure(engine: Engine, requests: int) -> dict[str, dict[str, float]]:
    config = bench_config()
    app = create_app(config, engine, adapters={n: Standin(n, k) for n, k in SOURCES.items()})
    token = create_token(engine, role="viewer", name="bench")
    out: dict[str, dict[str, float]] = {}
    with TestClient(app) as client:
        login = client.get("/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', login)
        assert csrf is not None
        client.post("/login", data={"csrf": csrf.group(1), "token": token, "next": "/"})
        for name, url in pages(client, datetime.now(UTC)).items():
            times: list[float] = []
            for i in range(requests + 2):
                t0 = time.perf_counter()
                response = client.get(url)
                elapsed = (time.perf_counter() - t0) * 1000
                if response.status_code != 200:
                    raise SystemExit(f"bench: {name} {url} answered {response.status_code}")
                if i >= 2:
                    times.append(elapsed)
            times.sort()
            p95 = times[min(len(times) - 1, max(0, round(0.95 * len(times)) - 1))]
            out[name] = {"median_ms": statistics.median(times), "p95_ms": p95}
    return out


def _seeded(engine: Engine) -> bool:
    """Whether a kept database already holds a finished seed (its jobs come last)."""
    with engine.connect() as conn:
        return bool(conn.exec_driver_sql("SELECT count(*) FROM job").scalar_one())


def _seed_once(engine: Engine, n: int, label: str) -> None:
    upgrade(engine)
    if _seeded(engine):
        print(f"{label}: reusing the kept database", file=sys.stderr)
        return
    t0 = time.perf_counter()
    seed(engine, n, datetime.now(UTC))
    print(f"{label}: seeded {n:,} runs in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


def run_sqlite(n: int, requests: int, keep: Path | None = None) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="switchyard-bench-") as tmp:
        path = keep / f"bench-{n}.db" if keep else Path(tmp) / "bench.db"
        engine = make_engine(f"sqlite:///{path}")
        _seed_once(engine, n, "sqlite")
        try:
            return measure(engine, requests)
        finally:
            engine.dispose()


def run_postgres(
    n: int, requests: int, admin_url: str, keep: bool = False
) -> dict[str, dict[str, float]]:
    admin = sa.create_engine(database_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"switchyard_bench_keep_{n}" if keep else f"switchyard_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        exists = conn.exec_driver_sql(
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).first()
        if not exists:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(database_url(admin_url)).set(database=name)
        engine = make_engine(url.render_as_string(hide_password=False))
        _seed_once(engine, n, "postgres")
        try:
            return measure(engine, requests)
        finally:
            engine.dispose()
    finally:
        if not keep:
            with admin.connect() as conn:
                conn.exec_driver_sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                )
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        admin.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="runs to seed (default 1M)")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per page")
    parser.add_argument("--only", choices=["sqlite", "postgres"], help="one database only")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--json", action="store_true", help="print {db: {page: p95_ms}}")
    parser.add_argument(
        "--keep", type=Path, help="seed into (or reuse) DIR/bench-<n>.db and a kept PG database"
    )
    args = parser.parse_args(argv)
    if args.n < 100 or args.requests < 1:
        parser.error("--n must be at least 100 and --requests at least 1")
    results: dict[str, dict[str, dict[str, float]]] = {}
    if args.only in (None, "sqlite"):
        results["sqlite"] = run_sqlite(args.n, args.requests, args.keep)
    if args.only in (None, "postgres"):
        results["postgres"] = run_postgres(
            args.n, args.requests, args.pg_url, keep=args.keep is not None
        )
    if args.json:
        print(
            json.dumps(
                {db: {p: round(v["p95_ms"], 2) for p, v in r.items()} for db, r in results.items()}
            )
        )
        return 0
    for db, result in results.items():
        print(f"\n{db}: {args.n:,} runs, {args.requests} requests per page")
        print(f"  {'page':<16} {'median ms':>10} {'p95 ms':>10}")
        for page, v in result.items():
            print(f"  {page:<16} {v['median_ms']:>10.1f} {v['p95_ms']:>10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
