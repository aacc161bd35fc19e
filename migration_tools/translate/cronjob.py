"""Kubernetes CronJob `JobSpec` → `Schedule` + `PodCreate` from its job template.

`definition` is the CronJob manifest. The pod spec is copied from
`spec.jobTemplate.spec.template.spec` (restartPolicy forced to `Never`: a
bare pod must not restart in place, Kestra's retry does it); `backoffLimit`
becomes an exponential retry like the Job controller's, `activeDeadlineSeconds`
the task timeout, `concurrencyPolicy: Forbid` a cancelling concurrency limit.
"""

from __future__ import annotations

import copy
from typing import Any

from gateway.contract import JobSpec
from migration_tools.translate.flow import FlowDraft, iso_duration, split_cron_tz, task_id_for
from migration_tools.translate.model import TranslationError
from migration_tools.translate.rules import Rules

K8S_DEFAULT_BACKOFF_LIMIT = 6
K8S_BACKOFF_START = "PT10S"
K8S_BACKOFF_CAP = "PT6M"


def _dig(manifest: dict[str, Any], path: str) -> Any:
    node: Any = manifest
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def translate_cronjob(spec: JobSpec, draft: FlowDraft, rules: Rules) -> None:
    manifest = spec.definition
    pod_spec = _dig(manifest, "spec.jobTemplate.spec.template.spec")
    if not isinstance(pod_spec, dict) or not pod_spec.get("containers"):
        raise TranslationError(
            spec.key,
            "definition.spec.jobTemplate.spec.template.spec.containers",
            "a CronJob manifest needs a pod template with containers",
        )
    name = _dig(manifest, "metadata.name") or spec.name or spec.key
    namespace = _dig(manifest, "metadata.namespace") or "default"
    draft.description = f"Kubernetes CronJob {namespace}/{name}"
    pod_spec = copy.deepcopy(pod_spec)
    if pod_spec.get("restartPolicy", "Never") != "Never":
        draft.note(f"restartPolicy {pod_spec['restartPolicy']} became Never; Kestra retries")
    pod_spec["restartPolicy"] = "Never"

    rule = rules.job("cronjob")
    task: dict[str, Any] = {"id": task_id_for("pod"), "type": rule.type, "namespace": namespace}
    template_meta = _dig(manifest, "spec.jobTemplate.spec.template.metadata") or {}
    metadata = {k: template_meta[k] for k in ("labels", "annotations") if template_meta.get(k)}
    if metadata:
        task["metadata"] = metadata
    task["spec"] = pod_spec
    for key, value in rule.set.items():
        task.setdefault(key, value)
    backoff = _dig(manifest, "spec.jobTemplate.spec.backoffLimit")
    backoff = K8S_DEFAULT_BACKOFF_LIMIT if backoff is None else int(backoff)
    if backoff > 0:
        task["retry"] = {
            "type": "exponential",
            "interval": K8S_BACKOFF_START,
            "maxInterval": K8S_BACKOFF_CAP,
            "maxAttempts": backoff + 1,
        }
    deadline = _dig(manifest, "spec.jobTemplate.spec.activeDeadlineSeconds")
    if deadline:
        task["timeout"] = iso_duration(float(deadline))
    draft.tasks.append(task)
    draft.translated_work += 1

    policy = _dig(manifest, "spec.concurrencyPolicy") or "Allow"
    if policy == "Forbid":
        draft.concurrency = {"limit": 1, "behavior": "CANCEL"}
    elif policy == "Replace":
        draft.reason("concurrencyPolicy Replace (kill the running Job) has no Kestra counterpart")
    for field in ("completions", "parallelism"):
        value = _dig(manifest, f"spec.jobTemplate.spec.{field}")
        if value not in (None, 1):
            draft.reason(f"jobTemplate {field}={value} runs several pods; PodCreate runs one")
    if _dig(manifest, "spec.startingDeadlineSeconds"):
        draft.note("startingDeadlineSeconds is the grace the gateway uses for missed runs")

    raw = _dig(manifest, "spec.schedule") or spec.schedule or ""
    expr, prefix_tz = split_cron_tz(str(raw))
    timezone = _dig(manifest, "spec.timeZone") or prefix_tz or spec.timezone
    draft.schedule_trigger("schedule", expr or spec.schedule, timezone, str(raw) or None)
