"""Every generated flow is data serialised once: comments cannot add keys, no aliases, read back.

The corpus test covers every translation and every wrap the corpus allows;
the job keys here are the ones a cron host can report, stored as they were
before any edge check (`model_construct`), since the serialiser must hold on
its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest
import yaml

from gateway.contract import JobSpec, TaskSpec
from migration_tools.translate import FlowYamlError, render_flow, translate
from migration_tools.translate.flow_yaml import check_round_trip, comment_block
from migration_tools.wrap import AirflowTarget, WrapError, WrapOptions, wrap
from tests.migration_tools.corpus_loader import case_name, corpus_cases, load_case

CASES = corpus_cases()
INJECTED = "\nfinally:\n  - id: x\n    type: io.kestra.plugin.scripts.shell.Commands\n"
BREAKS = ["\n", "\r", "\r\n", "\u0085", "\u2028", "\u2029"]
WRAP_KEYS = {"id", "namespace", "description", "labels", "tasks", "triggers"}
VERSIONS: tuple[Literal["2", "3"], ...] = ("2", "3")


def crontab_job(key: str, command: str = "/usr/local/bin/backup.sh") -> JobSpec:
    return JobSpec.model_construct(
        source="cron-hosts",
        key=key,
        kind="crontab",
        name="backup",
        schedule="0 3 * * *",
        schedule_native="0 3 * * *",
        timezone="UTC",
        labels={},
        tasks=[],
        edges=[],
        definition={"command": command, "host": "web-01", "user": "root"},
    )


def anchors_and_aliases(text: str) -> list[str]:
    """Every anchor or alias in `text`, as the YAML parser sees it."""
    found = []
    for event in yaml.parse(text):
        anchor = getattr(event, "anchor", None)
        if isinstance(event, yaml.AliasEvent) or anchor:
            found.append(f"{type(event).__name__} {anchor}")
    return found


@pytest.mark.parametrize("line_break", BREAKS, ids=[repr(b) for b in BREAKS])
def test_a_job_key_with_a_line_break_adds_no_top_level_key_to_the_wrap_flow(
    line_break: str,
) -> None:
    key = "web-01/root/0123456789ab" + INJECTED.replace("\n", line_break)
    flow = yaml.safe_load(wrap(crontab_job(key)).yaml_text)
    assert set(flow) == WRAP_KEYS
    assert [t["id"] for t in flow["tasks"]] == ["switchyard_trace", "switchyard_label", "command"]


def test_the_translation_header_of_such_a_key_stays_one_comment() -> None:
    t = translate(crontab_job("k" + INJECTED))
    assert set(yaml.safe_load(t.yaml_text)) == {
        "id",
        "namespace",
        "description",
        "labels",
        "tasks",
        "triggers",
    }
    header = t.yaml_text.split("\nid: ", 1)[0].splitlines()
    assert all(line == "#" or line.startswith("# ") for line in header)
    assert "# finally:" in header


def test_comments_are_split_on_every_yaml_line_break_and_unprintables_escaped() -> None:
    text = "a\x00b\rc\u2028d\u0085e\u2029f\x1bg\th"
    block = comment_block(text)
    assert block == "# a\\x00b\n# c\n# d\n# e\n# f\\x1bg\\th\n"
    assert yaml.safe_load(block + "k: 1\n") == {"k": 1}
    flow = {"id": "x", "namespace": "n", "tasks": [{"id": "t", "type": "T", "message": text}]}
    assert yaml.safe_load(render_flow(flow, comment=text)) == flow


def test_a_text_that_does_not_read_back_as_built_is_refused_naming_the_path() -> None:
    flow: dict[str, Any] = {"id": "x", "tasks": [{"id": "t", "commands": ["echo"]}]}
    forged = "id: x\ntasks:\n- id: t\n  commands:\n  - echo\nfinally: []\n"
    with pytest.raises(FlowYamlError, match="finally: read but never built"):
        check_round_trip(flow, forged)
    with pytest.raises(FlowYamlError, match=r"tasks\[0\]\.commands\[0\]: 'echo' was built, 1"):
        check_round_trip(flow, "id: x\ntasks:\n- id: t\n  commands:\n  - 1\n")
    with pytest.raises(FlowYamlError, match=r"tasks\[0\]\.retry: True was built, 1 was read"):
        check_round_trip({"tasks": [{"retry": True}]}, "tasks:\n- retry: 1\n")
    check_round_trip(flow, render_flow(flow))


def test_two_tasks_sharing_a_rule_get_no_yaml_alias() -> None:
    dag = JobSpec(
        source="airflow",
        key="two",
        kind="dag",
        schedule="0 1 * * *",
        tasks=[
            TaskSpec(id="a", type="BashOperator", arguments={"bash_command": "echo a"}),
            TaskSpec(id="b", type="BashOperator", arguments={"bash_command": "echo b"}),
        ],
    )
    text = translate(dag).yaml_text
    assert anchors_and_aliases(text) == []
    assert text.count("type: io.kestra.plugin.core.runner.Process") == 2


def _wraps(spec: JobSpec) -> list[str]:
    try:
        return [
            wrap(spec, WrapOptions(airflow=AirflowTarget("http://af:8080", v))).yaml_text
            for v in VERSIONS
        ]
    except WrapError:
        return []  # not wrappable (no schedule Kestra can carry): nothing generated


@pytest.mark.parametrize("case", CASES, ids=[case_name(c) for c in CASES])
def test_no_generated_flow_has_yaml_anchors_or_aliases(case: Path) -> None:
    spec, options = load_case(case)
    for text in [translate(spec, **options).yaml_text, *_wraps(spec)]:
        assert anchors_and_aliases(text) == []
        assert "&id" not in text and "*id" not in text
