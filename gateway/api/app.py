"""The app factory: `create_app(config, engine, run_pollers=...)`.

Builds one FastAPI app for one configured gateway: the REST API under
`/api/v1` (OpenAPI at `/api/v1/openapi.json`), `/healthz`, `/readyz`,
`/metrics`, the push routes of every configured adapter that has them, and —
with `run_pollers=True` — the runtime that polls the sources, started and
stopped with the app. Every error is `application/problem+json`; bodies are
capped at `config.max_body_bytes`. `X-Forwarded-Proto`/`-For` count only from
a peer in `config.trusted_proxies`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from sqlalchemy.engine import Engine
from starlette.routing import Route
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from dashboards.web import router as dashboard_router
from gateway.api.body_limit import BodyLimitMiddleware
from gateway.api.docs import mount_docs
from gateway.api.edge import RequestEdge
from gateway.api.hot_routes import HotRoutes
from gateway.api.metrics import ApiMetrics, RequestMetricsMiddleware, SourceStatusCollector
from gateway.api.problems import install_problem_handlers
from gateway.api.routes import (
    events,
    flows,
    health,
    incidents,
    jobs,
    migrations,
    runs,
    sources,
    traces,
    webhooks,
)
from gateway.config import Config
from gateway.contract import create_adapter
from gateway.flows import load_configured_flows, sync_flows
from gateway.store.db import make_engine
from gateway.store.migrate import at_head

log = logging.getLogger("gateway.api")

API_PREFIX = "/api/v1"


class SourceSetupError(RuntimeError):
    """A configured source's adapter could not be created; names the source."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"source {source!r}: {message}")
        self.source = source


def build_adapters(config: Config, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An adapter per enabled source; `given` supplies ready ones by name (tests, demo)."""
    out: dict[str, Any] = {}
    for entry in config.sources:
        if not entry.enabled:
            continue
        if given and entry.name in given:
            out[entry.name] = given[entry.name]
            continue
        try:
            out[entry.name] = create_adapter(entry.source_config())
        except (LookupError, ValueError, TypeError) as exc:
            raise SourceSetupError(entry.name, str(config.redact(str(exc)))) from exc
    return out


def create_app(
    config: Config,
    engine: Engine | None = None,
    *,
    run_pollers: bool = False,
    adapters: Mapping[str, Any] | None = None,
) -> FastAPI:
    """The gateway's ASGI app. `adapters` overrides the registry for named sources."""
    engine = engine if engine is not None else make_engine(config.database_url)
    # Flow files are validated before anything starts (FlowError names file and key);
    # a store not yet migrated gets them on the next start (readyz says so meanwhile).
    flow_defs = load_configured_flows(config)
    if at_head(engine):
        sync_flows(engine, flow_defs)
    built = build_adapters(config, adapters)
    metrics = ApiMetrics()
    metrics.registry.register(SourceStatusCollector(config, engine))

    pushing = {name: a for name, a in built.items() if callable(getattr(a, "routes", None))}
    sink: Any = None
    if pushing:
        # Imported here: only a gateway with push routes needs the group-commit writer.
        from gateway.sink import GroupCommitSink

        sink = GroupCommitSink(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime: Any = None
        if run_pollers:
            # Imported here: a read-only API process never loads the pollers.
            from gateway.runtime import Runtime

            runtime = Runtime(config, engine, adapters=built)
            runtime.start()
        app.state.runtime = runtime
        try:
            yield
        finally:
            if runtime is not None:
                runtime.stop()
            if sink is not None:
                sink.close()
            for adapter in built.values():
                if callable(getattr(adapter, "close", None)):
                    try:
                        adapter.close()
                    except Exception:  # one adapter's close must not stop the others'
                        log.warning("closing adapter %s failed", adapter, exc_info=True)

    app = FastAPI(
        title="Switchyard",
        summary="One view over Airflow, Kubernetes, Lambda, cron and Kestra runs.",
        version="1",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # mounted below, from local assets
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.engine = engine
    app.state.metrics = metrics
    app.state.adapters = built
    app.state.sink = sink

    install_problem_handlers(app)
    # Push routes first: they are the hot path (a ping per cron run), and
    # routes are matched in order. Their plain Starlette routes are also served
    # ahead of the router (`HotRoutes`, below).
    hot: list[Route] = []
    for name, adapter in pushing.items():
        try:
            pushed = adapter.routes(sink)
            app.include_router(pushed)
        except Exception as exc:
            raise SourceSetupError(name, f"its push routes failed to mount: {exc}") from exc
        hot.extend(r for r in pushed.routes if type(r) is Route)
    app.include_router(health.router)
    api = APIRouter(prefix=API_PREFIX)
    for module in (runs, traces, jobs, sources, events, webhooks, incidents, flows, migrations):
        api.include_router(module.router)
    app.include_router(api)
    mount_docs(app, docs_url=f"{API_PREFIX}/docs", openapi_url=f"{API_PREFIX}/openapi.json")
    app.include_router(dashboard_router)

    # Added last = outermost: the cap applies before anything reads a body,
    # metrics see every response, 413s included, and the edge catches (and
    # logs once) whatever escapes them all.
    if hot:
        app.add_middleware(HotRoutes, routes=hot)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=config.max_body_bytes)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestEdge)
    if config.trusted_proxies:
        # The one place forwarded headers are believed (uvicorn's own
        # proxy_headers is off, gateway.server): from a listed proxy,
        # X-Forwarded-Proto sets the scheme (Secure cookies) and
        # X-Forwarded-For the client (the access log); from anyone else, nothing.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=config.trusted_proxies)
    return app


__all__ = ["API_PREFIX", "SourceSetupError", "build_adapters", "create_app"]
