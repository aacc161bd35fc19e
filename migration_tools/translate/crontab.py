"""crontab line `JobSpec` → `Schedule` + `ssh.Command` (or shell `Commands`).

Reads `definition`: `command` (required), `host`, `user`, and `local` (run on
the Kestra worker instead of over SSH; also settable per call). The schedule
comes from `JobSpec.schedule`, else the line's own expression (`@daily`,
`CRON_TZ=…` prefixes are understood); `@reboot` has no Kestra counterpart.
"""

from __future__ import annotations

from typing import Any

from gateway.contract import JobSpec
from migration_tools.translate.flow import FlowDraft, split_cron_tz, task_id_for
from migration_tools.translate.model import TranslationError
from migration_tools.translate.rules import Rules


def translate_crontab(spec: JobSpec, draft: FlowDraft, rules: Rules, *, local: bool | None) -> None:
    definition = spec.definition
    command = definition.get("command")
    if not isinstance(command, str) or not command.strip():
        raise TranslationError(spec.key, "definition.command", "a crontab job needs its command")
    run_local = bool(definition.get("local")) if local is None else local
    host = definition.get("host")
    user = definition.get("user")
    draft.description = f"crontab line on {host or 'a cron host'}" + (f" as {user}" if user else "")
    if "%" in command.replace("\\%", ""):
        # cron turns an unescaped % into a newline and feeds the rest as stdin.
        draft.reason("command has an unescaped % (cron stdin/newline); translate it by hand")
    if run_local:
        rule = rules.job("crontab_local")
        task: dict[str, Any] = {"id": task_id_for("command"), "type": rule.type}
        task["commands"] = [command]
    else:
        if not host:
            raise TranslationError(
                spec.key, "definition.host", "an SSH translation needs the host (or local: true)"
            )
        rule = rules.job("crontab_remote")
        task = {"id": task_id_for("command"), "type": rule.type, "host": str(host)}
        if user:
            task["username"] = str(user)
        task["commands"] = [command]
    for key, value in rule.set.items():
        task.setdefault(key, value)
    draft.tasks.append(task)
    draft.translated_work += 1

    expr, line_tz = split_cron_tz(spec.schedule or spec.schedule_native or "")
    native_expr, native_tz = split_cron_tz(spec.schedule_native or "")
    timezone = line_tz or native_tz or spec.timezone
    if native_expr == "@reboot":
        draft.reason("@reboot runs at host start; Kestra has no such trigger")
        return
    draft.schedule_trigger("schedule", expr or None, timezone, native_expr or None)
