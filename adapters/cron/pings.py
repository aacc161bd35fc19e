"""HTTP routes of the cron source: Healthchecks-compatible pings and the host API.

Pings (`HEAD|GET|POST /ping/<uuid>[/start|/fail|/log|/<0-255>][?rid=<uuid>]`,
or `/ping/<ping-key>/<slug>[/…]` with the source's `ping_key`) answer like
Healthchecks: 200 `OK` with a `Ping-Body-Limit` header, 404 `not found` for a
uuid that is not a registered check (unless the source has `auto_provision`)
and for an unknown slug without `?create=1`, 409 for a slug two checks share,
400 for an exit status above 255 or a malformed `rid`, 429 with `Retry-After`
when a ping would create a check beyond the source's `ProvisionLimit`. They
are unauthenticated by design: the uuid (or the ping key) is the secret. A
check a ping created is provisional (its events carry `PROVISIONAL`, its job
the label) until an operator lists it under `checks`: its failures open no
incident. A ping is answered only after its event is committed
(`EventSink.submit` returns once committed), so an acknowledged ping survives
a crash.

What a process remembers between pings is bounded: the open rid-less starts
and the checks whose job it has already sent each keep their most recent
`MAX_REMEMBERED` entries. A check forgotten is sent again with its next ping
(and a forgotten slug check needs `?create=1` again, as after a restart).

A ping without `rid` pairs with the last `start` of the same check seen by
this process (Healthchecks' `last_start`); with `rid` the pairing is exact and
survives restarts and replicas.

The host API (bearer token: one of the source's `options.tokens`, or its
single `options.token`) is what the `switchyard-cron` wrapper and `sync` talk
to:

- `POST /api/v1/cron/report` — `{"reports": [...]}` start/finish reports;
- `POST /api/v1/cron/jobs` — `{"host": ..., "jobs": [...]}` crontab lines;
- `GET /api/v1/cron/instructions?host=` — which job keys to pause/restore.

A token bound to hosts (`tokens[].hosts`) is refused with 403, naming the
host, for any report, job or instructions of another host: the `host` fields,
and the host inside job keys and cron-log run ids that carry one. Nothing of
a refused request is written. Pings carry no host (the uuid is the secret),
so they are not bound.

Structured reports, not pings with `rid`, carry the wrapper's runs: they hold
host, user, signal, output and the traceparent that a ping URL cannot, they
are authenticated, and a whole spool replays in one request, in order.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from adapters.cron.normalize import (
    CronPayloadError,
    PingAction,
    check_job,
    check_job_key,
    host_jobs,
    ping_event,
    report_event,
    slug_job,
)
from adapters.cron.tokens import HostGrant, host_of_key
from gateway.contract import (
    EventSink,
    JobSpec,
    PushRejected,
    RunEvent,
    ascii_number,
    read_json,
    secrets_match,
)

if TYPE_CHECKING:
    from adapters.cron.adapter import CronAdapter

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
PING_METHODS = ["GET", "POST", "HEAD"]
MAX_REMEMBERED = 10_000
MAX_REPORT_BODY = 16 * 1024 * 1024
# Threads that wait for a ping's commit. They only block on the sink, so there
# can be many: the more pings wait at once, the larger the group each commit
# carries (the shared default pool of 40 would cap every group at 40).
COMMIT_WAITERS = 256


_SLUG = re.compile(r"^[a-z0-9_-]{1,100}$")


@runtime_checkable
class FutureSink(Protocol):
    """An `EventSink` that an event loop can await directly (`GroupCommitSink`)."""

    def commit_async(
        self, source: str, events: Sequence[RunEvent], *, jobs: Sequence[JobSpec] = ()
    ) -> asyncio.Future[None]: ...


@dataclass(frozen=True)
class PingTarget:
    """What a ping URL names: the check's id for run keys, its job, name, and a job to create.

    `provisional` is a check no config registered; `provision` its job, until sent.
    """

    ident: str
    job: str
    name: str
    provision: JobSpec | None
    provisional: bool = False


def remember(book: OrderedDict[str, Any], key: str, value: Any, cap: int) -> None:
    """Put `key` in `book` as its most recent entry, forgetting the oldest beyond `cap`."""
    book[key] = value
    book.move_to_end(key)
    while len(book) > cap:
        book.popitem(last=False)


class PingBook:
    """Per-check memory a ping needs: the open rid-less start, jobs already sent (both LRU)."""

    def __init__(self, cap: int = MAX_REMEMBERED) -> None:
        self.cap = cap
        self.open_starts: OrderedDict[str, tuple[str, datetime]] = OrderedDict()
        self.jobs_sent: OrderedDict[str, None] = OrderedDict()

    def remember_start(self, uuid: str, run_key: str, at: datetime) -> None:
        remember(self.open_starts, uuid, (run_key, at), self.cap)

    def remember_sent(self, job: str) -> None:
        remember(self.jobs_sent, job, None, self.cap)


class ProvisionLimit:
    """A token bucket on creating checks: `take()` is 0 when one may be created now.

    Otherwise it is the seconds until a token is back (nothing is taken), which
    the ping answers as `429` with `Retry-After`. Thread-safe; one per source.
    """

    def __init__(
        self, per_minute: float, burst: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = per_minute / 60.0
        self.capacity = burst
        self._tokens = burst
        self._clock = clock
        self._at = clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate


async def _body(request: Request, limit: int) -> tuple[str, int]:
    """The body's first `limit` bytes as text, and its full size."""
    kept = bytearray()
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if len(kept) < limit:
            kept += chunk[: limit - len(kept)]
    return kept.decode("utf-8", "replace"), size


def _refused(exc: ValueError, at: Sequence[str | int]) -> PushRejected:
    """A 422 naming the field of the body a host got wrong (`reports[0].job`)."""
    if isinstance(exc, CronPayloadError):
        errors = [((*at, *exc.loc), exc.reason)]
    elif isinstance(exc, ValidationError):  # the run event a report makes breaks the contract
        errors = [
            ((*at, *e["loc"]), str(e["msg"]).removeprefix("Value error, ")) for e in exc.errors()
        ]
    else:
        errors = [(tuple(at), str(exc))]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in errors[0][0])
    detail = f"{where.lstrip('.') or 'body'}: {errors[0][1]}"
    return PushRejected(422, detail, [(("body", *loc), msg) for loc, msg in errors])


def cron_router(adapter: CronAdapter, sink: EventSink) -> APIRouter:
    router = APIRouter()
    book = PingBook()
    provisions = ProvisionLimit(adapter.provision_per_minute, adapter.provision_burst)
    source = adapter.name
    limit = adapter.ping_body_limit
    waiters = ThreadPoolExecutor(COMMIT_WAITERS, thread_name_prefix=f"{source}-ping")
    adapter.on_close(lambda: waiters.shutdown(wait=True))

    commit_async = sink.commit_async if isinstance(sink, FutureSink) else None

    async def submit(events: list[RunEvent], jobs: list[JobSpec]) -> None:
        if commit_async is not None:
            # The loop awaits the commit directly: no thread parked per pending
            # ping, and one wake-up of the loop per commit, not per ping.
            await commit_async(source, events, jobs=jobs)
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(waiters, lambda: sink.submit(source, events, jobs=jobs))

    def answer(text: str, status: int = 200, retry_after: float | None = None) -> Response:
        headers = {"Ping-Body-Limit": str(limit), "Access-Control-Allow-Origin": "*"}
        if retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        return PlainTextResponse(text, status_code=status, headers=headers)

    async def handle_ping(
        request: Request, target: PingTarget, action: PingAction, exit_code: int | None = None
    ) -> Response:
        # Most pings carry no query string: skip parsing an empty one.
        rid = request.query_params.get("rid") if request.scope["query_string"] else None
        if rid is not None and not _UUID.match(rid.lower()):
            return answer("invalid rid", 400)
        creates = target.provision is not None and target.job not in book.jobs_sent
        if creates:
            wait = provisions.take()
            if wait:
                return answer("rate limited: too many new checks", 429, retry_after=wait)
        rid = rid.lower() if rid else None
        now = datetime.now(UTC)
        headers = request.headers
        if "content-length" in headers or "transfer-encoding" in headers:
            body, size = await _body(request, limit)
        else:  # no body (curl's GET and HEAD): nothing to read
            body, size = "", 0
        ident = target.ident
        started_at = None
        if rid:
            run_key = f"ping/{ident}/{rid}"
        elif action == "start":
            run_key = f"ping/{ident}/{now.isoformat()}"
            book.remember_start(ident, run_key, now)
        elif ident in book.open_starts:
            run_key, started_at = book.open_starts[ident]
            if action != "log":
                del book.open_starts[ident]
        else:
            run_key = f"ping/{ident}/{now.isoformat()}"
        event = ping_event(
            source,
            check=ident,
            job=target.job,
            name=target.name,
            action=action,
            run_key=run_key,
            received_at=now,
            started_at=started_at,
            exit_code=exit_code,
            rid=rid,
            body=body,
            body_bytes=size,
            method=request.method,
            provisional=target.provisional,
        )
        jobs: list[JobSpec] = []
        if creates and target.provision is not None:
            jobs.append(target.provision)  # auto-provisioned: its job, on the first ping
        await submit([event], jobs)
        book.remember_sent(target.job)
        return answer("OK")

    def by_uuid(uuid: str) -> PingTarget | None:
        uuid = uuid.lower()
        if not _UUID.match(uuid):
            return None
        check = adapter.checks.get(uuid)
        if check is not None:
            return PingTarget(uuid, check_job_key(uuid, check), check.name or uuid, None)
        if not adapter.auto_provision:
            return None
        job = check_job_key(uuid, None)
        # The job to provision is built only until it has been sent once.
        provision = None if job in book.jobs_sent else check_job(source, uuid, None)
        return PingTarget(uuid, job, uuid, provision, provisional=True)

    def by_slug(request: Request, ping_key: str, slug: str) -> PingTarget | Response:
        if not adapter.ping_key or not secrets_match(ping_key, adapter.ping_key):
            return answer("not found", 404)
        if not _SLUG.match(slug):
            return answer("not found", 404)
        owners = adapter.slugs.get(slug, [])
        if len(owners) > 1:
            return answer("ambiguous slug", 409)
        if owners:
            uuid = owners[0]
            check = adapter.checks[uuid]
            return PingTarget(uuid, check_job_key(uuid, check), check.name or slug, None)
        job = slug_job(source, slug)
        if job.key in book.jobs_sent or request.query_params.get("create") == "1":
            return PingTarget(f"slug/{slug}", job.key, slug, job, provisional=True)
        return answer("not found", 404)

    def parse_action(segment: str) -> tuple[PingAction, int | None] | Response:
        if segment in ("start", "fail", "log"):
            return segment, None  # type: ignore[return-value]  # one of the literals, checked
        if segment.isascii() and segment.isdigit():  # Healthchecks' [0-9]+; not `²`
            code = ascii_number(segment, most=255)
            if code is None:
                return answer("invalid exit status", 400)
            return "exit", code
        return answer("not found", 404)

    async def ping(
        request: Request, target: PingTarget | Response | None, segment: str | None
    ) -> Response:
        if target is None:
            return answer("not found", 404)
        if isinstance(target, Response):
            return target
        if segment is None:
            return await handle_ping(request, target, "success")
        parsed = parse_action(segment)
        if isinstance(parsed, Response):
            return parsed
        return await handle_ping(request, target, parsed[0], parsed[1])

    async def ping_route(request: Request) -> Response:
        # One route for every ping form, split here: cheaper than matching six
        # patterns. With or without a trailing slash, as Healthchecks accepts
        # both (a redirect would lose the ping for `curl -fsS`).
        parts = request.path_params["rest"].removesuffix("/").split("/")
        if len(parts) == 1:  # /ping/<uuid>
            return await ping(request, by_uuid(parts[0]), None)
        if len(parts) == 2:
            first, second = parts
            if _UUID.match(first.lower()):  # /ping/<uuid>/<action>
                return await ping(request, by_uuid(first), second)
            return await ping(request, by_slug(request, first, second), None)  # /<key>/<slug>
        if len(parts) == 3:  # /ping/<ping-key>/<slug>/<action>
            return await ping(request, by_slug(request, parts[0], parts[1]), parts[2])
        return answer("not found", 404)

    # A plain Starlette route: a ping needs no dependency injection or OpenAPI
    # model, and skipping FastAPI's request machinery is most of its cost.
    router.routes.append(Route("/ping/{rest:path}", ping_route, methods=PING_METHODS))

    def authorised(request: Request) -> HostGrant:
        if not adapter.tokens.configured:
            raise HTTPException(
                403, f"cron source {source!r} has no token configured (options.tokens)"
            )
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        grant = adapter.tokens.grant(token.strip()) if scheme.lower() == "bearer" else None
        if grant is None:
            raise HTTPException(
                401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"}
            )
        return grant

    # A default, not `Annotated`: this module's annotations are strings that
    # FastAPI resolves in the module's globals, where `authorised` is not.
    grant_of_caller = Depends(authorised)

    def for_hosts(grant: HostGrant, hosts: set[str]) -> None:
        refused = grant.refused(hosts)
        if refused:
            raise HTTPException(
                403, f"this token is not bound to host {refused[0]!r} (options.tokens[].hosts)"
            )

    def named_hosts(host: str | None, *keys: str) -> set[str]:
        return {h for h in (host, *(host_of_key(k) for k in keys)) if h}

    async def json_body(request: Request) -> Any:
        length = ascii_number(request.headers.get("content-length") or "0", most=2**63) or 0
        if length > MAX_REPORT_BODY:
            raise HTTPException(413, f"body is {length} bytes; the limit is {MAX_REPORT_BODY}")
        try:
            return read_json(await request.body())
        except ValueError as exc:
            raise HTTPException(422, f"body is not JSON: {exc}") from exc

    @router.post("/api/v1/cron/report", tags=["cron"])
    async def report(request: Request, grant: HostGrant = grant_of_caller) -> JSONResponse:
        """Start/finish reports from `switchyard-cron` (one, or `{"reports": [...]}`)."""
        payload = await json_body(request)
        items = payload.get("reports") if isinstance(payload, dict) else None
        reports = items if isinstance(items, list) else [payload]
        events: list[RunEvent] = []
        at: tuple[str | int, ...] = ()
        for i, item in enumerate(reports):
            at = ("reports", i) if isinstance(items, list) else ()
            try:
                events.append(report_event(source, item))
            except ValueError as exc:
                raise _refused(exc, at) from None
        for event in events:
            host = event.attributes.get("host.name")
            for_hosts(grant, named_hosts(host, event.job or "", event.key))
        await submit(events, [])
        return JSONResponse({"accepted": len(events)})

    @router.post("/api/v1/cron/jobs", tags=["cron"])
    async def jobs(request: Request, grant: HostGrant = grant_of_caller) -> JSONResponse:
        """Crontab lines from `switchyard-cron sync`."""
        payload = await json_body(request)
        try:
            specs = host_jobs(source, payload)
        except ValueError as exc:
            raise _refused(exc, ()) from None
        sender = payload.get("host")
        for_hosts(grant, named_hosts(sender if isinstance(sender, str) else None))
        for spec in specs:
            for_hosts(grant, named_hosts(spec.labels.get("host"), spec.key))
        await submit([], specs)
        # What the host reports paused lets a later pause tell its own from the owner's.
        await run_in_threadpool(adapter.control.observe, {s.key: s.paused for s in specs})
        return JSONResponse({"jobs": len(specs)})

    @router.get("/api/v1/cron/instructions", tags=["cron"])
    async def instructions(
        host: str | None = None, grant: HostGrant = grant_of_caller
    ) -> JSONResponse:
        """Job keys whose crontab lines `sync` should comment out or restore."""
        if host is None and grant.hosts is not None:
            raise HTTPException(422, "host: a token bound to hosts must name the host it asks for")
        for_hosts(grant, named_hosts(host))
        wanted = await run_in_threadpool(adapter.control.instructions, host)
        return JSONResponse({"host": host, **wanted})

    return router
