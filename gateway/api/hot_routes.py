"""Serve a few plain routes ahead of FastAPI's router: the per-run push endpoints.

A Healthchecks ping arrives once per cron run, often thousands a minute, and
needs none of FastAPI's machinery (no dependencies, no request model, no
OpenAPI entry). Push adapters declare such endpoints as plain Starlette
`Route`s; `create_app` mounts them twice: in the router as usual, and here,
inside the metrics and body-limit middleware but before the exception
middleware and the router. A full match is handled here; anything else (a
wrong method, another path) goes on to the app, whose router answers it as
it would have. A locked or unreachable database is answered here as the app
would (503 with `Retry-After`); other unexpected errors still reach
`gateway.api.edge.RequestEdge`, the outermost middleware, which answers and
logs them.

A matched route's endpoint is called directly with a `Request`, and its
response sent, rather than through `Route.handle`: Starlette's per-request
wrapper only looks up exception handlers, which this side of the router has
none of, and it cost about a tenth of the event loop's time per ping.
Endpoints must therefore be plain `async def endpoint(request) -> Response`.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

from starlette.requests import Request
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.api.problems import unavailable_response
from gateway.store.db import database_unavailable


class HotRoutes:
    def __init__(self, app: ASGIApp, *, routes: Sequence[Route]) -> None:
        self.app = app
        self.routes = list(routes)
        for route in self.routes:
            if not inspect.iscoroutinefunction(route.endpoint):
                raise TypeError(f"hot route {route.path}: the endpoint must be an async function")
        # The literal start of each path ("/ping/"): most requests skip the regexes.
        self.prefixes = tuple({r.path.split("{", 1)[0] for r in self.routes})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope["path"]).startswith(self.prefixes):
            for route in self.routes:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child)
                    scope["route"] = route  # what the metrics label the request with
                    request = Request(scope, receive, send)
                    try:
                        response = await route.endpoint(request)
                    except Exception as exc:
                        if not database_unavailable(exc):
                            raise
                        response = unavailable_response(request, exc)
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


__all__ = ["HotRoutes"]
