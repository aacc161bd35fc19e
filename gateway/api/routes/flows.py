"""`/api/v1/flows`: flows from `mappings/flows` with member jobs and stitched recent runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.api.deps import SessionDep, ViewerDep
from gateway.api.problems import ProblemError
from gateway.flows import FlowPublic, FlowsPublic, flow_detail, list_flows

router = APIRouter(prefix="/flows", tags=["flows"])


@router.get("", response_model=FlowsPublic)
def read_flows(
    session: SessionDep,
    _caller: ViewerDep,
    recent: Annotated[int, Query(ge=0, le=50, description="flow runs per flow")] = 5,
) -> FlowsPublic:
    return list_flows(session, recent=recent)


@router.get("/{name}", response_model=FlowPublic)
def read_flow(
    name: str,
    session: SessionDep,
    _caller: ViewerDep,
    recent: Annotated[int, Query(ge=0, le=200, description="flow runs")] = 20,
) -> FlowPublic:
    flow = flow_detail(session, name, recent=recent)
    if flow is None:
        raise ProblemError(404, f"no flow named {name!r}", slug="not-found")
    return flow
