"""`switchyard-cron`: run a cron job and tell the gateway how it went.

Standard library only, Python 3.8 syntax, so it drops onto old hosts (copy
`wrapper.py`, `crontab.py` and `control.py` side by side and run
`python3 wrapper.py`, or install the package).

    switchyard-cron [--check NAME] -- cmd args...   run one job
    switchyard-cron flush                           replay spooled reports
    switchyard-cron sync                            report crontabs, apply pause/restore

What it promises about the command:

- it runs exactly once, with `TRACEPARENT` and `SWITCHYARD_RUN_ID` exported;
- its stdout and stderr pass through as they are written;
- the wrapper exits with the command's exit code (128+N for signal N, like a
  shell; 127/126 when it cannot be executed);
- reporting never delays the command: the start report is sent from a thread
  while the command runs, and each HTTP request is bounded (2 s default).

What it promises about reports: each one is written to the spool directory
before it is sent and removed only once the gateway acknowledged it, and the
spool is replayed oldest first (on every run and by `flush`). A run is not
lost while the gateway is down; a crash between send and delete replays a
report the gateway already has, which the gateway merges idempotently.
"""

from __future__ import annotations

import argparse
import errno
import getpass
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional

try:
    from adapters.cron import control as control_mod
    from adapters.cron import crontab as crontab_mod
except ImportError:  # copied onto a host as loose files: import the siblings
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import control as control_mod  # type: ignore[no-redef]  # same module, loose copy
    import crontab as crontab_mod  # type: ignore[no-redef]  # same module, loose copy

REPORT_PATH = "/api/v1/cron/report"
JOBS_PATH = "/api/v1/cron/jobs"
INSTRUCTIONS_PATH = "/api/v1/cron/instructions"
OUTPUT_TAIL_BYTES = 10 * 1024
REPORT_TIMEOUT_S = 2.0
FINISH_FLUSH_BUDGET_S = 5.0
FLUSH_BATCH = 50
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _default_spool() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "switchyard-cron", "spool")


def _say(message: str) -> None:
    sys.stderr.write("switchyard-cron: %s\n" % message)
    sys.stderr.flush()


class Gateway(object):
    """Where reports go: base URL, bearer token and a per-request timeout."""

    def __init__(self, url: Optional[str], token: Optional[str], timeout: float) -> None:
        self.url = (url or "").rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(
        self, method: str, path: str, body: Any = None, timeout: Optional[float] = None
    ) -> Any:
        """The decoded JSON answer; raises `Undeliverable` or `Rejected`."""
        if not self.url:
            raise Undeliverable("no gateway URL (set SWITCHYARD_URL or --url)")
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        req.add_header("User-Agent", "switchyard-cron/1")
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:500].decode("utf-8", "replace")
            if exc.code in (400, 413, 422):  # this report can never be accepted
                raise Rejected("%s %s: HTTP %d %s" % (method, path, exc.code, detail)) from exc
            raise Undeliverable("%s %s: HTTP %d %s" % (method, path, exc.code, detail)) from exc
        except (OSError, ValueError) as exc:  # URLError, timeouts, resets
            raise Undeliverable("%s %s: %s" % (method, path, exc)) from exc
        return json.loads(raw.decode("utf-8")) if raw else None


class Undeliverable(Exception):
    """The gateway could not be reached or refused for now: keep it spooled."""


class Rejected(Exception):
    """The gateway says this report is malformed: keep it aside, do not retry."""


class Spool(object):
    """Reports on disk, oldest first; file names sort in write order."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._seq = 0

    def _ensure(self) -> None:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)

    def put(self, report: Dict[str, Any]) -> str:
        self._ensure()
        self._seq += 1
        name = "%020d-%08d-%04d.json" % (time.time_ns(), os.getpid(), self._seq)
        path = os.path.join(self.directory, name)
        tmp = os.path.join(self.directory, "." + name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(report, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path

    def pending(self) -> List[str]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if n.endswith(".json") and not n.startswith("."))

    def flush(self, gateway: Gateway, budget_s: float) -> int:
        """Send spooled reports in order until done, the gateway fails, or time is up.

        One process flushes at a time (an flock on the spool); another one
        finding it held leaves its reports for that flusher or the next run.
        """
        import fcntl  # POSIX only; imported here so `--help` works anywhere

        self._ensure()
        deadline = time.monotonic() + budget_s
        sent = 0
        with open(os.path.join(self.directory, ".lock"), "a") as lock:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    return 0
                raise
            while time.monotonic() < deadline:
                names = self.pending()[:FLUSH_BATCH]
                if not names:
                    break
                reports = []
                for name in list(names):
                    try:
                        with open(os.path.join(self.directory, name), encoding="utf-8") as f:
                            reports.append(json.load(f))
                    except ValueError as exc:  # not ours or damaged: set aside, go on
                        self._set_aside([name], "unreadable: %s" % exc)
                        names.remove(name)
                if not names:
                    continue
                remaining = max(0.1, min(gateway.timeout, deadline - time.monotonic()))
                try:
                    gateway.request("POST", REPORT_PATH, {"reports": reports}, timeout=remaining)
                except Rejected as exc:
                    self._set_aside(names, str(exc))
                    continue
                except Undeliverable as exc:
                    _say(
                        "gateway unreachable, %d report(s) kept in %s (%s)"
                        % (len(self.pending()), self.directory, exc)
                    )
                    break
                for name in names:
                    os.unlink(os.path.join(self.directory, name))
                sent += len(names)
        return sent

    def _set_aside(self, names: List[str], why: str) -> None:
        rejected = os.path.join(self.directory, "rejected")
        os.makedirs(rejected, exist_ok=True)
        for name in names:
            os.replace(os.path.join(self.directory, name), os.path.join(rejected, name))
        _say("gateway rejected %d report(s), moved to %s: %s" % (len(names), rejected, why))


class OutputTail(object):
    """The last `limit` bytes of everything the command wrote, stdout and stderr interleaved."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self._buf = bytearray()
        self._lock = threading.Lock()

    def add(self, chunk: bytes) -> None:
        with self._lock:
            self.total += len(chunk)
            self._buf += chunk
            if len(self._buf) > 2 * self.limit:
                del self._buf[: len(self._buf) - self.limit]

    def text(self) -> str:
        with self._lock:
            return bytes(self._buf[-self.limit :]).decode("utf-8", "replace")


def _pump(pipe: Any, sink: Any, tail: OutputTail) -> None:
    """Copy a pipe to our own stream as it arrives, keeping the tail."""
    fd = pipe.fileno()
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        tail.add(chunk)
        try:
            sink.write(chunk)
            sink.flush()
        except (OSError, ValueError):  # our own stdout closed: keep draining the child
            pass
    pipe.close()


def _traceparent() -> str:
    parent = os.environ.get("TRACEPARENT", "").strip().lower().split("-")
    if len(parent) == 4 and len(parent[1]) == 32 and parent[1] != "0" * 32:
        trace_id = parent[1]
    else:
        trace_id = secrets.token_hex(16)
    return "00-%s-%s-01" % (trace_id, secrets.token_hex(8))


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.geteuid())


def run_job(
    argv: List[str],
    *,
    check: Optional[str],
    gateway: Gateway,
    spool: Spool,
    host: str,
    deliver: Optional[Callable[[Dict[str, Any], float], None]] = None,
) -> int:
    """Run `argv` once, report start and finish, return the shell-style exit code."""
    user = _user()
    command = shlex.join(argv)
    rid = str(uuid.uuid4())
    traceparent = _traceparent()
    base = {
        "v": 1,
        "origin": "wrapper",
        "run_id": rid,
        "job": crontab_mod.job_key(host, user, command, check),
        "check": check,
        "host": host,
        "user": user,
        "command": command,
        "traceparent": traceparent,
    }

    def send(report: Dict[str, Any], budget: float) -> None:
        # Reporting must never cost the job its exit code: every failure here
        # is said on stderr and swallowed.
        try:
            spool.put(report)
        except OSError as exc:
            _say("cannot spool to %s (%s); sending directly" % (spool.directory, exc))
            try:
                gateway.request("POST", REPORT_PATH, {"reports": [report]})
            except (Undeliverable, Rejected) as exc2:
                _say("report lost: %s" % exc2)
            return
        try:
            spool.flush(gateway, budget)
        except Exception as exc:  # a broken spool must not break the job
            _say("spool flush failed: %s" % exc)

    deliver = deliver or send
    env = dict(os.environ, TRACEPARENT=traceparent, SWITCHYARD_RUN_ID=rid)
    started_at = _now()
    t0 = time.monotonic()
    tail = OutputTail(OUTPUT_TAIL_BYTES)
    start = dict(base, phase="start", started_at=started_at, sent_at=started_at)
    try:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        code = 127 if exc.errno == errno.ENOENT else 126
        _say("%s: %s" % (argv[0], exc.strerror or exc))
        ended = _now()
        deliver(start, gateway.timeout)
        deliver(
            dict(
                base,
                phase="finish",
                started_at=started_at,
                ended_at=ended,
                sent_at=ended,
                exit_code=code,
                signal=None,
                duration_s=0.0,
                output="",
                error="exec_failed",
                message=str(exc),
            ),
            max(FINISH_FLUSH_BUDGET_S, 2 * gateway.timeout),
        )
        return code

    start["pid"] = proc.pid
    reporter = threading.Thread(target=deliver, args=(start, gateway.timeout), daemon=True)
    reporter.start()
    previous = {}
    for signum in FORWARDED_SIGNALS:  # cron or an operator stopping us stops the job
        previous[signum] = signal.signal(signum, lambda n, _f: proc.send_signal(n))
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, sys.stdout.buffer, tail)),
        threading.Thread(target=_pump, args=(proc.stderr, sys.stderr.buffer, tail)),
    ]
    for p in pumps:
        p.daemon = True
        p.start()
    returncode = proc.wait()
    for p in pumps:
        p.join()
    for signum, handler in previous.items():
        signal.signal(signum, handler)
    duration = time.monotonic() - t0
    code = 128 - returncode if returncode < 0 else returncode
    ended = _now()
    finish = dict(
        base,
        phase="finish",
        pid=proc.pid,
        started_at=started_at,
        ended_at=ended,
        sent_at=ended,
        exit_code=code,
        signal=-returncode if returncode < 0 else None,
        duration_s=round(duration, 6),
        output=tail.text(),
        output_bytes=tail.total,
    )
    reporter.join()  # the start is spooled before the finish, so order holds
    deliver(finish, max(FINISH_FLUSH_BUDGET_S, 2 * gateway.timeout))
    return code


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("SWITCHYARD_URL"),
        help="gateway base URL (env SWITCHYARD_URL)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("SWITCHYARD_TOKEN"),
        help="bearer token of the cron source (env SWITCHYARD_TOKEN)",
    )
    parser.add_argument(
        "--spool",
        default=os.environ.get("SWITCHYARD_SPOOL") or _default_spool(),
        help="directory for reports the gateway has not acknowledged",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=float(os.environ.get("SWITCHYARD_TIMEOUT") or REPORT_TIMEOUT_S),
        help="seconds per HTTP request to the gateway (env SWITCHYARD_TIMEOUT, default 2)",
    )
    parser.add_argument(
        "--host",
        default=os.environ.get("SWITCHYARD_HOST") or socket.gethostname(),
        help="host name to report (default: this host's name)",
    )


def _run_main(argv: List[str]) -> int:
    if "--" not in argv:
        _say("usage: switchyard-cron [--check NAME] [options] -- command [args...]")
        return 2
    sep = argv.index("--")
    parser = argparse.ArgumentParser(prog="switchyard-cron")
    _common(parser)
    parser.add_argument("--check", help="job name to report under (no spaces)")
    opts = parser.parse_args(argv[:sep])
    command = argv[sep + 1 :]
    if not command:
        _say("no command after --")
        return 2
    if opts.check is not None and (not opts.check or any(c.isspace() for c in opts.check)):
        _say("--check must be a non-empty name without spaces")
        return 2
    return run_job(
        command,
        check=opts.check,
        gateway=Gateway(opts.url, opts.token, opts.timeout),
        spool=Spool(opts.spool),
        host=opts.host,
    )


def _flush_main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="switchyard-cron flush")
    _common(parser)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds to keep trying")
    opts = parser.parse_args(argv)
    spool = Spool(opts.spool)
    sent = spool.flush(Gateway(opts.url, opts.token, opts.timeout), opts.budget)
    left = len(spool.pending())
    print("sent %d report(s), %d left in %s" % (sent, left, spool.directory))
    return 0 if left == 0 else 1


def _sync_main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="switchyard-cron sync")
    _common(parser)
    control_mod.add_sync_arguments(parser)
    opts = parser.parse_args(argv)
    gateway = Gateway(opts.url, opts.token, opts.timeout)
    spool = Spool(opts.spool)
    try:
        summary = control_mod.sync(opts, gateway, spool)
    except (control_mod.SyncError, crontab_mod.CrontabError, Undeliverable, Rejected) as exc:
        _say("sync failed: %s" % exc)
        return 1
    print(json.dumps(summary, sort_keys=True))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    if args and args[0] == "flush":
        return _flush_main(args[1:])
    if args and args[0] == "sync":
        return _sync_main(args[1:])
    return _run_main(args)


if __name__ == "__main__":
    sys.exit(main())
