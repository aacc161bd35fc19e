"""Alerts: one notification when an incident opens, one when it resolves, through Apprise.

`deliver_alerts(engine, alerts, now=…)` runs as a housekeeping task (one
replica holds the housekeeping lease) but is also correct when several run it
at once. For each notification it:

1. **Claims** it with one atomic statement: `INSERT INTO alert_delivery
   (incident_id, kind) … ON CONFLICT DO NOTHING RETURNING id`, committed
   before anything is sent. The unique key (incident_id, kind) means exactly
   one deliverer gets the row back; the others send nothing.
2. **Sends** it through Apprise to the targets its route names.
3. **Records** the outcome (`sent`, or `failed` with the error). A failed
   send is retried by whoever wins a compare-and-set on (id, status,
   attempts), up to `MAX_ATTEMPTS`; a claim left `sending` by a crashed
   replica is taken over the same way after `STALE_CLAIM`.

What is sent:

- **opened**: once per incident, after it has been open `alerts.hold`
  seconds (so a cause arriving a little after its effects lands in the same
  incident first). Effects join their cause's incident, so they raise no
  notification of their own while it is open; an incident merged into
  another before its notification went out is never announced.
- **resolved**: once, for an incident whose `opened` notification was sent.

Routing (`alerts.routes` in `switchyard.yaml`): every route whose `match`
fits the incident (its flows, its jobs as `source:job` or `job`, its
sources) contributes its `notify` URLs; with no match, `alerts.default`.
Notify URLs are Apprise URLs (`json://host/path`, `slack://…`, `mailto://…`).

Secrets (`Config.redact`, passed as `redact`): the title and body sent, the
error stored on a failed delivery and the warning logged about it are
redacted, so neither a run's error text quoting a secret nor a failing
target's message quoting its URL (`${SLACK_WEBHOOK}`) leaks through alerts.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import apprise
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from gateway.config import AlertRoute, AlertsConfig
from gateway.links import dialect_insert, table

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
STALE_CLAIM = timedelta(minutes=10)
RESOLVED_LOOKBACK = timedelta(days=7)
BATCH = 100

Notifier = Callable[[Sequence[str], str, str], None]


class DeliveryError(RuntimeError):
    """Apprise could not deliver to every target."""


def apprise_notify(urls: Sequence[str], title: str, body: str) -> None:
    """Send through Apprise; raises `DeliveryError` if any target failed."""
    sender = apprise.Apprise()
    for url in urls:
        if not sender.add(url):
            raise DeliveryError("a notify URL is not one Apprise understands")
    if not sender.notify(title=title, body=body):
        raise DeliveryError("at least one target refused or was unreachable")


def default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def route_targets(alerts: AlertsConfig, incident: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(notify URLs, names of the routes that chose them) for an incident's scope."""
    urls: list[str] = []
    names: list[str] = []
    for i, route in enumerate(alerts.routes):
        if _matches(route, incident):
            names.append(f"routes[{i}]")
            urls.extend(u for u in route.notify if u not in urls)
    if not urls and alerts.default:
        names.append("default")
        urls.extend(alerts.default)
    return urls, names


def _matches(route: AlertRoute, incident: dict[str, Any]) -> bool:
    m = route.match
    if m.flow is not None and m.flow not in incident["flows"]:
        return False
    if m.source is not None and m.source not in incident["sources"]:
        return False
    return m.job is None or m.job in incident["jobs"] or m.job in incident["job_names"]


def _scope(conn: Connection, incident_id: int, flows: Sequence[str]) -> dict[str, Any]:
    member, run = table("incident_member"), table("run")
    rows = conn.execute(
        sa.select(run.c.source, run.c.job)
        .join(member, member.c.run_id == run.c.id)
        .where(member.c.incident_id == incident_id)
    ).all()
    return {
        "flows": set(flows or []),
        "sources": {s for s, _ in rows},
        "jobs": {f"{s}:{j}" for s, j in rows if j},
        "job_names": {j for _, j in rows if j},
    }


def _message(conn: Connection, incident: Any, kind: str) -> tuple[str, str]:
    run = table("run")
    member = table("incident_member")
    root = None
    if incident.root_run_id:
        root = conn.execute(sa.select(run).where(run.c.id == incident.root_run_id)).first()
    counts: dict[str, int] = {
        role: int(n)
        for role, n in conn.execute(
            sa.select(member.c.role, sa.func.count())
            .where(member.c.incident_id == incident.id)
            .group_by(member.c.role)
        )
    }
    verb = "opened" if kind == "opened" else "resolved"
    title = f"[Switchyard] incident #{incident.id} {verb}: {incident.title}"
    lines = [f"Incident #{incident.id} {verb}."]
    if root is not None:
        lines.append(f"Root cause: {root.source}:{root.job or root.key} {root.state}")
        if root.error_kind:
            lines.append(
                f"Error: {root.error_kind}"
                + (f": {root.error_message}" if root.error_message else "")
            )
    lines.append(
        f"Runs: {counts.get('member', 0) + counts.get('root_cause', 0)} failed, "
        f"{counts.get('impact', 0)} impacted"
    )
    if incident.flows:
        lines.append(f"Flows: {', '.join(incident.flows)}")
    lines.append(f"Opened at: {incident.opened_at}")
    if kind == "resolved" and incident.resolved_at:
        lines.append(f"Resolved at: {incident.resolved_at}")
    return title, "\n".join(lines)


def _claim(engine: Engine, incident_id: int, kind: str, holder: str, now: datetime) -> int | None:
    """The delivery row's id if this caller won it (an atomic insert, or a retry CAS)."""
    delivery = table("alert_delivery")
    with engine.begin() as conn:
        stmt = (
            dialect_insert(conn, delivery)
            .values(
                incident_id=incident_id,
                kind=kind,
                status="sending",
                attempts=1,
                claimed_by=holder,
                claimed_at=now,
                targets=[],
            )
            .on_conflict_do_nothing()
            .returning(delivery.c.id)
        )
        won = conn.execute(stmt).scalar()
        if won is not None:
            return int(won)
        row = conn.execute(
            sa.select(delivery).where(
                delivery.c.incident_id == incident_id, delivery.c.kind == kind
            )
        ).first()
        if row is None or row.attempts >= MAX_ATTEMPTS:
            return None
        claimed_at = (
            row.claimed_at
            if row.claimed_at is None or row.claimed_at.tzinfo
            else row.claimed_at.replace(tzinfo=UTC)
        )
        retry = row.status == "failed" or (
            row.status == "sending" and claimed_at is not None and claimed_at < now - STALE_CLAIM
        )
        if not retry:
            return None
        taken = conn.execute(
            delivery.update()
            .where(
                delivery.c.id == row.id,
                delivery.c.status == row.status,
                delivery.c.attempts == row.attempts,
            )
            .values(status="sending", attempts=row.attempts + 1, claimed_by=holder, claimed_at=now)
        )
        return int(row.id) if taken.rowcount == 1 else None


def _due(conn: Connection, alerts: AlertsConfig, now: datetime) -> list[tuple[Any, str]]:
    incident, delivery = table("incident"), table("alert_delivery")

    def lacking(kind: str) -> Any:
        done = sa.select(delivery.c.id).where(
            delivery.c.incident_id == incident.c.id,
            delivery.c.kind == kind,
            delivery.c.status.in_(["sent", "skipped"]) | (delivery.c.attempts >= MAX_ATTEMPTS),
        )
        return ~sa.exists(done)

    hold = now - timedelta(seconds=alerts.hold)
    recent = now - RESOLVED_LOOKBACK
    opened = conn.execute(
        sa.select(incident)
        .where(
            sa.or_(
                incident.c.status == "open",
                sa.and_(incident.c.status == "resolved", incident.c.resolved_at >= recent),
            ),
            incident.c.detected_at <= hold,
            lacking("opened"),
        )
        .order_by(incident.c.id)
        .limit(BATCH)
    ).all()
    announced = sa.select(delivery.c.id).where(
        delivery.c.incident_id == incident.c.id,
        delivery.c.kind == "opened",
        delivery.c.status == "sent",
    )
    resolved = conn.execute(
        sa.select(incident)
        .where(
            incident.c.status == "resolved",
            incident.c.updated_at >= recent,
            sa.exists(announced),
            lacking("resolved"),
        )
        .order_by(incident.c.id)
        .limit(BATCH)
    ).all()
    return [(row, "opened") for row in opened] + [(row, "resolved") for row in resolved]


def _as_written(text: str) -> str:
    return text


def deliver_alerts(
    engine: Engine,
    alerts: AlertsConfig,
    *,
    now: datetime | None = None,
    holder: str | None = None,
    notify: Notifier = apprise_notify,
    redact: Callable[[str], str] = _as_written,
) -> int:
    """Send due notifications; returns how many this caller sent."""
    now = now or datetime.now(UTC)
    holder = holder or default_holder()
    delivery = table("alert_delivery")
    with engine.connect() as conn:
        due = _due(conn, alerts, now)
    sent = 0
    for incident, kind in due:
        delivery_id = _claim(engine, incident.id, kind, holder, now)
        if delivery_id is None:
            continue
        with engine.connect() as conn:
            urls, routes = route_targets(alerts, _scope(conn, incident.id, incident.flows))
            title, body = _message(conn, incident, kind)
        outcome: dict[str, Any] = {"targets": routes}
        if not urls:
            outcome.update(status="skipped", error="no route and no default")
        else:
            try:
                notify(urls, redact(title), redact(body))
                outcome.update(status="sent", sent_at=datetime.now(UTC), error=None)
                sent += 1
            except Exception as exc:  # a target's failure is recorded and retried, never fatal
                error = redact(f"{type(exc).__name__}: {exc}")
                outcome.update(status="failed", error=error[:2000])
                log.warning("alert for incident %s (%s) failed: %s", incident.id, kind, error)
        with engine.begin() as conn:
            conn.execute(delivery.update().where(delivery.c.id == delivery_id).values(**outcome))
    return sent


__all__ = [
    "MAX_ATTEMPTS",
    "DeliveryError",
    "Notifier",
    "apprise_notify",
    "deliver_alerts",
    "route_targets",
]
