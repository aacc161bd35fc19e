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


def _iso_ms(ms: int) -> str:
    instant = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def report_line(
    request_id: str,
    *,
    duration_ms: float,
    memory_mb: int,
    used_mb: int,
    init_ms: float | None = None,
    status: str | None = None,
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
    lines.append((start_ms + 2, f"[INFO]\t{_iso_ms(start_ms + 2)}\t{request_id}\t{message}\n"))
    init = 180.5 if cold else None
    if timeout_s is not None:
        end = start_ms + timeout_s * 1000
        lines.append(
            (
                end,
                f"{_iso_ms(end)} {request_id} Task timed out after {timeout_s:.2f} seconds\n",
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


__all__ = ["LambdaEstate", "invocation_lines", "report_line"]
