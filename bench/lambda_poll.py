"""Lambda adapter poll cost against moto: API calls and seconds per cycle.

Builds an estate in a loopback moto server (default 500 functions, 100,000
log events in Lambda's text and JSON formats, a scheduled rule on every tenth
function), then measures:

* a **full cycle**: `discover()` + `poll(None)` (every function, every group);
* **incremental cycles**: `poll(cursor)` with a few new invocations written
  between cycles (the steady state), median and p95 over `--cycles`.

Prints figures; `--json` prints one object with `functions`,
`full_cycle_calls`, `incremental_cycle_calls`, `incremental_cycle_s` (and more).
Seconds are wall time on this machine against moto, not AWS; the call counts
are what AWS would see. With `max_requests_per_s`, the minimum time a cycle
needs under the rate limit is calls / rate.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3

from adapters.aws_lambda import LambdaAdapter
from emulators.lambda_estate import LambdaEstate, json_invocation, text_invocation
from gateway.contract import SourceConfig

REGION = "us-east-1"
OUTCOMES = ("success", "success", "success", "handled", "timeout", "success", "crash", "oom")


def _client(url: str, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )


def _rid(fn: int, n: int) -> str:
    return f"{fn:08d}-0000-4000-8000-{n:012d}"


def build_estate(url: str, functions: int, events: int, log: Any) -> int:
    iam = _client(url, "iam")
    role = iam.create_role(RoleName="bench", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", "def handler(e, c):\n    return 1\n")
    code = buf.getvalue()
    lam, logs, ev = _client(url, "lambda"), _client(url, "logs"), _client(url, "events")
    per_fn = max(1, events // functions)
    base = int(time.time() * 1000) - 50 * 60 * 1000

    def one(i: int) -> int:
        name = f"fn-{i:04d}"
        arn = lam.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role,
            Handler="app.handler",
            Code={"ZipFile": code},
            Tags={"team": f"t{i % 7}"},
        )["FunctionArn"]
        if i % 10 == 0:
            ev.put_rule(Name=f"sched-{name}", ScheduleExpression="rate(5 minutes)")
            ev.put_targets(Rule=f"sched-{name}", Targets=[{"Id": "1", "Arn": arn}])
        group, stream = f"/aws/lambda/{name}", "2026/11/26/[$LATEST]bench"
        logs.create_log_group(logGroupName=group)
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        fmt = json_invocation if i % 2 else text_invocation
        lines: list[tuple[int, str]] = []
        n = 0
        while len(lines) < per_fn:
            t0 = base + n * 4000
            lines += fmt(_rid(i, n), t0, outcome=OUTCOMES[n % len(OUTCOMES)], cold=n == 0)
            n += 1
        lines = sorted(lines[:per_fn])
        for k in range(0, len(lines), 5000):
            logs.put_log_events(
                logGroupName=group,
                logStreamName=stream,
                logEvents=[{"timestamp": ts, "message": m} for ts, m in lines[k : k + 5000]],
            )
        return len(lines)

    with ThreadPoolExecutor(4) as pool:
        written = 0
        for done, count in enumerate(pool.map(one, range(functions)), 1):
            written += count
            if done % 100 == 0:
                log(f"  built {done}/{functions} functions")
    return written


def add_invocations(url: str, functions: int, cycle: int, count: int) -> None:
    logs = _client(url, "logs")
    t0 = int(time.time() * 1000) - 5000
    for j in range(count):
        i = (cycle * count + j) % functions
        fmt = json_invocation if i % 2 else text_invocation
        logs.put_log_events(
            logGroupName=f"/aws/lambda/fn-{i:04d}",
            logStreamName="2026/11/26/[$LATEST]bench",
            logEvents=[
                {"timestamp": ts, "message": m} for ts, m in fmt(_rid(i, 900_000 + cycle), t0 + j)
            ],
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=500)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--cycles", type=int, default=5, help="incremental cycles to time")
    parser.add_argument("--new-per-cycle", type=int, default=20, help="invocations per cycle")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rate", type=float, default=1000.0, help="max_requests_per_s")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr if args.json else sys.stdout, flush=True)

    os.environ.setdefault("BENCH_AWS_KEY", "bench")
    os.environ.setdefault("BENCH_AWS_SECRET", "bench")
    moto = LambdaEstate().start()
    try:
        url = moto.url
        log(f"building {args.functions} functions, {args.events} log events in moto at {url}")
        written = build_estate(url, args.functions, args.events, log)
        adapter = LambdaAdapter(
            SourceConfig(
                name="lambda-bench",
                kind="lambda",
                options={
                    "region": REGION,
                    "endpoint_url": url,
                    "access_key_id_env": "BENCH_AWS_KEY",
                    "secret_access_key_env": "BENCH_AWS_SECRET",
                    "max_requests_per_s": args.rate,
                    "burst": args.rate,
                    "concurrency": args.concurrency,
                    "lookback_s": 3 * 3600,
                },
            )
        )
        calls = adapter.clients.calls

        started = time.perf_counter()
        jobs = adapter.discover()
        result = adapter.poll(None)
        full_s = time.perf_counter() - started
        full_calls = sum(calls.values())
        full_by_op = dict(sorted(calls.items()))
        cursor = result.cursor
        runs = len({e.key for e in result.events})
        log(
            f"full cycle: {len(jobs)} jobs, {runs} runs from {written} events, "
            f"{full_calls} calls, {full_s:.2f} s"
        )

        inc_calls: list[int] = []
        inc_s: list[float] = []
        inc_runs: list[int] = []
        for cycle in range(args.cycles):
            add_invocations(url, args.functions, cycle, args.new_per_cycle)
            before = sum(calls.values())
            started = time.perf_counter()
            result = adapter.poll(cursor)
            inc_s.append(time.perf_counter() - started)
            inc_calls.append(sum(calls.values()) - before)
            inc_runs.append(len({e.key for e in result.events}))
            cursor = result.cursor
        median_s = statistics.median(inc_s)
        p95_s = sorted(inc_s)[max(0, round(0.95 * len(inc_s)) - 1)]
        median_calls = int(statistics.median(inc_calls))
        log(
            f"incremental cycle: {median_calls} calls, median {median_s:.2f} s, p95 {p95_s:.2f} s, "
            f"{statistics.median(inc_runs):.0f} new runs each (expected {args.new_per_cycle})"
        )
        log(f"cursor size after the last cycle: {len(cursor or '')} bytes")
        for rate in (10, 25, 50):
            log(
                f"  at max_requests_per_s={rate}: full cycle >= {full_calls / rate:.0f} s, "
                f"incremental >= {median_calls / rate:.0f} s"
            )
        figures = {
            "functions": args.functions,
            "log_events": written,
            "runs_first_poll": runs,
            "full_cycle_calls": full_calls,
            "full_cycle_s": round(full_s, 3),
            "full_cycle_calls_by_operation": full_by_op,
            "incremental_cycle_calls": median_calls,
            "incremental_cycle_s": round(median_s, 3),
            "incremental_cycle_p95_s": round(p95_s, 3),
            "incremental_new_runs": inc_runs,
            "cursor_bytes": len(cursor or ""),
        }
        if args.json:
            print(json.dumps(figures))
        return 0
    finally:
        moto.stop()


if __name__ == "__main__":
    raise SystemExit(main())
