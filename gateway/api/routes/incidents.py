"""`/api/v1/incidents`: incidents newest first (status filter, keyset pages) and one in full."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from gateway.api.deps import SessionDep, ViewerDep
from gateway.api.problems import ProblemError
from gateway.incidents import (
    MAX_INCIDENT_ID,
    IncidentDetail,
    IncidentsPage,
    incident_detail,
    list_incidents,
)
from gateway.queries import DEFAULT_LIMIT, MAX_LIMIT, InvalidCursor

router = APIRouter(prefix="/incidents", tags=["incidents"])


@router.get("", response_model=IncidentsPage)
def read_incidents(
    session: SessionDep,
    _caller: ViewerDep,
    status: Annotated[
        Literal["open", "resolved", "merged"] | None,
        Query(description="only incidents in this status; merged ones are hidden otherwise"),
    ] = None,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> IncidentsPage:
    try:
        return list_incidents(session, status=status, limit=limit, cursor=cursor)
    except InvalidCursor as exc:
        raise ProblemError(422, str(exc), slug="validation") from None


@router.get("/{incident_id}", response_model=IncidentDetail)
def read_incident(
    incident_id: Annotated[int, Path(ge=1, le=MAX_INCIDENT_ID)],
    session: SessionDep,
    _caller: ViewerDep,
) -> IncidentDetail:
    detail = incident_detail(session, incident_id)
    if detail is None:
        raise ProblemError(404, f"no incident with id {incident_id}", slug="not-found")
    return detail
