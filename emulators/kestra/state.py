"""The emulator's memory: flows with revisions, trigger states, executions.

Executions are deterministic: each one is planned when it is created (its
state history, one task run per leaf task, attempts) from the flow's
`Scenario` and the injected clock, and every read shows the plan as of
"now". A test that advances its own clock sees CREATED → RUNNING → SUCCESS
(or FAILED) without sleeping; the demo uses the wall clock and a delay.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from emulators.kestra.catalogue import Catalogue, catalogue
from emulators.kestra.flow_parser import FlowInvalid, Violation, parse_flow

TERMINAL = frozenset(
    {"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "RETRIED", "SKIPPED", "RESUBMITTED"}
)
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CONTAINERS = ("tasks", "then", "else", "errors", "finally")


class ApiError(Exception):
    """An HTTP error answer: status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self, path: str) -> dict[str, Any]:
        return {"message": self.message}


class InvalidEntity(ApiError):
    """A flow Kestra refuses: 422 shaped as Kestra's ErrorController answers a
    ConstraintViolationException (Micronaut's vnd.error `JsonError`): the
    violations joined in `message`, one `{message, path}` each under
    `_embedded.errors`."""

    def __init__(self, violations: list[Violation]) -> None:
        super().__init__(422, "Invalid entity: " + ", ".join(str(v) for v in violations))
        self.violations = violations

    def body(self, path: str) -> dict[str, Any]:
        return {
            "message": self.message,
            "_links": {"self": {"href": path, "templated": False}},
            "_embedded": {
                "errors": [{"message": v.message, "path": v.path} for v in self.violations]
            },
        }


@dataclass(frozen=True)
class Scenario:
    """How executions of one flow play out.

    `outcome` SUCCESS or FAILED; `duration_s` from creation to the end;
    `failing_task` (default: the last leaf task) fails when the outcome is
    FAILED, and the tasks after it never start; `attempts` tries per task run
    (all but the last fail; the last takes the task's final state).
    """

    outcome: str = "SUCCESS"
    duration_s: float = 1.0
    failing_task: str | None = None
    attempts: int = 1


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _short_id(seed: str) -> str:
    n = int(hashlib.sha256(seed.encode()).hexdigest(), 16)
    out = ""
    while len(out) < 22:
        n, r = divmod(n, 62)
        out += _ALPHABET[r]
    return out


def leaf_task_ids(tasks: list[Any]) -> list[str]:
    """Ids of the tasks that do work, in flow order (Dag entries unwrapped)."""
    out: list[str] = []
    for task in tasks or []:
        if not isinstance(task, dict):
            continue
        if "task" in task and isinstance(task["task"], dict):  # a Dag entry
            out += leaf_task_ids([task["task"]])
            continue
        children = [c for key in _CONTAINERS for c in (task.get(key) or []) if key in task]
        if children and any(isinstance(c, dict) for c in children):
            out += leaf_task_ids(children)
        else:
            out.append(str(task.get("id")))
    return out


def _labels_map(labels: Any) -> dict[str, str]:
    if isinstance(labels, dict):
        return {str(k): str(v) for k, v in labels.items()}
    if isinstance(labels, list):
        return {str(x["key"]): str(x["value"]) for x in labels if isinstance(x, dict)}
    return {}


@dataclass
class FlowRecord:
    tenant: str
    namespace: str
    id: str
    source: str
    body: dict[str, Any]
    revision: int
    updated: datetime

    def as_json(self, *, with_source: bool) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in self.body.items() if k not in ("labels",)}
        out["labels"] = _labels_map(self.body.get("labels"))
        out.update(
            id=self.id,
            namespace=self.namespace,
            revision=self.revision,
            updated=_iso(self.updated),
            disabled=bool(self.body.get("disabled", False)),
            deleted=False,
            draft=False,
        )
        if with_source:
            out["source"] = self.source
        return out


@dataclass
class Plan:
    """One state history: (state, date) pairs in order."""

    steps: list[tuple[str, datetime]]

    def at(self, now: datetime) -> list[tuple[str, datetime]]:
        return [(s, d) for s, d in self.steps if d <= now]


def _state_json(history: list[tuple[str, datetime]]) -> dict[str, Any]:
    current = history[-1][0]
    start = history[0][1]
    end = history[-1][1] if current in TERMINAL else None
    duration = f"PT{((end or history[-1][1]) - start).total_seconds():g}S"
    state: dict[str, Any] = {
        "current": current,
        "histories": [{"state": s, "date": _iso(d)} for s, d in history],
        "startDate": _iso(start),
        "endDate": _iso(end) if end else None,
        "duration": duration,
        # The OpenAPI document lists Java getter names as required keys of State.
        "getStartDate": _iso(start),
        "getEndDate": _iso(end or history[-1][1]),
        "getDuration": duration,
    }
    return state


@dataclass
class TaskRunPlan:
    id: str
    task_id: str
    state: Plan
    attempts: list[Plan]


@dataclass
class ExecutionRecord:
    tenant: str
    id: str
    namespace: str
    flow_id: str
    flow_revision: int
    labels: dict[str, str]
    plan: Plan
    task_runs: list[TaskRunPlan]
    trigger: dict[str, Any] | None = None
    schedule_date: datetime | None = None

    def started(self, now: datetime) -> bool:
        return bool(self.plan.at(now))

    def start_date(self) -> datetime:
        return self.plan.steps[0][1]

    def as_json(self, now: datetime, *, light: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tenantId": self.tenant,
            "id": self.id,
            "namespace": self.namespace,
            "flowId": self.flow_id,
            "flowRevision": self.flow_revision,
            "labels": [{"key": k, "value": v} for k, v in self.labels.items()],
            "state": _state_json(self.plan.at(now)),
            "originalId": self.id,
            "kind": "NORMAL",
        }
        if self.trigger:
            out["trigger"] = self.trigger
        if self.schedule_date:
            out["scheduleDate"] = _iso(self.schedule_date)
        if light:
            return out
        out["metadata"] = {"attemptNumber": 1, "originalCreatedDate": _iso(self.start_date())}
        out["inputs"] = {}
        out["outputs"] = {}
        runs = []
        for tr in self.task_runs:
            history = tr.state.at(now)
            if not history:
                continue
            run: dict[str, Any] = {
                "id": tr.id,
                "executionId": self.id,
                "namespace": self.namespace,
                "flowId": self.flow_id,
                "taskId": tr.task_id,
                "state": _state_json(history),
                "attempts": [{"state": _state_json(a.at(now))} for a in tr.attempts if a.at(now)],
            }
            runs.append(run)
        out["taskRunList"] = runs
        return out


@dataclass
class KestraState:
    clock: Callable[[], datetime]
    catalogue: Catalogue = field(default_factory=catalogue)
    flows: dict[tuple[str, str, str], FlowRecord] = field(default_factory=dict)
    triggers: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)
    executions: dict[str, ExecutionRecord] = field(default_factory=dict)
    scenarios: dict[tuple[str, str], Scenario] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _counter: int = 0

    # flows -------------------------------------------------------------
    def parse_flow(self, source: str) -> dict[str, Any]:
        try:
            return parse_flow(source, self.catalogue)
        except FlowInvalid as exc:
            raise InvalidEntity(exc.violations) from exc

    def put_flow(self, tenant: str, source: str, *, expect: tuple[str, str] | None) -> FlowRecord:
        body = self.parse_flow(source)
        key = (tenant, str(body["namespace"]), str(body["id"]))
        with self.lock:
            existing = self.flows.get(key)
            if expect is None and existing is not None:
                raise ApiError(422, f"Flow id '{key[2]}' already exists in namespace '{key[1]}'")
            if expect is not None:
                if (key[1], key[2]) != expect:
                    raise ApiError(422, "Illegal flow id update: id and namespace must not change")
                if existing is None:
                    raise ApiError(404, f"Flow {expect[0]}.{expect[1]} not found")
            revision = existing.revision + 1 if existing else 1
            record = FlowRecord(tenant, key[1], key[2], source, body, revision, self.clock())
            self.flows[key] = record
            for trigger in body.get("triggers") or []:
                tkey = (*key, str(trigger["id"]))
                state = self.triggers.get(tkey) or {
                    "namespace": key[1],
                    "flowId": key[2],
                    "triggerId": str(trigger["id"]),
                }
                state["disabled"] = bool(trigger.get("disabled", False))
                state["updatedAt"] = _iso(self.clock())
                self.triggers[tkey] = state
            return record

    def flow(self, tenant: str, namespace: str, flow_id: str) -> FlowRecord:
        record = self.flows.get((tenant, namespace, flow_id))
        if record is None:
            raise ApiError(404, f"Flow {namespace}.{flow_id} not found")
        return record

    # executions ---------------------------------------------------------
    def create_execution(
        self,
        tenant: str,
        namespace: str,
        flow_id: str,
        labels: dict[str, str],
        *,
        trigger: dict[str, Any] | None = None,
    ) -> ExecutionRecord:
        with self.lock:
            flow = self.flow(tenant, namespace, flow_id)
            if flow.body.get("disabled"):
                raise ApiError(409, f"Flow {namespace}.{flow_id} is disabled")
            self._counter += 1
            now = self.clock()
            ex_id = _short_id(f"{tenant}/{namespace}/{flow_id}/{self._counter}")
            scenario = self.scenarios.get((namespace, flow_id), Scenario())
            plan, runs = _plan(ex_id, flow, scenario, now)
            merged = _labels_map(flow.body.get("labels"))
            merged.update(labels)
            merged.setdefault("system.correlationId", ex_id)
            record = ExecutionRecord(
                tenant,
                ex_id,
                namespace,
                flow_id,
                flow.revision,
                merged,
                plan,
                runs,
                trigger=trigger,
                schedule_date=now if trigger else None,
            )
            self.executions[ex_id] = record
            return record


def _plan(
    ex_id: str, flow: FlowRecord, scenario: Scenario, t0: datetime
) -> tuple[Plan, list[TaskRunPlan]]:
    leaves = leaf_task_ids(flow.body.get("tasks") or []) or ["task"]
    failing = scenario.failing_task or leaves[-1]
    if scenario.outcome != "SUCCESS" and failing not in leaves:
        raise ApiError(422, f"scenario failing_task {failing!r} is not a task of the flow")
    start = t0 + timedelta(milliseconds=100)
    end = t0 + timedelta(seconds=max(scenario.duration_s, 0.2))
    slice_s = (end - start).total_seconds() / len(leaves)
    runs: list[TaskRunPlan] = []
    for i, task_id in enumerate(leaves):
        a = start + timedelta(seconds=i * slice_s)
        b = a + timedelta(seconds=slice_s)
        fails = scenario.outcome != "SUCCESS" and task_id == failing
        final = scenario.outcome if fails else "SUCCESS"
        tries = max(scenario.attempts, 1)
        step = (b - a) / tries
        attempts = []
        for n in range(tries):
            ta, tb = a + step * n, a + step * (n + 1)
            last = n == tries - 1
            attempts.append(Plan([("RUNNING", ta), (final if last else "FAILED", tb)]))
        history = [("CREATED", a), ("RUNNING", a)]
        if tries > 1:
            history.append(("RETRYING", a + step))
            history.append(("RUNNING", a + step))
        history.append((final, b))
        runs.append(TaskRunPlan(_short_id(f"{ex_id}/{task_id}"), task_id, Plan(history), attempts))
        if fails:
            break
    outcome = scenario.outcome if scenario.outcome in TERMINAL else "SUCCESS"
    plan = Plan([("CREATED", t0), ("RUNNING", start), (outcome, end)])
    return plan, runs
