"""Structural validation of flows before any Kestra server sees them."""

from __future__ import annotations

import copy
from typing import Any

from migration_tools.translate import validate_flow

GOOD: dict[str, Any] = {
    "id": "orders_etl",
    "namespace": "company.team",
    "labels": {"switchyard.job": "airflow:orders_etl"},
    "tasks": [
        {
            "id": "dag",
            "type": "io.kestra.plugin.core.flow.Dag",
            "tasks": [
                {"task": {"id": "a", "type": "io.kestra.plugin.core.log.Log", "message": "x"}},
                {
                    "task": {
                        "id": "b",
                        "type": "io.kestra.plugin.scripts.shell.Commands",
                        "commands": ["echo hi"],
                        "retry": {"type": "constant", "interval": "PT5M", "maxAttempts": 3},
                        "timeout": "PT1H",
                    },
                    "dependsOn": ["a"],
                },
            ],
        }
    ],
    "triggers": [
        {"id": "schedule", "type": "io.kestra.plugin.core.trigger.Schedule", "cron": "0 2 * * *"}
    ],
}


def _flow(**changes: Any) -> dict[str, Any]:
    flow = copy.deepcopy(GOOD)
    flow.update(changes)
    return flow


def _messages(flow: Any, version: str = "1") -> list[str]:
    return [str(p) for p in validate_flow(flow, kestra_version=version)]


def test_a_well_formed_flow_has_no_problems() -> None:
    assert validate_flow(GOOD) == []


def test_flow_id_and_namespace_must_match_kestra_patterns() -> None:
    problems = _messages(_flow(id="-bad id", namespace="Company.Team"))
    assert any(p.startswith("id:") for p in problems)
    assert any(p.startswith("namespace:") for p in problems)


def test_flow_id_longer_than_100_is_rejected() -> None:
    assert any(p.startswith("id:") for p in _messages(_flow(id="a" * 101)))


def test_task_id_with_a_dot_is_rejected() -> None:
    flow = _flow()
    flow["tasks"][0]["tasks"][0]["task"]["id"] = "group.task"
    assert _messages(flow) == [
        "tasks[0].tasks[0].task.id: task id 'group.task' does not match "
        "^[a-zA-Z0-9][a-zA-Z0-9_-]*$",
        "tasks[0].tasks[1].dependsOn: 'a' is not a task of this Dag",
    ]


def test_missing_required_property_is_named_with_its_type() -> None:
    flow = _flow()
    del flow["tasks"][0]["tasks"][1]["task"]["commands"]
    assert _messages(flow) == [
        "tasks[0].tasks[1].task.commands: required by io.kestra.plugin.scripts.shell.Commands"
    ]


def test_schedule_trigger_needs_cron() -> None:
    flow = _flow()
    del flow["triggers"][0]["cron"]
    assert _messages(flow) == [
        "triggers[0].cron: required by io.kestra.plugin.core.trigger.Schedule"
    ]


def test_dangling_depends_on_is_reported() -> None:
    flow = _flow()
    flow["tasks"][0]["tasks"][1]["dependsOn"] = ["a", "ghost"]
    assert _messages(flow) == ["tasks[0].tasks[1].dependsOn: 'ghost' is not a task of this Dag"]


def test_dependency_cycle_is_reported() -> None:
    flow = _flow()
    flow["tasks"][0]["tasks"][0]["dependsOn"] = ["b"]
    assert _messages(flow) == ["tasks[0].tasks: dependsOn forms a cycle: a → b → a"]


def test_task_ids_must_be_unique_across_the_flow() -> None:
    flow = _flow()
    flow["tasks"].append({"id": "a", "type": "io.kestra.plugin.core.log.Log", "message": "y"})
    assert _messages(flow) == ["tasks[1].id: task id 'a' already used at tasks[0].tasks[0].task"]


def test_retry_shape_and_duration_are_checked() -> None:
    flow = _flow()
    flow["tasks"][0]["tasks"][1]["task"]["retry"] = {"type": "exponential", "interval": "5m"}
    flow["tasks"][0]["tasks"][1]["task"]["timeout"] = "1 hour"
    problems = _messages(flow)
    assert "tasks[0].tasks[1].task.retry.maxInterval: required for exponential retry" in problems
    assert any(
        p.startswith("tasks[0].tasks[1].task.retry.interval: must be an ISO") for p in problems
    )
    assert any(p.startswith("tasks[0].tasks[1].task.timeout: must be an ISO") for p in problems)


def test_foreach_is_reported_as_removed_when_targeting_kestra_2() -> None:
    flow = _flow()
    flow["tasks"].append(
        {
            "id": "each",
            "type": "io.kestra.plugin.core.flow.ForEach",
            "values": ["x"],
            "tasks": [{"id": "l", "type": "io.kestra.plugin.core.log.Log", "message": "m"}],
        }
    )
    assert validate_flow(flow, kestra_version="1") == []
    assert _messages(flow, "2") == [
        "tasks[1].type: io.kestra.plugin.core.flow.ForEach is removed in Kestra 2.0"
    ]


def test_label_keys_must_start_with_a_lower_case_letter() -> None:
    assert _messages(_flow(labels={"Team": "x"})) == [
        "labels.Team: label keys start with a lower-case letter"
    ]


def test_empty_task_list_and_unparseable_yaml_are_problems() -> None:
    assert _messages(_flow(tasks=[])) == ["tasks: a flow needs at least one task"]
    assert _messages("id: [unclosed")[0].startswith("(document): not valid YAML")


def test_check_flow_reports_the_server_constraints_line_by_line() -> None:
    from migration_tools.kestra_api import FlowValidation
    from migration_tools.translate import check_flow, render_flow

    class Server:
        def validate(self, yaml_text: str) -> list[FlowValidation]:
            return [FlowValidation(0, "orders_etl", "company.team", "a: bad\nb: worse")]

    assert [str(p) for p in check_flow(render_flow(GOOD), server=Server())] == [
        "(server, document 0): a: bad",
        "(server, document 0): b: worse",
    ]


def test_every_type_our_validator_names_is_a_class_kestra_declares() -> None:
    # Checked against the Kestra emulator's catalogue (Kestra's own Java classes),
    # so a misremembered class name here cannot hide behind our own tables.
    from emulators.kestra.catalogue import catalogue
    from migration_tools.translate.validate import REMOVED_IN_2, REQUIRED

    declared = set(catalogue("1").types)
    assert sorted((set(REQUIRED) | REMOVED_IN_2) - declared) == []
