"""An emulated API server, a kubeconfig pointing at it, and an adapter reading it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from adapters.kubernetes import KubernetesAdapter, create
from gateway.contract import RunEvent, SourceConfig
from tests.fakes.kube_apiserver import Cluster, KubeApiServer


class Reader:
    """Polls an adapter like the runtime does: acknowledges each batch's cursor."""

    def __init__(self, adapter: KubernetesAdapter) -> None:
        self.adapter = adapter
        self.cursor: str | None = None
        self.events: list[RunEvent] = []
        self.jobs: list = []

    def poll(self) -> list[RunEvent]:
        result = self.adapter.poll(self.cursor)
        self.cursor = result.cursor
        self.events += result.events
        if result.jobs is not None:
            self.jobs = result.jobs
        return result.events

    def latest(self) -> dict[str, RunEvent]:
        return {e.key: e for e in self.events}

    def until(
        self, condition: Callable[[dict[str, RunEvent]], bool], timeout: float = 15.0
    ) -> dict[str, RunEvent]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            latest = self.latest()
            if condition(latest):
                return latest
            time.sleep(0.05)
        raise AssertionError(f"condition not met within {timeout}s; saw {sorted(self.latest())}")


@pytest.fixture
def apiserver() -> Iterator[KubeApiServer]:
    server = KubeApiServer(bookmark_interval_s=0.2).start()
    yield server
    server.stop()


@pytest.fixture
def cluster(apiserver: KubeApiServer) -> Cluster:
    return Cluster(apiserver.store)


@pytest.fixture
def kubeconfig(apiserver: KubeApiServer, tmp_path: Path) -> Path:
    return apiserver.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def make_adapter(kubeconfig: Path) -> Iterator[Callable[..., KubernetesAdapter]]:
    made: list[KubernetesAdapter] = []

    def make(**options: object) -> KubernetesAdapter:
        opts = {
            "kubeconfig": str(kubeconfig),
            "retry_backoff_s": 0.05,
            "watch_timeout_s": 30,
            **options,
        }
        adapter = create(SourceConfig(name="k8s-test", kind="kubernetes", options=opts))
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        adapter.close()


@pytest.fixture
def reader(make_adapter: Callable[..., KubernetesAdapter]) -> Reader:
    return Reader(make_adapter())
