"""Dependencies routes declare: the engine, a session, the config, the caller.

`ViewerDep`, `OperatorDep` and `AdminDep` authenticate the bearer token and
check the role; a missing or unknown token is 401 with `WWW-Authenticate:
Bearer`, a role too low is 403.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlmodel import Session

from gateway.api.metrics import ApiMetrics
from gateway.api.problems import ProblemError
from gateway.auth import Principal, Role, authenticate
from gateway.config import Config

_bearer = HTTPBearer(auto_error=False, description="an API token from `switchyard token create`")


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_config(request: Request) -> Config:
    config: Config = request.app.state.config
    return config


def get_metrics(request: Request) -> ApiMetrics:
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


EngineDep = Annotated[Engine, Depends(get_engine)]
ConfigDep = Annotated[Config, Depends(get_config)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]


def get_session(engine: EngineDep) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_principal(
    engine: EngineDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ProblemError(
            401,
            "an API token is required (Authorization: Bearer <token>)",
            slug="unauthenticated",
            headers=challenge,
        )
    principal = authenticate(engine, credentials.credentials)
    if principal is None:
        raise ProblemError(
            401,
            "the API token is unknown or revoked",
            slug="unauthenticated",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(role: Role) -> Callable[[Principal], Principal]:
    def check(principal: PrincipalDep) -> Principal:
        if not principal.allows(role):
            raise ProblemError(
                403,
                f"this needs the {role.value} role; token {principal.name!r} "
                f"has {principal.role.value}",
                slug="forbidden",
            )
        return principal

    return check


ViewerDep = Annotated[Principal, Depends(require(Role.viewer))]
OperatorDep = Annotated[Principal, Depends(require(Role.operator))]
AdminDep = Annotated[Principal, Depends(require(Role.admin))]

__all__ = [
    "AdminDep",
    "ConfigDep",
    "EngineDep",
    "MetricsDep",
    "OperatorDep",
    "PrincipalDep",
    "SessionDep",
    "ViewerDep",
    "get_session",
    "require",
]
