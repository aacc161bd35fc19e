"""Pause and resume what schedules a function (EventBridge rules, Scheduler schedules).

For cutover: `pause(function)` disables every enabled schedule that targets the
function and `resume(function)` enables every disabled one, so a pause followed
by a resume restores a function whose schedules were all enabled. Both are
idempotent. A function that nothing schedules is an error (there is nothing to
hand over), as is an unknown function; both raise `SourceError` naming it.

Rules are found with `events.list_rule_names_by_target` (exact ARN, default
bus); schedules with `scheduler.list_schedules` filtered by target ARN. A
Scheduler schedule is updated by writing back its full definition with the new
state, since `update_schedule` replaces the schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from adapters.aws_lambda.clients import AwsClients, error_code, source_error
from adapters.aws_lambda.normalize import function_arn_base
from gateway.contract import SourceError

# Fields of get_schedule that update_schedule takes back unchanged.
_SCHEDULE_FIELDS = (
    "ScheduleExpression",
    "ScheduleExpressionTimezone",
    "FlexibleTimeWindow",
    "Target",
    "StartDate",
    "EndDate",
    "Description",
    "KmsKeyArn",
    "ActionAfterCompletion",
)


@dataclass(frozen=True)
class ScheduleRef:
    via: str  # eventbridge_rule | scheduler
    name: str
    group: str
    enabled: bool


def _call(clients: AwsClients, doing: str, fn: Any, **kwargs: Any) -> Any:
    try:
        return fn(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        raise source_error(clients.source, exc, doing) from exc


def schedules_of(clients: AwsClients, function: str) -> list[ScheduleRef]:
    try:
        arn = clients.lambda_.get_function(FunctionName=function)["Configuration"]["FunctionArn"]
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise SourceError(
                clients.source, f"no Lambda function {function!r}", retryable=False
            ) from exc
        raise source_error(clients.source, exc, f"looking up function {function}") from exc
    except BotoCoreError as exc:
        raise source_error(clients.source, exc, f"looking up function {function}") from exc
    arn = function_arn_base(arn)
    found: list[ScheduleRef] = []
    names: list[str] = []
    kwargs: dict[str, Any] = {"TargetArn": arn}
    while True:
        page = _call(clients, "listing rules", clients.events.list_rule_names_by_target, **kwargs)
        names.extend(page.get("RuleNames", []))
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    for name in names:
        rule = _call(clients, f"describing rule {name}", clients.events.describe_rule, Name=name)
        if rule.get("ScheduleExpression"):
            found.append(
                ScheduleRef("eventbridge_rule", name, "default", rule.get("State") == "ENABLED")
            )
    try:
        for page in clients.scheduler.get_paginator("list_schedules").paginate():
            for s in page.get("Schedules", []):
                if function_arn_base((s.get("Target") or {}).get("Arn", "")) == arn:
                    found.append(
                        ScheduleRef(
                            "scheduler",
                            s["Name"],
                            s.get("GroupName", "default"),
                            s.get("State") == "ENABLED",
                        )
                    )
    except (ClientError, BotoCoreError) as exc:
        raise source_error(clients.source, exc, "listing schedules") from exc
    return found


def set_schedules_enabled(clients: AwsClients, function: str, enabled: bool) -> list[ScheduleRef]:
    """Enable or disable every schedule of `function`; return those changed."""
    schedules = schedules_of(clients, function)
    if not schedules:
        raise SourceError(
            clients.source,
            f"function {function!r} has no EventBridge rule or Scheduler schedule to "
            f"{'resume' if enabled else 'pause'}",
            retryable=False,
        )
    changed = []
    for ref in schedules:
        if ref.enabled == enabled:
            continue
        if ref.via == "eventbridge_rule":
            op = clients.events.enable_rule if enabled else clients.events.disable_rule
            _call(clients, f"switching rule {ref.name}", op, Name=ref.name)
        else:
            current = _call(
                clients,
                f"reading schedule {ref.name}",
                clients.scheduler.get_schedule,
                Name=ref.name,
                GroupName=ref.group,
            )
            body = {k: current[k] for k in _SCHEDULE_FIELDS if current.get(k) is not None}
            _call(
                clients,
                f"switching schedule {ref.name}",
                clients.scheduler.update_schedule,
                Name=ref.name,
                GroupName=ref.group,
                State="ENABLED" if enabled else "DISABLED",
                **body,
            )
        changed.append(ref)
    return changed
