"""The loopback HTTP server every emulator runs behind.

`LoopbackServer.start(handler, name=...)` binds a `ThreadingHTTPServer` on
127.0.0.1 (port 0 picks a free port, so parallel test runs never collide) and
serves it from a daemon thread; `stop()` shuts it down, closes the socket and
joins the thread (bounded), and may be called more than once. Request threads
are daemons so a hanging client cannot keep the process alive.

`LoopbackEmulator` is the lifecycle an emulator gets from it: `start()`,
`stop()`, `with`, and `url` (a `RuntimeError` naming the emulator when it is
not running).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar, Self


class LoopbackServer:
    """A started `ThreadingHTTPServer` on 127.0.0.1 and the thread serving it."""

    def __init__(self, httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self.httpd = httpd
        self._thread = thread
        self._stopped = False

    @classmethod
    def start(
        cls,
        handler: type[BaseHTTPRequestHandler],
        *,
        name: str,
        port: int = 0,
        poll_interval: float = 0.5,
    ) -> LoopbackServer:
        httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        httpd.daemon_threads = True
        thread = threading.Thread(
            target=httpd.serve_forever, args=(poll_interval,), name=name, daemon=True
        )
        thread.start()
        return cls(httpd, thread)

    @property
    def port(self) -> int:
        return self.httpd.server_port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


class LoopbackEmulator(ABC):
    """An emulator served by a `LoopbackServer`; subclasses say what answers requests."""

    # What the thread is called and what a "not started" error names.
    server_name: ClassVar[str]
    # How often `serve_forever` looks for a shutdown request (bounds how long `stop` waits).
    poll_interval: ClassVar[float] = 0.5
    port: int = 0
    _http: LoopbackServer | None = None

    @abstractmethod
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        """The request handler class, bound to this emulator."""

    def start(self) -> Self:
        self._http = LoopbackServer.start(
            self._handler(), name=self.server_name, port=self.port, poll_interval=self.poll_interval
        )
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.stop()
            self._http = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._http is None:
            raise RuntimeError(f"{self.server_name} is not started")
        return self._http.url
