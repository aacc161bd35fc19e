"""An unexpected error is a generic 500 problem, logged once with its traceback.

Starlette's `ServerErrorMiddleware` calls an installed 500 handler and then
re-raises, so uvicorn logged the same exception a second time ("Exception in
ASGI application"): two tracebacks per error. Here a test source's push
routes raise, under a real uvicorn whose log records reach the root logger,
and each failing request must leave exactly one record with a traceback.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import APIRouter
from sqlalchemy.engine import Engine
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.app import create_app
from gateway.config import parse_config
from gateway.contract import EventSink
from tests.gateway.test_api_webhooks import HookAdapter


class Exploding(HookAdapter):
    """A push source whose routes fail the way a bug would: an exception nobody expects."""

    def routes(self, sink: EventSink) -> APIRouter:
        router = APIRouter()

        @router.post("/api/v1/explode")
        async def explode() -> None:
            raise RuntimeError("explode-route-bug")

        async def hot(request: Request) -> Response:
            raise RuntimeError("explode-hot-route-bug")

        router.routes.append(Route("/explode-hot/{rest:path}", hot, methods=["GET"]))
        return router


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.dbs import migrated_engine

    engine: Engine = migrated_engine(f"sqlite:///{tmp_path_factory.mktemp('boom') / 's.db'}")
    config = parse_config({"sources": [{"name": "boom", "kind": "cron"}]})
    app = create_app(config, engine, adapters={"boom": Exploding("boom")})
    # log_config=None: uvicorn's records propagate to the root logger, where caplog sees them.
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)
    engine.dispose()


def _tracebacks(caplog: pytest.LogCaptureFixture, marker: str) -> list[logging.LogRecord]:
    """Records carrying the traceback of the error marked `marker`, in either form.

    uvicorn's own records attach it as `exc_info`; the request edge writes it,
    redacted, into its message (a formatter would print `exc_info` as raised).
    """
    return [
        rec
        for rec in caplog.records
        if (rec.exc_info and marker in str(rec.exc_info[1]))
        or ("Traceback (most recent call last)" in rec.getMessage() and marker in rec.getMessage())
    ]


@pytest.mark.parametrize(
    ("method", "path", "marker"),
    [
        ("POST", "/api/v1/explode", "explode-route-bug"),
        ("GET", "/explode-hot/x", "explode-hot-route-bug"),
    ],
    ids=["router", "hot route"],
)
def test_an_unexpected_error_is_a_generic_500_logged_once(
    base_url: str, method: str, path: str, marker: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        r = httpx.request(method, base_url + path, timeout=30)
        # uvicorn logs after the response is sent: give its record time to land.
        deadline = time.monotonic() + 5
        while not _tracebacks(caplog, marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/problem+json"
    assert marker not in r.text, "internals reached the client"
    tracebacks = _tracebacks(caplog, marker)
    assert len(tracebacks) == 1, [f"{rec.name}: {rec.getMessage()}" for rec in tracebacks]
    assert tracebacks[0].name == "gateway.api"
