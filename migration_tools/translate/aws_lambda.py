"""Lambda function + EventBridge rule(s) `JobSpec` → `Schedule` + `aws.lambda.Invoke`.

Reads `definition.function` (`FunctionName`/`FunctionArn`, optional region
from the ARN) and `definition.rules` (`Name`, `ScheduleExpression`, `State`,
`Targets[].Input`). Each schedule rule becomes one Schedule trigger;
EventBridge `cron()` (6 fields, `?`, Sunday = 1) and `rate()` are converted
to five-field cron where an exact equivalent exists, and named otherwise.
"""

from __future__ import annotations

import json
import re
from typing import Any

from gateway.contract import JobSpec
from migration_tools.translate.flow import FlowDraft, task_id_for
from migration_tools.translate.model import TranslationError
from migration_tools.translate.rules import Rules

_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.+)\)$")
_NUM = re.compile(r"\d+")


def _dow(field: str) -> str | None:
    """EventBridge day-of-week (1-7, Sunday = 1) → cron (0-6, Sunday = 0)."""
    if any(c in field for c in "L#W"):
        return None
    return _NUM.sub(lambda m: str((int(m.group(0)) - 1) % 7), field)


def eventbridge_to_cron(expression: str) -> str | None:
    """Five-field cron for an EventBridge schedule expression, or None if none is exact."""
    text = expression.strip()
    m = _RATE.match(text)
    if m:
        n, unit = int(m.group(1)), m.group(2).rstrip("s")
        if unit == "minute" and n > 0 and 60 % n == 0:
            return "* * * * *" if n == 1 else f"*/{n} * * * *"
        if unit == "hour" and n > 0 and 24 % n == 0:
            return "0 * * * *" if n == 1 else f"0 */{n} * * *"
        if unit == "day" and n == 1:
            return "0 0 * * *"
        return None
    m = _CRON.match(text)
    if not m:
        return None
    fields = m.group(1).split()
    if len(fields) != 6 or fields[5] not in ("*", "?"):
        return None
    minute, hour, dom, month, dow, _year = fields
    if any(c in dom for c in "LW#"):
        return None
    dow_cron = "*" if dow == "?" else _dow(dow)
    if dow_cron is None:
        return None
    return " ".join([minute, hour, "*" if dom == "?" else dom, month, dow_cron])


def _region(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[3] if len(parts) > 4 and parts[0] == "arn" and parts[3] else None


def translate_lambda(spec: JobSpec, draft: FlowDraft, rules: Rules) -> None:
    function = spec.definition.get("function") or {}
    if not isinstance(function, dict):
        raise TranslationError(spec.key, "definition.function", "must be a mapping")
    target = function.get("FunctionArn") or function.get("FunctionName") or spec.name
    if not target:
        raise TranslationError(
            spec.key, "definition.function.FunctionName", "a Lambda job needs its function"
        )
    draft.description = f"AWS Lambda {function.get('FunctionName') or target}"
    rule = rules.job("lambda")
    task: dict[str, Any] = {"id": task_id_for("invoke"), "type": rule.type, "functionArn": target}
    region = _region(str(target))
    if region:
        task["region"] = region

    schedule_rules = spec.definition.get("rules") or []
    if not isinstance(schedule_rules, list):
        raise TranslationError(spec.key, "definition.rules", "must be a list of rules")
    payloads: set[str] = set()
    for i, raw in enumerate(schedule_rules):
        if not isinstance(raw, dict) or not raw.get("ScheduleExpression"):
            name = raw.get("Name", i) if isinstance(raw, dict) else i
            draft.reason(f"rule {name} is an event-pattern rule; Kestra has no matching trigger")
            continue
        name = str(raw.get("Name") or f"rule_{i}")
        for t in raw.get("Targets") or []:
            if isinstance(t, dict) and t.get("Input"):
                payloads.add(str(t["Input"]))
            elif isinstance(t, dict) and (t.get("InputPath") or t.get("InputTransformer")):
                draft.reason(f"rule {name} shapes the event (InputPath/InputTransformer)")
        expr = str(raw["ScheduleExpression"])
        cron = eventbridge_to_cron(expr)
        if expr.startswith("rate(") and cron:
            draft.note(f"rule {name}: {expr} fires from rule creation; {cron!r} fires on the clock")
        before = len(draft.triggers)
        draft.schedule_trigger(task_id_for(f"schedule_{name}"), cron, "UTC", expr)
        if raw.get("State") == "DISABLED" and len(draft.triggers) > before:
            draft.note(f"rule {name} is DISABLED at the source")
    if not schedule_rules and (spec.schedule or spec.schedule_native):
        draft.schedule_trigger(
            "schedule",
            spec.schedule or eventbridge_to_cron(spec.schedule_native or ""),
            spec.timezone,
            spec.schedule_native,
        )
    if len(payloads) > 1:
        draft.reason("rules send different constant inputs; one Invoke carries one payload")
    elif payloads:
        (text,) = payloads
        try:
            payload = json.loads(text)
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            task["functionPayload"] = payload
        else:
            draft.reason("the rule's constant input is not a JSON object")
    for key, value in rule.set.items():
        task.setdefault(key, value)
    timeout = function.get("Timeout")
    if isinstance(timeout, int | float) and timeout > 0:
        draft.note(f"function timeout {timeout}s stays with the function")
    draft.tasks.append(task)
    draft.translated_work += 1
