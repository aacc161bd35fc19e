"""`/api/v1/sources`: every configured source with its status, lag, errors and holder."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from gateway.api.deps import ConfigDep, SessionDep, ViewerDep
from gateway.api.schemas import SourcePublic, SourcesPublic
from gateway.queries import list_sources

router = APIRouter(prefix="/sources", tags=["sources"])


@router.get("", response_model=SourcesPublic)
def read_sources(session: SessionDep, config: ConfigDep, _caller: ViewerDep) -> SourcesPublic:
    statuses = list_sources(session, config, now=datetime.now(UTC))
    return SourcesPublic(data=[SourcePublic.of(s) for s in statuses])
