"""A tiny scheduler loop that runs real shell commands through `switchyard-cron`.

The demo needs cron runs without root or a cron daemon, so this loop stands in
for crond: every `interval_s` it starts each `CronLine`'s command through the
real `switchyard-cron` wrapper (a subprocess, reporting to the gateway over
HTTP with the cron source's token and spooling to `<data dir>/cron-spool`).
The first round waits until the gateway answers `/healthz` (bounded), so the
first reports are not all spooled.

`stop()` is prompt and leaves nothing behind: it wakes the loop, sends SIGTERM
to every wrapper still running (the wrapper forwards it to its command), waits
briefly, then SIGKILLs what remains and reaps it.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CronLine:
    check: str  # the job name the wrapper reports under
    command: str  # a shell command line, as in a crontab


def wrapper_argv() -> list[str]:
    """The installed `switchyard-cron` beside this Python, else the module itself."""
    beside = Path(sys.executable).with_name("switchyard-cron")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("switchyard-cron")
    return [found] if found else [sys.executable, "-m", "adapters.cron.wrapper"]


class CronLoop:
    def __init__(
        self,
        lines: list[CronLine],
        *,
        gateway_url: str,
        token: str,
        workdir: Path,
        interval_s: float = 60.0,
        ready_timeout_s: float = 30.0,
    ) -> None:
        self.lines = lines
        self.gateway_url = gateway_url.rstrip("/")
        self.token = token
        self.workdir = workdir
        self.interval_s = interval_s
        self.ready_timeout_s = ready_timeout_s
        self.rounds = 0
        self._stop = threading.Event()
        self._procs: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="demo-cron-loop", daemon=True)

    def start(self) -> CronLoop:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def _env(self) -> dict[str, str]:
        return dict(
            os.environ,
            SWITCHYARD_URL=self.gateway_url,
            SWITCHYARD_TOKEN=self.token,
            SWITCHYARD_SPOOL=str(self.workdir / "spool"),
        )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.gateway_url}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            self._stop.wait(0.2)

    def _round(self) -> None:
        started = []
        for line in self.lines:
            argv = [*wrapper_argv(), "--check", line.check, "--", "sh", "-c", line.command]
            with self._lock:
                if self._stop.is_set():
                    return
                proc = subprocess.Popen(
                    argv,
                    cwd=self.workdir,
                    env=self._env(),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                self._procs.append(proc)
            started.append(proc)
        for proc in started:
            while proc.poll() is None and not self._stop.is_set():
                self._stop.wait(0.1)
        with self._lock:
            self._procs = [p for p in self._procs if p.poll() is None]
        self.rounds += 1

    def _run(self) -> None:
        self._wait_ready()
        while not self._stop.is_set():
            begun = time.monotonic()
            try:
                self._round()
            except OSError:
                log.warning("the demo cron loop could not start switchyard-cron", exc_info=True)
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - begun)))

    def stop(self, grace_s: float = 3.0) -> None:
        with self._lock:
            self._stop.set()
            procs = list(self._procs)
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + grace_s
        for proc in procs:
            try:
                proc.wait(timeout=max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._thread.join(timeout=grace_s + 5)


__all__ = ["CronLine", "CronLoop", "wrapper_argv"]
