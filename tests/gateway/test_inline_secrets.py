"""Inline secrets in job definitions are masked before storage (`gateway.inline_secrets`).

Each shape a credential takes in a real definition — a pod template's env,
kubectl's last-applied annotation, a credential-named key, a connection URI,
a shell assignment, a DAG file — is masked, while references to secrets
(`valueFrom`, `$(VAR)`, `{{ … }}`) and the structure stay. Ingest stores the
masked form on SQLite and PostgreSQL.
"""

from __future__ import annotations

import ast
import json
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from gateway.contract import JobSpec, TaskSpec, job_id_for
from gateway.ingest import apply_batch
from gateway.inline_secrets import MASKED, mask_python_source, mask_spec_data, mask_text
from gateway.store.models import Job

POD_TEMPLATE: dict[str, Any] = {
    "containers": [
        {
            "name": "main",
            "image": "report:1",
            "command": ["sh", "-c", "report --password=Sy-cmd-pw-1 --out /tmp/x"],
            "env": [
                {"name": "DB_PASSWORD", "value": "Sy-env-pw-2"},
                {"name": "LOG_LEVEL", "value": "debug"},
                {"name": "DB_USER", "valueFrom": {"secretKeyRef": {"name": "db", "key": "user"}}},
                {"name": "DSN", "value": "postgres://report:$(DB_PASSWORD)@db/reports"},
                {"name": "EMPTY", "value": ""},
            ],
        }
    ],
    "volumes": [{"name": "certs", "secret": {"secretName": "tls-certs"}}],
}


def cronjob(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "batch", "annotations": annotations or {}},
        "spec": {
            "schedule": "0 2 * * *",
            "jobTemplate": {"spec": {"template": {"spec": POD_TEMPLATE}}},
        },
    }


def dumped(spec: JobSpec) -> dict[str, Any]:
    return mask_spec_data(spec.model_dump(mode="json"))


def test_pod_template_env_values_and_command_credentials_are_masked_references_kept() -> None:
    spec = JobSpec(source="k8s", key="cronjob/batch/nightly", kind="cronjob", definition=cronjob())
    masked = dumped(spec)
    container = masked["definition"]["spec"]["jobTemplate"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["DB_PASSWORD"]["value"] == MASKED
    assert env["LOG_LEVEL"]["value"] == MASKED  # no way to tell a secret by its name
    assert env["DB_USER"]["valueFrom"] == {"secretKeyRef": {"name": "db", "key": "user"}}
    assert env["DSN"]["value"] == MASKED
    assert env["EMPTY"]["value"] == ""
    assert container["command"][2] == f"report --password={MASKED} --out /tmp/x"
    volumes = masked["definition"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"]
    assert volumes == POD_TEMPLATE["volumes"]
    assert "Sy-" not in json.dumps(masked)


def test_kubectl_last_applied_annotation_is_masked_as_the_manifest_it_holds() -> None:
    applied = json.dumps(cronjob())
    spec = JobSpec(
        source="k8s",
        key="cronjob/batch/nightly",
        kind="cronjob",
        definition=cronjob({"kubectl.kubernetes.io/last-applied-configuration": applied}),
    )
    annotation = dumped(spec)["definition"]["metadata"]["annotations"][
        "kubectl.kubernetes.io/last-applied-configuration"
    ]
    assert "Sy-env-pw-2" not in annotation and "Sy-cmd-pw-1" not in annotation
    assert json.loads(annotation)["metadata"]["name"] == "nightly"


def test_credential_keys_uris_and_shell_assignments_are_masked_in_text() -> None:
    assert mask_text("PGPASSWORD=hunter22 psql -h db") == f"PGPASSWORD={MASKED} psql -h db"
    assert mask_text("mysql://root:rootpw@db:3306/app") == f"mysql://root:{MASKED}@db:3306/app"
    assert (
        mask_text("curl -H 'Authorization: Bearer abc.def' https://api")
        == f"curl -H 'Authorization: Bearer {MASKED}' https://api"
    )
    assert (
        mask_text('{"api_key": "k-123", "user": "x"}') == f'{{"api_key": "{MASKED}", "user": "x"}}'
    )
    for kept in (
        "password={{ var.value.db_password }}",
        "export API_KEY=$API_KEY",
        "secret_name=tls-certs",
        "echo hello",
        "https://example.com/path?x=1",
    ):
        assert mask_text(kept) == kept


def test_task_arguments_and_lambda_environment_are_masked() -> None:
    spec = JobSpec(
        source="af",
        key="etl",
        kind="dag",
        tasks=[
            TaskSpec(
                id="load",
                type="PostgresOperator",
                arguments={
                    "password": "pw-1",
                    "password_file": "/run/secrets/pw",
                    "env_vars": {"TOKEN": "t-2"},
                    "headers": {"Authorization": "Bearer t-3", "Accept": "json"},
                    "sql": "select 1",
                },
            )
        ],
        definition={"function": {"Environment": {"Variables": {"STRIPE_KEY": "sk-4"}}}},
    )
    masked = dumped(spec)
    args = masked["tasks"][0]["arguments"]
    assert args["password"] == MASKED and args["password_file"] == "/run/secrets/pw"
    assert args["env_vars"] == {"TOKEN": MASKED}
    assert args["headers"] == {"Authorization": MASKED, "Accept": "json"}
    assert args["sql"] == "select 1"
    assert masked["definition"]["function"]["Environment"]["Variables"] == {"STRIPE_KEY": MASKED}


DAG_FILE = """
from airflow import DAG
from kubernetes.client import models as k8s

DB_PASSWORD = "Sy-dag-pw-1"
CONN = "postgresql://etl:Sy-dag-pw-2@db/warehouse"


def load(password="Sy-dag-pw-3", table="orders"):
    headers = {"Authorization": "Sy-dag-pw-4", "Accept": "json"}
    return password, headers


with DAG("etl") as dag:
    BashOperator(task_id="dump", bash_command="PGPASSWORD=Sy-dag-pw-5 pg_dump warehouse")
    KubernetesPodOperator(
        task_id="pod",
        env_vars=[k8s.V1EnvVar(name="TOKEN", value="Sy-dag-pw-6")],
        name="pod",
    )
    KubernetesPodOperator(task_id="pod2", env_vars={"LEVEL": "Sy-dag-pw-7"}, name="pod2")
"""


def test_a_dag_file_keeps_parsing_with_its_literal_credentials_masked() -> None:
    masked = mask_python_source(DAG_FILE)
    assert "Sy-dag-pw" not in masked
    tree = ast.parse(masked)
    assert any(isinstance(n, ast.FunctionDef) and n.name == "load" for n in ast.walk(tree))
    assert 'table="orders"' in masked and 'name="TOKEN"' in masked and '"Accept": "json"' in masked
    assert f'bash_command="PGPASSWORD={MASKED} pg_dump warehouse"' in masked


def test_ingest_stores_the_masked_spec(engine: Engine) -> None:
    spec = JobSpec(source="k8s", key="cronjob/batch/nightly", kind="cronjob", definition=cronjob())
    apply_batch(engine, "k8s", [], jobs=[spec])
    with Session(engine) as session:
        row = session.get(Job, job_id_for("k8s", "cronjob/batch/nightly"))
    assert row is not None
    stored = json.dumps(row.spec)
    assert "Sy-env-pw-2" not in stored and "Sy-cmd-pw-1" not in stored
    assert MASKED in stored
