"""Kestra executions and flows → `RunEvent`s and `JobSpec`s. Pure: no I/O, no clock.

An execution is a run span (`<namespace>/<flow>/<execution id>`); each task
run a task span under it (under its parent task run for flowable tasks), and
each attempt an attempt span under its task run. States map through the
`kestra.execution` table of `mappings/states.yaml`.

Labels become correlation refs: `switchyard.traceparent` → `w3c.traceparent`
(+ `w3c.trace`), `system.correlationId` → `kestra.execution` (so a subflow's
executions link to their root), `switchyard.ref.<ns>=<value>` → `<ns>`. The
`switchyard.job` label (written by translation) names the legacy job the
flow replaces; it is carried as the `switchyard.legacy_job` attribute so the
job's history can be followed across the cutover.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.contract import (
    ErrorInfo,
    JobSpec,
    Ref,
    RunEvent,
    RunKind,
    State,
    TaskSpec,
    parse_traceparent,
)
from gateway.states import StateMap

SYSTEM = "kestra.execution"
SCHEDULE_TYPES = frozenset(
    {"io.kestra.plugin.core.trigger.Schedule", "io.kestra.core.models.triggers.types.Schedule"}
)
DAG_TYPE = "io.kestra.plugin.core.flow.Dag"
REF_LABEL_PREFIX = "switchyard.ref."


def _dt(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def labels_of(obj: dict[str, Any]) -> dict[str, str]:
    """Labels as a map, whether the payload carries a list of {key, value} or a map."""
    raw = obj.get("labels")
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return {str(x["key"]): str(x["value"]) for x in raw if isinstance(x, dict) and "key" in x}
    return {}


def refs_from_labels(labels: dict[str, str]) -> list[Ref]:
    refs: list[Ref] = []
    traceparent = labels.get("switchyard.traceparent")
    if traceparent:
        parsed = parse_traceparent(traceparent)
        if parsed:
            refs.append(Ref(namespace="w3c.traceparent", value=traceparent.strip().lower()))
            refs.append(Ref(namespace="w3c.trace", value=parsed[0]))
    correlation = labels.get("system.correlationId")
    if correlation:
        refs.append(Ref(namespace="kestra.execution", value=correlation))
    for key in sorted(labels):
        if key.startswith(REF_LABEL_PREFIX) and labels[key]:
            namespace = key[len(REF_LABEL_PREFIX) :]
            try:
                refs.append(Ref(namespace=namespace, value=labels[key]))
            except ValueError:
                continue  # not a valid ref namespace; the label stays in attributes
    return refs


def _dedupe(refs: list[Ref]) -> list[Ref]:
    seen: set[tuple[str, str]] = set()
    out = []
    for ref in refs:
        if (ref.namespace, ref.value) not in seen:
            seen.add((ref.namespace, ref.value))
            out.append(ref)
    return out


def _times(state: dict[str, Any]) -> tuple[datetime | None, datetime | None, str | None]:
    """(started, ended, current) from a Kestra State: start = first RUNNING."""
    histories = state.get("histories") or []
    current = state.get("current")
    started = next((_dt(h.get("date")) for h in histories if h.get("state") == "RUNNING"), None)
    ended = _dt(state.get("endDate"))
    if ended is None and histories and current in TERMINAL_NATIVE:
        ended = _dt(histories[-1].get("date"))
    return started, ended, current


TERMINAL_NATIVE = frozenset(
    {"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "RETRIED", "SKIPPED", "RESUBMITTED"}
)


def run_key(execution: dict[str, Any]) -> str:
    return f"{execution['namespace']}/{execution['flowId']}/{execution['id']}"


def job_key(namespace: str, flow_id: str) -> str:
    return f"{namespace}/{flow_id}"


def execution_url(ui_base: str | None, tenant: str, execution: dict[str, Any]) -> str | None:
    if not ui_base:
        return None
    return (
        f"{ui_base.rstrip('/')}/ui/{tenant}/executions/"
        f"{execution['namespace']}/{execution['flowId']}/{execution['id']}"
    )


def execution_events(
    source: str,
    execution: dict[str, Any],
    *,
    states: StateMap,
    observed_at: datetime,
    ui_base: str | None = None,
    tenant: str = "main",
) -> list[RunEvent]:
    """The run, task and attempt events of one execution (full or light form)."""
    key = run_key(execution)
    labels = labels_of(execution)
    state = execution.get("state") or {}
    started, ended, native = _times(state)
    mapped = states.map(SYSTEM, native)
    task_runs = execution.get("taskRunList") or []
    attributes: dict[str, Any] = {
        "cicd.pipeline.name": f"{execution['namespace']}.{execution['flowId']}",
        "cicd.pipeline.run.id": execution["id"],
        "kestra.namespace": execution["namespace"],
        "kestra.flow_id": execution["flowId"],
        "kestra.state": native,
    }
    if execution.get("flowRevision") is not None:
        attributes["kestra.flow_revision"] = execution["flowRevision"]
    trigger = execution.get("trigger") or {}
    if trigger.get("type"):
        attributes["kestra.trigger.type"] = trigger["type"]
        attributes["kestra.trigger.id"] = trigger.get("id")
    if labels.get("switchyard.job"):
        attributes["switchyard.legacy_job"] = labels["switchyard.job"]
    if labels:
        attributes["kestra.labels"] = labels
    url = execution_url(ui_base, tenant, execution)
    if url:
        attributes["cicd.pipeline.run.url.full"] = url
    error = None
    if mapped is State.failed:
        failed = [
            tr.get("taskId")
            for tr in task_runs
            if (tr.get("state") or {}).get("current") == "FAILED"
        ]
        message = f"task {', '.join(str(t) for t in failed)} failed" if failed else None
        error = ErrorInfo(kind="failed", message=message)
    elif native == "KILLED":
        error = ErrorInfo(kind="killed", message="execution was killed")
    refs = _dedupe(
        [Ref(namespace="kestra.execution", value=execution["id"]), *refs_from_labels(labels)]
    )
    metadata = execution.get("metadata") or {}
    events = [
        RunEvent(
            source=source,
            kind=RunKind.run,
            key=key,
            job=job_key(execution["namespace"], execution["flowId"]),
            name=execution["flowId"],
            state=mapped,
            started_at=started,
            ended_at=ended if mapped.terminal else None,
            observed_at=observed_at,
            nominal_time=_dt(execution.get("scheduleDate")),
            attempt=int(metadata.get("attemptNumber") or 1),
            error=error,
            attributes=attributes,
            refs=refs,
            url=url,
        )
    ]
    task_keys: dict[str, str] = {}
    for tr in task_runs:
        value = tr.get("value")
        task_keys[str(tr["id"])] = f"{key}/{tr['taskId']}" + (f"/{value}" if value else "")
    for tr in task_runs:
        events += _task_run_events(source, key, tr, task_keys, states, observed_at, url)
    return events


def _task_run_events(
    source: str,
    root: str,
    tr: dict[str, Any],
    task_keys: dict[str, str],
    states: StateMap,
    observed_at: datetime,
    url: str | None,
) -> list[RunEvent]:
    key = task_keys[str(tr["id"])]
    parent = task_keys.get(str(tr.get("parentTaskRunId") or ""), root)
    state = tr.get("state") or {}
    started, ended, native = _times(state)
    mapped = states.map(SYSTEM, native)
    attempts = tr.get("attempts") or []
    attributes: dict[str, Any] = {
        "cicd.pipeline.task.name": tr["taskId"],
        "cicd.pipeline.task.run.id": tr["id"],
        "kestra.state": native,
    }
    if tr.get("value"):
        attributes["kestra.taskrun.value"] = tr["value"]
    events = [
        RunEvent(
            source=source,
            kind=RunKind.task,
            key=key,
            parent_key=parent,
            root_key=root,
            name=tr["taskId"],
            state=mapped,
            started_at=started,
            ended_at=ended if mapped.terminal else None,
            observed_at=observed_at,
            attempt=max(len(attempts), 1),
            error=ErrorInfo(kind="failed") if mapped is State.failed else None,
            attributes=attributes,
            url=url,
        )
    ]
    for n, attempt in enumerate(attempts, start=1):
        a_state = attempt.get("state") or {}
        a_started, a_ended, a_native = _times(a_state)
        a_mapped = states.map(SYSTEM, a_native)
        events.append(
            RunEvent(
                source=source,
                kind=RunKind.attempt,
                key=f"{key}/{n}",
                parent_key=key,
                root_key=root,
                name=tr["taskId"],
                state=a_mapped,
                started_at=a_started or _dt(a_state.get("startDate")),
                ended_at=a_ended if a_mapped.terminal else None,
                observed_at=observed_at,
                attempt=n,
                error=ErrorInfo(kind="failed") if a_mapped is State.failed else None,
                attributes={"kestra.state": a_native},
                url=url,
            )
        )
    return events


def flow_job(source: str, flow: dict[str, Any], *, ui_base: str | None, tenant: str) -> JobSpec:
    """A deployed flow as `JobSpec(kind="kestra_flow")`."""
    namespace, flow_id = str(flow["namespace"]), str(flow["id"])
    schedule = timezone = None
    for trigger in flow.get("triggers") or []:
        if isinstance(trigger, dict) and trigger.get("type") in SCHEDULE_TYPES:
            cron = trigger.get("cron")
            if isinstance(cron, str):
                schedule, timezone = cron, trigger.get("timezone")
                break
    tasks: list[TaskSpec] = []
    edges: list[tuple[str, str]] = []
    for task in flow.get("tasks") or []:
        if not isinstance(task, dict):
            continue
        if task.get("type") == DAG_TYPE:
            for entry in task.get("tasks") or []:
                inner = entry.get("task") or {}
                deps = [str(d) for d in entry.get("dependsOn") or []]
                tasks.append(
                    TaskSpec(id=str(inner.get("id")), type=str(inner.get("type")), upstream=deps)
                )
                edges += [(d, str(inner.get("id"))) for d in deps]
        else:
            tasks.append(TaskSpec(id=str(task.get("id")), type=str(task.get("type"))))
    labels = labels_of(flow)
    definition = {k: v for k, v in flow.items() if k != "source"}
    return JobSpec(
        source=source,
        key=job_key(namespace, flow_id),
        kind="kestra_flow",
        name=flow_id,
        schedule=schedule if schedule and len(schedule.split()) == 5 else None,
        schedule_native=schedule,
        timezone=timezone or "UTC",
        paused=bool(flow.get("disabled")),
        owner=labels.get("owner"),
        labels=labels,
        tasks=tasks,
        edges=edges,
        definition=definition,
        source_text=flow.get("source"),
        url=f"{ui_base.rstrip('/')}/ui/{tenant}/flows/edit/{namespace}/{flow_id}"
        if ui_base
        else None,
    )
