"""Discovery: every Lambda function, what schedules it, and where it logs.

Call economy (the requests per discovery, with F functions, R scheduled
EventBridge rules and S Scheduler schedules that target a function):

* `lambda.list_functions`: ceil(F / 50) pages — runtime, memory, timeout,
  LoggingConfig (hence the log group) come with the list;
* `tag.get_resources` (Resource Groups Tagging API): ceil(F / 100) pages for
  every function's tags, instead of F `lambda.list_tags` calls;
* `events.list_rules` on the default bus (the only bus that accepts schedule
  expressions) + one `list_targets_by_rule` per scheduled rule: R + pages,
  instead of F `list_rule_names_by_target` + R `describe_rule` calls;
* `scheduler.list_schedules` + one `get_schedule` per schedule that targets a
  function (the summary carries the target but not the expression);
* one `lambda.get_function_event_invoke_config` per function (destinations and
  async retry settings have no bulk read); `options.destinations: false`
  skips them.

Any AWS failure is raised as `SourceError` naming the operation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from adapters.aws_lambda.clients import AwsClients, error_code, source_error
from adapters.aws_lambda.normalize import (
    function_arn_base,
    function_job,
    log_group_of,
    schedule_record,
)
from gateway.contract import JobSpec


@dataclass(frozen=True)
class Discovery:
    """One discovery's result: the jobs, and each function's log group."""

    jobs: list[JobSpec]
    log_groups: dict[str, str]  # function name -> log group


def _pages(
    clients: AwsClients, client: Any, operation: str, key: str, **kwargs: Any
) -> Iterator[Any]:
    try:
        for page in client.get_paginator(operation).paginate(**kwargs):
            yield from page.get(key, [])
    except (ClientError, BotoCoreError) as exc:
        raise source_error(clients.source, exc, f"calling {operation}") from exc


def list_functions(clients: AwsClients) -> list[dict[str, Any]]:
    return list(_pages(clients, clients.lambda_, "list_functions", "Functions"))


def function_tags(clients: AwsClients) -> dict[str, dict[str, str]]:
    """Tags of every function, keyed by function ARN."""
    tags: dict[str, dict[str, str]] = {}
    for item in _pages(
        clients,
        clients.tagging,
        "get_resources",
        "ResourceTagMappingList",
        ResourceTypeFilters=["lambda:function"],
    ):
        tags[function_arn_base(item["ResourceARN"])] = {
            t["Key"]: t["Value"] for t in item.get("Tags", [])
        }
    return tags


def rule_schedules(clients: AwsClients, arns: set[str]) -> dict[str, list[dict[str, Any]]]:
    """Scheduled EventBridge rules per function ARN."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rule in _pages(clients, clients.events, "list_rules", "Rules"):
        expression = rule.get("ScheduleExpression")
        if not expression:
            continue
        for target in _pages(
            clients,
            clients.events,
            "list_targets_by_rule",
            "Targets",
            Rule=rule["Name"],
            EventBusName=rule.get("EventBusName", "default"),
        ):
            arn = function_arn_base(target.get("Arn", ""))
            if arn in arns:
                found[arn].append(
                    schedule_record(
                        via="eventbridge_rule",
                        name=rule["Name"],
                        expression=expression,
                        state=rule.get("State", "ENABLED"),
                        arn=rule.get("Arn"),
                        group=rule.get("EventBusName", "default"),
                    )
                )
    return found


def scheduler_schedules(clients: AwsClients, arns: set[str]) -> dict[str, list[dict[str, Any]]]:
    """EventBridge Scheduler schedules per function ARN."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for summary in _pages(clients, clients.scheduler, "list_schedules", "Schedules"):
        arn = function_arn_base((summary.get("Target") or {}).get("Arn", ""))
        if arn not in arns:
            continue
        group = summary.get("GroupName", "default")
        try:
            detail = clients.scheduler.get_schedule(Name=summary["Name"], GroupName=group)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                continue  # deleted between list and get
            raise source_error(clients.source, exc, "calling get_schedule") from exc
        except BotoCoreError as exc:
            raise source_error(clients.source, exc, "calling get_schedule") from exc
        found[arn].append(
            schedule_record(
                via="scheduler",
                name=summary["Name"],
                expression=detail["ScheduleExpression"],
                state=detail.get("State", "ENABLED"),
                arn=detail.get("Arn"),
                group=group,
                timezone=detail.get("ScheduleExpressionTimezone"),
            )
        )
    return found


def invoke_config(clients: AwsClients, name: str) -> dict[str, Any] | None:
    """A function's destinations and async retry settings, or None if it has none."""
    try:
        found: dict[str, Any] = clients.lambda_.get_function_event_invoke_config(FunctionName=name)
        return found
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise source_error(clients.source, exc, f"reading destinations of {name}") from exc
    except BotoCoreError as exc:
        raise source_error(clients.source, exc, f"reading destinations of {name}") from exc


def discover(
    clients: AwsClients,
    *,
    source: str,
    destinations: bool = True,
    scheduler: bool = True,
) -> Discovery:
    functions = list_functions(clients)
    arns = {function_arn_base(f["FunctionArn"]) for f in functions}
    tags = function_tags(clients)
    schedules = rule_schedules(clients, arns)
    if scheduler:
        for arn, records in scheduler_schedules(clients, arns).items():
            schedules[arn].extend(records)
    jobs = []
    for fn in sorted(functions, key=lambda f: f["FunctionName"]):
        arn = function_arn_base(fn["FunctionArn"])
        jobs.append(
            function_job(
                fn,
                source=source,
                tags=tags.get(arn),
                schedules=schedules.get(arn, ()),
                invoke_config=invoke_config(clients, fn["FunctionName"]) if destinations else None,
                region=clients.region,
            )
        )
    return Discovery(jobs=jobs, log_groups={f["FunctionName"]: log_group_of(f) for f in functions})
