"""`python -m gateway.runtime --config switchyard.yaml`: pollers without the API.

Runs one replica's background work (pollers, leases, housekeeping) until
SIGINT or SIGTERM, then stops cleanly and releases its leases. The database
must already be at the current schema (`switchyard db upgrade`), unless
`--migrate` is given. Exit codes: 0 after a clean stop, 2 on a configuration
or database error (the message names the problem; secrets are redacted).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from gateway.config import ConfigError, load_config
from gateway.runtime.replica import Runtime
from gateway.server import freeze_startup_objects
from gateway.store.db import make_engine
from gateway.store.migrate import at_head, upgrade


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.runtime", description=__doc__)
    parser.add_argument("--config", required=True, help="path to switchyard.yaml")
    parser.add_argument("--replica-id", default=None, help="lease holder name (default host:pid)")
    parser.add_argument("--migrate", action="store_true", help="upgrade the schema first")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    engine = make_engine(config.database_url)
    try:
        if args.migrate:
            upgrade(engine)
        elif not at_head(engine):
            print(
                "error: the database schema is not current; run `switchyard db upgrade` "
                "or pass --migrate",
                file=sys.stderr,
            )
            return 2
    except Exception as exc:
        print(f"error: database: {config.redact(str(exc))}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    runtime = Runtime(config, engine, replica_id=args.replica_id)
    runtime.start()
    freeze_startup_objects()
    print(f"runtime {runtime.replica_id} running", file=sys.stderr, flush=True)
    while not stop.wait(1.0):
        pass
    runtime.stop()
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
