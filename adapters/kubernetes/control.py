"""Suspend and resume a CronJob: a merge patch of `spec.suspend` (RBAC: patch cronjobs).

Job keys are `cronjob/<namespace>/<name>`, as `discover()` names them. Anything
else is a `ValueError` naming the key; an API failure is a `SourceError`
carrying the source and the key.
"""

from __future__ import annotations

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from gateway.contract import SourceError


def parse_cronjob_key(job_key: str) -> tuple[str, str]:
    parts = job_key.split("/")
    if len(parts) != 3 or parts[0] != "cronjob" or not parts[1] or not parts[2]:
        raise ValueError(
            f"job key {job_key!r} is not a CronJob key (cronjob/<namespace>/<name>); "
            "only CronJobs can be suspended"
        )
    return parts[1], parts[2]


def set_suspended(api: client.BatchV1Api, source: str, job_key: str, suspended: bool) -> None:
    namespace, name = parse_cronjob_key(job_key)
    try:
        api.patch_namespaced_cron_job(name, namespace, {"spec": {"suspend": suspended}})
    except ApiException as exc:
        retryable = exc.status is None or exc.status >= 500 or exc.status == 429
        raise SourceError(
            source,
            f"cannot {'suspend' if suspended else 'resume'} {job_key}: "
            f"HTTP {exc.status} {exc.reason}",
            retryable=retryable,
        ) from exc
