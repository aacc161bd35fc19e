"""`switchyard inventory` / `switchyard migrate …` and the `/api/v1` migration routes.

Both drive the same lifecycle over a config naming a cron source (pause and
resume write its real control file) and a kestra source (the emulator).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from adapters.cron.adapter import ControlState
from emulators.kestra import KestraEmulator
from gateway.api.app import create_app
from gateway.auth import create_token
from gateway.cli import app
from gateway.config import parse_config
from gateway.contract import JobSpec, job_id_for
from gateway.ingest import apply_batch
from gateway.store.db import make_engine
from gateway.store.migrate import upgrade

runner = CliRunner()
SOURCE, KEY = "cron-a", "web1/alice/0f3a2b"
JOB = f"{SOURCE}:{KEY}"


def spec() -> JobSpec:
    return JobSpec(
        source=SOURCE,
        key=KEY,
        kind="crontab",
        name="nightly_backup",
        schedule="30 2 * * *",
        definition={"command": "/usr/local/bin/backup.sh", "host": "web1", "user": "alice"},
    )


def sources(tmp_path: Path, kestra_url: str) -> list[dict[str, Any]]:
    return [
        {"name": SOURCE, "kind": "cron", "options": {"control_file": str(tmp_path / "c.json")}},
        {"name": "kestra", "kind": "kestra", "options": {"url": kestra_url}},
    ]


@pytest.fixture
def cli_env(
    tmp_path: Path, kestra: KestraEmulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("SWITCHYARD_DATABASE_URL", url)
    path = tmp_path / "switchyard.yaml"
    path.write_text(json.dumps({"sources": sources(tmp_path, kestra.url)}))
    engine = make_engine(url)
    upgrade(engine)
    apply_batch(engine, SOURCE, [], jobs=[spec()])
    engine.dispose()
    yield str(path)


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


def test_cli_walks_a_job_through_the_lifecycle_and_refuses_cutover_without_parity(
    cli_env: str, tmp_path: Path, kestra: KestraEmulator
) -> None:
    control = ControlState(str(tmp_path / "c.json"))
    inv = invoke("inventory", "--format", "json", "-c", cli_env)
    assert inv.exit_code == 0, inv.output
    assert json.loads(inv.output)["jobs"][0]["readiness"] == "full"

    for step in (["translate"], ["deploy"], ["shadow", "--safe"]):
        result = invoke("migrate", *step, JOB, "--actor", "alice", "-c", cli_env)
        assert result.exit_code == 0, result.output
    assert f"{JOB}\tshadow\tfull" in result.output

    refused = invoke("migrate", "cutover", JOB, "--actor", "alice", "-c", cli_env)
    assert refused.exit_code == 1
    assert "cutover refused" in refused.output and "0 runs compared in shadow; 5 needed" in (
        refused.output
    )
    assert "Traceback" not in refused.output
    assert not control.read().get(KEY)

    forced = invoke("migrate", "cutover", JOB, "--force", "--actor", "alice", "-c", cli_env)
    assert forced.exit_code == 0, forced.output
    assert control.read().get(KEY) is True

    audit = invoke("migrate", "audit", JOB, "-c", cli_env)
    lines = audit.output.strip().splitlines()
    assert [line.split("\t")[2:5] for line in lines] == [
        ["translate", "observed → translated", "ok"],
        ["deploy", "translated → translated", "ok"],
        ["shadow", "translated → shadow", "ok"],
        ["cutover", "shadow → shadow", "refused"],
        ["cutover", "shadow → cut_over", "ok"],
    ]
    assert all(line.split("\t")[1] == "alice" for line in lines)

    back = invoke("migrate", "rollback", JOB, "--actor", "bob", "-c", cli_env)
    assert back.exit_code == 0, back.output
    assert not control.read().get(KEY)
    status = invoke("migrate", "status", "--json", "-c", cli_env)
    assert json.loads(status.output)[0]["state"] == "observed"


def test_cli_unknown_job_is_one_line_error(cli_env: str) -> None:
    result = invoke("migrate", "translate", "cron-a:nope", "-c", cli_env)
    assert result.exit_code == 1
    assert "cron-a:nope: no such discovered job" in result.output
    bad = invoke("migrate", "translate", "no-colon", "-c", cli_env)
    assert bad.exit_code == 2


@pytest.fixture
def api(sqlite_engine: Engine, tmp_path: Path, kestra: KestraEmulator) -> Iterator[TestClient]:
    apply_batch(sqlite_engine, SOURCE, [], jobs=[spec()])
    config = parse_config({"sources": sources(tmp_path, kestra.url)})
    with TestClient(create_app(config, sqlite_engine)) as client:
        yield client


def test_api_actions_are_operator_only_audited_and_problems_on_refusal(
    api: TestClient, sqlite_engine: Engine, tmp_path: Path
) -> None:
    viewer = {"Authorization": "Bearer " + create_token(sqlite_engine, role="viewer", name="v")}
    operator = {
        "Authorization": "Bearer " + create_token(sqlite_engine, role="operator", name="ops")
    }
    job_id = job_id_for(SOURCE, KEY)
    base = f"/api/v1/migrations/{job_id}"

    inv = api.get("/api/v1/inventory", headers=viewer)
    assert inv.status_code == 200 and inv.json()["jobs"][0]["key"] == KEY

    denied = api.post(f"{base}/actions/translate", headers=viewer)
    assert denied.status_code == 403
    assert denied.headers["content-type"].startswith("application/problem+json")

    ok = api.post(f"{base}/actions/translate", headers=operator)
    assert ok.status_code == 200 and ok.json()["state"] == "translated"
    refused = api.post(f"{base}/actions/cutover", headers=operator, json={"force": True})
    assert refused.status_code == 409
    assert "cannot cutover from translated" in refused.json()["detail"]

    api.post(f"{base}/actions/deploy", headers=operator)
    no_safe = api.post(f"{base}/actions/shadow", headers=operator, json={})
    assert no_safe.status_code == 409
    shadow = api.post(f"{base}/actions/shadow", headers=operator, json={"safe": True})
    assert shadow.status_code == 200 and shadow.json()["state"] == "shadow"
    low = api.post(f"{base}/actions/cutover", headers=operator, json={"min_runs": 3})
    assert low.status_code == 409 and "3 needed" in low.json()["detail"]

    parity = api.get(f"{base}/parity", headers=viewer)
    assert parity.status_code == 200 and parity.json()["compared"] == 0
    audit = api.get(f"{base}/audit", headers=viewer).json()["data"]
    assert {r["actor"] for r in audit} == {"token:ops"}
    assert [r["outcome"] for r in audit][-1] == "refused"

    assert api.get("/api/v1/migrations/0000000000000000", headers=viewer).status_code == 404
    back = api.post(f"{base}/actions/rollback", headers=operator)
    assert back.status_code == 200 and back.json()["state"] == "observed"
    listed = api.get("/api/v1/migrations", headers=viewer).json()["data"]
    assert [m["state"] for m in listed] == ["observed"]


def test_cli_wrap_shows_where_each_job_runs_and_asks_before_changing_anything(
    cli_env: str, tmp_path: Path, kestra: KestraEmulator
) -> None:
    control = ControlState(str(tmp_path / "c.json"))
    assert invoke("migrate", "translate", JOB, "-c", cli_env).exit_code == 0
    shown = "runs '/usr/local/bin/backup.sh' on host 'web1' as 'alice', over SSH"

    declined = runner.invoke(app, ["migrate", "wrap", JOB, "-c", cli_env], input="n\n")
    assert declined.exit_code == 1
    assert f"wrap {JOB}: {shown}" in declined.output
    assert not control.read().get(KEY)
    assert not [k for k in kestra.state.flows if k[2].endswith("_wrap")]

    unattended = runner.invoke(app, ["migrate", "wrap", JOB, "-c", cli_env], input="")
    assert unattended.exit_code == 1 and not control.read().get(KEY)

    confirmed = invoke("migrate", "wrap", JOB, "--yes", "--actor", "alice", "-c", cli_env)
    assert confirmed.exit_code == 0, confirmed.output
    assert f"wrap {JOB}: {shown}" in confirmed.output
    assert f"{JOB}\twrapped" in confirmed.output
    assert control.read().get(KEY) is True


def test_api_wrap_answer_names_the_host_the_user_and_whether_kestra_runs_it_itself(
    api: TestClient, sqlite_engine: Engine, kestra: KestraEmulator
) -> None:
    operator = {
        "Authorization": "Bearer " + create_token(sqlite_engine, role="operator", name="ops")
    }
    local = spec().model_copy(
        update={"key": "web1/alice/local", "definition": {**spec().definition, "local": True}}
    )
    apply_batch(sqlite_engine, SOURCE, [], jobs=[local])
    answers = {}
    for key in (KEY, local.key):
        base = f"/api/v1/migrations/{job_id_for(SOURCE, key)}/actions"
        assert api.post(f"{base}/translate", headers=operator).status_code == 200
        wrapped = api.post(f"{base}/wrap", headers=operator)
        assert wrapped.status_code == 200, wrapped.text
        answers[key] = wrapped.json()["wrap_target"]

    over_ssh = answers[KEY]
    assert (over_ssh["via"], over_ssh["where"], over_ssh["user"]) == ("ssh", "web1", "alice")
    assert over_ssh["on_kestra_worker"] is False
    on_worker = answers[local.key]
    assert (on_worker["via"], on_worker["on_kestra_worker"], on_worker["user"]) == (
        "local",
        True,
        None,
    )
    assert "on the Kestra worker itself" in on_worker["summary"]
    audit = api.get(
        f"/api/v1/migrations/{job_id_for(SOURCE, local.key)}/audit", headers=operator
    ).json()["data"]
    assert audit[-1]["detail"]["wrap_target"] == on_worker
