"""Wrap a legacy job: a Kestra flow that owns the schedule and calls the legacy job.

Scheduling moves first, execution later: the wrap flow carries the legacy
job's schedule (the translation's Schedule trigger, emitted disabled — the
lifecycle enables it only after the legacy schedule is paused) and its work
is one call to the legacy system:

- Airflow DAG, Airflow 3: `core.http.Request` against `/api/v2` (JWT from
  `/auth/token`), then a `LoopUntil` that polls the DAG run until it ends,
  then a `Fail` task that FAILS the execution when the run ended `failed`;
- Airflow DAG, Airflow 2: the Airflow plugin's `TriggerDagRun` (`/api/v1`,
  `wait: true`) followed by a `Fail` task, because the plugin does not fail
  on a failed DAG run;
- CronJob: `PodCreate` from the CronJob's pod template;
- Lambda: `aws.lambda.Invoke` of the function;
- crontab line: the SSH `Command` on its host.

Every wrap flow first builds a W3C `traceparent` for the execution, stamps
it on the execution as the `switchyard.traceparent` label (the Kestra
adapter turns it into a `w3c.traceparent` ref) and hands the same value to
the legacy run: the Airflow run's `conf` (`traceparent` and
`airflow/dagrun_parent_trace_context`), the pod's `TRACEPARENT` env, the
Lambda payload's `headers.traceparent`, the SSH command's env. The legacy
adapters read those back, so the Kestra execution and the legacy run link
exactly. `wrap(spec, ...)` is pure: same inputs, same YAML.

Like a translation, a wrap flow is built as data: the job key and every
string taken from the job (the command, the DAG id, the host) are literal
text for Kestra's renderer (`translate.pebble`), only Switchyard's own
expressions stay live, and the text comes from `translate.flow_yaml`, read
back and compared before it is returned. It is then validated like a
translation; a flow with problems is a `WrapError`, never deployed.
`WrapFlow.target` says where the work will run (the cron host over SSH, or
the Kestra worker itself; the pod, function or DAG), which is what an
operator confirms.
A CronJob's masked env values reach the pod as Kestra secret references (as in
its translation); a legacy call with a credential masked inside its text (a
crontab command) cannot be called as written and is refused (`WrapError`).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.contract import JobSpec
from migration_tools.translate import (
    DEFAULT_NAMESPACE,
    Translation,
    render_flow,
    translate,
    validate_flow,
)
from migration_tools.translate.flow import flow_id_for
from migration_tools.translate.pebble import Pebble, expression, join, safe_flow

TRACE_TASK = "switchyard_trace"
TRACEPARENT = expression("{{ outputs.switchyard_trace.values.traceparent }}")
# A fresh W3C trace context per execution: 32 hex trace id, 16 hex span id.
_TRACEPARENT_EXPR = expression(
    "00-{{ uuid() | replace({'-': ''}) | lower }}-"
    "{{ uuid() | replace({'-': ''}) | lower | slice(0, 16) }}-01"
)
WRAP_SUFFIX = "_wrap"
WRAPPED_KINDS = frozenset({"dag", "cronjob", "lambda", "crontab"})


class WrapError(ValueError):
    """The job cannot be wrapped; names the job and what is missing."""

    def __init__(self, job: str, message: str) -> None:
        super().__init__(f"{job}: {message}")
        self.job = job
        self.message = message


@dataclass(frozen=True)
class AirflowTarget:
    """How the wrap flow reaches Airflow: its URL, major version, secret names."""

    url: str
    version: Literal["2", "3"] = "3"
    username_secret: str = "AIRFLOW_USERNAME"
    password_secret: str = "AIRFLOW_PASSWORD"
    poll_interval: str = "PT30S"
    max_duration: str = "PT12H"


@dataclass(frozen=True)
class WrapOptions:
    namespace: str = DEFAULT_NAMESPACE
    kestra_version: str = "1"
    airflow: AirflowTarget | None = None
    ssh_key_secret: str = "SSH_PRIVATE_KEY"


@dataclass(frozen=True)
class WrapTarget:
    """Where a wrapped job's work will run: what an operator confirms before a wrap.

    `via` is `ssh` (the Kestra worker logs in to `where` as `user` and runs
    `command` there), `local` (the Kestra worker runs `command` itself, as its
    own user, not on the host the line came from), `kubernetes`, `lambda` or
    `airflow` (Kestra asks that system to run it).
    """

    via: Literal["ssh", "local", "kubernetes", "lambda", "airflow"]
    where: str
    user: str | None = None
    command: str | None = None

    @property
    def on_kestra_worker(self) -> bool:
        return self.via == "local"

    @property
    def summary(self) -> str:
        if self.via == "ssh":
            as_user = f" as {self.user!r}" if self.user else ""
            return f"runs {self.command!r} on host {self.where!r}{as_user}, over SSH"
        if self.via == "local":
            return (
                f"runs {self.command!r} on the Kestra worker itself (local shell, as the "
                f"worker's own user), not on host {self.where!r}"
            )
        if self.via == "kubernetes":
            return f"starts a pod in Kubernetes namespace {self.where!r} ({self.command})"
        if self.via == "lambda":
            return f"invokes AWS Lambda function {self.where!r}"
        return f"triggers Airflow DAG {self.command!r} at {self.where}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "via": self.via,
            "where": self.where,
            "user": self.user,
            "command": self.command,
            "on_kestra_worker": self.on_kestra_worker,
            "summary": self.summary,
        }


@dataclass(frozen=True)
class WrapFlow:
    source: str
    job_key: str
    flow_id: str
    namespace: str
    flow: dict[str, Any]
    yaml_text: str
    target: WrapTarget
    trigger_ids: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())


def wrap_flow_id(spec: JobSpec) -> str:
    return flow_id_for(f"{spec.name or spec.key}{WRAP_SUFFIX}")


def _secret(name: str) -> Pebble:
    return expression("{{ secret('" + name + "') }}")


def _trace_tasks() -> list[dict[str, Any]]:
    return [
        {
            "id": TRACE_TASK,
            "type": "io.kestra.plugin.core.output.OutputValues",
            "values": {"traceparent": _TRACEPARENT_EXPR},
        },
        {
            "id": "switchyard_label",
            "type": "io.kestra.plugin.core.execution.Labels",
            "labels": {"switchyard.traceparent": TRACEPARENT},
        },
    ]


def _conf() -> dict[str, Any]:
    return {
        "traceparent": TRACEPARENT,
        "airflow/dagrun_parent_trace_context": {"traceparent": TRACEPARENT},
        "switchyard.kestra_execution": expression("{{ execution.id }}"),
    }


def _airflow3(dag_id: str, target: AirflowTarget) -> list[dict[str, Any]]:
    # The URL is the operator's; the DAG id is the legacy system's text.
    base = expression(target.url.rstrip("/"))
    auth = expression("Bearer {{ outputs.airflow_token.body | jq('.access_token') | first }}")
    run_id = expression("kestra__{{ execution.id }}")
    state = "outputs.poll_dag_run.body | jq('.state') | first"
    return [
        {
            "id": "airflow_token",
            "type": "io.kestra.plugin.core.http.Request",
            "uri": join(base, expression("/auth/token")),
            "method": "POST",
            "contentType": "application/json",
            "body": expression(
                json.dumps(
                    {
                        "username": _secret(target.username_secret),
                        "password": _secret(target.password_secret),
                    }
                )
            ),
        },
        {
            "id": "trigger_dag_run",
            "type": "io.kestra.plugin.core.http.Request",
            "uri": join(base, expression("/api/v2/dags/"), dag_id, expression("/dagRuns")),
            "method": "POST",
            "contentType": "application/json",
            "headers": {"Authorization": auth},
            "body": {"dag_run_id": run_id, "logical_date": None, "conf": _conf()},
        },
        {
            "id": "wait_dag_run",
            "type": "io.kestra.plugin.core.flow.LoopUntil",
            "condition": expression("{{ (" + state + ") in ['success', 'failed'] }}"),
            "checkFrequency": {
                "interval": target.poll_interval,
                "maxDuration": target.max_duration,
            },
            "failOnMaxReached": True,
            "tasks": [
                {
                    "id": "poll_dag_run",
                    "type": "io.kestra.plugin.core.http.Request",
                    "uri": join(
                        base, expression("/api/v2/dags/"), dag_id, expression("/dagRuns/"), run_id
                    ),
                    "method": "GET",
                    "headers": {"Authorization": auth},
                }
            ],
        },
        {
            "id": "fail_on_failed_run",
            "type": "io.kestra.plugin.core.execution.Fail",
            "condition": expression("{{ " + state + " == 'failed' }}"),
            "errorMessage": join("Airflow DAG run ", dag_id, "/", run_id, " ended failed"),
        },
    ]


def _airflow2(dag_id: str, target: AirflowTarget) -> list[dict[str, Any]]:
    return [
        {
            "id": "trigger_dag_run",
            "type": "io.kestra.plugin.airflow.dags.TriggerDagRun",
            "baseUrl": expression(target.url.rstrip("/")),
            "dagId": dag_id,
            "wait": True,
            "pollFrequency": target.poll_interval,
            "maxDuration": target.max_duration,
            "body": {"conf": _conf()},
            "options": {
                "auth": {
                    "type": "BASIC",
                    "username": _secret(target.username_secret),
                    "password": _secret(target.password_secret),
                }
            },
        },
        {
            # The plugin only reports the final state; a failed run must fail here.
            "id": "fail_on_failed_run",
            "type": "io.kestra.plugin.core.execution.Fail",
            "condition": expression("{{ outputs.trigger_dag_run.state == 'failed' }}"),
            "errorMessage": f"Airflow DAG run of {dag_id} ended failed",
        },
    ]


def _legacy_call(spec: JobSpec, native: Translation, options: WrapOptions) -> list[dict[str, Any]]:
    if spec.kind == "dag":
        if options.airflow is None:
            raise WrapError(spec.key, "wrapping a DAG needs the Airflow URL (--airflow-url)")
        if options.airflow.version == "2":
            return _airflow2(spec.key, options.airflow)
        return _airflow3(spec.key, options.airflow)
    calls = [t for t in native.flow["tasks"] if "switchyard.placeholder" not in str(t)]
    if len(calls) != 1:
        raise WrapError(spec.key, f"its translation has no single call to wrap: {native.reasons}")
    task = copy.deepcopy(calls[0])
    if spec.kind == "cronjob":
        for container in task.get("spec", {}).get("containers", []):
            env = [e for e in container.get("env") or [] if e.get("name") != "TRACEPARENT"]
            env.append({"name": "TRACEPARENT", "value": TRACEPARENT})
            container["env"] = env
    elif spec.kind == "lambda":
        payload = dict(task.get("functionPayload") or {})
        headers = dict(payload.get("headers") or {})
        headers["traceparent"] = TRACEPARENT
        payload["headers"] = headers
        task["functionPayload"] = payload
    elif spec.kind == "crontab":
        ssh_env: dict[str, Any] = dict(task.get("env") or {})
        ssh_env["TRACEPARENT"] = TRACEPARENT
        task["env"] = ssh_env
    return [task]


def wrap(spec: JobSpec, options: WrapOptions | None = None) -> WrapFlow:
    """The wrap flow for `spec` (triggers disabled); `WrapError` when it cannot be wrapped."""
    options = options or WrapOptions()
    if spec.kind not in WRAPPED_KINDS:
        raise WrapError(spec.key, f"jobs of kind {spec.kind!r} cannot be wrapped")
    native = translate(spec, kestra_version=options.kestra_version, namespace=options.namespace)
    hidden = [s for s in native.secrets if not s.referenced]
    if hidden and spec.kind != "dag":  # a DAG's wrap triggers the DAG, not the translated tasks
        raise WrapError(
            spec.key,
            "its legacy call holds a credential masked when the job was stored ("
            + "; ".join(s.where for s in hidden)
            + "); Switchyard cannot call it as written",
        )
    triggers = copy.deepcopy(native.flow.get("triggers") or [])
    if not triggers:
        raise WrapError(spec.key, "it has no schedule Kestra can carry, so nothing to take over")
    labels = {
        k: v
        for k, v in native.flow["labels"].items()
        if k not in ("switchyard.job", "switchyard.readiness")
    }
    # Not `switchyard.job`: a wrap execution is the schedule, the legacy run is
    # the work; the two are linked by the traceparent, not merged.
    labels["switchyard.wraps"] = f"{spec.source}:{spec.key}"
    labels["switchyard.role"] = "wrap"
    flow_id = wrap_flow_id(spec)
    calls = _legacy_call(spec, native, options)
    flow: dict[str, Any] = {
        "id": flow_id,
        "namespace": options.namespace,
        "description": (
            f"Switchyard wrap: Kestra schedules {spec.kind} {spec.source}:{spec.key}, "
            "which still does the work"
        ),
        "labels": labels,
        "tasks": _trace_tasks() + calls,
        "triggers": [dict(t, disabled=True) for t in triggers],
    }
    flow = safe_flow(flow)
    comment = f"Switchyard wrap of {spec.kind} {spec.source}:{spec.key}"
    yaml_text = render_flow(flow, comment=comment)
    problems = validate_flow(flow, kestra_version=options.kestra_version)
    if problems:
        raise WrapError(
            spec.key, "the wrap flow is not valid: " + "; ".join(str(p) for p in problems)
        )
    return WrapFlow(
        source=spec.source,
        job_key=spec.key,
        flow_id=flow_id,
        namespace=options.namespace,
        flow=flow,
        yaml_text=yaml_text,
        target=_target(spec, calls[-1], options),
        trigger_ids=tuple(str(t["id"]) for t in triggers),
        notes=native.notes,
    )


def _target(spec: JobSpec, call: dict[str, Any], options: WrapOptions) -> WrapTarget:
    """Where `call` (the wrap flow's call to the legacy job) makes the work run."""
    definition = spec.definition
    if spec.kind == "crontab":
        host = str(definition.get("host") or "an unnamed host")
        command = str(definition.get("command") or "")
        if "host" in call:  # the SSH task names the host; the local shell task does not
            user = definition.get("user")
            return WrapTarget("ssh", host, str(user) if user else None, command)
        return WrapTarget("local", host, None, command)
    if spec.kind == "cronjob":
        containers = call["spec"]["containers"]
        images = ", ".join(str(c.get("image")) for c in containers if isinstance(c, dict))
        return WrapTarget("kubernetes", str(call["namespace"]), None, f"image {images}")
    if spec.kind == "lambda":
        return WrapTarget("lambda", str(call["functionArn"]))
    url = options.airflow.url if options.airflow else ""
    return WrapTarget("airflow", url, None, spec.key)


__all__ = [
    "AirflowTarget",
    "WrapError",
    "WrapFlow",
    "WrapOptions",
    "WrapTarget",
    "wrap",
    "wrap_flow_id",
]
