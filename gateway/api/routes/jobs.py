"""`/api/v1/jobs`: discovered jobs (keyset-paginated by source and key) and one job."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.api.deps import SessionDep, ViewerDep
from gateway.api.problems import ProblemError
from gateway.api.schemas import JobDetailPublic, JobPublic, JobsPublic
from gateway.queries import DEFAULT_LIMIT, MAX_LIMIT, InvalidCursor, get_job, list_jobs

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("", response_model=JobsPublic)
def read_jobs(
    session: SessionDep,
    _caller: ViewerDep,
    source: str | None = None,
    q: Annotated[str | None, Query(max_length=256, description="text in key or name")] = None,
    cursor: Annotated[str | None, Query(max_length=4096)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> JobsPublic:
    try:
        page = list_jobs(session, source=source, q=q, cursor=cursor, limit=limit)
    except InvalidCursor as exc:
        raise ProblemError(422, str(exc), slug="validation") from None
    return JobsPublic(data=[JobPublic.of(j) for j in page.items], next_cursor=page.next_cursor)


@router.get("/{job_id}", response_model=JobDetailPublic)
def read_job(job_id: str, session: SessionDep, _caller: ViewerDep) -> JobDetailPublic:
    detail = get_job(session, job_id)
    if detail is None:
        raise ProblemError(404, f"no job with id {job_id!r}", slug="not-found")
    return JobDetailPublic.of_detail(detail)
