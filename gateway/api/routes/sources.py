"""`/api/v1/sources`: every configured source with its status, lag, errors and holder."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from gateway.api.deps import ConfigDep, EngineDep, ViewerDep
from gateway.api.schemas import SourcePublic, SourcesPublic
from gateway.queries import list_sources

router = APIRouter(prefix="/sources", tags=["sources"])


@router.get("", response_model=SourcesPublic)
def read_sources(engine: EngineDep, config: ConfigDep, _caller: ViewerDep) -> SourcesPublic:
    views = list_sources(engine, config, now=datetime.now(UTC))
    return SourcesPublic(data=[SourcePublic.of(v) for v in views])
