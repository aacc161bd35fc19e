"""The lifecycle of a CronJob against the Kubernetes API emulator and the Kestra emulator.

Legacy side: a CronJob in the emulated API server, discovered, polled and
suspended/resumed by the real `kubernetes` adapter through the official
client and a kubeconfig; `spec.suspend` is read back with the official client
too. Kestra side: the emulator through `KestraApi`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kubernetes import client, config
from sqlalchemy.engine import Engine

from adapters.kestra.normalize import job_key as kestra_job_key
from adapters.kubernetes import KubernetesAdapter, create
from emulators.kestra import KestraEmulator
from emulators.kube_apiserver.cluster import rfc3339
from gateway.contract import RunEvent, SourceConfig, State
from gateway.ingest import apply_batch
from migration_tools.lifecycle import Migrations, SideEffectFailed
from tests.adapters.kubernetes import conftest as kube_fixtures
from tests.fakes.kube_apiserver import Cluster
from tests.migration_tools.conftest import ManualClock
from tests.migration_tools.lifecycle_support import (
    NS,
    audit,
    last_detail,
    lose_trigger,
    migrations_for,
    to_shadow,
    trigger_enabled,
)

# The emulated API server and its kubeconfig, as the Kubernetes adapter's own tests use them.
apiserver = kube_fixtures.apiserver
cluster = kube_fixtures.cluster
kubeconfig = kube_fixtures.kubeconfig

SOURCE = "k8s-prod"
KEY = "cronjob/etl/nightly-report"
TICKS = 5


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2))


@pytest.fixture
def legacy(cluster: Cluster, kubeconfig: Path) -> Iterator[KubernetesAdapter]:
    cluster.create_cronjob("etl", "nightly-report", "15 3 * * *", time_zone="Etc/UTC")
    adapter = create(
        SourceConfig(
            name=SOURCE,
            kind="kubernetes",
            options={"kubeconfig": str(kubeconfig), "retry_backoff_s": 0.05},
        )
    )
    yield adapter
    adapter.close()


@pytest.fixture
def batch(kubeconfig: Path) -> client.BatchV1Api:
    """An official client of its own, so what it reads is what the API server holds."""
    return client.BatchV1Api(config.new_client_from_config(config_file=str(kubeconfig)))


def suspended(batch: client.BatchV1Api) -> bool:
    return bool(batch.read_namespaced_cron_job("nightly-report", "etl").spec.suspend)


def make_migrations(
    engine: Engine, kestra: KestraEmulator, legacy: KubernetesAdapter, clock: ManualClock
) -> Migrations:
    apply_batch(engine, SOURCE, [], jobs=legacy.discover())
    return migrations_for(engine, kestra, SOURCE, legacy, clock, min_runs=TICKS)


def seed_shadow_runs(
    engine: Engine,
    cluster: Cluster,
    legacy: KubernetesAdapter,
    clock: ManualClock,
    native_job: str,
) -> None:
    """TICKS ticks: the CronJob's Jobs (read by the real adapter) and a Kestra run each."""
    cronjob = cluster.store.get("cronjobs", "etl", "nightly-report")
    native: list[RunEvent] = []
    for i in range(TICKS):
        clock.advance(600)
        at = clock()
        job = cluster.create_job("etl", f"nightly-report-{i}", cronjob=cronjob, scheduled_time=at)
        cluster.update_job_status(job, startTime=rfc3339(at + timedelta(seconds=1)), active=1)
        cluster.complete_job(job)
        native.append(
            RunEvent(
                source="kestra",
                key=f"exec-{i}",
                job=native_job,
                state=State.succeeded,
                started_at=at + timedelta(seconds=15),
                ended_at=at + timedelta(seconds=70),
                observed_at=at + timedelta(seconds=70),
            )
        )
    result = legacy.poll(None)
    runs = {e.key for e in result.events if e.kind == "run" and e.job == KEY}
    assert len(runs) == TICKS, [e.key for e in result.events]
    apply_batch(engine, SOURCE, result.events, jobs=result.jobs)
    apply_batch(engine, "kestra", native)


def test_cronjob_cutover_suspends_it_and_rollback_resumes_it(
    engine: Engine,
    cluster: Cluster,
    legacy: KubernetesAdapter,
    batch: client.BatchV1Api,
    kestra: KestraEmulator,
    clock: ManualClock,
) -> None:
    m = make_migrations(engine, kestra, legacy, clock)
    view = m.translate(SOURCE, KEY, actor="alice")
    assert view.readiness == "full", view.reasons
    flow_id = str(view.flow_id)
    m.deploy(SOURCE, KEY, actor="alice")
    m.shadow(SOURCE, KEY, actor="alice", safe=True)
    assert not suspended(batch)  # shadow: both run
    assert trigger_enabled(kestra, flow_id) == {"schedule": True}

    seed_shadow_runs(engine, cluster, legacy, clock, kestra_job_key(NS, flow_id))
    report = m.parity_report(SOURCE, KEY)
    assert (report.compared, report.parity) == (TICKS, 1.0)

    m.cutover(SOURCE, KEY, actor="bob")
    assert suspended(batch)
    assert trigger_enabled(kestra, flow_id) == {"schedule": True}
    assert [j.paused for j in legacy.discover() if j.key == KEY] == [True]

    m.rollback(SOURCE, KEY, actor="carol")
    assert not suspended(batch)
    assert ("main", NS, flow_id) not in kestra.state.flows
    assert audit(engine, SOURCE) == [
        ("translate", "observed", "translated", "ok"),
        ("deploy", "translated", "translated", "ok"),
        ("shadow", "translated", "shadow", "ok"),
        ("cutover", "shadow", "cut_over", "ok"),
        ("rollback", "cut_over", "observed", "ok"),
    ]


def test_cronjob_wrap_suspends_it_and_the_wrap_pod_carries_the_traceparent(
    engine: Engine,
    legacy: KubernetesAdapter,
    batch: client.BatchV1Api,
    kestra: KestraEmulator,
    clock: ManualClock,
) -> None:
    m = make_migrations(engine, kestra, legacy, clock)
    m.translate(SOURCE, KEY, actor="alice")
    wrap_id = str(m.wrap(SOURCE, KEY, actor="alice").wrap_flow_id)
    assert suspended(batch)
    assert trigger_enabled(kestra, wrap_id) == {"schedule": True}
    pod_task = kestra.state.flows[("main", NS, wrap_id)].body["tasks"][-1]
    assert pod_task["type"].endswith("PodCreate")
    (container,) = pod_task["spec"]["containers"]
    assert [e["name"] for e in container["env"]][-1] == "TRACEPARENT"

    m.rollback(SOURCE, KEY, actor="alice")
    assert not suspended(batch)
    assert ("main", NS, wrap_id) not in kestra.state.flows


def test_cronjob_is_unsuspended_when_the_kestra_trigger_cannot_be_enabled(
    engine: Engine,
    legacy: KubernetesAdapter,
    batch: client.BatchV1Api,
    kestra: KestraEmulator,
    clock: ManualClock,
) -> None:
    m = make_migrations(engine, kestra, legacy, clock)
    flow_id = to_shadow(m, SOURCE, KEY)
    lose_trigger(kestra, flow_id)

    with pytest.raises(SideEffectFailed) as failed:
        m.cutover(SOURCE, KEY, actor="bob", force=True)
    assert failed.value.compensated
    assert not suspended(batch)
    assert m.status(SOURCE, KEY).state == "shadow"
    assert audit(engine, SOURCE)[-1] == ("cutover", "shadow", "shadow", "compensated")
    detail = last_detail(engine)
    assert detail["undone"] == ["pause legacy schedule"]
    assert "404" in detail["error"]


def test_cutover_of_a_cronjob_the_api_server_refuses_to_patch_leaves_kestra_untouched(
    engine: Engine,
    cluster: Cluster,
    legacy: KubernetesAdapter,
    batch: client.BatchV1Api,
    kestra: KestraEmulator,
    clock: ManualClock,
) -> None:
    m = make_migrations(engine, kestra, legacy, clock)
    flow_id = to_shadow(m, SOURCE, KEY)
    cluster.delete("cronjobs", cluster.store.get("cronjobs", "etl", "nightly-report"))

    with pytest.raises(SideEffectFailed, match=r"pause legacy schedule.*HTTP 404"):
        m.cutover(SOURCE, KEY, actor="bob", force=True)
    assert m.status(SOURCE, KEY).state == "shadow"
    assert trigger_enabled(kestra, flow_id) == {"schedule": True}  # shadow as it was
    assert audit(engine, SOURCE)[-1] == ("cutover", "shadow", "shadow", "compensated")
