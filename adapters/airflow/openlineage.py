"""OpenLineage push: validate RunEvents, turn them into `RunEvent`s, serve the routes.

`validate_event` and `to_run_event` are pure. An event that Airflow's
OpenLineage provider sent carries the ``airflow`` run facet (a task try:
``dag.dag_id``, ``dagRun.run_id``, ``task.task_id``, ``taskInstance.try_number``
and ``map_index`` — absent for an unmapped task) or the ``airflowDagRun`` facet
(a DAG run). Such an event gets exactly the key the poller gives the same run
(`normalize.dag_run_key`, `refs.ti_key`) under the same source name, so a
pushed event and a polled one merge into one run. Any other producer's run is
keyed by its ``runId``, with its parent facet as parent and root.

`routes(source, sink, api_key)` serves ``POST /api/v1/lineage`` (one event,
200) and ``POST /api/v1/lineage/batch`` (an array; 200 with ``status`` =
``success`` or ``partial_success``, counts and ``errors``: one ``{index, loc,
msg}`` per refused event). An invalid body answers 422 with the offending
field's path; nothing of an invalid single event is stored, and only the valid
events of a batch are: one bad event never fails its batch. A batch is 422
only when none of its events is valid. Facets are untrusted: a facet of the
wrong shape (a list where an object belongs, a ``map_index`` that is not a
whole number, a parent ``runId`` that is not a UUID) refuses its event naming
the facet, never a 500. OpenLineage's ``HttpTransport`` raises on any non-2xx
answer and resends 500/502/503/504 up to five times; a 4xx is final, and a 200
with per-event errors keeps the valid events without a resend. Both routes need
``Authorization: Bearer <api_key>`` (401 otherwise, the API's own problem); a
source serves them without a key only with ``allow_anonymous``, said out loud in
its options and logged as a warning when the routes are mounted.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from adapters.airflow import normalize, refs
from gateway.contract import (
    ErrorInfo,
    EventSink,
    PushRejected,
    Ref,
    RunEvent,
    RunKind,
    State,
    loggable,
    read_json,
    secrets_match,
)

log = logging.getLogger(__name__)

EVENT_TYPES = ("START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER")
_STATE = {
    "START": State.running,
    "RUNNING": State.running,
    "COMPLETE": State.succeeded,
    "FAIL": State.failed,
    "ABORT": State.cancelled,
}
MAX_BODY_BYTES = 5 * 1024 * 1024
MAX_BATCH = 1000


class InvalidEvent(ValueError):
    """An OpenLineage body that cannot be read; `loc` is the path of the bad field."""

    def __init__(self, loc: Sequence[str | int], message: str) -> None:
        super().__init__(f"{'.'.join(str(p) for p in loc)}: {message}")
        self.loc = list(loc)
        self.message = message


def _require_map(value: Any, loc: list[str | int]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidEvent(loc, "must be an object")
    return value


def _require_str(container: Mapping[str, Any], name: str, loc: list[str | int]) -> str:
    value = container.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidEvent([*loc, name], "is required and must be a non-empty string")
    return value


def _uuid(value: Any, loc: list[str | int]) -> str:
    if not isinstance(value, str):
        raise InvalidEvent(loc, "must be a UUID string")
    try:
        uuid.UUID(value)
    except ValueError:
        raise InvalidEvent(loc, "must be a UUID") from None
    return value


def _mapping(value: Any) -> Mapping[str, Any]:
    """A facet part that should be an object; any other shape reads as absent."""
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    """An id a facet names (strings; numbers are accepted as their text)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ""


_WHOLE = re.compile(r"^-?[0-9]{1,9}$")


def _whole(value: Any, loc: list[str | int], default: int) -> int:
    """A facet's whole number (`map_index`, `try_number`); `default` when absent."""
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**9:
        return value
    if isinstance(value, str) and _WHOLE.match(value):
        return int(value)
    raise InvalidEvent(loc, "must be a whole number")


def validate_event(body: Any, loc: list[str | int] | None = None) -> Mapping[str, Any] | None:
    """The event if it is a RunEvent; None for a valid Dataset/Job event (nothing to store).

    Raises `InvalidEvent` naming the first bad field.
    """
    loc = loc or []
    event = _require_map(body, loc)
    event_time = _require_str(event, "eventTime", loc)
    try:
        parsed = normalize.parse_time(event_time)
    except ValueError as exc:
        raise InvalidEvent(
            [*loc, "eventTime"], f"is not an ISO 8601 date-time with offset: {exc}"
        ) from exc
    if parsed is None or parsed.tzinfo is None:
        raise InvalidEvent([*loc, "eventTime"], "must carry a timezone")
    _require_str(event, "producer", loc)
    if "run" not in event:
        if "job" in event or "dataset" in event:
            return None  # JobEvent / DatasetEvent: valid, carries no run
        raise InvalidEvent([*loc, "run"], "is required for a RunEvent")
    run = _require_map(event.get("run"), [*loc, "run"])
    _uuid(_require_str(run, "runId", [*loc, "run"]), [*loc, "run", "runId"])
    if "facets" in run and not isinstance(run["facets"], Mapping):
        raise InvalidEvent([*loc, "run", "facets"], "must be an object")
    parent = _mapping(_mapping(run.get("facets")).get("parent"))
    for part in ("run", "root"):
        # The parent facet names runs by UUID; they become keys, so they are checked.
        ref = _mapping(parent.get(part))
        if part == "root":
            ref = _mapping(ref.get("run"))
        if ref.get("runId") is not None:
            where = ["run", "runId"] if part == "root" else ["runId"]
            _uuid(ref["runId"], [*loc, "run", "facets", "parent", part, *where])
    job = _require_map(event.get("job"), [*loc, "job"])
    _require_str(job, "namespace", [*loc, "job"])
    _require_str(job, "name", [*loc, "job"])
    event_type = event.get("eventType")
    if event_type is not None and event_type not in EVENT_TYPES:
        raise InvalidEvent([*loc, "eventType"], f"must be one of {', '.join(EVENT_TYPES)}")
    return event


def _facets(event: Mapping[str, Any]) -> Mapping[str, Any]:
    facets = event["run"].get("facets")
    return facets if isinstance(facets, Mapping) else {}


def _error(facets: Mapping[str, Any], state: State) -> ErrorInfo | None:
    if state is not State.failed:
        return None
    message = _mapping(facets.get("errorMessage")).get("message")
    text = loggable(message[:16384]) if isinstance(message, str) and message else None
    return ErrorInfo(kind="task_failed", message=text)


def _times(event_type: str, when: datetime) -> tuple[datetime | None, datetime | None]:
    if event_type in ("START", "RUNNING"):
        return when, None
    if event_type in ("COMPLETE", "FAIL", "ABORT"):
        return None, when
    return None, None


def to_run_event(
    source: str, event: Mapping[str, Any], *, observed_at: datetime
) -> RunEvent | None:
    """The `RunEvent` for a validated OpenLineage RunEvent; None for OTHER (no state)."""
    event_type = str(event.get("eventType") or "OTHER")
    state = _STATE.get(event_type)
    if state is None:
        return None
    when = normalize.parse_time(event["eventTime"])
    assert when is not None  # validated
    started, ended = _times(event_type, when)
    facets = _facets(event)
    run_id = str(event["run"]["runId"])
    job = event["job"]
    ol_refs = [Ref(namespace="openlineage.run", value=run_id)]
    attributes: dict[str, Any] = {
        "openlineage.job.namespace": job["namespace"],
        "openlineage.job.name": job["name"],
        "openlineage.event_type": event_type,
        "openlineage.producer": event.get("producer"),
    }
    airflow = facets.get("airflow")
    dag_facet = facets.get("airflowDagRun")
    if isinstance(airflow, Mapping) and isinstance(airflow.get("taskInstance"), Mapping):
        return _airflow_task_event(
            source, airflow, facets, state, started, ended, observed_at, ol_refs, attributes
        )
    if isinstance(dag_facet, Mapping) and isinstance(dag_facet.get("dagRun"), Mapping):
        dag_run = dag_facet["dagRun"]
        dag_id = (
            _text(dag_run.get("dag_id"))
            or _text(_mapping(dag_facet.get("dag")).get("dag_id"))
            or job["name"]
        )
        run = _text(dag_run.get("run_id"))
        if not run:
            raise InvalidEvent(
                ["run", "facets", "airflowDagRun", "dagRun", "run_id"],
                "is required and must be a string",
            )
        # The DAG run's own dates are authoritative when the facet carries them.
        started = normalize.parse_time(dag_run.get("start_date")) or started
        ended = (normalize.parse_time(dag_run.get("end_date")) or ended) if state.terminal else None
        ol_refs.extend(
            refs.conf_refs(
                dag_run.get("conf") if isinstance(dag_run.get("conf"), Mapping) else None
            )
        )
        return RunEvent(
            source=source,
            kind=RunKind.run,
            key=normalize.dag_run_key(dag_id, run),
            job=dag_id,
            name=dag_id,
            state=state,
            started_at=started,
            ended_at=ended,
            observed_at=observed_at,
            nominal_time=normalize.parse_time(dag_run.get("logical_date")),
            error=_error(facets, state) if state is State.failed else None,
            attributes={**attributes, "airflow.dag_id": dag_id, "airflow.run_id": run},
            refs=ol_refs,
        )
    parent = _mapping(facets.get("parent"))
    # validate_event checked that both runIds, when present, are UUID strings.
    parent_key: str | None = _mapping(parent.get("run")).get("runId") or None
    root_key: str | None = None
    if parent_key is not None:
        root_key = _mapping(_mapping(parent.get("root")).get("run")).get("runId") or parent_key
    if parent_key == run_id:
        parent_key = root_key = None
    return RunEvent(
        source=source,
        kind=RunKind.task if parent_key else RunKind.run,
        key=run_id,
        parent_key=parent_key,
        root_key=root_key if parent_key else None,
        job=f"{job['namespace']}/{job['name']}",
        name=str(job["name"]),
        state=state,
        started_at=started,
        ended_at=ended,
        observed_at=observed_at,
        error=_error(facets, state),
        attributes={k: v for k, v in attributes.items() if v is not None},
        refs=ol_refs,
    )


def _airflow_task_event(
    source: str,
    airflow: Mapping[str, Any],
    facets: Mapping[str, Any],
    state: State,
    started: datetime | None,
    ended: datetime | None,
    observed_at: datetime,
    ol_refs: list[Ref],
    attributes: dict[str, Any],
) -> RunEvent:
    dag: Mapping[str, Any] = airflow["dag"] if isinstance(airflow.get("dag"), Mapping) else {}
    dag_run: Mapping[str, Any] = (
        airflow["dagRun"] if isinstance(airflow.get("dagRun"), Mapping) else {}
    )
    task: Mapping[str, Any] = airflow["task"] if isinstance(airflow.get("task"), Mapping) else {}
    ti = airflow["taskInstance"]
    dag_id = _text(dag_run.get("dag_id")) or _text(dag.get("dag_id"))
    run_id = _text(dag_run.get("run_id"))
    task_id = _text(task.get("task_id"))
    if not (dag_id and run_id and task_id):
        raise InvalidEvent(
            ["run", "facets", "airflow"], "must name dag_id, dagRun.run_id and task.task_id"
        )
    at = ["run", "facets", "airflow", "taskInstance"]
    if ti.get("map_index") is not None:
        map_index = _whole(ti.get("map_index"), [*at, "map_index"], -1)
    else:
        mapped = _mapping(facets.get("airflow_mappedTask")).get("mapIndex")
        map_index = _whole(mapped, ["run", "facets", "airflow_mappedTask", "mapIndex"], -1)
    try_number = _whole(ti.get("try_number") or None, [*at, "try_number"], 1)
    run_key = normalize.dag_run_key(dag_id, run_id)
    instant = normalize.parse_time(
        dag_run.get("logical_date") or dag_run.get("execution_date")
    ) or normalize.parse_time(dag_run.get("run_after"))
    for ref in refs.task_try_refs(
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        map_index=map_index,
        try_number=try_number,
        logical_date=None,  # the pushed runId below is the real one
        ol_namespace="",
    ):
        ol_refs.append(ref)
    return RunEvent(
        source=source,
        kind=RunKind.attempt,
        key=refs.ti_key(dag_id, run_id, task_id, map_index, try_number),
        parent_key=run_key,
        root_key=run_key,
        job=dag_id,
        name=task_id if map_index < 0 else f"{task_id}[{map_index}]",
        state=state,
        started_at=started,
        ended_at=ended,
        observed_at=observed_at,
        nominal_time=instant,
        attempt=try_number,
        error=_error(facets, state),
        attributes={
            **{k: v for k, v in attributes.items() if v is not None},
            "airflow.dag_id": dag_id,
            "airflow.run_id": run_id,
            "airflow.task_id": task_id,
            "airflow.map_index": map_index,
            "airflow.try_number": try_number,
        },
        refs=ol_refs,
    )


# --- HTTP ---------------------------------------------------------------------


def _rejected(exc: InvalidEvent) -> PushRejected:
    where = ".".join(str(p) for p in exc.loc) or "body"
    return PushRejected(422, f"{where}: {exc.message}", [(["body", *exc.loc], exc.message)])


def read_event(
    source: str, body: Any, loc: list[str | int], *, observed_at: datetime
) -> RunEvent | None:
    """`validate_event` then `to_run_event`; every refusal an `InvalidEvent` naming where.

    The facets are untrusted: a shape the conversion did not expect (a list
    where an object belongs, a date that is not one) is the sender's error,
    reported against `run.facets`, as is an event whose values the contract
    refuses (a control character in a name, a date outside what UTC holds).
    """
    event = validate_event(body, loc)
    if event is None:
        return None
    try:
        return to_run_event(source, event, observed_at=observed_at)
    except InvalidEvent as exc:
        raise InvalidEvent([*loc, *exc.loc], exc.message) from None
    except ValidationError as exc:
        found = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {str(e['msg']).removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise InvalidEvent(loc, f"makes a run event the gateway refuses ({found})") from None
    except (ValueError, TypeError, LookupError, AttributeError) as exc:
        raise InvalidEvent([*loc, "run", "facets"], f"cannot be read: {exc}") from None


def routes(
    source: str, sink: EventSink, *, api_key: str | None, allow_anonymous: bool = False
) -> APIRouter:
    """FastAPI routes for OpenLineage HTTP transport clients (Airflow's provider included).

    Without `api_key` the routes are refused (`ValueError`) unless `allow_anonymous`.
    """
    if not api_key:
        if not allow_anonymous:
            raise ValueError(
                f"source {source!r}: the OpenLineage routes need an API key "
                "(or allow_anonymous: true)"
            )
        log.warning(
            "source %r serves POST /api/v1/lineage without a key (allow_anonymous: true): "
            "anyone who can reach the gateway may write its runs",
            source,
        )
    router = APIRouter(tags=["openlineage"])

    def _authorize(request: Request) -> None:
        if not api_key:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not secrets_match(given.strip(), api_key):
            raise PushRejected(401, "a valid Bearer API key is required")

    async def _body(request: Request) -> Any:
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            raise InvalidEvent([], f"body exceeds {MAX_BODY_BYTES} bytes")
        try:
            return read_json(raw)
        except ValueError as exc:
            raise InvalidEvent([], f"is not JSON: {exc}") from exc

    @router.post("/api/v1/lineage")
    async def post_lineage(request: Request) -> JSONResponse:
        _authorize(request)
        observed_at = datetime.now().astimezone()
        try:
            converted = read_event(source, await _body(request), [], observed_at=observed_at)
        except InvalidEvent as exc:
            raise _rejected(exc) from None
        if converted is not None:
            await run_in_threadpool(sink.submit, source, [converted])
        return JSONResponse(
            {"status": "success", "stored": int(converted is not None)}, status_code=200
        )

    @router.post("/api/v1/lineage/batch")
    async def post_lineage_batch(request: Request) -> JSONResponse:
        _authorize(request)
        observed_at = datetime.now().astimezone()
        try:
            body = await _body(request)
        except InvalidEvent as exc:
            raise _rejected(exc) from None
        if not isinstance(body, list):
            raise _rejected(InvalidEvent([], "must be an array of events"))
        if len(body) > MAX_BATCH:
            raise _rejected(InvalidEvent([], f"holds {len(body)} events; the limit is {MAX_BATCH}"))
        converted: list[RunEvent] = []
        errors: list[dict[str, Any]] = []
        for index, item in enumerate(body):
            try:
                run_event = read_event(source, item, [index], observed_at=observed_at)
            except InvalidEvent as exc:
                errors.append({"index": index, "loc": ["body", *exc.loc], "msg": exc.message})
                continue
            if run_event is not None:
                converted.append(run_event)
        if errors and len(errors) == len(body):
            raise PushRejected(
                422,
                f"none of the {len(body)} events is valid",
                [(e["loc"], e["msg"]) for e in errors],
            )
        if converted:
            await run_in_threadpool(sink.submit, source, converted)
        return JSONResponse(
            {
                "status": "partial_success" if errors else "success",
                "received": len(body),
                "accepted": len(body) - len(errors),
                "failed": len(errors),
                "stored": len(converted),
                "errors": errors,
            },
            status_code=200,
        )

    return router
