"""How `RunEvent`s merge into one run row: a short table of named rules.

The design, in the spirit of Prefect's orchestration rules: the current row of
a run is *defined* as the fold of `RULES` over every distinct event of that run
taken in one total order, `event_order` = (observed_at, digest). Because the
order is total and independent of arrival, any permutation of a run's events
gives the same row, and because the ingest drops an event whose digest is
already stored, the same event twice changes nothing.

Ingest folds incrementally: when every new event of a run sorts after the
newest one already merged (its `observed_at` is strictly later than the row's),
continuing the fold from the stored row is the same as folding everything
(`fold_continues`). Otherwise ("late" events) ingest re-folds the run's whole
event log, which it reads by run id. Either way the row equals
`fold(None, sorted(all events))`.

Each rule reads the row as merged so far (`before`) and one event, and writes
only its own fields of `after`. The state rule chooses the winning observation
by a total order, so the state is the maximum of its events whatever the fold
order: higher `attempt` first (a newer try supersedes even a terminal state of
an older one), then terminal over non-terminal (terminal states never regress
within a try), then a polled terminal over a pushed one (the source's own API
has the last word on how a try ended), then later `observed_at`, then
`STATE_RANK`.

Pushed and polled events: `RunEvent.pushed` is set by the gateway where a push
arrives (`as_pushed`: the group-commit sink, `POST /api/v1/events`, signed
webhooks), never by the sender, and the pushed event's `observed_at` is clamped
to its receipt time plus `PUSH_CLOCK_SKEW`. So a push cannot outrank polled
observations by claiming a later instant, and cannot overwrite a terminal state
the source's API reported for the same try (`polled_end_stands`).

The trace id is not per-run: every span of one (source, root_key) tree shares
it. `tree_trace` picks it (the least W3C trace id any span of the tree carries,
else the derived one); ingest applies it across the tree. Everything here is
pure: no I/O, no clock.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from gateway.contract import RunEvent, State, span_id_for, trace_id_for

# Tie-break between two states of the same try, terminal-ness and instant:
# bad news wins a tie, so a failure reported at the same moment as a success
# is not hidden.
STATE_RANK: Mapping[State, int] = {
    State.unknown: 0,
    State.scheduled: 1,
    State.queued: 2,
    State.running: 3,
    State.up_for_retry: 4,
    State.skipped: 5,
    State.succeeded: 6,
    State.cancelled: 7,
    State.missed: 8,
    State.failed: 9,
}


# How far a pushed event's `observed_at` may lie ahead of its receipt: room for
# a sender's clock running a little fast, not enough to outrank a poll by
# claiming to be from the future.
PUSH_CLOCK_SKEW = timedelta(seconds=30)


def canonical_payload(event: RunEvent) -> dict[str, Any]:
    """The event as JSON-ready data: what `run_event.payload` stores.

    `pushed` is left out when false, so a polled event's payload and digest are
    what they were before the field existed.
    """
    payload = event.model_dump(mode="json")
    if not payload["pushed"]:
        del payload["pushed"]
    return payload


def canonical_json(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_digest(payload: Mapping[str, Any]) -> str:
    """sha256 of the event's canonical JSON: equal events, equal digests."""
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def event_order(observed_at: datetime, digest: str) -> tuple[datetime, str]:
    """The one total order in which a run's events are folded."""
    return (observed_at, digest)


def as_pushed(events: Iterable[RunEvent], received_at: datetime) -> list[RunEvent]:
    """`events` as received by a push route at `received_at`: marked, their clocks clamped.

    Whatever the sender said about `pushed` is overwritten; an `observed_at`
    later than `received_at + PUSH_CLOCK_SKEW` becomes that bound, and the
    sender's value is kept beside it for the digest (`digest_payload`), so a
    report resent by a host whose clock runs fast is still one event.
    """
    latest = received_at + PUSH_CLOCK_SKEW
    out = []
    for event in events:
        if event.observed_at <= latest:
            out.append(event.model_copy(update={"pushed": True}))
            continue
        clamped = event.model_copy(update={"pushed": True, "observed_at": latest})
        clamped._sent_observed_at = event.sent_observed_at
        out.append(clamped)
    return out


def digest_payload(event: RunEvent, payload: dict[str, Any]) -> dict[str, Any]:
    """What an event's digest is taken over: its payload as the sender sent it.

    The same as `payload` unless the gateway clamped the event's clock on
    receipt; then `observed_at` is the sender's, since the clamp moves with
    the time of each delivery.
    """
    if event.sent_observed_at == event.observed_at:
        return payload
    return canonical_payload(event.model_copy(update={"observed_at": event.sent_observed_at}))


@dataclass(slots=True)
class Span:
    """The merged row of one run (every `run` column but created/updated)."""

    id: str
    source: str
    key: str
    kind: str = "run"
    parent_key: str | None = None
    parent_id: str | None = None
    root_key: str = ""
    trace_id: str = ""
    trace_adopted: bool = False
    job: str | None = None
    name: str | None = None
    state: State | None = None
    state_at: datetime | None = None
    state_pushed: bool = False
    attempt: int = -1
    started_at: datetime | None = None
    ended_at: datetime | None = None
    observed_at: datetime | None = None
    nominal_time: datetime | None = None
    error_kind: str | None = None
    error_message: str | None = None
    exit_code: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    url: str | None = None

    def __copy__(self) -> Span:
        # The fold copies the span once per event; `copy.copy` of a slots
        # dataclass goes through __reduce_ex__, several times slower.
        new = object.__new__(Span)
        for name in SPAN_COLUMNS:
            object.__setattr__(new, name, getattr(self, name))
        return new

    @classmethod
    def empty(cls, source: str, key: str) -> Span:
        """The row before any event: every rule treats it as knowing nothing."""
        return cls(id=span_id_for(source, key), source=source, key=key, root_key=key)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Span:
        values = {name: row[name] for name in SPAN_COLUMNS}
        values["state"] = State(values["state"])
        values["attributes"] = dict(values["attributes"] or {})
        return cls(**values)

    def row(self) -> dict[str, Any]:
        """Column values for the `run` table."""
        if self.state is None:
            raise ValueError(f"run {self.source}/{self.key} has no event merged into it")
        values = {name: getattr(self, name) for name in SPAN_COLUMNS}
        values["state"] = self.state.value
        return values


SPAN_COLUMNS: tuple[str, ...] = tuple(Span.__dataclass_fields__)


def winner_key(
    attempt: int, state: State | None, at: datetime | None, pushed: bool
) -> tuple[Any, ...]:
    """The total order of observations: try, terminal, polled terminal, instant, state rank."""
    if state is None or at is None:
        return (-1,)
    return (attempt, state.terminal, state.terminal and not pushed, at, STATE_RANK[state])


def event_key(event: RunEvent) -> tuple[Any, ...]:
    return winner_key(event.attempt, event.state, event.observed_at, event.pushed)


def span_key(span: Span) -> tuple[Any, ...]:
    return winner_key(span.attempt, span.state, span.state_at, span.state_pushed)


def polled_end_stands(span: Span) -> bool:
    """Whether the span's state is a terminal state its source's API reported (polled)."""
    return span.state is not None and span.state.terminal and not span.state_pushed


# --- the rules -------------------------------------------------------------

Rule = Callable[[Span, RunEvent, Span], None]


def newest_winning_state(before: Span, event: RunEvent, after: Span) -> None:
    """The state is that of the greatest observation by `winner_key`."""
    if event_key(event) >= span_key(before):
        after.state = event.state
        after.state_at = event.observed_at
        after.state_pushed = event.pushed
    after.attempt = max(before.attempt, event.attempt)


def error_follows_state(before: Span, event: RunEvent, after: Span) -> None:
    """The winning event's error; a repeat of the same try and state without one keeps it."""
    if event_key(event) < span_key(before):
        return  # the event did not win: the error stays with the state it had
    if event.error is not None:
        after.error_kind = event.error.kind
        after.error_message = event.error.message
        after.exit_code = event.error.exit_code
    elif (event.attempt, event.state) != (before.attempt, before.state):
        after.error_kind = after.error_message = None
        after.exit_code = None


def start_is_earliest_of_try(before: Span, event: RunEvent, after: Span) -> None:
    """`started_at` is the earliest start reported by the latest try."""
    if event.attempt > before.attempt or (
        event.attempt == before.attempt
        and event.started_at is not None
        and (before.started_at is None or event.started_at < before.started_at)
    ):
        after.started_at = event.started_at


def end_only_when_terminal(before: Span, event: RunEvent, after: Span) -> None:
    """`ended_at` is the latest end a terminal event of the latest try reported.

    Once a polled terminal event of the try is in, only polled ends count: the
    first one replaces what pushes said, and later pushes change nothing.
    """
    if event.attempt > before.attempt:
        after.ended_at = event.ended_at if event.state.terminal else None
    elif event.attempt == before.attempt and event.state.terminal:
        settled = polled_end_stands(before)
        if not (event.pushed or settled):
            after.ended_at = event.ended_at  # the API's word replaces what pushes said
        elif (
            event.pushed != settled
            and event.ended_at is not None
            and (before.ended_at is None or event.ended_at > before.ended_at)
        ):
            after.ended_at = event.ended_at
    if after.state is None or not after.state.terminal:
        after.ended_at = None


def observed_only_forward(before: Span, event: RunEvent, after: Span) -> None:
    """`observed_at` is the latest observation; it never moves back."""
    if before.observed_at is None or event.observed_at > before.observed_at:
        after.observed_at = event.observed_at


def attributes_latest_per_key(before: Span, event: RunEvent, after: Span) -> None:
    """Attributes are a union; per key, the value of the latest event that has it."""
    if event.attributes:
        after.attributes = {**before.attributes, **event.attributes}


def descriptors_fill_in(before: Span, event: RunEvent, after: Span) -> None:
    """`job`, `name`, `url`, `nominal_time`: the latest value known; None never erases."""
    if event.job is not None:
        after.job = event.job
    if event.name is not None:
        after.name = event.name
    if event.url is not None:
        after.url = event.url
    if event.nominal_time is not None:
        after.nominal_time = event.nominal_time


def identity_from_latest(before: Span, event: RunEvent, after: Span) -> None:
    """Kind, parent and root come from the latest event; ids derive from them."""
    after.kind = event.kind.value
    after.parent_key = event.parent_key
    after.parent_id = span_id_for(event.source, event.parent_key) if event.parent_key else None
    if event.trace_root != before.root_key or not before.trace_id:
        after.root_key = event.trace_root
        after.trace_id = trace_id_for(event.source, event.trace_root)
        after.trace_adopted = False


RULES: tuple[Rule, ...] = (
    newest_winning_state,
    error_follows_state,
    start_is_earliest_of_try,
    end_only_when_terminal,
    observed_only_forward,
    attributes_latest_per_key,
    descriptors_fill_in,
    identity_from_latest,
)


def merge_event(span: Span, event: RunEvent) -> Span:
    """One step of the fold: the row after `event`, given the row before it."""
    after = copy.copy(span)
    for rule in RULES:
        rule(span, event, after)
    return after


def fold(span: Span | None, events: Iterable[RunEvent]) -> Span:
    """Merge `events` (already in `event_order`) into `span` (None: a new run).

    Trace adoption is left to `adopt_trace`; a span folded from scratch carries
    the trace id derived from its root.
    """
    result = span
    for event in events:
        if result is None:
            result = Span.empty(event.source, event.key)
        result = merge_event(result, event)
    if result is None:
        raise ValueError("fold needs a span or at least one event")
    return result


def fold_continues(span: Span, earliest_new: datetime) -> bool:
    """Whether folding on from the stored row equals re-folding the whole log.

    True when every new event sorts strictly after every merged one; ties on
    `observed_at` are decided by digest, which the row does not keep.
    """
    return span.observed_at is None or earliest_new > span.observed_at


def tree_trace(source: str, root_key: str, adopted: Iterable[str]) -> tuple[str, bool]:
    """The trace of a (source, root_key) tree: its least W3C trace id, else derived."""
    best = min(adopted, default=None)
    if best is None:
        return trace_id_for(source, root_key), False
    return best, True


def adopt_trace(span: Span, trace: tuple[str, bool]) -> Span:
    """The span placed in its tree's trace."""
    span.trace_id, span.trace_adopted = trace
    return span


__all__ = [
    "PUSH_CLOCK_SKEW",
    "RULES",
    "SPAN_COLUMNS",
    "STATE_RANK",
    "Rule",
    "Span",
    "adopt_trace",
    "as_pushed",
    "canonical_json",
    "canonical_payload",
    "digest_payload",
    "event_digest",
    "event_order",
    "fold",
    "fold_continues",
    "merge_event",
    "tree_trace",
    "winner_key",
]
