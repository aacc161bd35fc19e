"""Pause and resume what schedules a function (EventBridge rules, Scheduler schedules).

For cutover: `pause_schedules(function)` disables every enabled schedule that
targets the function and returns a receipt naming exactly those
(`{"rules": [...], "schedules": [{"group", "name"}]}`); a schedule already
disabled (its owner's decision) is left alone and left out. `resume_schedules`
with that receipt enables exactly what it lists, so a schedule disabled before
the pause stays disabled; without a receipt it enables every disabled schedule
of the function (the old "resume everything", for callers that have none).
Both are idempotent. A pause that fails part-way enables again what it had
already disabled before raising, so it changes nothing. A function that
nothing schedules is an error on pause and on receipt-less resume (there is
nothing to hand over), as is an unknown function; both raise `SourceError`
naming it. A malformed receipt is a `SourceError` naming the field; a listed
rule or schedule deleted since is skipped (there is nothing left to resume).

Rules are found with `events.list_rule_names_by_target` (exact ARN, default
bus); schedules with `scheduler.list_schedules` filtered by target ARN. A
Scheduler schedule is updated by writing back its full definition with the new
state, since `update_schedule` replaces the schedule.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from adapters.aws_lambda.clients import AwsClients, error_code, source_error
from adapters.aws_lambda.normalize import function_arn_base
from gateway.contract import ControlReceipt, SourceError

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


def _switch(clients: AwsClients, ref: ScheduleRef, enabled: bool) -> None:
    if ref.via == "eventbridge_rule":
        op = clients.events.enable_rule if enabled else clients.events.disable_rule
        _call(clients, f"switching rule {ref.name}", op, Name=ref.name)
        return
    current = _call(
        clients,
        f"reading schedule {ref.name}",
        clients.scheduler.get_schedule,
        Name=ref.name,
        GroupName=ref.group,
    )
    state = "ENABLED" if enabled else "DISABLED"
    if current.get("State") == state:
        return
    body = {k: current[k] for k in _SCHEDULE_FIELDS if current.get(k) is not None}
    _call(
        clients,
        f"switching schedule {ref.name}",
        clients.scheduler.update_schedule,
        Name=ref.name,
        GroupName=ref.group,
        State=state,
        **body,
    )


def _no_schedules(clients: AwsClients, function: str, doing: str) -> SourceError:
    return SourceError(
        clients.source,
        f"function {function!r} has no EventBridge rule or Scheduler schedule to {doing}",
        retryable=False,
    )


def set_schedules_enabled(clients: AwsClients, function: str, enabled: bool) -> list[ScheduleRef]:
    """Enable or disable every schedule of `function`; return those changed.

    A failure part-way switches back what this call had already switched.
    """
    schedules = schedules_of(clients, function)
    if not schedules:
        raise _no_schedules(clients, function, "resume" if enabled else "pause")
    changed: list[ScheduleRef] = []
    try:
        for ref in schedules:
            if ref.enabled == enabled:
                continue  # already so: not ours to change, nor to undo later
            _switch(clients, ref, enabled)
            changed.append(ref)
    except SourceError:
        for ref in reversed(changed):
            with suppress(SourceError):  # the original error is the one to report
                _switch(clients, ref, not enabled)
        raise
    return changed


def receipt_of(changed: list[ScheduleRef]) -> ControlReceipt:
    """The receipt of a pause: the rules and schedules it disabled."""
    return {
        "rules": [r.name for r in changed if r.via == "eventbridge_rule"],
        "schedules": [{"group": r.group, "name": r.name} for r in changed if r.via == "scheduler"],
    }


def pause_schedules(clients: AwsClients, function: str) -> ControlReceipt:
    """Disable the function's enabled schedules; the receipt lists exactly those."""
    return receipt_of(set_schedules_enabled(clients, function, enabled=False))


def refs_in_receipt(source: str, function: str, receipt: Any) -> list[ScheduleRef]:
    """The schedules a pause receipt lists; `SourceError` naming the field if malformed."""

    def bad(what: str) -> SourceError:
        return SourceError(
            source, f"resume receipt for {function!r}: {what}; nothing was changed", retryable=False
        )

    if not isinstance(receipt, dict):
        raise bad("must be an object with 'rules' and 'schedules'")
    rules = receipt.get("rules", [])
    schedules = receipt.get("schedules", [])
    if not isinstance(rules, list) or not all(isinstance(r, str) and r for r in rules):
        raise bad("'rules' must be a list of rule names")
    if not isinstance(schedules, list) or not all(
        isinstance(s, dict)
        and isinstance(s.get("name"), str)
        and s["name"]
        and isinstance(s.get("group", "default"), str)
        for s in schedules
    ):
        raise bad("'schedules' must be a list of {group, name}")
    refs = [ScheduleRef("eventbridge_rule", name, "default", False) for name in rules]
    refs += [
        ScheduleRef("scheduler", s["name"], s.get("group") or "default", False) for s in schedules
    ]
    return refs


def resume_schedules(
    clients: AwsClients, function: str, receipt: ControlReceipt | None = None
) -> None:
    """Enable what `receipt` lists, or (no receipt) every disabled schedule of the function."""
    if receipt is None:
        set_schedules_enabled(clients, function, enabled=True)
        return
    for ref in refs_in_receipt(clients.source, function, receipt):
        try:
            _switch(clients, ref, enabled=True)
        except SourceError as exc:
            if isinstance(exc.__cause__, ClientError) and (
                error_code(exc.__cause__) == "ResourceNotFoundException"
            ):
                continue  # deleted since the pause: nothing left to resume
            raise
