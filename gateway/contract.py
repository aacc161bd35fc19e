"""The contract between adapters and the gateway.

Adapters speak only these types. An adapter turns a source's wire format into
`RunEvent`s (observations of runs) and `JobSpec`s (definitions of schedulable
units); the gateway stores, merges, correlates and serves them. An adapter never
touches the store, and the gateway never parses a source's wire format.

Everything here is validated on construction, so a malformed event is rejected
with an error naming the field before anything is written.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import math
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

if TYPE_CHECKING:
    from fastapi import APIRouter

# Limits on what one event may carry. They keep one bad producer from filling
# the store; the API answers 422 naming the field when one is exceeded.
MAX_KEY_CHARS = 1024
MAX_MESSAGE_CHARS = 16 * 1024
MAX_ATTRIBUTES_BYTES = 64 * 1024
MAX_REFS = 64

ENTRY_POINT_GROUP = "switchyard.adapters"

# -- What text and numbers a source may report --------------------------------
#
# Names, keys, hosts, users and ids are one line of printable text. A control
# character in one (C0 with NUL and newline, DEL, C1) has no honest use and is
# how a value breaks out of where it is written: a newline in a job key once
# added top-level keys to a generated Kestra flow through its header comment.
# Free text (messages, output, source text) may hold newlines and tabs, never
# NUL, which PostgreSQL cannot store. No text may hold a lone surrogate (not
# Unicode: it cannot be encoded to be stored). Numbers must be finite: NaN and
# Infinity are not JSON and no database column takes them back.

_NOT_IN_NAMES = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_NOT_IN_TEXT = re.compile("[\x00\ud800-\udfff]")
_NOT_IN_LINES = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")  # tabs allowed


def _found(bad: re.Match[str]) -> str:
    return f"U+{ord(bad.group()):04X} at position {bad.start()}"


def one_line(value: str) -> str:
    """`value` if it is one line of printable text, else ValueError naming the character."""
    bad = _NOT_IN_NAMES.search(value)
    if bad is not None:
        raise ValueError(f"must be one line of printable text; it holds {_found(bad)}")
    return value


def tabbed_line(value: str) -> str:
    """`value` if it is one line, tabs allowed (a crontab line or the command in it)."""
    bad = _NOT_IN_LINES.search(value)
    if bad is not None:
        raise ValueError(f"must be one line of text; it holds {_found(bad)}")
    return value


def free_text(value: str) -> str:
    """`value` if it holds no NUL and no lone surrogate (newlines and tabs are fine)."""
    bad = _NOT_IN_TEXT.search(value)
    if bad is not None:
        raise ValueError(f"must not hold NUL or a lone surrogate; it holds {_found(bad)}")
    return value


def as_one_line(text: str) -> str:
    """`text` made one line: control characters become spaces, runs of spaces one space."""
    return " ".join(_NOT_IN_NAMES.sub(" ", text).split())


def loggable(text: str) -> str:
    """Captured output made fit for free text: NUL and lone surrogates become U+FFFD.

    For adapters that copy bytes a program printed (a job's output, a ping
    body): the run must still be recorded, so the text is cleaned rather than
    the report refused.
    """
    if _NOT_IN_TEXT.search(text) is None:
        return text
    return _NOT_IN_TEXT.sub("\ufffd", text)


def json_problem(value: Any) -> str | None:
    """Where a JSON-like value breaks the rules above, as `path: reason`; None if it does not.

    Strings (keys too) must be free text and numbers finite, at any depth.
    Walked with a stack, so a deeply nested value cannot exhaust the recursion limit.
    """
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            bad = _NOT_IN_TEXT.search(item)
            if bad is not None:
                where = path or "(value)"
                return f"{where}: must not hold NUL or a lone surrogate; it holds {_found(bad)}"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"{path or '(value)'}: {item} is not a finite number"
        elif isinstance(item, dict):
            for key, inner in item.items():
                name = str(key)
                bad = _NOT_IN_TEXT.search(name)
                if bad is not None:
                    return f"{path or '(value)'}: a key holds {_found(bad)}"
                stack.append((f"{path}.{name}" if path else name, inner))
        elif isinstance(item, list | tuple):
            stack.extend((f"{path}[{i}]", inner) for i, inner in enumerate(item))
    return None


def _json_safe(value: Any) -> Any:
    problem = json_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON (numbers must be finite)")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text[:40]} is too large a number")
    return number


def read_json(raw: bytes | str) -> Any:
    """A body parsed as JSON as RFC 8259 defines it: `NaN`, `Infinity` and `1e999` refused.

    Python's `json.loads` reads them as floats no database takes back. Raises
    `ValueError` (a `JSONDecodeError` or `UnicodeDecodeError` for a body that is
    not JSON at all).
    """
    return json.loads(raw, parse_constant=_not_json, parse_float=_finite)


def web_url(value: str) -> str:
    """`value` if it is an absolute `http` or `https` URL, else ValueError.

    A deep link is rendered as a link; any other scheme (`javascript:`,
    `data:`, `file:`) is a way to run or fetch something from the viewer's page.
    """
    one_line(value)
    try:
        parts = urlsplit(value.strip())
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise ValueError(f"is not a URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http or https URL")
    return value


def in_utc_range(value: datetime) -> datetime:
    """`value` if it has an offset and converts to UTC, else ValueError.

    `0001-01-01T00:00:00+14:00` parses but is before year 1 in UTC: it would
    fail later, on its way into the database, as an internal error.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must carry a timezone (naive timestamps are ambiguous)")
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is outside the years 1 to 9999 once converted to UTC") from None
    return value


def secrets_match(given: str, expected: str) -> bool:
    """Compare a presented secret with the expected one in constant time.

    `hmac.compare_digest` refuses `str` with non-ASCII characters (TypeError,
    a 500 for whoever sent one); both are compared as UTF-8 bytes instead.
    """
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def ascii_number(text: str, *, most: int) -> int | None:
    """`text` as a non-negative integer of ASCII digits up to `most`; None otherwise.

    `str.isdigit()` accepts `²` and Arabic-Indic digits, which `int()` then
    refuses or reads, and `int()` of 5,000 digits raises: neither is a number a
    client means to send.
    """
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(most)):
        return None
    number = int(text)
    return number if number <= most else None


Name = Annotated[str, AfterValidator(one_line)]
Line = Annotated[str, AfterValidator(tabbed_line)]
Text = Annotated[str, AfterValidator(free_text)]
WebUrl = Annotated[str, AfterValidator(web_url)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_json_safe)]

# An attribute (`RunEvent.attributes`) and job label marking what a push
# created on its own (a ping check nobody registered) and an operator has not
# adopted yet: its failures open no incident, so they send no alert.
PROVISIONAL = "switchyard.provisional"


class State(enum.StrEnum):
    """The one state vocabulary for every system.

    Native states map onto it through `mappings/states.yaml`. `missed` is
    Switchyard's own: a run that the schedule promised and that never started.
    """

    scheduled = "scheduled"
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    up_for_retry = "up_for_retry"
    skipped = "skipped"
    cancelled = "cancelled"
    missed = "missed"
    unknown = "unknown"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def bad(self) -> bool:
        """A state that a user would want to hear about."""
        return self in (State.failed, State.missed)


TERMINAL_STATES = frozenset(
    {State.succeeded, State.failed, State.skipped, State.cancelled, State.missed}
)


class RunKind(enum.StrEnum):
    """Where a span sits in its tree: a source run, a task in it, or one try."""

    run = "run"
    task = "task"
    attempt = "attempt"


class LinkStrength(enum.StrEnum):
    exact = "exact"  # equal refs in two runs
    declared = "declared"  # an edge in mappings/flows/*.yaml matched by time
    suggested = "suggested"  # name and time proximity; shown, never merged


class ErrorInfo(BaseModel):
    """Why a run failed, as specific as the source allows.

    `kind` is a short machine word: `OOMKilled`, `timeout`, `exit_code`,
    `DeadlineExceeded`, `handled`, `unhandled`, `out_of_memory`, `missed`…
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Name = Field(min_length=1, max_length=128)
    message: Text | None = Field(default=None, max_length=MAX_MESSAGE_CHARS)
    # The range of the column it is stored in (and of Kubernetes' exitCode).
    exit_code: int | None = Field(default=None, ge=-(2**31), le=2**31 - 1)


_REF_NAMESPACE = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")


class Ref(BaseModel):
    """A correlation key two systems can both derive, e.g. `airflow.ti`.

    Namespaces in use: `airflow.ti` (`<dag>/<run>/<task>/<map_index>/<try>`),
    `w3c.trace` (32 hex), `w3c.traceparent` (full header), `openlineage.run`
    (uuid), `aws.request_id`, `kestra.execution`, `k8s.pod.uid`, `k8s.job.uid`,
    `cron.rid`. Equal refs on runs of two sources make an exact link.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: str = Field(min_length=1, max_length=64)
    value: Name = Field(min_length=1, max_length=512)

    @field_validator("namespace")
    @classmethod
    def _namespace_shape(cls, v: str) -> str:
        if not _REF_NAMESPACE.match(v):
            raise ValueError("namespace must be lower-case letters, digits, '.', '_' or '-'")
        return v


_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def parse_traceparent(header: str) -> tuple[str, str] | None:
    """(trace id, parent span id) from a W3C traceparent, or None if invalid."""
    m = _TRACEPARENT.match(header.strip().lower())
    if not m or m.group(1) == "ff":
        return None
    trace_id, span_id = m.group(2), m.group(3)
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return trace_id, span_id


def _aware(name: str, v: datetime | None) -> datetime | None:
    if v is None:
        return None
    try:
        return in_utc_range(v)
    except ValueError as exc:
        raise ValueError(f"{name} {exc}") from None


_SCALARS = (str, int, float, bool, type(None))


def _surely_small(attributes: dict[str, Any]) -> bool:
    """True when flat scalar attributes cannot encode past the limit, without encoding.

    A character encodes to at most 6 (a `\\u` escape and four hex digits), a number
    or literal to at most its repr, so this bound is safe; most events (a ping, a
    state change) pass it.
    """
    bound = 2
    for key, value in attributes.items():
        if not isinstance(key, str) or not isinstance(value, _SCALARS):
            return False
        text = value if isinstance(value, str) else repr(value)
        bound += 6 * (len(key) + len(text)) + 6
        if bound > MAX_ATTRIBUTES_BYTES:
            return False
    return True


class RunEvent(BaseModel):
    """One observation of one run, task or try in one source.

    `key` is stable inside the source: observing the same run again yields the
    same key, and a new try yields a new key (kind `attempt`). `parent_key`
    names the span above it in the same source, and `root_key` the source run
    at the top of the tree when that is not the parent (an attempt under a
    task under a DAG run); the trace id is derived from the root, so every span
    of one source run lands in one trace whatever order events arrive in.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    source: Name = Field(min_length=1, max_length=128)
    kind: RunKind = RunKind.run
    key: Name = Field(min_length=1, max_length=MAX_KEY_CHARS)
    parent_key: Name | None = Field(default=None, min_length=1, max_length=MAX_KEY_CHARS)
    root_key: Name | None = Field(default=None, min_length=1, max_length=MAX_KEY_CHARS)
    job: Name | None = Field(default=None, max_length=MAX_KEY_CHARS)
    name: Name | None = Field(default=None, max_length=MAX_KEY_CHARS)
    state: State
    started_at: datetime | None = None
    ended_at: datetime | None = None
    observed_at: datetime
    nominal_time: datetime | None = None
    attempt: int = Field(default=1, ge=0, le=1_000_000)
    error: ErrorInfo | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    refs: list[Ref] = Field(default_factory=list, max_length=MAX_REFS)
    url: WebUrl | None = Field(default=None, max_length=4096)
    pushed: bool = Field(
        default=False,
        description="set by the gateway where a push arrives (never taken from the sender): "
        "a pushed state never replaces a terminal state the source's own API reported",
    )
    # The sender's own `observed_at` when the gateway clamped it on receipt
    # (`gateway.merge.as_pushed`): the event's digest is taken over what was
    # sent, so a resent report is still the same event.
    _sent_observed_at: datetime | None = PrivateAttr(default=None)

    @property
    def sent_observed_at(self) -> datetime:
        """`observed_at` as the sender reported it (before any clamp on receipt)."""
        return self._sent_observed_at or self.observed_at

    @field_validator("started_at", "ended_at", "observed_at", "nominal_time")
    @classmethod
    def _timestamps_are_aware(cls, v: datetime | None, info: Any) -> datetime | None:
        return _aware(info.field_name, v)

    @field_validator("attributes")
    @classmethod
    def _attributes_bounded(cls, v: dict[str, Any]) -> dict[str, Any]:
        problem = json_problem(v)
        if problem is not None:
            raise ValueError(problem)
        if _surely_small(v):
            return v
        try:
            size = len(json.dumps(v, default=str, separators=(",", ":")))
        except (TypeError, ValueError) as exc:  # pragma: no cover - pydantic gives JSON types
            raise ValueError(f"attributes must be JSON: {exc}") from exc
        if size > MAX_ATTRIBUTES_BYTES:
            raise ValueError(
                f"attributes are {size} bytes encoded; the limit is {MAX_ATTRIBUTES_BYTES}"
            )
        return v

    @model_validator(mode="after")
    def _consistent(self) -> RunEvent:
        if self.parent_key is not None and self.parent_key == self.key:
            raise ValueError("parent_key must differ from key")
        if (
            self.kind is RunKind.run
            and self.parent_key is None
            and self.root_key
            not in (
                None,
                self.key,
            )
        ):
            raise ValueError("a root run's root_key must be its own key")
        return self

    @property
    def trace_root(self) -> str:
        """The key of the source run this span's trace is named after."""
        return self.root_key or self.parent_key or self.key

    @property
    def traceparent(self) -> tuple[str, str] | None:
        """The W3C trace this run belongs to, when a ref carries one."""
        for ref in self.refs:
            if ref.namespace == "w3c.traceparent":
                parsed = parse_traceparent(ref.value)
                if parsed:
                    return parsed
        return None


class TaskSpec(BaseModel):
    """One task inside a job definition (an Airflow task, a Kestra task)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    id: Name = Field(min_length=1)
    type: Name = Field(description="operator class or task type, e.g. BashOperator")
    arguments: JsonObject = Field(default_factory=dict)
    upstream: list[Name] = Field(default_factory=list)
    retries: int | None = None
    timeout_s: float | None = None


class JobSpec(BaseModel):
    """One schedulable unit as its source defines it.

    Carries enough to show it (schedule, owner, labels), to expect its runs
    (schedule, timezone, grace) and to translate it (tasks, edges, the raw
    definition and, where there is one, the source text).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    source: Name = Field(min_length=1, max_length=128)
    key: Name = Field(min_length=1, max_length=MAX_KEY_CHARS)
    kind: Literal["dag", "cronjob", "k8s_job", "lambda", "crontab", "kestra_flow", "job"]
    name: Name | None = None
    schedule: Name | None = Field(
        default=None, description="five-field cron expression, or None if unscheduled"
    )
    schedule_native: Name | None = Field(
        default=None, description="the schedule as the source wrote it (rate(), @daily…)"
    )
    timezone: Name = "UTC"
    paused: bool = False
    owner: Name | None = None
    labels: dict[Name, Name] = Field(default_factory=dict)
    grace_s: float | None = Field(default=None, ge=0)
    max_duration_s: float | None = Field(default=None, ge=0)
    min_duration_s: float | None = Field(default=None, ge=0)
    tasks: list[TaskSpec] = Field(default_factory=list)
    edges: list[tuple[Name, Name]] = Field(default_factory=list)
    definition: JsonObject = Field(default_factory=dict)
    source_text: Text | None = None
    url: WebUrl | None = None


class PollResult(BaseModel):
    """What one poll produced: events in source order and the cursor after them."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    events: list[RunEvent] = Field(default_factory=list)
    cursor: str | None = None
    jobs: list[JobSpec] | None = Field(
        default=None, description="a fresh discovery, when the poll did one"
    )


class SourceConfig(BaseModel):
    """One configured source, as `switchyard.yaml` names it (secrets resolved)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    kind: str = Field(min_length=1)
    interval_s: float = Field(default=30.0, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)


class SourceError(Exception):
    """A source could not be read. Carries the source's name for the status page.

    `retryable` errors (timeouts, 5xx, throttling) back off and retry; others
    (bad credentials after renewal, a missing resource) still back off but are
    shown as the source's last error until they clear.
    """

    def __init__(self, source: str, message: str, *, retryable: bool = True) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.message = message
        self.retryable = retryable


class PushRejected(Exception):
    """A push route refuses what it was sent; the gateway answers problem+json.

    `errors` are `(location, message)` pairs, the location a path into the
    body such as `("body", 1, "job", "name")`. Push routes raise this rather
    than shaping their own error bodies, so every 4xx looks the same.
    """

    def __init__(
        self,
        status: int,
        detail: str,
        errors: Sequence[tuple[Sequence[str | int], str]] = (),
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = [(tuple(loc), msg) for loc, msg in errors]


class EventSink(Protocol):
    """Where push routes hand what they receive. `submit` returns once committed."""

    def submit(
        self,
        source: str,
        events: Sequence[RunEvent],
        *,
        jobs: Sequence[JobSpec] = (),
    ) -> None: ...


@runtime_checkable
class Adapter(Protocol):
    """One configured source.

    `poll(cursor)` must guarantee:

    1. **Order**: events come in the order the source changed; the events of
       one run need not be complete, and may repeat across polls.
    2. **Duplicates are harmless**: the gateway merges idempotently, so a poll
       may re-read an overlap window rather than risk a gap.
    3. **Cursor**: the returned cursor is opaque to the gateway and is stored in
       the same transaction as the events, so a crash between poll and commit
       replays from the old cursor. `poll(None)` starts from the beginning of
       what the source retains (or a configured look-back).
    4. **Errors**: a source failure raises `SourceError`; nothing partial is
       returned.

    A streaming adapter implements `poll` as "drain what the stream has
    buffered since the cursor"; the cursor is then e.g. a resourceVersion.
    """

    name: str
    kind: str

    def discover(self) -> list[JobSpec]: ...

    def poll(self, cursor: str | None) -> PollResult: ...


class PushAdapter(Protocol):
    """An adapter that also receives pushes (webhooks, pings, lineage)."""

    def routes(self, sink: EventSink) -> APIRouter: ...


class WebhookAdapter(Protocol):
    """An adapter that understands signed webhooks the gateway has verified.

    The gateway owns `POST /api/v1/sources/{name}/webhook`: it caps the body,
    checks the HMAC signature and the replay window, then hands the parsed JSON
    here. This must be pure (no I/O) and raise `ValueError` naming what is
    wrong with a payload it cannot read; the gateway answers 422 with it.
    """

    def webhook_events(self, payload: Any) -> list[RunEvent]: ...


# What a `pause` changed, as JSON-serialisable data the caller stores and hands
# back to `resume`, e.g. `{"rules": ["r1"], "schedules": [{"group": "default",
# "name": "s1"}]}` or `{"was_paused": false}`. Its keys are the adapter's own.
ControlReceipt = dict[str, Any]


class ControlAdapter(Protocol):
    """An adapter that can pause and resume a job's legacy schedule (cutover).

    `pause(job_key)` returns a receipt saying exactly what it changed, leaving
    alone (and out of the receipt) whatever was already paused. It may return
    None (an adapter without receipts). `resume(job_key, receipt)` undoes
    exactly what the receipt lists, and nothing when it lists nothing, so a
    schedule its owner had paused before stays paused. `resume(job_key)` with
    no receipt resumes everything of the job: the behaviour for callers that
    have none (an adapter without receipts, or a pause recorded before them).
    A malformed receipt is a `SourceError` naming it; nothing is changed.
    """

    def pause(self, job_key: str) -> ControlReceipt | None: ...

    def resume(self, job_key: str, receipt: ControlReceipt | None = None) -> None: ...


class Closeable(Protocol):
    def close(self) -> None: ...


@runtime_checkable
class WakingAdapter(Protocol):
    """Optional: an adapter that can tell the runtime it has events to poll.

    A streaming adapter buffers changes between polls; waiting for the next
    interval tick adds up to one interval of lag. If the adapter has
    `set_wakeup`, the runtime calls it once with a callback before polling
    (and with None when it lets go of the adapter). The adapter calls
    `callback()` whenever it buffers events, or still holds some after a
    `poll` returned a size-limited batch. The callback is cheap, thread-safe
    and never blocks; the runtime then polls soon (not more often than a
    short minimum gap), but never sooner than a failure backoff allows, and
    still polls on its interval as before. Nothing else about `poll` changes:
    the cursor and its guarantees are exactly those of `Adapter`.
    """

    def set_wakeup(self, callback: Callable[[], None] | None) -> None: ...


AdapterFactory = Callable[[SourceConfig], Adapter]


class UnknownAdapterKind(LookupError):
    def __init__(self, kind: str, known: Sequence[str], detail: str | None = None) -> None:
        msg = f"no adapter of kind {kind!r}; installed kinds: {', '.join(sorted(known)) or 'none'}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)
        self.kind = kind


def adapter_kinds() -> list[str]:
    """Kinds registered under the `switchyard.adapters` entry-point group."""
    return sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


def load_adapter_factory(kind: str) -> AdapterFactory:
    """The factory for `kind`, found through entry points (never an import list)."""
    eps = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if kind not in eps:
        raise UnknownAdapterKind(kind, list(eps))
    try:
        factory: AdapterFactory = eps[kind].load()
    except (ImportError, AttributeError) as exc:
        detail = f"{eps[kind].value} failed to load: {exc}"
        raise UnknownAdapterKind(kind, list(eps), detail) from exc
    return factory


def create_adapter(config: SourceConfig) -> Adapter:
    return load_adapter_factory(config.kind)(config)


def check_source_options(config: SourceConfig) -> None:
    """Check a source's options without starting it: `switchyard config check` calls this.

    The factory's module may define `check_options(config)`, raising
    `SourceError` whose message names the option (`options.tokens[0].hosts`);
    a kind without one has its options checked when its adapter is created.
    """
    factory = load_adapter_factory(config.kind)
    check = getattr(sys.modules.get(factory.__module__), "check_options", None)
    if callable(check):
        check(config)


def stable_id(*parts: str, length: int = 16) -> str:
    """A deterministic hex id from its parts: the same parts give the same id.

    Span ids are `stable_id(source, key)` (16 hex), trace ids
    `stable_id("trace", source, root_key, length=32)`.
    """
    h = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return h[:length]


def span_id_for(source: str, key: str) -> str:
    return stable_id(source, key)


def trace_id_for(source: str, root_key: str) -> str:
    return stable_id("trace", source, root_key, length=32)


def job_id_for(source: str, key: str) -> str:
    return stable_id("job", source, key)


__all__ = [
    "ENTRY_POINT_GROUP",
    "MAX_ATTRIBUTES_BYTES",
    "PROVISIONAL",
    "TERMINAL_STATES",
    "Adapter",
    "AdapterFactory",
    "Closeable",
    "ControlAdapter",
    "ErrorInfo",
    "EventSink",
    "JobSpec",
    "JsonObject",
    "Line",
    "LinkStrength",
    "Name",
    "PollResult",
    "PushAdapter",
    "PushRejected",
    "Ref",
    "RunEvent",
    "RunKind",
    "SourceConfig",
    "SourceError",
    "State",
    "TaskSpec",
    "Text",
    "UnknownAdapterKind",
    "WakingAdapter",
    "WebUrl",
    "WebhookAdapter",
    "adapter_kinds",
    "as_one_line",
    "ascii_number",
    "create_adapter",
    "free_text",
    "in_utc_range",
    "job_id_for",
    "json_problem",
    "load_adapter_factory",
    "loggable",
    "one_line",
    "parse_traceparent",
    "read_json",
    "secrets_match",
    "span_id_for",
    "stable_id",
    "tabbed_line",
    "trace_id_for",
    "web_url",
]
