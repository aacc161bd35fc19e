"""Pieces every translator shares: ids, durations, labels, triggers, YAML.

`FlowDraft` collects the tasks and the verdicts (reasons, notes,
placeholders) of one translation and turns them into a `Translation` with a
fixed key order, so the same input always renders the same YAML text. The
text comes from `flow_yaml.render_flow` after `pebble.safe_flow` has made
every string taken from the job literal for Kestra's renderer.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from gateway.contract import JobSpec
from gateway.inline_secrets import MASKED
from migration_tools.translate.flow_yaml import render_flow
from migration_tools.translate.masked import reference_masked
from migration_tools.translate.model import (
    PLACEHOLDER_MARK,
    Placeholder,
    Readiness,
    Translation,
)
from migration_tools.translate.pebble import safe_flow

FLOW_ID_MAX = 100
NAMESPACE_MAX = 150
SCHEDULE_TYPE = "io.kestra.plugin.core.trigger.Schedule"
LOG_TYPE = "io.kestra.plugin.core.log.Log"
CRON_MACROS = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
KESTRA_VERSIONS = frozenset({"1", "2"})

_FLOW_ID_BAD = re.compile(r"[^a-zA-Z0-9._-]+")
_TASK_ID_BAD = re.compile(r"[^a-zA-Z0-9_-]+")
_LABEL_KEY_BAD = re.compile(r"[^a-z0-9._-]+")
NAMESPACE_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{text[: limit - 9]}_{digest}"


def flow_id_for(name: str) -> str:
    """A Kestra flow id (`^[a-zA-Z0-9][a-zA-Z0-9._-]*`, ≤100) derived from a job name."""
    cleaned = _FLOW_ID_BAD.sub("_", name).strip("._-") or "job"
    return _shorten(cleaned, FLOW_ID_MAX)


def task_id_for(name: str) -> str:
    """A Kestra task id (`^[a-zA-Z0-9][a-zA-Z0-9_-]*`): Airflow's dots become `_`."""
    cleaned = _TASK_ID_BAD.sub("_", name).strip("_-") or "task"
    return _shorten(cleaned, 256)


def label_key_for(name: str) -> str:
    """A Kestra label key: lower case, starting with a letter."""
    cleaned = _LABEL_KEY_BAD.sub("_", name.lower()).strip("._-")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = f"l_{cleaned}" if cleaned else "label"
    return cleaned


def iso_duration(seconds: float) -> str:
    """`PT1H30M`-style ISO-8601 duration; sub-second parts keep millisecond precision."""
    if seconds < 0:
        raise ValueError(f"negative duration {seconds}")
    whole = int(seconds)
    frac = round(seconds - whole, 3)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    out = "P" + (f"{days}D" if days else "")
    time = ""
    if hours:
        time += f"{hours}H"
    if minutes:
        time += f"{minutes}M"
    if secs or frac:
        time += f"{secs + frac:g}S" if frac else f"{secs}S"
    if time:
        out += "T" + time
    return out if out != "P" else "PT0S"


_HMS = re.compile(r"^(?:(\d+) days?, )?(\d+):(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")
_ISO = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$", re.IGNORECASE)


def seconds_of(value: Any) -> float | None:
    """Seconds from a number, `H:MM:SS` (Python timedelta str) or ISO-8601 duration."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        m = _HMS.match(text)
        if m:
            d, h, mi, s = m.groups()
            return int(d or 0) * 86400 + int(h) * 3600 + int(mi) * 60 + float(s)
        m = _ISO.match(text)
        if m and text.upper() not in ("P", "PT"):
            d, h, mi, s = m.groups()
            return int(d or 0) * 86400 + int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0)
        try:
            return float(text)
        except ValueError:
            return None
    return None


def split_cron_tz(expr: str) -> tuple[str, str | None]:
    """`CRON_TZ=Europe/Paris 0 2 * * *` → (`0 2 * * *`, `Europe/Paris`)."""
    text = expr.strip()
    for prefix in ("CRON_TZ=", "TZ="):
        if text.startswith(prefix):
            tz, _, rest = text[len(prefix) :].partition(" ")
            return rest.strip(), tz
    return text, None


def kestra_cron(expr: str | None) -> str | None:
    """A cron Kestra's Schedule accepts (five fields or an @-macro), else None."""
    if not expr:
        return None
    text = expr.strip()
    if text in CRON_MACROS:
        return text
    return text if len(text.split()) == 5 else None


@dataclass
class FlowDraft:
    """One flow being built, with everything said about it along the way."""

    spec: JobSpec
    namespace: str
    kestra_version: str
    enable_triggers: bool = False
    description: str | None = None
    tasks: list[dict[str, Any]] = field(default_factory=list)
    triggers: list[dict[str, Any]] = field(default_factory=list)
    sla: list[dict[str, Any]] = field(default_factory=list)
    concurrency: dict[str, Any] | None = None
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    placeholders: list[Placeholder] = field(default_factory=list)
    translated_work: int = 0
    flow_id: str = ""

    def __post_init__(self) -> None:
        if self.kestra_version not in KESTRA_VERSIONS:
            raise ValueError(f"kestra_version must be '1' or '2', got {self.kestra_version!r}")
        if len(self.namespace) > NAMESPACE_MAX or not NAMESPACE_RE.match(self.namespace):
            raise ValueError(
                f"namespace {self.namespace!r} must match ^[a-z0-9][a-z0-9._-]* (≤150 chars)"
            )
        self.flow_id = flow_id_for(self.spec.name or self.spec.key)

    def reason(self, text: str) -> None:
        if text not in self.reasons:
            self.reasons.append(text)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def placeholder(
        self, task_id: str, original_type: str, reason: str, original: Any
    ) -> dict[str, Any]:
        """A marked Log task carrying the original definition; never a guess."""
        self.placeholders.append(Placeholder(task_id, original_type, reason))
        self.reason(f"task {task_id} ({original_type}) is a placeholder: {reason}")
        return {
            "id": task_id,
            "type": LOG_TYPE,
            "description": (
                f"{PLACEHOLDER_MARK}: {reason}. Original definition:\n"
                + json.dumps(original, indent=2, sort_keys=True, default=str)
            ),
            "message": f"{PLACEHOLDER_MARK}: {original_type} was not translated ({reason})",
        }

    def schedule_trigger(
        self,
        trigger_id: str,
        cron: str | None,
        timezone: str | None,
        native: str | None,
        *,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Add a Schedule trigger, or say why the schedule could not be carried."""
        usable = kestra_cron(cron) or kestra_cron(native)
        if usable is None:
            if cron or native:
                self.reason(
                    f"schedule {native or cron!r} has no Kestra cron equivalent; "
                    "the flow has no trigger"
                )
            return
        trigger: dict[str, Any] = {"id": trigger_id, "type": SCHEDULE_TYPE, "cron": usable}
        # Always explicit: Kestra's default is the server's own zone, not UTC,
        # and a legacy UTC schedule (EventBridge, most crontabs) must stay UTC.
        trigger["timezone"] = timezone or "UTC"
        trigger.update(extra or {})
        if not self.enable_triggers:
            # A deployed translation must not double-run a job the legacy
            # scheduler still runs; cutover enables the trigger.
            trigger["disabled"] = True
        self.triggers.append(trigger)

    @property
    def readiness(self) -> Readiness:
        if self.translated_work == 0:
            return "none"
        return "partial" if self.reasons else "full"

    def labels(self) -> dict[str, str]:
        labels: dict[str, str] = {}
        for key, value in sorted(self.spec.labels.items(), key=lambda kv: label_key_for(kv[0])):
            clean = label_key_for(key)
            if clean.startswith("system.") or clean.startswith("switchyard."):
                self.note(f"label {key!r} uses a reserved prefix and was renamed to l_{clean}")
                clean = f"l_{clean}"
            if clean != key:
                self.note(f"label {key!r} renamed to {clean!r} (Kestra label key rules)")
            if str(value):
                labels[clean] = str(value)
        if self.spec.owner:
            labels.setdefault("owner", self.spec.owner)
        labels["switchyard.job"] = f"{self.spec.source}:{self.spec.key}"
        labels["switchyard.kind"] = self.spec.kind
        labels["switchyard.readiness"] = self.readiness
        return labels

    def build(self) -> Translation:
        if not self.tasks:
            self.tasks.append(
                self.placeholder(
                    "nothing", self.spec.kind, "no work was translated", self.spec.definition
                )
            )
        self.tasks, secrets = reference_masked(self.tasks, self.flow_id)
        for secret in secrets:
            if secret.referenced:
                self.note(
                    f"create Kestra secret {secret.name}: {secret.where} was masked when the "
                    "job was stored and is read from that secret"
                )
            else:
                self.reason(
                    f"{secret.where} holds a credential masked when the job was stored; "
                    f"create Kestra secret {secret.name} and put "
                    f"{{{{ secret('{secret.name}') }}}} in place of {MASKED}"
                )
        readiness = self.readiness
        flow: dict[str, Any] = {"id": self.flow_id, "namespace": self.namespace}
        description = self.description or f"Translated by Switchyard from {self.spec.kind} job"
        flow["description"] = f"{description}\nLegacy job: {self.spec.source}:{self.spec.key}"
        flow["labels"] = self.labels()
        if readiness != "full":
            # A flow with placeholders must not run and "succeed" without
            # doing the work; Kestra refuses executions of a disabled flow.
            flow["disabled"] = True
        if self.concurrency:
            flow["concurrency"] = self.concurrency
        if self.sla:
            flow["sla"] = self.sla
        flow["tasks"] = self.tasks
        if self.triggers:
            flow["triggers"] = self.triggers
        flow = safe_flow(flow)
        text = render_flow(flow, comment=self._comment(readiness))
        return Translation(
            source=self.spec.source,
            job_key=self.spec.key,
            flow_id=self.flow_id,
            namespace=self.namespace,
            kestra_version=self.kestra_version,
            flow=flow,
            yaml_text=text,
            readiness=readiness,
            reasons=tuple(self.reasons),
            placeholders=tuple(self.placeholders),
            notes=tuple(self.notes),
            secrets=tuple(secrets),
        )

    def _comment(self, readiness: Readiness) -> str:
        lines = [
            f"Generated by Switchyard from {self.spec.kind} {self.spec.source}:{self.spec.key}",
            f"Target: Kestra {self.kestra_version}.x; readiness: {readiness}",
        ]
        lines += [f"REVIEW: {r}" for r in self.reasons]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)
