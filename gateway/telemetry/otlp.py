"""Stored runs as OpenTelemetry spans: pure mapping, no I/O, no clock.

Guarantees:

- **Stable ids.** A run's span id is its stored id and its trace id is its
  stored trace id; its parent is its stored parent. Exporting the same row
  twice yields the same span, so a receiver keyed by span id sees one span.
- **One resource per source.** `service.name` is the source's kind
  (`airflow`, `kubernetes`, `lambda`, `cron`, `kestra`…), `switchyard.source`
  its configured name; service maps then show one node per kind of system.
- **Semantic conventions.** CI/CD: a source run is a pipeline run (kind
  SERVER, `cicd.pipeline.name` = its job, `cicd.pipeline.run.id` = its key,
  `cicd.pipeline.result`), a task or try is a task run (kind INTERNAL,
  `cicd.pipeline.task.*`, `cicd.pipeline.task.run.result`). The run's own
  attributes (`k8s.*`, `faas.*`, `cicd.*` written by the adapters) are copied
  as they are. States map to results and span status by `RESULTS`.
- **Cross-system hops as CLIENT→SERVER pairs.** For a link between runs of two
  sources (exact or declared), `hop_spans` writes, in the *caller's* trace, a
  CLIENT span under the caller's service whose parent is the caller's span,
  and a SERVER span under the callee's service whose parent is that CLIENT
  span. That pair is what Tempo's service graph (and Jaeger's dependency view)
  turn into an edge caller-kind → callee-kind. The callee's own spans keep
  their stored trace and parents untouched (its trace is its own, so ids stay
  deterministic); the SERVER span carries an OTel link to the callee's span
  and, when both go out in one batch, the callee's span a link back to the
  CLIENT span, so either trace leads to the other. The SERVER span takes the
  callee's status, so a failed callee counts as a failed request on the edge.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from gateway.contract import State, stable_id

SCOPE = InstrumentationScope("switchyard.export", "1")
MAX_STATUS_DESCRIPTION = 1024

# Native error kinds that say the scheduling system itself failed, or that the
# work ran out of time, rather than that the work failed.
TIMEOUT_KINDS = frozenset({"timeout", "Timeout", "DeadlineExceeded", "stuck", "timed_out"})
SYSTEM_ERROR_KINDS = frozenset(
    {"Evicted", "NodeLost", "Shutdown", "UnexpectedAdmissionError", "Preempted", "zombie"}
)

# state → (cicd result, span status). `missed` is the scheduler failing to
# start the run: an `error` of the system, not a failure of the work.
RESULTS: Mapping[State, tuple[str, StatusCode]] = {
    State.succeeded: ("success", StatusCode.OK),
    State.failed: ("failure", StatusCode.ERROR),
    State.up_for_retry: ("failure", StatusCode.ERROR),
    State.missed: ("error", StatusCode.ERROR),
    State.cancelled: ("cancellation", StatusCode.UNSET),
    State.skipped: ("skip", StatusCode.OK),
}

# Finished spans: a try that will be retried is finished too (the retry is a new span).
EXPORTABLE_STATES = frozenset(RESULTS)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """The columns of one `run` row that an export needs."""

    id: str
    trace_id: str
    parent_id: str | None
    source: str
    key: str
    kind: str
    job: str | None
    name: str | None
    state: str
    attempt: int
    started_at: datetime | None
    ended_at: datetime | None
    observed_at: datetime | None
    state_at: datetime | None
    nominal_time: datetime | None
    error_kind: str | None
    error_message: str | None
    exit_code: int | None
    url: str | None
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> RunRecord:
        return cls(
            **{name: row[name] for name in RUN_COLUMNS if name != "attributes"},
            attributes=dict(row["attributes"] or {}),
        )

    @property
    def is_root(self) -> bool:
        return self.parent_id is None

    @property
    def display_name(self) -> str:
        return self.name or self.job or self.key


RUN_COLUMNS = (
    "id", "trace_id", "parent_id", "source", "key", "kind", "job", "name", "state",
    "attempt", "started_at", "ended_at", "observed_at", "state_at", "nominal_time",
    "error_kind", "error_message", "exit_code", "url", "attributes",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Hop:
    """A call from one system into another: `caller` started `callee`."""

    caller: RunRecord
    callee: RunRecord
    relation: str
    strength: str
    evidence: Mapping[str, Any] = field(default_factory=dict)

    @property
    def client_span_id(self) -> str:
        return stable_id("otlp.hop.client", self.caller.id, self.callee.id)

    @property
    def server_span_id(self) -> str:
        return stable_id("otlp.hop.server", self.caller.id, self.callee.id)


class ResourceCatalog:
    """One `Resource` per source; the same object every time (spans group by it)."""

    def __init__(self, kinds: Mapping[str, str]) -> None:
        self.kinds = dict(kinds)
        self._resources: dict[str, Resource] = {}

    def service_name(self, source: str) -> str:
        return self.kinds.get(source, source)

    def for_source(self, source: str) -> Resource:
        resource = self._resources.get(source)
        if resource is None:
            # Resource(...) rather than Resource.create(...): no host/process
            # detectors or SDK defaults, so the export is the same on every replica.
            resource = Resource(
                {
                    "service.name": self.service_name(source),
                    "service.namespace": "switchyard",
                    "switchyard.source": source,
                }
            )
            self._resources[source] = resource
        return resource


def result_of(run: RunRecord) -> tuple[str, StatusCode]:
    """The `cicd.*.result` value and span status of a finished run."""
    state = State(run.state)
    result, status = RESULTS.get(state, ("error", StatusCode.ERROR))
    if result == "failure" and run.error_kind in TIMEOUT_KINDS:
        result = "timeout"
    elif result == "failure" and run.error_kind in SYSTEM_ERROR_KINDS:
        result = "error"
    return result, status


def _nanos(t: datetime) -> int:
    return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000


def span_times(run: RunRecord) -> tuple[int, int]:
    """(start, end) in ns: a run that never started sits at when it was due."""
    start = run.started_at or run.nominal_time or run.state_at or run.observed_at
    end = run.ended_at or run.state_at or run.observed_at or start
    if start is None or end is None:
        raise ValueError(f"run {run.source}/{run.key} has no timestamp to place it at")
    start_ns, end_ns = _nanos(start), _nanos(end)
    return start_ns, max(start_ns, end_ns)


def _attribute_value(value: Any) -> Any:
    """An OTel attribute value: scalars and homogeneous scalar lists as they are,
    anything else as its JSON text (OTLP attributes cannot nest here)."""
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple) and value:
        kinds = {type(v) for v in value}
        if len(kinds) == 1 and kinds <= {str, bool, int, float}:
            return tuple(value)
    return json.dumps(value, sort_keys=True, default=str)


def run_attributes(run: RunRecord) -> dict[str, Any]:
    attributes = {str(k): _attribute_value(v) for k, v in run.attributes.items() if v is not None}
    result, status = result_of(run)
    if run.is_root:
        attributes.setdefault("cicd.pipeline.name", run.job or run.display_name)
        attributes.setdefault("cicd.pipeline.run.id", run.key)
        attributes.setdefault("cicd.pipeline.action.name", "RUN")
        if run.url:
            attributes.setdefault("cicd.pipeline.run.url.full", run.url)
        attributes["cicd.pipeline.result"] = result
    else:
        if run.job:
            attributes.setdefault("cicd.pipeline.name", run.job)
        attributes.setdefault("cicd.pipeline.task.name", run.display_name)
        attributes.setdefault("cicd.pipeline.task.run.id", run.key)
        if run.url:
            attributes.setdefault("cicd.pipeline.task.run.url.full", run.url)
        attributes["cicd.pipeline.task.run.result"] = result
    if status is StatusCode.ERROR:
        attributes["error.type"] = run.error_kind or result
    if run.exit_code is not None:
        attributes["process.exit.code"] = run.exit_code
    attributes.update(
        {
            "switchyard.source": run.source,
            "switchyard.run.key": run.key,
            "switchyard.run.kind": run.kind,
            "switchyard.state": run.state,
            "switchyard.attempt": run.attempt,
        }
    )
    if run.job:
        attributes["switchyard.job"] = run.job
    return attributes


def _status(run: RunRecord) -> Status:
    _, code = result_of(run)
    if code is StatusCode.ERROR:
        description = run.error_message or run.error_kind or run.state
        return Status(code, description[:MAX_STATUS_DESCRIPTION])
    return Status(code)


def _context(trace_id: str, span_id: str) -> SpanContext:
    return SpanContext(
        trace_id=int(trace_id, 16),
        span_id=int(span_id, 16),
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )


def run_span(
    run: RunRecord, resources: ResourceCatalog, links: Sequence[Link] = ()
) -> ReadableSpan:
    """The span of one stored run (its ids, parent, times, attributes, status)."""
    start, end = span_times(run)
    return ReadableSpan(
        name=run.display_name,
        context=_context(run.trace_id, run.id),
        parent=_context(run.trace_id, run.parent_id) if run.parent_id else None,
        resource=resources.for_source(run.source),
        attributes=run_attributes(run),
        links=tuple(links),
        kind=SpanKind.SERVER if run.is_root else SpanKind.INTERNAL,
        status=_status(run),
        start_time=start,
        end_time=end,
        instrumentation_scope=SCOPE,
    )


def hop_spans(hop: Hop, resources: ResourceCatalog) -> tuple[ReadableSpan, ReadableSpan]:
    """The CLIENT (caller's service) and SERVER (callee's service) spans of a hop."""
    caller, callee = hop.caller, hop.callee
    start, end = span_times(callee)
    caller_start, _ = span_times(caller)
    start = max(start, caller_start)
    end = max(start, end)
    callee_service = resources.service_name(callee.source)
    common = {
        "switchyard.link.relation": hop.relation,
        "switchyard.link.strength": hop.strength,
        "switchyard.link.evidence": json.dumps(hop.evidence, sort_keys=True, default=str),
    }
    client_attributes: dict[str, Any] = {
        **common,
        "peer.service": callee_service,
        "switchyard.source": caller.source,
        "switchyard.callee.source": callee.source,
        "switchyard.callee.run.key": callee.key,
    }
    if "faas.invocation_id" in callee.attributes or callee_service == "lambda":
        # The semantic conventions' faas client span.
        client_attributes["faas.invoked_name"] = callee.job or callee.display_name
        client_attributes["faas.invoked_provider"] = "aws"
        region = callee.attributes.get("cloud.region")
        if region:
            client_attributes["faas.invoked_region"] = str(region)
    client = ReadableSpan(
        name=f"call {callee_service} {callee.job or callee.display_name}",
        context=_context(caller.trace_id, hop.client_span_id),
        parent=_context(caller.trace_id, caller.id),
        resource=resources.for_source(caller.source),
        attributes=client_attributes,
        kind=SpanKind.CLIENT,
        status=Status(StatusCode.UNSET),
        start_time=start,
        end_time=end,
        instrumentation_scope=SCOPE,
    )
    server = ReadableSpan(
        name=callee.display_name,
        context=_context(caller.trace_id, hop.server_span_id),
        parent=_context(caller.trace_id, hop.client_span_id),
        resource=resources.for_source(callee.source),
        attributes={**run_attributes(callee), **common},
        links=(Link(_context(callee.trace_id, callee.id), {"switchyard.link": "callee run"}),),
        kind=SpanKind.SERVER,
        status=_status(callee),
        start_time=start,
        end_time=end,
        instrumentation_scope=SCOPE,
    )
    return client, server


def caller_and_callee(a: RunRecord, b: RunRecord, *, strength: str) -> tuple[RunRecord, RunRecord]:
    """Which of two linked runs called the other.

    A declared link is stored caller → callee (`a` → `b`). An exact link is
    stored in id order, so its direction is inferred: the run that started
    first is the caller (the Airflow task before the pod it launched, the
    cron job before the Lambda it invoked); on a tie, a task or try calls a
    root run; else the stored order stands.
    """
    if strength == "declared":
        return a, b
    a_start, b_start = span_times(a)[0], span_times(b)[0]
    if a_start != b_start:
        return (a, b) if a_start < b_start else (b, a)
    if a.is_root != b.is_root:
        return (b, a) if a.is_root else (a, b)
    return a, b


def spans_for(
    runs: Iterable[RunRecord], hops: Iterable[Hop], resources: ResourceCatalog
) -> list[ReadableSpan]:
    """Every span of a batch: each run once, then each hop's pair once."""
    hops = list({(h.caller.id, h.callee.id): h for h in hops}.values())
    back_links: dict[str, list[Link]] = {}
    for hop in hops:
        back_links.setdefault(hop.callee.id, []).append(
            Link(_context(hop.caller.trace_id, hop.client_span_id), {"switchyard.link": "caller"})
        )
    spans: list[ReadableSpan] = []
    seen: set[str] = set()
    for run in runs:
        if run.id not in seen:
            seen.add(run.id)
            spans.append(run_span(run, resources, back_links.get(run.id, ())))
    for hop in hops:
        spans.extend(hop_spans(hop, resources))
    return spans


__all__ = [
    "EXPORTABLE_STATES",
    "RESULTS",
    "RUN_COLUMNS",
    "Hop",
    "ResourceCatalog",
    "RunRecord",
    "caller_and_callee",
    "hop_spans",
    "result_of",
    "run_attributes",
    "run_span",
    "span_times",
    "spans_for",
]
