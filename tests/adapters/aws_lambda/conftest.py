"""moto in server mode on loopback, and helpers that build a Lambda estate in it."""

from __future__ import annotations

import contextlib
import urllib.request
from collections.abc import Iterator
from typing import Any

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


class Estate(LambdaEstate):
    """The emulator's estate verbs, pointed at the session's moto.

    `logs` (unlike the emulator's `put_lines`) writes any number of lines, 5,000 to a call,
    in timestamp order with ties kept in the order given.
    """

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

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
