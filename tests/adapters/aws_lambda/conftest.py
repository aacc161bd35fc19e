"""moto in server mode on loopback, and helpers that build a Lambda estate in it."""

from __future__ import annotations

import contextlib
import io
import json
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from adapters.aws_lambda import LambdaAdapter
from emulators.lambda_estate import LambdaEstate
from gateway.contract import SourceConfig

REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    with LambdaEstate() as moto:
        yield moto.url


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWY_TEST_AWS_KEY", "testing")
    monkeypatch.setenv("SWY_TEST_AWS_SECRET", "testing")
    for var in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")


@dataclass
class Estate:
    """Builds functions, schedules and log lines in moto through boto3."""

    url: str

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def role(self) -> str:
        iam = self.client("iam")
        try:
            return str(iam.get_role(RoleName="lambda-exec")["Role"]["Arn"])
        except iam.exceptions.NoSuchEntityException:
            doc = json.dumps({"Version": "2012-10-17", "Statement": []})
            return str(
                iam.create_role(RoleName="lambda-exec", AssumeRolePolicyDocument=doc)["Role"]["Arn"]
            )

    def function(
        self, name: str, *, tags: dict[str, str] | None = None, memory: int = 128, timeout: int = 3
    ) -> str:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("app.py", "def handler(event, context):\n    return {'ok': True}\n")
        out = self.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=self.role(),
            Handler="app.handler",
            Code={"ZipFile": buf.getvalue()},
            MemorySize=memory,
            Timeout=timeout,
            Tags=tags or {},
        )
        return str(out["FunctionArn"])

    def rule(self, name: str, expression: str, target_arn: str, *, enabled: bool = True) -> None:
        events = self.client("events")
        events.put_rule(
            Name=name, ScheduleExpression=expression, State="ENABLED" if enabled else "DISABLED"
        )
        events.put_targets(Rule=name, Targets=[{"Id": "fn", "Arn": target_arn}])

    def schedule(
        self, name: str, expression: str, target_arn: str, *, timezone: str = "UTC"
    ) -> None:
        self.client("scheduler").create_schedule(
            Name=name,
            ScheduleExpression=expression,
            ScheduleExpressionTimezone=timezone,
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={"Arn": target_arn, "RoleArn": self.role()},
        )

    def logs(self, group: str, stream: str, lines: list[tuple[int, str]]) -> None:
        logs = self.client("logs")
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_group(logGroupName=group)
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
        events = [
            {"timestamp": ts, "message": msg} for ts, msg in sorted(lines, key=lambda x: x[0])
        ]
        for i in range(0, len(events), 5000):
            logs.put_log_events(
                logGroupName=group, logStreamName=stream, logEvents=events[i : i + 5000]
            )


@pytest.fixture
def estate(moto_url: str, aws_env: None) -> Estate:
    urllib.request.urlopen(
        urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")
    ).read()
    return Estate(moto_url)


def source_config(endpoint: str, name: str = "lambda-test", **options: Any) -> SourceConfig:
    return SourceConfig(
        name=name,
        kind="lambda",
        interval_s=30,
        options={
            "region": REGION,
            "endpoint_url": endpoint,
            "access_key_id_env": "SWY_TEST_AWS_KEY",
            "secret_access_key_env": "SWY_TEST_AWS_SECRET",
            "max_requests_per_s": 1000,
            **options,
        },
    )


@pytest.fixture
def adapter(estate: Estate) -> LambdaAdapter:
    return LambdaAdapter(source_config(estate.url))
