"""The built-in dashboard: server-rendered HTML pages at `/`.

Pages (viewer and up): overview `/`, runs `/runs` (+ `/runs/rows`, the
table body the page polls for live updates), trace `/traces/{trace_id}`,
incidents `/incidents`, jobs `/jobs`, timeline `/timeline`. Actions (POST,
operator and up, CSRF-checked): re-poll a source now. Login is by API token
(`dashboards.web.session`); a page asked for without a session redirects to
`/login`.

Every page reads through `gateway.queries` with a LIMIT and, where it
aggregates, a time window, so each is a bounded index range scan however
many runs the store holds. Nothing here writes to the store but login and
logout, which add and delete the session's row.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter  # type: ignore[import-untyped, unused-ignore]  # no type hints
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from dashboards.web import charts
from dashboards.web.session import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    DashboardSession,
    app_signer,
    cookie_secure,
    end_session,
    load_session,
    start_session,
)
from dashboards.web.waterfall import build_waterfall
from gateway import incidents as incident_engine
from gateway.auth import Role, authenticate
from gateway.config import Config
from gateway.contract import (
    RunKind,
    State,
    ascii_number,
    in_utc_range,
    secrets_match,
    web_url,
)
from gateway.queries import (
    InvalidCursor,
    get_trace,
    list_jobs,
    list_runs,
    list_sources,
    recent_runs_by_job,
    run_counts,
)
from gateway.store.models import Job, Run

router = APIRouter(include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"app.css": "text/css", "app.js": "text/javascript"}
RUNS_PAGE_SIZE = 50
TIMELINE_MAX_ROWS = 120
JOBS_PAGE_SIZE = 50

RANGES: dict[str, timedelta | None] = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "all": None,
}
DEFAULT_RANGE = "24h"
TIMELINE_WINDOWS = {k: v for k, v in RANGES.items() if v is not None and v <= timedelta(days=7)}

_env = Environment(
    loader=PackageLoader("dashboards.web", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _fmt_ts(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "—"


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    return f"{hours // 24}d {hours % 24}h"


def _run_duration(run: Run, now: datetime) -> float | None:
    if run.started_at is None:
        return None
    end = run.ended_at or (now if run.state == "running" else None)
    return (end - run.started_at).total_seconds() if end else None


def _http_url(value: object) -> str | None:
    """`value` when it is an absolute http(s) URL (the contract's rule), else None.

    Templates build every href that carries data a source reported through this
    filter (the `external_link` macro): rows stored before the contract refused
    other schemes must not become `javascript:` links either.
    """
    if not isinstance(value, str):
        return None
    try:
        return web_url(value)
    except ValueError:
        return None


_env.filters["ts"] = _fmt_ts
_env.filters["dur"] = _fmt_duration
_env.filters["http_url"] = _http_url

# Scripts and stylesheets only from this origin (`/static/app.js` is the one
# script; no inline script, no inline event handler). Style attributes are
# allowed: charts position bars with them, and autoescaping keeps data out of
# them. Forms post only here, and no other site may frame a page.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "style-src-attr 'unsafe-inline'; img-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def hardened(response: Response) -> Response:
    """`response` with the dashboard's security headers."""
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


@dataclass(frozen=True)
class Nav:
    key: str
    label: str
    href: str


NAV = [
    Nav("overview", "Overview", "/"),
    Nav("runs", "Runs", "/runs"),
    Nav("incidents", "Incidents", "/incidents"),
    Nav("jobs", "Jobs", "/jobs"),
    Nav("timeline", "Timeline", "/timeline"),
    Nav("migrations", "Migrations", "/migrations"),
]


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _config(request: Request) -> Config:
    config: Config = request.app.state.config
    return config


def _session_of(request: Request) -> DashboardSession | None:
    return load_session(
        _engine(request), app_signer(request.app.state), request.cookies.get(SESSION_COOKIE)
    )


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)


def _render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    session: DashboardSession | None,
    status_code: int = 200,
    active: str = "",
) -> HTMLResponse:
    signer = app_signer(request.app.state)
    html = _env.get_template(template).render(
        **context,
        nav=NAV,
        active=active,
        user=session.principal if session else None,
        can_operate=session.can_operate if session else False,
        csrf=signer.csrf_for(session.nonce) if session else "",
    )
    response = HTMLResponse(html, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    hardened(response)
    return response


def _safe_next(target: str | None) -> str:
    # Only same-site paths: an open redirect after login would hand the
    # fresh session's first page view to anyone's URL.
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return "/"


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


# -- login -------------------------------------------------------------------


def _set_login_csrf(request: Request, response: Response, nonce: str) -> None:
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        nonce,
        httponly=True,
        samesite="strict",
        max_age=3600,
        path="/login",
        secure=cookie_secure(request, _config(request)),
    )


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    nonce = secrets.token_urlsafe(16)
    response = _render(
        request,
        "login.html",
        {"next": _safe_next(next), "login_csrf": nonce, "error": None},
        session=None,
    )
    _set_login_csrf(request, response, nonce)
    return response


@router.post("/login")
async def login_submit(request: Request) -> Response:
    form = await _form(request)
    target = _safe_next(form.get("next"))
    cookie_nonce = request.cookies.get(LOGIN_CSRF_COOKIE)
    error = None
    principal = None
    if not cookie_nonce or not secrets_match(form.get("csrf", ""), cookie_nonce):
        error = "The login form expired; please try again."
    else:
        principal = authenticate(_engine(request), form.get("token", "").strip())
        if principal is None:
            error = "That token is unknown or revoked."
        elif not principal.allows(Role.viewer):
            principal, error = None, "An ingest token only pushes events; it cannot sign in."
    if principal is None:
        nonce = secrets.token_urlsafe(16)
        response = _render(
            request,
            "login.html",
            {"next": target, "login_csrf": nonce, "error": error},
            session=None,
            status_code=401,
        )
        _set_login_csrf(request, response, nonce)
        return response
    signer = app_signer(request.app.state)
    done = RedirectResponse(target, status_code=303)
    done.set_cookie(
        SESSION_COOKIE,
        start_session(_engine(request), signer, principal.token_id),
        httponly=True,
        samesite="strict",
        max_age=signer.max_age_s,
        secure=cookie_secure(request, _config(request)),
    )
    done.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return done


@router.post("/logout")
async def logout(request: Request) -> Response:
    session = _session_of(request)
    form = await _form(request)
    if session is not None and not app_signer(request.app.state).check_csrf(
        session.nonce, form.get("csrf")
    ):
        return hardened(
            HTMLResponse("The form expired; reload the page and try again.", status_code=403)
        )
    if session is not None:
        # Server-side: a copy of the cookie (another tab, a proxy's log) dies with it.
        end_session(_engine(request), session.nonce)
    redirect = RedirectResponse("/login", status_code=303)
    redirect.delete_cookie(SESSION_COOKIE)
    return redirect


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    media = STATIC_FILES.get(name)
    if media is None:
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(
        STATIC_DIR / name, media_type=media, headers={"Cache-Control": "max-age=300"}
    )


# -- overview ----------------------------------------------------------------


def _open_incidents(session: Session, limit: int) -> list[Any]:
    page = incident_engine.list_incidents(session, status="open", limit=limit)
    return list(page.data)


@router.get("/")
def overview(request: Request) -> Response:
    auth = _session_of(request)
    if auth is None:
        return _to_login(request)
    now = datetime.now(UTC)
    engine = _engine(request)
    sources = list_sources(engine, _config(request), now=now)
    since = now - timedelta(hours=24)
    with Session(engine) as session:
        failing = list_runs(session, state=["failed"], kind="run", since=since, limit=10).items
        counts = run_counts(session, since=since, until=now, buckets=24)
        incidents = _open_incidents(session, 10)
    chart = charts.stacked_bars(counts)
    notice = repoll_notice(
        request.query_params.get("repoll", ""),
        request.query_params.get("outcome", ""),
        {s.status.name: s.status.holder for s in sources},
    )
    return _render(
        request,
        "overview.html",
        {
            "sources": sources,
            "troubled": [s for s in sources if s.status.status in ("degraded", "stale")],
            "failing": failing,
            "chart": chart,
            "incidents": incidents,
            "notice": notice,
            "now": now,
        },
        session=auth,
        active="overview",
    )


# -- runs --------------------------------------------------------------------


class FilterError(ValueError):
    """A dashboard filter value that cannot be used; names the field."""


@dataclass(frozen=True)
class RunFilters:
    source: str
    state: str
    kind: str
    job: str
    q: str
    range: str
    since_text: str
    until_text: str
    cursor: str
    since: datetime | None
    until: datetime | None

    def query(self, **override: str) -> str:
        params = {
            "source": self.source,
            "state": self.state,
            "kind": self.kind,
            "job": self.job,
            "q": self.q,
            "range": self.range,
            "since": self.since_text,
            "until": self.until_text,
            "cursor": self.cursor,
            **override,
        }
        return urlencode({k: v for k, v in params.items() if v})


def _parse_local(field_name: str, text: str) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return in_utc_range(value).astimezone(UTC)
    except ValueError:
        raise FilterError(f"{field_name}: {text!r} is not a date and time in UTC's range") from None


def parse_run_filters(params: Mapping[str, str], now: datetime) -> RunFilters:
    state = params.get("state", "").strip()
    if state and state not in {s.value for s in State}:
        raise FilterError(f"state: {state!r} is not a run state")
    kind = params.get("kind", "").strip()
    if kind and kind not in {k.value for k in RunKind}:
        raise FilterError(f"kind: {kind!r} is not a run kind")
    since_text = params.get("since", "").strip()
    until_text = params.get("until", "").strip()
    since = _parse_local("since", since_text)
    until = _parse_local("until", until_text)
    # Dates typed in win over the range menu: they are the more specific ask.
    chosen = "custom" if since or until else (params.get("range", "").strip() or DEFAULT_RANGE)
    if chosen != "custom":
        if chosen not in RANGES:
            raise FilterError(f"range: {chosen!r} is not one of {', '.join(RANGES)}, custom")
        width = RANGES[chosen]
        since, until = (now - width if width else None), None
        since_text = until_text = ""
    if since and until and until <= since:
        raise FilterError("until: must be after since")
    return RunFilters(
        source=params.get("source", "").strip(),
        state=state,
        kind=kind,
        job=params.get("job", "").strip(),
        q=params.get("q", "").strip()[:200],
        range=chosen,
        since_text=since_text,
        until_text=until_text,
        cursor=params.get("cursor", "").strip(),
        since=since,
        until=until,
    )


def _runs_context(request: Request, now: datetime) -> tuple[dict[str, Any], int]:
    params = dict(request.query_params)
    try:
        filters = parse_run_filters(params, now)
    except FilterError as exc:
        filters = parse_run_filters({}, now)
        return {"filters": filters, "runs": [], "next_cursor": None, "error": str(exc)}, 400
    try:
        with Session(_engine(request)) as session:
            page = list_runs(
                session,
                source=filters.source or None,
                job=filters.job or None,
                state=[filters.state] if filters.state else (),
                kind=filters.kind or None,
                since=filters.since,
                until=filters.until,
                q=filters.q or None,
                cursor=filters.cursor or None,
                limit=RUNS_PAGE_SIZE,
            )
    except InvalidCursor as exc:
        return {"filters": filters, "runs": [], "next_cursor": None, "error": str(exc)}, 400
    return {
        "filters": filters,
        "runs": [(r, _run_duration(r, now)) for r in page.items],
        "next_cursor": page.next_cursor,
        "error": None,
    }, 200


@router.get("/runs")
def runs_page(request: Request) -> Response:
    auth = _session_of(request)
    if auth is None:
        return _to_login(request)
    now = datetime.now(UTC)
    context, status = _runs_context(request, now)
    context.update(
        sources=[s.name for s in _config(request).sources],
        states=[s.value for s in State],
        kinds=[k.value for k in RunKind],
        ranges=[*RANGES, "custom"],
        now=now,
    )
    return _render(request, "runs.html", context, session=auth, status_code=status, active="runs")


@router.get("/runs/rows")
def runs_rows(request: Request) -> Response:
    """The runs table body for the current filters: what the live refresh swaps in."""
    auth = _session_of(request)
    if auth is None:
        return hardened(HTMLResponse("log in again", status_code=401))
    now = datetime.now(UTC)
    context, status = _runs_context(request, now)
    context["now"] = now
    return _render(request, "_run_rows.html", context, session=auth, status_code=status)


# -- trace -------------------------------------------------------------------


@router.get("/traces/{trace_id}")
def trace_page(request: Request, trace_id: str) -> Response:
    auth = _session_of(request)
    if auth is None:
        return _to_login(request)
    now = datetime.now(UTC)
    with Session(_engine(request)) as session:
        view = get_trace(session, trace_id.lower()[:64])
    if view is None:
        return _render(
            request,
            "error.html",
            {"title": "Trace not found", "message": f"No spans with trace id {trace_id!r}."},
            session=auth,
            status_code=404,
        )
    waterfall = build_waterfall(view.spans, view.links, now=now, primary_trace=view.trace_id)
    names = {s.id: s for s in view.spans}
    return _render(
        request,
        "trace.html",
        {
            "view": view,
            "waterfall": waterfall,
            "spans_by_id": names,
            "axis": charts.time_axis(waterfall.start, waterfall.end),
            "now": now,
        },
        session=auth,
        active="runs",
    )


# -- jobs --------------------------------------------------------------------


def next_expected(job: Job, now: datetime) -> datetime | None:
    """The next time `job`'s schedule fires, computed in the job's own timezone."""
    if job.paused or not job.schedule:
        return None
    try:
        zone = ZoneInfo(job.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return None
    if not croniter.is_valid(job.schedule):
        return None
    nxt = croniter(job.schedule, now.astimezone(zone)).get_next(datetime)
    return nxt.astimezone(UTC) if isinstance(nxt, datetime) else None


@router.get("/jobs")
def jobs_page(request: Request) -> Response:
    auth = _session_of(request)
    if auth is None:
        return _to_login(request)
    now = datetime.now(UTC)
    source = request.query_params.get("source", "").strip()
    q = request.query_params.get("q", "").strip()[:200]
    cursor = request.query_params.get("cursor", "").strip()
    error = None
    with Session(_engine(request)) as session:
        try:
            page = list_jobs(
                session,
                source=source or None,
                q=q or None,
                cursor=cursor or None,
                limit=JOBS_PAGE_SIZE,
            )
        except InvalidCursor as exc:
            error = str(exc)
            page = list_jobs(session, source=source or None, q=q or None, limit=JOBS_PAGE_SIZE)
        recent = recent_runs_by_job(session, page.items, per_job=12)
    rows = [
        {"job": job, "next": next_expected(job, now), "recent": list(reversed(recent[job.id]))}
        for job in page.items
    ]
    next_query = (
        urlencode(
            {k: v for k, v in {"source": source, "q": q, "cursor": page.next_cursor}.items() if v}
        )
        if page.next_cursor
        else None
    )
    return _render(
        request,
        "jobs.html",
        {
            "rows": rows,
            "source": source,
            "q": q,
            "sources": [s.name for s in _config(request).sources],
            "next_query": next_query,
            "error": error,
            "now": now,
        },
        session=auth,
        status_code=400 if error else 200,
        active="jobs",
    )


# -- timeline ----------------------------------------------------------------


@router.get("/timeline")
def timeline_page(request: Request) -> Response:
    auth = _session_of(request)
    if auth is None:
        return _to_login(request)
    now = datetime.now(UTC)
    window = request.query_params.get("window", "6h")
    if window not in TIMELINE_WINDOWS:
        window = "6h"
    source = request.query_params.get("source", "").strip()
    since = now - TIMELINE_WINDOWS[window]
    with Session(_engine(request)) as session:
        page = list_runs(
            session, kind="run", source=source or None, since=since, limit=TIMELINE_MAX_ROWS
        )
    gantt = charts.gantt(page.items, since=since, until=now, now=now)
    return _render(
        request,
        "timeline.html",
        {
            "gantt": gantt,
            "window": window,
            "windows": list(TIMELINE_WINDOWS),
            "source": source,
            "sources": [s.name for s in _config(request).sources],
            "truncated": page.next_cursor is not None,
            "max_rows": TIMELINE_MAX_ROWS,
            "now": now,
        },
        session=auth,
        active="timeline",
    )


# -- incidents ---------------------------------------------------------------


INCIDENT_STATUSES = ("open", "resolved", "merged")


@router.get("/incidents")
def incidents_page(request: Request) -> Response:
    auth = _session_of(request)
    if auth is None:
        return _to_login(request)
    status = request.query_params.get("status", "").strip()
    if status not in INCIDENT_STATUSES:
        status = ""
    cursor = request.query_params.get("cursor", "").strip()
    next_query = None
    error = None
    with Session(_engine(request)) as session:
        try:
            page = incident_engine.list_incidents(
                session, status=status or None, limit=50, cursor=cursor or None
            )
        except InvalidCursor as exc:
            error = str(exc)
            page = incident_engine.list_incidents(session, status=status or None, limit=50)
    items = list(page.data)
    if page.next_cursor:
        next_query = urlencode(
            {k: v for k, v in {"status": status, "cursor": page.next_cursor}.items() if v}
        )
    return _render(
        request,
        "incidents.html",
        {
            "incidents": items,
            "status": status,
            "statuses": INCIDENT_STATUSES,
            "next_query": next_query,
            "error": error,
        },
        session=auth,
        status_code=400 if error else 200,
        active="incidents",
    )


@router.get("/incidents/{incident_id}")
def incident_page(request: Request, incident_id: str) -> Response:
    auth = _session_of(request)
    if auth is None:
        return _to_login(request)
    detail = None
    number = ascii_number(incident_id, most=incident_engine.MAX_INCIDENT_ID)
    if number is not None:
        with Session(_engine(request)) as session:
            detail = incident_engine.incident_detail(session, number)
    if detail is None:
        return _render(
            request,
            "error.html",
            {"title": "Incident not found", "message": f"No incident {incident_id!r}."},
            session=auth,
            status_code=404,
        )
    runs = {step.run.id: step.run for step in detail.chain}
    if detail.root_cause is not None:
        runs.setdefault(detail.root_cause.id, detail.root_cause)
    with Session(_engine(request)) as session:
        traces = {
            r.id: r.trace_id
            for r in session.exec(select(Run).where(col(Run.id).in_(list(runs)[:500])))
        }
    return _render(
        request,
        "incident.html",
        {"incident": detail, "runs": runs, "traces": traces},
        session=auth,
        active="incidents",
    )


# -- actions -----------------------------------------------------------------


async def operator_form(
    request: Request, what: str
) -> tuple[DashboardSession, dict[str, str]] | Response:
    """The session and form of an operator action, or the answer refusing it.

    Every action form goes through here: a session (401), a valid CSRF token
    bound to it (403) and the operator role (403), in that order.
    """
    auth = _session_of(request)
    if auth is None:
        return hardened(HTMLResponse("log in first", status_code=401))
    form = await _form(request)
    if not app_signer(request.app.state).check_csrf(auth.nonce, form.get("csrf")):
        return _render(
            request,
            "error.html",
            {"title": "Form expired", "message": "Reload the page and try again."},
            session=auth,
            status_code=403,
        )
    if not auth.can_operate:
        return _render(
            request,
            "error.html",
            {
                "title": "Not allowed",
                "message": f"{what} needs the operator role; token {auth.principal.name!r} "
                f"has {auth.principal.role.value}.",
            },
            session=auth,
            status_code=403,
        )
    return auth, form


@router.post("/actions/sources/{name}/poll")
async def repoll_source(request: Request, name: str) -> Response:
    """Have this replica poll `name` now (operator; CSRF-checked).

    Redirects to the overview with the outcome: `polled` (this replica holds
    the lease and polls at once), `elsewhere` (another replica holds it; the
    overview names that replica), `no-pollers` (this process runs none) or
    `disabled`.
    """
    gate = await operator_form(request, "Re-polling")
    if isinstance(gate, Response):
        return gate
    auth, _form_fields = gate
    if name not in {s.name for s in _config(request).sources}:
        return _render(
            request,
            "error.html",
            {"title": "Unknown source", "message": f"No configured source named {name!r}."},
            session=auth,
            status_code=404,
        )
    entry = next(s for s in _config(request).sources if s.name == name)
    runtime = getattr(request.app.state, "runtime", None)
    if not entry.enabled:
        outcome = "disabled"
    elif runtime is None:
        outcome = "no-pollers"
    else:
        outcome = "polled" if runtime.poll_now(name) else "elsewhere"
    return RedirectResponse("/?" + urlencode({"repoll": name, "outcome": outcome}), status_code=303)


def repoll_notice(source: str, outcome: str, holders: Mapping[str, str | None]) -> str | None:
    """What the overview says after "Re-poll now" (`outcome` as the action set it)."""
    if source not in holders:
        return None
    if outcome == "polled":
        return f"Polling {source} now; its status and runs update when the poll finishes."
    if outcome == "elsewhere":
        holder = holders[source]
        if holder:
            return (
                f"{source} is polled by replica {holder}, which holds its lease; this "
                "replica cannot poll it now. It polls on that replica's schedule."
            )
        return (
            f"No replica holds the lease of {source} at the moment (a take-over is under "
            "way); the replica that takes it polls it at once."
        )
    if outcome == "no-pollers":
        return (
            f"This gateway process runs no pollers, so it cannot poll {source}; the "
            "replica holding its lease polls it on its schedule."
        )
    if outcome == "disabled":
        return f"{source} is disabled in the configuration, so no replica polls it."
    return None


__all__ = [
    "FilterError",
    "RunFilters",
    "next_expected",
    "parse_run_filters",
    "repoll_notice",
    "router",
]
