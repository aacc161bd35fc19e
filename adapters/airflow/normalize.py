"""Airflow REST payloads → `RunEvent`s and `JobSpec`s (pure: no I/O, no clock).

The span tree, decided here once:

- A DAG run is a root span: kind ``run``, key ``<dag_id>/<run_id>``.
- Each task **try** is a span of kind ``attempt``, key
  ``<dag_id>/<run_id>/<task_id>/<map_index>/<try_number>``, whose parent and
  root are the DAG run. There is no separate task span: Airflow's task instance
  row *is* its latest try, so a task span would only repeat that try's state
  and times. Tries of one task (and the instances of one mapped task) group by
  the attributes ``airflow.task_id`` and ``airflow.map_index``.
- A task instance that never got a try (``try_number`` 0) is emitted only when
  it is already final (``upstream_failed``, ``skipped``, ``removed``): it never
  ran and never will in this run, and it is what explains a red DAG run. One
  with no state yet is left out, so no try-0 span is left dangling once the
  real try 1 appears.

Native states map through `gateway.states` (``airflow.dag_run`` and
``airflow.task_instance``); the native value stays in ``airflow.state``.
Payloads are the JSON dicts of both API versions: Airflow 3 (``/api/v2``) and
Airflow 2 (``/api/v1``, which says ``execution_date`` where 3 says
``logical_date``).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from adapters.airflow import refs
from gateway.contract import ErrorInfo, JobSpec, RunEvent, RunKind, State, TaskSpec
from gateway.states import StateMap

DAG_RUN_SYSTEM = "airflow.dag_run"
TASK_SYSTEM = "airflow.task_instance"
# A try that never ran and never will in this DAG run.
_FINAL_WITHOUT_TRY = frozenset({"upstream_failed", "skipped", "removed"})
FAILED_TRY_STATES = frozenset({"failed", "up_for_retry"})


def parse_time(value: Any) -> datetime | None:
    """An API timestamp (RFC 3339, ``Z`` or offset) as an aware datetime."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without timezone: {value!r}")
    return parsed


def dag_run_key(dag_id: str, run_id: str) -> str:
    return f"{dag_id}/{run_id}"


def _run_id(payload: Mapping[str, Any]) -> str:
    run_id = payload.get("dag_run_id") or payload.get("run_id")
    if not run_id:
        raise ValueError("payload has no dag_run_id")
    return str(run_id)


def _logical_date(payload: Mapping[str, Any]) -> datetime | None:
    return parse_time(payload.get("logical_date") or payload.get("execution_date"))


def _ol_instant(payload: Mapping[str, Any]) -> datetime | None:
    # The OpenLineage provider uses logical_date, else run_after (Airflow 3 manual runs).
    return _logical_date(payload) or parse_time(payload.get("run_after"))


def _ui_url(base_url: str | None, dag_id: str, run_id: str, task: str | None = None) -> str | None:
    if not base_url:
        return None
    url = f"{base_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    if task:
        url += f"/tasks/{quote(task, safe='')}"
    return url


def _drop_none(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if v is not None}


def dag_run_event(
    source: str,
    payload: Mapping[str, Any],
    *,
    observed_at: datetime,
    states: StateMap,
    base_url: str | None = None,
    ol_namespace: str = "default",
    error_message: str | None = None,
) -> RunEvent:
    dag_id = str(payload["dag_id"])
    run_id = _run_id(payload)
    native = payload.get("state")
    state = states.map(DAG_RUN_SYSTEM, native)
    run_refs = refs.conf_refs(
        payload.get("conf") if isinstance(payload.get("conf"), dict) else None
    )
    instant = _ol_instant(payload)
    if instant is not None:
        ol_id = refs.openlineage_dag_run_id(ol_namespace, dag_id, instant)
        run_refs.append(refs.Ref(namespace="openlineage.run", value=ol_id))
    error = None
    if state is State.failed:
        error = ErrorInfo(kind="dag_run_failed", message=error_message)
    return RunEvent(
        source=source,
        kind=RunKind.run,
        key=dag_run_key(dag_id, run_id),
        job=dag_id,
        name=dag_id,
        state=state,
        started_at=parse_time(payload.get("start_date")),
        ended_at=parse_time(payload.get("end_date")),
        observed_at=observed_at,
        nominal_time=_logical_date(payload),
        error=error,
        attributes=_drop_none(
            {
                "cicd.pipeline.name": dag_id,
                "cicd.pipeline.run.id": run_id,
                "airflow.dag_id": dag_id,
                "airflow.run_id": run_id,
                "airflow.state": native,
                "airflow.run_type": payload.get("run_type"),
                "airflow.triggered_by": payload.get("triggered_by"),
                "airflow.external_trigger": payload.get("external_trigger"),
                "airflow.queued_at": payload.get("queued_at"),
                "airflow.run_after": payload.get("run_after"),
                "airflow.logical_date": payload.get("logical_date")
                or payload.get("execution_date"),
            }
        ),
        refs=run_refs,
        url=_ui_url(base_url, dag_id, run_id),
    )


def task_try_key(payload: Mapping[str, Any], try_number: int | None = None) -> str:
    return refs.ti_key(
        str(payload["dag_id"]),
        _run_id(payload),
        str(payload["task_id"]),
        int(payload.get("map_index", -1) if payload.get("map_index") is not None else -1),
        int(payload["try_number"] if try_number is None else try_number),
    )


def task_try_event(
    source: str,
    payload: Mapping[str, Any],
    *,
    observed_at: datetime,
    states: StateMap,
    base_url: str | None = None,
    ol_namespace: str = "default",
    run: Mapping[str, Any] | None = None,
    error: ErrorInfo | None = None,
) -> RunEvent | None:
    """One task try, or None for a task instance that has not had a try yet.

    `payload` is a task-instance row or a ``/tries`` entry; `run` (the DAG run
    payload) supplies dates the tries endpoint leaves out.
    """
    dag_id = str(payload["dag_id"])
    run_id = _run_id(payload)
    task_id = str(payload["task_id"])
    map_index = int(payload["map_index"]) if payload.get("map_index") is not None else -1
    try_number = int(payload.get("try_number") or 0)
    native = payload.get("state")
    if try_number == 0 and native not in _FINAL_WITHOUT_TRY:
        return None
    state = states.map(TASK_SYSTEM, native)
    if error is None and native in FAILED_TRY_STATES:
        error = ErrorInfo(kind="task_failed")
    instant = _ol_instant(payload) or (_ol_instant(run) if run else None)
    run_key = dag_run_key(dag_id, run_id)
    name = task_id if map_index < 0 else f"{task_id}[{map_index}]"
    return RunEvent(
        source=source,
        kind=RunKind.attempt,
        key=refs.ti_key(dag_id, run_id, task_id, map_index, try_number),
        parent_key=run_key,
        root_key=run_key,
        job=dag_id,
        name=name,
        state=state,
        started_at=parse_time(payload.get("start_date")),
        ended_at=parse_time(payload.get("end_date")),
        observed_at=observed_at,
        nominal_time=_logical_date(payload) or (_logical_date(run) if run else None),
        attempt=try_number,
        error=error,
        attributes=_drop_none(
            {
                "cicd.pipeline.name": dag_id,
                "cicd.pipeline.run.id": run_id,
                "cicd.pipeline.task.name": task_id,
                "airflow.dag_id": dag_id,
                "airflow.run_id": run_id,
                "airflow.task_id": task_id,
                "airflow.map_index": map_index,
                "airflow.rendered_map_index": payload.get("rendered_map_index"),
                "airflow.try_number": try_number,
                "airflow.max_tries": payload.get("max_tries"),
                "airflow.state": native,
                "airflow.operator": payload.get("operator") or payload.get("operator_name"),
                "airflow.hostname": payload.get("hostname") or None,
                "airflow.pool": payload.get("pool"),
                "airflow.queue": payload.get("queue"),
                "airflow.executor": payload.get("executor"),
                "airflow.ti_id": str(payload["id"]) if payload.get("id") else None,
                "airflow.queued_at": payload.get("queued_when"),
            }
        ),
        refs=refs.task_try_refs(
            dag_id=dag_id,
            run_id=run_id,
            task_id=task_id,
            map_index=map_index,
            try_number=try_number,
            logical_date=instant,
            ol_namespace=ol_namespace,
        ),
        url=_ui_url(base_url, dag_id, run_id, task_id),
    )


# --- discovery ---------------------------------------------------------------

_TIMEZONE_KWARGS = ("tz", "timezone")


def _literal(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return {"expr": ast.unparse(node)}


def task_arguments_from_source(source_text: str | None) -> dict[str, dict[str, Any]]:
    """The keyword arguments of each operator call in a DAG file, by task_id.

    Literals are kept as values; anything computed is kept as its source text
    under ``{"expr": ...}`` so a translator sees it rather than a guess.
    ``@task`` functions are recorded with their function name as task id.
    """
    if not source_text:
        return {}
    try:
        tree = ast.parse(source_text)
    except SyntaxError:
        return {}
    found: dict[str, dict[str, Any]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            kwargs = {kw.arg: kw.value for kw in node.keywords if kw.arg}
            task_id = kwargs.get("task_id")
            if isinstance(task_id, ast.Constant) and isinstance(task_id.value, str):
                found[task_id.value] = {
                    name: _literal(value) for name, value in kwargs.items() if name != "task_id"
                }
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for deco in node.decorator_list:
                target = deco.func if isinstance(deco, ast.Call) else deco
                text = ast.unparse(target)
                if text == "task" or text.startswith("task."):
                    found.setdefault(node.name, {"python_callable": node.name, "decorator": text})
    return found


def timezone_from_source(source_text: str | None) -> str | None:
    """The timezone named in a DAG file's start_date (``tz=``/``timezone=``), if any.

    Airflow 3.3's DAG details report ``timezone: "UTC"`` even when the cron runs
    in the start_date's zone, so the file is the better witness.
    """
    if not source_text:
        return None
    try:
        tree = ast.parse(source_text)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg == "start_date" and isinstance(kw.value, ast.Call):
                    for inner in kw.value.keywords:
                        if (
                            inner.arg in _TIMEZONE_KWARGS
                            and isinstance(inner.value, ast.Constant)
                            and isinstance(inner.value.value, str)
                        ):
                            return inner.value.value
    return None


_CRON_PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


def cron_of(schedule: str | None) -> str | None:
    """A five-field cron expression for a schedule, or None when it is not one."""
    if not schedule:
        return None
    text = schedule.strip()
    if text in _CRON_PRESETS:
        return _CRON_PRESETS[text]
    if len(text.split()) == 5 and all(
        set(part) <= set("0123456789*/,-?LW#ABCDEFGHIJKLMNOPQRSTUVWXYZ")
        for part in text.upper().split()
    ):
        return text
    return None


def _seconds(value: Any) -> float | None:
    if isinstance(value, Mapping) and value.get("__type") == "TimeDelta":
        return (
            float(value.get("days", 0)) * 86400
            + float(value.get("seconds", 0))
            + float(value.get("microseconds", 0)) / 1e6
        )
    if isinstance(value, Mapping) and "days" in value:  # Airflow 2 TimeDelta schema
        return float(value.get("days", 0)) * 86400 + float(value.get("seconds", 0))
    if isinstance(value, int | float):
        return float(value)
    return None


def task_spec(task: Mapping[str, Any], arguments: Mapping[str, Any]) -> TaskSpec:
    class_ref = task.get("class_ref") or {}
    operator = task.get("operator_name") or class_ref.get("class_name") or "unknown"
    args: dict[str, Any] = dict(arguments)
    if class_ref.get("module_path"):
        args.setdefault("_operator_module", class_ref["module_path"])
    for name in ("trigger_rule", "pool", "queue", "is_mapped"):
        if task.get(name) is not None:
            args.setdefault(f"_{name}", task[name])
    retries = task.get("retries")
    return TaskSpec(
        id=str(task["task_id"]),
        type=str(operator),
        arguments=args,
        retries=int(retries) if isinstance(retries, int | float) else None,
        timeout_s=_seconds(task.get("execution_timeout")),
    )


def job_spec(
    source: str,
    dag: Mapping[str, Any],
    tasks: Sequence[Mapping[str, Any]],
    *,
    source_text: str | None,
    base_url: str | None = None,
) -> JobSpec:
    """A DAG (its details payload, its tasks, its file) as a `JobSpec`."""
    dag_id = str(dag["dag_id"])
    arguments = task_arguments_from_source(source_text)
    specs = [task_spec(t, arguments.get(str(t["task_id"]), {})) for t in tasks]
    upstream: dict[str, list[str]] = {s.id: [] for s in specs}
    edges: list[tuple[str, str]] = []
    for t in tasks:
        for down in t.get("downstream_task_ids") or []:
            edges.append((str(t["task_id"]), str(down)))
            upstream.setdefault(str(down), []).append(str(t["task_id"]))
    for spec in specs:
        spec.upstream = sorted(upstream.get(spec.id, []))
    schedule_native = dag.get("timetable_summary") or dag.get("schedule_interval")
    if isinstance(schedule_native, Mapping):  # Airflow 2 CronExpression / TimeDelta object
        schedule_native = schedule_native.get("value") or str(schedule_native)
    tags = [t["name"] if isinstance(t, Mapping) else str(t) for t in dag.get("tags") or []]
    owners = [str(o) for o in dag.get("owners") or []]
    if not owners:
        # Airflow 2.10 can report `owners: []` while every task names its owner.
        owners = sorted({str(t["owner"]) for t in tasks if t.get("owner") not in (None, "airflow")})
    labels = {f"tag.{t}": "true" for t in tags}
    definition = {
        k: dag.get(k)
        for k in (
            "description",
            "catchup",
            "max_active_runs",
            "max_active_tasks",
            "start_date",
            "end_date",
            "fileloc",
            "relative_fileloc",
            "default_args",
            "params",
            "timetable_description",
            "dag_run_timeout",
            "is_paused_upon_creation",
        )
        if dag.get(k) is not None
    }
    definition["tags"] = tags
    definition["owners"] = owners
    return JobSpec(
        source=source,
        key=dag_id,
        kind="dag",
        name=dag.get("dag_display_name") or dag_id,
        schedule=cron_of(schedule_native if isinstance(schedule_native, str) else None),
        schedule_native=str(schedule_native) if schedule_native else None,
        timezone=timezone_from_source(source_text) or str(dag.get("timezone") or "UTC"),
        paused=bool(dag.get("is_paused")),
        owner=", ".join(owners) or None,
        labels=labels,
        max_duration_s=_seconds(dag.get("dag_run_timeout")),
        tasks=specs,
        edges=edges,
        definition=definition,
        source_text=source_text,
        url=f"{base_url.rstrip('/')}/dags/{quote(dag_id, safe='')}" if base_url else None,
    )
