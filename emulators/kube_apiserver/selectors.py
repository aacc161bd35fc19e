"""Label and field selectors as the Kubernetes API server parses them.

Label selectors: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`,
comma-joined (AND). Field selectors: `path=v`, `path==v`, `path!=v` over dotted
paths of the served object (`metadata.name`, `involvedObject.kind`,
`status.phase`), comma-joined. A malformed selector raises `SelectorError`, which
the server answers with 400 like the real one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Predicate = Callable[[Mapping[str, Any]], bool]


class SelectorError(ValueError):
    pass


def _split_terms(text: str) -> list[str]:
    terms: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    terms.append("".join(current).strip())
    return [t for t in terms if t]


_SET = re.compile(r"^([^\s!=()]+)\s+(in|notin)\s+\(([^)]*)\)$")
_EQ = re.compile(r"^([^\s!=]+)\s*(==|=|!=)\s*([^\s]*)$")


@dataclass(frozen=True)
class _Requirement:
    """One term: `key op values`; op is in, notin, exists or absent."""

    key: str
    op: str
    values: frozenset[str] = frozenset()

    def holds(self, value: str | None, present: bool) -> bool:
        if self.op == "exists":
            return present
        if self.op == "absent":
            return not present
        if self.op == "in":
            return value in self.values
        return value not in self.values


def _parse(text: str | None, *, labels: bool) -> list[_Requirement]:
    out: list[_Requirement] = []
    for term in _split_terms(text or ""):
        if labels and (m := _SET.match(term)):
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            out.append(_Requirement(m.group(1), m.group(2), values))
        elif m := _EQ.match(term):
            key, op, value = m.groups()
            out.append(_Requirement(key, "notin" if op == "!=" else "in", frozenset({value})))
        elif labels and re.match(r"^![^\s!=()]+$", term):
            out.append(_Requirement(term[1:], "absent"))
        elif labels and re.match(r"^[^\s!=()]+$", term):
            out.append(_Requirement(term, "exists"))
        else:
            kind = "label" if labels else "field"
            raise SelectorError(f"unable to parse {kind} selector requirement: {term!r}")
    return out


def label_selector(text: str | None) -> Predicate:
    requirements = _parse(text, labels=True)

    def match(obj: Mapping[str, Any]) -> bool:
        found = (obj.get("metadata") or {}).get("labels") or {}
        return all(r.holds(found.get(r.key), r.key in found) for r in requirements)

    return match


def _path(obj: Mapping[str, Any], dotted: str) -> str:
    value: Any = obj
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)


def field_selector(text: str | None) -> Predicate:
    requirements = _parse(text, labels=False)

    def match(obj: Mapping[str, Any]) -> bool:
        return all(r.holds(_path(obj, r.key), True) for r in requirements)

    return match
