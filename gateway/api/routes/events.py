"""`POST /api/v1/events`: scripts and agents push events (and jobs) directly.

The whole batch is validated before anything is written; one invalid event
is a 422 naming its field (`events[3].observed_at`) and nothing from the
batch is stored. A valid batch is applied by `gateway.ingest.apply_batch` in
one transaction, its events marked as pushed (`gateway.merge.as_pushed`).

Who may write where (`Principal.may_push_events`): a configured source's name
belongs to its adapter, and only an `ingest` token granted that source may
push events into it, so a token handed to CI cannot rewrite what a polled
source reports. Operator and admin tokens may push into names no configured
source uses; anyone else gets 403 naming the rule.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from pydantic import ValidationError

from gateway.api.deps import ConfigDep, EngineDep, MetricsDep, PrincipalDep
from gateway.api.problems import FieldError, ProblemError, validation_errors
from gateway.api.schemas import EventBatchIn, IngestReportPublic
from gateway.auth import Principal, Role
from gateway.config import Config
from gateway.contract import JobSpec, RunEvent
from gateway.ingest import apply_batch
from gateway.merge import as_pushed

router = APIRouter(tags=["events"])


def _with_source(
    batch: EventBatchIn,
) -> tuple[list[RunEvent], list[JobSpec], list[FieldError]]:
    """The batch's events and jobs, each carrying the batch's source."""
    events: list[RunEvent] = []
    jobs: list[JobSpec] = []
    errors: list[FieldError] = []
    items: list[tuple[str, int, type[RunEvent] | type[JobSpec], dict[str, object]]] = [
        ("events", i, RunEvent, e.model_dump(exclude_unset=True))
        for i, e in enumerate(batch.events)
    ] + [("jobs", i, JobSpec, j.model_dump(exclude_unset=True)) for i, j in enumerate(batch.jobs)]
    for name, i, model, data in items:
        given = data.get("source")
        if given is not None and given != batch.source:
            errors.append(
                FieldError(
                    field=f"{name}[{i}].source",
                    message=f"{given!r} differs from the batch's source {batch.source!r}",
                )
            )
            continue
        try:
            obj = model.model_validate({**data, "source": batch.source})
        except ValidationError as exc:  # the batch's source may break a limit an item did not
            errors.extend(
                FieldError(field=f"{name}[{i}].{e.field}", message=e.message)
                for e in validation_errors(exc.errors())
            )
            continue
        if isinstance(obj, RunEvent):
            events.append(obj)
        else:
            jobs.append(obj)
    return events, jobs, errors


def check_may_push(caller: Principal, source: str, config: Config) -> None:
    """403 unless `caller` may push events into `source` (see the module docstring)."""
    configured = {s.name for s in config.sources}
    if caller.may_push_events(source, configured):
        return
    if caller.role is Role.ingest:
        granted = ", ".join(sorted(caller.sources))
        detail = f"token {caller.name!r} may push events only into: {granted}"
    elif not caller.allows(Role.operator):
        detail = (
            f"this needs the operator role or an ingest token granted {source!r}; "
            f"token {caller.name!r} has {caller.role.value}"
        )
    else:
        detail = (
            f"{source!r} is a configured source: only an ingest token granted it may push "
            f"events into it (switchyard token create --role ingest --sources {source})"
        )
    raise ProblemError(403, detail, slug="forbidden")


@router.post(
    "/events",
    response_model=IngestReportPublic,
    responses={
        403: {"description": "the token may not push events into this source"},
        422: {"description": "an event or job is invalid; nothing was written"},
    },
)
def post_events(
    batch: EventBatchIn,
    engine: EngineDep,
    config: ConfigDep,
    metrics: MetricsDep,
    caller: PrincipalDep,
) -> IngestReportPublic:
    check_may_push(caller, batch.source, config)
    events, jobs, errors = _with_source(batch)
    if errors:
        raise ProblemError(
            422,
            f"{errors[0].field}: {errors[0].message}",
            slug="validation",
            errors=errors,
        )
    received = as_pushed(events, datetime.now(UTC))
    report = apply_batch(engine, batch.source, received, jobs=jobs or None)
    metrics.count_ingest(
        batch.source, "events", applied=report.applied, duplicates=report.duplicates
    )
    return IngestReportPublic(
        source=batch.source,
        events=report.events,
        applied=report.applied,
        duplicates=report.duplicates,
        runs_created=report.runs_created,
        runs_updated=report.runs_updated,
        links_created=report.links_created,
        run_ids=list(report.run_ids),
    )
