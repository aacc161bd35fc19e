"""Every error the API returns is `application/problem+json` (RFC 9457).

A problem has `type`, `title`, `status` and `detail`; validation problems add
`errors: [{field, message}]` with the field as a path (`events[3].observed_at`).
Handlers here cover request validation, HTTP errors (404, 405, 401 with its
`WWW-Authenticate` header…), bodies over the cap, and a database that is locked
or unreachable (503 with `Retry-After`, within the store's bounded wait). An
unexpected exception is caught by `gateway.api.edge.RequestEdge`, logged once
with its traceback and answered with a generic 500, so internals never reach a client. Every
`detail` and field message goes through the app's `Config.redact` (a secret
from the environment inside an error text becomes `***`), and so does the
traceback the edge logs, whose request path has its ping secret masked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.contract import PushRejected
from gateway.store.db import database_unavailable

log = logging.getLogger("gateway.api")

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:switchyard:problem:"
# What a client is told to wait when the database is locked or unreachable.
RETRY_AFTER_S = 5


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """The body of every error response."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldError] | None = None


class ProblemError(Exception):
    """Raise from a route to answer with a problem (a typed, user-facing error)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        errors: Sequence[FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug
        self.errors = list(errors) if errors is not None else None
        self.headers = dict(headers or {})


def field_path(loc: Sequence[int | str]) -> str:
    """`("body", "events", 3, "observed_at")` → `events[3].observed_at`.

    The leading `body`/`query`/`path`/`header` says where FastAPI looked; for a
    body it is noise, for the others the parameter name alone is clearer.
    """
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(body)"


def problem_response(
    status: int,
    detail: str | None = None,
    *,
    slug: str | None = None,
    errors: Sequence[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body = Problem(
        type=TYPE_PREFIX + slug if slug else "about:blank",
        title=title,
        status=status,
        detail=detail,
        errors=list(errors) if errors is not None else None,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=dict(headers or {}),
    )


def _redactor(request: Request) -> Callable[[str], str]:
    config = getattr(request.app.state, "config", None)
    redact: Callable[[str], str] | None = getattr(config, "redact", None)
    return redact or (lambda text: text)


def _redacted(
    request: Request, detail: str | None, errors: Sequence[FieldError] | None
) -> tuple[str | None, list[FieldError] | None]:
    """`detail` and `errors` with the app's secrets replaced by ***."""
    redact = _redactor(request)
    return (
        None if detail is None else redact(detail),
        None
        if errors is None
        else [FieldError(field=redact(e.field), message=redact(e.message)) for e in errors],
    )


def validation_errors(errors: Sequence[Mapping[str, Any]]) -> list[FieldError]:
    out = []
    for e in errors:
        msg = str(e.get("msg", "invalid"))
        # pydantic prefixes messages of ValueErrors raised in validators.
        msg = msg.removeprefix("Value error, ")
        out.append(FieldError(field=field_path(e.get("loc", ())), message=msg))
    return out


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(exc.errors())
    first = errors[0] if errors else None
    detail = f"{first.field}: {first.message}" if first else "the request is invalid"
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more)"
    shown, shown_errors = _redacted(request, detail, errors)
    return problem_response(422, shown, slug="validation", errors=shown_errors)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail: str | None = exc.detail if isinstance(exc.detail, str) else None
    if detail == HTTPStatus(exc.status_code).phrase:
        detail = None
    slug = "too-large" if exc.status_code == 413 else None
    detail, _ = _redacted(request, detail, None)
    return problem_response(exc.status_code, detail, slug=slug, headers=exc.headers)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    detail, errors = _redacted(request, exc.detail, exc.errors)
    return problem_response(exc.status, detail, slug=exc.slug, errors=errors, headers=exc.headers)


async def _on_push_rejected(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PushRejected)
    errors = [FieldError(field=field_path(loc), message=msg) for loc, msg in exc.errors]
    # A push route's 401 is the API's 401: same problem type, same challenge.
    slug = {401: "unauthenticated", 422: "validation"}.get(exc.status)
    detail, redacted = _redacted(request, exc.detail, errors or None)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return problem_response(exc.status, detail, slug=slug, errors=redacted, headers=headers)


async def _on_too_deep(_request: Request, exc: Exception) -> JSONResponse:
    # json.loads recurses once per nesting level: a small body of 100,000
    # brackets exhausts the stack in any route that parses JSON itself.
    return problem_response(422, "the body is nested too deeply to read", slug="validation")


def unavailable_response(request: Request, exc: BaseException) -> JSONResponse:
    """503 with `Retry-After` for a locked or unreachable database (logged in one line)."""
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    first_line = (str(cause).strip().splitlines() or [""])[0]
    log.warning(
        "database unavailable on %s %s: %s: %s",
        request.method,
        request.url.path,
        type(cause).__name__,
        first_line,
    )
    return problem_response(
        503,
        "the database is locked or unreachable; retry shortly",
        slug="database-unavailable",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


async def _on_database_error(request: Request, exc: Exception) -> JSONResponse:
    if database_unavailable(exc):
        return unavailable_response(request, exc)
    raise exc  # not the database's state: the request edge logs it once and answers 500


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(PushRejected, _on_push_rejected)
    app.add_exception_handler(RecursionError, _on_too_deep)
    app.add_exception_handler(SQLAlchemyError, _on_database_error)


__all__ = [
    "PROBLEM_JSON",
    "RETRY_AFTER_S",
    "FieldError",
    "Problem",
    "ProblemError",
    "field_path",
    "install_problem_handlers",
    "problem_response",
    "unavailable_response",
    "validation_errors",
]
