"""The loopback HTTP server every emulator runs behind.

`LoopbackServer.start(handler, name=...)` binds a `ThreadingHTTPServer` on
127.0.0.1 (port 0 picks a free port, so parallel test runs never collide) and
serves it from a daemon thread; `stop()` shuts it down, closes the socket and
joins the thread (bounded), and may be called more than once. Request threads
are daemons so a hanging client cannot keep the process alive.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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
