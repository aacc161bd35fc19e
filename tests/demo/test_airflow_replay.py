"""The Airflow replay server answers the real Airflow adapter with the recorded 3.3.2 payloads."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from adapters.airflow import create
from emulators.airflow import AirflowReplay, Recording
from emulators.airflow.recording import DATA_FILE, latest_instant, shift_text
from gateway.contract import SourceConfig, State


@pytest.fixture
def replay() -> Iterator[AirflowReplay]:
    with AirflowReplay(anchor=datetime.now(UTC), password="pw") as server:
        yield server


def _get(replay: AirflowReplay, path: str, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token or replay.token}"}
    request = urllib.request.Request(f"{replay.url}/api/v2{path}", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)  # type: ignore[no-any-return]


def test_shift_moves_each_timestamp_and_keeps_its_spelling() -> None:
    text = '{"a": "2026-11-26T00:27:06.077020Z", "run": "manual__2026-11-26T00:27:06.077020+00:00"}'
    shifted = shift_text(text, timedelta(hours=1, seconds=2))
    assert shifted == (
        '{"a": "2026-11-26T01:27:08.077020Z", "run": "manual__2026-11-26T01:27:08.077020+00:00"}'
    )


def test_recording_is_moved_so_its_latest_instant_is_the_anchor() -> None:
    anchor = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    moved = Recording.load(anchor)
    original = Recording.load()
    assert moved.offset == anchor - latest_instant(DATA_FILE.read_text())
    assert latest_instant(json.dumps(moved.dags)) <= anchor
    assert len(moved.dag_runs) == len(original.dag_runs) == 5
    assert moved.run_id("sy_failure").startswith("manual__2030-01-0")


def test_adapter_polls_the_replay_and_finds_the_failed_retried_try(replay: AirflowReplay) -> None:
    adapter = create(
        SourceConfig(
            name="af",
            kind="airflow",
            interval_s=5,
            options={"url": replay.url, "api": "v2", "username": "admin", "password": "pw"},
        )
    )
    first = adapter.poll(None)
    run_id = replay.recording.run_id("sy_failure")
    by_key = {e.key: e for e in first.events}
    second_try = by_key[f"sy_failure/{run_id}/explode/-1/2"]
    assert second_try.state is State.failed
    assert second_try.error is not None and "orders file has 0 rows" in str(
        second_try.error.message
    )
    assert f"sy_failure/{run_id}/explode/-1/1" in by_key  # the earlier try, from /tries
    assert adapter.poll(first.cursor).events == []
    assert sorted(j.key for j in adapter.discover()) == [
        "sy_failure",
        "sy_long",
        "sy_manual",
        "sy_mapped",
        "sy_paused",
        "sy_success",
    ]
    adapter.close()


def test_keyset_cursor_pages_return_every_row_once(replay: AirflowReplay) -> None:
    seen: list[str] = []
    cursor = ""
    for _ in range(20):
        page = _get(replay, f"/dags/~/dagRuns/~/taskInstances?limit=2&order_by=id&cursor={cursor}")
        seen += [t["id"] for t in page["task_instances"]]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen)) == len(replay.recording.task_instances)


def test_updated_at_gte_after_everything_answers_no_rows(replay: AirflowReplay) -> None:
    later = (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.%f%%2B0000")
    page = _get(replay, f"/dags/~/dagRuns?limit=100&updated_at_gte={later}")
    assert page["dag_runs"] == [] and page["total_entries"] == 0


def test_a_request_without_the_token_is_refused(replay: AirflowReplay) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        _get(replay, "/dags", token="wrong")
    assert refused.value.code == 401
