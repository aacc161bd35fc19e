"""`POST /api/v1/sources/{name}/webhook`: signed pushes from a source.

In order: the source must be configured with `options.webhook_secret` and an
adapter that implements `webhook_events`; the body is capped (413, by the
middleware); `X-Switchyard-Signature` must match (401) and be within ±300 s
of now (401); the content type must be JSON (`application/json` or
`*/*+json`, else 415); the body must be JSON the adapter can read (422, with
the adapter's message). The delivery's digest is stored in `webhook_delivery` in
the same transaction as its events (marked as pushed, `gateway.merge.as_pushed`),
so a delivery is accepted exactly once
(a second one is 409) and a crash leaves neither. Deliveries older than the
replay window are pruned as new ones arrive: past the window the timestamp
check refuses them anyway.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from gateway.api.deps import ConfigDep, EngineDep, MetricsDep
from gateway.api.problems import ProblemError
from gateway.api.schemas import IngestReportPublic
from gateway.contract import RunEvent, read_json
from gateway.ingest import IngestReport, ingest_events
from gateway.merge import as_pushed
from gateway.store.db import session_scope
from gateway.store.models import WebhookDelivery
from gateway.webhook_signing import HEADER, TOLERANCE_S, SignatureError, verify

log = logging.getLogger("gateway.api.webhooks")

router = APIRouter(tags=["webhooks"])


class Replay(Exception):
    pass


def _accept(engine: Engine, source: str, digest: str, events: list[RunEvent]) -> IngestReport:
    """Record the delivery and apply its events in one transaction; Replay if seen."""
    now = datetime.now(UTC)
    try:
        with session_scope(engine) as session:
            session.execute(
                delete(WebhookDelivery).where(
                    col(WebhookDelivery.received_at) < now - timedelta(seconds=2 * TOLERANCE_S)
                )
            )
            # The digest goes in first: a concurrent replay blocks on it and
            # then fails, before either has merged anything.
            session.add(WebhookDelivery(digest=digest, source=source, received_at=now))
            session.flush()
            return ingest_events(session, source, as_pushed(events, now), now=now)
    except IntegrityError as exc:
        raise Replay(digest) from exc


@router.post(
    "/sources/{name}/webhook",
    response_model=IngestReportPublic,
    responses={
        401: {"description": "missing or bad signature, or timestamp outside ±300 s"},
        404: {"description": "no such source, or it takes no webhooks"},
        409: {"description": "this delivery was already accepted (replay)"},
        413: {"description": "body over the cap"},
        415: {"description": "the content type is not JSON"},
        422: {"description": "not JSON, or a payload the adapter cannot read"},
    },
)
async def receive_webhook(
    name: str, request: Request, config: ConfigDep, engine: EngineDep, metrics: MetricsDep
) -> IngestReportPublic:
    entry = next((s for s in config.sources if s.name == name and s.enabled), None)
    adapter = request.app.state.adapters.get(name) if entry else None
    secret = entry.options.get("webhook_secret") if entry else None
    if entry is None or adapter is None:
        raise ProblemError(404, f"no enabled source named {name!r}", slug="not-found")
    if not callable(getattr(adapter, "webhook_events", None)) or not secret:
        raise ProblemError(
            404,
            f"source {name!r} does not take webhooks "
            "(its adapter needs webhook_events and the source options.webhook_secret)",
            slug="not-found",
        )
    body = await request.body()
    try:
        digest = verify(str(secret), body, request.headers.get(HEADER), now=time.time())
    except SignatureError as exc:
        metrics.webhooks_rejected.labels(name, "signature").inc()
        raise ProblemError(
            401, str(exc), slug="bad-signature", headers={"WWW-Authenticate": "Signature"}
        ) from None
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        metrics.webhooks_rejected.labels(name, "content-type").inc()
        raise ProblemError(
            415,
            f"content type {media_type or '(none)'!r} is not JSON; send application/json",
            slug="unsupported-media-type",
        )
    try:
        payload = read_json(body)
    except ValueError as exc:
        metrics.webhooks_rejected.labels(name, "json").inc()
        raise ProblemError(422, f"body is not JSON: {exc}", slug="validation") from None
    try:
        events: list[RunEvent] = list(adapter.webhook_events(payload))
    # ValueError is the contract (pydantic's ValidationError is one too); a
    # KeyError or TypeError is an adapter that trusted the payload's shape —
    # still the payload's fault as far as the sender can tell, so a 422.
    except (ValueError, LookupError, TypeError) as exc:
        metrics.webhooks_rejected.labels(name, "payload").inc()
        raise ProblemError(
            422, f"source {name!r} cannot read this payload: {exc}", slug="validation"
        ) from None
    strangers = sorted({e.source for e in events if e.source != name})
    if strangers:
        raise ProblemError(
            422,
            f"source {name!r} produced events for other sources: {', '.join(strangers)}",
            slug="validation",
        )
    try:
        report = await run_in_threadpool(_accept, engine, name, digest, events)
    except Replay:
        metrics.webhooks_rejected.labels(name, "replay").inc()
        raise ProblemError(
            409, "this delivery was already accepted (replay)", slug="replay"
        ) from None
    metrics.count_ingest(name, "webhook", applied=report.applied, duplicates=report.duplicates)
    return IngestReportPublic(
        source=name,
        events=report.events,
        applied=report.applied,
        duplicates=report.duplicates,
        runs_created=report.runs_created,
        runs_updated=report.runs_updated,
        links_created=report.links_created,
        run_ids=list(report.run_ids),
    )
