"""Discovery and incremental log polling against moto in server mode."""

from __future__ import annotations

import json
import time

import pytest

from adapters.aws_lambda import LambdaAdapter, create
from emulators.lambda_estate import json_invocation, text_invocation
from gateway.contract import SourceConfig, SourceError, State, create_adapter
from tests.adapters.aws_lambda.conftest import Estate, source_config

STREAM = "2026/11/26/[$LATEST]0a1b2c3d4e5f"
TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def now_ms() -> int:
    return int(time.time() * 1000)


def rid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def by_key(events):
    out = {}
    for e in events:
        out[e.key] = e  # the last observation of a key is the most complete
    return out


def test_entry_point_builds_the_adapter(estate: Estate) -> None:
    cfg = source_config(estate.url)
    assert isinstance(create(cfg), LambdaAdapter)
    assert isinstance(create_adapter(cfg), LambdaAdapter)


def test_discover_lists_functions_with_config_tags_schedules_and_destinations(
    estate: Estate, adapter: LambdaAdapter
) -> None:
    orders = estate.function(
        "orders", tags={"team": "data", "tier": "1"}, memory_mb=512, timeout_s=60
    )
    reports = estate.function("reports")
    estate.function("adhoc")
    estate.rule("orders-weekdays", "cron(0 12 ? * MON-FRI *)", orders)
    estate.schedule("reports-7min", "rate(7 minutes)", reports, timezone="Europe/Paris")
    estate.client("lambda").put_function_event_invoke_config(
        FunctionName="orders",
        MaximumRetryAttempts=1,
        DestinationConfig={"OnFailure": {"Destination": "arn:aws:sqs:us-east-1:123456789012:dlq"}},
    )
    jobs = {j.key: j for j in adapter.discover()}
    assert set(jobs) == {"orders", "reports", "adhoc"}
    o = jobs["orders"]
    assert o.kind == "lambda" and o.labels == {"team": "data", "tier": "1"}
    assert o.schedule == "0 12 * * MON-FRI" and o.schedule_native == "cron(0 12 ? * MON-FRI *)"
    assert o.max_duration_s == 60 and not o.paused
    assert o.definition["memory_mb"] == 512 and o.definition["runtime"] == "python3.12"
    assert o.definition["log_group"] == "/aws/lambda/orders"
    assert o.definition["destinations"]["on_failure"].endswith(":dlq")
    assert o.definition["async_retry"]["maximum_retry_attempts"] == 1
    r = jobs["reports"]
    assert r.schedule is None and r.schedule_native == "rate(7 minutes)"
    assert r.timezone == "Europe/Paris"
    assert "7 minutes" in r.definition["schedule_note"]
    assert r.definition["schedules"][0]["via"] == "scheduler"
    a = jobs["adhoc"]
    assert a.schedule is None and a.schedule_native is None and a.definition["schedules"] == []


def test_disabled_rule_marks_the_job_paused(estate: Estate, adapter: LambdaAdapter) -> None:
    arn = estate.function("nightly")
    estate.rule("nightly", "cron(0 2 * * ? *)", arn, enabled=False)
    (job,) = adapter.discover()
    assert job.paused and job.schedule == "0 2 * * *"
    assert job.definition["schedules"][0]["enabled"] is False


@pytest.mark.parametrize("fmt", [text_invocation, json_invocation])
def test_poll_turns_each_outcome_into_one_run(estate: Estate, adapter: LambdaAdapter, fmt) -> None:
    estate.function("orders")
    t = now_ms() - 60_000
    lines = []
    outcomes = {1: "success", 2: "timeout", 3: "handled", 4: "crash", 5: "oom"}
    for n, outcome in outcomes.items():
        lines += fmt(
            rid(n), t + n * 5000, outcome=outcome, cold=(n == 1), traceparent=TP if n == 1 else None
        )
    estate.logs("/aws/lambda/orders", STREAM, lines)
    result = adapter.poll(None)
    assert result.jobs is not None and [j.key for j in result.jobs] == ["orders"]
    runs = by_key(result.events)
    assert set(runs) == {rid(n) for n in outcomes}
    ok = runs[rid(1)]
    assert ok.state is State.succeeded and ok.job == "orders"
    assert ok.attributes["faas.coldstart"] is True
    assert ("w3c.traceparent", TP) in [(r.namespace, r.value) for r in ok.refs]
    assert ("aws.request_id", rid(1)) in [(r.namespace, r.value) for r in ok.refs]
    kinds = {n: runs[rid(n)].error.kind for n in (2, 3, 4, 5)}  # type: ignore[union-attr]
    assert kinds == {2: "timeout", 3: "handled", 4: "unhandled", 5: "out_of_memory"}
    assert all(runs[rid(n)].state is State.failed for n in (2, 3, 4, 5))
    assert all(runs[rid(n)].attributes["faas.coldstart"] is False for n in (2, 3, 4, 5))


def test_second_poll_returns_only_new_invocations(estate: Estate, adapter: LambdaAdapter) -> None:
    estate.function("orders")
    t = now_ms() - 60_000
    estate.logs("/aws/lambda/orders", STREAM, text_invocation(rid(1), t))
    first = adapter.poll(None)
    assert [e.key for e in first.events] == [rid(1)]
    again = adapter.poll(first.cursor)
    assert again.events == [] and again.jobs is None  # function list is cached
    estate.logs("/aws/lambda/orders", STREAM, text_invocation(rid(2), t + 10_000))
    third = adapter.poll(again.cursor)
    assert [e.key for e in third.events] == [rid(2)]


def test_late_event_inside_the_overlap_is_picked_up_and_repeats_are_dropped(
    estate: Estate, adapter: LambdaAdapter
) -> None:
    estate.function("orders")
    t = now_ms() - 60_000
    lines = text_invocation(rid(1), t, outcome="handled")
    # The REPORT of invocation 2 (newer) is delivered first; invocation 1's lines arrive late,
    # with timestamps behind the watermark but inside the overlap window.
    estate.logs(
        "/aws/lambda/orders", "2026/11/26/[$LATEST]other", text_invocation(rid(2), t + 30_000)
    )
    first = adapter.poll(None)
    assert [e.key for e in first.events] == [rid(2)]
    cursor = json.loads(first.cursor or "{}")
    assert cursor["groups"]["/aws/lambda/orders"]["ts"] == t + 30_021
    estate.logs("/aws/lambda/orders", STREAM, lines)
    second = adapter.poll(first.cursor)
    runs = by_key(second.events)
    assert set(runs) == {rid(1)}  # invocation 2's lines were not observed twice
    assert runs[rid(1)].state is State.failed and runs[rid(1)].error.kind == "handled"  # type: ignore[union-attr]
    assert adapter.poll(second.cursor).events == []


def test_event_older_than_the_overlap_is_not_reread(estate: Estate) -> None:
    adapter = LambdaAdapter(source_config(estate.url, overlap_s=5))
    estate.function("orders")
    t = now_ms() - 60_000
    estate.logs("/aws/lambda/orders", STREAM, text_invocation(rid(2), t + 30_000))
    first = adapter.poll(None)
    estate.logs("/aws/lambda/orders", "2026/11/26/[$LATEST]late", text_invocation(rid(1), t))
    assert adapter.poll(first.cursor).events == []


def test_deleted_function_disappears_from_discovery_without_failing_polls(
    estate: Estate, adapter: LambdaAdapter
) -> None:
    estate.function("orders")
    estate.function("legacy")
    t = now_ms() - 60_000
    estate.logs("/aws/lambda/legacy", STREAM, text_invocation(rid(1), t))
    first = adapter.poll(None)
    assert {e.key for e in first.events} == {rid(1)}
    estate.client("lambda").delete_function(FunctionName="legacy")
    estate.client("logs").delete_log_group(logGroupName="/aws/lambda/legacy")
    estate.logs("/aws/lambda/orders", STREAM, text_invocation(rid(2), t + 1000))
    # The cached function list still names legacy: its missing group is skipped.
    second = adapter.poll(first.cursor)
    assert [e.key for e in second.events] == [rid(2)]
    assert "/aws/lambda/legacy" not in json.loads(second.cursor or "{}")["groups"]
    assert [j.key for j in adapter.discover()] == ["orders"]


def test_functions_sharing_a_log_group_are_read_with_one_query(estate: Estate) -> None:
    estate.function("a")
    estate.function("b")
    adapter = LambdaAdapter(source_config(estate.url, destinations=False))
    adapter.discover()
    # moto ignores LoggingConfig, so the shared group is set as AWS would report it.
    assert adapter._discovery is not None
    adapter._discovery.log_groups.update({"a": "/shared/etl", "b": "/shared/etl"})
    t = now_ms() - 60_000
    estate.logs("/shared/etl", "2026/11/26/a[$LATEST]1111", text_invocation(rid(1), t))
    estate.logs("/shared/etl", "2026/11/26/b[$LATEST]2222", json_invocation(rid(2), t))
    before = adapter.clients.calls["cloudwatch-logs.FilterLogEvents"]
    runs = by_key(adapter.poll(None).events)
    assert adapter.clients.calls["cloudwatch-logs.FilterLogEvents"] - before == 1
    assert runs[rid(1)].job == "a" and runs[rid(2)].job == "b"


def test_unreadable_cursor_is_a_source_error(adapter: LambdaAdapter) -> None:
    with pytest.raises(SourceError, match="cursor"):
        adapter.poll('{"v": 99}')


def test_missing_credential_variable_is_named(estate: Estate) -> None:
    cfg = SourceConfig(
        name="lambda-x",
        kind="lambda",
        options={
            "region": "us-east-1",
            "access_key_id_env": "NOPE_NOT_SET",
            "secret_access_key_env": "NOPE2",
        },
    )
    with pytest.raises(SourceError, match="NOPE_NOT_SET"):
        LambdaAdapter(cfg)


def test_async_retry_read_in_a_later_poll_is_the_next_attempt_of_the_same_run(
    estate: Estate, adapter: LambdaAdapter
) -> None:
    estate.function("orders")
    t = now_ms() - 90_000
    estate.logs("/aws/lambda/orders", STREAM, text_invocation(rid(1), t, outcome="crash"))
    first = adapter.poll(None)
    (ev1,) = first.events
    assert (ev1.attempt, ev1.state, ev1.error.kind) == (1, State.failed, "unhandled")  # type: ignore[union-attr]
    estate.logs("/aws/lambda/orders", STREAM, text_invocation(rid(1), t + 60_000))
    (ev2,) = adapter.poll(first.cursor).events
    assert (ev2.key, ev2.attempt, ev2.state, ev2.error) == (rid(1), 2, State.succeeded, None)
