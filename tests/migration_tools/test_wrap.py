"""Wrap flows: one call to the legacy job carrying the execution's traceparent."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from gateway.contract import JobSpec, TaskSpec
from migration_tools.translate import validate_flow
from migration_tools.wrap import TRACEPARENT, AirflowTarget, WrapError, WrapOptions, wrap


def _tasks(flow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for t in flow["tasks"]:
        out[t["id"]] = t
        for child in t.get("tasks") or []:
            out[child["id"]] = child
    return out


DAG = JobSpec(
    source="airflow-prod",
    key="orders_etl",
    kind="dag",
    name="orders_etl",
    schedule="0 3 * * *",
    tasks=[TaskSpec(id="extract", type="BashOperator", arguments={"bash_command": "echo"})],
)


def test_airflow3_wrap_triggers_over_v2_polls_and_fails_on_a_failed_run() -> None:
    w = wrap(DAG, WrapOptions(airflow=AirflowTarget("http://af:8080", "3")))
    assert validate_flow(w.yaml_text) == []
    tasks = _tasks(w.flow)
    trigger = tasks["trigger_dag_run"]
    assert trigger["uri"] == "http://af:8080/api/v2/dags/orders_etl/dagRuns"
    assert trigger["body"]["conf"]["traceparent"] == TRACEPARENT
    assert trigger["body"]["conf"]["airflow/dagrun_parent_trace_context"] == {
        "traceparent": TRACEPARENT
    }
    assert tasks["wait_dag_run"]["type"] == "io.kestra.plugin.core.flow.LoopUntil"
    assert "/api/v2/dags/orders_etl/dagRuns/kestra__" in tasks["poll_dag_run"]["uri"]
    fail = tasks["fail_on_failed_run"]
    assert fail["type"] == "io.kestra.plugin.core.execution.Fail"
    assert "== 'failed'" in fail["condition"]
    assert w.flow["labels"]["switchyard.wraps"] == "airflow-prod:orders_etl"
    assert "switchyard.job" not in w.flow["labels"]
    assert all(t["disabled"] is True for t in w.flow["triggers"])
    assert w.trigger_ids and yaml.safe_load(w.yaml_text) == w.flow


def test_airflow2_wrap_uses_the_plugin_and_an_explicit_failure_check() -> None:
    w = wrap(DAG, WrapOptions(airflow=AirflowTarget("http://af", "2")))
    tasks = _tasks(w.flow)
    assert tasks["trigger_dag_run"]["type"] == "io.kestra.plugin.airflow.dags.TriggerDagRun"
    assert tasks["trigger_dag_run"]["wait"] is True
    assert tasks["fail_on_failed_run"]["condition"] == (
        "{{ outputs.trigger_dag_run.state == 'failed' }}"
    )


def test_dag_wrap_needs_the_airflow_url() -> None:
    with pytest.raises(WrapError, match="needs the Airflow URL"):
        wrap(DAG)


def test_cronjob_lambda_and_crontab_wraps_pass_the_traceparent() -> None:
    cronjob = JobSpec(
        source="k8s",
        key="cronjob/batch/report",
        kind="cronjob",
        name="report",
        schedule="*/5 * * * *",
        definition={
            "metadata": {"name": "report", "namespace": "batch"},
            "spec": {
                "schedule": "*/5 * * * *",
                "jobTemplate": {
                    "spec": {
                        "template": {"spec": {"containers": [{"name": "main", "image": "busybox"}]}}
                    }
                },
            },
        },
    )
    pod = _tasks(wrap(cronjob).flow)["pod"]
    assert {"name": "TRACEPARENT", "value": TRACEPARENT} in pod["spec"]["containers"][0]["env"]

    fn = JobSpec(
        source="aws",
        key="nightly",
        kind="lambda",
        name="nightly",
        definition={
            "function": {"FunctionName": "nightly"},
            "rules": [{"Name": "r", "ScheduleExpression": "cron(0 4 * * ? *)", "Targets": []}],
        },
    )
    invoke = _tasks(wrap(fn).flow)["invoke"]
    assert invoke["functionPayload"]["headers"]["traceparent"] == TRACEPARENT

    line = JobSpec(
        source="cron-a",
        key="web1/alice/x",
        kind="crontab",
        name="x",
        schedule="0 1 * * *",
        definition={"command": "/bin/x", "host": "web1"},
    )
    w = wrap(line)
    ssh = _tasks(w.flow)["command"]
    assert ssh["env"]["TRACEPARENT"] == TRACEPARENT
    labels_task = _tasks(w.flow)["switchyard_label"]
    assert labels_task["labels"]["switchyard.traceparent"] == TRACEPARENT
    assert validate_flow(w.yaml_text) == []


def test_unscheduled_job_cannot_be_wrapped() -> None:
    line = JobSpec(
        source="cron-a",
        key="k",
        kind="crontab",
        name="boot",
        schedule_native="@reboot",
        definition={"command": "/bin/boot", "host": "h"},
    )
    with pytest.raises(WrapError, match="no schedule Kestra can carry"):
        wrap(line)
