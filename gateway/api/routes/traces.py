"""`/api/v1/traces/{trace_id}`: a run tree across sources, with its links and evidence."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.api.deps import SessionDep, ViewerDep
from gateway.api.problems import ProblemError
from gateway.api.schemas import TracePublic
from gateway.queries import get_trace

router = APIRouter(prefix="/traces", tags=["traces"])


@router.get("/{trace_id}", response_model=TracePublic)
def read_trace(trace_id: str, session: SessionDep, _caller: ViewerDep) -> TracePublic:
    view = get_trace(session, trace_id.lower())
    if view is None:
        raise ProblemError(404, f"no spans with trace id {trace_id!r}", slug="not-found")
    return TracePublic.of(view)
