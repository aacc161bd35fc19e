"""Scenario tests: the emulated API server → official client → adapter → RunEvents."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from adapters.kubernetes import normalize
from gateway.contract import RunKind, State
from tests.adapters.kubernetes.conftest import Reader
from tests.fakes.kube_apiserver import Cluster, KubeApiServer

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _job_key(job: dict) -> str:
    m = job["metadata"]
    return normalize.job_key(m["namespace"], m["name"], m["uid"])


def _pod_key(pod: dict) -> str:
    m = pod["metadata"]
    return normalize.pod_key(m["namespace"], m["name"], m["uid"])


def test_kpo_pod_oomkilled_is_a_failed_run_with_airflow_and_trace_refs(
    cluster: Cluster, reader: Reader
) -> None:
    reader.poll()
    pod = cluster.create_pod(
        "airflow",
        labels={
            "dag_id": "orders_etl",
            "task_id": "transform",
            "run_id": "manual__2026-11-25T2312060000-8d3a4c1f2",
            "try_number": "1",
            "kubernetes_pod_operator": "True",
        },
        env={"TRACEPARENT": TRACEPARENT},
    )
    cluster.schedule_pod(pod)
    cluster.run_pod(pod)
    cluster.end_pod(pod, 137, "OOMKilled")
    latest = reader.until(
        lambda ev: ev.get(_pod_key(pod)) is not None and ev[_pod_key(pod)].state is State.failed
    )
    run = latest[_pod_key(pod)]
    assert run.kind is RunKind.run and run.parent_key is None
    assert run.error is not None and run.error.kind == "OOMKilled" and run.error.exit_code == 137
    assert run.attributes["k8s.container.status.reason"] == "OOMKilled"
    refs = {(r.namespace, r.value) for r in run.refs}
    assert (
        "airflow.ti_label",
        "orders_etl/manual__2026-11-25T2312060000-8d3a4c1f2/transform/-1/1",
    ) in refs
    assert ("w3c.traceparent", TRACEPARENT) in refs
    assert ("k8s.pod.uid", pod["metadata"]["uid"]) in refs


def test_backoff_limit_exceeded_after_three_pod_failures(cluster: Cluster, reader: Reader) -> None:
    reader.poll()
    job = cluster.create_job("batch", "report", backoff_limit=2)
    pods = []
    for _ in range(3):
        pod = cluster.create_pod("batch", job=job)
        cluster.schedule_pod(pod)
        cluster.run_pod(pod)
        cluster.end_pod(pod, 1, "Error")
        cluster.update_job_status(job, failed=len(pods) + 1, active=0)
        pods.append(pod)
    cluster.fail_job(job, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    # Pods and Jobs are separate watch streams with no order between them:
    # wait for the pods' last states too.
    latest = reader.until(
        lambda ev: (
            ev.get(_job_key(job)) is not None
            and ev[_job_key(job)].state is State.failed
            and all(
                ev.get(_pod_key(p)) is not None and ev[_pod_key(p)].state is State.failed
                for p in pods
            )
        )
    )
    run = latest[_job_key(job)]
    assert run.error is not None and run.error.kind == "BackoffLimitExceeded"
    assert run.ended_at is not None and run.job == "job/batch/report"
    attempts = sorted((latest[_pod_key(p)] for p in pods), key=lambda e: e.attempt)
    assert [a.attempt for a in attempts] == [1, 2, 3]
    assert all(a.parent_key == _job_key(job) and a.kind is RunKind.attempt for a in attempts)
    assert all(
        a.error is not None and a.error.kind == "Error" and a.error.exit_code == 1 for a in attempts
    )


def test_deadline_exceeded_job_fails_with_that_reason(cluster: Cluster, reader: Reader) -> None:
    reader.poll()
    job = cluster.create_job("batch", "slow", active_deadline_seconds=30)
    pod = cluster.create_pod("batch", job=job)
    cluster.schedule_pod(pod)
    cluster.run_pod(pod)
    cluster.fail_job(job, "DeadlineExceeded", "Job was active longer than specified deadline")
    cluster.delete("pods", pod)
    latest = reader.until(
        lambda ev: (
            ev.get(_job_key(job)) is not None
            and ev[_job_key(job)].state is State.failed
            and _pod_key(pod) in ev
            and ev[_pod_key(pod)].state is State.cancelled
        )
    )
    assert latest[_job_key(job)].error.kind == "DeadlineExceeded"


def test_failed_scheduling_event_is_error_evidence_on_the_pending_pod(
    cluster: Cluster, reader: Reader
) -> None:
    reader.poll()
    job = cluster.create_job("batch", "big")
    pod = cluster.create_pod("batch", job=job)
    cluster.record_event(
        pod,
        "FailedScheduling",
        "0/3 nodes are available: 3 Insufficient memory.",
        component="default-scheduler",
    )
    latest = reader.until(
        lambda ev: ev.get(_pod_key(pod)) is not None and ev[_pod_key(pod)].error is not None
    )
    attempt = latest[_pod_key(pod)]
    assert attempt.state is State.queued
    assert attempt.error.kind == "FailedScheduling"
    assert "Insufficient memory" in (attempt.error.message or "")
    assert attempt.attributes["k8s.events"][0]["reason"] == "FailedScheduling"


def test_image_pull_backoff_is_evidence_from_the_container_state(
    cluster: Cluster, reader: Reader
) -> None:
    reader.poll()
    job = cluster.create_job("batch", "typo")
    pod = cluster.create_pod("batch", job=job)
    cluster.schedule_pod(pod)
    cluster.wait_pod(pod, "ImagePullBackOff", 'Back-off pulling image "busybx:1.36"')
    latest = reader.until(
        lambda ev: ev.get(_pod_key(pod)) is not None and ev[_pod_key(pod)].error is not None
    )
    assert latest[_pod_key(pod)].error.kind == "ImagePullBackOff"


def test_watch_broken_mid_stream_resumes_without_losing_a_change(
    apiserver: KubeApiServer, cluster: Cluster, reader: Reader
) -> None:
    reader.poll()
    first = cluster.create_job("batch", "before-break")
    reader.until(lambda ev: _job_key(first) in ev)
    relists = reader.adapter.relists
    assert apiserver.break_watches() > 0
    second = cluster.create_job("batch", "after-break")
    pod = cluster.create_pod("batch", job=second)
    cluster.end_pod(pod, 0)
    cluster.complete_job(second)
    latest = reader.until(
        lambda ev: (
            ev.get(_job_key(second)) is not None
            and ev[_job_key(second)].state is State.succeeded
            and ev.get(_pod_key(pod)) is not None
            and ev[_pod_key(pod)].state is State.succeeded
        )
    )
    assert latest[_pod_key(pod)].state is State.succeeded
    assert reader.adapter.relists == relists  # resumed from the resourceVersion, no relist


def test_410_after_long_disconnect_relists_and_reconciles(
    apiserver: KubeApiServer, cluster: Cluster, reader: Reader
) -> None:
    reader.poll()
    finished_unseen = cluster.create_job("batch", "ttl-during-outage", ttl_seconds_after_finished=0)
    running = cluster.create_job("batch", "still-running")
    cluster.create_pod("batch", job=running)
    reader.until(lambda ev: _job_key(finished_unseen) in ev and _job_key(running) in ev)
    apiserver.set_available(False)
    # While the gateway cannot see: one Job finishes and is TTL-deleted, one starts.
    cluster.complete_job(finished_unseen)
    cluster.delete("jobs", finished_unseen)
    started = cluster.create_job("batch", "started-during-outage")
    apiserver.compact()
    time.sleep(0.3)
    apiserver.set_available(True)
    latest = reader.until(
        lambda ev: (
            ev.get(_job_key(finished_unseen)) is not None
            and ev[_job_key(finished_unseen)].state is State.succeeded
            and _job_key(started) in ev
        )
    )
    assert reader.adapter.relists > 0
    keys = [e.key for e in reader.events if e.kind is RunKind.run]
    assert len(set(keys)) == 3  # no run invented, none lost
    assert latest[_job_key(running)].state is State.running


def test_job_deleted_by_ttl_right_after_finishing_keeps_its_final_state(
    cluster: Cluster, reader: Reader
) -> None:
    reader.poll()
    job = cluster.create_job("batch", "short", ttl_seconds_after_finished=0)
    pod = cluster.create_pod("batch", job=job)
    cluster.end_pod(pod, 0)
    cluster.complete_job(job)
    cluster.delete("pods", pod)
    cluster.delete("jobs", job)
    latest = reader.until(
        lambda ev: (
            ev.get(_job_key(job)) is not None
            and ev[_job_key(job)].attributes.get("k8s.job.deleted")
        )
    )
    run = latest[_job_key(job)]
    assert run.state is State.succeeded and run.ended_at is not None


def test_cronjob_suspended_and_resumed_through_the_adapter(
    apiserver: KubeApiServer, cluster: Cluster, reader: Reader
) -> None:
    cluster.create_cronjob("batch", "nightly", "0 2 * * *", time_zone="Europe/Berlin")
    reader.poll()
    spec = next(j for j in reader.jobs if j.key == "cronjob/batch/nightly")
    assert (spec.schedule, spec.timezone, spec.paused) == ("0 2 * * *", "Europe/Berlin", False)
    reader.adapter.pause("cronjob/batch/nightly")
    assert apiserver.store.get("cronjobs", "batch", "nightly")["spec"]["suspend"] is True
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        reader.poll()
        if any(j.key == "cronjob/batch/nightly" and j.paused for j in reader.jobs):
            break
        time.sleep(0.05)
    assert any(j.key == "cronjob/batch/nightly" and j.paused for j in reader.jobs)
    reader.adapter.resume("cronjob/batch/nightly")
    assert apiserver.store.get("cronjobs", "batch", "nightly")["spec"]["suspend"] is False


def test_cronjob_spawned_job_belongs_to_the_cronjob_with_its_scheduled_time(
    cluster: Cluster, reader: Reader
) -> None:
    cronjob = cluster.create_cronjob("batch", "hourly", "@hourly")
    reader.poll()
    scheduled = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
    job = cluster.create_job("batch", "hourly-29400000", cronjob=cronjob, scheduled_time=scheduled)
    latest = reader.until(lambda ev: _job_key(job) in ev)
    run = latest[_job_key(job)]
    assert run.job == "cronjob/batch/hourly" and run.nominal_time == scheduled
    assert run.attributes["k8s.cronjob.name"] == "hourly"


def test_missed_schedule_event_becomes_a_missed_run(cluster: Cluster, reader: Reader) -> None:
    cronjob = cluster.create_cronjob("batch", "backup", "*/5 * * * *", starting_deadline_seconds=60)
    reader.poll()
    cluster.record_event(
        cronjob,
        "MissSchedule",
        "Missed scheduled time to start a job: Wed, 25 Nov 2026 23:05:00 +0000",
        component="cronjob-controller",
    )
    key = "cronjob/batch/backup/missed/2026-11-25T23:05:00Z"
    latest = reader.until(lambda ev: key in ev)
    run = latest[key]
    assert run.state is State.missed and run.job == "cronjob/batch/backup"
    assert run.nominal_time == datetime(2026, 11, 25, 23, 5, tzinfo=UTC)


def test_restart_from_stored_cursor_replays_changes_made_while_down(
    cluster: Cluster, reader: Reader, make_adapter
) -> None:
    job = cluster.create_job("batch", "across-restart", ttl_seconds_after_finished=0)
    reader.poll()
    cursor = reader.cursor
    reader.adapter.close()
    cluster.complete_job(job)
    cluster.delete("jobs", job)
    restarted = Reader(make_adapter())
    restarted.cursor = cursor
    # The completion and the deletion may arrive in one poll or in two; wait for the deletion.
    latest = restarted.until(
        lambda ev: (
            ev.get(_job_key(job)) is not None
            and ev[_job_key(job)].attributes.get("k8s.job.deleted") is True
        )
    )
    assert latest[_job_key(job)].state is State.succeeded


def test_unacknowledged_batch_is_sent_again(cluster: Cluster, reader: Reader) -> None:
    reader.poll()
    job = cluster.create_job("batch", "retry-me")
    reader.until(lambda ev: _job_key(job) in ev)
    stale_cursor = None  # as if the commit of the last batch failed
    again = reader.adapter.poll(stale_cursor)
    assert _job_key(job) in {e.key for e in again.events}


def test_namespaces_option_limits_what_is_watched(cluster: Cluster, make_adapter) -> None:
    reader = Reader(make_adapter(namespaces=["team-a"]))
    reader.poll()
    inside = cluster.create_job("team-a", "mine")
    outside = cluster.create_job("team-b", "theirs")
    latest = reader.until(lambda ev: _job_key(inside) in ev)
    time.sleep(0.2)
    reader.poll()
    assert _job_key(outside) not in reader.latest() and _job_key(inside) in latest
