"""Pausing and resuming a function's schedules for cutover, against moto."""

from __future__ import annotations

import pytest

from adapters.aws_lambda import LambdaAdapter
from gateway.contract import SourceError
from tests.adapters.aws_lambda.conftest import Estate


def states(estate: Estate) -> dict[str, str]:
    events, scheduler = estate.client("events"), estate.client("scheduler")
    out = {f"rule/{r['Name']}": r["State"] for r in events.list_rules()["Rules"]}
    for s in scheduler.list_schedules()["Schedules"]:
        out[f"schedule/{s['Name']}"] = s["State"]
    return out


def test_pause_disables_rules_and_schedules_and_resume_restores_them(
    estate: Estate, adapter: LambdaAdapter
) -> None:
    arn = estate.function("orders")
    other = estate.function("other")
    estate.rule("orders-hourly", "rate(1 hour)", arn)
    estate.schedule("orders-nightly", "cron(0 2 * * ? *)", arn, timezone="Europe/Berlin")
    estate.rule("other-hourly", "rate(1 hour)", other)
    adapter.pause("orders")
    assert states(estate) == {
        "rule/orders-hourly": "DISABLED",
        "schedule/orders-nightly": "DISABLED",
        "rule/other-hourly": "ENABLED",
    }
    (job,) = [j for j in adapter.discover() if j.key == "orders"]
    assert job.paused
    detail = estate.client("scheduler").get_schedule(Name="orders-nightly")
    assert detail["ScheduleExpression"] == "cron(0 2 * * ? *)"
    assert detail["ScheduleExpressionTimezone"] == "Europe/Berlin"  # rewritten intact
    adapter.pause("orders")  # idempotent
    adapter.resume("orders")
    assert set(states(estate).values()) == {"ENABLED"}
    assert not next(j for j in adapter.discover() if j.key == "orders").paused


def test_pausing_an_unscheduled_function_is_an_error_naming_it(
    estate: Estate, adapter: LambdaAdapter
) -> None:
    estate.function("adhoc")
    with pytest.raises(SourceError, match="'adhoc' has no EventBridge rule"):
        adapter.pause("adhoc")


def test_pausing_an_unknown_function_is_an_error_naming_it(adapter: LambdaAdapter) -> None:
    with pytest.raises(SourceError, match="no Lambda function 'ghost'") as info:
        adapter.pause("ghost")
    assert info.value.source == "lambda-test" and not info.value.retryable
