"""Dashboard sessions: log in with an API token, carry a signed cookie, act with CSRF tokens.

A person logs in by pasting an API token (`switchyard token create`). The
token is checked once with `gateway.auth.authenticate`; the cookie then holds
only the token's row id, a random nonce and an expiry, signed with HMAC-SHA256
— never the token itself. The session is also a row (`dashboard_session`,
keyed by the nonce's SHA-256): a cookie counts only while its row exists, so
logout (which deletes the row), token revocation (which deletes the token's
rows) and expiry end it on every replica at once, and a copied cookie dies
with the session. Every request re-reads the row with its token, so a role
change applies at once. Expired rows are pruned at each login.

Every state-changing form carries a CSRF token derived from the session's
nonce (HMAC, so it cannot be forged without the key and dies with the
session); the login form, which has no session yet, uses a double-submit
cookie. The signing key is `SWITCHYARD_SESSION_SECRET` when set; otherwise a
random key per process, so sessions end when the process restarts — which is
why `switchyard serve --workers N` (N > 1) refuses to start without it
(`check_session_secret`): each worker would sign with its own key.

Cookies are `Secure` by `cookie_secure` (config): `true`, `false`, or `auto`
— when the request came over HTTPS, as the app sees it after
`trusted_proxies` (a proxy's `X-Forwarded-Proto` counts only from those).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from starlette.requests import Request

from gateway.auth import Principal, Role
from gateway.config import Config
from gateway.contract import secrets_match
from gateway.links import table

SESSION_COOKIE = "swy_session"
LOGIN_CSRF_COOKIE = "swy_login_csrf"
SECRET_ENV = "SWITCHYARD_SESSION_SECRET"
DEFAULT_MAX_AGE_S = 8 * 3600


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class DashboardSession:
    """A logged-in person: who (the token's principal, as of now) and the session nonce."""

    principal: Principal
    nonce: str
    expires_at: float

    @property
    def can_operate(self) -> bool:
        return self.principal.allows(Role.operator)


class SessionSigner:
    """Issues and verifies session cookies and CSRF tokens with one HMAC key."""

    def __init__(self, secret: bytes, *, max_age_s: int = DEFAULT_MAX_AGE_S) -> None:
        if len(secret) < 16:
            raise ValueError(f"{SECRET_ENV}: the session secret must be at least 16 bytes")
        self._key = hashlib.sha256(b"switchyard-dashboard\0" + secret).digest()
        self.max_age_s = max_age_s

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> SessionSigner:
        configured = (os.environ if environ is None else environ).get(SECRET_ENV)
        return cls(configured.encode() if configured else secrets.token_bytes(32))

    def _mac(self, purpose: str, payload: str) -> str:
        return _b64(hmac.new(self._key, f"{purpose}\0{payload}".encode(), "sha256").digest())

    def issue(self, token_id: int, *, now: float | None = None) -> tuple[str, str, int]:
        """(cookie value, nonce, expiry) for a new session of token `token_id`."""
        now = time.time() if now is None else now
        nonce, expires = secrets.token_urlsafe(16), int(now + self.max_age_s)
        body = _b64(
            json.dumps({"t": token_id, "n": nonce, "e": expires}, separators=(",", ":")).encode()
        )
        return f"{body}.{self._mac('session', body)}", nonce, expires

    def verify(self, value: str, *, now: float | None = None) -> tuple[int, str, float] | None:
        """(token id, nonce, expiry) of a cookie this signer issued and that has not expired."""
        now = time.time() if now is None else now
        body, _, mac = value.partition(".")
        if not body or not mac or not secrets_match(mac, self._mac("session", body)):
            return None
        try:
            data = json.loads(_unb64(body))
            token_id, nonce, expires = int(data["t"]), str(data["n"]), float(data["e"])
        except (ValueError, KeyError, TypeError):
            return None
        if expires < now:
            return None
        return token_id, nonce, expires

    def csrf_for(self, nonce: str) -> str:
        return self._mac("csrf", nonce)

    def check_csrf(self, nonce: str, presented: str | None) -> bool:
        return bool(presented) and secrets_match(presented or "", self.csrf_for(nonce))


def _nonce_hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def _at(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def start_session(
    engine: Engine, signer: SessionSigner, token_id: int, *, now: float | None = None
) -> str:
    """Store a new session of token `token_id`; the cookie value that names it.

    Expired sessions are pruned in the same transaction, so the table holds
    about as many rows as there are live sessions.
    """
    now = time.time() if now is None else now
    cookie, nonce, expires = signer.issue(token_id, now=now)
    sessions = table("dashboard_session")
    with engine.begin() as conn:
        conn.execute(sessions.delete().where(sessions.c.expires_at < _at(now)))
        conn.execute(
            sessions.insert().values(
                nonce_hash=_nonce_hash(nonce),
                token_id=token_id,
                created_at=_at(now),
                expires_at=_at(expires),
            )
        )
    return cookie


def end_session(engine: Engine, nonce: str) -> None:
    """Delete the session with `nonce`: its cookie stops working on every replica."""
    sessions = table("dashboard_session")
    with engine.begin() as conn:
        conn.execute(sessions.delete().where(sessions.c.nonce_hash == _nonce_hash(nonce)))


def load_session(
    engine: Engine, signer: SessionSigner, cookie: str | None, *, now: float | None = None
) -> DashboardSession | None:
    """The session a cookie names: signed, stored, unexpired, and its token still live."""
    if not cookie:
        return None
    now = time.time() if now is None else now
    verified = signer.verify(cookie, now=now)
    if verified is None:
        return None
    token_id, nonce, expires = verified
    sessions, tokens = table("dashboard_session"), table("api_token")
    query = (
        sa.select(tokens.c.id, tokens.c.name, tokens.c.role, tokens.c.sources)
        .join(sessions, sessions.c.token_id == tokens.c.id)
        .where(
            sessions.c.nonce_hash == _nonce_hash(nonce),
            sessions.c.token_id == token_id,
            sessions.c.expires_at >= _at(now),
            tokens.c.revoked_at.is_(None),
        )
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    principal = Principal(
        token_id=row.id, name=row.name, role=Role(row.role), sources=frozenset(row.sources or ())
    )
    if not principal.allows(Role.viewer):
        return None  # an ingest token pushes events; it reads nothing
    return DashboardSession(principal=principal, nonce=nonce, expires_at=expires)


def check_session_secret(workers: int, environ: Mapping[str, str] | None = None) -> None:
    """Refuse (ValueError) what would break sessions: N workers with N random keys, a weak key."""
    environ = os.environ if environ is None else environ
    if workers > 1 and not environ.get(SECRET_ENV):
        raise ValueError(
            f"--workers {workers} needs {SECRET_ENV}: without it each worker signs dashboard "
            "sessions with its own random key, so a login works on one worker only; set it "
            f"to a random value of 16 bytes or more (e.g. `openssl rand -hex 32`)"
        )
    SessionSigner.from_environment(environ)


def cookie_secure(request: Request, config: Config) -> bool:
    """Whether cookies set in answer to `request` are `Secure` (`config.cookie_secure`)."""
    if isinstance(config.cookie_secure, bool):
        return config.cookie_secure
    return request.url.scheme == "https"


_signer_lock = threading.Lock()


def app_signer(state: object) -> SessionSigner:
    """The app's signer, made once per app (kept on `app.state`)."""
    signer = getattr(state, "dashboard_signer", None)
    if signer is None:
        with _signer_lock:
            signer = getattr(state, "dashboard_signer", None)
            if signer is None:
                signer = SessionSigner.from_environment()
                state.dashboard_signer = signer  # type: ignore[attr-defined]  # starlette State
    assert isinstance(signer, SessionSigner)
    return signer


__all__ = [
    "DEFAULT_MAX_AGE_S",
    "LOGIN_CSRF_COOKIE",
    "SECRET_ENV",
    "SESSION_COOKIE",
    "DashboardSession",
    "SessionSigner",
    "app_signer",
    "check_session_secret",
    "cookie_secure",
    "end_session",
    "load_session",
    "start_session",
]
