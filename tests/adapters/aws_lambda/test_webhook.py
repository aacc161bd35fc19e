"""Lambda destination records (via EventBridge or bare) → runs, purely."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from adapters.aws_lambda.webhook import destination_events
from gateway.contract import State

RID = "8f5c1a2b-3d4e-4f50-8a6b-7c8d9e0f1a2b"
ARN = "arn:aws:lambda:us-east-2:123456789012:function:orders:$LATEST"
TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def record(*, success: bool = True, error: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "version": "1.0",
        "timestamp": "2026-11-25T21:52:47.333Z",
        "requestContext": {
            "requestId": RID,
            "functionArn": ARN,
            "condition": "Success" if success else "RetriesExhausted",
            "approximateInvokeCount": 1 if success else 3,
        },
        "requestPayload": {"orderId": 42, "headers": {"traceparent": TP}},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
        "responsePayload": {"ok": True},
    }
    if not success:
        body["responseContext"]["functionError"] = "Unhandled"
        body["responsePayload"] = error or {"errorType": "ValueError", "errorMessage": "no lines"}
    return body


def envelope(rec: dict[str, Any], *, success: bool = True) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "bbd1e7ce-4bd9-4b3c-8b3a-111111111111",
        "detail-type": f"Lambda Function Invocation Result - {'Success' if success else 'Failure'}",
        "source": "lambda",
        "account": "123456789012",
        "time": "2026-11-25T21:52:48Z",
        "region": "us-east-2",
        "resources": ["arn:aws:events:us-east-2:123456789012:event-bus/default", ARN],
        "detail": rec,
    }


def test_success_via_eventbridge_is_a_succeeded_run_keyed_by_request_id() -> None:
    (ev,) = destination_events(envelope(record()), source="lambda-prod")
    assert ev.key == RID and ev.job == "orders" and ev.state is State.succeeded
    assert ev.ended_at is not None and ev.ended_at.isoformat() == "2026-11-25T21:52:47.333000+00:00"
    assert ev.attributes["cloud.account.id"] == "123456789012"
    assert ev.attributes["faas.version"] == "$LATEST"
    refs = {(r.namespace, r.value) for r in ev.refs}
    assert refs == {("aws.request_id", RID), ("w3c.traceparent", TP)}


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ({"errorType": "ValueError", "errorMessage": "no lines"}, "handled"),
        (
            {"errorMessage": "2026-11-25T21:52:47.333Z 8f5c Task timed out after 3.00 seconds"},
            "timeout",
        ),
        (
            {
                "errorType": "Runtime.ExitError",
                "errorMessage": "RequestId: x Error: Runtime exited with error: exit status 1",
            },
            "unhandled",
        ),
        (
            {
                "errorType": "Runtime.OutOfMemory",
                "errorMessage": "Runtime exited with error: signal: killed",
            },
            "out_of_memory",
        ),
    ],
)
def test_failure_records_carry_distinct_error_kinds(error: dict[str, Any], kind: str) -> None:
    (ev,) = destination_events(
        envelope(record(success=False, error=error), success=False), source="s"
    )
    assert ev.state is State.failed and ev.error is not None and ev.error.kind == kind
    assert ev.attributes["aws.lambda.approximate_invoke_count"] == 3
    assert ev.attempt == 3  # the record follows the last try


def test_bare_records_and_lists_are_accepted() -> None:
    events = destination_events([record(), record(success=False)], source="s")
    assert [e.state for e in events] == [State.succeeded, State.failed]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.pop("detail"), r"payload\.detail: missing"),
        (lambda p: p.update({"source": "aws.s3"}), r"payload\.source: expected 'lambda'"),
        (lambda p: p.update({"detail-type": "Object Created"}), r"payload\.detail-type"),
        (
            lambda p: p["detail"]["requestContext"].pop("requestId"),
            r"requestContext\.requestId: missing",
        ),
        (
            lambda p: p["detail"]["requestContext"].update({"functionArn": "arn:aws:sqs:x"}),
            "not a function ARN",
        ),
        (lambda p: p["detail"].update({"timestamp": "yesterday"}), r"payload\.detail\.timestamp"),
        (
            lambda p: p.update({"detail-type": "Lambda Function Invocation Result - Failure"}),
            "disagree",
        ),
    ],
)
def test_malformed_payloads_raise_value_error_naming_the_field(mutate, message: str) -> None:
    payload = copy.deepcopy(envelope(record()))
    mutate(payload)
    with pytest.raises(ValueError, match=message):
        destination_events(payload, source="s")


@pytest.mark.parametrize("payload", [[], "text", 42, None])
def test_non_object_payloads_are_rejected(payload: Any) -> None:
    with pytest.raises(ValueError, match="payload"):
        destination_events(payload, source="s")
