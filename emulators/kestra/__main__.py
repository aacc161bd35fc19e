"""Run the Kestra emulator standalone.

`python -m emulators.kestra [--port N] [--token T] [--kestra-version 2]`
"""

from __future__ import annotations

import argparse
import signal
import threading

from emulators.kestra.catalogue import VERSIONS
from emulators.kestra.server import KestraEmulator


def main() -> None:
    parser = argparse.ArgumentParser(description="Kestra API emulator (loopback only)")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", default=None, help="require this Bearer token")
    parser.add_argument(
        "--kestra-version",
        choices=VERSIONS,
        default="1",
        help="the Kestra major version whose flow rules it applies (default 1)",
    )
    args = parser.parse_args()
    emulator = KestraEmulator(token=args.token, port=args.port, version=args.kestra_version)
    emulator.start()
    print(f"Kestra {emulator.version}.x emulator listening on {emulator.url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
