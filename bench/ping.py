"""Healthchecks-style pings per second through the real gateway, against a do-nothing floor.

    .venv/bin/python bench/ping.py [--seconds 10] [--clients 64] [--json]

Starts the gateway (`create_app` with one cron source, SQLite WAL in a temp
directory unless `--database-url`) under uvicorn on 127.0.0.1 in a child
process, then drives it from this process with keep-alive HTTP/1.1 clients:

1. `GET /ping/<uuid>` — one event each, answered only once committed (the
   cron routes submit to `GroupCommitSink`, which commits concurrent pings
   in one transaction);
2. `GET /bench/noop` on the same app and middleware — the floor.

Prints pings/s, floor/s, their ratio and the ping p95 latency; `--json` prints
`pings_per_s`, `floor_per_s`, `ratio_to_floor`, `p95_ms` (and a few more).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


SERVE_ENV = "SWITCHYARD_BENCH_PING_SERVE"  # "<database url> <control file>" for the workers


def bench_app() -> Any:
    """The gateway app with one cron source plus the no-op floor route (a uvicorn factory)."""
    from fastapi.responses import PlainTextResponse

    from gateway.api.app import create_app
    from gateway.config import Config, SourceEntry
    from gateway.store.db import make_engine

    database_url, control_file = os.environ[SERVE_ENV].split(" ", 1)
    # Every uuid the bench pings is created by its first ping, as before pings
    # needed `auto_provision`; the bucket is sized so the bench never meets it.
    options = {
        "token": "bench",
        "control_file": control_file,
        "auto_provision": True,
        "provision_burst": 1_000_000,
    }
    config = Config(sources=[SourceEntry(name="cron-bench", kind="cron", options=options)])
    app = create_app(config, make_engine(database_url))

    async def noop() -> PlainTextResponse:
        return PlainTextResponse("OK")

    async def groups() -> PlainTextResponse:
        return PlainTextResponse(str(app.state.sink.groups_committed))

    app.add_api_route("/bench/noop", noop, methods=["GET"])
    app.add_api_route("/bench/groups", groups, methods=["GET"])
    return app


def serve(database_url: str, port_file: str, control_file: str, workers: int) -> None:
    """Child process: the gateway as `switchyard serve` runs it, on an ephemeral port."""
    sys.path.insert(0, str(ROOT))
    from gateway.server import serve as serve_gateway
    from gateway.store.db import make_engine
    from gateway.store.migrate import upgrade

    upgrade(make_engine(database_url))
    os.environ[SERVE_ENV] = f"{database_url} {control_file}"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]

    def announce() -> None:
        # Ready once the floor answers (every worker has the same app).
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as probe:
                    probe.sendall(b"GET /bench/noop HTTP/1.1\r\nHost: bench\r\n\r\n")
                    if probe.recv(64).startswith(b"HTTP/1.1 200"):
                        break
            except OSError:
                time.sleep(0.05)
        Path(port_file + ".tmp").write_text(str(port))
        os.replace(port_file + ".tmp", port_file)

    threading.Thread(target=announce, daemon=True).start()
    app: Any = "bench.ping:bench_app" if workers > 1 else bench_app()
    serve_gateway(app, workers=workers, sock=sock, log_level="warning", access_log=False)


async def _client(
    port: int, paths: list[str], deadline: float, latencies: list[float], errors: list[str]
) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = 0
    i = 0
    try:
        while time.perf_counter() < deadline:
            path = paths[i % len(paths)]
            i += 1
            t0 = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            if not head.startswith(b"HTTP/1.1 200") or body != b"OK":
                errors.append(head.split(b"\r\n", 1)[0].decode() + " " + body[:80].decode())
            done += 1
    finally:
        writer.close()
    return done


async def drive(port: int, paths: list[str], clients: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    errors: list[str] = []
    start = time.perf_counter()
    deadline = start + seconds
    counts = await asyncio.gather(
        *(
            _client(port, paths[c::clients] or paths, deadline, latencies, errors)
            for c in range(clients)
        )
    )
    elapsed = time.perf_counter() - start
    if errors:
        raise SystemExit(f"{len(errors)} failed requests, e.g. {errors[0]}")
    latencies.sort()
    return {
        "per_s": sum(counts) / elapsed,
        "requests": float(sum(counts)),
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": latencies[int(len(latencies) * 0.95)] * 1000,
    }


def _groups_committed(port: int, workers: int) -> int:
    """The sink's commit count (only meaningful with one worker: -1 otherwise)."""
    if workers != 1:
        return -1
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"GET /bench/groups HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := conn.recv(4096):
            reply += chunk
    return int(reply.split(b"\r\n\r\n", 1)[1])


def _server_cpu_s(pid: int) -> float:
    """User+system CPU seconds of `pid` and its descendants (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def _loop_name() -> str:
    """The event loop uvicorn's "auto" picks, which the server and this client use."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--checks", type=int, default=500, help="distinct ping uuids")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--serve", nargs=3, metavar=("URL", "PORT_FILE", "CONTROL"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve, workers=args.workers)
        return

    with tempfile.TemporaryDirectory(prefix="switchyard-bench-ping-") as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        port_file = f"{tmp}/port"
        server = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                url,
                port_file,
                f"{tmp}/control.json",
                "--workers",
                str(args.workers),
            ],
            cwd=str(ROOT),
        )
        try:
            deadline = time.monotonic() + 60
            while not os.path.exists(port_file):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the gateway did not start")
                time.sleep(0.05)
            port = int(Path(port_file).read_text())
            pings = [f"/ping/{uuid.uuid4()}" for _ in range(args.checks)]
            # Warm up: auto-provision every check's job once, and the no-op route.
            asyncio.run(drive(port, pings, min(args.clients, 16), 1.0))
            asyncio.run(drive(port, ["/bench/noop"], args.clients, 1.0))
            cpu0 = _server_cpu_s(server.pid)
            groups0 = _groups_committed(port, args.workers)
            ping = asyncio.run(drive(port, pings, args.clients, args.seconds))
            cpu1 = _server_cpu_s(server.pid)
            groups = _groups_committed(port, args.workers) - groups0
            floor = asyncio.run(drive(port, ["/bench/noop"], args.clients, args.seconds))
            cpu2 = _server_cpu_s(server.pid)
        finally:
            server.terminate()
            server.wait(30)

    result = {
        "pings_per_s": round(ping["per_s"], 1),
        "floor_per_s": round(floor["per_s"], 1),
        "ratio_to_floor": round(ping["per_s"] / floor["per_s"], 3),
        "p95_ms": round(ping["p95_ms"], 2),
        "p50_ms": round(ping["p50_ms"], 2),
        "floor_p95_ms": round(floor["p95_ms"], 2),
        # Server CPU per request (all its processes): steadier than rates on a busy machine.
        "cpu_us_per_ping": round((cpu1 - cpu0) / ping["requests"] * 1e6, 1),
        "cpu_us_per_floor": round((cpu2 - cpu1) / floor["requests"] * 1e6, 1),
        # Pings per committed transaction (one worker's sink; None with several).
        "pings_per_group": round(ping["requests"] / groups, 1) if groups > 0 else None,
        "clients": args.clients,
        "seconds": args.seconds,
        "pings": int(ping["requests"]),
        "database": "postgresql" if url.startswith("postgres") else "sqlite",
        "workers": args.workers,
        "loop": _loop_name(),
        "cpus": os.cpu_count(),
        "load_1m": round(os.getloadavg()[0], 2),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"pings:  {result['pings_per_s']:>9.1f}/s  p50 {result['p50_ms']:.2f} ms  "
        f"p95 {result['p95_ms']:.2f} ms  ({result['pings']} pings, {args.clients} clients, "
        f"{result['database']})"
    )
    print(
        f"config: {result['database']}, {args.workers} worker(s), {result['loop']} loop, "
        f"{args.clients} keep-alive clients, {args.checks} checks, {args.seconds:g}s per phase, "
        f"{result['cpus']} cpus, load {result['load_1m']}"
    )
    print(f"floor:  {result['floor_per_s']:>9.1f}/s  p95 {result['floor_p95_ms']:.2f} ms")
    print(
        f"server cpu: {result['cpu_us_per_ping']:.0f} us/ping, "
        f"{result['cpu_us_per_floor']:.0f} us/floor request, "
        f"{result['pings_per_group']} pings per commit"
    )
    print(f"ratio:  {result['ratio_to_floor']:.3f} of the floor")


if __name__ == "__main__":
    main()
