"""Kubernetes objects (as the API server's JSON) → `RunEvent`s and `JobSpec`s.

Pure: every function takes the object dict exactly as the API server serves it
(camelCase keys), plus what the caller already knows (source name, observation
time, the pod's attempt number, Events seen about the object), and returns
contract objects. No I/O, no clock, no module state.

The trace shape:

* a Job is a run (`job/<ns>/<name>/<uid>`); its `job` is its CronJob
  (`cronjob/<ns>/<name>`) when a CronJob owns it, else the Job itself
  (`job/<ns>/<name>`);
* each pod of a Job is an attempt span under it (`pod/<ns>/<name>/<uid>`);
* a bare pod that Airflow launched (KubernetesPodOperator, KubernetesExecutor)
  is a run of its own;
* a CronJob controller `MissSchedule` Event is a `missed` run of that CronJob.

Keys carry the object uid, so a Job recreated under the same name is a new run
and re-observing an object (relist, replay) yields the same key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from gateway.contract import ErrorInfo, JobSpec, Ref, RunEvent, RunKind, State, parse_traceparent
from gateway.states import StateMap

SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")
JOB_UID_LABELS = ("batch.kubernetes.io/controller-uid", "controller-uid")
# Labels and annotations Airflow writes on the pods it launches (airflow.md).
AIRFLOW_TI_KEYS = ("dag_id", "task_id", "run_id", "try_number", "map_index")
# Warning reasons on pods that explain why a try could not start or keeps dying.
POD_EVIDENCE_REASONS = frozenset(
    {
        "FailedScheduling",
        "ErrImagePull",
        "ImagePullBackOff",
        "BackOff",
        "Failed",
        "Evicted",
        "FailedMount",
        "FailedCreatePodSandBox",
    }
)
JOB_FAILURE_REASONS = frozenset(
    {
        "BackoffLimitExceeded",
        "DeadlineExceeded",
        "PodFailurePolicy",
        "MaxFailedIndexesExceeded",
        "FailedIndexes",
    }
)
MAX_LABEL_ATTRIBUTES = 32
_CRON_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_WAITING_FAILURES = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
        "InvalidImageName",
    }
)


# --- small readers -------------------------------------------------------------


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as Kubernetes writes it (`Z` or offset, µs optional)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _first(mapping: Mapping[str, str], keys: Sequence[str]) -> str | None:
    for key in keys:
        if mapping.get(key):
            return mapping[key]
    return None


def job_key(namespace: str, name: str, uid: str) -> str:
    return f"job/{namespace}/{name}/{uid}"


def pod_key(namespace: str, name: str, uid: str) -> str:
    return f"pod/{namespace}/{name}/{uid}"


def cronjob_job_key(namespace: str, name: str) -> str:
    return f"cronjob/{namespace}/{name}"


def standalone_job_key(namespace: str, name: str) -> str:
    return f"job/{namespace}/{name}"


def cronjob_owner(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The owning CronJob reference of a Job, if a CronJob made it."""
    for ref in _meta(obj).get("ownerReferences") or []:
        if isinstance(ref, Mapping) and ref.get("kind") == "CronJob":
            return ref
    return None


def _label_attributes(prefix: str, labels: Mapping[str, str]) -> dict[str, str]:
    return {f"{prefix}.{k}": v for k, v in sorted(labels.items())[:MAX_LABEL_ATTRIBUTES]}


def _env_traceparent(pod_spec: Any) -> str | None:
    if not isinstance(pod_spec, Mapping):
        return None
    for container in pod_spec.get("containers") or []:
        for env in (container or {}).get("env") or []:
            if isinstance(env, Mapping) and env.get("name") == "TRACEPARENT":
                value = env.get("value")
                if isinstance(value, str) and parse_traceparent(value):
                    return value.strip().lower()
    return None


def airflow_refs(labels: Mapping[str, str], annotations: Mapping[str, str]) -> list[Ref]:
    """The refs Airflow's pod labels/annotations let two systems share.

    `airflow.ti` = `<dag_id>/<run_id>/<task_id>/<map_index>/<try_number>` from
    the unsanitised annotations (KubernetesExecutor writes them);
    `airflow.ti_label` = the same shape from the labels, whose values Airflow
    passed through `make_safe_label_value` (so a long or odd `run_id` is
    truncated and hashed). The Airflow adapter emits both forms for a task
    try, so either makes an exact link. `map_index` is -1 when absent
    (KubernetesPodOperator only writes it for mapped tasks).
    """
    refs: list[Ref] = []
    for namespace, source in (("airflow.ti", annotations), ("airflow.ti_label", labels)):
        dag, run, task, try_number = (
            source.get(k) for k in ("dag_id", "run_id", "task_id", "try_number")
        )
        if not (dag and run and task and try_number):
            continue
        map_index = source.get("map_index") or labels.get("map_index") or "-1"
        refs.append(Ref(namespace=namespace, value=f"{dag}/{run}/{task}/{map_index}/{try_number}"))
    return refs


def _airflow_attributes(
    labels: Mapping[str, str], annotations: Mapping[str, str]
) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for key in AIRFLOW_TI_KEYS:
        value = annotations.get(key) or labels.get(key)
        if value:
            attrs[f"airflow.{key}"] = value
    if labels.get("kubernetes_pod_operator"):
        attrs["airflow.launcher"] = "KubernetesPodOperator"
    elif labels.get("kubernetes_executor") or "airflow-worker" in labels:
        attrs["airflow.launcher"] = "KubernetesExecutor"
    return attrs


# --- Events as evidence ---------------------------------------------------------


def event_view(event: Mapping[str, Any]) -> dict[str, Any]:
    """One Event, core/v1 or events.k8s.io/v1, reduced to what evidence needs.

    Returns `{kind, namespace, name, uid, reason, message, type, at, component}`;
    `at` is the latest time the Event names (series/lastTimestamp/eventTime).
    """
    regarding = event.get("involvedObject") or event.get("regarding") or {}
    meta = _meta(event)
    at = (
        parse_time((event.get("series") or {}).get("lastObservedTime"))
        or parse_time(event.get("lastTimestamp"))
        or parse_time(event.get("eventTime"))
        or parse_time(event.get("deprecatedLastTimestamp"))
        or parse_time(event.get("firstTimestamp"))
        or parse_time(meta.get("creationTimestamp"))
    )
    source = event.get("source") or {}
    return {
        "kind": regarding.get("kind"),
        "namespace": regarding.get("namespace") or meta.get("namespace") or "",
        "name": regarding.get("name"),
        "uid": regarding.get("uid"),
        "reason": event.get("reason") or "",
        "message": event.get("message") or event.get("note") or "",
        "type": event.get("type") or "Normal",
        "at": at,
        "component": event.get("reportingComponent")
        or event.get("reportingController")
        or source.get("component"),
    }


def _latest_warning(
    evidence: Sequence[Mapping[str, Any]], reasons: frozenset[str]
) -> Mapping[str, Any] | None:
    warnings = [e for e in evidence if e.get("reason") in reasons]
    return warnings[-1] if warnings else None


def _evidence_attribute(evidence: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "reason": e.get("reason"),
            "message": (e.get("message") or "")[:512],
            "at": e["at"].isoformat() if isinstance(e.get("at"), datetime) else None,
        }
        for e in evidence[-10:]
    ]


# --- Jobs -----------------------------------------------------------------------


def _true_conditions(status: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {
        str(c.get("type")): c
        for c in status.get("conditions") or []
        if isinstance(c, Mapping) and c.get("status") == "True"
    }


def job_condition(obj: Mapping[str, Any]) -> tuple[str, Mapping[str, Any] | None]:
    """The native state of a Job: its deciding condition type, or active/pending."""
    status = obj.get("status") or {}
    conditions = _true_conditions(status)
    for kind in ("Failed", "Complete", "FailureTarget", "SuccessCriteriaMet", "Suspended"):
        if kind in conditions:
            return kind, conditions[kind]
    return ("active" if (status.get("active") or 0) > 0 else "pending"), None


def job_event(
    obj: Mapping[str, Any],
    *,
    source: str,
    observed_at: datetime,
    states: StateMap,
    evidence: Sequence[Mapping[str, Any]] = (),
    deleted: bool = False,
) -> RunEvent:
    """A Job as a run. `deleted` marks the last object a DELETED watch event carried."""
    meta = _meta(obj)
    ns, name, uid = meta.get("namespace") or "", meta.get("name") or "", meta.get("uid") or ""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    labels = _str_map(meta.get("labels"))
    annotations = _str_map(meta.get("annotations"))
    native, condition = job_condition(obj)
    state = states.map("kubernetes.job_condition", native)
    ended_at: datetime | None = None
    error: ErrorInfo | None = None
    if state.terminal and condition is not None:
        ended_at = parse_time(status.get("completionTime")) if native == "Complete" else None
        ended_at = ended_at or parse_time(condition.get("lastTransitionTime"))
        if state is State.failed:
            error = ErrorInfo(
                kind=str(condition.get("reason") or native),
                message=str(condition.get("message") or "") or None,
            )
    if not state.terminal:
        # A Job Event can be newer than the object we hold (the object watch lags
        # or the Job was deleted unseen): a terminal Event then decides.
        verdict = _job_verdict_from_events(evidence)
        if verdict is not None:
            state, error, ended_at = verdict
        elif deleted:
            # Deleted before it finished (TTL and history limits only remove
            # finished Jobs, so this was a person or a controller cancelling it).
            state = State.cancelled
            ended_at = parse_time(meta.get("deletionTimestamp")) or observed_at
    owner = cronjob_owner(obj)
    attributes: dict[str, Any] = {
        "k8s.namespace.name": ns,
        "k8s.job.name": name,
        "k8s.job.uid": uid,
        "k8s.job.condition": native,
        "k8s.job.status.active": status.get("active") or 0,
        "k8s.job.status.succeeded": status.get("succeeded") or 0,
        "k8s.job.status.failed": status.get("failed") or 0,
        **_label_attributes("k8s.job.label", labels),
    }
    if condition is not None and condition.get("reason"):
        attributes["k8s.job.condition.reason"] = condition["reason"]
    if deleted:
        attributes["k8s.job.deleted"] = True
    if evidence:
        attributes["k8s.events"] = _evidence_attribute(evidence)
    if owner is not None:
        attributes["k8s.cronjob.name"] = owner.get("name")
        attributes["k8s.cronjob.uid"] = owner.get("uid")
        job = cronjob_job_key(ns, str(owner.get("name")))
    else:
        job = standalone_job_key(ns, name)
    refs = [Ref(namespace="k8s.job.uid", value=uid)] if uid else []
    traceparent = _env_traceparent((spec.get("template") or {}).get("spec"))
    if traceparent:
        refs.append(Ref(namespace="w3c.traceparent", value=traceparent))
    return RunEvent(
        source=source,
        kind=RunKind.run,
        key=job_key(ns, name, uid),
        job=job,
        name=name,
        state=state,
        started_at=parse_time(status.get("startTime")),
        ended_at=ended_at,
        observed_at=observed_at,
        nominal_time=parse_time(annotations.get(SCHEDULED_TIMESTAMP)),
        error=error,
        attributes=attributes,
        refs=refs,
    )


def _job_verdict_from_events(
    evidence: Sequence[Mapping[str, Any]],
) -> tuple[State, ErrorInfo | None, datetime | None] | None:
    for e in reversed(evidence):
        reason = e.get("reason")
        if reason == "Completed":
            return State.succeeded, None, e.get("at")
        if reason in JOB_FAILURE_REASONS:
            return (
                State.failed,
                ErrorInfo(kind=str(reason), message=e.get("message") or None),
                e.get("at"),
            )
    return None


def job_event_from_events(
    view: Mapping[str, Any],
    evidence: Sequence[Mapping[str, Any]],
    *,
    source: str,
    observed_at: datetime,
    job: str | None = None,
) -> RunEvent | None:
    """A Job's ending known only from its Events (the object was deleted unseen).

    The Job controller records `Completed` or the failure reason as an Event;
    Events outlive TTL-deleted Jobs, so after a long disconnect they are the
    only witness. Returns None when the Events do not say how it ended.
    """
    verdict = _job_verdict_from_events(evidence)
    if verdict is None or not view.get("uid") or not view.get("name"):
        return None
    state, error, ended_at = verdict
    ns, name, uid = str(view.get("namespace")), str(view["name"]), str(view["uid"])
    return RunEvent(
        source=source,
        kind=RunKind.run,
        key=job_key(ns, name, uid),
        job=job or standalone_job_key(ns, name),
        name=name,
        state=state,
        ended_at=ended_at,
        observed_at=observed_at,
        error=error,
        attributes={
            "k8s.namespace.name": ns,
            "k8s.job.name": name,
            "k8s.job.uid": uid,
            "k8s.events": _evidence_attribute(evidence),
        },
        refs=[Ref(namespace="k8s.job.uid", value=uid)],
    )


# --- Pods -----------------------------------------------------------------------


def _container_statuses(status: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [
        c
        for c in [
            *(status.get("initContainerStatuses") or []),
            *(status.get("containerStatuses") or []),
        ]
        if isinstance(c, Mapping)
    ]


def _pod_failure(status: Mapping[str, Any]) -> tuple[ErrorInfo | None, dict[str, Any]]:
    """The most specific reason a pod's containers give, and its OTel attributes."""
    attrs: dict[str, Any] = {}
    chosen: ErrorInfo | None = None
    for cs in _container_statuses(status):
        state = cs.get("state") or {}
        terminated = state.get("terminated") or (cs.get("lastState") or {}).get("terminated")
        waiting = state.get("waiting")
        if cs.get("restartCount"):
            attrs["k8s.container.restart_count"] = cs["restartCount"]
        last = (cs.get("lastState") or {}).get("terminated")
        if last and last.get("reason"):
            attrs["k8s.container.status.last_terminated_reason"] = last["reason"]
        if terminated and (terminated.get("exitCode") or 0) != 0:
            reason = str(terminated.get("reason") or "exit_code")
            code = terminated.get("exitCode")
            message = (
                terminated.get("message") or f"container {cs.get('name')} exited with code {code}"
            )
            attrs.update(
                {
                    "k8s.container.name": cs.get("name"),
                    "k8s.container.status.state": "terminated"
                    if state.get("terminated")
                    else "waiting",
                    "k8s.container.status.reason": reason,
                    "k8s.container.exit_code": code,
                }
            )
            return ErrorInfo(kind=reason, message=str(message), exit_code=code), attrs
        if waiting and waiting.get("reason") in _WAITING_FAILURES and chosen is None:
            attrs.update(
                {
                    "k8s.container.name": cs.get("name"),
                    "k8s.container.status.state": "waiting",
                    "k8s.container.status.reason": waiting["reason"],
                }
            )
            chosen = ErrorInfo(kind=str(waiting["reason"]), message=waiting.get("message") or None)
    return chosen, attrs


def pod_event(
    obj: Mapping[str, Any],
    *,
    source: str,
    observed_at: datetime,
    states: StateMap,
    attempt: int = 1,
    evidence: Sequence[Mapping[str, Any]] = (),
    deleted: bool = False,
) -> RunEvent:
    """A pod as an attempt under its Job, or as a run of its own if no Job owns it."""
    meta = _meta(obj)
    ns, name, uid = meta.get("namespace") or "", meta.get("name") or "", meta.get("uid") or ""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    labels = _str_map(meta.get("labels"))
    annotations = _str_map(meta.get("annotations"))
    phase = status.get("phase") or "Pending"
    state = states.map("kubernetes.pod_phase", phase)
    ended_at: datetime | None = None
    error, attributes = _pod_failure(status)
    if state.terminal:
        finished = [
            parse_time(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt"))
            for cs in _container_statuses(status)
        ]
        ended_at = max((f for f in finished if f is not None), default=None)
    if state is State.failed and error is None and status.get("reason"):
        error = ErrorInfo(kind=str(status["reason"]), message=status.get("message") or None)
    if state is State.succeeded:
        error = None
    elif error is None:
        warning = _latest_warning(evidence, POD_EVIDENCE_REASONS)
        if warning is not None:
            error = ErrorInfo(kind=str(warning["reason"]), message=warning.get("message") or None)
    if deleted and not state.terminal:
        state = State.cancelled
        ended_at = parse_time(meta.get("deletionTimestamp")) or observed_at
    job_name = _first(labels, JOB_NAME_LABELS)
    job_uid = _first(labels, JOB_UID_LABELS)
    attributes.update(
        {
            "k8s.namespace.name": ns,
            "k8s.pod.name": name,
            "k8s.pod.uid": uid,
            "k8s.pod.status.phase": phase,
            **_label_attributes("k8s.pod.label", labels),
            **_airflow_attributes(labels, annotations),
        }
    )
    if spec.get("nodeName"):
        attributes["k8s.node.name"] = spec["nodeName"]
    if status.get("reason"):
        attributes["k8s.pod.status.reason"] = status["reason"]
    if deleted:
        attributes["k8s.pod.deleted"] = True
    if evidence:
        attributes["k8s.events"] = _evidence_attribute(evidence)
    refs = [Ref(namespace="k8s.pod.uid", value=uid)] if uid else []
    refs.extend(airflow_refs(labels, annotations))
    parent_key: str | None = None
    kind = RunKind.run
    if job_name and job_uid:
        attributes["k8s.job.name"] = job_name
        attributes["k8s.job.uid"] = job_uid
        parent_key = job_key(ns, job_name, job_uid)
        kind = RunKind.attempt
        job = None
    else:
        # A bare pod (KubernetesPodOperator) is its own run; it carries the trace
        # context the Job would otherwise carry.
        traceparent = _env_traceparent(spec)
        if traceparent:
            refs.append(Ref(namespace="w3c.traceparent", value=traceparent))
        dag, task = labels.get("dag_id"), labels.get("task_id")
        job = f"pod/{ns}/{dag}.{task}" if dag and task else f"pod/{ns}/{name}"
    return RunEvent(
        source=source,
        kind=kind,
        key=pod_key(ns, name, uid),
        parent_key=parent_key,
        job=job,
        name=name,
        state=state,
        started_at=parse_time(status.get("startTime")),
        ended_at=ended_at,
        observed_at=observed_at,
        attempt=max(attempt, 1),
        error=error,
        attributes=attributes,
        refs=refs,
    )


# --- CronJobs -------------------------------------------------------------------

_RFC1123 = re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})")


def missed_schedule_time(message: str) -> datetime | None:
    """The scheduled time a `MissSchedule` Event names.

    The CronJob controller writes "Missed scheduled time to start a job: %s"
    with the time in RFC 1123 (numeric zone); RFC 3339 is accepted too.
    """
    m = _RFC1123.search(message)
    if m:
        return parsedate_to_datetime(m.group(0)).astimezone(UTC)
    m = _RFC3339.search(message)
    return parse_time(m.group(0)) if m else None


def missed_run_event(
    view: Mapping[str, Any], *, source: str, observed_at: datetime
) -> RunEvent | None:
    """A `MissSchedule` Event about a CronJob as a `missed` run of that CronJob."""
    if (
        view.get("kind") != "CronJob"
        or view.get("reason") != "MissSchedule"
        or not view.get("name")
    ):
        return None
    ns, name = str(view.get("namespace")), str(view["name"])
    nominal = missed_schedule_time(str(view.get("message") or "")) or view.get("at")
    if nominal is None:
        return None
    stamp = nominal.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return RunEvent(
        source=source,
        kind=RunKind.run,
        key=f"cronjob/{ns}/{name}/missed/{stamp}",
        job=cronjob_job_key(ns, name),
        name=name,
        state=State.missed,
        ended_at=view.get("at") or nominal,
        observed_at=observed_at,
        nominal_time=nominal,
        error=ErrorInfo(kind="missed", message=str(view.get("message") or "") or None),
        attributes={
            "k8s.namespace.name": ns,
            "k8s.cronjob.name": name,
            **({"k8s.cronjob.uid": view["uid"]} if view.get("uid") else {}),
        },
    )


def _definition(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest without server bookkeeping (status, managedFields, rv)."""
    meta = {
        k: v
        for k, v in _meta(obj).items()
        if k not in ("managedFields", "resourceVersion", "generation", "selfLink")
    }
    return {
        "apiVersion": obj.get("apiVersion") or "batch/v1",
        "kind": obj.get("kind"),
        "metadata": meta,
        "spec": obj.get("spec") or {},
    }


def cronjob_spec(obj: Mapping[str, Any], *, source: str, default_timezone: str = "UTC") -> JobSpec:
    """A CronJob as a `JobSpec`: schedule, time zone, suspend and the manifest."""
    meta = _meta(obj)
    spec = obj.get("spec") or {}
    ns, name = meta.get("namespace") or "", meta.get("name") or ""
    native = str(spec.get("schedule") or "").strip()
    timezone = spec.get("timeZone") or default_timezone
    schedule = native
    # `CRON_TZ=`/`TZ=` prefixes are rejected by current controllers but read here.
    m = re.match(r"^(?:CRON_)?TZ=(\S+)\s+(.*)$", schedule)
    if m:
        timezone, schedule = m.group(1), m.group(2)
    schedule = _CRON_MACROS.get(schedule, schedule)
    job_template = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    deadline = spec.get("startingDeadlineSeconds")
    active_deadline = job_template.get("activeDeadlineSeconds")
    return JobSpec(
        source=source,
        key=cronjob_job_key(ns, name),
        kind="cronjob",
        name=name,
        schedule=schedule or None,
        schedule_native=native or None,
        timezone=timezone,
        paused=bool(spec.get("suspend")),
        labels=_str_map(meta.get("labels")),
        grace_s=float(deadline) if isinstance(deadline, int | float) else None,
        max_duration_s=float(active_deadline) if isinstance(active_deadline, int | float) else None,
        definition=_definition({**obj, "kind": "CronJob"}),
    )


def standalone_job_spec(obj: Mapping[str, Any], *, source: str) -> JobSpec:
    """A Job no CronJob owns, as an unscheduled `JobSpec` (kind `k8s_job`)."""
    meta = _meta(obj)
    ns, name = meta.get("namespace") or "", meta.get("name") or ""
    active_deadline = (obj.get("spec") or {}).get("activeDeadlineSeconds")
    return JobSpec(
        source=source,
        key=standalone_job_key(ns, name),
        kind="k8s_job",
        name=name,
        labels=_str_map(meta.get("labels")),
        paused=bool((obj.get("spec") or {}).get("suspend")),
        max_duration_s=float(active_deadline) if isinstance(active_deadline, int | float) else None,
        definition=_definition({**obj, "kind": "Job"}),
    )


def is_job_pod(obj: Mapping[str, Any]) -> bool:
    labels = _str_map(_meta(obj).get("labels"))
    return bool(_first(labels, JOB_NAME_LABELS) and _first(labels, JOB_UID_LABELS))


def pod_job_uid(obj: Mapping[str, Any]) -> str | None:
    return _first(_str_map(_meta(obj).get("labels")), JOB_UID_LABELS)
