"""Suspend and resume a CronJob: a merge patch of `spec.suspend` (RBAC: get, patch cronjobs).

Job keys are `cronjob/<namespace>/<name>`, as `discover()` names them. Anything
else is a `ValueError` naming the key; an API failure is a `SourceError`
carrying the source and the key.

`suspend` reads the CronJob first and returns a receipt `{"was_suspended":
bool}`; a CronJob already suspended (by its owner) is left as it is. `resume`
with that receipt un-suspends only when the receipt says Switchyard suspended
it; without a receipt it un-suspends unconditionally (the old behaviour). The
patch carries the resourceVersion that was read, so a change made in between
is a 409 from the API server (read again, up to three times), never overwritten.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from gateway.contract import ControlReceipt, SourceError


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
        raise _failed(source, job_key, "suspend" if suspended else "resume", exc) from exc


def _failed(source: str, job_key: str, doing: str, exc: ApiException) -> SourceError:
    retryable = exc.status is None or exc.status >= 500 or exc.status == 429
    return SourceError(
        source, f"cannot {doing} {job_key}: HTTP {exc.status} {exc.reason}", retryable=retryable
    )


def suspend(api: client.BatchV1Api, source: str, job_key: str) -> ControlReceipt:
    """Suspend the CronJob unless it already is; the receipt says which."""
    namespace, name = parse_cronjob_key(job_key)
    attempts = 3
    while True:
        attempts -= 1
        try:
            current = api.read_namespaced_cron_job(name, namespace)
            if current.spec is not None and current.spec.suspend:
                return {"was_suspended": True}
            patch: dict[str, Any] = {"spec": {"suspend": True}}
            if current.metadata is not None and current.metadata.resource_version:
                patch["metadata"] = {"resourceVersion": current.metadata.resource_version}
            api.patch_namespaced_cron_job(name, namespace, patch)
            return {"was_suspended": False}
        except ApiException as exc:
            if exc.status == 409 and attempts:
                continue  # changed between read and patch: read it again
            raise _failed(source, job_key, "suspend", exc) from exc


def resume(
    api: client.BatchV1Api, source: str, job_key: str, receipt: ControlReceipt | None
) -> None:
    """Un-suspend unless the receipt says the CronJob was suspended before the pause."""
    parse_cronjob_key(job_key)
    if receipt is not None:
        was = receipt.get("was_suspended") if isinstance(receipt, dict) else None
        if not isinstance(was, bool):
            raise SourceError(
                source,
                f"resume receipt for {job_key}: 'was_suspended' must be true or false; "
                "nothing was changed",
                retryable=False,
            )
        if was:
            return  # its owner suspended it: not ours to resume
    set_suspended(api, source, job_key, False)
