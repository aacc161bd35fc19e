"""Pause/resume receipts against the Airflow 3 replay server (recorded 3.3.2 payloads).

The replay keeps `is_paused` per DAG across requests (PATCH then GET), so the
adapter reads and writes it exactly as it would on Airflow.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from adapters.airflow import AirflowAdapter, create
from emulators.airflow import AirflowReplay
from gateway.contract import SourceConfig, SourceError


@pytest.fixture
def replay() -> Iterator[AirflowReplay]:
    with AirflowReplay(anchor=datetime.now(UTC), password="pw") as server:
        yield server


@pytest.fixture
def adapter(replay: AirflowReplay) -> Iterator[AirflowAdapter]:
    options = {"url": replay.url, "api": "v2", "username": "admin", "password": "pw"}
    made = create(SourceConfig(name="af", kind="airflow", options=options))
    yield made
    made.close()


def is_paused(replay: AirflowReplay, dag_id: str) -> bool:
    request = urllib.request.Request(
        f"{replay.url}/api/v2/dags/{dag_id}/details",
        headers={"Authorization": f"Bearer {replay.token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return bool(json.load(response)["is_paused"])


def patches(replay: AirflowReplay) -> list[tuple[str, str]]:
    return [r for r in replay.requests if r[0] == "PATCH"]


def test_a_dag_paused_by_its_owner_stays_paused_after_resume(
    replay: AirflowReplay, adapter: AirflowAdapter
) -> None:
    assert is_paused(replay, "sy_paused")
    receipt = adapter.pause("sy_paused")
    assert receipt == {"was_paused": True}
    adapter.resume("sy_paused", receipt)
    assert is_paused(replay, "sy_paused")
    assert patches(replay) == []  # neither call wrote anything


def test_a_dag_switchyard_paused_is_unpaused_with_its_receipt(
    replay: AirflowReplay, adapter: AirflowAdapter
) -> None:
    receipt = adapter.pause("sy_success")
    assert receipt == {"was_paused": False}
    assert is_paused(replay, "sy_success")
    assert adapter.pause("sy_success") == {"was_paused": True}  # a second pause owns nothing
    adapter.resume("sy_success", receipt)
    assert not is_paused(replay, "sy_success")
    assert len(patches(replay)) == 2  # the first pause and the resume


def test_resume_without_a_receipt_unpauses_as_before(
    replay: AirflowReplay, adapter: AirflowAdapter
) -> None:
    adapter.resume("sy_paused")
    assert not is_paused(replay, "sy_paused")


def test_a_malformed_receipt_is_an_error_naming_the_field_and_changes_nothing(
    replay: AirflowReplay, adapter: AirflowAdapter
) -> None:
    with pytest.raises(SourceError, match="'was_paused' must be true or false") as info:
        adapter.resume("sy_paused", {"paused": False})
    assert info.value.source == "af" and not info.value.retryable
    assert is_paused(replay, "sy_paused")


def test_pausing_an_unknown_dag_is_an_error_naming_it(adapter: AirflowAdapter) -> None:
    with pytest.raises(SourceError, match="pause sy_ghost") as info:
        adapter.pause("sy_ghost")
    assert info.value.source == "af"
