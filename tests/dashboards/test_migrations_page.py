"""The dashboard's migration inventory page and lifecycle actions, on SQLite and PG.

The estate is `seed_estate`'s plus one crontab line with a command (so it
translates) whose command carries markup, to prove the stored YAML is shown
escaped. Translate touches no system, so the app needs no Kestra.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from gateway.api.app import create_app
from gateway.auth import create_token
from gateway.contract import JobSpec, job_id_for
from gateway.ingest import apply_batch
from gateway.store.models import Job, Migration, MigrationAudit
from tests.dashboards.seed import CRON, K8S, dashboard_config, seed_estate, standins
from tests.dashboards.test_routes import csrf_of, login

DUMP = "db-dump"
DUMP_ID = job_id_for(CRON, DUMP)
HEARTBEAT_ID = job_id_for(CRON, "heartbeat")


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    config = dashboard_config()
    seed_estate(engine, config)
    apply_batch(
        engine,
        CRON,
        [],
        jobs=[
            JobSpec(
                source=CRON,
                key=DUMP,
                kind="crontab",
                name=DUMP,
                schedule="0 3 * * *",
                owner="dba",
                definition={"command": "echo '<script>x</script>' > /tmp/dump", "host": "db-1"},
            )
        ],
    )
    with TestClient(create_app(config, engine, adapters=standins())) as c:
        yield c


def _operator(client: TestClient, engine: Engine) -> str:
    login(client, create_token(engine, role="operator", name="ops"))
    return csrf_of(client.get(f"/migrations/{DUMP_ID}").text)


def _audit(engine: Engine, job_id: str) -> list[MigrationAudit]:
    with Session(engine) as session:
        return list(session.exec(select(MigrationAudit).where(MigrationAudit.job_id == job_id)))


def _state(engine: Engine, job_id: str) -> str:
    with Session(engine) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job.migration_state


def test_inventory_page_lists_every_seeded_job_with_readiness_wave_and_state(
    client: TestClient, engine: Engine
) -> None:
    login(client, create_token(engine, role="viewer", name="alice"))
    html = client.get("/migrations").text
    assert '<a href="/migrations" aria-current="page">Migrations</a>' in html
    for name in ("orders_etl", "report-builder", "thumbnailer", "nightly-backup", "heartbeat"):
        assert f">{name}</a>" in html
    row = html.split(f'href="/migrations/{DUMP_ID}">{DUMP}</a>', 1)[1].split("</tr>", 1)[0]
    assert "<strong>full</strong>" in row and "dba" in row and "observed" in row
    beat = html.split(f'href="/migrations/{HEARTBEAT_ID}">heartbeat</a>', 1)[1].split("</tr>")[0]
    assert "<strong>none</strong>" in beat and "a crontab job needs its command" in beat
    assert "%" in beat  # the heartbeat has runs and failures in its 30-day window
    only_k8s = client.get("/migrations", params={"source": K8S}).text
    assert "report-builder" in only_k8s and "heartbeat" not in only_k8s
    assert '<form method="post"' not in client.get(f"/migrations/{DUMP_ID}").text


def test_operator_translate_moves_the_job_and_audits_it_as_the_token(
    client: TestClient, engine: Engine
) -> None:
    csrf = _operator(client, engine)
    page = client.get(f"/migrations/{DUMP_ID}").text
    assert f'action="/actions/migrations/{DUMP_ID}/translate"' in page
    assert f'action="/actions/migrations/{DUMP_ID}/cutover"' not in page  # not from observed
    done = client.post(
        f"/actions/migrations/{DUMP_ID}/translate", data={"csrf": csrf}, follow_redirects=False
    )
    assert done.status_code == 303, done.text
    assert _state(engine, DUMP_ID) == "translated"
    (row,) = _audit(engine, DUMP_ID)
    assert (row.actor, row.action, row.before, row.after, row.outcome) == (
        "token:ops",
        "translate",
        "observed",
        "translated",
        "ok",
    )
    html = client.get(done.headers["location"]).text
    assert "translate done." in html
    assert '<span class="mig mig-translated">translated</span>' in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "<script>x</script>" not in html
    assert re.search(r"<td>token:ops</td><td>translate</td><td>observed</td>", html)
    assert f'action="/actions/migrations/{DUMP_ID}/rollback"' in html


def test_refused_actions_show_their_reason_and_change_nothing(
    client: TestClient, engine: Engine
) -> None:
    csrf = _operator(client, engine)
    refused = client.post(f"/actions/migrations/{HEARTBEAT_ID}/translate", data={"csrf": csrf})
    assert refused.status_code == 409
    assert (
        "translate refused:" in refused.text and "a crontab job needs its command" in refused.text
    )
    assert "Traceback" not in refused.text
    assert _state(engine, HEARTBEAT_ID) == "observed"
    wrong_state = client.post(f"/actions/migrations/{DUMP_ID}/cutover", data={"csrf": csrf})
    assert wrong_state.status_code == 409
    assert "cannot cutover from observed" in wrong_state.text
    assert [a.outcome for a in _audit(engine, DUMP_ID)] == ["refused"]
    unknown = client.post(f"/actions/migrations/{DUMP_ID}/explode", data={"csrf": csrf})
    assert unknown.status_code == 404
    assert client.get("/migrations/nope").status_code == 404


def test_viewer_and_forged_posts_are_refused_and_change_nothing(
    client: TestClient, engine: Engine
) -> None:
    login(client, create_token(engine, role="viewer", name="watcher"))
    viewer_csrf = csrf_of(client.get("/migrations").text)
    refused = client.post(f"/actions/migrations/{DUMP_ID}/translate", data={"csrf": viewer_csrf})
    assert refused.status_code == 403 and "operator role" in refused.text
    login(client, create_token(engine, role="operator", name="ops"))
    for form in ({}, {"csrf": viewer_csrf}, {"csrf": "forged"}):
        forged = client.post(f"/actions/migrations/{DUMP_ID}/translate", data=form)
        assert forged.status_code == 403 and "Form expired" in forged.text
    anonymous = TestClient(client.app)
    assert anonymous.post(f"/actions/migrations/{DUMP_ID}/translate").status_code == 401
    assert _state(engine, DUMP_ID) == "observed"
    assert _audit(engine, DUMP_ID) == []
    with Session(engine) as session:
        assert session.get(Migration, DUMP_ID) is None


def test_the_wrap_form_says_which_host_and_user_run_the_job_before_it_is_pressed(
    client: TestClient, engine: Engine
) -> None:
    csrf = _operator(client, engine)
    client.post(f"/actions/migrations/{DUMP_ID}/translate", data={"csrf": csrf})
    page = client.get(f"/migrations/{DUMP_ID}").text
    form = page.split(f'action="/actions/migrations/{DUMP_ID}/wrap"', 1)[1].split("</form>")[0]
    assert "host <strong>db-1</strong>, over SSH from the Kestra worker" in form
    assert "<dt>As user</dt><dd><strong>the SSH default</strong></dd>" in form
    assert "<code>echo &#39;&lt;script&gt;x&lt;/script&gt;&#39; &gt; /tmp/dump</code>" in form

    local = JobSpec(
        source=CRON,
        key="local-dump",
        kind="crontab",
        name="local-dump",
        schedule="0 4 * * *",
        definition={"command": "/usr/bin/dump", "host": "db-1", "user": "dba", "local": True},
    )
    apply_batch(engine, CRON, [], jobs=[local])
    local_id = job_id_for(CRON, local.key)
    client.post(f"/actions/migrations/{local_id}/translate", data={"csrf": csrf})
    form = client.get(f"/migrations/{local_id}").text.split("/wrap", 1)[1].split("</form>")[0]
    assert "<strong>the Kestra worker itself</strong> (local shell, as the worker's own" in form
    assert "not on db-1" in form and "As user" not in form
