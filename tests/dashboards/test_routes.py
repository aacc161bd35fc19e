"""The dashboard's pages and actions through the real app (TestClient), on SQLite and PG."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from gateway.api.app import create_app
from gateway.auth import create_token, list_tokens, revoke_token
from tests.dashboards.seed import (
    CRON,
    HEARTBEATS,
    K8S,
    LAMBDA,
    Seeded,
    dashboard_config,
    seed_estate,
    standins,
)


@dataclass
class Dash:
    client: TestClient
    engine: Engine
    seeded: Seeded


def login(client: TestClient, token: str, next_path: str = "/") -> None:
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    done = client.post(
        "/login",
        data={"csrf": csrf.group(1), "token": token, "next": next_path},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


@pytest.fixture
def dash(engine: Engine) -> Iterator[Dash]:
    config = dashboard_config()
    seeded = seed_estate(engine, config)
    with TestClient(create_app(config, engine, adapters=standins())) as client:
        yield Dash(client, engine, seeded)


@pytest.fixture
def viewer(dash: Dash) -> Dash:
    login(dash.client, create_token(dash.engine, role="viewer", name="alice"))
    return dash


def test_pages_redirect_to_login_with_the_page_to_return_to(dash: Dash) -> None:
    response = dash.client.get("/runs?source=cron-hosts", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fruns%3Fsource%3Dcron-hosts"
    assert dash.client.get("/runs/rows").status_code == 401


def test_unknown_token_is_refused_and_sets_no_session(dash: Dash) -> None:
    page = dash.client.get("/login")
    response = dash.client.post(
        "/login",
        data={"csrf": csrf_of(page.text), "token": "swy_nope", "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 401
    assert "unknown or revoked" in response.text
    assert "swy_session" not in response.cookies


def test_ingest_token_cannot_sign_in(dash: Dash) -> None:
    token = create_token(dash.engine, role="ingest", name="ci", sources=["cron-hosts"])
    page = dash.client.get("/login")
    response = dash.client.post(
        "/login",
        data={"csrf": csrf_of(page.text), "token": token, "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 401
    assert "cannot sign in" in response.text
    assert "swy_session" not in response.cookies
    assert dash.client.get("/runs", follow_redirects=False).status_code == 303


def test_login_without_the_form_csrf_cookie_is_refused(dash: Dash) -> None:
    token = create_token(dash.engine, role="viewer")
    response = dash.client.post(
        "/login", data={"csrf": "forged", "token": token, "next": "/"}, follow_redirects=False
    )
    assert response.status_code == 401
    assert "expired" in response.text


def test_login_never_redirects_off_site(dash: Dash) -> None:
    token = create_token(dash.engine, role="viewer")
    page = dash.client.get("/login")
    response = dash.client.post(
        "/login",
        data={"csrf": csrf_of(page.text), "token": token, "next": "//evil.example/"},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/"


def test_overview_shows_sources_failures_and_runs_per_system(viewer: Dash) -> None:
    html = viewer.client.get("/").text
    for source in (CRON, K8S, LAMBDA, "airflow-prod"):
        assert source in html
    assert "ThrottlingException: Rate exceeded" in html  # lambda's last error
    assert 'status-degraded">degraded' in html
    assert "pod orders-etl-transform-7d9f OOMKilled" in html  # the failed DAG run
    assert "Runs per system, last 24 hours" in html and "<rect" in html
    legend = dict(re.findall(r"</span>([\w-]+)</th><td>(\d+)</td>", html))
    assert legend[CRON] == str(HEARTBEATS + 1)
    assert "Re-poll now" not in html  # a viewer cannot act


def _row_keys(html: str) -> list[str]:
    return re.findall(r'<td class="wrap">([^<]+)</td>\s*<td><span class="state', html)


def test_runs_filter_by_source_state_and_text(viewer: Dash) -> None:
    html = viewer.client.get("/runs", params={"source": CRON, "state": "failed"}).text
    names = _row_keys(html)
    expected = len([i for i in range(HEARTBEATS) if i % 17 == 5])
    assert names == ["heartbeat"] * expected
    html = viewer.client.get("/runs", params={"q": "container base"}).text
    assert set(_row_keys(html)) == {"orders-etl-transform-7d9f"}
    # Text search ignores case on both databases (ILIKE on PG, LIKE on SQLite).
    html = viewer.client.get("/runs", params={"q": "CONTAINER Base: oomKILLED"}).text
    assert set(_row_keys(html)) == {"orders-etl-transform-7d9f"}


def test_runs_keyset_pages_cover_every_run_once(viewer: Dash) -> None:
    seen: list[str] = []
    url = f"/runs?source={CRON}&kind=run"
    for _ in range(10):
        html = viewer.client.get(url).text
        seen += re.findall(r'datetime="([^"]+)"', html)
        nxt = re.search(r'href="(/runs\?[^"]+)" rel="next"', html)
        if not nxt:
            break
        url = nxt.group(1).replace("&amp;", "&")
    assert len(seen) == HEARTBEATS + 1 == len(set(seen))
    assert seen == sorted(seen, reverse=True)


def test_runs_rows_fragment_is_the_table_body_for_the_same_filters(viewer: Dash) -> None:
    body = viewer.client.get("/runs/rows", params={"source": K8S}).text
    assert body.lstrip().startswith("<tr>")
    assert "<html" not in body
    assert "orders-etl-transform-7d9f" in body and "heartbeat" not in body


def test_bad_filters_are_400_naming_the_field(viewer: Dash) -> None:
    response = viewer.client.get("/runs", params={"state": "exploded"})
    assert response.status_code == 400
    assert "state: &#39;exploded&#39; is not a run state" in response.text
    response = viewer.client.get("/runs", params={"since": "yesterday-ish", "range": "custom"})
    assert response.status_code == 400 and "since:" in response.text
    assert viewer.client.get("/runs", params={"cursor": "garbage!"}).status_code == 400


def test_trace_waterfall_follows_the_ti_link_to_the_pod_on_the_critical_path(viewer: Dash) -> None:
    html = viewer.client.get(f"/traces/{viewer.seeded.dag_trace_id}").text
    rows = re.findall(r'<tr class="(critical)?" id="span-\w+">\s*<th[^>]*>(.*?)</th>', html, re.S)
    names = [" ".join(re.sub(r"<[^>]+>", " ", body).split()) for _, body in rows]
    critical = [n.split(" critical")[0] for (flag, _), n in zip(rows, names, strict=True) if flag]
    assert [n.split(" critical")[0].split(" PodFailed")[0] for n in names][:1] == ["run orders_etl"]
    assert critical[-1].startswith("↳ linked run orders-etl-transform-7d9f")
    assert any(c.startswith("task transform") for c in critical)
    assert not any(c.startswith("task extract") for c in critical)
    assert "equal ref <code>airflow.ti=orders_etl/" in html
    assert 'href="http://k8s.example.internal/#/pod/data/orders-etl-transform-7d9f"' in html
    assert viewer.client.get("/traces/0000").status_code == 404


def test_jobs_show_schedule_next_run_in_zone_recent_strip_and_migration_state(viewer: Dash) -> None:
    html = viewer.client.get("/jobs").text
    assert "America/New_York" in html and "<code>30 2 * * *</code>" in html
    row = html.split("nightly-backup</th>", 1)[1].split("</tr>", 1)[0]
    nxt = re.search(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", row)
    assert nxt is not None
    at = datetime.strptime(nxt.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert at.minute == 30 and at.hour in (6, 7)  # 02:30 New York is 06:30 or 07:30 UTC
    assert 0 < (at - viewer.seeded.now).total_seconds() <= 86400 + 3600
    assert row.count('class="cell state-bg-') == 1
    assert "observed" in row
    heartbeat = html.split("heartbeat</th>", 1)[1].split("</tr>", 1)[0]
    assert heartbeat.count('class="cell state-bg-') == 12


def test_timeline_groups_runs_by_system(viewer: Dash) -> None:
    html = viewer.client.get("/timeline", params={"window": "1h"}).text
    groups = re.findall(r'<th scope="rowgroup" colspan="3">.*?</span>([\w-]+)', html)
    assert set(groups) == {"airflow-prod", K8S, LAMBDA, CRON}
    assert "orders_etl" in html


def test_viewer_cannot_repoll_and_every_action_needs_the_csrf_token(dash: Dash) -> None:
    login(dash.client, create_token(dash.engine, role="viewer", name="v"))
    csrf = csrf_of(dash.client.get("/").text)
    refused = dash.client.post(f"/actions/sources/{CRON}/poll", data={"csrf": csrf})
    assert refused.status_code == 403 and "operator role" in refused.text
    login(dash.client, create_token(dash.engine, role="operator", name="o"))
    page = dash.client.get("/").text
    assert "Re-poll now" in page
    forged = dash.client.post(f"/actions/sources/{CRON}/poll", data={"csrf": csrf})
    assert forged.status_code == 403 and "Form expired" in forged.text
    done = dash.client.post(
        f"/actions/sources/{CRON}/poll", data={"csrf": csrf_of(page)}, follow_redirects=False
    )
    assert done.status_code == 303
    # This app runs no pollers: nothing is polled, and the overview says why.
    assert done.headers["location"] == f"/?repoll={CRON}&outcome=no-pollers"
    notice = dash.client.get(done.headers["location"]).text
    assert f"This gateway process runs no pollers, so it cannot poll {CRON}" in notice
    unknown = dash.client.post("/actions/sources/nope/poll", data={"csrf": csrf_of(page)})
    assert unknown.status_code == 404


def test_revoking_the_token_ends_its_dashboard_session(dash: Dash) -> None:
    login(dash.client, create_token(dash.engine, role="viewer", name="leaving"))
    assert dash.client.get("/", follow_redirects=False).status_code == 200
    (info,) = [t for t in list_tokens(dash.engine) if t.name == "leaving"]
    revoke_token(dash.engine, info.id)
    assert dash.client.get("/", follow_redirects=False).status_code == 303


def test_logout_clears_the_session(viewer: Dash) -> None:
    csrf = csrf_of(viewer.client.get("/").text)
    viewer.client.post("/logout", data={"csrf": csrf})
    assert viewer.client.get("/", follow_redirects=False).status_code == 303


def test_default_runs_range_is_the_last_day(viewer: Dash) -> None:
    html = viewer.client.get("/runs").text
    assert '<option value="24h" selected>' in html
    stamps = [datetime.fromisoformat(s) for s in re.findall(r'datetime="([^"]+)"', html)]
    assert stamps and min(stamps) >= viewer.seeded.now - timedelta(hours=24, minutes=1)


def test_incident_page_puts_the_oom_killed_pod_first_then_chain_evidence_and_timeline(
    viewer: Dash,
) -> None:
    listing = viewer.client.get("/incidents").text
    found = re.search(r'href="(/incidents/\d+)">#\d+ [^<]*OOMKilled', listing)
    assert found is not None, listing
    html = viewer.client.get(found.group(1)).text
    root = html.index('id="root-h"')
    chain = html.index('id="chain-h"')
    evidence = html.index('id="evidence-h"')
    timeline = html.index('id="timeline-h"')
    assert root < chain < evidence < timeline
    assert "container base: OOMKilled" in html[root:chain]
    assert "(exit 137)" in html[root:chain]
    assert "equal ref <code>airflow.ti=orders_etl/" in html[evidence:timeline]
    assert "incident opened" in html[timeline:]
    assert viewer.client.get("/incidents/999999").status_code == 404
    assert viewer.client.get("/incidents?cursor=nope").status_code == 400
