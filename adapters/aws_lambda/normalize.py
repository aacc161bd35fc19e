"""Pure translation of Lambda's wire formats into Switchyard's contract.

Three things live here, all without I/O, clock or globals:

* **Schedules**: EventBridge / Scheduler expressions (`cron(...)` with six
  fields, `rate(...)`, `at(...)`) → a standard five-field cron expression, or
  `None` with the reason it cannot be expressed (`rate(7 minutes)`, a year
  field, `L`/`W`/`#`, one-time `at()`).
* **Log lines**: one CloudWatch Logs message in either Lambda log format (text:
  `START`/`END`/`REPORT`, `Task timed out after`, `Runtime exited with error`,
  runtime-reported errors; JSON: `platform.start`, `platform.runtimeDone`,
  `platform.report`, application records carrying `errorType`) → a `LogLine`.
* **Invocations**: a fold of log events, in stream order, into one
  `Invocation` per request id, rendered as a `RunEvent` keyed by the request id.

Error kinds are distinct and ranked, the strongest evidence wins:
`out_of_memory` > `timeout` > `unhandled` (the runtime process exited,
`Runtime.ExitError`) > `handled` (the runtime caught the function's error and
reported it; the environment survived). `faas.coldstart` is true exactly when
the report carries an Init Duration.

Trace context: a W3C traceparent is taken from any line of the invocation that
carries a `traceparent` key — the logged event's `headers` (the OpenTelemetry
convention for Lambda) — or from the marker line our own instrumentation
prints once per invocation::

    SWITCHYARD traceparent=00-<32 hex trace id>-<16 hex span id>-<2 hex flags>
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal

from gateway.contract import ErrorInfo, JobSpec, Ref, RunEvent, parse_traceparent
from gateway.states import StateMap

STATE_SYSTEM = "lambda.invocation"
TRACEPARENT_MARKER = "SWITCHYARD traceparent="

# ---------------------------------------------------------------- schedules


@dataclass(frozen=True, slots=True)
class ScheduleConversion:
    """A native schedule and its five-field equivalent, or why there is none."""

    native: str
    schedule: str | None
    reason: str | None = None
    one_time: bool = False


_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$", re.I)
_CRON = re.compile(r"^cron\((.*)\)$", re.I | re.S)
_AT = re.compile(r"^at\((.*)\)$", re.I)
_FIELD_NAMES = ("minutes", "hours", "day-of-month", "month", "day-of-week", "year")
_FIELD_MAX = {0: 59, 1: 23, 2: 31, 3: 12, 4: 6}


def convert_schedule(expression: str) -> ScheduleConversion:
    """Convert an EventBridge rule or Scheduler expression to five-field cron.

    Rate schedules become clock-aligned cron only when the period divides the
    next unit evenly (`rate(15 minutes)` → `*/15 * * * *`); AWS starts rate
    schedules from their creation time, so the phase may differ — the native
    expression is kept beside it for that reason.
    """
    native = expression.strip()
    m = _RATE.match(native)
    if m:
        return _convert_rate(native, int(m.group(1)), m.group(2).lower().rstrip("s"))
    m = _CRON.match(native)
    if m:
        return _convert_cron(native, m.group(1).split())
    if _AT.match(native):
        return ScheduleConversion(
            native, None, "a one-time at() schedule has no cron form", one_time=True
        )
    return ScheduleConversion(native, None, f"unrecognised schedule expression {native!r}")


def _convert_rate(native: str, n: int, unit: str) -> ScheduleConversion:
    if n <= 0:
        return ScheduleConversion(native, None, "a rate must be positive")
    if unit == "minute":
        if n == 1:
            return ScheduleConversion(native, "* * * * *")
        if n < 60 and 60 % n == 0:
            return ScheduleConversion(native, f"*/{n} * * * *")
        if n % 60 == 0:
            return _convert_rate(native, n // 60, "hour")
        return ScheduleConversion(
            native, None, f"every {n} minutes does not divide an hour; cron cannot express it"
        )
    if unit == "hour":
        if n == 1:
            return ScheduleConversion(native, "0 * * * *")
        if n < 24 and 24 % n == 0:
            return ScheduleConversion(native, f"0 */{n} * * *")
        if n == 24:
            return ScheduleConversion(native, "0 0 * * *")
        return ScheduleConversion(
            native, None, f"every {n} hours does not divide a day; cron cannot express it"
        )
    if n == 1:
        return ScheduleConversion(native, "0 0 * * *")
    return ScheduleConversion(
        native, None, f"every {n} days drifts across month ends; cron cannot express it"
    )


def _convert_cron(native: str, parts: list[str]) -> ScheduleConversion:
    if len(parts) != 6:
        return ScheduleConversion(
            native, None, f"AWS cron needs 6 fields ({' '.join(_FIELD_NAMES)}), got {len(parts)}"
        )
    year = parts[5]
    if year not in ("*", "?"):
        return ScheduleConversion(native, None, f"year field {year!r} has no five-field form")
    out: list[str] = []
    for i, raw in enumerate(parts[:5]):
        value = raw.upper()
        # Day names contain no L and only WED contains W, so bare letters are AWS tokens.
        special = {2: ("L", "W", "#"), 4: ("L", "#")}.get(i, ("#",))
        bad = [t for t in special if t in value]
        if bad:
            return ScheduleConversion(
                native, None, f"{_FIELD_NAMES[i]} {raw!r} uses {bad[0]!r}, not in five-field cron"
            )
        if value == "?":
            out.append("*")
            continue
        converted = _cron_field(value, i)
        if converted is None:
            return ScheduleConversion(native, None, f"cannot read {_FIELD_NAMES[i]} {raw!r}")
        out.append(converted)
    return ScheduleConversion(native, " ".join(out))


def _cron_field(value: str, index: int) -> str | None:
    items = []
    for item in value.split(","):
        base, _, step = item.partition("/")
        if index == 4:
            shifted = _shift_dow(base)
            if shifted is None:
                return None
            base = shifted
        if step:
            # AWS `a/b` means "from a every b"; standard cron spells it `a-max/b`.
            if not step.isdigit():
                return None
            if base not in ("*",) and "-" not in base:
                base = f"{base}-{_FIELD_MAX[index]}"
            items.append(f"{base}/{step}")
        else:
            items.append(base)
    return ",".join(items)


def _shift_dow(base: str) -> str | None:
    """AWS numbers days 1-7 from Sunday; standard cron numbers them 0-6."""
    if base == "*":
        return base
    ends = base.split("-")
    shifted = []
    for end in ends:
        if end.isdigit():
            n = int(end)
            if not 1 <= n <= 7:
                return None
            shifted.append(str(n - 1))
        else:
            shifted.append(end)
    return "-".join(shifted)


# ---------------------------------------------------------------- log lines

LineKind = Literal[
    "start", "end", "report", "timeout", "runtime_exit", "error", "runtime_done", "app"
]


@dataclass(frozen=True, slots=True)
class LogLine:
    """What one log message says about an invocation."""

    kind: LineKind
    request_id: str | None = None
    version: str | None = None
    time_ms: int | None = None  # a timestamp written inside the record, if any
    metrics: Mapping[str, float] = field(default_factory=dict)
    status: str | None = None  # platform status: success | error | failure | timeout
    error_type: str | None = None
    error_message: str | None = None
    traceparent: str | None = None


_UUIDISH = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_START = re.compile(r"^START RequestId: (\S+)(?:\s+Version: (\S+))?")
_END = re.compile(r"^END RequestId: (\S+)")
_REPORT = re.compile(r"^REPORT RequestId: (\S+)\s*(.*)$", re.S)
_REPORT_FIELD = re.compile(r"([A-Za-z][A-Za-z ]*?):\s*([^\t]+?)\s*(?=\t|$)")
_TIMEOUT = re.compile(r"^(?:(\S+)\s+)?(" + _UUIDISH + r")\s+Task timed out after ([\d.]+) seconds")
_EXIT = re.compile(r"^RequestId: (\S+) Error: (.+)$", re.S)
_PY_ERROR = re.compile(r"^\[ERROR\] ([A-Za-z_][\w.]*): ?(.*)$", re.S)
_NODE_INVOKE_ERROR = re.compile(
    r"^\S+\t("
    + _UUIDISH
    + r")\tERROR\t(Invoke Error|Unhandled Promise Rejection|Uncaught Exception)"
    r" \t(.*)$",
    re.S,
)
_TAB_REQUEST_ID = re.compile(r"(?:^|\t)(" + _UUIDISH + r")\t")
_TRACEPARENT_ANY = re.compile(
    r"""traceparent["']?\s*[:=]\s*["']?(00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2})""", re.I
)

_REPORT_METRICS = {
    "Duration": "duration_ms",
    "Billed Duration": "billed_duration_ms",
    "Memory Size": "memory_size_mb",
    "Max Memory Used": "max_memory_used_mb",
    "Init Duration": "init_duration_ms",
    "Restore Duration": "restore_duration_ms",
}
_JSON_METRICS = {
    "durationMs": "duration_ms",
    "billedDurationMs": "billed_duration_ms",
    "memorySizeMB": "memory_size_mb",
    "maxMemoryUsedMB": "max_memory_used_mb",
    "initDurationMs": "init_duration_ms",
    "restoreDurationMs": "restore_duration_ms",
}


def parse_log_message(message: str) -> LogLine | None:
    """Read one log message in either format; None for a line with nothing to say."""
    text = message.rstrip("\n")
    if text.startswith("{"):
        try:
            record = json.loads(text)
        except ValueError:
            record = None
        if isinstance(record, dict):
            return _parse_json_record(record, text)
    return _parse_text_line(text)


def traceparent_in(text: str) -> str | None:
    m = _TRACEPARENT_ANY.search(text)
    if m and parse_traceparent(m.group(1)):
        return m.group(1).lower()
    return None


def _parse_text_line(text: str) -> LogLine | None:
    if m := _START.match(text):
        return LogLine("start", m.group(1), version=m.group(2))
    if m := _END.match(text):
        return LogLine("end", m.group(1))
    if m := _REPORT.match(text):
        metrics: dict[str, float] = {}
        status = error_type = None
        for key, value in _REPORT_FIELD.findall(m.group(2)):
            key = key.strip()
            if key in _REPORT_METRICS:
                number = value.split()[0]
                try:
                    metrics[_REPORT_METRICS[key]] = float(number)
                except ValueError:
                    continue
            elif key == "Status":
                status = value.strip().lower()
            elif key == "Error Type":
                error_type = value.strip()
        return LogLine("report", m.group(1), metrics=metrics, status=status, error_type=error_type)
    if m := _TIMEOUT.match(text):
        return LogLine(
            "timeout",
            m.group(2),
            error_message=f"Task timed out after {m.group(3)} seconds",
            error_type="Sandbox.Timedout",
        )
    if m := _EXIT.match(text):
        detail = m.group(2).strip()
        return LogLine(
            "runtime_exit", m.group(1), error_type="Runtime.ExitError", error_message=detail
        )
    if m := _NODE_INVOKE_ERROR.match(text):
        error_type, error_message = _error_from_json_text(m.group(3))
        if m.group(2) != "Invoke Error":
            # The Node.js runtime exits after these: the process crashed.
            error_type = (
                error_type
                if (error_type or "").startswith("Runtime.")
                else (
                    "Runtime.UnhandledPromiseRejection"
                    if m.group(2).startswith("Unhandled")
                    else "Runtime.UncaughtException"
                )
            )
        return LogLine("error", m.group(1), error_type=error_type, error_message=error_message)
    if m := _PY_ERROR.match(text):
        first_line = re.split(r"[\r\n]", m.group(2), maxsplit=1)[0]
        return LogLine("error", None, error_type=m.group(1), error_message=first_line or None)
    traceparent = traceparent_in(text)
    if traceparent:
        rid = _TAB_REQUEST_ID.search(text)
        return LogLine("app", rid.group(1) if rid else None, traceparent=traceparent)
    return None


def _error_from_json_text(text: str) -> tuple[str | None, str | None]:
    try:
        body = json.loads(text)
    except ValueError:
        return None, text.strip() or None
    if isinstance(body, dict):
        return _str_or_none(body.get("errorType")), _str_or_none(body.get("errorMessage"))
    return None, text.strip() or None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _parse_json_record(record: dict[str, Any], text: str) -> LogLine | None:
    kind = record.get("type")
    body = record.get("record")
    time_ms = iso_ms(record.get("time"))
    if isinstance(kind, str) and kind.startswith("platform.") and isinstance(body, dict):
        rid = _str_or_none(body.get("requestId"))
        if kind == "platform.start":
            return LogLine("start", rid, version=_str_or_none(body.get("version")), time_ms=time_ms)
        if kind == "platform.runtimeDone":
            return LogLine(
                "runtime_done",
                rid,
                time_ms=time_ms,
                status=_str_or_none(body.get("status")),
                error_type=_str_or_none(body.get("errorType")),
            )
        if kind == "platform.report":
            found = body.get("metrics")
            raw: dict[str, Any] = found if isinstance(found, dict) else {}
            metrics = {
                name: float(raw[key])
                for key, name in _JSON_METRICS.items()
                if isinstance(raw.get(key), int | float)
            }
            return LogLine(
                "report",
                rid,
                time_ms=time_ms,
                metrics=metrics,
                status=_str_or_none(body.get("status")),
                error_type=_str_or_none(body.get("errorType")),
            )
        return None
    # An application record: {"timestamp", "level", "message", "requestId", ...}.
    rid = _str_or_none(record.get("requestId")) or _str_or_none(record.get("AWSRequestId"))
    message = record.get("message")
    error_src = message if isinstance(message, dict) and "errorType" in message else record
    error_type = _str_or_none(error_src.get("errorType"))
    traceparent = traceparent_in(text)
    if error_type:
        error_message = _str_or_none(error_src.get("errorMessage"))
        if error_message is None and isinstance(message, str):
            error_message = message
        return LogLine(
            "error",
            rid,
            time_ms=iso_ms(record.get("timestamp")),
            error_type=error_type,
            error_message=error_message,
            traceparent=traceparent,
        )
    if traceparent:
        return LogLine("app", rid, traceparent=traceparent)
    return None


def iso_ms(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


# ---------------------------------------------------------------- invocations

ERROR_RANK = {"handled": 1, "unhandled": 2, "timeout": 3, "out_of_memory": 4}


def classify_error(
    error_type: str | None, message: str | None, *, status: str | None = None
) -> str | None:
    """The error kind a Lambda error type/message/status names, or None."""
    text = f"{error_type or ''} {message or ''}"
    if "Runtime.OutOfMemory" in text or "signal: killed" in text:
        return "out_of_memory"
    if status == "timeout" or "Task timed out" in text or error_type == "Sandbox.Timedout":
        return "timeout"
    if (error_type or "").startswith("Runtime.") or "Runtime exited" in text:
        return "unhandled"
    if error_type or status == "failure":
        # `failure` is the function's own error; `error` is the runtime's.
        return "handled"
    if status == "error":
        return "unhandled"
    return None


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One CloudWatch Logs event as `filter_log_events` returns it."""

    group: str
    stream: str
    event_id: str
    timestamp_ms: int
    message: str


@dataclass(slots=True)
class Invocation:
    """Everything the log lines have said so far about one request id.

    Kept in the poll cursor while it may still change (until its report and
    for the overlap window after), so facts that arrive in different polls
    combine into one run.
    """

    request_id: str
    function: str
    attempt: int = 1
    group: str | None = None
    stream: str | None = None
    version: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    last_ms: int = 0
    reported: bool = False
    status: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error_kind: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    traceparent: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, {}, False)}

    def retry(self, start_ms: int) -> None:
        """Lambda retried an async invocation under the same request id: a new try."""
        self.attempt += 1
        self.start_ms, self.end_ms, self.reported, self.status = start_ms, None, False, None
        self.metrics = {}
        self.error_kind = self.error_type = self.error_message = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Invocation:
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown or "request_id" not in data or "function" not in data:
            raise ValueError(f"invocation record has unexpected shape: {sorted(data)}")
        return cls(**dict(data))

    def note_error(self, kind: str | None, error_type: str | None, message: str | None) -> None:
        if kind is None:
            return
        if self.error_kind is None or ERROR_RANK[kind] > ERROR_RANK[self.error_kind]:
            self.error_kind = kind
            self.error_type = error_type or self.error_type
            self.error_message = message or self.error_message
        elif message and not self.error_message:
            self.error_message = message


@dataclass
class FoldState:
    """The fold's memory between polls.

    `invocations`: request ids whose lines may still come; `stream_owner`: the
    invocation open on each stream; `done`: reported request ids (by digest)
    with their attempt and last timestamp, so that an async retry — Lambda
    reuses the request id — is recognised as the next attempt in a later poll.
    """

    invocations: dict[str, Invocation] = field(default_factory=dict)
    stream_owner: dict[str, str] = field(default_factory=dict)  # "group\nstream" -> request id
    done: dict[str, tuple[int, int]] = field(default_factory=dict)  # digest -> (attempt, ms)

    def settle(self, horizon_ms: int, ttl_ms: int) -> None:
        """Move reported invocations to `done`; forget what is older than `ttl_ms`."""
        for rid, inv in list(self.invocations.items()):
            if inv.reported:
                self.done[request_digest(rid)] = (inv.attempt, inv.last_ms)
                del self.invocations[rid]
            elif inv.last_ms < horizon_ms - ttl_ms:
                del self.invocations[rid]  # its report never came
        for digest, (_, last_ms) in list(self.done.items()):
            if last_ms < horizon_ms - ttl_ms:
                del self.done[digest]
        live = set(self.invocations)
        for key, rid in list(self.stream_owner.items()):
            if rid not in live:
                del self.stream_owner[key]


def request_digest(request_id: str) -> str:
    return hashlib.blake2b(request_id.encode(), digest_size=6).hexdigest()


def fold_log_events(
    events: Iterable[LogEvent],
    state: FoldState,
    function_for: Mapping[str, str] | None = None,
    *,
    default_function: str | None = None,
) -> list[str]:
    """Apply log events (in stream order) to `state`; return request ids touched.

    `function_for` maps a log group to its function; a shared group falls back
    to the function name in the stream (`YYYY/MM/DD/<function>[<version>]<hex>`).
    Lines without a request id (Python's `[ERROR] …` traceback) belong to the
    invocation that is open on their stream, as one execution environment runs
    one invocation at a time.
    """
    touched: list[str] = []
    seen: set[str] = set()
    for ev in events:
        line = parse_log_message(ev.message)
        if line is None:
            continue
        owner_key = f"{ev.group}\n{ev.stream}"
        rid = line.request_id or state.stream_owner.get(owner_key)
        if rid is None:
            continue
        ts = line.time_ms if line.time_ms is not None else ev.timestamp_ms
        inv = state.invocations.get(rid)
        if inv is None:
            fn = (function_for or {}).get(ev.group) or function_from_stream(ev.stream)
            fn = fn or default_function or ev.group.rsplit("/", 1)[-1]
            inv = Invocation(request_id=rid, function=fn, group=ev.group, stream=ev.stream)
            earlier = state.done.get(request_digest(rid)) if state.done else None
            if earlier is not None:
                # A start is the next try; any other line is a late one of the last try.
                inv.attempt = earlier[0] + 1 if line.kind == "start" else earlier[0]
            state.invocations[rid] = inv
        elif line.kind == "start" and (inv.reported or inv.end_ms is not None):
            inv.retry(ts)
            inv.stream = ev.stream
        inv.last_ms = max(inv.last_ms, ev.timestamp_ms)
        _apply_line(inv, line, ts)
        if line.kind == "start":
            state.stream_owner[owner_key] = rid
        elif line.kind in ("end", "report") and state.stream_owner.get(owner_key) == rid:
            del state.stream_owner[owner_key]
        if rid not in seen:
            seen.add(rid)
            touched.append(rid)
    return touched


def _apply_line(inv: Invocation, line: LogLine, ts: int) -> None:
    if line.traceparent and inv.traceparent is None:
        inv.traceparent = line.traceparent
    if line.kind == "start":
        inv.start_ms = ts if inv.start_ms is None else min(inv.start_ms, ts)
        inv.version = line.version or inv.version
    elif line.kind == "end":
        inv.end_ms = ts if inv.end_ms is None else max(inv.end_ms, ts)
    elif line.kind == "report":
        inv.reported = True
        inv.metrics.update(line.metrics)
        inv.status = line.status or inv.status
        inv.end_ms = ts if inv.end_ms is None else max(inv.end_ms, ts)
        inv.note_error(
            classify_error(line.error_type, None, status=line.status), line.error_type, None
        )
        used, size = inv.metrics.get("max_memory_used_mb"), inv.metrics.get("memory_size_mb")
        if inv.error_kind == "unhandled" and used is not None and size and used >= size:
            # The runtime died with every megabyte in use: memory ran out.
            inv.error_kind = "out_of_memory"
    elif line.kind == "runtime_done":
        if line.status and line.status != "success":
            inv.status = inv.status or line.status
            inv.note_error(
                classify_error(line.error_type, None, status=line.status), line.error_type, None
            )
    elif line.kind == "timeout":
        inv.note_error("timeout", line.error_type, line.error_message)
        inv.end_ms = ts if inv.end_ms is None else max(inv.end_ms, ts)
    elif line.kind in ("runtime_exit", "error"):
        inv.note_error(
            classify_error(line.error_type, line.error_message)
            or ("unhandled" if line.kind == "runtime_exit" else "handled"),
            line.error_type,
            line.error_message,
        )


def function_from_stream(stream: str) -> str | None:
    """The function a stream of a shared log group belongs to, when its name says."""
    m = re.match(r"^\d{4}/\d{2}/\d{2}/([^\[/]+)\[", stream)
    return m.group(1) if m else None


def native_status(inv: Invocation) -> str:
    """The invocation's state in Lambda's words (keys of `lambda.invocation`)."""
    if inv.error_kind == "timeout":
        return "timeout"
    if inv.error_kind is not None:
        return "error" if inv.error_kind in ("unhandled", "out_of_memory") else "failure"
    if inv.reported:
        return "success"
    return "start"


def _dt(ms: int | float | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def invocation_event(
    inv: Invocation,
    *,
    source: str,
    observed_at: datetime,
    states: StateMap,
    region: str | None = None,
) -> RunEvent:
    """The `RunEvent` for what is known of one invocation (key: the request id)."""
    status = native_status(inv)
    m = inv.metrics
    end_ms = inv.end_ms
    start_ms = inv.start_ms
    if start_ms is None and end_ms is not None and "duration_ms" in m:
        start_ms = int(end_ms - m["duration_ms"])
    attributes: dict[str, Any] = {
        "cloud.provider": "aws",
        "faas.name": inv.function,
        "faas.invocation_id": inv.request_id,
        "aws.lambda.status": status,
    }
    if region:
        attributes["cloud.region"] = region
    if inv.version:
        attributes["faas.version"] = inv.version
    if inv.reported:
        attributes["faas.coldstart"] = "init_duration_ms" in m
    if "memory_size_mb" in m:
        attributes["faas.max_memory"] = int(m["memory_size_mb"] * 1024 * 1024)
    for name in _REPORT_METRICS.values():
        if name in m:
            attributes[f"aws.lambda.{name}"] = m[name]
    if inv.group:
        attributes["aws.log.group.names"] = [inv.group]
    if inv.stream:
        attributes["aws.log.stream.names"] = [inv.stream]
    refs = [Ref(namespace="aws.request_id", value=inv.request_id)]
    if inv.traceparent:
        refs.append(Ref(namespace="w3c.traceparent", value=inv.traceparent))
    error = None
    if inv.error_kind is not None:
        error = ErrorInfo(
            kind=inv.error_kind,
            message=_error_text(inv),
        )
    state = states.map(STATE_SYSTEM, status)
    return RunEvent(
        source=source,
        key=inv.request_id,
        job=inv.function,
        name=inv.function,
        state=state,
        started_at=_dt(start_ms),
        ended_at=_dt(end_ms) if state.terminal else None,
        observed_at=observed_at,
        attempt=inv.attempt,
        error=error,
        attributes=attributes,
        refs=refs,
        url=_console_url(region, inv.group) if region and inv.group else None,
    )


def _error_text(inv: Invocation) -> str | None:
    parts = [p for p in (inv.error_type, inv.error_message) if p]
    text = ": ".join(parts) if parts else None
    return text[:4000] if text else None


def _console_url(region: str, group: str) -> str:
    escaped = group.replace("/", "$252F")
    return (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        f"#logsV2:log-groups/log-group/{escaped}"
    )


# ---------------------------------------------------------------- job specs


def log_group_of(function: Mapping[str, Any]) -> str:
    """The log group a function writes to: its LoggingConfig's, or the default."""
    logging_config = function.get("LoggingConfig") or {}
    group = logging_config.get("LogGroup") if isinstance(logging_config, Mapping) else None
    return group or f"/aws/lambda/{function['FunctionName']}"


def function_arn_base(arn: str) -> str:
    """A function ARN without its version/alias qualifier."""
    parts = arn.split(":")
    return ":".join(parts[:7]) if len(parts) > 7 and parts[5] == "function" else arn


def schedule_record(
    *,
    via: Literal["eventbridge_rule", "scheduler"],
    name: str,
    expression: str,
    state: str,
    arn: str | None = None,
    group: str | None = None,
    timezone: str | None = None,
) -> dict[str, Any]:
    """What schedules a function, with its five-field form or why there is none."""
    conv = convert_schedule(expression)
    record: dict[str, Any] = {
        "via": via,
        "name": name,
        "expression": expression,
        "state": state,
        "enabled": state.upper() == "ENABLED",
        "schedule": conv.schedule,
        "timezone": timezone or "UTC",
    }
    if conv.reason:
        record["not_expressible"] = conv.reason
    if arn:
        record["arn"] = arn
    if group:
        record["group"] = group
    return record


def function_job(
    function: Mapping[str, Any],
    *,
    source: str,
    tags: Mapping[str, str] | None = None,
    schedules: Iterable[Mapping[str, Any]] = (),
    invoke_config: Mapping[str, Any] | None = None,
    region: str | None = None,
) -> JobSpec:
    """The `JobSpec` of one function (a `list_functions` entry) and what schedules it.

    `schedule` is the five-field form of the first enabled schedule that has
    one; `schedule_native` keeps that schedule's own expression, or the first
    schedule's when none converts (then `definition["schedule_note"]` says why).
    A function whose every schedule is disabled is `paused`.
    """
    name = str(function["FunctionName"])
    scheds = sorted(
        (dict(s) for s in schedules), key=lambda s: (not s["enabled"], s["via"], s["name"])
    )
    chosen = next((s for s in scheds if s["schedule"]), None)
    definition: dict[str, Any] = {
        "function_arn": function.get("FunctionArn"),
        "runtime": function.get("Runtime"),
        "handler": function.get("Handler"),
        "memory_mb": function.get("MemorySize"),
        "timeout_s": function.get("Timeout"),
        "package_type": function.get("PackageType"),
        "architectures": function.get("Architectures"),
        "log_group": log_group_of(function),
        "log_format": (function.get("LoggingConfig") or {}).get("LogFormat", "Text"),
        "schedules": scheds,
    }
    if chosen is None and scheds:
        definition["schedule_note"] = scheds[0].get("not_expressible")
    if invoke_config:
        dest = invoke_config.get("DestinationConfig") or {}
        definition["destinations"] = {
            "on_success": (dest.get("OnSuccess") or {}).get("Destination"),
            "on_failure": (dest.get("OnFailure") or {}).get("Destination"),
        }
        definition["async_retry"] = {
            "maximum_retry_attempts": invoke_config.get("MaximumRetryAttempts"),
            "maximum_event_age_s": invoke_config.get("MaximumEventAgeInSeconds"),
        }
    native = chosen or (scheds[0] if scheds else None)
    timeout = function.get("Timeout")
    return JobSpec(
        source=source,
        key=name,
        kind="lambda",
        name=name,
        schedule=chosen["schedule"] if chosen else None,
        schedule_native=native["expression"] if native else None,
        timezone=native["timezone"] if native else "UTC",
        paused=bool(scheds) and not any(s["enabled"] for s in scheds),
        labels={str(k): str(v) for k, v in (tags or {}).items()},
        max_duration_s=float(timeout) if isinstance(timeout, int | float) else None,
        definition=definition,
        url=(
            f"https://{region}.console.aws.amazon.com/lambda/home?region={region}#/functions/{name}"
            if region
            else None
        ),
    )
