"""What a translation produces: the flow, how ready it is, and why.

A `Translation` is a value: the same `JobSpec`, options and rules always give
an equal `Translation` (same YAML text byte for byte), so it can be stored,
diffed and compared across runs. Readiness is `full` when every part of the
job has a rule, `partial` when some part became a placeholder or needs a
human decision (each listed in `reasons`), and `none` when nothing of the
job's work could be translated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Readiness = Literal["full", "partial", "none"]

PLACEHOLDER_MARK = "switchyard.placeholder"


class TranslationError(ValueError):
    """The job definition cannot be read; names the job and the field."""

    def __init__(self, job: str, field_name: str, message: str) -> None:
        super().__init__(f"{job}: {field_name}: {message}")
        self.job = job
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class Placeholder:
    """A task emitted as a marked stand-in because no rule covers it."""

    task_id: str
    original_type: str
    reason: str


@dataclass(frozen=True)
class RequiredSecret:
    """A Kestra secret the operator must create: a value was masked when the job was stored.

    `referenced`: the flow reads it as `{{ secret('<name>') }}`; otherwise the
    masked value sits inside a text (a command) and a person must put the
    reference there (the translation lists it among its reasons).
    """

    name: str
    where: str
    referenced: bool


@dataclass(frozen=True)
class Translation:
    source: str
    job_key: str
    flow_id: str
    namespace: str
    kestra_version: str
    flow: dict[str, Any]
    yaml_text: str
    readiness: Readiness
    reasons: tuple[str, ...] = ()
    placeholders: tuple[Placeholder, ...] = ()
    notes: tuple[str, ...] = field(default=())
    secrets: tuple[RequiredSecret, ...] = ()

    @property
    def job_label(self) -> str:
        """The `switchyard.job` label value: the legacy job this flow replaces."""
        return f"{self.source}:{self.job_key}"
