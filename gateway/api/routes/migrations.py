"""`/api/v1/inventory` and `/api/v1/migrations`: the migration inventory and lifecycle.

Reads need a viewer token; lifecycle actions (`POST
/migrations/{job_id}/actions/{action}`) need an operator and are audited
under the token's name. Jobs are named by their job id (as `/jobs` shows
them). Errors are problems: unknown job 404, an action not allowed from the
job's state, refused below parity (with the parity figures) or racing another
action on the same job (`action-in-progress`, naming the state found and who
holds the job) 409, a side (Kestra or the legacy system) failing 502 with what
was undone. The answer
to `wrap` carries `wrap_target`: the host and user the work now runs on and
whether that is the Kestra worker itself, as the audit records it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlmodel import Session

from gateway.api.deps import EngineDep, OperatorDep, ViewerDep
from gateway.api.problems import ProblemError
from gateway.store.models import Job

if TYPE_CHECKING:
    from migration_tools.lifecycle import MigrationView

router = APIRouter(tags=["migrations"])

Action = Literal["translate", "deploy", "wrap", "shadow", "cutover", "retire", "rollback"]


class ActionRequest(BaseModel):
    force: bool = Field(default=False, description="cutover: proceed below the parity floor")
    min_parity: float | None = Field(default=None, ge=0, le=1)
    min_runs: int | None = Field(default=None, ge=0)
    safe: bool = Field(default=False, description="shadow: the job may run twice")


@contextmanager
def _migrations(request: Request, engine: Any) -> Iterator[Any]:
    """A `Migrations` over the app's adapters; adapters it had to create are closed after."""
    # Imported here: only a gateway serving migration routes loads the Kestra SDK.
    from migration_tools.lifecycle import MigrationError, migrations_for

    adapters = getattr(request.app.state, "adapters", None) or {}
    try:
        m = migrations_for(request.app.state.config, engine, adapters=adapters)
    except (ValueError, LookupError) as exc:
        detail = f"migration setup: {request.app.state.config.redact(str(exc))}"
        raise ProblemError(422, detail, slug="migration-error") from None
    try:
        yield m
    except MigrationError as exc:
        # Redacted here, not only by the problem handler: the dashboard shows the detail too.
        problem = _problem(exc)
        problem.detail = m.redact(problem.detail)
        raise problem from None
    finally:
        close = getattr(m.legacy, "close", None)  # a SourceAdapters closes only what it made
        if callable(close):
            close()


def _job(engine: Any, job_id: str) -> Job:
    with Session(engine) as session:
        job = session.get(Job, job_id)
    if job is None:
        raise ProblemError(404, f"no job with id {job_id!r}", slug="not-found")
    return job


def _problem(exc: Exception) -> ProblemError:
    from migration_tools.lifecycle import (
        ActionInProgress,
        JobNotFound,
        ParityTooLow,
        SideEffectFailed,
        TransitionRefused,
    )

    if isinstance(exc, JobNotFound):
        return ProblemError(404, str(exc), slug="not-found")
    if isinstance(exc, ActionInProgress):
        return ProblemError(409, str(exc), slug="action-in-progress")
    if isinstance(exc, ParityTooLow):
        return ProblemError(409, str(exc), slug="parity-too-low")
    if isinstance(exc, TransitionRefused):
        return ProblemError(409, str(exc), slug="transition-refused")
    if isinstance(exc, SideEffectFailed):
        return ProblemError(502, str(exc), slug="side-effect-failed")
    return ProblemError(422, str(exc), slug="migration-error")


@router.get("/inventory")
def read_inventory(
    engine: EngineDep,
    _caller: ViewerDep,
    days: Annotated[int, Query(ge=1, le=365)] = 30,
    source: Annotated[str | None, Query(max_length=128)] = None,
) -> dict[str, Any]:
    """Every discovered job with its run health, dependencies, readiness and wave."""
    from migration_tools.inventory import collect_inventory

    return collect_inventory(engine, days=days, source=source).as_dict()


@router.get("/migrations")
def read_migrations(
    request: Request,
    engine: EngineDep,
    _caller: ViewerDep,
    state: Annotated[str | None, Query(max_length=32)] = None,
) -> dict[str, Any]:
    with _migrations(request, engine) as m:
        views = m.list_migrations(state=state)
    return {"data": [v.as_dict() for v in views]}


@router.get("/migrations/{job_id}")
def read_migration(
    job_id: str, request: Request, engine: EngineDep, _caller: ViewerDep
) -> dict[str, Any]:
    job = _job(engine, job_id)
    with _migrations(request, engine) as m:
        view = m.status(job.source, job.key)
    out: dict[str, Any] = view.as_dict()
    return out


@router.get("/migrations/{job_id}/audit")
def read_migration_audit(
    job_id: str, request: Request, engine: EngineDep, _caller: ViewerDep
) -> dict[str, Any]:
    job = _job(engine, job_id)
    with _migrations(request, engine) as m:
        rows = m.audit(job.source, job.key)
    return {
        "data": [
            {
                "id": r.id,
                "at": r.at.isoformat() if r.at else None,
                "actor": r.actor,
                "action": r.action,
                "before": r.before,
                "after": r.after,
                "outcome": r.outcome,
                "detail": r.detail,
            }
            for r in rows
        ]
    }


@router.get("/migrations/{job_id}/parity")
def read_migration_parity(
    job_id: str, request: Request, engine: EngineDep, _caller: ViewerDep
) -> dict[str, Any]:
    job = _job(engine, job_id)
    with _migrations(request, engine) as m:
        report = m.parity_report(job.source, job.key)
    return report.as_dict()


@router.post("/migrations/{job_id}/actions/{action}")
def act_on_migration(
    job_id: str,
    action: Action,
    request: Request,
    engine: EngineDep,
    caller: OperatorDep,
    body: ActionRequest | None = None,
) -> dict[str, Any]:
    """Run one lifecycle action as the calling operator; audited whatever the outcome."""
    view = perform_action(request, engine, job_id, action, actor=caller.name, options=body)
    out: dict[str, Any] = view.as_dict()
    if action == "wrap":
        out["wrap_target"] = view.sides.get("wrap_target")
    return out


def perform_action(
    request: Request,
    engine: Any,
    job_id: str,
    action: Action,
    *,
    actor: str,
    options: ActionRequest | None = None,
) -> MigrationView:
    """Run `action` on job `job_id` as token `actor`; the API and the dashboard both call this.

    Returns the job's `MigrationView` after the action; raises `ProblemError`
    (404 unknown job, 409 refused, 502 a side failed, 422 setup) otherwise.
    The audit row names the actor as `token:<name>`.
    """
    job = _job(engine, job_id)
    options = options or ActionRequest()
    kwargs: dict[str, Any] = {"actor": f"token:{actor}"}
    if action == "cutover":
        kwargs.update(force=options.force, min_parity=options.min_parity, min_runs=options.min_runs)
    elif action == "shadow":
        kwargs.update(safe=options.safe)
    with _migrations(request, engine) as m:
        view: MigrationView = getattr(m, action)(job.source, job.key, **kwargs)
    return view
