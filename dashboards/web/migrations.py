"""The dashboard's migration pages: the inventory at `/migrations`, one job at `/migrations/{id}`.

The inventory page renders `migration_tools.inventory.collect_inventory`, the
function behind `GET /api/v1/inventory`, a page of `INVENTORY_PAGE_SIZE` jobs
at a time (it reads at most `INVENTORY_SAMPLES` durations per job). A job's
page shows its lifecycle state, the stored flow YAML, the parity summary and
the audit log (newest `AUDIT_ROWS`); an operator gets one form per action the
job's state allows. The wrap form says where the work would run (the host
and user over SSH, or the Kestra worker itself) before it is pressed, and a
wrapped job's page keeps saying where it runs. Each form posts to
`/actions/migrations/{id}/{action}` (CSRF-checked, operator and up), which
calls the API's own `perform_action`, so the dashboard and the API move jobs
by one code path and audit them the same way (`token:<name>`). A refused (409) or failed (502)
action re-renders the job's page with the reason; nothing here raises a
traceback to the browser.
"""

from __future__ import annotations

from typing import Any, get_args
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session

from dashboards.web.routes import _engine, _render, _session_of, _to_login, operator_form
from dashboards.web.session import DashboardSession
from gateway.api.problems import ProblemError
from gateway.api.routes.migrations import Action, ActionRequest, _migrations, perform_action
from gateway.contract import ascii_number, job_id_for
from gateway.store.models import Job, Migration

router = APIRouter(include_in_schema=False)

INVENTORY_PAGE_SIZE = 100
MAX_PAGE = 10**6  # a page number past any inventory; a longer one is not a number we read
INVENTORY_SAMPLES = 500
AUDIT_ROWS = 100
ACTIONS: tuple[str, ...] = get_args(Action)

# What each action does, as the form says it (operators read this before pressing).
ACTION_HELP = {
    "translate": "Translate the job into a Kestra flow and store it (touches no system).",
    "deploy": "Push the translated flow to Kestra with its triggers disabled.",
    "wrap": "Deploy a Kestra flow that runs the legacy job, and pause the legacy schedule.",
    "shadow": "Run the native flow beside the legacy job to measure parity.",
    "cutover": "Pause the legacy schedule and enable the native flow's triggers.",
    "retire": "Mark the legacy job retired (the native flow runs it).",
    "rollback": "Undo everything: resume the legacy schedule, remove Kestra flows.",
}


def _flag(form: dict[str, str], name: str) -> bool:
    return form.get(name, "").strip().lower() in ("1", "on", "true", "yes")


def allowed_actions(state: str) -> list[str]:
    """The lifecycle actions `RULES` allow from `state`, in lifecycle order."""
    from migration_tools.lifecycle import RULES, MigrationState

    try:
        current = MigrationState(state)
    except ValueError:
        return []
    return [a for a in ACTIONS if current in RULES[a].allowed_from]


@router.get("/migrations")
def inventory_page(request: Request) -> Response:
    auth = _session_of(request)
    if auth is None:
        return _to_login(request)
    source = request.query_params.get("source", "").strip()[:128]
    page_text = request.query_params.get("page", "1").strip()
    page = ascii_number(page_text, most=MAX_PAGE) or 1
    # Imported here, as the API does: only a page that needs it loads the Kestra SDK.
    from migration_tools.inventory import collect_inventory

    inventory = collect_inventory(
        _engine(request), source=source or None, max_samples=INVENTORY_SAMPLES
    )
    start = (page - 1) * INVENTORY_PAGE_SIZE
    items = inventory.items[start : start + INVENTORY_PAGE_SIZE]
    sources = sorted({i.source for i in inventory.items}) if not source else [source]

    def query(n: int) -> str:
        return urlencode({k: v for k, v in {"source": source, "page": str(n)}.items() if v})

    more = start + INVENTORY_PAGE_SIZE < len(inventory.items)
    return _render(
        request,
        "migrations.html",
        {
            "inventory": inventory,
            "items": items,
            "ids": {i.ref: job_id_for(i.source, i.key) for i in items},
            "source": source,
            "sources": sources,
            "page": page,
            "next_query": query(page + 1) if more else None,
            "prev_query": query(page - 1) if page > 1 else None,
        },
        session=auth,
        active="migrations",
    )


def _detail(
    request: Request,
    auth: DashboardSession,
    job_id: str,
    *,
    error: str | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    from migration_tools.lifecycle import MigrationError

    engine = _engine(request)
    with Session(engine) as session:
        job = session.get(Job, job_id)
        stored = session.get(Migration, job_id) if job is not None else None
    if job is None:
        return _render(
            request,
            "error.html",
            {"title": "Job not found", "message": f"No discovered job with id {job_id!r}."},
            session=auth,
            status_code=404,
        )
    parity: dict[str, Any] | None = None
    parity_note = None
    state = stored.state if stored is not None else "observed"
    actions = allowed_actions(state)
    wrap_target: dict[str, Any] | None = None
    wrap_note = None
    try:
        with _migrations(request, engine) as m:
            audit = list(reversed(m.audit(job.source, job.key, limit=AUDIT_ROWS)))
            if stored is not None and stored.flow_id:
                try:
                    parity = m.parity_report(job.source, job.key).as_dict()
                except MigrationError as exc:
                    parity_note = exc.message
            if "wrap" in actions:
                try:
                    wrap_target = m.wrap_target(job.source, job.key).as_dict()
                except MigrationError as exc:
                    wrap_note = exc.message
    except ProblemError as exc:
        return _render(
            request,
            "error.html",
            {"title": "Migration setup failed", "message": exc.detail},
            session=auth,
            status_code=exc.status,
        )
    return _render(
        request,
        "migration.html",
        {
            "job": job,
            "m": stored,
            "state": state,
            "audit": audit,
            "parity": parity,
            "parity_note": parity_note,
            "wrap_target": wrap_target,
            "wrap_note": wrap_note,
            "actions": actions,
            "help": ACTION_HELP,
            "error": error,
            "notice": notice,
        },
        session=auth,
        status_code=status_code,
        active="migrations",
    )


@router.get("/migrations/{job_id}")
def migration_page(request: Request, job_id: str) -> Response:
    auth = _session_of(request)
    if auth is None:
        return _to_login(request)
    done = request.query_params.get("done", "")
    notice = f"{done} done." if done in ACTIONS else None
    return _detail(request, auth, job_id[:64], notice=notice)


@router.post("/actions/migrations/{job_id}/{action}")
async def migration_action(request: Request, job_id: str, action: str) -> Response:
    """Run one lifecycle action as the logged-in operator (CSRF-checked); audited."""
    gate = await operator_form(request, "Migration actions")
    if isinstance(gate, Response):
        return gate
    auth, form = gate
    if action not in ACTIONS:
        return _render(
            request,
            "error.html",
            {"title": "Unknown action", "message": f"No migration action named {action!r}."},
            session=auth,
            status_code=404,
        )
    min_parity = form.get("min_parity", "").strip()
    try:
        options = ActionRequest(
            force=_flag(form, "force"),
            safe=_flag(form, "safe"),
            min_parity=float(min_parity) if min_parity else None,
        )
    except (ValueError, ValidationError):
        return _detail(
            request,
            auth,
            job_id,
            error=f"min_parity: {min_parity!r} is not a number between 0 and 1",
            status_code=400,
        )
    try:
        perform_action(
            request,
            _engine(request),
            job_id,
            action,  # type: ignore[arg-type]  # checked against ACTIONS above
            actor=auth.principal.name,
            options=options,
        )
    except ProblemError as exc:
        if exc.status == 404:
            return _detail(request, auth, job_id)
        verb = "refused" if exc.status == 409 else "failed"
        return _detail(
            request, auth, job_id, error=f"{action} {verb}: {exc.detail}", status_code=exc.status
        )
    return RedirectResponse(f"/migrations/{job_id}?" + urlencode({"done": action}), status_code=303)


__all__ = ["allowed_actions", "router"]
