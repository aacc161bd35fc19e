"""What the Job, CronJob and kubelet controllers would write, as scenario verbs.

Scenarios (tests, the demo estate, the bench) drive the emulated API server
through a `Cluster`: create a CronJob, have it spawn a Job, give the Job a pod,
run the pod, end it OOMKilled, mark the Job failed with BackoffLimitExceeded,
record the Events the controllers record, delete by TTL. Every verb writes the
objects with the fields and shapes the real controllers use (condition types,
labels, owner references, the scheduled-timestamp annotation), so a client
cannot tell them from a cluster's.
"""

from __future__ import annotations

import copy
import itertools
import secrets
from datetime import UTC, datetime
from typing import Any

from emulators.kube_apiserver.store import Obj, ObjectStore

SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"


def rfc3339(t: datetime | None = None) -> str:
    return (t or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Cluster:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._event_seq = itertools.count(1)

    # --- CronJobs -----------------------------------------------------------

    def create_cronjob(
        self,
        namespace: str,
        name: str,
        schedule: str,
        *,
        time_zone: str | None = None,
        suspend: bool = False,
        starting_deadline_seconds: int | None = None,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        image: str = "busybox:1.36",
        env: dict[str, str] | None = None,
    ) -> Obj:
        spec: dict[str, Any] = {
            "schedule": schedule,
            "suspend": suspend,
            "concurrencyPolicy": "Allow",
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 1,
            "jobTemplate": {"spec": self._job_spec(image=image, backoff_limit=6, env=env)},
        }
        if time_zone:
            spec["timeZone"] = time_zone
        if starting_deadline_seconds is not None:
            spec["startingDeadlineSeconds"] = starting_deadline_seconds
        return self.store.create(
            "cronjobs",
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": {
                    "namespace": namespace,
                    "name": name,
                    "labels": labels or {},
                    **({"annotations": annotations} if annotations else {}),
                },
                "spec": spec,
                "status": {},
            },
        )

    # --- Jobs ---------------------------------------------------------------

    @staticmethod
    def _job_spec(
        *,
        image: str,
        backoff_limit: int,
        active_deadline_seconds: int | None = None,
        ttl_seconds_after_finished: int | None = None,
        pod_labels: dict[str, str] | None = None,
        pod_annotations: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
        memory_limit: str | None = None,
    ) -> dict[str, Any]:
        container: dict[str, Any] = {"name": "main", "image": image, "command": ["sh", "-c", "run"]}
        if env:
            container["env"] = [{"name": k, "value": v} for k, v in env.items()]
        if memory_limit:
            container["resources"] = {"limits": {"memory": memory_limit}}
        spec: dict[str, Any] = {
            "backoffLimit": backoff_limit,
            "completions": 1,
            "parallelism": 1,
            "template": {
                "metadata": {
                    "labels": dict(pod_labels or {}),
                    "annotations": dict(pod_annotations or {}),
                },
                "spec": {"restartPolicy": "Never", "containers": [container]},
            },
        }
        if active_deadline_seconds is not None:
            spec["activeDeadlineSeconds"] = active_deadline_seconds
        if ttl_seconds_after_finished is not None:
            spec["ttlSecondsAfterFinished"] = ttl_seconds_after_finished
        return spec

    def create_job(
        self,
        namespace: str,
        name: str,
        *,
        cronjob: Obj | None = None,
        scheduled_time: datetime | None = None,
        image: str = "busybox:1.36",
        backoff_limit: int = 6,
        active_deadline_seconds: int | None = None,
        ttl_seconds_after_finished: int | None = None,
        labels: dict[str, str] | None = None,
        pod_labels: dict[str, str] | None = None,
        pod_annotations: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
    ) -> Obj:
        meta: dict[str, Any] = {"namespace": namespace, "name": name, "labels": dict(labels or {})}
        spec = self._job_spec(
            image=image,
            backoff_limit=backoff_limit,
            active_deadline_seconds=active_deadline_seconds,
            ttl_seconds_after_finished=ttl_seconds_after_finished,
            pod_labels=pod_labels,
            pod_annotations=pod_annotations,
            env=env,
        )
        if cronjob is not None:
            cj_meta = cronjob["metadata"]
            meta["ownerReferences"] = [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": cj_meta["name"],
                    "uid": cj_meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ]
            meta["annotations"] = {SCHEDULED_TIMESTAMP: rfc3339(scheduled_time)}
            template = copy.deepcopy(cronjob["spec"]["jobTemplate"]["spec"])
            template.update({k: v for k, v in spec.items() if k not in template})
            spec = template
        job = self.store.create(
            "jobs",
            {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec, "status": {}},
        )
        # The Job controller labels its own template with the selector.
        uid = job["metadata"]["uid"]
        selector = {"batch.kubernetes.io/controller-uid": uid}
        job["spec"]["selector"] = {"matchLabels": selector}
        tmpl_labels = job["spec"]["template"]["metadata"].setdefault("labels", {})
        tmpl_labels.update(
            {
                **selector,
                "batch.kubernetes.io/job-name": name,
                "controller-uid": uid,
                "job-name": name,
            }
        )
        if cronjob is not None:
            self.record_event(
                cronjob,
                "SuccessfulCreate",
                f"Created job {name}",
                type_="Normal",
                component="cronjob-controller",
            )
        return self.store.update("jobs", job)

    def update_job_status(self, job: Obj, **status: Any) -> Obj:
        current = self.store.get("jobs", job["metadata"]["namespace"], job["metadata"]["name"])
        current.setdefault("status", {}).update(status)
        return self.store.update("jobs", current)

    def _conditions(self, job: Obj, *new: dict[str, Any]) -> list[dict[str, Any]]:
        current = self.store.get("jobs", job["metadata"]["namespace"], job["metadata"]["name"])
        conditions = list(current.get("status", {}).get("conditions") or [])
        now = rfc3339()
        for c in new:
            conditions.append(
                {"status": "True", "lastProbeTime": now, "lastTransitionTime": now, **c}
            )
        return conditions

    def complete_job(self, job: Obj) -> Obj:
        """Success as a ≥1.31 controller writes it: SuccessCriteriaMet, then Complete."""
        reason = {
            "reason": "CompletionsReached",
            "message": "Reached expected number of succeeded pods",
        }
        self.update_job_status(
            job,
            active=0,
            ready=0,
            succeeded=1,
            conditions=self._conditions(job, {"type": "SuccessCriteriaMet", **reason}),
        )
        done = self.update_job_status(
            job,
            completionTime=rfc3339(),
            conditions=self._conditions(job, {"type": "Complete", **reason}),
        )
        self.record_event(
            job, "Completed", "Job completed", type_="Normal", component="job-controller"
        )
        return done

    def fail_job(self, job: Obj, reason: str, message: str) -> Obj:
        """Failure as a ≥1.31 controller writes it: FailureTarget, then Failed, plus the Event."""
        self.update_job_status(
            job,
            active=0,
            ready=0,
            conditions=self._conditions(
                job, {"type": "FailureTarget", "reason": reason, "message": message}
            ),
        )
        done = self.update_job_status(
            job,
            conditions=self._conditions(
                job, {"type": "Failed", "reason": reason, "message": message}
            ),
        )
        self.record_event(job, reason, message, type_="Warning", component="job-controller")
        return done

    def delete(self, resource: str, obj: Obj) -> Obj:
        return self.store.delete(resource, obj["metadata"]["namespace"], obj["metadata"]["name"])

    # --- Pods ---------------------------------------------------------------

    def create_pod(
        self,
        namespace: str,
        *,
        job: Obj | None = None,
        name: str | None = None,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
    ) -> Obj:
        """A pod for `job` from its template (as the Job controller makes it), or a bare pod."""
        if job is not None:
            current = self.store.get("jobs", namespace, job["metadata"]["name"])
            template = copy.deepcopy(current["spec"]["template"])
            meta: dict[str, Any] = template.get("metadata") or {}
            meta["labels"] = {**meta.get("labels", {}), **(labels or {})}
            meta["annotations"] = {**meta.get("annotations", {}), **(annotations or {})}
            meta["ownerReferences"] = [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": current["metadata"]["name"],
                    "uid": current["metadata"]["uid"],
                    "controller": True,
                }
            ]
            pod_name = name or f"{current['metadata']['name']}-{secrets.token_hex(3)[:5]}"
            spec = template["spec"]
        else:
            meta = {"labels": dict(labels or {}), "annotations": dict(annotations or {})}
            container: dict[str, Any] = {"name": "base", "image": "python:3.12"}
            if env:
                container["env"] = [{"name": k, "value": v} for k, v in env.items()]
            spec = {"restartPolicy": "Never", "containers": [container]}
            pod_name = name or f"pod-{secrets.token_hex(4)}"
        meta.update({"namespace": namespace, "name": pod_name})
        pod = self.store.create(
            "pods",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": meta,
                "spec": spec,
                "status": {"phase": "Pending"},
            },
        )
        if job is not None:
            self.record_event(
                job,
                "SuccessfulCreate",
                f"Created pod: {pod_name}",
                type_="Normal",
                component="job-controller",
            )
            status = self.store.get("jobs", namespace, job["metadata"]["name"]).get("status", {})
            if not status.get("startTime"):
                self.update_job_status(job, startTime=rfc3339(), active=1)
            else:
                self.update_job_status(job, active=1)
        return pod

    def _pod_status(self, pod: Obj, **status: Any) -> Obj:
        current = self.store.get("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
        current.setdefault("status", {}).update(status)
        return self.store.update("pods", current)

    def schedule_pod(self, pod: Obj, node: str = "node-1") -> Obj:
        current = self.store.get("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
        current["spec"]["nodeName"] = node
        self.store.update("pods", current)
        return self._pod_status(pod, startTime=rfc3339())

    def run_pod(self, pod: Obj) -> Obj:
        name = self._container_name(pod)
        return self._pod_status(
            pod,
            phase="Running",
            containerStatuses=[
                {
                    "name": name,
                    "ready": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": rfc3339()}},
                }
            ],
        )

    def wait_pod(self, pod: Obj, reason: str, message: str) -> Obj:
        name = self._container_name(pod)
        return self._pod_status(
            pod,
            containerStatuses=[
                {
                    "name": name,
                    "ready": False,
                    "restartCount": 0,
                    "state": {"waiting": {"reason": reason, "message": message}},
                }
            ],
        )

    def end_pod(
        self, pod: Obj, exit_code: int, reason: str | None = None, message: str | None = None
    ) -> Obj:
        name = self._container_name(pod)
        terminated: dict[str, Any] = {
            "exitCode": exit_code,
            "reason": reason or ("Completed" if exit_code == 0 else "Error"),
            "startedAt": rfc3339(),
            "finishedAt": rfc3339(),
        }
        if message:
            terminated["message"] = message
        return self._pod_status(
            pod,
            phase="Succeeded" if exit_code == 0 else "Failed",
            containerStatuses=[
                {
                    "name": name,
                    "ready": False,
                    "restartCount": 0,
                    "state": {"terminated": terminated},
                }
            ],
        )

    def _container_name(self, pod: Obj) -> str:
        return str(pod["spec"]["containers"][0]["name"])

    # --- Events -------------------------------------------------------------

    def record_event(
        self,
        obj: Obj,
        reason: str,
        message: str,
        *,
        type_: str = "Warning",
        component: str = "kubelet",
    ) -> Obj:
        meta = obj["metadata"]
        now = rfc3339()
        seq = next(self._event_seq)
        return self.store.create(
            "events",
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {
                    "namespace": meta.get("namespace") or "default",
                    "name": f"{meta['name']}.{seq:016x}",
                },
                "involvedObject": {
                    "kind": obj.get("kind"),
                    "namespace": meta.get("namespace"),
                    "name": meta["name"],
                    "uid": meta.get("uid"),
                    "apiVersion": obj.get("apiVersion"),
                    "resourceVersion": meta.get("resourceVersion"),
                },
                "reason": reason,
                "message": message,
                "type": type_,
                "source": {"component": component},
                "reportingComponent": component,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
            },
        )
