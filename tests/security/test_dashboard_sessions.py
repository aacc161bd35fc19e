"""Dashboard sessions end server-side, and cookies are Secure behind a trusted TLS proxy only.

Two real `switchyard serve` replicas share one store and one
`SWITCHYARD_SESSION_SECRET`: replica A lists `trusted_proxies: [10.0.0.0/8]`
(so its loopback client is NOT a trusted proxy), replica B lists
`[127.0.0.1]`. A browser's cookie is copied before logout and replayed with
a plain HTTP client afterwards: it must be refused on both replicas. A
`X-Forwarded-Proto: https` header makes the cookies `Secure` only where the
peer is a trusted proxy, and the same rule sets the client address the
access log shows. Expiry, pruning and revocation are checked on the store
(SQLite and PostgreSQL); the explicit `cookie_secure: true|false` through the app.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import yaml
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from dashboards.web.session import (
    DEFAULT_MAX_AGE_S,
    SessionSigner,
    load_session,
    start_session,
)
from gateway.api.app import create_app
from gateway.auth import create_token, list_tokens, revoke_token
from gateway.config import parse_config
from tests.dbs import migrated_engine
from tests.faults.gateway_process import CLEAN_EXIT, GatewayProcess, gateway_env

CSRF_FIELD = re.compile(r'name="csrf" value="([^"]*)"')
SESSION_SECRET = "replicas-share-this-session-key-0123456789"


@dataclass
class Replicas:
    a: GatewayProcess  # trusted_proxies: [10.0.0.0/8]; its loopback peer is not one
    b: GatewayProcess  # trusted_proxies: [127.0.0.1]
    token: str
    db: Path


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    tmp = tmp_path_factory.mktemp("sessions")
    db = tmp / "switchyard.db"
    engine = migrated_engine(f"sqlite:///{db}")
    token = create_token(engine, role="viewer", name="browser")
    engine.dispose()
    env = gateway_env(tmp, SWITCHYARD_SESSION_SECRET=SESSION_SECRET)
    made = []
    for name, proxies in (("a", ["10.0.0.0/8"]), ("b", ["127.0.0.1"])):
        config = tmp / f"{name}.yaml"
        config.write_text(
            yaml.safe_dump({"database_url": f"sqlite:///{db}", "trusted_proxies": proxies})
        )
        made.append(GatewayProcess(config, env, tmp / f"{name}.log"))
    try:
        for gateway in made:
            gateway.start()
        yield Replicas(made[0], made[1], token, db)
        for gateway in made:
            assert gateway.stop() in CLEAN_EXIT, gateway.output()[-2000:]
    finally:
        for gateway in made:
            gateway.kill()


def _base(gateway: GatewayProcess) -> str:
    assert gateway.base_url
    return gateway.base_url


def log_in(base: str, token: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """The answer to a login through the form; cookies carried by hand (they may be Secure)."""
    headers = dict(headers or {})
    page = httpx.get(f"{base}/login", headers=headers, timeout=10)
    field = CSRF_FIELD.search(page.text)
    assert page.status_code == 200 and field, page.text[:300]
    assert "swy_login_csrf" in page.headers["set-cookie"]
    return httpx.post(
        f"{base}/login",
        data={"token": token, "csrf": field.group(1), "next": "/"},
        headers={**headers, "Cookie": f"swy_login_csrf={field.group(1)}"},
        timeout=10,
    )


def session_cookie(done: httpx.Response) -> str:
    assert done.status_code == 303, done.text[:300]
    found = re.search(r"swy_session=([^;]+)", done.headers["set-cookie"])
    assert found
    return found.group(1)


def page_with(base: str, cookie: str) -> httpx.Response:
    return httpx.get(f"{base}/", headers={"Cookie": f"swy_session={cookie}"}, timeout=10)


def stored_sessions(db: Path) -> int:
    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return int(conn.scalar(sa.text("SELECT count(*) FROM dashboard_session")) or 0)
    finally:
        engine.dispose()


@pytest.mark.slow
def test_a_cookie_copied_before_logout_is_refused_afterwards_on_every_replica(
    replicas: Replicas,
) -> None:
    a, b = _base(replicas.a), _base(replicas.b)
    copied = session_cookie(log_in(a, replicas.token))
    before = stored_sessions(replicas.db)
    # One session, valid on both replicas (shared key, shared store).
    assert page_with(a, copied).status_code == 200
    overview = page_with(b, copied)
    assert overview.status_code == 200
    csrf = CSRF_FIELD.search(overview.text)
    assert csrf

    logout = httpx.post(
        f"{b}/logout",
        data={"csrf": csrf.group(1)},
        headers={"Cookie": f"swy_session={copied}"},
        timeout=10,
    )
    assert logout.status_code == 303

    for base in (a, b):
        replayed = page_with(base, copied)
        assert replayed.status_code == 303, (base, replayed.status_code)
        assert replayed.headers["location"].startswith("/login")
    assert stored_sessions(replicas.db) == before - 1


@pytest.mark.slow
def test_forwarded_proto_makes_cookies_secure_only_from_a_trusted_proxy(
    replicas: Replicas,
) -> None:
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    untrusted = log_in(_base(replicas.a), replicas.token, forwarded)
    trusted = log_in(_base(replicas.b), replicas.token, forwarded)
    plain = log_in(_base(replicas.b), replicas.token)

    assert "secure" not in untrusted.headers["set-cookie"].lower()
    assert "secure" not in plain.headers["set-cookie"].lower()
    cookie = trusted.headers["set-cookie"].lower()
    assert "swy_session=" in cookie and "secure" in cookie, cookie
    session_cookie(trusted)  # logged in: the Secure cookie is a working session

    # The same rule names the client in the access log: the forwarded address
    # only where the peer is a trusted proxy.
    time.sleep(0.2)  # uvicorn writes its access line after the answer
    assert '203.0.113.7:0 - "POST /login' in replicas.b.output()
    assert "203.0.113.7" not in replicas.a.output()


@pytest.mark.parametrize(
    ("setting", "base_url", "secure"),
    [(True, "http://127.0.0.1", True), (False, "https://127.0.0.1", False)],
)
def test_cookie_secure_true_or_false_overrides_the_scheme(
    sqlite_engine: Engine, setting: bool, base_url: str, secure: bool
) -> None:
    token = create_token(sqlite_engine, role="viewer")
    app = create_app(parse_config({"cookie_secure": setting}), sqlite_engine)
    with TestClient(app, base_url=base_url) as client:
        page = client.get("/login")
        field = CSRF_FIELD.search(page.text)
        assert field
        assert ("secure" in page.headers["set-cookie"].lower()) is secure
        done = client.post(
            "/login",
            data={"token": token, "csrf": field.group(1), "next": "/"},
            headers={"Cookie": f"swy_login_csrf={field.group(1)}"},
            follow_redirects=False,
        )
    assert done.status_code == 303
    assert ("secure" in done.headers["set-cookie"].lower()) is secure


def _rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.text("SELECT count(*) FROM dashboard_session")) or 0)


def test_expired_sessions_are_refused_and_pruned_at_the_next_login(engine: Engine) -> None:
    signer = SessionSigner(b"0123456789abcdef-test")
    token_id = _token_id(engine)
    t0 = 1_900_000_000.0
    old = start_session(engine, signer, token_id, now=t0)
    assert load_session(engine, signer, old, now=t0 + 60) is not None
    assert load_session(engine, signer, old, now=t0 + DEFAULT_MAX_AGE_S + 1) is None

    later = t0 + DEFAULT_MAX_AGE_S + 10
    fresh = start_session(engine, signer, token_id, now=later)
    assert _rows(engine) == 1  # the expired row went with the next login
    assert load_session(engine, signer, fresh, now=later) is not None


def test_revoking_a_token_ends_and_deletes_its_sessions(engine: Engine) -> None:
    signer = SessionSigner(b"0123456789abcdef-test")
    token_id = _token_id(engine)
    other = _token_id(engine, "other")
    cookies = [start_session(engine, signer, token_id) for _ in range(2)]
    kept = start_session(engine, signer, other)
    revoke_token(engine, token_id)
    assert [load_session(engine, signer, c) for c in cookies] == [None, None]
    assert load_session(engine, signer, kept) is not None
    assert _rows(engine) == 1


def test_a_session_missing_from_the_store_is_refused_though_its_signature_is_good(
    engine: Engine,
) -> None:
    signer = SessionSigner(b"0123456789abcdef-test")
    token_id = _token_id(engine)
    forged, _nonce, _expires = signer.issue(token_id)  # signed, never stored
    assert signer.verify(forged) is not None
    assert load_session(engine, signer, forged) is None


def _token_id(engine: Engine, name: str = "person") -> int:
    create_token(engine, role="viewer", name=name)
    return max(t.id for t in list_tokens(engine) if t.name == name)
