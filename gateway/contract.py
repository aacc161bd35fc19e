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
import json
import re
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from fastapi import APIRouter

# Limits on what one event may carry. They keep one bad producer from filling
# the store; the API answers 422 naming the field when one is exceeded.
MAX_KEY_CHARS = 1024
MAX_MESSAGE_CHARS = 16 * 1024
MAX_ATTRIBUTES_BYTES = 64 * 1024
MAX_REFS = 64

ENTRY_POINT_GROUP = "switchyard.adapters"


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

    kind: str = Field(min_length=1, max_length=128)
    message: str | None = Field(default=None, max_length=MAX_MESSAGE_CHARS)
    exit_code: int | None = None


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
    value: str = Field(min_length=1, max_length=512)

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
    if v is not None and (v.tzinfo is None or v.utcoffset() is None):
        raise ValueError(f"{name} must carry a timezone (naive timestamps are ambiguous)")
    return v


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

    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, max_length=128)
    kind: RunKind = RunKind.run
    key: str = Field(min_length=1, max_length=MAX_KEY_CHARS)
    parent_key: str | None = Field(default=None, min_length=1, max_length=MAX_KEY_CHARS)
    root_key: str | None = Field(default=None, min_length=1, max_length=MAX_KEY_CHARS)
    job: str | None = Field(default=None, max_length=MAX_KEY_CHARS)
    name: str | None = Field(default=None, max_length=MAX_KEY_CHARS)
    state: State
    started_at: datetime | None = None
    ended_at: datetime | None = None
    observed_at: datetime
    nominal_time: datetime | None = None
    attempt: int = Field(default=1, ge=0, le=1_000_000)
    error: ErrorInfo | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    refs: list[Ref] = Field(default_factory=list, max_length=MAX_REFS)
    url: str | None = Field(default=None, max_length=4096)

    @field_validator("started_at", "ended_at", "observed_at", "nominal_time")
    @classmethod
    def _timestamps_are_aware(cls, v: datetime | None, info: Any) -> datetime | None:
        return _aware(info.field_name, v)

    @field_validator("attributes")
    @classmethod
    def _attributes_bounded(cls, v: dict[str, Any]) -> dict[str, Any]:
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

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    type: str = Field(description="operator class or task type, e.g. BashOperator")
    arguments: dict[str, Any] = Field(default_factory=dict)
    upstream: list[str] = Field(default_factory=list)
    retries: int | None = None
    timeout_s: float | None = None


class JobSpec(BaseModel):
    """One schedulable unit as its source defines it.

    Carries enough to show it (schedule, owner, labels), to expect its runs
    (schedule, timezone, grace) and to translate it (tasks, edges, the raw
    definition and, where there is one, the source text).
    """

    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, max_length=128)
    key: str = Field(min_length=1, max_length=MAX_KEY_CHARS)
    kind: Literal["dag", "cronjob", "k8s_job", "lambda", "crontab", "kestra_flow", "job"]
    name: str | None = None
    schedule: str | None = Field(
        default=None, description="five-field cron expression, or None if unscheduled"
    )
    schedule_native: str | None = Field(
        default=None, description="the schedule as the source wrote it (rate(), @daily…)"
    )
    timezone: str = "UTC"
    paused: bool = False
    owner: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    grace_s: float | None = Field(default=None, ge=0)
    max_duration_s: float | None = Field(default=None, ge=0)
    min_duration_s: float | None = Field(default=None, ge=0)
    tasks: list[TaskSpec] = Field(default_factory=list)
    edges: list[tuple[str, str]] = Field(default_factory=list)
    definition: dict[str, Any] = Field(default_factory=dict)
    source_text: str | None = None
    url: str | None = None


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
    "TERMINAL_STATES",
    "Adapter",
    "AdapterFactory",
    "Closeable",
    "ControlAdapter",
    "ErrorInfo",
    "EventSink",
    "JobSpec",
    "LinkStrength",
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
    "UnknownAdapterKind",
    "WakingAdapter",
    "WebhookAdapter",
    "adapter_kinds",
    "create_adapter",
    "job_id_for",
    "load_adapter_factory",
    "parse_traceparent",
    "span_id_for",
    "stable_id",
    "trace_id_for",
]
