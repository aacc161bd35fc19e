"""What a Kestra server refuses in a flow, checked against the emulator's catalogue.

Kestra reads a flow in two steps, and the emulator mirrors both:

1. **Parsing** (`YamlParser`, Jackson with `FAIL_ON_UNKNOWN_PROPERTIES`): an
   unknown property, an unknown `type`, or a value Jackson cannot turn into a
   plain Java field (a Pebble string where an `Integer`, `Boolean`, `Duration`
   or enum is declared, a mapping where a `String` is) fails. `Property<T>`
   fields take any value here; they are only typed when the task runs.
2. **Validation** (Micronaut): `@NotNull`/`@NotEmpty`/`@NotBlank`, `@Pattern`,
   `@Size`, `@Min`, and the class-level validators — Flow (unique task and
   trigger ids, no recursive subflow, no `system.` labels, inputs and outputs),
   Dag (`dependsOn` names a task of the same Dag, no cycle), Switch (a case or
   `defaults`), Schedule (a valid cron and time zone), retry (ordered intervals).

Kestra stops at the first parse error; the emulator reports every violation it
finds, each as `path: message` with the property path Kestra uses
(`tasks[0].tasks[1].task.id`). `check_flow` is pure: a document and a catalogue
in, violations out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from croniter import croniter  # type: ignore[import-untyped, unused-ignore]  # no type hints

from emulators.kestra.catalogue import Catalogue, PluginKind, PluginType, Prop

_PEBBLE = re.compile(r"\{\{|\{%")
_INTEGER = re.compile(r"^[-+]?\d+$")
_NUMBER = re.compile(r"^[-+]?\d+(\.\d+)?$")
# java.time.Duration.parse: PnDTnHnMn.nS, days the largest unit.
_DURATION = re.compile(
    r"^[-+]?P(?:[-+]?\d+D)?(?:T(?:[-+]?\d+H)?(?:[-+]?\d+M)?(?:[-+]?\d+(?:[.,]\d{0,9})?S)?)?$",
    re.IGNORECASE,
)
_ENUM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Java types the reference names without their constants; slf4j's Level is a
# library enum whose constants are fixed.
_LEVELS = ("ERROR", "WARN", "INFO", "DEBUG", "TRACE")
_ENUMS: Mapping[str, tuple[str, ...]] = {
    "Level": _LEVELS,
    "org.slf4j.event.Level": _LEVELS,
    "Behavior": (),
    "HttpMethod": (),
    "RecoverMissedSchedules": (),
    "SLA.Type": (),
    "State.Type": (),
    "Type": (),
    "RunnerType": (),
    "TargetOS": (),
    "Fallback": (),
    "RestartBehavior": (),
    "AbstractRetry.Behavior": (),
}
_INTEGERS = frozenset({"Integer", "int", "Long", "long"})
_BOOLEANS = frozenset({"Boolean", "boolean"})
_NUMBERS = frozenset({"Double", "double", "Float", "float"})
_PRIMITIVES = frozenset({"int", "long", "boolean", "double", "float"})
_SYSTEM = "system."
_READ_ONLY = "system.readOnly"
_SYSTEM_LABEL = "System labels can only be set by Kestra itself, offending label"
_EXECUTABLE = frozenset(
    {"io.kestra.plugin.core.flow.Subflow", "io.kestra.plugin.core.flow.ForEachItem"}
)
_FLOW_CLASS = "io.kestra.core.models.flows.Flow"


@dataclass(frozen=True)
class Violation:
    """One constraint violation: the property path and Kestra's message."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class FlowInvalid(ValueError):
    """The flow would not be saved: every violation found, in document order."""

    def __init__(self, violations: list[Violation]) -> None:
        self.violations = violations
        super().__init__(", ".join(str(v) for v in violations))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"Boolean value ({str(value).lower()})"
    if isinstance(value, int):
        return f"Integer value ({value})"
    if isinstance(value, float):
        return f"Floating-point value ({value})"
    if isinstance(value, str):
        return f'String "{value}"'
    if isinstance(value, list):
        return "Array value"
    return "Object value"


_QUALIFIED = {
    "String": "java.lang.String",
    "Integer": "java.lang.Integer",
    "Long": "java.lang.Long",
    "Boolean": "java.lang.Boolean",
    "Double": "java.lang.Double",
    "Duration": "java.time.Duration",
}


def _cannot(java_type: str, value: Any) -> str:
    shown = _QUALIFIED.get(java_type, java_type)
    return f"Cannot deserialize value of type `{shown}` from {_describe(value)}"


def _list_item_type(java_type: str) -> str | None:
    m = re.fullmatch(r"List<(?:@\w+(?:\([^)]*\))? )*([\w.<>?]+)>", java_type)
    return m.group(1) if m else None


def _size(prop: Prop) -> tuple[int, int | None] | None:
    for c in prop.constraints:
        m = re.search(r"@Size\(([^)]*)\)", c)
        if m:
            low = re.search(r"min\s*=\s*(\d+)", m.group(1))
            high = re.search(r"max\s*=\s*(\d+)", m.group(1))
            return int(low.group(1)) if low else 0, int(high.group(1)) if high else None
    return None


def _minimum(prop: Prop) -> int | None:
    for c in prop.constraints:
        m = re.search(r"@Min\((?:value\s*=\s*)?(-?\d+)\)", c)
        if m:
            return int(m.group(1))
        if "@PositiveOrZero" in c:
            return 0
        if "@Positive" in c:
            return 1
    return None


def _cycle(graph: Mapping[str, list[str]]) -> list[str]:
    """The nodes of one dependency cycle, in order; [] when there is none."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for dep in graph.get(node, []):
            if state.get(dep) == 1:
                return stack[stack.index(dep) :]
            if dep in graph and dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return []

    for node in graph:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def _labels(value: Any) -> Iterator[tuple[str, Any, Any]]:
    """(path suffix, key, value) of each label, from a map or a list of {key, value}."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield f"[{k}]", k, v
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, Mapping):
                yield f"[{i}]", item.get("key"), item.get("value")


class _Check:
    def __init__(self, catalogue: Catalogue) -> None:
        self.cat = catalogue
        self.out: list[Violation] = []
        self.task_ids: list[tuple[str, str]] = []
        self.trigger_ids: list[tuple[str, str]] = []
        self.subflows: list[tuple[str, Any, Any]] = []

    def add(self, path: str, message: str) -> None:
        self.out.append(Violation(path, message))

    # objects ---------------------------------------------------------------
    def obj(
        self,
        path: str,
        value: Any,
        props: Mapping[str, Prop],
        cls: str,
        *,
        ignored: frozenset[str] = frozenset(),
        any_setter: bool = False,
    ) -> bool:
        """Unknown keys, required properties and each value; False if not a mapping."""
        if not isinstance(value, Mapping):
            self.add(path, _cannot(cls, value))
            return False
        for raw_key, item in value.items():
            key = str(raw_key)
            prop = props.get(key)
            if prop is None:
                if key not in ignored:
                    self.add(_join(path, key), self.unknown(key, cls, any_setter))
                continue
            self.value(_join(path, key), item, prop)
        for name, prop in props.items():
            missing = name not in value and prop.must_be_set
            nulled = name in value and value[name] is None and prop.required
            if (missing or nulled) and prop.java_type not in _PRIMITIVES:
                self.add(_join(path, name), "must not be null")
        return True

    def unknown(self, key: str, cls: str, any_setter: bool) -> str:
        if any_setter and key in self.cat.trigger_migrations:
            return f'Unrecognized field "{key}" (class {cls}): {self.cat.trigger_migrations[key]}'
        return f'Unrecognized field "{key}" (class {cls}), not marked as ignorable'

    def plugin(self, path: str, value: Any, kind: PluginKind) -> PluginType | None:
        """A task, trigger or task runner: its `type` resolved, then its properties."""
        if not isinstance(value, Mapping):
            self.add(path, _cannot(f"io.kestra.core.models.{kind}", value))
            return None
        name = value.get("type")
        if name is None:
            self.add(_join(path, "type"), "missing type id property 'type'")
            return None
        plugin = self.cat.types.get(str(name))
        if plugin is None or plugin.kind != kind:
            why = self.cat.removed_types.get(str(name))
            hint = f" (removed in Kestra {self.cat.version}.0: {why})" if why else ""
            self.add(_join(path, "type"), f"Invalid type: {name}{hint}")
            return None
        any_setter = kind == "trigger" and self.cat.trigger_any_setter
        self.obj(
            path, value, plugin.props, plugin.name, ignored=plugin.ignored, any_setter=any_setter
        )
        for validation in plugin.validations:
            rule = _CLASS_RULES.get(validation)
            if rule is not None:
                rule(self, path, value)
        return plugin

    def trigger(self, path: str, value: Any) -> None:
        if self.plugin(path, value, "trigger") is not None and isinstance(value, Mapping):
            self.trigger_ids.append((str(value.get("id")), _join(path, "id")))

    def task(self, path: str, value: Any) -> None:
        plugin = self.plugin(path, value, "task")
        if plugin is None or not isinstance(value, Mapping):
            return
        self.task_ids.append((str(value.get("id")), _join(path, "id")))
        if plugin.name in _EXECUTABLE:
            self.subflows.append((path, value.get("namespace"), value.get("flowId")))

    # values ------------------------------------------------------------------
    def value(self, path: str, value: Any, prop: Prop) -> None:
        if value is None:
            return
        t = prop.java_type
        if t.startswith("Property") or t == "Object":
            return  # typed only when the task runs
        if self.structured(path, value, prop):
            return
        if t.startswith(("Map<", "HashMap<")):
            if not isinstance(value, Mapping):
                self.add(path, _cannot(t, value))
            return
        item = _list_item_type(t)
        if t.startswith("List<"):
            if not isinstance(value, list):
                self.add(path, _cannot(t, value))
                return
            self.not_empty(path, value, prop)
            if item is not None:
                for i, element in enumerate(value):
                    self.scalar(f"{path}[{i}]", element, Prop(prop.name, item))
            return
        self.scalar(path, value, prop)

    def structured(self, path: str, value: Any, prop: Prop) -> bool:
        """Tasks, retries, labels and nested classes; True when `prop` is one."""
        t = prop.java_type
        item = _list_item_type(t) or ""
        if t == "Task":
            self.task(path, value)
        elif item == "Task":
            if self.listed(path, value, prop):
                for i, child in enumerate(value):
                    self.task(f"{path}[{i}]", child)
        elif re.fullmatch(r"Map<String, .*List<.*Task>>", t):
            if not isinstance(value, Mapping):
                self.add(path, _cannot(t, value))
                return True
            for case, children in value.items():
                if self.listed(f"{path}.{case}", children, Prop(prop.name, "List<Task>")):
                    for i, child in enumerate(children):
                        self.task(f"{path}.{case}[{i}]", child)
        elif item == "DagTask":
            if self.listed(path, value, prop):
                for i, entry in enumerate(value):
                    self.obj(f"{path}[{i}]", entry, self.cat.classes["DagTask"], "Dag.DagTask")
        elif t == "AbstractRetry":
            self.retry(path, value)
        elif item == "Label":
            self.labels(path, value, no_system="NoSystemLabelValidation" in t)
        elif t.startswith("TaskRunner"):
            self.plugin(path, value, "runner")
        elif t == "List<SLA>":
            if self.listed(path, value, prop):
                for i, sla in enumerate(value):
                    self.sla(f"{path}[{i}]", sla)
        elif item == "AbstractTrigger":
            if self.listed(path, value, prop):
                for i, trigger in enumerate(value):
                    self.trigger(f"{path}[{i}]", trigger)
        elif (cls := self.nested_class(item or t)) is not None:
            props = self.cat.classes[cls]
            if not item:
                self.obj(path, value, props, cls)
            elif self.listed(path, value, prop):
                for i, element in enumerate(value):
                    self.obj(f"{path}[{i}]", element, props, cls)
        else:
            return False
        return True

    def nested_class(self, java_type: str) -> str | None:
        """The catalogue's name for a nested class (`LoopUntil.CheckFrequency`, `Output`)."""
        for name in (java_type, java_type.rsplit(".", 1)[-1]):
            if name in self.cat.classes:
                return name
        return None

    def listed(self, path: str, value: Any, prop: Prop) -> bool:
        if not isinstance(value, list):
            self.add(path, _cannot(prop.java_type, value))
            return False
        self.not_empty(path, value, prop)
        return True

    def not_empty(self, path: str, value: Any, prop: Prop) -> None:
        if prop.has("@NotEmpty") and len(value) == 0:
            self.add(path, "must not be empty")

    def scalar(self, path: str, value: Any, prop: Prop) -> None:
        t = prop.java_type
        if t == "String":
            if isinstance(value, Mapping | list):
                self.add(path, _cannot(t, value))
            else:
                self.string(
                    path, str(value).lower() if isinstance(value, bool) else str(value), prop
                )
        elif t in _INTEGERS:
            number = self.integer(value)
            if number is None:
                self.add(path, _cannot(t, value))
            elif (low := _minimum(prop)) is not None and number < low:
                self.add(path, f"must be greater than or equal to {low}")
        elif t in _BOOLEANS:
            text = str(value).lower()
            if not isinstance(value, bool | int) and text not in ("true", "false"):
                self.add(path, _cannot(t, value))
        elif t in _NUMBERS:
            if isinstance(value, bool) or not (
                isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.match(value))
            ):
                self.add(path, _cannot(t, value))
        elif t == "Duration":
            if self.duration(value) is None:
                self.add(path, _cannot("Duration", value))
        elif prop.enum or t in _ENUMS:
            constants = prop.enum or _ENUMS[t]
            name = value if isinstance(value, str) else None
            if name is None or (constants and name not in constants):
                accepted = (
                    f": not one of the values accepted for Enum class: [{', '.join(constants)}]"
                )
                self.add(path, _cannot(t, value) + (accepted if constants else ""))
            elif not constants and not _ENUM_NAME.match(name):
                self.add(path, _cannot(t, value))

    def string(self, path: str, text: str, prop: Prop) -> None:
        if prop.has("@NotBlank") and not text.strip():
            self.add(path, "must not be blank")
        elif prop.has("@NotEmpty") and not text:
            self.add(path, "must not be empty")
        if prop.pattern and "\\p{" not in prop.pattern and not re.fullmatch(prop.pattern, text):
            self.add(path, f'must match "{prop.pattern}"')
        size = _size(prop)
        if size and (len(text) < size[0] or (size[1] is not None and len(text) > size[1])):
            high = size[1] if size[1] is not None else 2147483647
            self.add(path, f"size must be between {size[0]} and {high}")

    @staticmethod
    def integer(value: Any) -> int | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            return int(value)
        if isinstance(value, str) and _INTEGER.match(value.strip()):
            return int(value)
        return None

    @staticmethod
    def duration(value: Any) -> float | None:
        """Seconds, as Kestra's DurationDeserializer reads a plain Duration; None if invalid."""
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            return float(value)
        if not isinstance(value, str):
            return None
        text = value.strip()
        if _NUMBER.match(text):
            return float(text)
        if not _DURATION.match(text) or text.upper().endswith(("P", "T")):
            return None
        total = 0.0
        for amount, unit in re.findall(r"([-+]?\d+(?:[.,]\d+)?)([DHMS])", text.upper()):
            total += (
                float(amount.replace(",", ".")) * {"D": 86400, "H": 3600, "M": 60, "S": 1}[unit]
            )
        return -total if text.startswith("-") else total

    # nested shapes -------------------------------------------------------------
    def retry(self, path: str, value: Any) -> None:
        if not isinstance(value, Mapping):
            self.add(path, _cannot("AbstractRetry", value))
            return
        kind = value.get("type")
        props = self.cat.retry.get(str(kind))
        if props is None:
            known = ", ".join(self.cat.retry)
            self.add(_join(path, "type"), f"Invalid type: {kind} (known retry types: {known})")
            return
        if not self.obj(path, value, props, f"retrys.{str(kind).capitalize()}"):
            return
        seconds = {
            k: self.duration(value.get(k)) for k in props if props[k].java_type == "Duration"
        }
        for low, high in _RETRY_ORDER.get(str(kind), ()):
            a, b = seconds.get(low), seconds.get(high)
            if a is not None and b is not None and not a < b:
                self.add(path, f"'{low}' must be less than '{high}'")

    def labels(self, path: str, value: Any, *, no_system: bool) -> None:
        if not isinstance(value, Mapping | list):
            self.add(path, _cannot("List<Label>", value))
            return
        if isinstance(value, list):
            for i, item in enumerate(value):
                self.obj(f"{path}[{i}]", item, self.cat.classes["Label"], "Label")
        for suffix, key, label_value in _labels(value):
            if isinstance(value, Mapping) and (
                label_value is None or isinstance(label_value, Mapping | list)
            ):
                self.add(f"{path}{suffix}", _cannot("String", label_value))
            if no_system and isinstance(key, str) and key.startswith(_SYSTEM):
                self.add(f"{path}{suffix}", f"{_SYSTEM_LABEL}: {key}={label_value}.")

    def sla(self, path: str, value: Any) -> None:
        if not isinstance(value, Mapping):
            self.add(path, _cannot("SLA", value))
            return
        cls = self.cat.sla_types.get(str(value.get("type")))
        if cls is None:
            known = ", ".join(self.cat.sla_types)
            self.add(
                _join(path, "type"), f"Invalid type: {value.get('type')} (known SLA types: {known})"
            )
            return
        self.obj(path, value, self.cat.classes[cls], cls)

    # the flow --------------------------------------------------------------------
    def flow(self, doc: Any) -> None:
        if not isinstance(doc, Mapping):
            self.add("", f"Illegal flow source: {_cannot(_FLOW_CLASS, doc)}")
            return
        self.obj("", doc, self.cat.flow, _FLOW_CLASS)
        self.flow_rules(doc)

    def flow_rules(self, doc: Mapping[str, Any]) -> None:
        """FlowValidator: unique ids, no recursive subflow, no system labels, inputs, outputs."""
        for what, ids in (("task", self.task_ids), ("trigger", self.trigger_ids)):
            seen: set[str] = set()
            for ident, path in ids:
                if ident in seen:
                    self.add(path, f"Duplicate {what} id with name [{ident}]")
                seen.add(ident)
        for path, namespace, flow_id in self.subflows:
            if namespace == doc.get("namespace") and flow_id == doc.get("id"):
                self.add(path, f"Recursive call to flow [{namespace}.{flow_id}]")
        for suffix, key, value in _labels(doc.get("labels")):
            if isinstance(key, str) and key.startswith(_SYSTEM) and key != _READ_ONLY:
                self.add(f"labels{suffix}", f"{_SYSTEM_LABEL}: {key}={value}")
        self.data_ids("outputs", doc.get("outputs"), "output")
        inputs = self.data_ids("inputs", doc.get("inputs"), "input")
        graph: dict[str, list[str]] = {}
        for ident, item in inputs.items():
            depends = item.get("dependsOn")
            names = depends.get("inputs") if isinstance(depends, Mapping) else None
            graph[ident] = [str(n) for n in names] if isinstance(names, list) else []
            for dep in graph[ident]:
                if dep not in inputs:
                    self.add(
                        "inputs",
                        f"Input with id '{ident}' depends on a non-existent input '{dep}'.",
                    )
        cycle = _cycle(graph)
        if cycle:
            self.add("inputs", f"Cycle dependency detected for input with id '{cycle[0]}': {cycle}")

    def data_ids(self, key: str, items: Any, what: str) -> dict[str, Mapping[str, Any]]:
        """Inputs or outputs by id; a repeated id is a violation."""
        out: dict[str, Mapping[str, Any]] = {}
        if not isinstance(items, list):
            return out
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                continue
            ident = str(item.get("id"))
            if ident in out:
                self.add(f"{key}[{i}].id", f"Duplicate {what} with name [{ident}]")
            out[ident] = item
        return out


# retry validators (ConstantRetryValidator, …): each pair must be strictly increasing.
_RETRY_ORDER: Mapping[str, tuple[tuple[str, str], ...]] = {
    "constant": (("interval", "maxDuration"),),
    "exponential": (("interval", "maxDuration"), ("interval", "maxInterval")),
    "random": (
        ("minInterval", "maxInterval"),
        ("minInterval", "maxDuration"),
        ("maxInterval", "maxDuration"),
    ),
}


def _dag_rule(check: _Check, path: str, task: Mapping[str, Any]) -> None:
    """DagTaskValidator: every dependsOn id is a task of this Dag; no cycle."""
    entries = [e for e in task.get("tasks") or [] if isinstance(e, Mapping)]
    if not entries:
        return  # `tasks` itself is reported as missing or empty
    graph: dict[str, list[str]] = {}
    for entry in entries:
        child = entry.get("task")
        depends = entry.get("dependsOn")
        if isinstance(child, Mapping):
            graph[str(child.get("id"))] = (
                [str(d) for d in depends] if isinstance(depends, list) else []
            )
    missing = [d for deps in graph.values() for d in deps if d not in graph]
    if missing:
        check.add(path, "Not existing task id in dependency: " + ", ".join(dict.fromkeys(missing)))
        return
    cycle = _cycle(graph)
    if cycle:
        check.add(path, "Cyclic dependency detected: " + ", ".join(cycle))


def _switch_rule(check: _Check, path: str, task: Mapping[str, Any]) -> None:
    """SwitchTaskValidation: a Switch needs a case or defaults with tasks."""
    if not task.get("cases") and not task.get("defaults"):
        check.add(path, "No task defined, neither cases or default have any tasks")


def _schedule_rule(check: _Check, path: str, trigger: Mapping[str, Any]) -> None:
    """ScheduleValidation: the cron expression and the time zone must parse."""
    cron = trigger.get("cron")
    if isinstance(cron, str) and cron.strip():
        text = cron.strip()
        seconds = str(trigger.get("withSeconds")).lower() == "true"
        if text.startswith("@"):
            valid = croniter.is_valid(text)
        elif len(text.split()) == (6 if seconds else 5):
            valid = croniter.is_valid(text, second_at_beginning=seconds)
        else:
            valid = False
        if not valid:
            check.add(_join(path, "cron"), f"invalid cron expression '{cron}'")
    zone = trigger.get("timezone")
    if isinstance(zone, str) and not _valid_zone(zone):
        check.add(_join(path, "timezone"), f"timezone '{zone}' is not a valid time-zone ID")


def _valid_zone(zone: str) -> bool:
    """java.time.ZoneId.of: a region id, `Z`, or an offset such as `+02:00` / `UTC+1`."""
    if re.fullmatch(r"Z|(?:UTC|GMT|UT)?[+-]\d{1,2}(?::?\d{2}){0,2}|UTC|GMT|UT", zone):
        return True
    try:
        datetime.now(ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


_CLASS_RULES: Mapping[str, Callable[[_Check, str, Mapping[str, Any]], None]] = {
    "DagTaskValidation": _dag_rule,
    "SwitchTaskValidation": _switch_rule,
    "ScheduleValidation": _schedule_rule,
}


def check_flow(doc: Any, catalogue: Catalogue) -> list[Violation]:
    """Every violation a Kestra server of `catalogue.version` reports for `doc`."""
    check = _Check(catalogue)
    check.flow(doc)
    return check.out


def parse_flow(source: str, catalogue: Catalogue) -> dict[str, Any]:
    """The flow's body from its YAML source; `FlowInvalid` naming every violation."""
    try:
        doc = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        raise FlowInvalid([Violation("yaml", f"Illegal flow source: {exc}")]) from exc
    violations = check_flow(doc, catalogue)
    if violations:
        raise FlowInvalid(violations)
    return dict(doc)


__all__ = ["FlowInvalid", "Violation", "check_flow", "parse_flow"]
