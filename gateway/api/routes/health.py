"""Liveness, readiness and metrics: unauthenticated, outside `/api/v1`.

`/healthz` says the process answers. `/readyz` says it can serve: the
database answers and its schema is at the migration head (503 otherwise, with
the reason). `/metrics` is Prometheus text.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from gateway.api.deps import EngineDep, MetricsDep
from gateway.api.problems import ProblemError
from gateway.api.schemas import HealthPublic
from gateway.store.migrate import at_head

log = logging.getLogger("gateway.api")

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthPublic)
def healthz() -> HealthPublic:
    return HealthPublic(status="ok")


@router.get("/readyz", response_model=HealthPublic, responses={503: {"description": "not ready"}})
def readyz(engine: EngineDep) -> HealthPublic:
    try:
        ready = at_head(engine)
    except SQLAlchemyError as exc:
        log.warning("readiness: database unreachable: %s", exc.__class__.__name__)
        raise ProblemError(503, "database unreachable", slug="not-ready") from None
    if not ready:
        raise ProblemError(
            503,
            "database schema is not at the migration head (run: switchyard db upgrade)",
            slug="not-ready",
        )
    return HealthPublic(status="ready")


@router.get("/metrics", response_class=Response, include_in_schema=False)
def metrics(request: Request, api_metrics: MetricsDep) -> Response:
    return Response(generate_latest(api_metrics.registry), media_type=CONTENT_TYPE_LATEST)
