"""Text taken from a legacy job reaches Kestra's task as that text: Pebble never runs it.

Checked against `kestra_render`, a port of Kestra's own `{% raw %}` handling,
for hand-picked break-out attempts and for generated text built from the
pieces that matter (delimiters, raw tags with Kestra's spacing and `-`
variants, every line terminator Java's `.` stops at).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.contract import JobSpec, TaskSpec
from migration_tools.translate import translate
from migration_tools.translate.pebble import expression, join, literal
from tests.migration_tools.kestra_render import PebbleWouldRun, render, render_list

BREAK_OUTS = [
    "/opt/sync.sh --key {{ secret('AWS') }}",
    "echo {% if true %}yes{% endif %}",
    "echo ${#ARRAY[@]} {# comment #}",
    "a {% endraw %}{{ secret('AWS') }}",
    "a {%- endraw -%}{{ secret('AWS') }}",
    "a {%endraw%}{{ secret('AWS') }}{% raw %}",
    "{% raw %}{{ secret('AWS') }}{% endraw %}",
    "line one {{ x }}\n{% endraw %}{{ secret('AWS') }}\r\nthird {{\u2028{%\u0085#}",
    "ends with a brace {",
    "{%",
    "{{",
    "",
]

PIECES = st.sampled_from(
    [
        "{",
        "}",
        "%",
        "#",
        "-",
        " ",
        "x",
        "{{",
        "}}",
        "{%",
        "%}",
        "{#",
        "#}",
        "{% raw %}",
        "{% endraw %}",
        "{%- endraw -%}",
        "{%endraw%}",
        "{%\tendraw %}",
        "{{ secret('AWS') }}",
        "\n",
        "\r",
        "\r\n",
        "\u0085",
        "\u2028",
        "\u2029",
        "\t",
    ]
)


@pytest.mark.parametrize("text", BREAK_OUTS)
def test_literal_text_renders_back_to_itself_and_pebble_sees_none_of_it(text: str) -> None:
    assert render(literal(text)) == text
    assert render_list([literal(text)]) == [text]


def test_an_unprotected_command_would_have_been_evaluated() -> None:
    # What the check guards against: the command as it was copied before.
    with pytest.raises(PebbleWouldRun, match="secret"):
        render("/opt/sync.sh --key {{ secret('AWS') }}")


@settings(max_examples=400, deadline=None)
@given(st.lists(PIECES, max_size=24).map("".join))
def test_no_text_steps_out_of_its_raw_blocks(text: str) -> None:
    wrapped = literal(text)
    assert render(wrapped) == text
    assert render_list([wrapped, wrapped]) == [text, text]


@settings(max_examples=200, deadline=None)
@given(st.lists(PIECES, max_size=12).map("".join), st.lists(PIECES, max_size=12).map("".join))
def test_text_joined_with_an_expression_keeps_only_the_expression_live(
    before: str, after: str
) -> None:
    mixed = join(before, expression("{{ execution.id }}"), after)
    assert render(mixed, {"{{ execution.id }}": "EXEC"}) == before + "EXEC" + after


def test_a_text_without_pebble_delimiters_is_left_as_it_is() -> None:
    assert literal("tar -czf /backup/$(date +%F).tgz /etc { x }") == (
        "tar -czf /backup/$(date +%F).tgz /etc { x }"
    )


def test_a_bash_command_keeps_known_macros_live_and_unknown_templates_literal() -> None:
    dag = JobSpec(
        source="airflow",
        key="reports",
        kind="dag",
        schedule="0 6 * * *",
        tasks=[
            TaskSpec(
                id="build",
                type="BashOperator",
                arguments={
                    "bash_command": "make DAY={{ ds }} KEY={{ var.value.key }} {% endraw %}"
                },
            )
        ],
    )
    (command,) = translate(dag).flow["tasks"][0]["tasks"][0]["task"]["commands"]
    day = "{{ (trigger.date ?? execution.startDate) | date('yyyy-MM-dd') }}"
    assert render(command, {day: "2026-03-01"}) == (
        "make DAY=2026-03-01 KEY={{ var.value.key }} {% endraw %}"
    )
