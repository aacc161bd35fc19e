"""Structural checks of a Kestra flow before any server sees it.

`validate_flow` returns every problem it finds (empty list = valid), each
with a path like `tasks[0].tasks[2].task.id`: ids and namespace against
Kestra's patterns, the required properties of every task and trigger type
Switchyard emits, unique task ids across the flow, `dependsOn` naming tasks
of the same `Dag` without cycles, retry and SLA shapes, label keys, and the
task types Kestra 2.0 removed. Types it does not know are checked only for
the common fields, since users may add rules for any plugin.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import yaml

FLOW_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$")
NAMESPACE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
TASK_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$")
TYPE = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*$")
LABEL_KEY = re.compile(r"^[a-z][a-zA-Z0-9._-]*$")
DURATION = re.compile(r"^P(?!$)(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")

# Required properties of the types Switchyard emits (Kestra plugin docs, kestra.md).
REQUIRED: dict[str, tuple[str, ...]] = {
    "io.kestra.plugin.scripts.shell.Commands": ("commands",),
    "io.kestra.plugin.scripts.python.Script": ("script",),
    "io.kestra.plugin.fs.ssh.Command": ("commands", "host"),
    "io.kestra.plugin.kubernetes.core.PodCreate": ("spec",),
    "io.kestra.plugin.aws.lambda.Invoke": ("functionArn",),
    "io.kestra.plugin.core.flow.Subflow": ("namespace", "flowId"),
    "io.kestra.plugin.core.http.Request": ("uri",),
    "io.kestra.plugin.core.log.Log": ("message",),
    "io.kestra.plugin.core.flow.Dag": ("tasks",),
    "io.kestra.plugin.core.flow.Parallel": ("tasks",),
    "io.kestra.plugin.core.flow.ForEach": ("values", "tasks"),
    "io.kestra.plugin.core.flow.Loop": ("values", "tasks"),
    "io.kestra.plugin.core.trigger.Schedule": ("cron",),
}
REMOVED_IN_2 = frozenset(
    {
        "io.kestra.plugin.core.flow.ForEach",
        "io.kestra.plugin.core.flow.ForEachItem",
        "io.kestra.plugin.core.flow.EachSequential",
        "io.kestra.plugin.core.flow.EachParallel",
        "io.kestra.plugin.core.trigger.Toggle",
    }
)
DAG = "io.kestra.plugin.core.flow.Dag"
RETRY_TYPES = {
    "constant": ("interval",),
    "exponential": ("interval", "maxInterval"),
    "random": ("minInterval", "maxInterval"),
}


@dataclass(frozen=True)
class FlowProblem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class _Checker:
    def __init__(self, kestra_version: str) -> None:
        self.v2 = kestra_version.split(".")[0] == "2"
        self.problems: list[FlowProblem] = []
        self.task_ids: dict[str, str] = {}

    def add(self, path: str, message: str) -> None:
        self.problems.append(FlowProblem(path, message))

    def duration(self, path: str, value: Any) -> None:
        if not isinstance(value, str) or not DURATION.match(value):
            self.add(path, f"must be an ISO-8601 duration like PT1H, got {value!r}")

    def retry(self, path: str, retry: Any) -> None:
        if not isinstance(retry, dict):
            self.add(path, "must be a mapping")
            return
        kind = retry.get("type")
        if kind not in RETRY_TYPES:
            self.add(f"{path}.type", f"must be one of {sorted(RETRY_TYPES)}, got {kind!r}")
            return
        for prop in RETRY_TYPES[kind]:
            if prop not in retry:
                self.add(f"{path}.{prop}", f"required for {kind} retry")
            else:
                self.duration(f"{path}.{prop}", retry[prop])
        attempts = retry.get("maxAttempts")
        if attempts is not None and (not isinstance(attempts, int) or attempts < 1):
            self.add(f"{path}.maxAttempts", f"must be a positive integer, got {attempts!r}")
        if "maxAttempt" in retry:
            self.add(f"{path}.maxAttempt", "0.x name; use maxAttempts")

    def common(self, path: str, item: Any, id_pattern: re.Pattern[str], what: str) -> str | None:
        if not isinstance(item, dict):
            self.add(path, f"a {what} must be a mapping")
            return None
        ident, kind = item.get("id"), item.get("type")
        if not isinstance(ident, str) or not id_pattern.match(ident) or len(ident) > 256:
            self.add(f"{path}.id", f"{what} id {ident!r} does not match {id_pattern.pattern}")
        if not isinstance(kind, str) or not TYPE.match(kind):
            self.add(f"{path}.type", f"{what} type {kind!r} is not a class name")
            return None
        for prop in REQUIRED.get(kind, ()):
            value = item.get(prop)
            if value is None or value == "" or value == [] or value == {}:
                self.add(f"{path}.{prop}", f"required by {kind}")
        if self.v2 and kind in REMOVED_IN_2:
            self.add(f"{path}.type", f"{kind} is removed in Kestra 2.0")
        return kind

    def task(self, path: str, task: Any) -> None:
        kind = self.common(path, task, TASK_ID, "task")
        if kind is None:
            return
        ident = task.get("id")
        if isinstance(ident, str):
            if ident in self.task_ids:
                self.add(f"{path}.id", f"task id {ident!r} already used at {self.task_ids[ident]}")
            else:
                self.task_ids[ident] = path
        if "retry" in task:
            self.retry(f"{path}.retry", task["retry"])
        if "timeout" in task:
            self.duration(f"{path}.timeout", task["timeout"])
        if kind == DAG:
            self.dag(path, task.get("tasks"))
            return
        for key in ("tasks", "errors", "finally", "then", "else"):
            children = task.get(key)
            if isinstance(children, list):
                for i, child in enumerate(children):
                    self.task(f"{path}.{key}[{i}]", child)

    def dag(self, path: str, entries: Any) -> None:
        if not isinstance(entries, list):
            return
        ids: list[str] = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or "task" not in entry:
                self.add(f"{path}.tasks[{i}]", "a Dag entry is {task: …, dependsOn: […]}")
                continue
            self.task(f"{path}.tasks[{i}].task", entry["task"])
            if isinstance(entry["task"], dict) and isinstance(entry["task"].get("id"), str):
                ids.append(entry["task"]["id"])
        known = set(ids)
        graph: dict[str, list[str]] = {}
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("task"), dict):
                continue
            deps = entry.get("dependsOn") or []
            if not isinstance(deps, list):
                self.add(f"{path}.tasks[{i}].dependsOn", "must be a list of task ids")
                continue
            for dep in deps:
                if dep not in known:
                    self.add(
                        f"{path}.tasks[{i}].dependsOn",
                        f"{dep!r} is not a task of this Dag",
                    )
            graph[str(entry["task"].get("id"))] = [d for d in deps if d in known]
        cycle = _cycle(graph)
        if cycle:
            self.add(f"{path}.tasks", "dependsOn forms a cycle: " + " → ".join(cycle))


def _cycle(graph: dict[str, list[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in graph.get(node, []):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if state.get(dep) is None:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if state.get(node) is None:
            found = visit(node)
            if found:
                return found
    return None


def validate_flow(flow: Any, *, kestra_version: str = "1") -> list[FlowProblem]:
    """Every structural problem of `flow` (a dict, or YAML text); [] when valid."""
    if isinstance(flow, str):
        try:
            flow = yaml.safe_load(flow)
        except yaml.YAMLError as exc:
            return [FlowProblem("(document)", f"not valid YAML: {exc}")]
    check = _Checker(kestra_version)
    if not isinstance(flow, dict):
        return [FlowProblem("(document)", "a flow must be a mapping")]
    fid, ns = flow.get("id"), flow.get("namespace")
    if not isinstance(fid, str) or not FLOW_ID.match(fid) or len(fid) > 100:
        check.add("id", f"flow id {fid!r} must match {FLOW_ID.pattern} (≤100 chars)")
    if not isinstance(ns, str) or not NAMESPACE.match(ns) or len(ns) > 150:
        check.add("namespace", f"namespace {ns!r} must match {NAMESPACE.pattern} (≤150 chars)")
    labels = flow.get("labels") or {}
    pairs = (
        list(labels.items())
        if isinstance(labels, dict)
        else [(x.get("key"), x.get("value")) for x in labels if isinstance(x, dict)]
        if isinstance(labels, list)
        else []
    )
    for key, value in pairs:
        if not isinstance(key, str) or not LABEL_KEY.match(key):
            check.add(f"labels.{key}", "label keys start with a lower-case letter")
        if value is None or str(value) == "":
            check.add(f"labels.{key}", "label values must not be empty")
    tasks = flow.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        check.add("tasks", "a flow needs at least one task")
    else:
        for i, task in enumerate(tasks):
            check.task(f"tasks[{i}]", task)
    trigger_ids: set[str] = set()
    for i, trigger in enumerate(flow.get("triggers") or []):
        check.common(f"triggers[{i}]", trigger, TASK_ID, "trigger")
        if isinstance(trigger, dict):
            tid = trigger.get("id")
            if tid in trigger_ids:
                check.add(f"triggers[{i}].id", f"trigger id {tid!r} used twice")
            trigger_ids.add(str(tid))
    for i, sla in enumerate(flow.get("sla") or []):
        path = f"sla[{i}]"
        if not isinstance(sla, dict) or not sla.get("id"):
            check.add(path, "an SLA needs an id")
            continue
        if sla.get("type") not in ("MAX_DURATION", "EXECUTION_ASSERTION"):
            check.add(f"{path}.type", "must be MAX_DURATION or EXECUTION_ASSERTION")
        if sla.get("behavior") not in ("FAIL", "CANCEL", "NONE"):
            check.add(f"{path}.behavior", "must be FAIL, CANCEL or NONE")
        if sla.get("type") == "MAX_DURATION":
            check.duration(f"{path}.duration", sla.get("duration"))
    if "retry" in flow:
        check.retry("retry", flow["retry"])
    return check.problems


class FlowValidator(Protocol):
    """A Kestra server's validation endpoint (`KestraApi.validate` fits)."""

    def validate(self, yaml_text: str) -> Sequence[Any]: ...


def check_flow(
    yaml_text: str, *, kestra_version: str = "1", server: FlowValidator | None = None
) -> list[FlowProblem]:
    """Structural problems, then (when a server is given and none were found)
    the server's own constraint violations from `POST /flows/validate`."""
    problems = validate_flow(yaml_text, kestra_version=kestra_version)
    if problems or server is None:
        return problems
    for verdict in server.validate(yaml_text):
        constraints = getattr(verdict, "constraints", None)
        if constraints:
            for line in str(constraints).splitlines():
                problems.append(FlowProblem(f"(server, document {verdict.index})", line))
    return problems
