"""The failure evidence in a task try's log: its last meaningful error line.

`LogTail` keeps the last lines of a log read in chunks while never holding
more than its byte budget, so a huge log costs bounded memory; the client
stops reading at its own byte cap. `error_from_log` is pure: it picks the line
a person would quote from the records Airflow returns — structured records
(Airflow 3: dicts with ``event``, ``level`` and, for an exception,
``error_detail``) or plain text lines (Airflow 2).
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gateway.contract import MAX_MESSAGE_CHARS, ErrorInfo

DEFAULT_MAX_BYTES = 2 * 1024 * 1024
TAIL_BYTES = 64 * 1024
# "ValueError: ...", "airflow.exceptions.AirflowException: ...", "KeyboardInterrupt"
_EXCEPTION_LINE = re.compile(
    r"^(?:[A-Za-z_][\w]*\.)*([A-Z][\w]*(?:Error|Exception|Exit|Interrupt|Timeout|Failure))(?::\s*(.*))?$"
)
_LEVEL_ERROR = re.compile(r"\b(ERROR|CRITICAL|FATAL)\b")
_NOISE = ("::group::", "::endgroup::")


class LogTail:
    """The last lines of a log, within a byte budget."""

    def __init__(self, budget: int = TAIL_BYTES) -> None:
        self.budget = budget
        self._lines: deque[str] = deque()
        self._size = 0
        self._partial = ""

    def feed(self, chunk: str) -> None:
        text = self._partial + chunk
        lines = text.split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._push(line)

    def _push(self, line: str) -> None:
        self._lines.append(line)
        self._size += len(line) + 1
        while self._size > self.budget and len(self._lines) > 1:
            self._size -= len(self._lines.popleft()) + 1

    def lines(self) -> list[str]:
        out = list(self._lines)
        if self._partial:
            out.append(self._partial)
        return out


def records_from_lines(lines: Iterable[str]) -> list[Any]:
    """NDJSON lines as records; a line that is not JSON stays a string."""
    records: list[Any] = []
    for line in lines:
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            records.append(line)
    return records


def _clip(message: str) -> str:
    return message.strip()[:MAX_MESSAGE_CHARS]


def _from_error_detail(detail: Sequence[Any]) -> ErrorInfo | None:
    # The last entry that is not a "cause" is the exception that ended the task.
    for exc in reversed([d for d in detail if isinstance(d, Mapping)]):
        if exc.get("is_cause"):
            continue
        exc_type = str(exc.get("exc_type") or "").strip()
        value = str(exc.get("exc_value") or "").strip()
        if exc_type:
            return ErrorInfo(
                kind=exc_type[:128], message=_clip(f"{exc_type}: {value}" if value else exc_type)
            )
    return None


def _from_text(line: str) -> ErrorInfo | None:
    stripped = line.strip()
    match = _EXCEPTION_LINE.match(stripped)
    if match:
        return ErrorInfo(kind=match.group(1)[:128], message=_clip(stripped))
    return None


def error_from_log(records: Sequence[Any]) -> ErrorInfo | None:
    """The last meaningful error in a log, or None when it shows none.

    Preference, scanning from the end: an exception recorded by Airflow 3
    (``error_detail``), then a Python exception line (``SomeError: text``),
    then the last line logged at ERROR/CRITICAL level.
    """
    fallback: ErrorInfo | None = None
    for record in reversed(records):
        if isinstance(record, Mapping):
            detail = record.get("error_detail")
            if isinstance(detail, list):
                found = _from_error_detail(detail)
                if found:
                    return found
            event = str(record.get("event") or "")
            if any(n in event for n in _NOISE):
                continue
            for line in reversed(event.splitlines()):
                found = _from_text(line)
                if found:
                    return found
            level = str(record.get("level") or "").lower()
            if fallback is None and level in ("error", "critical", "fatal") and event.strip():
                fallback = ErrorInfo(kind="task_failed", message=_clip(event))
        elif isinstance(record, str):
            for line in reversed(record.splitlines()):
                found = _from_text(line)
                if found:
                    return found
                if fallback is None and _LEVEL_ERROR.search(line) and line.strip():
                    fallback = ErrorInfo(kind="task_failed", message=_clip(line))
    return fallback
