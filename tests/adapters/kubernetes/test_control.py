"""Suspend/resume receipts against the emulated API server: resume undoes only our suspend."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from adapters.kubernetes import KubernetesAdapter
from gateway.contract import SourceError
from tests.fakes.kube_apiserver import Cluster, KubeApiServer


def _suspended(apiserver: KubeApiServer, name: str) -> bool:
    return bool(apiserver.store.get("cronjobs", "batch", name)["spec"]["suspend"])


def test_a_cronjob_suspended_by_its_owner_stays_suspended_after_resume(
    apiserver: KubeApiServer, cluster: Cluster, make_adapter: Callable[..., KubernetesAdapter]
) -> None:
    cluster.create_cronjob("batch", "quarterly", "0 3 1 */3 *", suspend=True)
    adapter = make_adapter()
    receipt = adapter.pause("cronjob/batch/quarterly")
    assert receipt == {"was_suspended": True}
    assert _suspended(apiserver, "quarterly")
    adapter.resume("cronjob/batch/quarterly", receipt)
    assert _suspended(apiserver, "quarterly")


def test_a_cronjob_switchyard_suspended_is_resumed_with_its_receipt(
    apiserver: KubeApiServer, cluster: Cluster, make_adapter: Callable[..., KubernetesAdapter]
) -> None:
    cluster.create_cronjob("batch", "nightly", "0 2 * * *")
    adapter = make_adapter()
    receipt = adapter.pause("cronjob/batch/nightly")
    assert receipt == {"was_suspended": False}
    assert _suspended(apiserver, "nightly")
    assert adapter.pause("cronjob/batch/nightly") == {"was_suspended": True}  # second pause
    adapter.resume("cronjob/batch/nightly", receipt)
    assert not _suspended(apiserver, "nightly")


def test_resume_without_a_receipt_unsuspends_as_before(
    apiserver: KubeApiServer, cluster: Cluster, make_adapter: Callable[..., KubernetesAdapter]
) -> None:
    cluster.create_cronjob("batch", "quarterly", "0 3 1 */3 *", suspend=True)
    make_adapter().resume("cronjob/batch/quarterly")
    assert not _suspended(apiserver, "quarterly")


def test_a_malformed_receipt_is_an_error_naming_the_field_and_changes_nothing(
    apiserver: KubeApiServer, cluster: Cluster, make_adapter: Callable[..., KubernetesAdapter]
) -> None:
    cluster.create_cronjob("batch", "quarterly", "0 3 1 */3 *", suspend=True)
    with pytest.raises(SourceError, match="'was_suspended' must be true or false"):
        make_adapter().resume("cronjob/batch/quarterly", {"was_suspended": "no"})
    assert _suspended(apiserver, "quarterly")


def test_pausing_a_missing_cronjob_is_an_error_naming_it(
    make_adapter: Callable[..., KubernetesAdapter],
) -> None:
    with pytest.raises(SourceError, match="cannot suspend cronjob/batch/ghost: HTTP 404"):
        make_adapter().pause("cronjob/batch/ghost")
