"""The one way a Kestra flow becomes YAML text: built as data, serialised, read back.

Every flow Switchyard generates (translations, wrap flows, the demo's) is a
dict turned into text here, never text assembled by hand, because the dict
holds strings a monitored system reported: a job key with a newline written
into a header comment used to add a top-level `finally:` task to a wrap flow.
So:

- the comment is written line by line, every line behind `# `, after
  splitting on every line break a YAML reader knows (`\\r`, `\\n`, NEL,
  U+2028, U+2029) and replacing every character that is not printable with
  its escape (`\\x00`, `\\u2028`…): nothing in it can end the comment;
- the body is dumped with aliases off (a dict reused between tasks would
  otherwise become `&id001` / `*id001`, which Kestra does not resolve when it
  runs the flow, kestra-io/kestra#16315) and in block style, `|` for
  multi-line strings;
- the text, comment included, is read back with `yaml.safe_load` and compared
  with the data, value and type at every path; any difference is a
  `FlowYamlError` naming the path, so a text that does not say what was built
  is never returned, stored or deployed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import yaml

from migration_tools.translate.pebble import Pebble


class FlowYamlError(ValueError):
    """The YAML text of a flow does not read back as the flow that was built; names the path."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"generated flow YAML differs from the flow built at {path}: {message}")
        self.path = path
        self.message = message


class _FlowDumper(yaml.SafeDumper):
    """Block style, insertion order, `|` for multi-line strings, never an alias."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


# A reader turns these into `\n` inside a `|` block; left to the emitter, they are escaped.
_OTHER_BREAKS = ("\r", "\x85", "\u2028", "\u2029")


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    block = "\n" in value and not any(b in value for b in _OTHER_BREAKS)
    style = "|" if block else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", str.__str__(value), style=style)


_FlowDumper.add_representer(str, _str_representer)
_FlowDumper.add_representer(Pebble, _str_representer)


def comment_block(text: str) -> str:
    """`text` as YAML comment lines: each line behind `# `, unprintable characters escaped."""
    if not text:
        return ""
    return "".join(f"# {_printable(line)}".rstrip(" ") + "\n" for line in text.splitlines())


def _printable(line: str) -> str:
    # A tab is printable in a comment, but escaping it too keeps the rule one line long.
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in line)


def render_flow(flow: Mapping[str, Any], *, comment: str = "") -> str:
    """The YAML text of `flow` under `comment`; `FlowYamlError` unless it reads back as built."""
    body = yaml.dump(
        dict(flow),
        Dumper=_FlowDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=4096,  # never fold a command line
        indent=2,
    )
    text = comment_block(comment) + body
    check_round_trip(flow, text)
    return text


def check_round_trip(flow: Mapping[str, Any], text: str) -> None:
    """Raise `FlowYamlError` unless `text` reads back as exactly `flow`."""
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FlowYamlError("(document)", f"not valid YAML: {exc}") from None
    difference = _difference(dict(flow), parsed, "")
    if difference is not None:
        raise FlowYamlError(*difference)


def _difference(built: Any, read: Any, path: str) -> tuple[str, str] | None:
    where = path or "(top level)"
    if isinstance(built, Mapping):
        if not isinstance(read, dict):
            return where, f"a mapping was built, {type(read).__name__} was read"
        extra = [k for k in read if k not in built]
        if extra:
            return f"{path}.{extra[0]}" if path else str(extra[0]), "read but never built"
        for key, value in built.items():
            child = f"{path}.{key}" if path else str(key)
            if key not in read:
                return child, "built but not read back"
            found = _difference(value, read[key], child)
            if found:
                return found
        return None
    if isinstance(built, list | tuple):
        if not isinstance(read, list) or len(read) != len(built):
            return where, f"a list of {len(built)} was built, {read!r} was read"
        for i, (b, r) in enumerate(zip(built, read, strict=True)):
            found = _difference(b, r, f"{path}[{i}]")
            if found:
                return found
        return None
    if _scalar_kind(built) != _scalar_kind(read) or not _same_scalar(built, read):
        return where, f"{built!r} was built, {read!r} was read"
    return None


def _scalar_kind(value: Any) -> str:
    # bool before int (True == 1), and every str subclass (Pebble) is a str.
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind.__name__
    return "null" if value is None else type(value).__name__


def _same_scalar(built: Any, read: Any) -> bool:
    if isinstance(built, float) and math.isnan(built):
        return isinstance(read, float) and math.isnan(read)
    return bool(built == read)


__all__ = ["FlowYamlError", "check_round_trip", "comment_block", "render_flow"]
