"""What keeps watch → API lag low without giving up a change: size-limited
batches whose cursor covers exactly what they carry, same-step updates
collapsed while buffered, discovery from the watch cache, and the wake-up that
lets the runtime poll as soon as events are buffered."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from adapters.kubernetes import KubernetesAdapter, create, normalize
from gateway.config import Config, SourceEntry
from gateway.contract import SourceConfig, State, WakingAdapter
from gateway.runtime import Runtime
from gateway.store.models import Run
from tests.adapters.kubernetes.conftest import Reader
from tests.fakes.kube_apiserver import Cluster, KubeApiServer


def _job_key(job: dict) -> str:
    m = job["metadata"]
    return normalize.job_key(m["namespace"], m["name"], m["uid"])


def _succeed(cluster: Cluster, name: str) -> dict:
    job = cluster.create_job("batch", name)
    pod = cluster.create_pod("batch", job=job)
    cluster.schedule_pod(pod)
    cluster.run_pod(pod)
    cluster.end_pod(pod, 0)
    cluster.complete_job(job)
    return job


def _settle(adapter: KubernetesAdapter, rv: int, timeout: float = 15.0) -> None:
    """Wait (bounded) until every stream has handed over changes up to `rv`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(int(t.resource_version or 0) >= rv for t in adapter._threads):
            return
        time.sleep(0.05)
    raise AssertionError(f"streams did not reach resourceVersion {rv} within {timeout}s")


def test_size_limited_batches_carry_every_job_and_a_cursor_only_as_far_as_they_go(
    cluster: Cluster, make_adapter: Callable[..., KubernetesAdapter]
) -> None:
    adapter = make_adapter(max_batch_events=7)
    reader = Reader(adapter)
    reader.poll()
    jobs = [_succeed(cluster, f"report-{i}") for i in range(12)]
    _settle(adapter, cluster.store.resource_version)
    sizes, cursors = [], []
    for _ in range(200):
        batch = reader.poll()
        if not batch:
            break
        sizes.append(len(batch))
        cursors.append(json.loads(reader.cursor or "{}")["rv"]["jobs@*"])
    assert len(sizes) > 2 and max(sizes) <= 7
    # The cursor moves forward batch by batch, not to the end with the first.
    assert cursors == sorted(cursors, key=int) and len(set(cursors)) > 1
    latest = reader.latest()
    assert all(latest[_job_key(j)].state is State.succeeded for j in jobs)


def test_restart_from_a_partial_batch_cursor_still_delivers_every_final_state(
    cluster: Cluster, make_adapter: Callable[..., KubernetesAdapter]
) -> None:
    first = make_adapter(max_batch_events=5)
    reader = Reader(first)
    reader.poll()
    jobs = [_succeed(cluster, f"etl-{i}") for i in range(8)]
    _settle(first, cluster.store.resource_version)
    reader.poll()  # limited batches: the store now holds the cursor of the second
    reader.poll()
    assert first._buffered > 0, "the rest must still be buffered when the gateway stops"
    first.close()
    # A new process resumes from the stored cursor; what the store holds is the
    # two batches returned with cursors up to it, plus what the new one brings.
    second = Reader(make_adapter())
    second.cursor = reader.cursor
    second.events = list(reader.events)
    latest = second.until(
        lambda ev: all(_job_key(j) in ev and ev[_job_key(j)].state is State.succeeded for j in jobs)
    )
    assert len({k for k in latest if k.startswith("job/")}) == len(jobs)


def test_updates_that_keep_a_runs_step_collapse_while_buffered(
    cluster: Cluster, make_adapter: Callable[..., KubernetesAdapter]
) -> None:
    adapter = make_adapter()
    reader = Reader(adapter)
    reader.poll()
    job = _succeed(cluster, "nightly")
    _settle(adapter, cluster.store.resource_version)
    batch = reader.poll()
    # The pod: five writes (created, bound, started, running, succeeded), one
    # event per step.
    pods = [e.state for e in batch if e.parent_key == _job_key(job)]
    assert pods == [State.queued, State.running, State.succeeded]
    # The Job: six writes; the steps it shows depend on whether the Job
    # controller's `Completed` Event overtook the Job stream (it then decides
    # the state), but no step repeats and the newest object is the one kept.
    steps = [e.state for e in batch if e.key == _job_key(job)]
    assert steps[-1] is State.succeeded and len(steps) <= 3
    assert all(a != b for a, b in pairwise(steps))
    final = [e for e in batch if e.key == _job_key(job)][-1]
    assert final.attributes["k8s.job.condition"] == "Complete" and final.ended_at is not None


def test_discover_from_the_watch_cache_matches_a_fresh_listing(
    apiserver: KubeApiServer, cluster: Cluster, make_adapter: Callable[..., KubernetesAdapter]
) -> None:
    cluster.create_cronjob("batch", "nightly", "0 2 * * *")
    listed = make_adapter().discover()  # not started: lists
    watching = make_adapter()
    Reader(watching).poll()
    lists_before = sum(r.verb == "list" for r in list(apiserver.requests))
    cached = watching.discover()
    assert sum(r.verb == "list" for r in list(apiserver.requests)) == lists_before
    assert sorted(s.key for s in cached) == sorted(s.key for s in listed)
    assert {s.key for s in cached} == {"cronjob/batch/nightly"}
    _succeed(cluster, "adhoc")
    _settle(watching, cluster.store.resource_version)
    assert "job/batch/adhoc" in {s.key for s in watching.discover()}


def test_rediscovery_translates_only_the_jobs_that_changed(
    cluster: Cluster, make_adapter: Callable[..., KubernetesAdapter]
) -> None:
    adapter = make_adapter()
    Reader(adapter).poll()
    cluster.create_job("batch", "steady")
    held = cluster.create_job("batch", "held")
    _settle(adapter, cluster.store.resource_version)
    before = {s.key: s for s in adapter.discover()}
    current = cluster.store.get("jobs", "batch", "held")
    current["spec"]["suspend"] = True
    cluster.store.update("jobs", current)
    _settle(adapter, cluster.store.resource_version)
    after = {s.key: s for s in adapter.discover()}
    assert after.keys() == before.keys() == {"job/batch/steady", "job/batch/held"}
    # The untouched Job's spec is the one already made; the changed one is new.
    assert after["job/batch/steady"] is before["job/batch/steady"]
    assert not before["job/batch/held"].paused and after["job/batch/held"].paused
    assert after["job/batch/held"].definition["metadata"]["uid"] == held["metadata"]["uid"]


def test_buffered_events_wake_the_poller(
    cluster: Cluster, make_adapter: Callable[..., KubernetesAdapter]
) -> None:
    adapter = make_adapter()
    assert isinstance(adapter, WakingAdapter)
    Reader(adapter).poll()
    woken = threading.Event()
    adapter.set_wakeup(woken.set)
    cluster.create_job("batch", "wake-me")
    assert woken.wait(15), "the adapter never called its wake-up"
    adapter.set_wakeup(None)


def test_runtime_polls_a_woken_source_long_before_its_interval(
    engine: Engine, cluster: Cluster, kubeconfig: Path
) -> None:
    options = {"kubeconfig": str(kubeconfig), "retry_backoff_s": 0.05}
    adapter = create(SourceConfig(name="k8s-wake", kind="kubernetes", options=options))
    # An hour between ticks: only the wake-up can bring the Job in.
    entry = SourceEntry(name="k8s-wake", kind="kubernetes", interval=3600, options=options)
    config = Config(sources=[entry])
    runtime = Runtime(config, engine, adapters={"k8s-wake": adapter}, housekeeping=[])
    try:
        runtime.start()
        job = _succeed(cluster, "woken")
        state = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and state != "succeeded":
            with Session(engine) as session:
                state = session.exec(
                    select(Run.state).where(Run.source == "k8s-wake", Run.key == _job_key(job))
                ).scalar_one_or_none()
            time.sleep(0.1)
        assert state == "succeeded"
    finally:
        runtime.stop()
        adapter.close()
