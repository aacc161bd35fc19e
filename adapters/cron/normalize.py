"""Pure translation of cron payloads into `RunEvent`s and `JobSpec`s.

Three payloads reach the gateway from cron hosts: the wrapper's (and the cron
log reader's) start/finish reports, Healthchecks-style pings, and crontab
lines sent by `switchyard-cron sync`. Every function here is a function of its
arguments only (no clock, no I/O): the same report gives the same event, so a
report replayed from a host's spool is a duplicate the gateway ignores.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from croniter import croniter  # type: ignore[import-untyped, unused-ignore]  # no type hints; mypy flags only the first importer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.cron.crontab import MACROS
from gateway.contract import (
    MAX_ATTRIBUTES_BYTES,
    PROVISIONAL,
    ErrorInfo,
    JobSpec,
    Line,
    Name,
    Ref,
    RunEvent,
    State,
    Text,
    as_one_line,
    loggable,
    parse_traceparent,
)

# Room left in an event's attributes for the log text, after the other keys.
LOG_ATTRIBUTE_BYTES = MAX_ATTRIBUTES_BYTES - 8 * 1024
NAME_CHARS = 200

PingAction = Literal["start", "success", "fail", "log", "exit"]


class CronPayloadError(ValueError):
    """A report or job from a host is malformed; the message names the field.

    `loc` is the field's path in the body (`("jobs", 0, "key")`), `reason` what
    is wrong with it, so the route can answer a problem naming the field.
    """

    def __init__(self, message: str, loc: Sequence[str | int] = (), reason: str = "") -> None:
        super().__init__(message)
        self.loc = tuple(loc)
        self.reason = reason or message


# A host is untrusted: its names and ids are one line of printable text (the
# contract's `Name`; a crontab line and its command may hold tabs, `Line`),
# numbers are finite and in range. A command run through the
# wrapper may span lines (`sh -c $'a\nb'`), so it and the output are free text.
# Output is what the job printed: NUL in it is replaced, not refused (`loggable`).


class HostReport(BaseModel):
    """One start or finish of one run, from the wrapper or the cron log reader."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    v: int = 1
    origin: Literal["wrapper", "cronlog"] = "wrapper"
    phase: Literal["start", "finish"]
    run_id: Name = Field(min_length=1, max_length=512)
    job: Name = Field(min_length=1, max_length=1024)
    check: Name | None = None
    host: Name = Field(min_length=1, max_length=255)
    user: Name | None = None
    command: Text | None = None
    pid: int | None = Field(default=None, ge=0, le=2**31 - 1)
    traceparent: Name | None = None
    started_at: datetime
    ended_at: datetime | None = None
    sent_at: datetime
    exit_code: int | None = Field(default=None, ge=-(2**31), le=2**31 - 1)
    signal: int | None = Field(default=None, ge=0, le=255)
    duration_s: float | None = None
    output: str | None = None
    output_bytes: int | None = Field(default=None, ge=0, le=2**63 - 1)
    error: Name | None = None
    message: str | None = None


class HostJob(BaseModel):
    """One crontab line as `switchyard-cron sync` reports it (a crontab line is one line)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    key: Name = Field(min_length=1, max_length=1024)
    host: Name = Field(min_length=1, max_length=255)
    user: Name
    schedule: Name | None
    schedule_native: Name
    timezone: Name = "UTC"
    command: Line
    wrapped_command: Line | None = None
    check: Name | None = None
    paused: bool = False
    removed: bool = False
    path: Name
    line_no: int = Field(ge=0, le=2**31 - 1)
    line: Line


def fit_text(text: str, max_json_bytes: int) -> str:
    """The tail of `text` whose JSON encoding fits in `max_json_bytes`."""
    while len(json.dumps(text)) > max_json_bytes:
        encoded = len(json.dumps(text))
        keep = max(0, len(text) * max_json_bytes // encoded - 16)
        text = text[len(text) - keep :] if keep else ""
    return text


def _validated(
    model: type[BaseModel], payload: Any, what: str, at: Sequence[str | int] = ()
) -> Any:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(body)"
        reason = str(first["msg"]).removeprefix("Value error, ")
        raise CronPayloadError(f"{what}: {field}: {reason}", (*at, *first["loc"]), reason) from exc


def report_event(source: str, payload: Any) -> RunEvent:
    """The event for one wrapper or cron-log report."""
    r: HostReport = _validated(HostReport, payload, "report")
    attributes: dict[str, Any] = {"host.name": r.host, "cron.origin": r.origin}
    if r.user:
        attributes["process.owner"] = r.user
    if r.command:
        attributes["process.command_line"] = r.command[:4096]
    if r.pid is not None:
        attributes["process.pid"] = r.pid
    refs = [Ref(namespace="cron.rid", value=r.run_id)] if r.origin == "wrapper" else []
    if r.traceparent and parse_traceparent(r.traceparent):
        trace_id = r.traceparent.split("-")[1]
        refs += [
            Ref(namespace="w3c.traceparent", value=r.traceparent),
            Ref(namespace="w3c.trace", value=trace_id),
        ]
    state, error = State.running, None
    if r.phase == "finish":
        if r.exit_code is None:
            reason = "a finish report needs an exit code"
            raise CronPayloadError(f"report: exit_code: {reason}", ("exit_code",), reason)
        attributes["process.exit_code"] = r.exit_code
        if r.duration_s is not None:
            attributes["cron.duration_s"] = r.duration_s
        if r.output_bytes is not None:
            attributes["cron.output_bytes"] = r.output_bytes
        if r.output:
            attributes["cron.output"] = fit_text(loggable(r.output), LOG_ATTRIBUTE_BYTES)
        state = State.succeeded if r.exit_code == 0 else State.failed
        if r.exit_code != 0:
            error = _exit_error(r)
    return RunEvent(
        source=source,
        key=r.run_id,
        job=r.job,
        # A wrapped `sh -c` command may span lines; a name is one line.
        name=as_one_line(r.check or r.command or r.job)[:NAME_CHARS],
        state=state,
        started_at=r.started_at,
        ended_at=r.ended_at if r.phase == "finish" else None,
        observed_at=r.sent_at,
        error=error,
        attributes=attributes,
        refs=refs,
    )


def _exit_error(r: HostReport) -> ErrorInfo:
    if r.error == "exec_failed":
        return ErrorInfo(
            kind="exec_failed", message=loggable((r.message or "")[:1024]), exit_code=r.exit_code
        )
    if r.signal:
        return ErrorInfo(
            kind="signal", message=f"killed by signal {r.signal}", exit_code=r.exit_code
        )
    return ErrorInfo(kind="exit_code", message=f"exit status {r.exit_code}", exit_code=r.exit_code)


def ping_event(
    source: str,
    *,
    check: str,
    job: str,
    name: str,
    action: PingAction,
    run_key: str,
    received_at: datetime,
    started_at: datetime | None = None,
    exit_code: int | None = None,
    rid: str | None = None,
    body: str = "",
    body_bytes: int = 0,
    method: str = "GET",
    provisional: bool = False,
) -> RunEvent:
    """The event for one Healthchecks-style ping.

    `start` opens a run, success (or exit 0) and `fail` (or exit 1-255) close
    it, and `log` adds a log entry without changing the state: on a run it
    names (by `rid` or an open start) it is sent as `running`, which never
    regresses a finished run; a log naming no run stands alone as `unknown`.
    A ping of a check nobody registered is `provisional` (`PROVISIONAL`).
    """
    attributes: dict[str, Any] = {"cron.origin": "ping", "cron.ping.check": check}
    attributes["cron.ping.method"] = method
    if provisional:
        attributes[PROVISIONAL] = True
    if body:
        key = "cron.ping.log" if action == "log" else "cron.output"
        attributes[key] = fit_text(loggable(body), LOG_ATTRIBUTE_BYTES)
    if body_bytes:
        attributes["cron.output_bytes"] = body_bytes
    refs = [Ref(namespace="cron.rid", value=rid)] if rid else []
    error = None
    ended_at: datetime | None = None
    if action == "start":
        state, started_at = State.running, received_at
    elif action == "log":
        state = State.running if (rid or started_at) else State.unknown
    elif action == "success" or (action == "exit" and exit_code == 0):
        state, ended_at = State.succeeded, received_at
    else:
        state, ended_at = State.failed, received_at
        if action == "exit":
            error = ErrorInfo(
                kind="exit_code", message=f"exit status {exit_code}", exit_code=exit_code
            )
        else:
            error = ErrorInfo(kind="fail", message="failure ping")
    if action == "exit" and exit_code is not None:
        attributes["process.exit_code"] = exit_code
    return RunEvent(
        source=source,
        key=run_key,
        job=job,
        name=name[:NAME_CHARS],
        state=state,
        started_at=started_at,
        ended_at=ended_at,
        observed_at=received_at,
        error=error,
        attributes=attributes,
        refs=refs,
    )


def host_jobs(source: str, payload: Any) -> list[JobSpec]:
    """The jobs in one `switchyard-cron sync` body: `{"host": ..., "jobs": [...]}`."""
    if not isinstance(payload, dict) or not isinstance(payload.get("jobs"), list):
        raise CronPayloadError(
            "jobs: expected an object with a 'jobs' list", ("jobs",), "expected a list"
        )
    specs = []
    for i, item in enumerate(payload["jobs"]):
        j: HostJob = _validated(HostJob, item, f"jobs[{i}]", ("jobs", i))
        schedule = j.schedule if j.schedule and croniter.is_valid(j.schedule) else None
        definition = j.model_dump()
        if j.schedule and schedule is None:
            definition["schedule_error"] = f"not a valid cron expression: {j.schedule!r}"
        specs.append(
            JobSpec(
                source=source,
                key=j.key,
                kind="crontab",
                name=as_one_line(j.check or j.wrapped_command or j.command)[:NAME_CHARS],
                schedule=schedule,
                schedule_native=j.schedule_native,
                timezone=j.timezone,
                paused=j.paused or j.removed,
                owner=j.user,
                labels={
                    "host": j.host,
                    "user": j.user,
                    **({"removed": "true"} if j.removed else {}),
                },
                definition=definition,
                source_text=j.line,
            )
        )
    return specs


class CheckConfig(BaseModel):
    """One registered ping check (`options.checks.<uuid>` of a cron source)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    slug: str | None = Field(default=None, description="for /ping/<ping_key>/<slug> URLs")
    job: str | None = Field(default=None, description="job key; default ping/<uuid>")
    schedule: str | None = None
    timezone: str = "UTC"
    grace_s: float | None = Field(default=None, ge=0)
    max_duration_s: float | None = Field(default=None, ge=0)
    min_duration_s: float | None = Field(default=None, ge=0)


def check_job_key(uuid: str, check: CheckConfig | None) -> str:
    return check.job if check and check.job else f"ping/{uuid}"


def check_job(source: str, uuid: str, check: CheckConfig | None) -> JobSpec:
    """The job a ping check stands for (registered, or auto-provisioned on first ping).

    An auto-provisioned one (`check` None) is labelled `PROVISIONAL` until adopted.
    """
    native = check.schedule if check else None
    schedule = MACROS.get(native.lower(), native) or None if native else None
    if schedule and not croniter.is_valid(schedule):
        raise CronPayloadError(f"checks.{uuid}.schedule: not a cron expression: {native!r}")
    return JobSpec(
        source=source,
        key=check_job_key(uuid, check),
        kind="job",
        name=(check.name if check and check.name else uuid),
        schedule=schedule,
        schedule_native=native,
        timezone=check.timezone if check else "UTC",
        grace_s=check.grace_s if check else None,
        max_duration_s=check.max_duration_s if check else None,
        min_duration_s=check.min_duration_s if check else None,
        labels={"ping.uuid": uuid, **({} if check else {PROVISIONAL: "true"})},
        definition={"ping_uuid": uuid},
    )


def slug_job(source: str, slug: str) -> JobSpec:
    """The job a slug ping creates with `?create=1` (Healthchecks' auto-provisioning)."""
    return JobSpec(
        source=source,
        key=f"ping/slug/{slug}",
        kind="job",
        name=slug,
        labels={"ping.slug": slug, PROVISIONAL: "true"},
        definition={"ping_slug": slug},
    )
