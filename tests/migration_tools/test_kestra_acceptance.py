"""Every flow Switchyard generates is accepted by a Kestra server of the version it targets.

The Kestra emulators judge flows by Kestra's own task definitions (the Java
property lists of `emulators/kestra/data/kestra-tasks.json`), not by
Switchyard's `validate_flow`; flows travel over HTTP through the official
`kestrapy` client, as a deployment does, and every exchange is checked
against Kestra's OpenAPI document.
"""

from __future__ import annotations

import pytest

from emulators.kestra import KestraEmulator
from migration_tools.kestra_api import KestraApi, KestraApiError
from migration_tools.translate import translate, validate_flow
from migration_tools.wrap import WRAPPED_KINDS, AirflowTarget, WrapError, WrapOptions, wrap
from tests.migration_tools.corpus_loader import CORPUS, case_name, corpus_cases, load_case

VERSIONS = ("1", "2")
NO_SCHEDULE = "it has no schedule Kestra can carry"


@pytest.fixture
def servers(kestra: KestraEmulator, kestra2: KestraEmulator) -> dict[str, KestraApi]:
    """One Kestra server per major version, as a target is one version."""
    return {"1": KestraApi(kestra.url, timeout=10), "2": KestraApi(kestra2.url, timeout=10)}


def test_every_corpus_translation_is_accepted_by_a_server_of_its_version(
    servers: dict[str, KestraApi],
) -> None:
    saved = []
    for case in corpus_cases():
        spec, options = load_case(case)
        for version in VERSIONS:
            t = translate(spec, **{**options, "kestra_version": version})
            flow = servers[version].put_flow(t.namespace, t.flow_id, t.yaml_text)
            saved.append((case_name(case), version, flow["id"]))
    assert len(saved) == len(VERSIONS) * len(corpus_cases())


def test_every_wrap_flow_is_accepted_by_a_server_of_its_version(
    servers: dict[str, KestraApi],
) -> None:
    wrapped: set[tuple[str, str, str]] = set()
    for case in corpus_cases():
        spec, _ = load_case(case)
        for version in VERSIONS:
            for airflow in ("2", "3"):
                options = WrapOptions(
                    kestra_version=version, airflow=AirflowTarget("http://airflow:8080", airflow)
                )
                try:
                    w = wrap(spec, options)
                except WrapError as exc:
                    assert NO_SCHEDULE in str(exc), exc  # only a job with nothing to take over
                    continue
                servers[version].put_flow(w.namespace, w.flow_id, w.yaml_text)
                wrapped.add((spec.kind, version, airflow if spec.kind == "dag" else "-"))
    assert {kind for kind, _, _ in wrapped} == WRAPPED_KINDS
    assert {(v, a) for kind, v, a in wrapped if kind == "dag"} == {
        (v, a) for v in VERSIONS for a in ("2", "3")
    }


# Each line is a mistake Switchyard's own validator does not look for, and
# Kestra refuses: a type that does not exist, a misspelt property, a Pebble
# expression in a plain Integer field.
KESTRA_REFUSES = """\
id: refused
namespace: switchyard.migrated
tasks:
- id: toggle
  type: io.kestra.plugin.core.flow.Toggle
- id: say
  type: io.kestra.plugin.core.log.Log
  message: hi
  mesage: typo
- id: each
  type: io.kestra.plugin.core.flow.ForEach
  values: [a, b]
  concurrencyLimit: "{{ inputs.parallelism }}"
  tasks:
  - {id: one, type: io.kestra.plugin.core.log.Log, message: "{{ taskrun.value }}"}
"""


def test_the_server_refuses_a_flow_our_own_validator_accepts(
    servers: dict[str, KestraApi],
) -> None:
    assert validate_flow(KESTRA_REFUSES, kestra_version="1") == []
    with pytest.raises(KestraApiError) as err:
        servers["1"].create_flow(KESTRA_REFUSES)
    assert err.value.status == 422
    assert err.value.message == (
        "Invalid entity: tasks[0].type: Invalid type: io.kestra.plugin.core.flow.Toggle, "
        'tasks[1].mesage: Unrecognized field "mesage" (class io.kestra.plugin.core.log.Log), '
        "not marked as ignorable, "
        "tasks[2].concurrencyLimit: Cannot deserialize value of type `java.lang.Integer` "
        'from String "{{ inputs.parallelism }}"'
    )


def test_a_flow_for_kestra_1_is_refused_by_a_kestra_2_server(
    servers: dict[str, KestraApi],
) -> None:
    spec, options = load_case(
        next(c for c in corpus_cases() if case_name(c) == "dags__invoice_fanout")
    )
    one_x = translate(spec, **{**options, "kestra_version": "1"})
    assert "io.kestra.plugin.core.flow.ForEach" in one_x.yaml_text
    servers["1"].create_flow(one_x.yaml_text)
    with pytest.raises(KestraApiError) as err:
        servers["2"].create_flow(one_x.yaml_text)
    assert err.value.status == 422
    assert (
        "tasks[0].tasks[0].task.type: Invalid type: io.kestra.plugin.core.flow.ForEach"
        in err.value.message
    )


def test_a_schedule_with_trigger_conditions_is_refused_by_kestra_2_only(
    servers: dict[str, KestraApi],
) -> None:
    spec, options = load_case(CORPUS / "crontab" / "db1_pg_backup.yaml")
    text = translate(spec, **options).yaml_text.replace(
        "  disabled: true\n", "  disabled: true\n  conditions: []\n"
    )
    assert "conditions: []" in text
    servers["1"].create_flow(text)
    with pytest.raises(KestraApiError) as err:
        servers["2"].create_flow(text)
    assert err.value.message == (
        'Invalid entity: triggers[0].conditions: Unrecognized field "conditions" '
        "(class io.kestra.plugin.core.trigger.Schedule): "
        'trigger conditions were replaced by "when" in Kestra 2.0'
    )
