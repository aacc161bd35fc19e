"""Pure normalisation of Kestra executions and flows (payloads shaped like the API's)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from adapters.kestra.normalize import execution_events, flow_job, refs_from_labels
from gateway.contract import Ref, RunKind, State
from gateway.states import default_state_map

OBSERVED = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _state(*steps: tuple[str, str], end: bool = True) -> dict[str, Any]:
    histories = [{"state": s, "date": d} for s, d in steps]
    out: dict[str, Any] = {
        "current": steps[-1][0],
        "histories": histories,
        "startDate": steps[0][1],
    }
    if end:
        out["endDate"] = steps[-1][1]
    return out


EXECUTION: dict[str, Any] = {
    "id": "7Hq2Xb",
    "namespace": "switchyard.migrated",
    "flowId": "orders_etl",
    "flowRevision": 3,
    "labels": [
        {"key": "switchyard.job", "value": "airflow-prod:orders_etl"},
        {"key": "switchyard.traceparent", "value": TRACEPARENT},
        {"key": "system.correlationId", "value": "root01"},
        {"key": "switchyard.ref.airflow.ti", "value": "orders_etl/manual__1/load/-1/1"},
    ],
    "scheduleDate": "2026-03-01T02:00:00Z",
    "trigger": {"id": "schedule", "type": "io.kestra.plugin.core.trigger.Schedule"},
    "metadata": {"attemptNumber": 1, "originalCreatedDate": "2026-03-01T02:00:00Z"},
    "state": _state(
        ("CREATED", "2026-03-01T02:00:00Z"),
        ("RUNNING", "2026-03-01T02:00:01Z"),
        ("FAILED", "2026-03-01T02:05:00Z"),
    ),
    "taskRunList": [
        {
            "id": "tr-dag",
            "taskId": "dag",
            "state": _state(
                ("CREATED", "2026-03-01T02:00:01Z"),
                ("RUNNING", "2026-03-01T02:00:01Z"),
                ("FAILED", "2026-03-01T02:05:00Z"),
            ),
            "attempts": [],
        },
        {
            "id": "tr-load",
            "taskId": "load",
            "parentTaskRunId": "tr-dag",
            "state": _state(
                ("CREATED", "2026-03-01T02:00:02Z"),
                ("RUNNING", "2026-03-01T02:00:02Z"),
                ("RETRYING", "2026-03-01T02:02:00Z"),
                ("RUNNING", "2026-03-01T02:02:30Z"),
                ("FAILED", "2026-03-01T02:05:00Z"),
            ),
            "attempts": [
                {
                    "state": _state(
                        ("RUNNING", "2026-03-01T02:00:02Z"), ("FAILED", "2026-03-01T02:02:00Z")
                    )
                },
                {
                    "state": _state(
                        ("RUNNING", "2026-03-01T02:02:30Z"), ("FAILED", "2026-03-01T02:05:00Z")
                    )
                },
            ],
        },
    ],
}


def _events() -> list:  # type: ignore[type-arg]
    return execution_events(
        "kestra-prod",
        EXECUTION,
        states=default_state_map(),
        observed_at=OBSERVED,
        ui_base="https://kestra.example.com",
        tenant="main",
    )


def test_execution_becomes_run_task_and_attempt_spans_in_one_tree() -> None:
    events = _events()
    assert [(e.kind, e.key, e.parent_key) for e in events] == [
        (RunKind.run, "switchyard.migrated/orders_etl/7Hq2Xb", None),
        (
            RunKind.task,
            "switchyard.migrated/orders_etl/7Hq2Xb/dag",
            "switchyard.migrated/orders_etl/7Hq2Xb",
        ),
        (
            RunKind.task,
            "switchyard.migrated/orders_etl/7Hq2Xb/load",
            "switchyard.migrated/orders_etl/7Hq2Xb/dag",
        ),
        (
            RunKind.attempt,
            "switchyard.migrated/orders_etl/7Hq2Xb/load/1",
            "switchyard.migrated/orders_etl/7Hq2Xb/load",
        ),
        (
            RunKind.attempt,
            "switchyard.migrated/orders_etl/7Hq2Xb/load/2",
            "switchyard.migrated/orders_etl/7Hq2Xb/load",
        ),
    ]
    assert {e.trace_root for e in events} == {"switchyard.migrated/orders_etl/7Hq2Xb"}


def test_run_carries_state_times_error_job_and_legacy_identity() -> None:
    run = _events()[0]
    assert run.state is State.failed
    assert run.started_at == datetime(2026, 3, 1, 2, 0, 1, tzinfo=UTC)
    assert run.ended_at == datetime(2026, 3, 1, 2, 5, tzinfo=UTC)
    assert run.nominal_time == datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
    assert run.error is not None and run.error.message == "task dag, load failed"
    assert run.job == "switchyard.migrated/orders_etl"
    assert run.attributes["switchyard.legacy_job"] == "airflow-prod:orders_etl"
    assert run.attributes["kestra.trigger.type"] == "io.kestra.plugin.core.trigger.Schedule"
    assert (
        run.url
        == "https://kestra.example.com/ui/main/executions/switchyard.migrated/orders_etl/7Hq2Xb"
    )


def test_labels_become_correlation_refs() -> None:
    run = _events()[0]
    assert run.refs == [
        Ref(namespace="kestra.execution", value="7Hq2Xb"),
        Ref(namespace="w3c.traceparent", value=TRACEPARENT),
        Ref(namespace="w3c.trace", value="0af7651916cd43dd8448eb211c80319c"),
        Ref(namespace="kestra.execution", value="root01"),
        Ref(namespace="airflow.ti", value="orders_etl/manual__1/load/-1/1"),
    ]
    assert run.traceparent == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")


def test_invalid_traceparent_label_yields_no_trace_ref() -> None:
    assert refs_from_labels({"switchyard.traceparent": "garbage"}) == []


def test_attempts_are_numbered_and_failed_tries_are_failed() -> None:
    attempts = [e for e in _events() if e.kind is RunKind.attempt]
    assert [(e.attempt, e.state) for e in attempts] == [(1, State.failed), (2, State.failed)]
    assert attempts[0].ended_at == datetime(2026, 3, 1, 2, 2, tzinfo=UTC)


def test_native_states_map_through_the_state_table() -> None:
    expected = {
        "CREATED": State.scheduled,
        "QUEUED": State.queued,
        "RUNNING": State.running,
        "RETRYING": State.up_for_retry,
        "SUCCESS": State.succeeded,
        "WARNING": State.succeeded,
        "KILLED": State.cancelled,
        "SKIPPED": State.skipped,
        "PAUSED": State.running,
    }
    for native, state in expected.items():
        ex = dict(EXECUTION, taskRunList=[])
        ex["state"] = _state(
            ("CREATED", "2026-03-01T02:00:00Z"),
            (native, "2026-03-01T02:00:09Z"),
            end=native in {"SUCCESS", "WARNING", "KILLED", "SKIPPED"},
        )
        (run,) = execution_events("k", ex, states=default_state_map(), observed_at=OBSERVED)
        assert run.state is state, native
        assert (run.ended_at is not None) == state.terminal, native


def test_light_search_form_without_task_runs_gives_only_the_run() -> None:
    light = {k: v for k, v in EXECUTION.items() if k != "taskRunList"}
    events = execution_events("k", light, states=default_state_map(), observed_at=OBSERVED)
    assert [e.kind for e in events] == [RunKind.run]


def test_flow_becomes_a_kestra_flow_jobspec_with_dag_edges() -> None:
    flow = {
        "id": "orders_etl",
        "namespace": "switchyard.migrated",
        "disabled": False,
        "labels": {"switchyard.job": "airflow-prod:orders_etl", "owner": "data-eng"},
        "tasks": [
            {
                "id": "dag",
                "type": "io.kestra.plugin.core.flow.Dag",
                "tasks": [
                    {"task": {"id": "a", "type": "io.kestra.plugin.core.log.Log"}},
                    {
                        "task": {"id": "b", "type": "io.kestra.plugin.core.log.Log"},
                        "dependsOn": ["a"],
                    },
                ],
            }
        ],
        "triggers": [
            {
                "id": "schedule",
                "type": "io.kestra.plugin.core.trigger.Schedule",
                "cron": "0 2 * * *",
                "timezone": "Europe/Berlin",
            }
        ],
        "source": "id: orders_etl\n",
    }
    job = flow_job("kestra-prod", flow, ui_base="http://k", tenant="main")
    assert (job.kind, job.key, job.schedule, job.timezone) == (
        "kestra_flow",
        "switchyard.migrated/orders_etl",
        "0 2 * * *",
        "Europe/Berlin",
    )
    assert [(t.id, t.upstream) for t in job.tasks] == [("a", []), ("b", ["a"])]
    assert job.edges == [("a", "b")]
    assert job.labels["switchyard.job"] == "airflow-prod:orders_etl"
    assert job.owner == "data-eng"
    assert job.source_text == "id: orders_etl\n"
    assert "source" not in job.definition
