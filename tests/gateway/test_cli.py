"""The `switchyard` CLI through typer's runner: config check, tokens, db, poll-once, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from gateway.auth import authenticate, hash_token
from gateway.cli import app
from gateway.store.db import make_engine
from gateway.store.migrate import at_head
from gateway.store.models import ApiToken

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("SWITCHYARD_DATABASE_URL", url)
    monkeypatch.delenv("SWITCHYARD_CONFIG", raising=False)
    return {"url": url}


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "switchyard.yaml"
    path.write_text(text)
    return str(path)


def test_config_check_lists_sources_and_never_prints_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AF_PASSWORD", "s3cret-value")
    path = write(
        tmp_path,
        "sources:\n"
        "  - {name: airflow-prod, kind: airflow, interval: 30s,\n"
        "     options: {url: 'http://af', password: '${AF_PASSWORD}'}}\n"
        "  - {name: nightly, kind: cron, enabled: false}\n",
    )
    result = runner.invoke(app, ["config", "check", "--config", path])
    assert result.exit_code == 0, result.output
    assert "airflow-prod\tairflow" in result.output
    assert "nightly\tcron" in result.output and "(disabled)" in result.output
    assert "s3cret-value" not in result.output


def test_config_check_reads_the_path_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHYARD_CONFIG", write(tmp_path, "sources: [{name: n, kind: cron}]\n"))
    result = runner.invoke(app, ["config", "check"])
    assert result.exit_code == 0 and "n\tcron" in result.output


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "sources:\n  - {name: x, kind: cron, interval: soon}\n")
    result = runner.invoke(app, ["config", "check", "--config", path])
    assert result.exit_code == 2
    assert "sources[0].interval" in result.output
    assert "Traceback" not in result.output


def test_missing_env_reference_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "sources: [{name: x, kind: cron, options: {pw: '${NOPE_NOT_SET}'}}]\n")
    result = runner.invoke(app, ["config", "check", "--config", path])
    assert result.exit_code == 2
    assert "sources[0].options.pw" in result.output and "NOPE_NOT_SET" in result.output


def test_db_upgrade_brings_the_schema_to_head(env: dict[str, str]) -> None:
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "at revision" in result.output
    engine = make_engine(env["url"])
    assert at_head(engine)
    engine.dispose()


def test_token_create_prints_it_once_and_stores_only_the_hash(env: dict[str, str]) -> None:
    result = runner.invoke(app, ["token", "create", "--role", "operator", "--name", "ci"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token.startswith("swy_") and "\n" not in token
    engine = make_engine(env["url"])
    with Session(engine) as s:
        row = s.exec(select(ApiToken)).one()
    assert (row.name, row.role, row.token_hash) == ("ci", "operator", hash_token(token))
    principal = authenticate(engine, token)
    assert principal is not None and principal.role.value == "operator"

    listed = runner.invoke(app, ["token", "list"])
    assert listed.exit_code == 0 and "ci\toperator" in listed.output
    assert token not in listed.output

    revoked = runner.invoke(app, ["token", "revoke", str(row.id)])
    assert revoked.exit_code == 0, revoked.output
    assert authenticate(engine, token) is None
    assert "ci" not in runner.invoke(app, ["token", "list"]).output.split("\n", 1)[1]
    assert "ci" in runner.invoke(app, ["token", "list", "--all"]).output
    engine.dispose()


def test_ingest_token_is_scoped_to_its_sources_and_listed_with_them(env: dict[str, str]) -> None:
    result = runner.invoke(
        app,
        [
            "token",
            "create",
            "--role",
            "ingest",
            "--sources",
            "k8s-prod, airflow-prod",
            "--name",
            "ci",
        ],
    )
    assert result.exit_code == 0, result.output
    engine = make_engine(env["url"])
    principal = authenticate(engine, result.stdout.strip())
    assert principal is not None
    assert (principal.role.value, principal.sources) == (
        "ingest",
        frozenset({"airflow-prod", "k8s-prod"}),
    )
    listed = runner.invoke(app, ["token", "list"])
    assert "ci\tingest\tairflow-prod,k8s-prod\tswy_" in listed.output
    engine.dispose()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "ingest"], "an ingest token needs the sources it may push into"),
        (["--role", "operator", "--sources", "a"], "--sources is for ingest tokens"),
        (["--role", "ingest", "--sources", "a b"], "'a b' is not a source name"),
    ],
)
def test_ingest_scope_errors_are_one_line_and_create_nothing(
    env: dict[str, str], args: list[str], message: str
) -> None:
    result = runner.invoke(app, ["token", "create", *args])
    assert result.exit_code == 2
    assert result.output.startswith("switchyard: ") and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    engine = make_engine(env["url"])
    with Session(engine) as s:
        assert s.exec(select(ApiToken)).all() == []
    engine.dispose()


def test_token_errors_are_one_line(env: dict[str, str]) -> None:
    bad_role = runner.invoke(app, ["token", "create", "--role", "root"])
    assert bad_role.exit_code == 2
    runner.invoke(app, ["db", "upgrade"])
    unknown = runner.invoke(app, ["token", "revoke", "999"])
    assert unknown.exit_code == 2
    assert unknown.output.strip() == "switchyard: no token with id 999"


def test_unreachable_database_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHYARD_DATABASE_URL", "postgresql://nobody:pw-hidden@127.0.0.1:1/none")
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 1
    assert result.output.startswith("switchyard: cannot reach the database")
    assert "pw-hidden" not in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_poll_once_unknown_source_exits_2(env: dict[str, str], tmp_path: Path) -> None:
    path = write(tmp_path, "sources: [{name: real, kind: cron}]\n")
    result = runner.invoke(app, ["poll-once", "ghost", "--config", path])
    assert result.exit_code == 2
    assert "no source named 'ghost'" in result.output


def test_db_prune_removes_old_finished_runs(env: dict[str, str], sqlite_engine: Engine) -> None:
    from datetime import UTC, datetime, timedelta

    from gateway.contract import RunEvent, State
    from gateway.ingest import apply_batch

    runner.invoke(app, ["db", "upgrade"])
    engine = make_engine(env["url"])
    old = datetime.now(UTC) - timedelta(days=200)
    apply_batch(
        engine,
        "s",
        [
            RunEvent(
                source="s",
                key="old",
                state=State.succeeded,
                started_at=old,
                ended_at=old,
                observed_at=old,
            ),
            RunEvent(source="s", key="new", state=State.succeeded, observed_at=datetime.now(UTC)),
        ],
    )
    result = runner.invoke(app, ["db", "prune", "--older-than", "90d"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("removed 1 run row(s)")
    bad = runner.invoke(app, ["db", "prune", "--older-than", "soon"])
    assert bad.exit_code == 2 and "--older-than" in bad.output
    engine.dispose()


def test_poll_once_ingests_and_prints_what_it_did(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fakes.scripted_adapter import write_entry_point_dist

    plugins = tmp_path / "plugins"
    write_entry_point_dist(plugins)
    monkeypatch.syspath_prepend(str(plugins))
    path = write(tmp_path, "sources: [{name: s1, kind: scripted, options: {available: 4}}]\n")
    first = runner.invoke(app, ["poll-once", "s1", "--config", path])
    assert first.exit_code == 0, first.output
    assert first.output.strip() == (
        "s1: 4 event(s): 4 applied, 0 duplicate(s); runs 2 created, 0 updated; "
        "links 0 created; jobs 1; cursor 4"
    )
    again = runner.invoke(app, ["poll-once", "s1", "--config", path])
    assert "0 event(s)" in again.output and again.output.strip().endswith("cursor 4")


LINEAGE_WITHOUT_KEY = "sources: [{name: lineage, kind: openlineage}]\n"


def test_config_check_refuses_a_lineage_source_without_a_key(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["config", "check", "--config", write(tmp_path, LINEAGE_WITHOUT_KEY)]
    )
    assert result.exit_code == 2
    assert "sources[0]: options.api_key:" in result.output
    assert "allow_anonymous: true" in result.output
    anonymous = "sources: [{name: lineage, kind: openlineage, options: {allow_anonymous: true}}]\n"
    assert (
        runner.invoke(app, ["config", "check", "--config", write(tmp_path, anonymous)]).exit_code
        == 0
    )


def test_the_runtime_refuses_a_lineage_source_without_a_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.runtime.__main__ import main as runtime_main

    assert runtime_main(["--config", write(tmp_path, LINEAGE_WITHOUT_KEY)]) == 2
    assert "sources[0]: options.api_key:" in capsys.readouterr().err


def test_config_check_refuses_a_trusted_proxy_that_is_not_an_address(tmp_path: Path) -> None:
    path = write(tmp_path, "cookie_secure: auto\ntrusted_proxies: [10.0.0.0/8, proxy.local]\n")
    result = runner.invoke(app, ["config", "check", "--config", path])
    assert result.exit_code == 2
    assert "trusted_proxies" in result.output and "proxy.local" in result.output
