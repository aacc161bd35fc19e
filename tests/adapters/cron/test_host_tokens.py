"""Cron tokens bound to hosts: a host may report only for itself, over real HTTP.

The gateway runs on uvicorn with `tokens: [{token, hosts}]`; requests go out
through httpx, and the wrapper runs as the real subprocess a host runs. A
refused request is a problem+json 403 naming the host, and writes nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from adapters.cron.adapter import CronAdapter
from gateway.cli import app
from gateway.contract import SourceConfig, SourceError
from tests.adapters.cron.conftest import SOURCE, TOKEN, CronGateway, run_wrapper, running_gateway

WEB1, WEB2 = "web1-token-5f2c", "web2-token-9a1d"
TOKENS = [{"token": WEB1, "hosts": ["web-01"]}, {"token": WEB2, "hosts": ["web-02", "host-a"]}]


@pytest.fixture
def gateway(engine: Engine, tmp_path: Path) -> Iterator[CronGateway]:
    """The single `token` (any host) beside two tokens bound to their hosts."""
    with running_gateway(engine, tmp_path, tokens=TOKENS) as gw:
        yield gw


def line(host: str, key: str | None = None) -> dict[str, Any]:
    return {
        "key": key or f"{host}/root/0123456789ab",
        "host": host,
        "user": "root",
        "schedule": "0 3 * * *",
        "schedule_native": "0 3 * * *",
        "command": "/usr/local/bin/backup.sh",
        "path": "/etc/crontab",
        "line_no": 3,
        "line": "0 3 * * * root /usr/local/bin/backup.sh",
    }


def report(host: str, run_id: str = "5e1f0000-0000-4000-8000-000000000001") -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "phase": "start",
        "run_id": run_id,
        "job": f"{host}/root/0123456789ab",
        "host": host,
        "started_at": now,
        "sent_at": now,
    }


def call(gw: CronGateway, token: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.request(method, gw.url + path, headers=headers, timeout=30, **kwargs)


def refused(answer: httpx.Response, host: str) -> bool:
    return (
        answer.status_code == 403
        and answer.headers["content-type"].startswith("application/problem+json")
        and f"not bound to host '{host}'" in answer.json()["detail"]
    )


def test_a_token_for_web_01_cannot_report_jobs_or_runs_for_web_02(gateway: CronGateway) -> None:
    jobs = call(gateway, WEB1, "POST", "/api/v1/cron/jobs", json={"host": "web-02", "jobs": []})
    assert refused(jobs, "web-02")
    mixed = {"host": "web-01", "jobs": [line("web-01"), line("web-02")]}
    assert refused(call(gateway, WEB1, "POST", "/api/v1/cron/jobs", json=mixed), "web-02")
    runs = call(gateway, WEB1, "POST", "/api/v1/cron/report", json={"reports": [report("web-02")]})
    assert refused(runs, "web-02")
    assert gateway.jobs() == {} and gateway.runs() == []


def test_a_key_naming_another_host_is_refused_under_the_reporters_own_host(
    gateway: CronGateway,
) -> None:
    smuggled = {"host": "web-01", "jobs": [line("web-01", key="web-02/root/0123456789ab")]}
    assert refused(call(gateway, WEB1, "POST", "/api/v1/cron/jobs", json=smuggled), "web-02")
    cronlog = dict(report("web-01"), origin="cronlog", run_id="cronlog/web-02/4242/2026-01-01")
    answer = call(gateway, WEB1, "POST", "/api/v1/cron/report", json={"reports": [cronlog]})
    assert refused(answer, "web-02")
    assert gateway.jobs() == {} and gateway.runs() == []


def test_each_token_reports_for_its_own_hosts_and_the_single_token_for_any(
    gateway: CronGateway,
) -> None:
    own = call(gateway, WEB1, "POST", "/api/v1/cron/jobs", json={"jobs": [line("web-01")]})
    assert own.status_code == 200, own.text
    runs = call(gateway, WEB2, "POST", "/api/v1/cron/report", json={"reports": [report("web-02")]})
    assert runs.status_code == 200, runs.text
    anyone = call(gateway, TOKEN, "POST", "/api/v1/cron/jobs", json={"jobs": [line("db-01")]})
    assert anyone.status_code == 200, anyone.text
    assert set(gateway.jobs()) == {"web-01/root/0123456789ab", "db-01/root/0123456789ab"}
    assert call(gateway, "wrong", "GET", "/api/v1/cron/instructions").status_code == 401


def test_instructions_are_given_only_for_the_tokens_hosts(gateway: CronGateway) -> None:
    path = "/api/v1/cron/instructions"
    assert call(gateway, WEB1, "GET", path, params={"host": "web-01"}).status_code == 200
    assert refused(call(gateway, WEB1, "GET", path, params={"host": "web-02"}), "web-02")
    unnamed = call(gateway, WEB1, "GET", path)
    assert unnamed.status_code == 422 and unnamed.json()["detail"].startswith("host:")
    assert call(gateway, TOKEN, "GET", path).status_code == 200


def test_the_wrapper_on_a_host_reports_with_its_bound_token(gateway: CronGateway) -> None:
    ok = run_wrapper(["--", "true"], url=gateway.url, spool=gateway.spool, token=WEB2)
    assert ok.returncode == 0, ok.stderr
    assert [r["attributes"]["host.name"] for r in gateway.runs()] == ["host-a"]
    spool = gateway.spool.parent / "other-spool"
    other = run_wrapper(["--", "true"], url=gateway.url, spool=spool, token=WEB1)
    assert other.returncode == 0  # the command ran; its report waits in the spool
    assert len(gateway.runs()) == 1


BAD_TOKENS = [
    ([], "options.tokens: must be a non-empty list"),
    ([{"token": "t1"}], "options.tokens[0].hosts: must be a non-empty list of host names"),
    ([{"token": "t1", "hosts": []}], "options.tokens[0].hosts: must be a non-empty list"),
    ([{"token": "t1", "hosts": [""]}], "options.tokens[0].hosts[0]: must be a non-empty string"),
    ([{"hosts": ["a"]}], "options.tokens[0].token: must be a non-empty string"),
    ([{"token": "t", "hosts": ["a"], "host": "b"}], "options.tokens[0]: unknown key(s) host"),
    (
        [{"token": "t", "hosts": ["a"]}, {"token": "t", "hosts": ["b"]}],
        "options.tokens[1].token: the same token is configured twice",
    ),
]


@pytest.mark.parametrize(("tokens", "message"), BAD_TOKENS, ids=[m for _, m in BAD_TOKENS])
def test_config_check_names_the_malformed_tokens_key(
    tokens: Any, message: str, tmp_path: Path
) -> None:
    config = tmp_path / "switchyard.yaml"
    source = {"name": SOURCE, "kind": "cron", "options": {"tokens": tokens}}
    config.write_text(json.dumps({"sources": [{"name": "web", "kind": "cron"}, source]}))
    result = CliRunner().invoke(app, ["config", "check", "-c", str(config)])
    assert result.exit_code == 2, result.output
    assert f"sources[1].{message}" in result.output
    with pytest.raises(SourceError, match=re.escape(message)):
        CronAdapter(SourceConfig(name=SOURCE, kind="cron", options={"tokens": tokens}))
