"""Log lines exactly as Lambda writes them, for tests (moto writes none of its own).

Text-format lines follow the Lambda developer guide and what the runtimes print;
JSON-format records follow `monitoring-cloudwatchlogs-logformat`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime


def iso(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def report_line(
    rid: str,
    *,
    duration: float = 12.5,
    memory: int = 128,
    used: int = 40,
    init: float | None = None,
    status: str | None = None,
    error_type: str | None = None,
) -> str:
    billed = int(duration) + 1
    line = (
        f"REPORT RequestId: {rid}\tDuration: {duration:.2f} ms\tBilled Duration: {billed} ms\t"
        f"Memory Size: {memory} MB\tMax Memory Used: {used} MB\t"
    )
    if init is not None:
        line += f"Init Duration: {init:.2f} ms\t"
    if status:
        line += f"Status: {status}\t"
    if error_type:
        line += f"Error Type: {error_type}\t"
    return line + "\n"


def text_invocation(
    rid: str,
    t0: int,
    *,
    outcome: str = "success",
    cold: bool = False,
    traceparent: str | None = None,
) -> list[tuple[int, str]]:
    """(timestamp ms, message) lines of one text-format invocation."""
    lines = [(t0, f"START RequestId: {rid} Version: $LATEST\n")]
    if traceparent:
        lines.append((t0 + 1, f"SWITCHYARD traceparent={traceparent}\n"))
    lines.append((t0 + 2, f"[INFO]\t{iso(t0 + 2)}\t{rid}\tprocessing order batch\n"))
    report: dict[str, object] = {"init": 185.22 if cold else None}
    if outcome == "timeout":
        lines.append((t0 + 3000, f"{iso(t0 + 3000)} {rid} Task timed out after 3.00 seconds\n"))
        report.update(duration=3000.0, status="timeout")
    elif outcome == "handled":
        lines.append(
            (
                t0 + 5,
                "[ERROR] ValueError: order 42 has no lines\rTraceback (most recent call last):\r"
                '  File "/var/task/app.py", line 7, in handler\r'
                '    raise ValueError("order 42 has no lines")\n',
            )
        )
    elif outcome == "crash":
        lines.append(
            (t0 + 5, f"RequestId: {rid} Error: Runtime exited with error: exit status 1\n")
        )
        lines.append((t0 + 6, "Runtime.ExitError\n"))
        report.update(status="error", error_type="Runtime.ExitError")
    elif outcome == "oom":
        lines.append(
            (t0 + 5, f"RequestId: {rid} Error: Runtime exited with error: signal: killed\n")
        )
        lines.append((t0 + 6, "Runtime.ExitError\n"))
        report.update(used=128, status="error", error_type="Runtime.OutOfMemory")
    end = t0 + 3001 if outcome == "timeout" else t0 + 20
    lines.append((end, f"END RequestId: {rid}\n"))
    lines.append((end + 1, report_line(rid, **report)))  # type: ignore[arg-type]
    return lines


def json_invocation(
    rid: str,
    t0: int,
    *,
    outcome: str = "success",
    cold: bool = False,
    traceparent: str | None = None,
) -> list[tuple[int, str]]:
    """(timestamp ms, message) records of one JSON-format invocation."""
    out = [
        (
            t0,
            {
                "time": iso(t0),
                "type": "platform.start",
                "record": {"requestId": rid, "version": "$LATEST"},
            },
        )
    ]
    event: dict[str, object] = {"orderId": 42}
    if traceparent:
        event["headers"] = {"traceparent": traceparent}
    out.append(
        (
            t0 + 1,
            {
                "timestamp": iso(t0 + 1),
                "level": "INFO",
                "message": {"event": event},
                "logger": "root",
                "requestId": rid,
            },
        )
    )
    metrics: dict[str, object] = {
        "durationMs": 12.5,
        "billedDurationMs": 13,
        "memorySizeMB": 128,
        "maxMemoryUsedMB": 40,
    }
    if cold:
        metrics["initDurationMs"] = 185.22
    record: dict[str, object] = {"requestId": rid, "metrics": metrics, "status": "success"}
    if outcome == "handled":
        out.append(
            (
                t0 + 5,
                {
                    "timestamp": iso(t0 + 5),
                    "level": "ERROR",
                    "message": "order 42 has no lines",
                    "logger": "root",
                    "requestId": rid,
                    "errorType": "ValueError",
                    "errorMessage": "order 42 has no lines",
                    "stackTrace": ['  File "/var/task/app.py", line 7, in handler\n'],
                },
            )
        )
        record["status"] = "failure"
    elif outcome == "timeout":
        metrics["durationMs"] = 3000.0
        record["status"] = "timeout"
    elif outcome == "crash":
        record.update(status="error", errorType="Runtime.ExitError")
    elif outcome == "oom":
        metrics["maxMemoryUsedMB"] = 128
        record.update(status="error", errorType="Runtime.OutOfMemory")
    end = t0 + (3001 if outcome == "timeout" else 20)
    out.append(
        (
            end,
            {
                "time": iso(end),
                "type": "platform.runtimeDone",
                "record": {
                    "requestId": rid,
                    "status": record["status"],
                    **({"errorType": record["errorType"]} if "errorType" in record else {}),
                },
            },
        )
    )
    out.append((end + 1, {"time": iso(end + 1), "type": "platform.report", "record": record}))
    return [(ts, json.dumps(body)) for ts, body in out]
