"""The adapter uses nothing beyond the RBAC rules it ships (recorded at the emulator)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.adapters.kubernetes.conftest import Reader
from tests.fakes.kube_apiserver import Cluster, KubeApiServer

RBAC = Path(__file__).resolve().parents[3] / "adapters" / "kubernetes" / "rbac.yaml"


def _granted(kind: str) -> set[tuple[str, str, str]]:
    granted: set[tuple[str, str, str]] = set()
    for doc in yaml.safe_load_all(RBAC.read_text()):
        if doc["kind"] != kind:
            continue
        for rule in doc["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        granted.add((verb, group, resource))
    return granted


def test_cluster_role_and_role_grant_the_same_rules() -> None:
    assert _granted("ClusterRole") == _granted("Role")


def test_every_request_the_adapter_makes_is_granted_by_rbac_yaml(
    apiserver: KubeApiServer, cluster: Cluster, reader: Reader
) -> None:
    cron = cluster.create_cronjob("batch", "nightly", "0 2 * * *")
    job = cluster.create_job("batch", "nightly-1", cronjob=cron)
    cluster.create_pod("batch", job=job)
    reader.poll()
    reader.adapter.discover()
    reader.adapter.pause("cronjob/batch/nightly")
    reader.adapter.resume("cronjob/batch/nightly")
    reader.until(lambda ev: len(ev) >= 2)
    used = apiserver.verbs_used()
    assert {
        ("list", "batch", "jobs"),
        ("watch", "batch", "jobs"),
        ("patch", "batch", "cronjobs"),
    } <= used
    assert used <= _granted("ClusterRole"), used - _granted("ClusterRole")
