"""The dashboard in a real browser: headless Debian Chromium driven by Playwright.

The real app runs under uvicorn on 127.0.0.1 (ephemeral port) over a SQLite
store seeded through `apply_batch`. Screenshots land in
`tests/artifacts/dashboard/` (gitignored) for a person to look at.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy.engine import Engine

from gateway.api.app import create_app
from gateway.auth import create_token
from tests.dashboards.seed import CRON, Seeded, dashboard_config, seed_estate, standins

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "dashboard"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs /usr/bin/chromium (make browser installs it)"
    ),
]


@dataclass
class Served:
    base: str
    engine: Engine
    seeded: Seeded
    viewer_token: str
    operator_token: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from tests.dbs import migrated_engine

    url = f"sqlite:///{tmp_path_factory.mktemp('dash') / 'switchyard.db'}"
    engine = migrated_engine(url)
    config = dashboard_config()
    seeded = seed_estate(engine, config)
    app = create_app(config, engine, adapters=standins())
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Served(
            f"http://127.0.0.1:{port}",
            engine,
            seeded,
            create_token(engine, role="viewer", name="viewer-ui"),
            create_token(engine, role="operator", name="operator-ui"),
        )
    finally:
        server.should_exit = True
        thread.join(10)
        engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Browser, served: Served) -> Iterator[Page]:
    """A page that records what the Content-Security-Policy refused and what left the origin.

    Every test's pages must work under the policy: a refused script, style or
    fetch shows up in the console, and fails the test at teardown.
    """
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    context.set_default_timeout(10_000)
    page = context.new_page()
    refused: list[str] = []
    page.on(
        "console",
        lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.on("pageerror", lambda exc: refused.append(f"page error: {exc}"))
    yield page
    context.close()
    assert refused == [], "the page broke under its Content-Security-Policy"


def shot(page: Page, name: str, *, full: bool = False) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full)


def log_in(page: Page, served: Served, token: str, path: str = "/") -> None:
    page.goto(served.base + path)
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Log in").click()
    # Wait for the page behind the login: a key pressed before it loads would
    # land on the login form, not on the page under test.
    page.wait_for_url(lambda url: "/login" not in url)
    page.wait_for_load_state()


def test_login_lands_on_the_overview_with_sources_and_failures(page: Page, served: Served) -> None:
    page.goto(served.base + "/runs")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    shot(page, "01-login")
    page.get_by_label("API token").fill("swy_wrong")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("unknown or revoked")
    page.get_by_label("API token").fill(served.operator_token)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/runs$"))
    page.get_by_role("link", name="Overview").click()
    expect(page.get_by_role("heading", name="Sources")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("lambda-prod")).first).to_contain_text(
        "degraded"
    )
    expect(page.locator("svg rect").first).to_be_visible()
    shot(page, "02-overview", full=True)
    page.get_by_role("button", name=f"Re-poll now {CRON}").click()
    expect(page.get_by_role("status")).to_contain_text("This gateway process runs no pollers")


def test_filter_runs_and_the_table_refreshes_live(page: Page, served: Served) -> None:
    log_in(page, served, served.viewer_token, "/runs")
    page.get_by_label("Source").select_option(CRON)
    page.get_by_label("State").select_option("failed")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"source=cron-hosts.*state=failed"))
    rows = page.locator("#runs-body tr")
    expect(rows.first).to_contain_text("heartbeat")
    assert rows.count() == len([i for i in range(72) if i % 17 == 5])
    for i in range(rows.count()):
        expect(rows.nth(i)).to_contain_text("failed")
    body = page.locator("#runs-body")
    expect(body).to_have_attribute("data-refreshed", re.compile(r"\d+"), timeout=15_000)
    expect(page.locator("#live-status")).to_contain_text("updated at")
    page.get_by_role("button", name="Pause live updates").click()
    expect(page.get_by_role("button", name="Resume live updates")).to_have_attribute(
        "aria-pressed", "false"
    )
    shot(page, "03-runs-filtered")


def test_trace_waterfall_shows_the_pod_on_the_critical_path(page: Page, served: Served) -> None:
    log_in(page, served, served.viewer_token, "/runs?q=orders_etl&kind=run")
    page.get_by_role("link", name=re.compile("^Trace of orders_etl")).first.click()
    expect(page.get_by_role("heading", name=re.compile("^Trace"))).to_be_visible()
    critical = page.locator("tr.critical")
    expect(critical.last).to_contain_text("orders-etl-transform-7d9f")
    expect(critical.last).to_contain_text("linked")
    expect(page.get_by_role("link", name=re.compile("k8s-prod UI for"))).to_have_attribute(
        "href", re.compile(r"^http://k8s\.example\.internal/")
    )
    expect(page.get_by_text(re.compile("equal ref airflow.ti="))).to_be_visible()
    shot(page, "04-trace", full=True)


def test_jobs_and_timeline_render(page: Page, served: Served) -> None:
    log_in(page, served, served.viewer_token, "/jobs")
    row = page.get_by_role("row", name=re.compile("nightly-backup"))
    expect(row).to_contain_text("America/New_York")
    expect(row).to_contain_text("observed")
    shot(page, "05-jobs", full=True)
    page.get_by_role("link", name="Timeline").click()
    expect(page.get_by_role("rowheader", name=re.compile("k8s-prod"))).to_be_visible()
    shot(page, "06-timeline")


def test_incident_page_leads_with_the_root_cause(page: Page, served: Served) -> None:
    log_in(page, served, served.viewer_token, "/incidents")
    page.get_by_role("link", name=re.compile("OOMKilled")).first.click()
    root = page.locator("section.rootcause")
    expect(root).to_contain_text("OOMKilled")
    expect(root).to_contain_text("exit 137")
    shot(page, "07-incident", full=True)


def test_keyboard_only_skip_link_nav_and_filters(page: Page, served: Served) -> None:
    log_in(page, served, served.viewer_token, "/")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    expect(skip).to_be_focused()
    shot(page, "08-skip-link-focused")
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    # Tab from the top again into the navigation and open Runs by keyboard.
    page.goto(served.base + "/")
    page.keyboard.press("Tab")
    runs_link = page.get_by_role("link", name="Runs", exact=True)
    for _ in range(6):
        page.keyboard.press("Tab")
        if runs_link.evaluate("el => el === document.activeElement"):
            break
    expect(runs_link).to_be_focused()
    outline = runs_link.evaluate("el => getComputedStyle(el).outlineStyle")
    assert outline == "solid"  # a visible focus ring
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/runs$"))
    expect(page.get_by_role("link", name="Runs", exact=True)).to_have_attribute(
        "aria-current", "page"
    )
    page.get_by_label("Text").focus()
    page.keyboard.type("thumbnailer")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"q=thumbnailer"))
    expect(page.locator("#runs-body tr")).to_have_count(1)
    headers = page.locator("#runs-table thead th[scope=col]")
    assert headers.count() == 10
    shot(page, "09-keyboard-runs")


def test_api_docs_render_from_local_assets_under_a_strict_csp(page: Page, served: Served) -> None:
    elsewhere: list[str] = []
    page.on(
        "request",
        lambda r: None if r.url.startswith((served.base, "data:")) else elsewhere.append(r.url),
    )
    response = page.goto(served.base + "/api/v1/docs")
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "script-src 'self' 'sha256-" in policy and "unsafe-inline" not in policy
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/runs").first).to_be_visible()
    shot(page, "09-api-docs")
    assert elsewhere == [], "the docs page fetched from another origin (a CDN)"
