"""API tokens and roles.

A token is 32 random bytes, URL-safe, prefixed `swy_` so it is recognisable in
a leaked log. Only its SHA-256 is stored (`api_token.token_hash`), with the
first characters kept as `prefix` for display; the plain token exists once, in
the return value of `create_token`. Roles are ordered: viewer < operator <
admin, and a role allows everything a lower one does. `ingest` stands apart
from that order: it reads nothing and may only push events, into the sources
listed on the token (`ApiToken.sources`); see `Principal.may_push_events`.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, delete, select, update

from gateway.store.db import session_scope
from gateway.store.models import ApiToken, DashboardSession

TOKEN_PREFIX = "swy_"
DISPLAY_PREFIX_CHARS = 12
# Writing last_used_at on every request would turn every read into a write;
# once a minute is enough to tell a live token from a forgotten one.
LAST_USED_RESOLUTION = timedelta(minutes=1)


# A source name as the config allows it (`SourceEntry.name`).
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
MAX_SCOPE_SOURCES = 100


class Role(enum.StrEnum):
    viewer = "viewer"
    operator = "operator"
    admin = "admin"
    ingest = "ingest"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, required: Role) -> bool:
        if Role.ingest in (self, required):
            return self is required  # outside the order: it allows only itself
        return self.rank >= required.rank


_RANK = {Role.ingest: -1, Role.viewer: 0, Role.operator: 1, Role.admin: 2}


class TokenError(ValueError):
    """A token operation was asked for something that does not exist or is invalid."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's row id, its name, its role and (ingest) its sources."""

    token_id: int
    name: str
    role: Role
    sources: frozenset[str] = frozenset()

    @classmethod
    def of(cls, row: ApiToken) -> Principal:
        return cls(
            token_id=row.id or 0,
            name=row.name,
            role=Role(row.role),
            sources=frozenset(row.sources or ()),
        )

    def allows(self, required: Role) -> bool:
        return self.role.allows(required)

    def may_push_events(self, source: str, configured: Collection[str]) -> bool:
        """Whether `POST /api/v1/events` may write into `source`.

        A configured source's name belongs to its adapter: only an ingest token
        granted that source writes into it. Operators and admins may push only
        into names that no configured source uses; an ingest token only into
        its own sources, configured or not.
        """
        if self.role is Role.ingest:
            return source in self.sources
        return self.allows(Role.operator) and source not in configured


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed: never the token itself, only its display prefix."""

    id: int
    name: str
    role: Role
    sources: tuple[str, ...]
    prefix: str
    created_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: ApiToken) -> TokenInfo:
        return cls(
            id=row.id or 0,
            name=row.name,
            role=Role(row.role),
            sources=tuple(row.sources or ()),
            prefix=row.prefix,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_role(value: str | Role) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise TokenError(
            f"unknown role {value!r}; one of: {', '.join(r.value for r in Role)}"
        ) from None


def parse_scope(role: Role, sources: Iterable[str] | None) -> list[str] | None:
    """The sources an ingest token is granted: required for ingest, refused for the others."""
    names = sorted({s.strip() for s in sources or () if s.strip()})
    if role is not Role.ingest:
        if names:
            raise TokenError(f"--sources is for ingest tokens; a {role.value} token has no scope")
        return None
    if not names:
        raise TokenError("an ingest token needs the sources it may push into (--sources a,b)")
    if len(names) > MAX_SCOPE_SOURCES:
        raise TokenError(f"an ingest token may name at most {MAX_SCOPE_SOURCES} sources")
    for name in names:
        if len(name) > 128 or not _SOURCE_NAME.match(name):
            raise TokenError(f"{name!r} is not a source name (letters, digits, '.', '_', '-')")
    return names


def create_token(
    engine: Engine,
    *,
    role: str | Role = Role.viewer,
    name: str | None = None,
    sources: Iterable[str] | None = None,
) -> str:
    """Store a new token (hashed) and return the plain token; it is not kept anywhere.

    `sources` is an ingest token's scope: the source names it may push events into.
    """
    role = parse_role(role)
    scope = parse_scope(role, sources)
    name = (name or f"{role.value}-token").strip()
    if not name or len(name) > 128:
        raise TokenError("token name must be 1 to 128 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with session_scope(engine) as session:
        session.add(
            ApiToken(
                name=name,
                role=role.value,
                sources=scope,
                token_hash=hash_token(token),
                prefix=token[:DISPLAY_PREFIX_CHARS],
                created_at=datetime.now(UTC),
            )
        )
    return token


def list_tokens(engine: Engine, *, include_revoked: bool = False) -> list[TokenInfo]:
    with Session(engine) as session:
        stmt = select(ApiToken).order_by(ApiToken.id)  # type: ignore[arg-type]  # SQLModel column typing
        if not include_revoked:
            stmt = stmt.where(ApiToken.revoked_at.is_(None))  # type: ignore[union-attr]  # SQLModel column
        return [TokenInfo.of(row) for row in session.exec(stmt)]


def revoke_token(engine: Engine, token_id: int) -> TokenInfo:
    """Revoke a token by its id, ending its dashboard sessions; revoking twice is harmless.

    Unknown ids raise TokenError.
    """
    with session_scope(engine) as session:
        row = session.get(ApiToken, token_id)
        if row is None:
            raise TokenError(f"no token with id {token_id}")
        if row.revoked_at is None:
            row.revoked_at = datetime.now(UTC)
            session.add(row)
        session.exec(
            delete(DashboardSession).where(DashboardSession.token_id == token_id)  # type: ignore[arg-type]  # SQLModel column
        )
        session.flush()
        return TokenInfo.of(row)


def authenticate(engine: Engine, token: str) -> Principal | None:
    """The principal for a presented token, or None if it is unknown or revoked."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 256:
        return None
    digest = hash_token(token)
    now = datetime.now(UTC)
    with Session(engine) as session:
        row = session.exec(select(ApiToken).where(ApiToken.token_hash == digest)).first()
        if row is None or row.revoked_at is not None or row.id is None:
            return None
        principal = Principal.of(row)
        stale = row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION
        session.rollback()
    if stale:
        with session_scope(engine) as session:
            session.exec(
                update(ApiToken)
                .where(ApiToken.id == principal.token_id)  # type: ignore[arg-type]  # SQLModel column
                .values(last_used_at=now)
            )
    return principal


__all__ = [
    "Principal",
    "Role",
    "TokenError",
    "TokenInfo",
    "authenticate",
    "create_token",
    "hash_token",
    "list_tokens",
    "parse_role",
    "parse_scope",
    "revoke_token",
]
