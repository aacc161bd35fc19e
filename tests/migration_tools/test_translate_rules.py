"""Translation behaviour beyond the corpus: placeholders, rules, errors, versions."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.contract import JobSpec, TaskSpec
from migration_tools.translate import (
    PLACEHOLDER_MARK,
    RuleError,
    TranslationError,
    load_rules,
    translate,
)
from migration_tools.translate.aws_lambda import eventbridge_to_cron
from migration_tools.translate.rules import DEFAULT_DIR

DAG_TEXT = """
import requests
from airflow.models import Variable

BUCKET = Variable.get("bucket")


def upload(path):
    requests.put(f"https://store/{BUCKET}/{path}", data=open(path, "rb"))
"""


def _dag(*tasks: TaskSpec, edges: list[tuple[str, str]] | None = None, **kw: object) -> JobSpec:
    return JobSpec(
        source="airflow", key="d", kind="dag", tasks=list(tasks), edges=edges or [], **kw
    )  # type: ignore[arg-type]


def test_unknown_operator_becomes_a_marked_placeholder_carrying_the_original() -> None:
    t = translate(_dag(TaskSpec(id="x", type="FancyOperator", arguments={"query": "select 1"})))
    assert t.readiness == "none"
    assert [p.task_id for p in t.placeholders] == ["x"]
    task = t.flow["tasks"][0]["tasks"][0]["task"]
    assert task["type"] == "io.kestra.plugin.core.log.Log"
    assert task["message"].startswith(PLACEHOLDER_MARK)
    assert '"query": "select 1"' in task["description"]
    assert t.flow["disabled"] is True


def test_a_user_rule_folder_turns_a_placeholder_into_a_translation(tmp_path: Path) -> None:
    (tmp_path / "zz-local.yaml").write_text(
        "operators:\n"
        "  FancyOperator:\n"
        "    type: io.kestra.plugin.jdbc.postgresql.Query\n"
        "    required: [query]\n"
        "    properties:\n"
        "      sql: {arg: query}\n"
    )
    rules = load_rules(DEFAULT_DIR, tmp_path)
    t = translate(
        _dag(TaskSpec(id="x", type="FancyOperator", arguments={"query": "select 1"})),
        rules=rules,
    )
    assert t.readiness == "full"
    assert t.flow["tasks"][0]["tasks"][0]["task"] == {
        "id": "x",
        "type": "io.kestra.plugin.jdbc.postgresql.Query",
        "sql": "select 1",
    }
    assert "disabled" not in t.flow


def test_a_malformed_rule_names_its_file_and_entry(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("operators:\n  X:\n    type: not a class\n")
    with pytest.raises(RuleError, match=r"bad.yaml: operators.X: type must be"):
        load_rules(tmp_path)


def test_missing_required_argument_is_a_placeholder_not_a_guess() -> None:
    t = translate(_dag(TaskSpec(id="b", type="BashOperator")))
    assert t.placeholders[0].reason == "required argument(s) missing: bash_command"


def test_python_callable_using_airflow_objects_and_third_party_modules_is_partial() -> None:
    t = translate(
        _dag(
            TaskSpec(id="up", type="PythonOperator", arguments={"python_callable": "upload"}),
            source_text=DAG_TEXT,
        )
    )
    assert t.readiness == "partial"
    assert any("names the DAG file does not define: BUCKET" in r for r in t.reasons)
    assert any("script imports requests" in n for n in t.notes)
    script = t.flow["tasks"][0]["tasks"][0]["task"]["script"]
    assert "import requests" in script and "Variable" not in script


def test_lambda_callable_cannot_be_lifted_and_is_a_placeholder() -> None:
    t = translate(
        _dag(
            TaskSpec(id="l", type="PythonOperator", arguments={"python_callable": "<lambda>"}),
            source_text="x = 1\n",
        )
    )
    assert "no top-level function" in t.placeholders[0].reason


def test_edges_naming_unknown_tasks_are_a_typed_error() -> None:
    with pytest.raises(TranslationError, match=r"d: edges\[0\]: unknown task 'ghost'"):
        translate(
            _dag(
                TaskSpec(id="a", type="BashOperator", arguments={"bash_command": "x"}),
                edges=[("ghost", "a")],
            )
        )


def test_crontab_without_command_is_a_typed_error() -> None:
    spec = JobSpec(source="cron", key="h:1", kind="crontab", schedule="* * * * *")
    with pytest.raises(TranslationError, match=r"definition\.command"):
        translate(spec)


def test_crontab_local_option_overrides_ssh() -> None:
    spec = JobSpec(
        source="cron",
        key="h:1",
        kind="crontab",
        schedule="5 * * * *",
        definition={"command": "echo hi", "host": "h1"},
    )
    assert translate(spec).flow["tasks"][0]["type"] == "io.kestra.plugin.fs.ssh.Command"
    local = translate(spec, local=True).flow["tasks"][0]
    assert local["type"] == "io.kestra.plugin.scripts.shell.Commands"
    assert local["commands"] == ["echo hi"]


def test_unsupported_kind_is_readiness_none_with_original_kept() -> None:
    spec = JobSpec(source="k", key="j", kind="k8s_job", definition={"kind": "Job"})
    t = translate(spec)
    assert t.readiness == "none"
    assert "'kind': 'Job'" in t.yaml_text.replace('"', "'")


def test_triggers_are_disabled_until_cutover_unless_asked() -> None:
    spec = JobSpec(
        source="cron",
        key="h:1",
        kind="crontab",
        schedule="5 * * * *",
        definition={"command": "echo hi", "host": "h1"},
    )
    assert translate(spec).flow["triggers"][0]["disabled"] is True
    assert "disabled" not in translate(spec, enable_triggers=True).flow["triggers"][0]


def test_bad_namespace_or_version_is_refused() -> None:
    spec = JobSpec(source="c", key="k", kind="crontab", definition={"command": "x", "host": "h"})
    with pytest.raises(ValueError, match="namespace"):
        translate(spec, namespace="Bad Space")
    with pytest.raises(ValueError, match="kestra_version"):
        translate(spec, kestra_version="3")


@pytest.mark.parametrize(
    ("expression", "cron"),
    [
        ("cron(0 3 * * ? *)", "0 3 * * *"),
        ("cron(0 8 ? * 2-6 *)", "0 8 * * 1-5"),
        ("cron(0 8 ? * MON-FRI *)", "0 8 * * MON-FRI"),
        ("rate(5 minutes)", "*/5 * * * *"),
        ("rate(1 hour)", "0 * * * *"),
        ("rate(1 day)", "0 0 * * *"),
        ("rate(7 minutes)", None),
        ("cron(0 8 L * ? *)", None),
        ("cron(0 8 * * ? 2027)", None),
    ],
)
def test_eventbridge_schedules_convert_only_when_exact(expression: str, cron: str | None) -> None:
    assert eventbridge_to_cron(expression) == cron


def test_facts_the_airflow_adapter_reads_from_the_api_are_not_untranslated_arguments() -> None:
    # What the real Airflow 3 adapter puts beside the file's arguments: `_<field>`.
    api = {
        "_operator_module": "airflow.providers.standard.operators.bash",
        "_trigger_rule": "all_success",
        "_pool": "default_pool",
        "_queue": "default",
        "_is_mapped": False,
    }
    plain = TaskSpec(id="refresh", type="BashOperator", arguments={"bash_command": "echo", **api})
    t = translate(_dag(plain, schedule="45 4 * * *"))
    assert (t.readiness, t.reasons) == ("full", ())

    odd = dict(api, _trigger_rule="all_done", _is_mapped=True)
    task = TaskSpec(id="refresh", type="BashOperator", arguments={"bash_command": "echo", **odd})
    reasons = translate(_dag(task, schedule="45 4 * * *")).reasons
    assert any("trigger_rule 'all_done'" in r for r in reasons)
    assert any("mapped, but its expand() is not in the DAG file" in r for r in reasons)
