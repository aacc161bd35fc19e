"""Values masked when the job was stored, as a translated flow reads them.

A translation starts from the stored `JobSpec`, in which inline credentials
were replaced by `gateway.inline_secrets.MASKED` (viewers can read stored
specs). The value is gone, so the flow must get it from Kestra instead, and
the operator must be told what to create:

- a value masked **whole** — a container's `env[].value`, a credential-named
  property — becomes `{{ secret('<NAME>') }}`, NAME being the flow id and the
  variable (or property) name in upper case (`NIGHTLY_REPORT_DB_PASSWORD`).
  The flow stays as ready as it was; the translation notes the secret to
  create and lists it in `Translation.secrets`;
- a masked **part of a text** (a command with `PGPASSWORD=…`, a lifted script,
  a URI with a password) is not rewritten — a reference inside a shell
  command or script is the author's call, and commands may be kept from
  Pebble rendering. It is flagged instead: a reason naming the task, the
  secret to create and where the reference goes, so the flow is `partial`
  (emitted disabled) and never runs with `<masked-by-switchyard>` in it.

Descriptions are left alone: a placeholder's description quotes the
original (masked) definition for the reader, and is never executed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from gateway.inline_secrets import MASKED
from migration_tools.translate.model import RequiredSecret
from migration_tools.translate.pebble import expression

_NOT_NAME = re.compile(r"[^A-Za-z0-9]+")
_NAMED_BEFORE = re.compile(
    r"([A-Za-z0-9_]+)[^A-Za-z0-9_\s]{0,4}\s*(?:(?:Bearer|Basic|Token|Digest|Bot)\s+)?"
    + re.escape(MASKED)
)


def secret_name(flow_id: str, name: str) -> str:
    """The Kestra secret key for `name` in flow `flow_id`: upper case, letters, digits, _."""
    return _NOT_NAME.sub("_", f"{flow_id}_{name}").strip("_").upper()


@dataclass
class _Referencer:
    flow_id: str
    found: list[RequiredSecret] = field(default_factory=list)

    def _require(self, name: str, where: str, *, referenced: bool) -> str:
        key = secret_name(self.flow_id, name)
        taken = {s.name: s.where for s in self.found}
        suffix = 2
        base = key
        while key in taken and taken[key] != where:
            key, suffix = f"{base}_{suffix}", suffix + 1
        if key not in taken:
            self.found.append(RequiredSecret(name=key, where=where, referenced=referenced))
        return key

    def _reference(self, name: str, where: str) -> str:
        # Switchyard's own expression (the secret name is built from [A-Z0-9_]
        # only), so it stays live where text from the job is made literal.
        return expression("{{ secret('" + self._require(name, where, referenced=True) + "') }}")

    def _flag(self, text: str, prop: str, task: str) -> None:
        named = _NAMED_BEFORE.search(text)
        self._require(named.group(1) if named else prop, f"{prop} of task {task}", referenced=False)

    def walk(self, node: Any, prop: str, task: str) -> Any:
        if isinstance(node, dict):
            if isinstance(node.get("id"), str) and "type" in node:
                task = node["id"]
            out: dict[str, Any] = {}
            for key, value in node.items():
                if key == "description":
                    out[key] = value
                elif value == MASKED:
                    name = (node.get("name") or key) if key == "value" else key
                    what = f"env {name}" if key == "value" else f"property {key}"
                    out[key] = self._reference(str(name), f"{what} of task {task}")
                elif isinstance(value, str):
                    if MASKED in value:
                        self._flag(value, str(key), task)
                    out[key] = value
                else:
                    out[key] = self.walk(value, str(key), task)
            return out
        if isinstance(node, list):
            items: list[Any] = []
            for i, value in enumerate(node):
                if value == MASKED:
                    items.append(self._reference(f"{prop}_{i}", f"{prop}[{i}] of task {task}"))
                elif isinstance(value, str):
                    if MASKED in value:
                        self._flag(value, f"{prop}[{i}]", task)
                    items.append(value)
                else:
                    items.append(self.walk(value, prop, task))
            return items
        return node


def reference_masked(
    tasks: list[dict[str, Any]], flow_id: str
) -> tuple[list[dict[str, Any]], list[RequiredSecret]]:
    """`tasks` with wholly masked values read from Kestra secrets, and every secret needed."""
    referencer = _Referencer(flow_id)
    out = [referencer.walk(task, "tasks", "?") for task in tasks]
    return out, referencer.found


__all__ = ["reference_masked", "secret_name"]
