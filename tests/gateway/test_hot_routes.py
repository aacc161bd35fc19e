"""Plain push routes are served ahead of FastAPI's router, and still measured."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gateway.api.app import create_app
from gateway.api.hot_routes import HotRoutes
from gateway.config import Config, SourceEntry


def _client(engine: Engine) -> TestClient:
    config = Config(
        sources=[
            SourceEntry(
                name="cron-hot", kind="cron", options={"token": "t", "auto_provision": True}
            )
        ]
    )
    return TestClient(create_app(config, engine))


def test_a_ping_is_served_ahead_of_the_router_and_labelled_by_its_route(
    sqlite_engine: Engine,
) -> None:
    check = str(uuid.uuid4())
    with _client(sqlite_engine) as client:
        answer = client.get(f"/ping/{check}/start")
        assert (answer.status_code, answer.text) == (200, "OK")
        assert answer.headers["Ping-Body-Limit"]
        metrics = client.get("/metrics").text
    assert 'route="/ping/{rest}"' in metrics
    assert 'status="200"' in metrics


def test_what_the_hot_route_does_not_match_goes_on_to_the_app(sqlite_engine: Engine) -> None:
    with _client(sqlite_engine) as client:
        wrong_method = client.put(f"/ping/{uuid.uuid4()}")
        assert wrong_method.status_code == 405
        assert wrong_method.headers["content-type"].startswith("application/problem+json")
        assert client.get("/healthz").status_code == 200
        assert client.get("/ping").status_code == 404  # no path after /ping/


def test_a_hot_route_must_be_an_async_endpoint() -> None:
    def blocking(request: Request) -> PlainTextResponse:
        return PlainTextResponse("OK")

    with pytest.raises(TypeError, match="/ping/x"):
        HotRoutes(PlainTextResponse("app"), routes=[Route("/ping/x", blocking)])
