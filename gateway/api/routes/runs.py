"""`/api/v1/runs`: list runs (filtered, keyset-paginated, newest first) and one run."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AfterValidator, AwareDatetime

from gateway.api.deps import SessionDep, ViewerDep
from gateway.api.problems import ProblemError
from gateway.api.schemas import RunDetailPublic, RunPublic, RunsPublic
from gateway.contract import RunKind, State, in_utc_range
from gateway.queries import DEFAULT_LIMIT, MAX_LIMIT, InvalidCursor, get_run, list_runs

router = APIRouter(prefix="/runs", tags=["runs"])

# An instant that converts to UTC: `0001-01-01T00:00:00+14:00` is a 422, not a
# 500 on its way into the query.
Instant = Annotated[AwareDatetime, AfterValidator(in_utc_range)]


@router.get("", response_model=RunsPublic)
def read_runs(
    session: SessionDep,
    _caller: ViewerDep,
    source: str | None = None,
    job: str | None = None,
    state: Annotated[list[State] | None, Query(description="repeat for several")] = None,
    kind: RunKind | None = None,
    since: Annotated[
        Instant | None, Query(description="started (else observed) at or after")
    ] = None,
    until: Annotated[Instant | None, Query(description="started (else observed) before")] = None,
    q: Annotated[
        str | None, Query(max_length=256, description="text in key, name, job or error message")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> RunsPublic:
    try:
        page = list_runs(
            session,
            source=source,
            job=job,
            state=[s.value for s in state or ()],
            kind=kind.value if kind else None,
            since=since,
            until=until,
            q=q,
            cursor=cursor,
            limit=limit,
        )
    except InvalidCursor as exc:
        raise ProblemError(422, str(exc), slug="validation") from None
    return RunsPublic(data=[RunPublic.of(r) for r in page.items], next_cursor=page.next_cursor)


@router.get("/{run_id}", response_model=RunDetailPublic)
def read_run(run_id: str, session: SessionDep, _caller: ViewerDep) -> RunDetailPublic:
    detail = get_run(session, run_id)
    if detail is None:
        raise ProblemError(404, f"no run with id {run_id!r}", slug="not-found")
    return RunDetailPublic.of_detail(detail)
