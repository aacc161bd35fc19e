"""Throttling, retries and the request-rate limit."""

from __future__ import annotations

import time

import pytest

from adapters.aws_lambda import LambdaAdapter
from adapters.aws_lambda.clients import RateLimiter
from emulators.lambda_estate import text_invocation
from gateway.contract import SourceError
from tests.adapters.aws_lambda.conftest import Estate, source_config
from tests.adapters.aws_lambda.fault_proxy import FaultProxy

RID = "00000000-0000-4000-8000-000000000001"


def _estate_with_one_invocation(estate: Estate) -> None:
    estate.function("orders")
    estate.logs(
        "/aws/lambda/orders",
        "2026/11/26/[$LATEST]abc",
        text_invocation(RID, int(time.time() * 1000) - 60_000),
    )


def test_throttled_requests_are_retried_by_botocore_and_the_poll_succeeds(estate: Estate) -> None:
    _estate_with_one_invocation(estate)
    with FaultProxy(estate.url) as proxy:
        adapter = LambdaAdapter(source_config(proxy.url, max_attempts=4))
        adapter.discover()
        proxy.faults["FilterLogEvents"] = 2
        result = adapter.poll(None)
    assert [e.key for e in result.events] == [RID]
    assert proxy.failed["FilterLogEvents"] == 2
    assert adapter.clients.calls["cloudwatch-logs.FilterLogEvents"] == 3


def test_persistent_throttling_raises_a_retryable_source_error_and_returns_nothing(
    estate: Estate,
) -> None:
    _estate_with_one_invocation(estate)
    with FaultProxy(estate.url) as proxy:
        adapter = LambdaAdapter(source_config(proxy.url, max_attempts=2))
        adapter.discover()
        proxy.faults["FilterLogEvents"] = -1
        with pytest.raises(SourceError) as info:
            adapter.poll(None)
        proxy.faults["FilterLogEvents"] = 0
        after = adapter.poll(None)  # the source recovers once AWS stops throttling
    err = info.value
    assert err.source == "lambda-test" and err.retryable
    assert "ThrottlingException" in err.message and "/aws/lambda/orders" in err.message
    assert "max_requests_per_s" in err.message
    assert [e.key for e in after.events] == [RID]


def test_throttled_discovery_is_a_source_error_naming_the_operation(estate: Estate) -> None:
    estate.function("orders")
    with FaultProxy(estate.url) as proxy:
        proxy.faults["GET /2015-03-31/functions"] = -1
        adapter = LambdaAdapter(source_config(proxy.url, max_attempts=1))
        with pytest.raises(SourceError, match="list_functions"):
            adapter.discover()


def test_rate_limiter_spaces_requests_to_the_configured_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    limiter = RateLimiter(10, burst=2, clock=lambda: now[0], sleep=sleep)
    for _ in range(12):
        limiter.acquire()
    # Two from the burst, then ten more at 10/s: one simulated second.
    assert now[0] == pytest.approx(1.0)
    assert limiter.waited_s == pytest.approx(1.0)


def test_every_request_of_every_client_goes_through_one_limiter(estate: Estate) -> None:
    _estate_with_one_invocation(estate)
    adapter = LambdaAdapter(source_config(estate.url))
    taken = []
    original = adapter.clients.limiter.acquire

    def counting() -> None:
        taken.append(1)
        original()

    adapter.clients.limiter.acquire = counting  # type: ignore[method-assign]
    adapter.poll(None)
    assert len(taken) == adapter.clients.total_calls > 0
    assert {k.split(".")[0] for k in adapter.clients.calls} >= {
        "lambda",
        "cloudwatch-logs",
        "eventbridge",
        "scheduler",
        "resource-groups-tagging-api",
    }


@pytest.mark.parametrize("bad", [0, -1, "fast"])
def test_bad_rate_option_is_named(bad: object) -> None:
    with pytest.raises(SourceError, match="max_requests_per_s"):
        LambdaAdapter(source_config("http://127.0.0.1:9", max_requests_per_s=bad))
