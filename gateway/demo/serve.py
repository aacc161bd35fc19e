"""Run the demo: estate up, database migrated, token made, gateway served, all stopped.

`run_demo` serves the gateway in the calling thread with uvicorn, which turns
Ctrl-C (SIGINT) or SIGTERM into a graceful shutdown: the app's lifespan stops
the pollers and closes the adapters, then the estate stops its threads, its
`switchyard-cron` subprocesses and every emulator. Nothing it started outlives
it. The banner is printed once the socket is bound, so `--port 0` shows the
port actually chosen.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import uvicorn

from gateway.api.app import create_app
from gateway.auth import Role, create_token
from gateway.demo.estate import SOURCES, DemoEstate
from gateway.store.db import make_engine
from gateway.store.migrate import upgrade

EMULATED = (
    ("Airflow", "runs recorded from a real Airflow 3.3.2, replayed by emulators/airflow"),
    (
        "Kubernetes",
        "emulators/kube_apiserver: a CronJob, and a KubernetesPodOperator pod OOMKilled",
    ),
    ("AWS Lambda", "moto server: functions, EventBridge schedules, START/END/REPORT log lines"),
    ("Kestra", "emulators/kestra: a native flow, and a CronJob translated and deployed to it"),
    ("cron", "real shell commands through switchyard-cron on this machine, every minute"),
)


def banner(url: str, token: str, data_dir: Path) -> str:
    lines = [
        "",
        "  Switchyard demo",
        f"  dashboard   {url}/",
        f"  API         {url}/api/v1/runs   (Authorization: Bearer <token>)",
        f"  token       {token}   (operator; paste it at the dashboard login)",
        f"  data        {data_dir}/   (switchyard demo --reset starts clean)",
        "  emulated:",
        *(f"    {name:<11} {what}" for name, what in EMULATED),
        f"  sources     {', '.join(SOURCES.values())}",
        "  Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def run_demo(
    *,
    data_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8080,
    reset: bool = False,
    tick_s: float = 60.0,
    echo: Callable[[str], None] = print,
) -> None:
    # kestrapy's models warn on import and when a flow's labels are a map (Kestra
    # accepts both forms); on the demo's console they would bury the banner.
    warnings.filterwarnings(
        "ignore", message=r".*shadows an attribute in parent", category=UserWarning
    )
    warnings.filterwarnings("ignore", message=r"Pydantic serializer warnings", category=UserWarning)
    if reset and data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    estate = DemoEstate(data_dir, tick_s=tick_s)
    try:
        config = estate.start()
        engine = make_engine(config.database_url)
        upgrade(engine)
        token = create_token(engine, role=Role.operator, name="demo dashboard")
        app = create_app(config, engine, run_pollers=True)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                log_level=os.environ.get("SWITCHYARD_LOG_LEVEL", "warning").lower(),
                proxy_headers=False,
            )
        )

        def announce() -> None:
            while not server.started:
                if server.should_exit:
                    return
                time.sleep(0.05)
            bound = server.servers[0].sockets[0].getsockname()[1]
            url = f"http://{host}:{bound}"
            estate.start_live(url, engine)
            echo(banner(url, token, data_dir))

        threading.Thread(target=announce, name="demo-banner", daemon=True).start()
        server.run()
    finally:
        estate.stop()


__all__ = ["EMULATED", "banner", "run_demo"]
