"""Dashboard actions refuse requests without the session's CSRF token.

The dashboard (`dashboards/web`) logs in with an API token and keeps a
signed session cookie; every state-changing POST must carry the CSRF token
rendered into the page, derived from the session's nonce. A forged
cross-site POST carries the cookie (if the browser sends it) but cannot know
the token. Checked here through the app: the re-poll action and logout
without or with a wrong token are 403 and do nothing; with the page's token
they go through; the login form itself needs its double-submit cookie; and
the session cookie is HttpOnly and SameSite=Strict.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from gateway.api.app import create_app
from gateway.auth import create_token
from gateway.config import parse_config

CSRF_FIELD = re.compile(r'name="csrf" value="([^"]*)"')


@pytest.fixture
def app_engine(sqlite_engine: Engine) -> Engine:
    return sqlite_engine


@pytest.fixture
def browser(app_engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    options = {"control_file": str(tmp_path / "control.json")}
    config = parse_config({"sources": [{"name": "cron-hosts", "kind": "cron", "options": options}]})
    with TestClient(create_app(config, app_engine), base_url="http://127.0.0.1") as client:
        yield client


def log_in(browser: TestClient, token: str) -> str:
    """Log in through the form; the CSRF token the overview page carries."""
    page = browser.get("/login")
    login_csrf = CSRF_FIELD.search(page.text)
    assert login_csrf, page.text[:500]
    done = browser.post(
        "/login",
        data={"token": token, "csrf": login_csrf.group(1), "next": "/"},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text[:300]
    cookie = done.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    overview = browser.get("/")
    assert overview.status_code == 200
    token_field = CSRF_FIELD.search(overview.text)
    assert token_field and token_field.group(1)
    return token_field.group(1)


def test_repoll_action_without_or_with_a_wrong_csrf_token_is_403(
    browser: TestClient, app_engine: Engine
) -> None:
    csrf = log_in(browser, create_token(app_engine, role="operator"))
    action = "/actions/sources/cron-hosts/poll"
    for form in ({}, {"csrf": ""}, {"csrf": "forged"}, {"csrf": csrf[:-2] + "xx"}):
        r = browser.post(action, data=form, follow_redirects=False)
        assert r.status_code == 403, (form, r.status_code)
    accepted = browser.post(action, data={"csrf": csrf}, follow_redirects=False)
    assert accepted.status_code == 303
    assert "repoll=cron-hosts" in accepted.headers["location"]


def test_logout_without_the_csrf_token_keeps_the_session(
    browser: TestClient, app_engine: Engine
) -> None:
    csrf = log_in(browser, create_token(app_engine, role="viewer"))
    refused = browser.post("/logout", data={}, follow_redirects=False)
    assert refused.status_code == 403
    assert browser.get("/", follow_redirects=False).status_code == 200
    done = browser.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert done.status_code == 303


def test_login_without_its_double_submit_cookie_is_refused(
    browser: TestClient, app_engine: Engine
) -> None:
    token = create_token(app_engine, role="admin")
    page = browser.get("/login")
    field = CSRF_FIELD.search(page.text)
    assert field
    browser.cookies.clear()  # a cross-site form post: the field without the cookie
    r = browser.post(
        "/login", data={"token": token, "csrf": field.group(1), "next": "/"}, follow_redirects=False
    )
    assert r.status_code == 401
    assert "swy_session" not in r.headers.get("set-cookie", "")


def test_a_csrf_token_from_another_session_is_refused(
    browser: TestClient, app_engine: Engine
) -> None:
    other = log_in(browser, create_token(app_engine, role="operator", name="other"))
    browser.cookies.clear()
    log_in(browser, create_token(app_engine, role="operator", name="me"))
    r = browser.post(
        "/actions/sources/cron-hosts/poll", data={"csrf": other}, follow_redirects=False
    )
    assert r.status_code == 403
