"""`switchyard.example.yaml` is a config to start from: it checks, and its adapters build."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.contract import create_adapter

EXAMPLE = Path(__file__).resolve().parents[2] / "switchyard.example.yaml"
SWITCHYARD = Path(sys.executable).with_name("switchyard")
SECRETS = {
    "AIRFLOW_PASSWORD": "airflow-secret-1",
    "KESTRA_PASSWORD": "kestra-secret-2",
    "SWITCHYARD_CRON_TOKEN": "cron-token-3",
    "OPENLINEAGE_API_KEY": "lineage-key-4",
}
KINDS = {"airflow", "kubernetes", "lambda", "cron", "kestra", "openlineage"}


def _check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    return subprocess.run(
        [str(SWITCHYARD), "config", "check", "--config", str(EXAMPLE)],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_example_config_passes_config_check_with_its_env_vars_set() -> None:
    done = _check(SECRETS)
    assert done.returncode == 0, done.stderr
    kinds = {line.split("\t")[1] for line in done.stdout.splitlines()[1:]}
    assert kinds == KINDS
    assert not any(secret in done.stdout + done.stderr for secret in SECRETS.values())


def test_example_config_names_the_missing_env_var() -> None:
    env = {k: v for k, v in SECRETS.items() if k != "KESTRA_PASSWORD"}
    done = _check(env)
    assert done.returncode == 2
    assert "environment variable KESTRA_PASSWORD is not set" in done.stderr


def test_example_config_covers_every_kind_and_its_adapters_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The Lambda source names its credential variables; building its clients needs them set.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "example-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example-secret")
    config = load_config(EXAMPLE, env=SECRETS)
    assert {s.kind for s in config.sources} == KINDS
    for entry in config.sources:
        if entry.kind == "kubernetes":
            continue  # its adapter loads the kubeconfig the example names, which is not here
        options = dict(entry.options)
        if entry.kind == "cron":
            options["control_file"] = str(tmp_path / "cron-control.json")
        source = entry.source_config().model_copy(update={"options": options})
        adapter = create_adapter(source)
        assert adapter.name == entry.name
        close = getattr(adapter, "close", None)
        if callable(close):
            close()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_source_kind_in_the_example_has_a_comment_saying_what_it_is(kind: str) -> None:
    text = EXAMPLE.read_text()
    block = text.split(f"kind: {kind}\n")[0].rsplit("- name:", 1)[0]
    assert block.rstrip().splitlines()[-1].lstrip().startswith("#")
