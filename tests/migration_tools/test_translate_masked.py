"""Translating stored specs whose inline secrets were masked (`translate.masked`).

A translation starts from the stored spec, so it sees `MASKED` where a
credential was. A wholly masked value (a container's env value, an env map
entry) becomes a `{{ secret('…') }}` reference and the secret is listed for
the operator; a masked part of a command is flagged (the flow is partial and
disabled), and a wrap that would call such a command is refused.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.contract import JobSpec, TaskSpec
from gateway.inline_secrets import MASKED, mask_spec_data
from migration_tools.translate import check_flow, translate
from migration_tools.wrap import WrapError, wrap


def stored(spec: JobSpec) -> JobSpec:
    """`spec` as the store holds it (what the lifecycle translates)."""
    return JobSpec.model_validate(mask_spec_data(spec.model_dump(mode="json")))


CRONJOB = JobSpec(
    source="k8s",
    key="cronjob/batch/nightly-report",
    kind="cronjob",
    name="nightly-report",
    schedule="0 2 * * *",
    definition={
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly-report", "namespace": "batch"},
        "spec": {
            "schedule": "0 2 * * *",
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "name": "main",
                                    "image": "report:1",
                                    "env": [
                                        {"name": "DB_PASSWORD", "value": "Sy-pw"},
                                        {"name": "LOG_LEVEL", "value": "debug"},
                                        {
                                            "name": "API_TOKEN",
                                            "valueFrom": {
                                                "secretKeyRef": {"name": "api", "key": "token"}
                                            },
                                        },
                                    ],
                                }
                            ]
                        }
                    }
                }
            },
        },
    },
)


def _container(flow: dict[str, Any]) -> dict[str, Any]:
    [task] = flow["tasks"]
    container: dict[str, Any] = task["spec"]["containers"][0]
    return container


def test_masked_env_values_read_kestra_secrets_and_the_secrets_are_listed() -> None:
    t = translate(stored(CRONJOB))
    env = {e["name"]: e for e in _container(t.flow)["env"]}
    assert env["DB_PASSWORD"]["value"] == "{{ secret('NIGHTLY_REPORT_DB_PASSWORD') }}"
    assert env["LOG_LEVEL"]["value"] == "{{ secret('NIGHTLY_REPORT_LOG_LEVEL') }}"
    assert env["API_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "api", "key": "token"}
    assert [(s.name, s.referenced) for s in t.secrets] == [
        ("NIGHTLY_REPORT_DB_PASSWORD", True),
        ("NIGHTLY_REPORT_LOG_LEVEL", True),
    ]
    assert t.readiness == "full"  # nothing is guessed; the operator creates two secrets
    assert "# note: create Kestra secret NIGHTLY_REPORT_DB_PASSWORD" in t.yaml_text
    assert MASKED not in t.yaml_text and "Sy-pw" not in t.yaml_text
    assert check_flow(t.yaml_text, kestra_version="1") == []


def test_the_wrap_of_a_cronjob_hands_the_pod_the_same_secret_references() -> None:
    w = wrap(stored(CRONJOB))
    [pod] = [t for t in w.flow["tasks"] if t["type"].endswith("PodCreate")]
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["DB_PASSWORD"] == "{{ secret('NIGHTLY_REPORT_DB_PASSWORD') }}"


CRONTAB = JobSpec(
    source="cron-hosts",
    key="etl-01/backup",
    kind="crontab",
    name="backup",
    schedule="0 1 * * *",
    definition={
        "command": "PGPASSWORD=Sy-pw pg_dump warehouse > /backups/w.sql",
        "host": "etl-01",
        "user": "etl",
    },
)


def test_a_credential_masked_inside_a_command_is_flagged_not_run() -> None:
    t = translate(stored(CRONTAB))
    assert t.readiness == "partial"
    assert t.flow["disabled"] is True
    assert [(s.name, s.referenced) for s in t.secrets] == [("BACKUP_PGPASSWORD", False)]
    [reason] = [r for r in t.reasons if "masked" in r]
    assert "commands[0] of task command" in reason
    assert "create Kestra secret BACKUP_PGPASSWORD" in reason
    assert "Sy-pw" not in t.yaml_text
    with pytest.raises(WrapError, match="credential masked when the job was stored"):
        wrap(stored(CRONTAB))


def test_airflow_env_maps_become_secret_references_and_commands_are_flagged() -> None:
    dag = JobSpec(
        source="airflow-prod",
        key="orders_etl",
        kind="dag",
        name="orders_etl",
        schedule="0 3 * * *",
        tasks=[
            TaskSpec(
                id="export",
                type="BashOperator",
                arguments={"bash_command": "export.sh", "env": {"S3_SECRET": "Sy-pw"}},
            ),
            TaskSpec(
                id="load",
                type="BashOperator",
                arguments={"bash_command": "load.sh --token=Sy-pw2"},
                upstream=["export"],
            ),
        ],
    )
    t = translate(stored(dag))
    [export] = [e["task"] for e in t.flow["tasks"][0]["tasks"] if e["task"]["id"] == "export"]
    assert export["env"] == {"S3_SECRET": "{{ secret('ORDERS_ETL_S3_SECRET') }}"}
    assert [(s.name, s.referenced) for s in t.secrets] == [
        ("ORDERS_ETL_S3_SECRET", True),
        ("ORDERS_ETL_TOKEN", False),
    ]
    assert any("task load" in r and "ORDERS_ETL_TOKEN" in r for r in t.reasons)
    assert "Sy-pw" not in t.yaml_text
