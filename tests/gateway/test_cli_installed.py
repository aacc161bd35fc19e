"""The installed `switchyard` script (`.venv/bin/switchyard`) as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SWITCHYARD = str(Path(sys.executable).parent / "switchyard")


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SWITCHYARD, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SWITCHYARD_CONFIG", None)
    env["SWITCHYARD_DATABASE_URL"] = f"sqlite:///{tmp_path / 'installed.db'}"
    env["AF_PASSWORD"] = "never-print-me"
    return env


def test_installed_config_check_lists_sources_without_secrets(
    tmp_path: Path, env: dict[str, str]
) -> None:
    config = tmp_path / "switchyard.yaml"
    config.write_text(
        "sources:\n  - {name: af, kind: airflow, options: {password: '${AF_PASSWORD}'}}\n"
    )
    ok = run("config", "check", "--config", str(config), env=env)
    assert ok.returncode == 0, ok.stderr
    assert "af\tairflow" in ok.stdout and "never-print-me" not in ok.stdout + ok.stderr

    config.write_text("sources:\n  - {name: af, kind: airflow, interval: -5}\n")
    bad = run("config", "check", "--config", str(config), env=env)
    assert bad.returncode == 2
    assert "sources[0].interval" in bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_installed_token_create_prints_only_the_token(env: dict[str, str]) -> None:
    made = run("token", "create", "--role", "admin", "--name", "ops", env=env)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip().startswith("swy_")
    assert len(made.stdout.strip().splitlines()) == 1
    listed = run("token", "list", env=env)
    assert "ops\tadmin" in listed.stdout
    assert made.stdout.strip() not in listed.stdout
