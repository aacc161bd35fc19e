"""Cap request bodies at `Config.max_body_bytes`, counting what is streamed.

A declared `Content-Length` over the cap is refused before the app runs. A
body without one (chunked) or one that lies is counted as it is received, and
the read that crosses the cap raises `BodyTooLarge` — an HTTP 413 that the
problem handlers render — so no handler ever sees more than the cap.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.problems import problem_response


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(
            status_code=413, detail=f"request body is larger than the {limit} byte limit"
        )


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    response = problem_response(413, BodyTooLarge(limit).detail, slug="too-large")
                    await response(scope, receive, send)
                    return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as exc:
            # Raised outside a route's exception handling (e.g. by a mounted
            # app); answer here unless a response is already on its way.
            if response_started:
                raise
            response = problem_response(413, str(exc.detail), slug="too-large")
            await response(scope, receive, send)


__all__ = ["BodyLimitMiddleware", "BodyTooLarge"]
