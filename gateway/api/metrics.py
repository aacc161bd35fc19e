"""Prometheus metrics for one app: requests by route, ingest through the API, sources.

Each app gets its own registry, so several apps in one process (tests, a
dashboard beside the API) never collide. Route labels are the route's path
template (`/api/v1/runs/{run_id}`), never the raw path, so ids cannot blow up
the label space. Source gauges are read from the store at scrape time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.config import Config
from gateway.queries import list_sources

log = logging.getLogger("gateway.api.metrics")

SOURCE_STATUSES = ("healthy", "degraded", "stale", "unknown", "disabled")


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "switchyard_http_requests_total",
            "HTTP requests handled, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "switchyard_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            registry=self.registry,
        )
        self.ingest_events = Counter(
            "switchyard_api_ingest_events_total",
            "Events accepted through the API, by source, path and outcome.",
            ["source", "path", "outcome"],
            registry=self.registry,
        )
        self.webhooks_rejected = Counter(
            "switchyard_webhooks_rejected_total",
            "Webhook deliveries refused, by source and reason.",
            ["source", "reason"],
            registry=self.registry,
        )

    def count_ingest(self, source: str, path: str, *, applied: int, duplicates: int) -> None:
        self.ingest_events.labels(source, path, "applied").inc(applied)
        self.ingest_events.labels(source, path, "duplicate").inc(duplicates)


class SourceStatusCollector(Collector):
    """Gauges per configured source, from the store at scrape time."""

    def __init__(self, config: Config, engine: Engine) -> None:
        self.config = config
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "switchyard_source_status",
            "1 for the status each configured source is in, 0 for the others.",
            labels=["source", "kind", "status"],
        )
        lag = GaugeMetricFamily(
            "switchyard_source_lag_seconds",
            "How far behind its source a poller is, as the runtime last measured.",
            labels=["source"],
        )
        failures = GaugeMetricFamily(
            "switchyard_source_consecutive_failures",
            "Polls that failed in a row.",
            labels=["source"],
        )
        cursor_age = GaugeMetricFamily(
            "switchyard_source_cursor_age_seconds",
            "Seconds since the source's cursor last moved.",
            labels=["source"],
        )
        try:
            views = list_sources(self.engine, self.config, now=datetime.now(UTC))
        except Exception:  # a scrape must not fail because the database is away
            log.warning("source status unavailable for metrics", exc_info=True)
            views = []
        for view in views:
            s = view.status
            for status in SOURCE_STATUSES:
                up.add_metric([s.name, s.kind, status], 1.0 if s.status == status else 0.0)
            if s.lag_s is not None:
                lag.add_metric([s.name], s.lag_s)
            failures.add_metric([s.name], float(s.consecutive_failures))
            if view.cursor_age_s is not None:
                cursor_age.add_metric([s.name], view.cursor_age_s)
        yield from (up, lag, failures, cursor_age)

    def describe(self) -> Iterator[Metric]:
        return iter(())


def route_template(scope: Scope) -> str:
    """The matched route's full path template, e.g. `/api/v1/runs/{run_id}`.

    A route inside an included router knows only its own part of the path
    (`/{run_id}`); the prefix is what the request path has before the part
    the route rendered.
    """
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not template:
        return "unmatched"
    template = str(template)
    path = str(scope.get("path", ""))
    try:
        rendered = template.format(**scope.get("path_params", {}))
    except (KeyError, IndexError, ValueError):
        return template
    if rendered and path.endswith(rendered):
        return path[: len(path) - len(rendered)] + template
    return template


class RequestMetricsMiddleware:
    """Counts and times every HTTP request under its route template."""

    def __init__(
        self, app: ASGIApp, *, metrics: ApiMetrics, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = self.clock()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            label = route_template(scope)
            method = str(scope.get("method", ""))
            self.metrics.requests.labels(method, label, str(status)).inc()
            self.metrics.latency.labels(method, label).observe(self.clock() - start)


__all__ = ["ApiMetrics", "RequestMetricsMiddleware", "SourceStatusCollector", "route_template"]
