"""How Kestra renders a property string, as far as `{% raw %}` and Pebble delimiters go.

Ported from Kestra's `VariableRenderer` (kestra-io/kestra,
core/src/main/java/io/kestra/core/runners/VariableRenderer.java, read at
commit 00172f18): a string without `{` is returned as it is; otherwise every
match of `RAW_PATTERN` (compiled without flags) is cut out and replaced by a
random UUID, Pebble renders what is left, the matches are put back, and every
match is finally replaced by its inside. Java's `\\s` is `[ \\t\\n\\x0B\\f\\r]`
and its `.` stops at `\\n \\r \\u0085 \\u2028 \\u2029`; both are spelled out
below so Python's wider classes do not stand in for them.

Pebble itself is stood in by a check: the text it would parse may hold no
delimiter (`{{`, `{%`, `{#`) except the expressions a test names, which are
replaced by their values. Any other delimiter is `PebbleWouldRun`: that text
would have been evaluated, not kept.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping

_WS = "[ \\t\\n\\x0b\\f\\r]"
_ANY = "[^\\n\\r\\u0085\\u2028\\u2029]"
RAW_PATTERN = re.compile(
    "(\\{%-*"
    + _WS
    + "*raw"
    + _WS
    + "*-*%}("
    + _ANY
    + "*?)\\{%-*"
    + _WS
    + "*endraw"
    + _WS
    + "*-*%})"
)
DELIMITERS = ("{{", "{%", "{#")


class PebbleWouldRun(AssertionError):
    """Pebble would evaluate part of the text: names what it would see."""


def render(text: str, expressions: Mapping[str, str] | None = None) -> str:
    """`text` as Kestra renders it, given the values of the expressions it may hold."""
    if "{" not in text:
        return text
    hidden: dict[str, str] = {}

    def hide(m: re.Match[str]) -> str:
        token = str(uuid.uuid4())
        hidden[token] = m.group(1)
        return token

    template = RAW_PATTERN.sub(hide, text)
    for expr, value in (expressions or {}).items():
        template = template.replace(expr, value)
    for delimiter in DELIMITERS:
        at = template.find(delimiter)
        if at >= 0:
            raise PebbleWouldRun(f"Pebble would evaluate {template[at : at + 40]!r} in {text!r}")
    for token, block in hidden.items():
        template = template.replace(token, block)
    return RAW_PATTERN.sub(lambda m: m.group(2), template)


def render_list(items: list[str], expressions: Mapping[str, str] | None = None) -> list[str]:
    """A `Property<List<String>>` (`commands`): the JSON of the list is rendered as one string."""
    rendered = render(json.dumps(items, ensure_ascii=False), expressions)
    out: list[str] = json.loads(rendered)
    return out
