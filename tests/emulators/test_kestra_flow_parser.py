"""The Kestra emulator's flow parser: what a Kestra server of each version refuses, and why.

Hand-written flows, one rule each; every refusal names the property path
Kestra would name.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from emulators.kestra.catalogue import catalogue, major
from emulators.kestra.flow_parser import FlowInvalid, check_flow, parse_flow

LOG = "io.kestra.plugin.core.log.Log"
SCHEDULE = "io.kestra.plugin.core.trigger.Schedule"


def _log(task_id: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"id": task_id, "type": LOG, "message": "hi", **extra}


def _flow(*tasks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": "demo", "namespace": "company.team", "tasks": list(tasks) or [_log()], **extra}


def _violations(doc: Any, version: str = "1") -> list[str]:
    return [str(v) for v in check_flow(doc, catalogue(version))]


RICH_FLOW: dict[str, Any] = {
    "id": "rich.flow-1",
    "namespace": "company.team",
    "description": "every construct the emulator checks, used correctly",
    "labels": {"team": "data", "system.readOnly": "true"},
    "inputs": [
        {"id": "day", "type": "STRING"},
        {"id": "region", "type": "STRING", "dependsOn": {"inputs": ["day"]}},
    ],
    "variables": {"bucket": "s3://b"},
    "concurrency": {"limit": 1, "behavior": "QUEUE"},
    "sla": [{"id": "late", "type": "MAX_DURATION", "duration": "PT2H", "behavior": "FAIL"}],
    "retry": {"type": "constant", "interval": "PT1M", "maxAttempts": 2},
    "outputs": [{"id": "result", "type": "STRING", "value": "{{ outputs.say.value }}"}],
    "tasks": [
        {
            "id": "dag",
            "type": "io.kestra.plugin.core.flow.Dag",
            "tasks": [
                {"task": _log("a")},
                {
                    "task": {
                        "id": "b",
                        "type": "io.kestra.plugin.scripts.shell.Commands",
                        "commands": ["echo {{ inputs.day }}"],
                        "taskRunner": {"type": "io.kestra.plugin.core.runner.Process"},
                        "timeout": "{{ inputs.timeout }}",
                        "retry": {
                            "type": "exponential",
                            "interval": "PT5S",
                            "maxInterval": "PT1M",
                            "maxAttempts": 4,
                        },
                    },
                    "dependsOn": ["a"],
                },
            ],
        },
        {
            "id": "branch",
            "type": "io.kestra.plugin.core.flow.Switch",
            "value": "{{ inputs.region }}",
            "cases": {"eu": [_log("eu")]},
            "defaults": [_log("elsewhere")],
        },
        {
            "id": "maybe",
            "type": "io.kestra.plugin.core.flow.If",
            "condition": "{{ inputs.day == 'mon' }}",
            "then": [_log("monday")],
            "else": [_log("other_day")],
        },
        {
            "id": "call",
            "type": "io.kestra.plugin.core.http.Request",
            "uri": "https://example.com",
            "method": "POST",
            "body": {"json": "maps become a JSON string"},
            "options": {"auth": {"type": "BASIC", "username": "u", "password": "p"}},
        },
        {
            "id": "poll",
            "type": "io.kestra.plugin.core.flow.LoopUntil",
            "condition": "{{ outputs.probe.code == 200 }}",
            "checkFrequency": {"interval": "PT30S", "maxDuration": "PT1H"},
            "tasks": [{"id": "probe", "type": "io.kestra.plugin.core.http.Request", "uri": "u"}],
        },
        {
            "id": "fail_if",
            "type": "io.kestra.plugin.core.execution.Fail",
            "condition": "{{ false }}",
        },
        {
            "id": "child",
            "type": "io.kestra.plugin.core.flow.Subflow",
            "namespace": "company.team",
            "flowId": "other",
            "wait": "true",
        },
    ],
    "triggers": [
        {
            "id": "nightly",
            "type": SCHEDULE,
            "cron": "0 2 * * *",
            "timezone": "Europe/Paris",
            "recoverMissedSchedules": "LAST",
            "disabled": True,
        },
        {"id": "every_ten_s", "type": SCHEDULE, "cron": "*/10 * * * * *", "withSeconds": True},
    ],
}


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_flow_using_every_checked_construct_correctly_is_accepted(version: str) -> None:
    assert _violations(RICH_FLOW, version) == []


def test_old_type_names_kestra_keeps_as_aliases_are_accepted() -> None:
    assert (
        _violations(_flow({"id": "t", "type": "io.kestra.core.tasks.log.Log", "message": "m"}))
        == []
    )


# --- types -------------------------------------------------------------------


def test_an_unknown_task_type_is_refused_at_its_type() -> None:
    flow = _flow(_log(), {"id": "x", "type": "io.kestra.plugin.nope.Task"})
    assert _violations(flow) == ["tasks[1].type: Invalid type: io.kestra.plugin.nope.Task"]


@pytest.mark.parametrize(
    ("wrong", "real"),
    [
        ("io.kestra.plugin.core.flow.Fail", "io.kestra.plugin.core.execution.Fail"),
        ("io.kestra.plugin.core.flow.Toggle", "io.kestra.plugin.core.trigger.Toggle"),
    ],
)
def test_the_flow_package_fail_and_toggle_do_not_exist_but_the_real_classes_do(
    wrong: str, real: str
) -> None:
    extra = {"trigger": "nightly"} if real.endswith("Toggle") else {}
    assert _violations(_flow({"id": "x", "type": wrong, **extra})) == [
        f"tasks[0].type: Invalid type: {wrong}"
    ]
    assert _violations(_flow({"id": "x", "type": real, **extra})) == []


def test_a_task_without_a_type_is_refused() -> None:
    assert _violations(_flow({"id": "x", "message": "m"})) == [
        "tasks[0].type: missing type id property 'type'"
    ]


def test_a_trigger_type_used_as_a_task_is_refused() -> None:
    assert _violations(_flow({"id": "x", "type": SCHEDULE, "cron": "* * * * *"})) == [
        f"tasks[0].type: Invalid type: {SCHEDULE}"
    ]


def test_a_task_runner_kestra_does_not_know_is_refused_and_process_is_accepted() -> None:
    shell = {"id": "sh", "type": "io.kestra.plugin.scripts.shell.Commands", "commands": ["ls"]}
    ok = dict(shell, taskRunner={"type": "io.kestra.plugin.core.runner.Process"})
    bad = dict(shell, taskRunner={"type": "io.kestra.plugin.nope.Runner"})
    assert _violations(_flow(ok)) == []
    assert _violations(_flow(bad)) == [
        "tasks[0].taskRunner.type: Invalid type: io.kestra.plugin.nope.Runner"
    ]


@pytest.mark.parametrize(
    "removed",
    [
        "io.kestra.plugin.core.flow.ForEach",
        "io.kestra.plugin.core.flow.ForEachItem",
        "io.kestra.plugin.core.flow.EachSequential",
        "io.kestra.plugin.core.flow.EachParallel",
    ],
)
def test_kestra_2_refuses_the_foreach_family_and_kestra_1_knows_it(removed: str) -> None:
    task = {"id": "each", "type": removed}
    assert not any("Invalid type" in v for v in _violations(_flow(task), "1"))
    assert _violations(_flow(task), "2") == [
        f"tasks[0].type: Invalid type: {removed} "
        "(removed in Kestra 2.0: replaced by io.kestra.plugin.core.flow.Loop)"
    ]


def test_loop_takes_the_foreach_shape_in_both_versions() -> None:
    loop = {
        "id": "loop",
        "type": "io.kestra.plugin.core.flow.Loop",
        "values": ["a", "b"],
        "concurrencyLimit": 2,
        "tasks": [_log("item", message="{{ item.value }}")],
    }
    assert _violations(_flow(loop), "1") == []
    assert _violations(_flow(loop), "2") == []


# --- unknown properties ------------------------------------------------------


def test_an_unknown_task_property_is_refused_at_its_path() -> None:
    assert _violations(_flow(_log(mesage="typo"))) == [
        f'tasks[0].mesage: Unrecognized field "mesage" (class {LOG}), not marked as ignorable'
    ]


def test_an_unknown_flow_level_key_is_refused() -> None:
    assert _violations(_flow(timeout="PT1H")) == [
        'timeout: Unrecognized field "timeout" (class io.kestra.core.models.flows.Flow), '
        "not marked as ignorable"
    ]


def test_unknown_keys_of_nested_objects_are_refused() -> None:
    dag = {
        "id": "dag",
        "type": "io.kestra.plugin.core.flow.Dag",
        "tasks": [{"task": _log("a"), "after": ["x"]}],
    }
    retry = _log("r", retry={"type": "constant", "interval": "PT1S", "attempts": 3})
    assert _violations(_flow(dag, retry)) == [
        'tasks[0].tasks[0].after: Unrecognized field "after" (class Dag.DagTask), '
        "not marked as ignorable",
        'tasks[1].retry.attempts: Unrecognized field "attempts" (class retrys.Constant), '
        "not marked as ignorable",
    ]


def test_an_unknown_trigger_key_is_refused_in_both_versions_with_a_2_0_migration_hint() -> None:
    trigger = {"id": "t", "type": SCHEDULE, "cron": "* * * * *", "conditions": [], "bogus": 1}
    flow = _flow(triggers=[trigger])
    unknown_bogus = (
        f'triggers[0].bogus: Unrecognized field "bogus" (class {SCHEDULE}), not marked as ignorable'
    )
    assert _violations(flow, "1") == [unknown_bogus]
    assert _violations(flow, "2") == [
        f'triggers[0].conditions: Unrecognized field "conditions" (class {SCHEDULE}): '
        'trigger conditions were replaced by "when" in Kestra 2.0',
        unknown_bogus,
    ]


def test_when_is_a_2_0_trigger_property() -> None:
    flow = _flow(triggers=[{"id": "t", "type": SCHEDULE, "cron": "* * * * *", "when": "true"}])
    assert _violations(flow, "2") == []
    assert _violations(flow, "1") == [
        f'triggers[0].when: Unrecognized field "when" (class {SCHEDULE}), not marked as ignorable'
    ]


def test_flow_properties_follow_the_version() -> None:
    listeners = _flow(listeners=[])
    selector = _flow(workerSelector={"tags": ["gpu"]})
    assert _violations(listeners, "1") == []
    assert _violations(listeners, "2") == [
        'listeners: Unrecognized field "listeners" (class io.kestra.core.models.flows.Flow), '
        "not marked as ignorable"
    ]
    assert _violations(selector, "2") == []
    assert len(_violations(selector, "1")) == 1


# --- required properties and patterns -----------------------------------------


def test_a_missing_required_property_is_refused_at_its_path() -> None:
    subflow = {"id": "s", "type": "io.kestra.plugin.core.flow.Subflow", "namespace": "n"}
    assert _violations(_flow({"id": "l", "type": LOG}, subflow)) == [
        "tasks[0].message: must not be null",
        "tasks[1].flowId: must not be null",
    ]


def test_a_flow_without_tasks_and_a_flow_with_an_empty_task_list_are_refused() -> None:
    no_tasks = {"id": "demo", "namespace": "company.team"}
    assert _violations(no_tasks) == ["tasks: must not be null"]
    assert _violations(dict(no_tasks, tasks=[])) == ["tasks: must not be empty"]


def test_a_required_property_with_a_default_may_be_left_out() -> None:
    # Parallel.concurrent is @NotNull with a default; Subflow.wait has a default.
    parallel = {"id": "p", "type": "io.kestra.plugin.core.flow.Parallel", "tasks": [_log()]}
    assert _violations(_flow(parallel)) == []


@pytest.mark.parametrize(
    ("flow", "expected"),
    [
        (_flow(_log("bad id")), 'tasks[0].id: must match "^[a-zA-Z0-9][a-zA-Z0-9_-]*"'),
        (_flow(_log("dotted.id")), 'tasks[0].id: must match "^[a-zA-Z0-9][a-zA-Z0-9_-]*"'),
        (dict(_flow(), id="-leading"), 'id: must match "^[a-zA-Z0-9][a-zA-Z0-9._-]*"'),
        (dict(_flow(), namespace="Company"), 'namespace: must match "^[a-z0-9][a-z0-9._-]*"'),
        (dict(_flow(), id="x" * 101), "id: size must be between 1 and 100"),
        (
            _flow(triggers=[{"id": "every day", "type": SCHEDULE, "cron": "@daily"}]),
            'triggers[0].id: must match "^[a-zA-Z0-9][a-zA-Z0-9_-]*"',
        ),
    ],
)
def test_ids_that_do_not_match_kestras_patterns_are_refused(
    flow: dict[str, Any], expected: str
) -> None:
    assert _violations(flow) == [expected]


# --- class-level validators ------------------------------------------------------


def test_a_dag_dependency_naming_no_task_of_the_dag_is_refused() -> None:
    dag = {
        "id": "dag",
        "type": "io.kestra.plugin.core.flow.Dag",
        "tasks": [{"task": _log("a"), "dependsOn": ["ghost", "outside"]}],
    }
    assert _violations(_flow(_log("outside"), dag)) == [
        "tasks[1]: Not existing task id in dependency: ghost, outside"
    ]


def test_a_dag_dependency_cycle_is_refused() -> None:
    dag = {
        "id": "dag",
        "type": "io.kestra.plugin.core.flow.Dag",
        "tasks": [
            {"task": _log("a"), "dependsOn": ["b"]},
            {"task": _log("b"), "dependsOn": ["a"]},
        ],
    }
    assert _violations(_flow(dag)) == ["tasks[0]: Cyclic dependency detected: a, b"]


def test_duplicate_task_ids_anywhere_in_the_flow_are_refused() -> None:
    parallel = {"id": "p", "type": "io.kestra.plugin.core.flow.Parallel", "tasks": [_log("a")]}
    assert _violations(_flow(_log("a"), parallel)) == [
        "tasks[1].tasks[0].id: Duplicate task id with name [a]"
    ]


def test_duplicate_trigger_ids_are_refused() -> None:
    schedule = {"id": "t", "type": SCHEDULE, "cron": "@hourly"}
    assert _violations(_flow(triggers=[schedule, dict(schedule)])) == [
        "triggers[1].id: Duplicate trigger id with name [t]"
    ]


def test_a_switch_without_cases_or_defaults_is_refused() -> None:
    switch = {"id": "s", "type": "io.kestra.plugin.core.flow.Switch", "value": "{{ x }}"}
    assert _violations(_flow(switch)) == [
        "tasks[0]: No task defined, neither cases or default have any tasks"
    ]


def test_a_subflow_calling_its_own_flow_is_refused() -> None:
    me = {
        "id": "me",
        "type": "io.kestra.plugin.core.flow.Subflow",
        "namespace": "company.team",
        "flowId": "demo",
    }
    assert _violations(_flow(me)) == ["tasks[0]: Recursive call to flow [company.team.demo]"]


def test_system_labels_are_refused_except_system_read_only() -> None:
    as_map = _flow(labels={"system.correlationId": "x", "system.readOnly": "true"})
    as_list = _flow(labels=[{"key": "system.other", "value": "y"}])
    assert _violations(as_map) == [
        "labels[system.correlationId]: System labels can only be set by Kestra itself, "
        "offending label: system.correlationId=x"
    ]
    assert _violations(as_list) == [
        "labels[0]: System labels can only be set by Kestra itself, offending label: system.other=y"
    ]


def test_a_trigger_may_not_carry_any_system_label() -> None:
    trigger = {"id": "t", "type": SCHEDULE, "cron": "@daily", "labels": {"system.readOnly": "1"}}
    assert _violations(_flow(triggers=[trigger])) == [
        "triggers[0].labels[system.readOnly]: System labels can only be set by Kestra itself, "
        "offending label: system.readOnly=1."
    ]


def test_inputs_must_have_unique_ids_and_depend_on_existing_inputs() -> None:
    inputs = [
        {"id": "a", "type": "STRING"},
        {"id": "a", "type": "STRING"},
        {"id": "b", "type": "STRING", "dependsOn": {"inputs": ["ghost"]}},
    ]
    assert _violations(_flow(inputs=inputs)) == [
        "inputs[1].id: Duplicate input with name [a]",
        "inputs: Input with id 'b' depends on a non-existent input 'ghost'.",
    ]


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        ({"cron": "61 * * * *"}, "triggers[0].cron: invalid cron expression '61 * * * *'"),
        (
            {"cron": "*/10 * * * * *"},
            "triggers[0].cron: invalid cron expression '*/10 * * * * *'",
        ),
        (
            {"cron": "@daily", "timezone": "Mars/Olympus"},
            "triggers[0].timezone: timezone 'Mars/Olympus' is not a valid time-zone ID",
        ),
    ],
)
def test_a_schedule_needs_a_valid_cron_and_time_zone(
    trigger: dict[str, Any], expected: str
) -> None:
    flow = _flow(triggers=[{"id": "t", "type": SCHEDULE, **trigger}])
    assert _violations(flow) == [expected]


# --- plain typed fields are typed when the flow is parsed ------------------------


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        (
            _log(disabled="{{ inputs.off }}"),
            "tasks[0].disabled: Cannot deserialize value of type `java.lang.Boolean` "
            'from String "{{ inputs.off }}"',
        ),
        (
            _log(retry={"type": "constant", "interval": "{{ inputs.wait }}"}),
            "tasks[0].retry.interval: Cannot deserialize value of type `java.time.Duration` "
            'from String "{{ inputs.wait }}"',
        ),
        (
            _log(logLevel="{{ inputs.level }}"),
            "tasks[0].logLevel: Cannot deserialize value of type `org.slf4j.event.Level` "
            'from String "{{ inputs.level }}": not one of the values accepted for Enum class: '
            "[ERROR, WARN, INFO, DEBUG, TRACE]",
        ),
        (
            {
                "id": "s",
                "type": "io.kestra.plugin.core.flow.Subflow",
                "namespace": "n",
                "flowId": {"id": "other"},
            },
            "tasks[0].flowId: Cannot deserialize value of type `java.lang.String` "
            "from Object value",
        ),
        (
            _log(allowFailure=[True]),
            "tasks[0].allowFailure: Cannot deserialize value of type `boolean` from Array value",
        ),
    ],
)
def test_a_plain_typed_field_refuses_a_pebble_string_or_a_wrong_type(
    task: dict[str, Any], expected: str
) -> None:
    assert _violations(_flow(task)) == [expected]


def test_an_integer_field_refuses_a_pebble_string_in_kestra_1() -> None:
    each = {
        "id": "each",
        "type": "io.kestra.plugin.core.flow.ForEach",
        "values": [1, 2],
        "concurrencyLimit": "{{ inputs.n }}",
        "tasks": [_log()],
    }
    assert _violations(_flow(each), "1") == [
        "tasks[0].concurrencyLimit: Cannot deserialize value of type `java.lang.Integer` "
        'from String "{{ inputs.n }}"'
    ]


def test_an_enum_field_refuses_a_constant_it_does_not_have() -> None:
    trigger = {"id": "t", "type": SCHEDULE, "cron": "@daily", "recoverMissedSchedules": "SOME"}
    assert _violations(_flow(triggers=[trigger])) == [
        "triggers[0].recoverMissedSchedules: Cannot deserialize value of type "
        '`RecoverMissedSchedules` from String "SOME": not one of the values accepted for '
        "Enum class: [LAST, NONE, ALL]"
    ]


def test_property_fields_take_pebble_and_plain_fields_take_what_jackson_coerces() -> None:
    task = _log(
        timeout="{{ inputs.timeout }}",  # Property<Duration>: typed only at run time
        disabled="false",  # "false" coerces to Boolean
        retry={"type": "constant", "interval": 30, "maxAttempts": "3"},  # seconds; "3" → 3
    )
    assert _violations(_flow(task)) == []


# --- retries ------------------------------------------------------------------


def test_retry_attempts_take_both_names_and_must_be_positive() -> None:
    plural = _log("a", retry={"type": "constant", "interval": "PT1S", "maxAttempts": 0})
    singular = _log("b", retry={"type": "constant", "interval": "PT1S", "maxAttempt": 3})
    assert _violations(_flow(plural, singular)) == [
        "tasks[0].retry.maxAttempts: must be greater than or equal to 1"
    ]


def test_retry_shapes_are_checked_per_retry_type() -> None:
    no_max = _log("a", retry={"type": "exponential", "interval": "PT1S"})
    unknown = _log("b", retry={"type": "linear", "interval": "PT1S"})
    disordered = _log("c", retry={"type": "constant", "interval": "PT1H", "maxDuration": "PT1M"})
    assert _violations(_flow(no_max, unknown, disordered)) == [
        "tasks[0].retry.maxInterval: must not be null",
        "tasks[1].retry.type: Invalid type: linear "
        "(known retry types: constant, exponential, random)",
        "tasks[2].retry: 'interval' must be less than 'maxDuration'",
    ]


# --- documents and versions ---------------------------------------------------------


def test_parse_flow_returns_the_body_or_raises_with_every_violation() -> None:
    assert (
        parse_flow(
            "id: a\nnamespace: n\ntasks: [{id: t, type: " + LOG + ", message: m}]\n", catalogue()
        )["id"]
        == "a"
    )
    with pytest.raises(FlowInvalid) as err:
        parse_flow("id: a\nnamespace: n\ntasks: [{id: t, type: " + LOG + "}]\n", catalogue())
    assert [str(v) for v in err.value.violations] == ["tasks[0].message: must not be null"]
    with pytest.raises(FlowInvalid) as bad_yaml:
        parse_flow("id: [unclosed\n", catalogue())
    assert bad_yaml.value.violations[0].path == "yaml"


def test_checking_does_not_change_the_flow() -> None:
    flow = copy.deepcopy(RICH_FLOW)
    check_flow(flow, catalogue("2"))
    assert flow == RICH_FLOW


def test_a_version_is_read_by_its_major_number() -> None:
    assert (major("1"), major("1.3.2"), major("2.0.0-SNAPSHOT")) == ("1", "1", "2")
    with pytest.raises(ValueError, match=r"1\.x or 2\.x"):
        major("0.21")
