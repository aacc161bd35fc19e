"""Serving the gateway under uvicorn: in this process, or as N worker processes.

`switchyard serve` and `bench/ping.py` both go through `serve`, so the bench
measures what a deployment runs (uvloop and httptools when installed).

With `workers > 1`, uvicorn starts N processes that accept from one listening
socket; each builds its own app through an import-string factory: its own
engine, its own `GroupCommitSink` and its own pollers. That is safe for
everything kept in the database: SQLite serialises the writers of all
processes with `BEGIN IMMEDIATE` and its busy timeout, PostgreSQL with the
ingest's advisory locks, and poller leases already let one replica of a source
poll at a time. What is not shared is process memory; the one thing kept there
is the cron source's pairing of a `/start` ping with a later finish ping that
carries no `rid` (`adapters.cron.pings.PingBook`). Two workers may each get one
of the pair, and the finish then stands as a run of its own: `rid_less_pairing_warning`
names such sources, and `switchyard serve` prints it.
"""

from __future__ import annotations

import gc
import os
import socket
from typing import Any

import uvicorn

from gateway.api.access_log import access_log_config
from gateway.config import Config, load_config

SERVE_CONFIG_ENV = "SWITCHYARD_SERVE_CONFIG"  # the config path, for the workers


def app_from_environment() -> Any:
    """The app of one worker process; uvicorn calls this factory in each worker."""
    from gateway.api.app import create_app
    from gateway.store.db import make_engine

    config = load_config(os.environ.get(SERVE_CONFIG_ENV) or None)
    app = create_app(config, make_engine(config.database_url), run_pollers=True)
    freeze_startup_objects()
    return app


def freeze_startup_objects() -> None:
    """Move everything alive after start-up out of the collector's reach (`gc.freeze`).

    Modules, the app and its tables live for the whole process; a full
    collection that walks them all paused the gateway 200-400 ms every few
    seconds under load (bench/k8s_watch.py); frozen, it walks only new objects.
    """
    gc.collect()
    gc.freeze()


def rid_less_pairing_warning(config: Config, workers: int) -> str | None:
    """What N workers change for cron pings, or None when nothing does."""
    cron = [s.name for s in config.sources if s.enabled and s.kind == "cron"]
    if workers <= 1 or not cron:
        return None
    return (
        f"{workers} workers: cron source(s) {', '.join(cron)} pair a /start ping with a "
        "later ping without ?rid= only inside one worker process; send ?rid=<uuid> with "
        "both pings (or run --workers 1) to pair them across workers"
    )


def serve(
    app: Any,
    *,
    workers: int = 1,
    host: str = "127.0.0.1",
    port: int = 8080,
    sock: socket.socket | None = None,
    log_level: str = "info",
    access_log: bool = True,
) -> None:
    """Serve `app` (an app object, or with workers > 1 a factory's import string).

    `sock`, when given, is an already bound socket (port 0 in benches and tests).
    """
    if workers > 1 and not isinstance(app, str):
        raise ValueError("workers > 1 needs the app as an import string of a factory")
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        workers=workers,
        factory=isinstance(app, str),
        log_level=log_level,
        access_log=access_log,
        log_config=access_log_config(),
        # Off: uvicorn would trust X-Forwarded-* from FORWARDED_ALLOW_IPS
        # (127.0.0.1 by default). The app applies `trusted_proxies` instead
        # (gateway.api.app), one rule whatever serves it.
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    sockets = [sock] if sock is not None else [config.bind_socket()]
    if workers > 1:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=sockets).run()
    else:
        if not isinstance(app, str):
            freeze_startup_objects()
        server.run(sockets=sockets)


__all__ = [
    "SERVE_CONFIG_ENV",
    "app_from_environment",
    "freeze_startup_objects",
    "rid_less_pairing_warning",
    "serve",
]
