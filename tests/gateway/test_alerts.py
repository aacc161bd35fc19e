"""Incident notifications through Apprise's `json://` target to a real local HTTP receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from gateway.alerts import deliver_alerts
from gateway.config import AlertsConfig, parse_config
from gateway.contract import ErrorInfo, State
from gateway.ingest import apply_batch
from gateway.runtime.housekeeping import default_tasks
from gateway.store.models import AlertDelivery
from tests.gateway.test_correlation import INVENTORY, ev, flows


class Receiver:
    """A webhook receiver on 127.0.0.1:0 that records each JSON body it gets."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.fail = False
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with lock:
                    if not receiver.fail:
                        receiver.bodies.append(body)
                self.send_response(500 if receiver.fail else 200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def titles(self) -> list[str]:
        return [b["title"] for b in self.bodies]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _timeout(engine: Engine, request_id: str, minute: float) -> None:
    apply_batch(
        engine,
        "lambda-prod",
        [
            ev(
                "lambda-prod",
                request_id,
                State.failed,
                job="inventory-sync",
                start=minute,
                end=minute + 1,
                seen=minute + 1,
                error=ErrorInfo(kind="timeout", message="Task timed out after 60.00 seconds"),
            )
        ],
    )


def _cron(engine: Engine, key: str, state: State, minute: float) -> None:
    error = ErrorInfo(kind="exit_code", exit_code=1) if state is State.failed else None
    apply_batch(
        engine,
        "etl-01",
        [
            ev(
                "etl-01",
                key,
                state,
                job="sync_inventory",
                start=minute,
                end=minute + 1.5,
                seen=minute + 1.5,
                error=error,
            )
        ],
    )


def test_one_notification_per_incident_effects_suppressed_and_one_resolve(
    engine: Engine, receiver: Receiver
) -> None:
    flows(engine, INVENTORY)
    alerts = AlertsConfig(routes=[{"match": {"flow": "inventory"}, "notify": [receiver.url]}])
    _cron(engine, "sync/r1", State.running, 0)
    _timeout(engine, "req-1", 0.1)
    assert deliver_alerts(engine, alerts) == 1
    assert receiver.titles() == [
        "[Switchyard] incident #1 opened: lambda-prod:inventory-sync timeout"
    ]
    assert "Root cause: lambda-prod:inventory-sync failed" in receiver.bodies[0]["message"]

    # The effect: the cron run that invoked the Lambda fails. It joins the open
    # incident, so nothing new is sent, however often delivery runs.
    _cron(engine, "sync/r1", State.failed, 0)
    for _ in range(3):
        assert deliver_alerts(engine, alerts) == 0
    assert len(receiver.bodies) == 1

    _cron(engine, "sync/r2", State.succeeded, 60)
    recovered = ev(
        "lambda-prod", "req-2", State.succeeded, job="inventory-sync", start=60.1, end=60.5, seen=61
    )
    apply_batch(engine, "lambda-prod", [recovered])
    assert deliver_alerts(engine, alerts) == 1
    assert deliver_alerts(engine, alerts) == 0
    assert receiver.titles()[1] == (
        "[Switchyard] incident #1 resolved: lambda-prod:inventory-sync timeout"
    )
    assert len(receiver.bodies) == 2


def test_routes_by_flow_job_and_source_else_default(engine: Engine) -> None:
    flow_rx, job_rx, default_rx = Receiver(), Receiver(), Receiver()
    try:
        flows(engine, INVENTORY)
        config = parse_config(
            {
                "alerts": {
                    "routes": [
                        {"match": {"flow": "inventory"}, "notify": [flow_rx.url]},
                        {
                            "match": {"job": "etl-01:cleanup", "source": "etl-01"},
                            "notify": [job_rx.url],
                        },
                    ],
                    "default": [default_rx.url],
                    "hold": "0s",
                }
            }
        )
        _timeout(engine, "req-1", 0)
        apply_batch(
            engine,
            "etl-01",
            [
                ev(
                    "etl-01",
                    "cleanup/r1",
                    State.failed,
                    job="cleanup",
                    start=0,
                    end=1,
                    seen=1,
                    error=ErrorInfo(kind="exit_code"),
                )
            ],
        )
        apply_batch(
            engine,
            "etl-01",
            [
                ev(
                    "etl-01",
                    "other/r1",
                    State.failed,
                    job="other",
                    start=0,
                    end=1,
                    seen=1,
                    error=ErrorInfo(kind="exit_code"),
                )
            ],
        )
        assert deliver_alerts(engine, config.alerts) == 3
        assert [t.split(": ", 1)[1] for t in flow_rx.titles()] == [
            "lambda-prod:inventory-sync timeout"
        ]
        assert [t.split(": ", 1)[1] for t in job_rx.titles()] == ["etl-01:cleanup exit_code"]
        assert [t.split(": ", 1)[1] for t in default_rx.titles()] == ["etl-01:other exit_code"]
        assert "alerts" in [t.name for t in default_tasks(config)]
        assert "alerts" not in [t.name for t in default_tasks(parse_config({}))]
    finally:
        for rx in (flow_rx, job_rx, default_rx):
            rx.close()


def test_hold_delays_the_announcement(engine: Engine, receiver: Receiver) -> None:
    alerts = AlertsConfig(default=[receiver.url], hold=300)
    _timeout(engine, "req-1", 0)
    assert deliver_alerts(engine, alerts) == 0
    with Session(engine) as session:
        claimed = session.exec(select(AlertDelivery)).all()
    assert claimed == []
    assert deliver_alerts(engine, alerts, now=datetime.now(UTC) + timedelta(minutes=6)) == 1


def test_failed_send_is_recorded_and_retried(engine: Engine, receiver: Receiver) -> None:
    alerts = AlertsConfig(default=[receiver.url])
    _timeout(engine, "req-1", 0)
    receiver.fail = True
    assert deliver_alerts(engine, alerts) == 0
    with Session(engine) as session:
        (row,) = session.exec(select(AlertDelivery)).all()
    assert (row.status, row.attempts) == ("failed", 1) and row.error
    receiver.fail = False
    assert deliver_alerts(engine, alerts) == 1
    with Session(engine) as session:
        (row,) = session.exec(select(AlertDelivery)).all()
    assert (row.status, row.attempts, row.targets) == ("sent", 2, ["default"])
    assert len(receiver.bodies) == 1


def test_two_concurrent_deliverers_send_each_notification_once(
    engine: Engine, receiver: Receiver
) -> None:
    alerts = AlertsConfig(default=[receiver.url])
    for n in range(6):
        apply_batch(
            engine,
            "etl-01",
            [
                ev(
                    "etl-01",
                    f"job{n}/r",
                    State.failed,
                    job=f"job{n}",
                    start=n,
                    end=n + 1,
                    seen=n + 1,
                    error=ErrorInfo(kind="exit_code", exit_code=n),
                )
            ],
        )
    barrier = threading.Barrier(2)
    counts: dict[str, int] = {}
    errors: list[BaseException] = []

    def deliverer(name: str) -> None:
        try:
            barrier.wait(timeout=10)
            counts[name] = deliver_alerts(engine, alerts, holder=name)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=deliverer, args=(f"replica-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sum(counts.values()) == 6
    assert sorted(receiver.titles()) == sorted(set(receiver.titles()))
    assert len(receiver.bodies) == 6
    with Session(engine) as session:
        rows = session.exec(select(AlertDelivery)).all()
    assert len(rows) == 6 and len({r.incident_id for r in rows}) == 6
    assert {r.status for r in rows} == {"sent"}
    assert {r.claimed_by for r in rows} <= {"replica-0", "replica-1"}
