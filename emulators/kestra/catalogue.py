"""The plugin catalogue the Kestra emulator serves, one per Kestra major version.

The emulator is a Kestra server with exactly the task, trigger and task-runner
types of `data/kestra-tasks.json` installed (where that file comes from:
`data/README.md`). This module turns the file into a `Catalogue` per version:

- **"1"** (Kestra 1.x): the Java classes as the reference read them. A type's
  newer core source, when the reference has one, replaces the 2024-12
  snapshot's own properties (so removals such as Schedule's `backfill` take
  effect); plugin types are read at their 2026 heads, which compile against
  Kestra 1.3. Task and trigger base properties are the 1.x `Task` and
  `AbstractTrigger`; flow properties the snapshot's plus the newer `Flow`'s
  (`finally`, `afterExecution`, `checks`).
- **"2"** (Kestra 2.0): "1" minus what 2.0 removed and plus what it added, as
  far as the reference records it: the 2.0 `AbstractTrigger` (`when`,
  `workerSelector`, `policyRefs`; no `conditions`, `workerGroup`,
  `minLogLevel`; unknown trigger properties rejected by a `@JsonAnySetter`);
  the 2.0 `AbstractFlow` (`workerSelector`), the flow's removed `listeners` and
  `taskDefaults`; the flow and task properties only the 2.0 API model names
  (accepted with any value); and the task types 2.0 removed (`REMOVED_IN_2`).

A property whose Java type the reference does not give is accepted with any
value; a type the reference does not list does not exist, as on a server
without that plugin. Nothing here comes from Switchyard's own flow validator.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

KestraVersion = Literal["1", "2"]
VERSIONS: tuple[KestraVersion, ...] = ("1", "2")
PluginKind = Literal["task", "trigger", "runner"]

_TASK = "io.kestra.core.models.tasks.Task"
_TRIGGER = "io.kestra.core.models.triggers.AbstractTrigger"
_RUNNER = "io.kestra.core.models.tasks.runners.TaskRunner"
_RETRY_BASE = "io.kestra.core.models.tasks.retrys.AbstractRetry"

# The one delta the reference file states only in prose: the task types Kestra
# 2.0 removes (kestra.md "Kestra 2.0 breaking changes", from kestra-io/agent-skills
# migrate-kestra-2; kestra.io/docs/migration-guide/v2.0.0/foreach-loop: flows
# that still use them "will fail to parse").
REMOVED_IN_2: Mapping[str, str] = {
    "io.kestra.plugin.core.flow.ForEach": "replaced by io.kestra.plugin.core.flow.Loop",
    "io.kestra.plugin.core.flow.ForEachItem": "replaced by io.kestra.plugin.core.flow.Loop",
    "io.kestra.plugin.core.flow.EachSequential": "replaced by io.kestra.plugin.core.flow.Loop",
    "io.kestra.plugin.core.flow.EachParallel": "replaced by io.kestra.plugin.core.flow.Loop",
    "io.kestra.plugin.core.trigger.Toggle": "removed without replacement",
}


def major(version: str) -> KestraVersion:
    """`"1"`, `"1.3.2"` → `"1"`; `"2.0"` → `"2"`; anything else is a ValueError."""
    head = str(version).strip().split(".")[0]
    for known in VERSIONS:
        if head == known:
            return known
    raise ValueError(f"Kestra version must be 1.x or 2.x, got {version!r}")


@dataclass(frozen=True)
class Prop:
    """One YAML property of a Java class, as Kestra's parser and validator see it."""

    name: str
    java_type: str = "Object"
    required: bool = False  # @NotNull, @NotEmpty or @NotBlank
    has_default: bool = False  # @Builder.Default or an initializer fills it in
    constraints: tuple[str, ...] = ()
    pattern: str | None = None
    enum: tuple[str, ...] = ()  # the constants, when the reference names them

    @property
    def must_be_set(self) -> bool:
        return self.required and not self.has_default

    def has(self, annotation: str) -> bool:
        return any(annotation in c for c in self.constraints)


@dataclass(frozen=True)
class PluginType:
    """A task, trigger or task-runner class: every property, inherited ones included."""

    name: str
    kind: PluginKind
    props: Mapping[str, Prop]
    ignored: frozenset[str] = frozenset()  # bound to nothing, silently dropped
    validations: tuple[str, ...] = ()  # class-level validators (DagTaskValidation, …)


@dataclass(frozen=True)
class Catalogue:
    """What a Kestra server of one version accepts in a flow."""

    version: KestraVersion
    types: Mapping[str, PluginType]  # by every accepted `type:` value, aliases included
    flow: Mapping[str, Prop]
    retry: Mapping[str, Mapping[str, Prop]]  # by retry `type`
    classes: Mapping[str, Mapping[str, Prop]]  # nested Java classes by simple name
    sla_types: Mapping[str, str]  # SLA `type` → class simple name
    removed_types: Mapping[str, str] = field(default_factory=dict)
    # 2.0: a trigger's unknown property fails in AbstractTrigger's @JsonAnySetter,
    # with a migration hint for the properties 2.0 removed.
    trigger_any_setter: bool = False
    trigger_migrations: Mapping[str, str] = field(default_factory=dict)


def _java_type(raw: str) -> tuple[str, tuple[str, ...]]:
    """`"RecoverMissedSchedules {LAST, NONE, ALL}"` → the type and its constants;
    descriptive suffixes the reference adds (`" (setter-only alias)"`) dropped."""
    text = raw.split(" (")[0].strip()
    enum: tuple[str, ...] = ()
    if " {" in text:
        text, _, inside = text.partition(" {")
        enum = tuple(re.findall(r"\b[A-Z][A-Z0-9_]+\b", inside))
    return text.strip(), enum


def _prop(name: str, entry: Mapping[str, Any]) -> Prop:
    java_type, enum = _java_type(str(entry.get("java_type") or "Object"))
    return Prop(
        name=name,
        java_type=java_type,
        required=bool(entry.get("required")),
        has_default=entry.get("default") is not None,
        constraints=tuple(str(c) for c in entry.get("constraints") or ()),
        pattern=entry.get("pattern") or None,
        enum=enum,
    )


def _props(entries: Mapping[str, Any], *, skip_declared_in: Iterable[str] = ()) -> dict[str, Prop]:
    skip = set(skip_declared_in)
    return {
        name: _prop(name, entry)
        for name, entry in entries.items()
        if isinstance(entry, Mapping) and entry.get("declared_in") not in skip
    }


def _names(items: Iterable[str]) -> list[str]:
    """`["minLogLevel (deprecated setter alias of logLevel)", "when"]` → the names."""
    return [str(item).split(" ")[0] for item in items]


def _untyped(names: Iterable[str], known: Mapping[str, Prop]) -> dict[str, Prop]:
    return {n: known.get(n) or Prop(n) for n in names}


def _kind(entry: Mapping[str, Any]) -> PluginKind:
    chain = " ".join(str(c) for c in entry.get("class_chain") or ())
    if _TRIGGER in chain:
        return "trigger"
    if _RUNNER in chain:
        return "runner"
    return "task"  # Task in the chain, or a type only a newer source describes


def _task_base(ref: Mapping[str, Any], version: KestraVersion) -> dict[str, Prop]:
    base = _props(ref["task_base"]["properties"])
    base.update(_props(ref["task_base"]["newer_source"]["properties"]))
    if version == "2":
        api_model = ref["flow"]["non_source_cross_reference"]["Task.__properties"]
        base.update({n: Prop(n) for n in api_model if n not in base})
    return base


def _trigger_base(ref: Mapping[str, Any], version: KestraVersion) -> dict[str, Prop]:
    snapshot = _props(ref["trigger_base"]["properties"])
    versions: Mapping[str, Any] = ref["trigger_base"]["newer_source"]["versions"]
    one_x = next(v for k, v in versions.items() if "1.x era" in k)
    two = next(v for k, v in versions.items() if k.endswith("(2.0)"))
    transition = next(v for k, v in versions.items() if k.endswith("(2.0 transition)"))
    typed = dict(snapshot)
    for name, java_type in one_x.get("types", {}).items():
        typed[name] = _prop(name, {"java_type": java_type})
    if version == "1":
        return _untyped(_names(one_x["properties"]), typed)
    typed["when"] = _prop("when", transition["when"])
    return _untyped(_names(two["properties"]), typed)


def _plugin(name: str, entry: Mapping[str, Any], base: Mapping[str, Prop]) -> PluginType:
    kind = _kind(entry)
    own = _props(entry.get("properties") or {}, skip_declared_in=(_TASK, _TRIGGER))
    newer: Mapping[str, Any] = entry.get("newer_source") or {}
    if isinstance(newer.get("own_properties"), Mapping):
        own = _props(newer["own_properties"])
    exec_script = entry.get("newer_source_AbstractExecScript") or {}
    own.update(_props(exec_script.get("properties") or {}))
    props = {**(base if kind != "runner" else {}), **own}
    ignored = set(entry.get("not_yaml_properties") or {})
    ignored |= set(_names(newer.get("not_yaml_properties") or ()))
    validations = set(entry.get("class_level_validations") or ())
    validations |= set(newer.get("class_level_validations") or ())
    return PluginType(name, kind, props, frozenset(ignored), tuple(sorted(validations)))


def _aliases(entry: Mapping[str, Any]) -> list[str]:
    out = []
    for holder in (entry, entry.get("newer_source") or {}):
        aliases = holder.get("aliases")
        if isinstance(aliases, list):
            out += [str(a) for a in aliases]
    return out


def _flow(ref: Mapping[str, Any], version: KestraVersion) -> dict[str, Prop]:
    flow = ref["flow"]
    newer = flow["newer_source"]
    props = _props(flow["properties"])
    props.update(_props(newer["properties_Flow_54590973117"]))
    if version == "1":
        return props
    for removed in _names(newer["removed_vs_2024-12 snapshot"]):
        props.pop(removed, None)
    props.update(_props(newer["properties_AbstractFlow_0bd2d22"]))
    api_model = flow["non_source_cross_reference"]["Flow.__properties"]
    props.update({n: Prop(n) for n in api_model if n not in props})
    return props


def _retry(ref: Mapping[str, Any]) -> dict[str, Mapping[str, Prop]]:
    retry = ref["retry"]
    common = _props(retry["newer_source"]["common"])  # maxAttempts, with maxAttempt its alias
    return {
        kind: {**_props(retry[kind]["properties"], skip_declared_in=(_RETRY_BASE,)), **common}
        for kind in ("constant", "exponential", "random")
    }


def _classes(ref: Mapping[str, Any]) -> dict[str, Mapping[str, Prop]]:
    flow_nested: Mapping[str, Any] = ref["flow"]["nested_2024-12 snapshot"]
    out: dict[str, Mapping[str, Prop]] = {}
    for name, entry in flow_nested.items():
        if isinstance(entry, Mapping) and isinstance(entry.get("properties"), Mapping):
            out[name.rsplit(".", 1)[-1]] = _props(entry["properties"])
    plugin_default = out["PluginDefault"]
    # FlowPluginDefault = {type (@NotNull), forced (…), ref, values}: the newer flow's note.
    note = ref["flow"]["newer_source"]["properties_Flow_54590973117"]["pluginDefaults"]["note"]
    listed = re.search(r"FlowPluginDefault = \{(.*)\}", note)
    fields = re.sub(r"\([^)]*\)", "", listed.group(1) if listed else "")
    names = [part.strip().split(" ")[0] for part in fields.split(",")]
    out["FlowPluginDefault"] = _untyped([n for n in names if n], plugin_default)
    nested: Mapping[str, Any] = ref["nested"]
    for key, entry in nested.items():
        cls = key.split(" ")[0].rsplit(".", 1)[-1]
        props = entry.get("properties")
        if isinstance(props, Mapping):
            out[cls] = _props(props)
        elif isinstance(props, list):  # names only (HttpConfiguration)
            out[cls] = {n: Prop(n) for n in _names(props)}
    # LoopUntil's CheckFrequency: every field a Property<…> (the LoopUntil note).
    check = ref["types"]["io.kestra.plugin.core.flow.LoopUntil"]["newer_source"]["own_properties"]
    out["LoopUntil.CheckFrequency"] = {
        n: Prop(n, "Property")
        for n in re.findall(r"(\w+): Property<", check["checkFrequency"]["note"])
    }
    return out


def _sla_types(ref: Mapping[str, Any]) -> dict[str, str]:
    text = ref["flow"]["nested_2024-12 snapshot"]["sla_discriminator"]
    return dict(re.findall(r"(\w+) -> (\w+)", text))


def _load() -> Mapping[str, Any]:
    data = resources.files("emulators.kestra") / "data" / "kestra-tasks.json"
    loaded: Mapping[str, Any] = json.loads(data.read_text(encoding="utf-8"))
    return loaded


@lru_cache(maxsize=len(VERSIONS))
def catalogue(version: str = "1") -> Catalogue:
    """The catalogue of Kestra `version` ("1", "2", or a full version string)."""
    v = major(version)
    ref = _load()
    task_base, trigger_base = _task_base(ref, v), _trigger_base(ref, v)
    plugins: dict[str, tuple[PluginType, list[str]]] = {}
    for name, entry in ref["types"].items():
        if str(entry.get("status", "")).startswith("does not exist"):
            continue
        base = trigger_base if _kind(entry) == "trigger" else task_base
        plugins[name] = (_plugin(name, entry, base), _aliases(entry))
    types: dict[str, PluginType] = {}
    removed: dict[str, str] = {}
    # Class names first: an old name that is also a class of its own (WaitFor,
    # which LoopUntil lists as its alias) stays that class.
    names = [(name, plugin) for name, (plugin, _) in plugins.items()]
    names += [(alias, plugin) for plugin, aliases in plugins.values() for alias in aliases]
    for name, plugin in names:
        if v == "2" and plugin.name in REMOVED_IN_2:
            removed[name] = REMOVED_IN_2[plugin.name]
        else:
            types.setdefault(name, plugin)
    migrations: dict[str, str] = {}
    if v == "2":
        # AbstractTrigger 2.0's @JsonAnySetter: "conditions" and "preconditions"
        # get migration messages (trigger_base.newer_source, unknown_property_handling).
        migrations = {
            "conditions": 'trigger conditions were replaced by "when" in Kestra 2.0',
            "preconditions": 'trigger preconditions were replaced by "dependsOn" in Kestra 2.0',
        }
    return Catalogue(
        version=v,
        types=types,
        flow=_flow(ref, v),
        retry=_retry(ref),
        classes=_classes(ref),
        sla_types=_sla_types(ref),
        removed_types=removed,
        trigger_any_setter=v == "2",
        trigger_migrations=migrations,
    )


__all__ = [
    "REMOVED_IN_2",
    "VERSIONS",
    "Catalogue",
    "KestraVersion",
    "PluginType",
    "Prop",
    "catalogue",
    "major",
]
