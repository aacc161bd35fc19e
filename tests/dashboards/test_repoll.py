"""The dashboard's "Re-poll now" through a gateway that runs its pollers, on SQLite and PG.

The app runs a real `Runtime` over scripted sources with an hour's interval
and lease TTL, so a poll that happens at once can only be the action's doing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from gateway.api.app import create_app
from gateway.auth import create_token
from gateway.config import parse_config
from gateway.runtime.leases import acquire
from gateway.runtime.poller import read_cursor
from tests.dashboards.test_routes import csrf_of, login
from tests.fakes.scripted_adapter import ScriptedAdapter, scripted_kind_registered
from tests.gateway.test_runtime import wait_until

OURS, THEIRS, OFF = "scripted-here", "scripted-there", "scripted-off"


@dataclass
class Gateway:
    client: TestClient
    engine: Engine
    ours: ScriptedAdapter
    theirs: ScriptedAdapter


@pytest.fixture
def gateway(engine: Engine, tmp_path: Path) -> Iterator[Gateway]:
    # Another replica holds THEIRS for the whole test: this one never polls it.
    assert acquire(engine, THEIRS, "replica-b", 3600)
    with scripted_kind_registered(tmp_path / "entry-points"):
        config = parse_config(
            {
                "lease_ttl": "1h",
                "sources": [
                    {"name": OURS, "kind": "scripted", "interval": "1h"},
                    {"name": THEIRS, "kind": "scripted", "interval": "1h"},
                    {"name": OFF, "kind": "scripted", "interval": "1h", "enabled": False},
                ],
            }
        )
        ours, theirs = ScriptedAdapter(OURS, available=2), ScriptedAdapter(THEIRS, available=2)
        app = create_app(config, engine, run_pollers=True, adapters={OURS: ours, THEIRS: theirs})
        with TestClient(app) as client:
            yield Gateway(client, engine, ours, theirs)


def _repoll(gw: Gateway, source: str, csrf: str) -> str:
    done = gw.client.post(
        f"/actions/sources/{source}/poll", data={"csrf": csrf}, follow_redirects=False
    )
    assert done.status_code == 303, done.text
    location: str = done.headers["location"]
    return location


def test_operator_repoll_polls_a_source_this_replica_holds_at_once(gateway: Gateway) -> None:
    gw = gateway
    assert wait_until(lambda: read_cursor(gw.engine, OURS) == "2")  # on gaining the lease
    login(gw.client, create_token(gw.engine, role="operator", name="ops"))
    csrf = csrf_of(gw.client.get("/").text)
    gw.ours.publish(6)
    location = _repoll(gw, OURS, csrf)
    assert location == f"/?repoll={OURS}&outcome=polled"
    # Bounded wait against an hour's interval: only the action can have polled.
    assert wait_until(lambda: read_cursor(gw.engine, OURS) == "8", timeout=10)
    page = gw.client.get(location).text
    assert f"Polling {OURS} now" in page


def test_repoll_of_a_source_another_replica_holds_names_that_replica(gateway: Gateway) -> None:
    gw = gateway
    login(gw.client, create_token(gw.engine, role="operator", name="ops"))
    csrf = csrf_of(gw.client.get("/").text)
    location = _repoll(gw, THEIRS, csrf)
    assert location == f"/?repoll={THEIRS}&outcome=elsewhere"
    page = gw.client.get(location).text
    assert f"{THEIRS} is polled by replica replica-b, which holds its lease" in page
    assert gw.theirs.polls == 0
    location = _repoll(gw, OFF, csrf)
    assert location == f"/?repoll={OFF}&outcome=disabled"
    assert f"{OFF} is disabled in the configuration" in gw.client.get(location).text
    unknown = gw.client.post("/actions/sources/nope/poll", data={"csrf": csrf})
    assert unknown.status_code == 404 and "No configured source named" in unknown.text


def test_repoll_is_refused_to_a_viewer_and_without_the_csrf_token(gateway: Gateway) -> None:
    gw = gateway
    assert wait_until(lambda: read_cursor(gw.engine, OURS) == "2")
    polls = gw.ours.polls
    login(gw.client, create_token(gw.engine, role="viewer", name="watcher"))
    csrf = csrf_of(gw.client.get("/").text)
    refused = gw.client.post(f"/actions/sources/{OURS}/poll", data={"csrf": csrf})
    assert refused.status_code == 403 and "operator role" in refused.text
    login(gw.client, create_token(gw.engine, role="operator", name="ops"))
    for form in ({}, {"csrf": csrf}, {"csrf": "forged"}):  # none, the viewer's, made up
        forged = gw.client.post(f"/actions/sources/{OURS}/poll", data=form)
        assert forged.status_code == 403 and "Form expired" in forged.text
    anonymous = TestClient(gw.client.app)
    assert anonymous.post(f"/actions/sources/{OURS}/poll", data={"csrf": csrf}).status_code == 401
    assert gw.ours.polls == polls  # nothing refused reached the poller
