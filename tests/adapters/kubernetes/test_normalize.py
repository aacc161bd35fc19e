"""Pure normalisation: Kubernetes object JSON (as the API server serves it) → contract objects.

The payloads below follow the batch/v1, core/v1 and events.k8s.io/v1 schemas
field for field; they were written from the API reference, not recorded from a
live cluster.
"""

from __future__ import annotations

from datetime import UTC, datetime

from adapters.kubernetes import normalize
from gateway.contract import RunEvent, RunKind, State
from gateway.states import default_state_map

OBSERVED = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
STATES = default_state_map()
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _job(status: dict, **meta: object) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"namespace": "batch", "name": "report", "uid": "job-uid-1", **meta},
        "spec": {
            "backoffLimit": 2,
            "template": {
                "metadata": {"labels": {"app": "report"}},
                "spec": {
                    "containers": [
                        {"name": "main", "env": [{"name": "TRACEPARENT", "value": TRACEPARENT}]}
                    ]
                },
            },
        },
        "status": status,
    }


def _cond(type_: str, reason: str, at: str = "2026-11-25T23:30:00Z", message: str = "") -> dict:
    return {
        "type": type_,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastTransitionTime": at,
    }


def _job_event(obj: dict, *, deleted: bool = False, evidence: list | None = None) -> RunEvent:
    return normalize.job_event(
        obj,
        source="k8s",
        observed_at=OBSERVED,
        states=STATES,
        deleted=deleted,
        evidence=evidence or [],
    )


def test_complete_job_is_succeeded_and_ends_at_completion_time() -> None:
    ev = _job_event(
        _job(
            {
                "startTime": "2026-11-25T23:00:00Z",
                "completionTime": "2026-11-25T23:10:00Z",
                "succeeded": 1,
                "conditions": [
                    _cond("SuccessCriteriaMet", "CompletionsReached", "2026-11-25T23:09:59Z"),
                    _cond("Complete", "CompletionsReached", "2026-11-25T23:10:01Z"),
                ],
            }
        )
    )
    assert ev.state is State.succeeded
    assert ev.ended_at == datetime(2026, 11, 25, 23, 10, tzinfo=UTC)
    assert ev.key == "job/batch/report/job-uid-1" and ev.job == "job/batch/report"
    assert ev.attributes["k8s.job.uid"] == "job-uid-1"


def test_failure_target_is_the_early_failed_signal_with_its_reason() -> None:
    ev = _job_event(
        _job({"conditions": [_cond("FailureTarget", "BackoffLimitExceeded", message="limit")]})
    )
    assert ev.state is State.failed
    assert ev.error.kind == "BackoffLimitExceeded" and ev.error.message == "limit"
    assert ev.ended_at == datetime(2026, 11, 25, 23, 30, tzinfo=UTC)


def test_failed_condition_with_deadline_exceeded_and_false_conditions_ignored() -> None:
    status = {
        "conditions": [
            {"type": "Complete", "status": "False"},
            _cond(
                "Failed",
                "DeadlineExceeded",
                message="Job was active longer than specified deadline",
            ),
        ]
    }
    ev = _job_event(_job(status))
    assert ev.state is State.failed and ev.error.kind == "DeadlineExceeded"


def test_job_states_without_terminal_condition() -> None:
    assert (
        _job_event(_job({"conditions": [_cond("Suspended", "JobSuspended")]})).state
        is State.scheduled
    )
    assert (
        _job_event(_job({"active": 1, "startTime": "2026-11-25T23:00:00Z"})).state is State.running
    )
    assert _job_event(_job({})).state is State.queued


def test_running_job_deleted_is_cancelled_but_finished_job_deleted_keeps_its_state() -> None:
    deleted_running = _job_event(_job({"active": 1}), deleted=True)
    assert deleted_running.state is State.cancelled
    done = _job({"conditions": [_cond("Complete", "CompletionsReached")]})
    assert _job_event(done, deleted=True).state is State.succeeded


def test_terminal_job_event_decides_when_the_object_lags() -> None:
    evidence = [
        {"reason": "BackoffLimitExceeded", "message": "limit", "at": OBSERVED, "type": "Warning"}
    ]
    ev = _job_event(_job({"active": 1}), evidence=evidence)
    assert ev.state is State.failed and ev.error.kind == "BackoffLimitExceeded"


def test_cronjob_job_belongs_to_its_cronjob_with_nominal_time_and_trace_ref() -> None:
    obj = _job(
        {},
        name="nightly-29400000",
        ownerReferences=[
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "name": "nightly",
                "uid": "cj-1",
                "controller": True,
            }
        ],
        annotations={normalize.SCHEDULED_TIMESTAMP: "2026-11-25T23:00:00Z"},
    )
    ev = _job_event(obj)
    assert ev.job == "cronjob/batch/nightly"
    assert ev.nominal_time == datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
    assert ev.attributes["k8s.cronjob.name"] == "nightly"
    refs = {(r.namespace, r.value) for r in ev.refs}
    assert ("w3c.traceparent", TRACEPARENT) in refs and ("k8s.job.uid", "job-uid-1") in refs


def _pod(status: dict, labels: dict | None = None, annotations: dict | None = None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "namespace": "batch",
            "name": "report-x7k2p",
            "uid": "pod-uid-1",
            "labels": labels
            if labels is not None
            else {
                "batch.kubernetes.io/job-name": "report",
                "batch.kubernetes.io/controller-uid": "job-uid-1",
                "job-name": "report",
                "controller-uid": "job-uid-1",
            },
            "annotations": annotations or {},
        },
        "spec": {"nodeName": "node-3", "containers": [{"name": "main"}]},
        "status": status,
    }


def _pod_event(
    obj: dict, *, attempt: int = 1, deleted: bool = False, evidence: list | None = None
) -> RunEvent:
    return normalize.pod_event(
        obj,
        source="k8s",
        observed_at=OBSERVED,
        states=STATES,
        attempt=attempt,
        deleted=deleted,
        evidence=evidence or [],
    )


def test_oomkilled_pod_is_a_failed_attempt_under_its_job() -> None:
    terminated = {"exitCode": 137, "reason": "OOMKilled", "finishedAt": "2026-11-25T23:05:00Z"}
    ev = _pod_event(
        _pod(
            {
                "phase": "Failed",
                "containerStatuses": [{"name": "main", "state": {"terminated": terminated}}],
            }
        ),
        attempt=2,
    )
    assert ev.kind is RunKind.attempt and ev.parent_key == "job/batch/report/job-uid-1"
    assert ev.attempt == 2 and ev.state is State.failed
    assert (ev.error.kind, ev.error.exit_code) == ("OOMKilled", 137)
    assert ev.ended_at == datetime(2026, 11, 25, 23, 5, tzinfo=UTC)
    assert ev.attributes["k8s.node.name"] == "node-3"
    assert ev.attributes["k8s.container.status.reason"] == "OOMKilled"


def test_crashlooping_container_reports_the_last_termination() -> None:
    status = {
        "phase": "Running",
        "containerStatuses": [
            {
                "name": "main",
                "restartCount": 3,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 2, "reason": "Error"}},
            }
        ],
    }
    ev = _pod_event(_pod(status))
    assert ev.state is State.running and ev.error.kind == "Error" and ev.error.exit_code == 2
    assert ev.attributes["k8s.container.restart_count"] == 3


def test_executor_pod_gives_unsanitised_ti_ref_and_label_ref() -> None:
    labels = {
        "airflow-worker": "12",
        "dag_id": "orders_etl",
        "task_id": "load",
        "run_id": "manual__2026-11-25T2312060000-8d3a4c1f2",
        "try_number": "2",
        "kubernetes_executor": "True",
    }
    annotations = {
        "dag_id": "orders_etl",
        "task_id": "load",
        "run_id": "manual__2026-11-25T23:12:06+00:00",
        "try_number": "2",
    }
    ev = _pod_event(_pod({"phase": "Running"}, labels=labels, annotations=annotations))
    refs = {(r.namespace, r.value) for r in ev.refs}
    assert ("airflow.ti", "orders_etl/manual__2026-11-25T23:12:06+00:00/load/-1/2") in refs
    assert (
        "airflow.ti_label",
        "orders_etl/manual__2026-11-25T2312060000-8d3a4c1f2/load/-1/2",
    ) in refs
    assert ev.kind is RunKind.run and ev.attributes["airflow.launcher"] == "KubernetesExecutor"


def test_pending_pod_takes_failed_scheduling_as_evidence_and_success_clears_it() -> None:
    evidence = [
        {"reason": "FailedScheduling", "message": "0/3 nodes are available", "at": OBSERVED}
    ]
    pending = _pod_event(_pod({"phase": "Pending"}), evidence=evidence)
    assert pending.state is State.queued and pending.error.kind == "FailedScheduling"
    done = _pod_event(_pod({"phase": "Succeeded"}), evidence=evidence)
    assert done.error is None


def test_pod_deleted_before_finishing_is_cancelled() -> None:
    obj = _pod({"phase": "Running"})
    obj["metadata"]["deletionTimestamp"] = "2026-11-25T23:20:00Z"
    ev = _pod_event(obj, deleted=True)
    assert ev.state is State.cancelled and ev.ended_at == datetime(2026, 11, 25, 23, 20, tzinfo=UTC)


def test_core_and_events_v1_events_read_the_same() -> None:
    core = {
        "metadata": {"namespace": "batch", "name": "report-x7k2p.1"},
        "involvedObject": {
            "kind": "Pod",
            "namespace": "batch",
            "name": "report-x7k2p",
            "uid": "pod-uid-1",
        },
        "reason": "FailedScheduling",
        "message": "0/3 nodes are available",
        "type": "Warning",
        "source": {"component": "default-scheduler"},
        "lastTimestamp": "2026-11-25T23:01:00Z",
    }
    v1 = {
        "metadata": {"namespace": "batch", "name": "report-x7k2p.1"},
        "regarding": {
            "kind": "Pod",
            "namespace": "batch",
            "name": "report-x7k2p",
            "uid": "pod-uid-1",
        },
        "reason": "FailedScheduling",
        "note": "0/3 nodes are available",
        "type": "Warning",
        "reportingController": "default-scheduler",
        "eventTime": "2026-11-25T23:01:00.000000Z",
    }
    assert normalize.event_view(core) == normalize.event_view(v1)


def test_miss_schedule_message_time_is_the_nominal_time() -> None:
    view = {
        "kind": "CronJob",
        "namespace": "batch",
        "name": "backup",
        "uid": "cj-1",
        "reason": "MissSchedule",
        "message": "Missed scheduled time to start a job: Wed, 25 Nov 2026 23:05:00 +0000",
        "at": OBSERVED,
    }
    ev = normalize.missed_run_event(view, source="k8s", observed_at=OBSERVED)
    assert ev is not None and ev.state is State.missed
    assert ev.nominal_time == datetime(2026, 11, 25, 23, 5, tzinfo=UTC)
    assert ev.key == "cronjob/batch/backup/missed/2026-11-25T23:05:00Z"


def test_cronjob_spec_carries_schedule_timezone_suspend_and_manifest() -> None:
    obj = {
        "metadata": {
            "namespace": "batch",
            "name": "nightly",
            "uid": "cj-1",
            "managedFields": [{}],
            "labels": {"team": "data"},
        },
        "spec": {
            "schedule": "@daily",
            "timeZone": "Europe/Berlin",
            "suspend": True,
            "startingDeadlineSeconds": 120,
            "jobTemplate": {"spec": {"activeDeadlineSeconds": 600, "template": {"spec": {}}}},
        },
        "status": {"lastScheduleTime": "2026-11-25T23:00:00Z"},
    }
    spec = normalize.cronjob_spec(obj, source="k8s")
    assert (spec.key, spec.kind, spec.schedule, spec.schedule_native) == (
        "cronjob/batch/nightly",
        "cronjob",
        "0 0 * * *",
        "@daily",
    )
    assert (
        spec.timezone == "Europe/Berlin"
        and spec.paused
        and spec.grace_s == 120
        and spec.max_duration_s == 600
    )
    assert "status" not in spec.definition and "managedFields" not in spec.definition["metadata"]
    assert spec.definition["kind"] == "CronJob" and spec.labels == {"team": "data"}


def test_cronjob_without_timezone_uses_the_controller_zone() -> None:
    obj = {"metadata": {"namespace": "a", "name": "b"}, "spec": {"schedule": "*/5 * * * *"}}
    assert (
        normalize.cronjob_spec(obj, source="k8s", default_timezone="America/New_York").timezone
        == "America/New_York"
    )


def test_job_known_only_from_its_events_is_finished() -> None:
    view = {"kind": "Job", "namespace": "batch", "name": "gone", "uid": "u-9"}
    evidence = [{"reason": "Completed", "message": "Job completed", "at": OBSERVED}]
    ev = normalize.job_event_from_events(view, evidence, source="k8s", observed_at=OBSERVED)
    assert ev is not None and ev.state is State.succeeded and ev.key == "job/batch/gone/u-9"
    assert normalize.job_event_from_events(view, [], source="k8s", observed_at=OBSERVED) is None
