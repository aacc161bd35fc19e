"""What every request meets first: a URL holding NUL is refused, an unexpected error answered once.

`RequestEdge` is the outermost middleware of the app.

- **NUL in the URL.** No route can use a path or query parameter holding
  NUL, and PostgreSQL refuses it as a bound parameter: left alone, a `%00`
  in `?source=` or in `/runs/<id>` reached the database and came back as a 500.
  Such a request is a 422 problem naming the parameter (or `path`).
- **Unexpected errors.** Starlette's `ServerErrorMiddleware` calls an
  installed 500 handler and then re-raises, so the server logs the same
  exception again: every 500 was two tracebacks. Caught here instead, an
  exception is logged once (with its traceback) and answered with the generic
  500 problem; it never reaches `ServerErrorMiddleware`. The logged
  traceback goes through the app's `Config.redact` and the path has its ping
  secret masked (`gateway.api.access_log`): an exception's text may quote a
  secret, and a ping URL is one.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.access_log import mask_ping_path
from gateway.api.problems import FieldError, problem_response

log = logging.getLogger("gateway.api")


def nul_in_url(scope: Scope) -> str | None:
    """The URL part that holds a NUL (`path` or the query parameter's name), or None."""
    if "\x00" in scope.get("path", ""):
        return "path"
    query: bytes = scope.get("query_string", b"")
    if b"%00" not in query and b"\x00" not in query:
        return None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return name.replace("\x00", "\\x00") or "(query)"
    return None


def _redactor(scope: Scope) -> Callable[[str], str]:
    app = scope.get("app")  # Starlette puts itself here before its middleware runs
    config = getattr(getattr(app, "state", None), "config", None)
    redact: Callable[[str], str] | None = getattr(config, "redact", None)
    return redact or (lambda text: text)


class RequestEdge:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        where = nul_in_url(scope)
        if where is not None:
            message = "must not hold a NUL character"
            response = problem_response(
                422,
                f"{where}: {message}",
                slug="validation",
                errors=[FieldError(field=where, message=message)],
            )
            await response(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log.error(
                "unhandled error on %s %s\n%s",
                scope.get("method"),
                mask_ping_path(scope.get("path", "")),
                _redactor(scope)("".join(traceback.format_exception(exc))).rstrip(),
            )
            if started:
                return  # the answer is on its way; the server closes the connection
            response = problem_response(
                500, "an internal error occurred; it has been logged", slug="internal"
            )
            await response(scope, receive, send)


__all__ = ["RequestEdge", "nul_in_url"]
