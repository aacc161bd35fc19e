"""Text from legacy systems stays text in Kestra: Pebble never runs it.

Kestra renders most task properties with Pebble before a task runs, so a
command copied from a crontab that says `{{ secret('AWS') }}` would reach the
host as Kestra's secret, and `{% ... %}` would run as a Pebble tag. Every
string a flow takes from a `JobSpec` (commands, scripts, URLs, payloads, pod
specs, hosts, users) is therefore made literal; only text Switchyard wrote as
an expression on purpose (its own `{{ outputs… }}`, the secrets the mapping
rules name, the Airflow macros the rules translate) stays live.

Kestra's `{% raw %}…{% endraw %}` is not a Pebble tag. Kestra's
`VariableRenderer` (kestra-io/kestra, core/…/runners/VariableRenderer.java)
cuts `{%-*\\s*raw\\s*-*%}(.*?){%-*\\s*endraw\\s*-*%}` out with a regular
expression before Pebble sees the text and puts the inside back afterwards.
Two facts of that expression shape `literal`:

1. the first `{% endraw %}` (any spacing, any `-`) ends the block, so a text
   holding one would step out of it: each `{%` of the text is split across
   two blocks (`…{` | `%…`), so no block ever contains `{%`;
2. it is compiled without DOTALL, so `.` stops at a line terminator: each
   line is its own block, and the line breaks between blocks are plain text
   that Pebble leaves as it is.

A line without a Pebble delimiter (`{{`, `{%`, `{#`) is left bare: Pebble
reads nothing in it. The last line is wrapped too when it ends in `{`, so an
expression joined after it cannot form a delimiter with it.

`Pebble` marks a string as final: an expression Switchyard wrote, or text
already made literal. `safe_flow` leaves marked strings alone and makes every
other string of every rendered property literal, so anything a translator
forgets to mark ends up inert, never live. Flow labels, descriptions, ids and
types are left alone: Kestra does not render them (`LabelService`: flow labels
"no need for rendering"), and the Kestra adapter reads `switchyard.job` back
from them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

RAW_OPEN = "{% raw %}"
RAW_CLOSE = "{% endraw %}"
PEBBLE_DELIMITERS = ("{{", "{%", "{#")
# What java.util.regex's `.` does not match without DOTALL (and without UNIX_LINES).
_LINE_BREAK = re.compile("(\r\n|[\n\r\u0085\u2028\u2029])")

# Flow and task keys Kestra never renders; everything else a task carries may be.
_FLOW_NOT_RENDERED = frozenset({"id", "namespace", "description", "labels"})
_TASK_NOT_RENDERED = frozenset({"id", "type", "description"})
_CHILD_TASKS = ("tasks", "errors", "finally", "then", "else", "afterExecution")
DAG_TYPE = "io.kestra.plugin.core.flow.Dag"


class Pebble(str):
    """Text that goes into a flow as it is: Switchyard's own expression, or text made literal."""

    __slots__ = ()

    def __str__(self) -> Pebble:
        # `str(x)` keeps the mark, so a translator that normalises with str()
        # does not turn an expression into text to be made literal again.
        return self


def expression(text: str) -> Pebble:
    """`text` as a Pebble expression Switchyard means (never for text from a legacy system)."""
    return Pebble(text)


def expression_tree(value: Any) -> Any:
    """`value` with every string in it marked as Switchyard's own (the operator's mapping rules)."""
    if isinstance(value, str):
        return expression(value)
    if isinstance(value, Mapping):
        return {k: expression_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [expression_tree(v) for v in value]
    return value


def literal(text: str) -> Pebble:
    """`text` such that Kestra's rendering gives back exactly `text`."""
    if isinstance(text, Pebble):
        return text
    parts = _LINE_BREAK.split(text)
    last = len(parts) - 1
    out: list[str] = []
    for i, part in enumerate(parts):
        if i % 2 == 1 or not _needs_raw(part, last=i == last):
            out.append(part)  # a line break, or a line Pebble cannot read anything in
        else:
            out.extend(f"{RAW_OPEN}{piece}{RAW_CLOSE}" for piece in _without_execute_open(part))
    return Pebble("".join(out))


def join(*parts: str) -> Pebble:
    """One string from expressions (`Pebble`) and text from a legacy system (plain `str`)."""
    return Pebble("".join(literal(p) for p in parts))


def literal_tree(value: Any) -> Any:
    """`value` with every plain string in it (map keys too) made literal."""
    if isinstance(value, str):
        return literal(value)
    if isinstance(value, Mapping):
        return {literal_tree(k): literal_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [literal_tree(v) for v in value]
    return value


def safe_task(task: Any) -> Any:
    """A task (or trigger) whose rendered properties hold no live text but Switchyard's own."""
    if not isinstance(task, Mapping):
        return literal_tree(task)
    out: dict[str, Any] = {}
    for key, value in task.items():
        if key in _TASK_NOT_RENDERED:
            out[key] = value
        elif key in _CHILD_TASKS and isinstance(value, list):
            if key == "tasks" and task.get("type") == DAG_TYPE:
                out[key] = [_dag_entry(e) for e in value]
            else:
                out[key] = [safe_task(t) for t in value]
        else:
            out[key] = literal_tree(value)
    return out


def _dag_entry(entry: Any) -> Any:
    if not isinstance(entry, Mapping):
        return literal_tree(entry)
    return {
        k: safe_task(v) if k == "task" else v if k == "dependsOn" else literal_tree(v)
        for k, v in entry.items()
    }


def safe_flow(flow: Mapping[str, Any]) -> dict[str, Any]:
    """`flow` with every rendered string literal unless Switchyard marked it `Pebble`."""
    out: dict[str, Any] = {}
    for key, value in flow.items():
        if key in _FLOW_NOT_RENDERED:
            out[key] = value
        elif key in (*_CHILD_TASKS, "triggers") and isinstance(value, list):
            out[key] = [safe_task(t) for t in value]
        else:
            out[key] = literal_tree(value)
    return out


def _needs_raw(line: str, *, last: bool) -> bool:
    # A last line ending in `{` could open a delimiter with whatever is joined after it.
    return any(d in line for d in PEBBLE_DELIMITERS) or (last and line.endswith("{"))


def _without_execute_open(line: str) -> list[str]:
    """`line` cut between the `{` and `%` of each `{%`, so no piece holds `{%`."""
    pieces = line.split("{%")
    last = len(pieces) - 1
    return [("%" if i else "") + p + ("{" if i < last else "") for i, p in enumerate(pieces)]


__all__ = [
    "PEBBLE_DELIMITERS",
    "Pebble",
    "expression",
    "expression_tree",
    "join",
    "literal",
    "literal_tree",
    "safe_flow",
    "safe_task",
]
