"""Dashboard sessions: log in with an API token, carry a signed cookie, act with CSRF tokens.

A person logs in by pasting an API token (`switchyard token create`). The
token is checked once with `gateway.auth.authenticate`; the cookie then holds
only the token's row id, a random nonce and an expiry, signed with HMAC-SHA256
— never the token itself. Every request re-reads the token row by id, so a
revoked token ends its sessions at once and a role change applies at once.

Every state-changing form carries a CSRF token derived from the session's
nonce (HMAC, so it cannot be forged without the key and dies with the
session); the login form, which has no session yet, uses a double-submit
cookie. The signing key is `SWITCHYARD_SESSION_SECRET` when set (needed when
several replicas serve the dashboard behind one address); otherwise a random
key per process, so sessions end when the process restarts.
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
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session

from gateway.auth import Principal, Role
from gateway.contract import secrets_match
from gateway.store.models import ApiToken

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
    def from_environment(cls) -> SessionSigner:
        configured = os.environ.get(SECRET_ENV)
        return cls(configured.encode() if configured else secrets.token_bytes(32))

    def _mac(self, purpose: str, payload: str) -> str:
        return _b64(hmac.new(self._key, f"{purpose}\0{payload}".encode(), "sha256").digest())

    def issue(self, token_id: int, *, now: float | None = None) -> str:
        """A cookie value for a session of token `token_id`."""
        now = time.time() if now is None else now
        body = _b64(
            json.dumps(
                {"t": token_id, "n": secrets.token_urlsafe(16), "e": int(now + self.max_age_s)},
                separators=(",", ":"),
            ).encode()
        )
        return f"{body}.{self._mac('session', body)}"

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


def load_session(
    engine: Engine, signer: SessionSigner, cookie: str | None
) -> DashboardSession | None:
    """The session a cookie names, if it is valid and its token is still live."""
    if not cookie:
        return None
    verified = signer.verify(cookie)
    if verified is None:
        return None
    token_id, nonce, expires = verified
    with Session(engine) as session:
        row = session.get(ApiToken, token_id)
        if row is None or row.revoked_at is not None or row.id is None:
            return None
        principal = Principal.of(row)
    if not principal.allows(Role.viewer):
        return None  # an ingest token pushes events; it reads nothing
    return DashboardSession(principal=principal, nonce=nonce, expires_at=expires)


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
    "load_session",
]
