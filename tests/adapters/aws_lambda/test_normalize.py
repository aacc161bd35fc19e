"""Pure parsing of Lambda log lines, invocations and schedule expressions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from croniter import croniter

from adapters.aws_lambda.normalize import (
    FoldState,
    Invocation,
    LogEvent,
    convert_schedule,
    fold_log_events,
    function_from_stream,
    invocation_event,
    parse_log_message,
)
from emulators.lambda_estate import json_invocation, text_invocation
from gateway.contract import RunEvent, State
from gateway.states import default_state_map

T0 = 1_795_000_000_000
OBSERVED = datetime(2026, 11, 26, tzinfo=UTC)
TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
RID = "8f507cfc-a3f1-4e6f-9d44-2c5e3bb7f9a1"


def _events(
    lines: list[tuple[int, str]], stream: str = "2026/11/26/[$LATEST]abc"
) -> list[LogEvent]:
    return [
        LogEvent("/aws/lambda/orders", stream, str(i), ts, msg) for i, (ts, msg) in enumerate(lines)
    ]


def _run(lines: list[tuple[int, str]], state: FoldState | None = None) -> RunEvent:
    state = state or FoldState()
    touched = fold_log_events(_events(lines), state, {"/aws/lambda/orders": "orders"})
    assert touched == [RID]
    return invocation_event(
        state.invocations[RID],
        source="lambda-prod",
        observed_at=OBSERVED,
        states=default_state_map(),
    )


@pytest.mark.parametrize("fmt", [text_invocation, json_invocation])
def test_successful_invocation_is_one_succeeded_run_keyed_by_request_id(fmt) -> None:
    ev = _run(fmt(RID, T0))
    assert ev.key == RID and ev.job == "orders" and ev.state is State.succeeded
    assert ev.error is None
    assert ev.started_at == datetime.fromtimestamp(T0 / 1000, tz=UTC)
    assert ev.ended_at is not None and ev.ended_at > ev.started_at
    assert ev.attributes["faas.invocation_id"] == RID
    assert ev.attributes["faas.coldstart"] is False
    assert ev.attributes["faas.max_memory"] == 128 * 1024 * 1024
    assert ev.attributes["aws.lambda.duration_ms"] == 12.5
    assert ev.attributes["aws.lambda.max_memory_used_mb"] == 40
    assert [(r.namespace, r.value) for r in ev.refs] == [("aws.request_id", RID)]


@pytest.mark.parametrize("fmt", [text_invocation, json_invocation])
def test_init_duration_marks_a_cold_start(fmt) -> None:
    ev = _run(fmt(RID, T0, cold=True))
    assert ev.attributes["faas.coldstart"] is True
    assert ev.attributes["aws.lambda.init_duration_ms"] == 185.22


@pytest.mark.parametrize("fmt", [text_invocation, json_invocation])
@pytest.mark.parametrize(
    ("outcome", "kind"),
    [
        ("timeout", "timeout"),
        ("handled", "handled"),
        ("crash", "unhandled"),
        ("oom", "out_of_memory"),
    ],
)
def test_failures_are_distinct_error_kinds(fmt, outcome: str, kind: str) -> None:
    ev = _run(fmt(RID, T0, outcome=outcome))
    assert ev.state is State.failed
    assert ev.error is not None and ev.error.kind == kind
    assert ev.ended_at is not None


def test_timeout_message_names_the_limit() -> None:
    ev = _run(text_invocation(RID, T0, outcome="timeout"))
    assert ev.error is not None and "Task timed out after 3.00 seconds" in (ev.error.message or "")
    assert ev.attributes["aws.lambda.status"] == "timeout"


def test_handled_error_keeps_the_exception_type_and_message() -> None:
    ev = _run(text_invocation(RID, T0, outcome="handled"))
    assert ev.error is not None and ev.error.message == "ValueError: order 42 has no lines"


def test_killed_runtime_with_full_memory_is_out_of_memory_even_without_error_type() -> None:
    lines = [
        (T0, f"START RequestId: {RID} Version: 3\n"),
        (T0 + 5, f"RequestId: {RID} Error: Runtime exited with error: exit status 137\n"),
        (T0 + 9, f"END RequestId: {RID}\n"),
        (
            T0 + 10,
            f"REPORT RequestId: {RID}\tDuration: 9.00 ms\tBilled Duration: 10 ms\t"
            "Memory Size: 128 MB\tMax Memory Used: 128 MB\t\n",
        ),
    ]
    ev = _run(lines)
    assert ev.error is not None and ev.error.kind == "out_of_memory"
    assert ev.attributes["faas.version"] == "3"


@pytest.mark.parametrize("fmt", [text_invocation, json_invocation])
def test_traceparent_from_marker_or_logged_headers_becomes_a_ref(fmt) -> None:
    ev = _run(fmt(RID, T0, traceparent=TP))
    assert ("w3c.traceparent", TP) in [(r.namespace, r.value) for r in ev.refs]
    assert ev.traceparent == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")


def test_invocation_split_across_polls_combines_through_the_fold_state() -> None:
    lines = text_invocation(RID, T0, outcome="handled")
    state = FoldState()
    first = _run(lines[:3], state)
    assert first.state is State.failed  # the runtime reported the error before REPORT
    assert RID in state.invocations and state.stream_owner
    restored = FoldState(
        invocations={k: Invocation.from_json(v.to_json()) for k, v in state.invocations.items()},
        stream_owner=dict(state.stream_owner),
    )
    second = _run(lines[3:], restored)
    assert second.state is State.failed and second.error is not None
    assert second.error.kind == "handled"
    assert second.attributes["aws.lambda.duration_ms"] == 12.5
    assert not restored.stream_owner


def test_started_invocation_without_report_is_running() -> None:
    ev = _run(text_invocation(RID, T0)[:2])
    assert ev.state is State.running and ev.ended_at is None
    assert "faas.coldstart" not in ev.attributes


def test_report_alone_derives_start_from_duration() -> None:
    ev = _run(text_invocation(RID, T0)[-1:])
    assert ev.state is State.succeeded
    assert ev.started_at is not None and ev.ended_at is not None
    assert (ev.ended_at - ev.started_at).total_seconds() == pytest.approx(0.0125, abs=0.002)


def test_lines_without_request_id_outside_an_invocation_are_ignored() -> None:
    state = FoldState()
    touched = fold_log_events(
        _events([(T0, "[ERROR] Runtime.ImportModuleError: Unable to import module 'app'\n")]),
        state,
    )
    assert touched == [] and not state.invocations


def test_unrelated_lines_parse_to_nothing() -> None:
    assert parse_log_message("INIT_START Runtime Version: python:3.12.v20\n") is None
    assert parse_log_message('{"level": "INFO", "message": "hello", "requestId": "x"}') is None
    assert parse_log_message("{not json") is None


def test_shared_log_group_stream_names_the_function() -> None:
    assert function_from_stream("2026/11/26/orders-etl[$LATEST]0123abcd") == "orders-etl"
    assert function_from_stream("2026/11/26/[$LATEST]0123abcd") is None


@pytest.mark.parametrize(
    ("native", "five"),
    [
        ("cron(0 12 ? * MON-FRI *)", "0 12 * * MON-FRI"),
        ("cron(15 10 ? * 6L 2027)", None),
        ("cron(0/15 * * * ? *)", "0-59/15 * * * *"),
        ("cron(0 8 1 * ? *)", "0 8 1 * *"),
        ("cron(0 18 ? * 2-6 *)", "0 18 * * 1-5"),
        ("cron(0 9 ? * 1,7 *)", "0 9 * * 0,6"),
        ("cron(0 10 L * ? *)", None),
        ("cron(0 10 15W * ? *)", None),
        ("cron(0 10 ? * 3#2 *)", None),
        ("cron(0 10 * * ? 2030)", None),
        ("cron(0 10 * *)", None),
        ("rate(1 minute)", "* * * * *"),
        ("rate(5 minutes)", "*/5 * * * *"),
        ("rate(7 minutes)", None),
        ("rate(120 minutes)", "0 */2 * * *"),
        ("rate(1 hour)", "0 * * * *"),
        ("rate(6 hours)", "0 */6 * * *"),
        ("rate(5 hours)", None),
        ("rate(1 day)", "0 0 * * *"),
        ("rate(3 days)", None),
        ("at(2027-01-01T10:00:00)", None),
    ],
)
def test_schedule_conversion(native: str, five: str | None) -> None:
    conv = convert_schedule(native)
    assert conv.native == native
    assert conv.schedule == five
    if five is None:
        assert conv.reason
    else:
        assert conv.reason is None and croniter.is_valid(five)


def test_rate_seven_minutes_says_why_it_cannot_be_expressed() -> None:
    assert "7 minutes" in (convert_schedule("rate(7 minutes)").reason or "")
    assert "year" in (convert_schedule("cron(0 10 * * ? 2030)").reason or "")


def test_async_retry_under_the_same_request_id_is_the_next_attempt() -> None:
    first = text_invocation(RID, T0, outcome="handled")
    second = text_invocation(RID, T0 + 60_000)
    ev = _run(first + second)
    assert ev.attempt == 2 and ev.state is State.succeeded and ev.error is None


def test_async_retry_in_a_later_poll_is_the_next_attempt() -> None:
    state = FoldState()
    first = _run(text_invocation(RID, T0, outcome="timeout"), state)
    assert first.attempt == 1 and first.state is State.failed
    state.settle(horizon_ms=T0 + 10_000, ttl_ms=20 * 60_000)
    assert not state.invocations and len(state.done) == 1
    second = _run(text_invocation(RID, T0 + 120_000), state)
    assert second.attempt == 2 and second.state is State.succeeded
    state.settle(horizon_ms=T0 + 30 * 60_000, ttl_ms=20 * 60_000)
    assert not state.done  # forgotten once no retry can come


@pytest.mark.parametrize(
    ("label", "body", "kind"),
    [
        ("Invoke Error", '{"errorType":"Error","errorMessage":"boom","stack":[]}', "handled"),
        (
            "Unhandled Promise Rejection",
            '{"errorType":"Runtime.UnhandledPromiseRejection","errorMessage":"Error: boom"}',
            "unhandled",
        ),
        (
            "Uncaught Exception",
            '{"errorType":"TypeError","errorMessage":"x is undefined"}',
            "unhandled",
        ),
    ],
)
def test_node_runtime_error_lines_are_attributed_by_their_request_id(
    label: str, body: str, kind: str
) -> None:
    line = f"2026-11-26T00:00:00.005Z\t{RID}\tERROR\t{label} \t{body}\n"
    ev = _run([(T0 + 5, line)])
    assert ev.state is State.failed and ev.error is not None and ev.error.kind == kind
