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


def test_a_rule_and_schedule_disabled_by_their_owner_stay_disabled_after_resume(
    estate: Estate, adapter: LambdaAdapter
) -> None:
    arn = estate.function("orders")
    estate.rule("orders-hourly", "rate(1 hour)", arn)
    estate.rule("orders-retired", "rate(5 minutes)", arn, enabled=False)
    estate.schedule("orders-nightly", "cron(0 2 * * ? *)", arn)
    estate.client("scheduler").create_schedule(
        Name="orders-old",
        ScheduleExpression="rate(1 day)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": arn, "RoleArn": estate.role()},
        State="DISABLED",
    )
    receipt = adapter.pause("orders")
    assert receipt == {
        "rules": ["orders-hourly"],
        "schedules": [{"group": "default", "name": "orders-nightly"}],
    }
    assert set(states(estate).values()) == {"DISABLED"}
    adapter.resume("orders", receipt)
    assert states(estate) == {
        "rule/orders-hourly": "ENABLED",
        "rule/orders-retired": "DISABLED",
        "schedule/orders-nightly": "ENABLED",
        "schedule/orders-old": "DISABLED",
    }


def test_pausing_twice_receipts_nothing_the_second_time_and_its_resume_changes_nothing(
    estate: Estate, adapter: LambdaAdapter
) -> None:
    arn = estate.function("orders")
    estate.rule("orders-hourly", "rate(1 hour)", arn)
    first = adapter.pause("orders")
    second = adapter.pause("orders")
    assert second == {"rules": [], "schedules": []}
    adapter.resume("orders", second)
    assert states(estate) == {"rule/orders-hourly": "DISABLED"}
    adapter.resume("orders", first)
    assert states(estate) == {"rule/orders-hourly": "ENABLED"}


def test_resume_without_a_receipt_enables_every_schedule_of_the_function(
    estate: Estate, adapter: LambdaAdapter
) -> None:
    arn = estate.function("orders")
    estate.rule("orders-retired", "rate(5 minutes)", arn, enabled=False)
    adapter.resume("orders")
    assert states(estate) == {"rule/orders-retired": "ENABLED"}


def test_a_receipt_listing_a_rule_deleted_since_resumes_the_rest(
    estate: Estate, adapter: LambdaAdapter
) -> None:
    arn = estate.function("orders")
    estate.rule("orders-hourly", "rate(1 hour)", arn)
    estate.rule("orders-daily", "rate(1 day)", arn)
    receipt = adapter.pause("orders")
    events = estate.client("events")
    events.remove_targets(Rule="orders-daily", Ids=["fn"])
    events.delete_rule(Name="orders-daily")
    adapter.resume("orders", receipt)
    assert states(estate) == {"rule/orders-hourly": "ENABLED"}


@pytest.mark.parametrize(
    ("receipt", "field"),
    [
        (["orders-hourly"], "must be an object"),
        ({"rules": "orders-hourly"}, "'rules' must be a list"),
        ({"rules": [], "schedules": [{"group": "default"}]}, "'schedules' must be a list"),
    ],
)
def test_a_malformed_receipt_is_an_error_naming_the_field_and_changes_nothing(
    estate: Estate, adapter: LambdaAdapter, receipt: object, field: str
) -> None:
    arn = estate.function("orders")
    estate.rule("orders-hourly", "rate(1 hour)", arn, enabled=False)
    with pytest.raises(SourceError, match=field) as info:
        adapter.resume("orders", receipt)  # type: ignore[arg-type]  # malformed on purpose
    assert not info.value.retryable
    assert states(estate) == {"rule/orders-hourly": "DISABLED"}
