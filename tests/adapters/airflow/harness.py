"""A real Airflow 3 for the tests: installed once per machine, started per session.

`ensure_venv()` installs `apache-airflow==AIRFLOW_VERSION` into
`~/.cache/switchyard/airflow-venv-<version>` when it is missing (a few minutes on
a fresh machine, then reused: a marker file is written only after a complete
install). `RealAirflow.start()` runs `airflow standalone` on ephemeral loopback
ports with the settings `shared/reference/airflow.md` says a test needs
(execution API URL, low DAG refresh interval, DAGs unpaused at creation, SQLite,
LocalExecutor), waits for health with a bounded deadline, and raises
`AirflowDidNotStart` carrying the tail of Airflow's own output when it cannot.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

AIRFLOW_VERSION = os.environ.get("SWITCHYARD_TEST_AIRFLOW_VERSION", "3.3.2")
CACHE_DIR = Path(os.environ.get("SWITCHYARD_CACHE_DIR", Path.home() / ".cache" / "switchyard"))
DAGS_DIR = Path(__file__).resolve().parent / "dags"
INSTALL_TIMEOUT_S = 1500.0
START_TIMEOUT_S = 300.0
_MARKER = ".switchyard-complete"


class AirflowDidNotStart(RuntimeError):
    """Airflow could not be installed or did not become healthy in time."""


def venv_path(version: str = AIRFLOW_VERSION) -> Path:
    return CACHE_DIR / f"airflow-venv-{version}"


def ensure_venv(version: str = AIRFLOW_VERSION) -> Path:
    """The Airflow virtualenv, installing it when no complete one exists."""
    venv = venv_path(version)
    if (venv / _MARKER).exists():
        return venv
    if venv.exists():
        shutil.rmtree(venv)  # a half-finished install from an interrupted run
    venv.parent.mkdir(parents=True, exist_ok=True)
    python = shutil.which("python3.11") or sys.executable
    steps = [
        [python, "-m", "venv", str(venv)],
        [str(venv / "bin" / "pip"), "install", "-q", "--upgrade", "pip"],
        [
            str(venv / "bin" / "pip"),
            "install",
            "-q",
            f"apache-airflow=={version}",
            "apache-airflow-providers-openlineage",
        ],
    ]
    deadline = time.monotonic() + INSTALL_TIMEOUT_S
    for step in steps:
        remaining = max(1.0, deadline - time.monotonic())
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=remaining)
        except subprocess.TimeoutExpired as exc:
            raise AirflowDidNotStart(f"installing Airflow {version} timed out: {step}") from exc
        if done.returncode != 0:
            raise AirflowDidNotStart(
                f"installing Airflow {version} failed at {step[1:3]}:\n{done.stderr[-4000:]}"
            )
    (venv / _MARKER).write_text(version)
    return venv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RealAirflow:
    """One `airflow standalone` process tree and how to reach its API."""

    home: Path
    venv: Path = field(default_factory=ensure_venv)
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    username: str = "admin"
    password: str = ""
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.home / "standalone.log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.username}:admin",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home}/airflow.db",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__OPENLINEAGE__DISABLED": "True",
                "PATH": f"{self.venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
                "NO_PROXY": "*",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self, timeout_s: float = START_TIMEOUT_S) -> RealAirflow:
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [str(self.venv / "bin" / "airflow"), "standalone"],
            cwd=self.home,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # one process group: stop() ends the whole tree
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AirflowDidNotStart(
                    f"airflow standalone exited with {self.process.returncode}:\n{self.tail()}"
                )
            if self._healthy() and self._read_password():
                return self
            time.sleep(2)
        self.stop()
        raise AirflowDidNotStart(
            f"Airflow {AIRFLOW_VERSION} not healthy on {self.url} after {timeout_s:.0f}s:\n"
            f"{self.tail()}"
        )

    def _healthy(self) -> bool:
        try:
            r = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5)
        except httpx.HTTPError:
            return False
        if r.status_code != 200:
            return False
        body = r.json()
        return all(
            (body.get(part) or {}).get("status") == "healthy"
            for part in ("metadatabase", "scheduler", "dag_processor")
        )

    def _read_password(self) -> bool:
        path = self.home / "simple_auth_manager_passwords.json.generated"
        if not path.exists():
            return False
        self.password = json.loads(path.read_text()).get(self.username, "")
        return bool(self.password)

    def token(self) -> str:
        r = httpx.post(
            f"{self.url}/auth/token",
            json={"username": self.username, "password": self.password},
            timeout=10,
        )
        r.raise_for_status()
        return str(r.json()["access_token"])

    def tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no output)"

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        pgid = os.getpgid(self.process.pid)
        os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)
        # Scheduler, workers and log servers share the group; none may outlive the test.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        self.process.wait(timeout=10)


class TcpProxy:
    """A loopback TCP forwarder that can be cut and restored on the same port.

    Stands between the adapter and Airflow so a test can make Airflow
    unreachable without stopping it.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()
        return self

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def stop(self) -> None:
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)  # wakes the accept() thread
            self._server.close()
            self._server = None
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.close()
            self._conns = []
