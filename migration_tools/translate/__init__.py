"""Translate a legacy `JobSpec` into a Kestra flow (YAML text + dict).

`translate(spec)` is pure and deterministic: the same spec, options and
rules give the same `Translation`, byte for byte. Every flow carries the
label `switchyard.job=<source>:<job key>` so its executions are tracked
under the legacy job's identity across the cutover. Values masked when the
job was stored become Kestra secret references or reasons
(`migration_tools.translate.masked`); `Translation.secrets` lists the
secrets the operator must create.
"""

from __future__ import annotations

from gateway.contract import JobSpec
from migration_tools.translate.airflow import translate_dag
from migration_tools.translate.aws_lambda import eventbridge_to_cron, translate_lambda
from migration_tools.translate.cronjob import translate_cronjob
from migration_tools.translate.crontab import translate_crontab
from migration_tools.translate.flow import FlowDraft
from migration_tools.translate.flow_yaml import FlowYamlError, render_flow
from migration_tools.translate.model import (
    PLACEHOLDER_MARK,
    Placeholder,
    Readiness,
    RequiredSecret,
    Translation,
    TranslationError,
)
from migration_tools.translate.rules import RuleError, Rules, default_rules, load_rules
from migration_tools.translate.validate import FlowProblem, FlowValidator, check_flow, validate_flow

DEFAULT_NAMESPACE = "switchyard.migrated"


def translate(
    spec: JobSpec,
    *,
    kestra_version: str = "1",
    namespace: str = DEFAULT_NAMESPACE,
    rules: Rules | None = None,
    local: bool | None = None,
    enable_triggers: bool = False,
) -> Translation:
    """The Kestra flow for `spec`.

    `kestra_version` is "1" (default) or "2"; `local` runs a crontab command on
    the Kestra worker instead of over SSH; triggers are emitted disabled unless
    `enable_triggers` (cutover enables them). Raises `TranslationError` naming
    the job and field when the definition cannot be read.
    """
    rules = rules or default_rules()
    draft = FlowDraft(
        spec=spec,
        namespace=namespace,
        kestra_version=str(kestra_version).split(".")[0],
        enable_triggers=enable_triggers,
    )
    if spec.kind == "dag":
        translate_dag(spec, draft, rules)
    elif spec.kind == "crontab":
        translate_crontab(spec, draft, rules, local=local)
    elif spec.kind == "cronjob":
        translate_cronjob(spec, draft, rules)
    elif spec.kind == "lambda":
        translate_lambda(spec, draft, rules)
    else:
        draft.reason(f"jobs of kind {spec.kind!r} have no translator")
    return draft.build()


__all__ = [
    "DEFAULT_NAMESPACE",
    "PLACEHOLDER_MARK",
    "FlowProblem",
    "FlowValidator",
    "FlowYamlError",
    "Placeholder",
    "Readiness",
    "RequiredSecret",
    "RuleError",
    "Rules",
    "Translation",
    "TranslationError",
    "check_flow",
    "default_rules",
    "eventbridge_to_cron",
    "load_rules",
    "render_flow",
    "translate",
    "validate_flow",
]
