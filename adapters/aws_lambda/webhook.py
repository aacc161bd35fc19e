"""Lambda destination records pushed through a signed webhook → `RunEvent`s.

The gateway verifies the signature and hands over the parsed JSON; this module
is pure. It accepts:

* an EventBridge event from a Lambda destination (`"source": "lambda"`,
  `detail-type` `Lambda Function Invocation Result - Success|Failure`, the
  invocation record in `detail`) — the path destination → event bus → API
  destination → Switchyard;
* a bare invocation record (`requestContext`, `responseContext`,
  `responsePayload`), as SQS/SNS destinations carry it;
* a JSON list of either.

Each record becomes one run keyed by `requestContext.requestId`, the same key
polling gives the invocation, so a pushed result and polled log lines merge
into one run. Error kinds follow `normalize.classify_error`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from adapters.aws_lambda.normalize import classify_error, iso_ms, traceparent_in
from gateway.contract import ErrorInfo, Ref, RunEvent, State

_DETAIL_TYPES = {
    "Lambda Function Invocation Result - Success": True,
    "Lambda Function Invocation Result - Failure": False,
}


def destination_events(payload: Any, *, source: str) -> list[RunEvent]:
    """Runs from a webhook body; `ValueError` naming the field that is wrong."""
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise ValueError("payload: empty list")
    return [
        _one(item, source, f"payload[{i}]" if isinstance(payload, list) else "payload")
        for i, item in enumerate(items)
    ]


def _need(obj: Any, key: str, where: str) -> Any:
    if not isinstance(obj, Mapping):
        raise ValueError(f"{where}: expected an object")
    if key not in obj or obj[key] in (None, ""):
        raise ValueError(f"{where}.{key}: missing")
    return obj[key]


def _one(item: Any, source: str, where: str) -> RunEvent:
    if not isinstance(item, Mapping):
        raise ValueError(f"{where}: expected an object, got {type(item).__name__}")
    success_hint: bool | None = None
    envelope_time = None
    if "detail" in item or "detail-type" in item:
        if item.get("source") != "lambda":
            raise ValueError(f"{where}.source: expected 'lambda', got {item.get('source')!r}")
        detail_type = item.get("detail-type")
        if detail_type not in _DETAIL_TYPES:
            raise ValueError(
                f"{where}.detail-type: not a Lambda invocation result: {detail_type!r}"
            )
        success_hint = _DETAIL_TYPES[detail_type]
        envelope_time = item.get("time")
        where = f"{where}.detail"
        item = _need(item, "detail", where.rsplit(".", 1)[0])
    context = _need(item, "requestContext", where)
    request_id = _need(context, "requestId", f"{where}.requestContext")
    function_arn = _need(context, "functionArn", f"{where}.requestContext")
    if not isinstance(request_id, str) or not isinstance(function_arn, str):
        raise ValueError(f"{where}.requestContext: requestId and functionArn must be strings")
    arn_parts = function_arn.split(":")
    if len(arn_parts) < 7 or arn_parts[5] != "function":
        raise ValueError(
            f"{where}.requestContext.functionArn: not a function ARN: {function_arn!r}"
        )
    function = arn_parts[6]
    stamp = item.get("timestamp") or envelope_time
    ms = iso_ms(stamp)
    if ms is None:
        raise ValueError(f"{where}.timestamp: missing or not an ISO-8601 time: {stamp!r}")
    at = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    if at.tzinfo is None:
        raise ValueError(f"{where}.timestamp: needs a timezone: {stamp!r}")
    response_context = item.get("responseContext") or {}
    response = item.get("responsePayload")
    condition = context.get("condition")
    function_error = (
        response_context.get("functionError") if isinstance(response_context, Mapping) else None
    )
    failed = bool(function_error) or condition not in (None, "Success")
    if success_hint is not None and success_hint == failed:
        raise ValueError(f"{where}: detail-type and requestContext.condition disagree")
    error = None
    if failed:
        error_type = response.get("errorType") if isinstance(response, Mapping) else None
        message = response.get("errorMessage") if isinstance(response, Mapping) else None
        kind = classify_error(error_type, message)
        if kind is None:
            kind = {
                "EventAgeExceeded": "event_age_exceeded",
                "RetriesExhausted": "unhandled",
            }.get(str(condition), "handled" if function_error == "Handled" else "unhandled")
        text = ": ".join(str(p) for p in (error_type, message) if p) or str(condition)
        error = ErrorInfo(kind=kind, message=text[:4000])
    attributes: dict[str, Any] = {
        "cloud.provider": "aws",
        "faas.name": function,
        "faas.invocation_id": request_id,
        "aws.lambda.invoked_arn": function_arn,
        "aws.lambda.condition": condition,
        "aws.lambda.approximate_invoke_count": context.get("approximateInvokeCount"),
    }
    if len(arn_parts) > 3 and arn_parts[3]:
        attributes["cloud.region"] = arn_parts[3]
    if len(arn_parts) > 4 and arn_parts[4]:
        attributes["cloud.account.id"] = arn_parts[4]
    if isinstance(response_context, Mapping) and response_context.get("executedVersion"):
        attributes["faas.version"] = response_context["executedVersion"]
    refs = [Ref(namespace="aws.request_id", value=request_id)]
    request = item.get("requestPayload")
    headers = request.get("headers") if isinstance(request, Mapping) else None
    if isinstance(headers, Mapping):
        for key, value in headers.items():
            if str(key).lower() == "traceparent" and isinstance(value, str):
                found = traceparent_in(f"traceparent={value.strip().lower()}")
                if found:
                    refs.append(Ref(namespace="w3c.traceparent", value=found))
    count = context.get("approximateInvokeCount")
    # The record follows the last try, so it names that try's number, the same
    # numbering the log fold gives async retries of one request id.
    attempt = count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 1
    return RunEvent(
        source=source,
        key=request_id,
        job=function,
        name=function,
        attempt=attempt,
        state=State.failed if failed else State.succeeded,
        ended_at=at,
        observed_at=at,
        error=error,
        attributes={k: v for k, v in attributes.items() if v is not None},
        refs=refs,
    )
