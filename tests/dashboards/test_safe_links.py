"""Links the dashboard renders are safe, and every page carries a Content-Security-Policy.

The contract now refuses a `url` that is not an absolute http(s) URL, but rows
stored before it did (or written by an older gateway) may still hold one. A
`javascript:` deep link must then show as plain text: never an `href` on the
runs, trace, incident or jobs pages. Checked through the app on the seeded
estate, with the bad URLs written into the stored rows directly, as an older
version would have stored them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from gateway.api.app import create_app
from gateway.auth import create_token
from gateway.incidents import list_incidents
from gateway.store.models import Job, Run
from tests.dashboards.seed import AIRFLOW, Seeded, dashboard_config, seed_estate, standins
from tests.dashboards.test_routes import login

EVIL = "javascript:alert(document.cookie)"
# An href whose value, however spaced or cased, starts with a scheme other than http(s).
BAD_HREF = re.compile(r"""href\s*=\s*["']?\s*(?!https?:|/|#)[a-z][a-z0-9+.\-]*:""", re.I)


@pytest.fixture
def client(sqlite_engine: Engine) -> Iterator[tuple[TestClient, Seeded]]:
    config = dashboard_config()
    seeded = seed_estate(sqlite_engine, config)
    with sqlite_engine.begin() as conn:
        conn.execute(sa.update(Run).where(col(Run.source) == AIRFLOW).values(url=EVIL))
    with Session(sqlite_engine) as session:
        job = session.exec(select(Job).where(Job.key == "orders_etl")).one()
        job.spec = {**job.spec, "url": "data:text/html,<script>alert(1)</script>"}
        session.add(job)
        session.commit()
    with TestClient(create_app(config, sqlite_engine, adapters=standins())) as c:
        login(c, create_token(sqlite_engine, role="viewer", name="viewer"))
        yield c, seeded


def assert_no_unsafe_link(html: str, *, shown: str) -> None:
    assert BAD_HREF.search(html) is None, BAD_HREF.search(html)
    assert shown in html, "the refused URL is not shown as text"


def test_a_javascript_url_is_plain_text_on_the_runs_trace_and_incident_pages(
    client: tuple[TestClient, Seeded], sqlite_engine: Engine
) -> None:
    c, seeded = client
    with Session(sqlite_engine) as session:
        incidents = list_incidents(session, status="open").data
    assert incidents, "the seeded estate opens an incident"
    pages = [
        "/runs?q=orders_etl",
        "/runs/rows?q=orders_etl",
        f"/traces/{seeded.dag_trace_id}",
        f"/incidents/{incidents[0].id}",
    ]
    for path in pages:
        r = c.get(path)
        assert r.status_code == 200, path
        assert_no_unsafe_link(r.text, shown="javascript:alert(document.cookie)")
    # The other sources' http links are still links.
    trace = c.get(f"/traces/{seeded.dag_trace_id}").text
    assert 'href="http://k8s.example.internal/' in trace


def test_a_data_url_on_a_job_is_plain_text_on_the_jobs_page(
    client: tuple[TestClient, Seeded],
) -> None:
    c, _seeded = client
    html = c.get("/jobs").text
    assert BAD_HREF.search(html) is None
    assert "data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_every_dashboard_page_carries_a_strict_content_security_policy(
    client: tuple[TestClient, Seeded],
) -> None:
    c, seeded = client
    for path in ("/", "/runs", "/runs/rows", f"/traces/{seeded.dag_trace_id}", "/jobs"):
        r = c.get(path)
        policy = r.headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["script-src"] == "'self'", path
        assert directives["default-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'"
        assert "unsafe-inline" not in directives["style-src"]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "<script>" not in r.text, f"{path} has an inline script"
    c.cookies.clear()
    assert "content-security-policy" in c.get("/login").headers


def test_api_docs_load_swagger_ui_from_this_origin(client: tuple[TestClient, Seeded]) -> None:
    c, _seeded = client
    r = c.get("/api/v1/docs")
    assert r.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert sources and all(s.startswith("/api/v1/docs/assets/") for s in sources), sources
    for asset in sources:
        assert c.get(asset).status_code == 200, asset
    policy = r.headers["content-security-policy"]
    assert re.search(r"script-src 'self' 'sha256-[A-Za-z0-9+/=]+'", policy), policy
