"""Translation rules: data in `mappings/kestra/*.yaml`, read and checked here.

Files are read in name order and merged: a later file's operator, job rule,
connection or macro replaces an earlier one of the same name, so a user adds
`mappings/kestra/zz-local.yaml` (or passes their own folder) without editing
the shipped rules. A malformed rule is a `RuleError` naming the file and the
entry; nothing is half loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from migration_tools.translate.pebble import expression, expression_tree

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "mappings" / "kestra"

BUILDERS = frozenset(
    {"arguments", "python_callable", "pod_create", "lambda_invoke", "subflow", "http_request"}
)
_TASK_TYPE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.$")


class RuleError(ValueError):
    def __init__(self, path: Path, entry: str, message: str) -> None:
        super().__init__(f"{path}: {entry}: {message}")
        self.path = path
        self.entry = entry


@dataclass(frozen=True)
class PropertyRule:
    arg: str
    wrap_list: bool = False


@dataclass(frozen=True)
class OperatorRule:
    name: str
    type: str
    builder: str = "arguments"
    required: tuple[str, ...] = ()
    properties: dict[str, PropertyRule] = field(default_factory=dict)
    set: dict[str, Any] = field(default_factory=dict)
    ignore: frozenset[str] = frozenset()


@dataclass(frozen=True)
class JobRule:
    name: str
    type: str
    set: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rules:
    operators: dict[str, OperatorRule]
    jobs: dict[str, JobRule]
    base_handled: frozenset[str]
    base_not_carried: frozenset[str]
    http_connections: dict[str, str]
    macros: dict[str, str]

    def operator(self, task_type: str) -> OperatorRule | None:
        """The rule for an operator class, matched on its last dotted component."""
        return self.operators.get(task_type.rsplit(".", 1)[-1])

    def job(self, name: str) -> JobRule:
        try:
            return self.jobs[name]
        except KeyError:
            raise KeyError(f"no job rule {name!r} in the Kestra mappings") from None


def _mapping(path: Path, entry: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RuleError(path, entry, "must be a mapping")
    return value


def _strings(path: Path, entry: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RuleError(path, entry, "must be a list of strings")
    return tuple(value)


def _task_type(path: Path, entry: str, value: Any) -> str:
    if not isinstance(value, str) or not value or not set(value) <= _TASK_TYPE_CHARS:
        raise RuleError(path, entry, f"type must be a Java class name, got {value!r}")
    return value


def _operator(path: Path, name: str, raw: Any) -> OperatorRule:
    entry = f"operators.{name}"
    body = _mapping(path, entry, raw)
    unknown = set(body) - {"type", "builder", "required", "properties", "set", "ignore"}
    if unknown:
        raise RuleError(path, entry, f"unknown keys {sorted(unknown)}")
    builder = body.get("builder", "arguments")
    if builder not in BUILDERS:
        raise RuleError(path, entry, f"builder must be one of {sorted(BUILDERS)}, got {builder!r}")
    props: dict[str, PropertyRule] = {}
    for prop, spec in _mapping(path, f"{entry}.properties", body.get("properties")).items():
        spec_map = _mapping(path, f"{entry}.properties.{prop}", spec)
        arg = spec_map.get("arg")
        if not isinstance(arg, str) or not arg:
            raise RuleError(path, f"{entry}.properties.{prop}", "needs `arg: <operator argument>`")
        wrap = spec_map.get("wrap")
        if wrap not in (None, "list"):
            raise RuleError(path, f"{entry}.properties.{prop}", "wrap may only be `list`")
        props[str(prop)] = PropertyRule(arg=arg, wrap_list=wrap == "list")
    return OperatorRule(
        name=name,
        type=_task_type(path, entry, body.get("type")),
        builder=builder,
        required=_strings(path, f"{entry}.required", body.get("required")),
        properties=props,
        set=expression_tree(_mapping(path, f"{entry}.set", body.get("set"))),
        ignore=frozenset(_strings(path, f"{entry}.ignore", body.get("ignore"))),
    )


def load_rules(*folders: Path | str) -> Rules:
    """Rules from every `*.yaml` in `folders` (default: the shipped mappings)."""
    paths: list[Path] = []
    for folder in folders or (DEFAULT_DIR,):
        paths.extend(sorted(Path(folder).glob("*.yaml")))
    operators: dict[str, OperatorRule] = {}
    jobs: dict[str, JobRule] = {}
    handled: set[str] = set()
    not_carried: set[str] = set()
    connections: dict[str, str] = {}
    macros: dict[str, str] = {}
    for path in paths:
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise RuleError(path, "(file)", f"not valid YAML: {exc}") from exc
        doc = _mapping(path, "(top level)", doc)
        unknown = set(doc) - {"operators", "base_arguments", "http_connections", "macros", "jobs"}
        if unknown:
            raise RuleError(path, "(top level)", f"unknown sections {sorted(unknown)}")
        for name, raw in _mapping(path, "operators", doc.get("operators")).items():
            operators[str(name)] = _operator(path, str(name), raw)
        base = _mapping(path, "base_arguments", doc.get("base_arguments"))
        handled.update(_strings(path, "base_arguments.handled", base.get("handled")))
        not_carried.update(_strings(path, "base_arguments.not_carried", base.get("not_carried")))
        for conn, url in _mapping(path, "http_connections", doc.get("http_connections")).items():
            if not isinstance(url, str):
                raise RuleError(path, f"http_connections.{conn}", "must be a base URL string")
            connections[str(conn)] = expression(url)
        for macro, expr in _mapping(path, "macros", doc.get("macros")).items():
            if not isinstance(expr, str):
                raise RuleError(path, f"macros.{macro}", "must be a Pebble expression string")
            macros[str(macro)] = expression(expr)
        for name, raw in _mapping(path, "jobs", doc.get("jobs")).items():
            body = _mapping(path, f"jobs.{name}", raw)
            jobs[str(name)] = JobRule(
                name=str(name),
                type=_task_type(path, f"jobs.{name}", body.get("type")),
                set=expression_tree(_mapping(path, f"jobs.{name}.set", body.get("set"))),
            )
    return Rules(
        operators=operators,
        jobs=jobs,
        base_handled=frozenset(handled),
        base_not_carried=frozenset(not_carried),
        http_connections=connections,
        macros=macros,
    )


@lru_cache(maxsize=1)
def default_rules() -> Rules:
    return load_rules(DEFAULT_DIR)
