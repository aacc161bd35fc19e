"""A Lambda estate in moto: functions, EventBridge schedules, and their log lines.

`LambdaEstate` runs moto in server mode (`ThreadedMotoServer`, 127.0.0.1, a
free port, in this process) and builds in it, through boto3, what a real
account would hold: functions (with tags), EventBridge rules and Scheduler
schedules that target them, and CloudWatch Logs streams with the lines the
Lambda service writes for each invocation. moto does not run functions, so
`invocation(...)` writes those lines itself, in the text format the Lambda
developer guide documents: `START RequestId: … Version: $LATEST`, the
function's own lines, `END RequestId: …`, and
`REPORT RequestId: … Duration: … Billed Duration: … Memory Size: … Max Memory
Used: …` — with `Task timed out after N.00 seconds` and `Status: timeout` for a
timeout, which is how an invocation fails without the function raising.

The line builders here are the single source of Lambda's log format for the
demo and the tests: `invocation_lines` (the demo's: chosen message, duration,
timeout), `text_invocation` and `json_invocation` (one invocation per outcome:
success, handled error, timeout, crash, out of memory; JSON records follow
`monitoring-cloudwatchlogs-logformat`), all built on `report_line` and `iso`.

Credentials are the fixed moto ones (`testing`); nothing leaves loopback.
"""

from __future__ import annotations

import contextlib
import io
import json
import uuid
import zipfile
from datetime import UTC, datetime
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
ACCESS_KEY = "testing"
SECRET_KEY = "testing"


def iso(ms: int) -> str:
    """A log timestamp as the runtimes print it (UTC, milliseconds, `Z`)."""
    instant = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def report_line(
    request_id: str,
    *,
    duration_ms: float = 12.5,
    memory_mb: int = 128,
    used_mb: int = 40,
    init_ms: float | None = None,
    status: str | None = None,
    error_type: str | None = None,
) -> str:
    billed = int(duration_ms) + 1
    line = (
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
        f"Billed Duration: {billed} ms\tMemory Size: {memory_mb} MB\t"
        f"Max Memory Used: {used_mb} MB\t"
    )
    if init_ms is not None:
        line += f"Init Duration: {init_ms:.2f} ms\t"
    if status:
        line += f"Status: {status}\t"
    if error_type:
        line += f"Error Type: {error_type}\t"
    return line + "\n"


def invocation_lines(
    request_id: str,
    start_ms: int,
    *,
    message: str,
    duration_ms: float = 42.0,
    memory_mb: int = 128,
    timeout_s: int | None = None,
    cold: bool = False,
) -> list[tuple[int, str]]:
    """(timestamp ms, message) lines of one text-format invocation.

    With `timeout_s`, the invocation runs into its timeout: the runtime's
    `Task timed out` line, END at the deadline, and `Status: timeout` on REPORT.
    """
    lines = [(start_ms, f"START RequestId: {request_id} Version: $LATEST\n")]
    lines.append((start_ms + 2, f"[INFO]\t{iso(start_ms + 2)}\t{request_id}\t{message}\n"))
    init = 180.5 if cold else None
    if timeout_s is not None:
        end = start_ms + timeout_s * 1000
        lines.append(
            (
                end,
                f"{iso(end)} {request_id} Task timed out after {timeout_s:.2f} seconds\n",
            )
        )
        lines.append((end + 1, f"END RequestId: {request_id}\n"))
        lines.append(
            (
                end + 2,
                report_line(
                    request_id,
                    duration_ms=timeout_s * 1000.0,
                    memory_mb=memory_mb,
                    used_mb=memory_mb // 2,
                    init_ms=init,
                    status="timeout",
                ),
            )
        )
        return lines
    end = start_ms + int(duration_ms)
    lines.append((end, f"END RequestId: {request_id}\n"))
    lines.append(
        (
            end + 1,
            report_line(
                request_id,
                duration_ms=duration_ms,
                memory_mb=memory_mb,
                used_mb=min(memory_mb, 38),
                init_ms=init,
            ),
        )
    )
    return lines


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
    report: dict[str, Any] = {"init_ms": 185.22 if cold else None}
    if outcome == "timeout":
        lines.append((t0 + 3000, f"{iso(t0 + 3000)} {rid} Task timed out after 3.00 seconds\n"))
        report.update(duration_ms=3000.0, status="timeout")
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
        report.update(used_mb=128, status="error", error_type="Runtime.OutOfMemory")
    end = t0 + 3001 if outcome == "timeout" else t0 + 20
    lines.append((end, f"END RequestId: {rid}\n"))
    lines.append((end + 1, report_line(rid, **report)))
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


class LambdaEstate:
    """moto on loopback plus the verbs to fill it. `start()`/`stop()` or `with`."""

    def __init__(self) -> None:
        self._server: ThreadedMotoServer | None = None
        self.url = ""
        self._role_arn: str | None = None

    def start(self) -> LambdaEstate:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> LambdaEstate:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def role(self) -> str:
        if self._role_arn is None:
            doc = json.dumps({"Version": "2012-10-17", "Statement": []})
            iam = self.client("iam")
            try:
                role = iam.get_role(RoleName="lambda-exec")["Role"]
            except iam.exceptions.NoSuchEntityException:
                role = iam.create_role(RoleName="lambda-exec", AssumeRolePolicyDocument=doc)["Role"]
            self._role_arn = str(role["Arn"])
        return self._role_arn

    def function(
        self,
        name: str,
        *,
        code: str = "def handler(event, context):\n    return {'ok': True}\n",
        memory_mb: int = 128,
        timeout_s: int = 3,
        tags: dict[str, str] | None = None,
        description: str = "",
    ) -> str:
        """Create a Python function; returns its ARN."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("app.py", code)
        out = self.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=self.role(),
            Handler="app.handler",
            Code={"ZipFile": buf.getvalue()},
            MemorySize=memory_mb,
            Timeout=timeout_s,
            Description=description,
            Tags=tags or {},
        )
        return str(out["FunctionArn"])

    def rule(self, name: str, expression: str, target_arn: str, *, enabled: bool = True) -> None:
        """An EventBridge schedule rule targeting a function."""
        events = self.client("events")
        events.put_rule(
            Name=name, ScheduleExpression=expression, State="ENABLED" if enabled else "DISABLED"
        )
        events.put_targets(Rule=name, Targets=[{"Id": "fn", "Arn": target_arn}])

    def schedule(
        self, name: str, expression: str, target_arn: str, *, timezone: str = "UTC"
    ) -> None:
        """An EventBridge Scheduler schedule targeting a function."""
        self.client("scheduler").create_schedule(
            Name=name,
            ScheduleExpression=expression,
            ScheduleExpressionTimezone=timezone,
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={"Arn": target_arn, "RoleArn": self.role()},
        )

    def invocation(
        self,
        function: str,
        start: datetime,
        *,
        message: str = "processing batch",
        duration_ms: float = 42.0,
        memory_mb: int = 128,
        timeout_s: int | None = None,
        cold: bool = False,
    ) -> str:
        """Write one invocation's lines to `/aws/lambda/<function>`; returns its request id."""
        request_id = str(uuid.uuid4())
        start_ms = int(start.timestamp() * 1000)
        stream = f"{start:%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        self.put_lines(
            f"/aws/lambda/{function}",
            stream,
            invocation_lines(
                request_id,
                start_ms,
                message=message,
                duration_ms=duration_ms,
                memory_mb=memory_mb,
                timeout_s=timeout_s,
                cold=cold,
            ),
        )
        return request_id

    def put_lines(self, group: str, stream: str, lines: list[tuple[int, str]]) -> None:
        logs = self.client("logs")
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_group(logGroupName=group)
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
        events = [{"timestamp": ts, "message": msg} for ts, msg in sorted(lines)]
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)


__all__ = [
    "LambdaEstate",
    "invocation_lines",
    "iso",
    "json_invocation",
    "report_line",
    "text_invocation",
]
