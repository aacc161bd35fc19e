"""Crafted input gets a 4xx naming what is wrong, never a 500, on SQLite and PostgreSQL.

Every case here was a 500 before: non-ASCII text reaching `hmac.compare_digest`
(the OpenLineage key, the ping key, the dashboard's CSRF field and session
cookie), Unicode digits (`²`, Arabic-Indic) and 5,000-digit numbers in ping exit
codes and webhook timestamps, timestamps that overflow on conversion to UTC,
overflowing or garbage cursors and ids, NUL in a URL (which PostgreSQL refuses
as a bound parameter), malformed OpenLineage facets, and control characters or
non-finite numbers in what a source reports. Each request goes through the
real app on a real store, and what a refused request would have written is
checked to be absent.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from gateway.api.app import create_app
from gateway.auth import create_token
from gateway.config import parse_config
from gateway.store.models import Job, Run
from gateway.webhook_signing import HEADER
from tests.gateway.test_api_webhooks import SECRET, HookAdapter

CRON_TOKEN = "cron-host-token-crafted"
PING_KEY = "ping-key-crafted"
OL_KEY = "lineage-key-crafted"
UUID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
RUN_ID = "3f5e83fa-3480-44ff-99c5-ff943cd7e4d6"
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]*)"')
TOO_EARLY = "0001-01-01T00:00:00+14:00"
TOO_LATE = "9999-12-31T23:59:59-14:00"


@dataclass
class Gateway:
    client: TestClient
    engine: Engine
    admin: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin}"}

    def runs(self) -> int:
        with Session(self.engine) as session:
            return int(session.exec(select(func.count()).select_from(Run)).one())

    def log_in(self) -> str:
        """Log in through the form; the CSRF token the overview page carries."""
        page = self.client.get("/login")
        login_csrf = CSRF_FIELD.search(page.text)
        assert login_csrf
        self.client.post("/login", data={"token": self.admin, "csrf": login_csrf.group(1)})
        found = CSRF_FIELD.search(self.client.get("/").text)
        assert found and found.group(1)
        return found.group(1)


@pytest.fixture
def gw(engine: Engine, tmp_path: Path) -> Iterator[Gateway]:
    config = parse_config(
        {
            "sources": [
                {"name": "hooked", "kind": "cron", "options": {"webhook_secret": SECRET}},
                {
                    "name": "cronny",
                    "kind": "cron",
                    "options": {
                        "token": CRON_TOKEN,
                        "ping_key": PING_KEY,
                        "checks": {UUID: {"name": "crafted"}},
                        "control_file": str(tmp_path / "control.json"),
                    },
                },
                {"name": "lineage", "kind": "openlineage", "options": {"api_key": OL_KEY}},
            ]
        }
    )
    app = create_app(config, engine, adapters={"hooked": HookAdapter("hooked")})
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield Gateway(client, engine, create_token(engine, role="admin", name="crafted"))


def assert_problem(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    if field is not None:
        assert field in [e["field"] for e in body.get("errors", [])], body
    return body


def cursor(parts: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


# -- what a source reports: the contract's edge --------------------------------


def an_event(**fields: Any) -> dict[str, Any]:
    return {"key": "k1", "state": "running", "observed_at": "2026-01-01T00:00:00Z", **fields}


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (an_event(key="orders\nfinally: evil"), "events[0].key"),
        (an_event(job="backup\x00"), "events[0].job"),
        (an_event(name="x\x85y"), "events[0].name"),
        (an_event(parent_key="p\r"), "events[0].parent_key"),
        (an_event(attributes={"note": "NUL\x00"}), "events[0].attributes"),
        (an_event(url="javascript:alert(document.cookie)"), "events[0].url"),
        (an_event(observed_at=TOO_EARLY), "events[0].observed_at"),
        (an_event(started_at=TOO_LATE), "events[0].started_at"),
        (an_event(error={"kind": "exit_code", "exit_code": 10**30}), "events[0].error.exit_code"),
    ],
)
def test_pushed_event_with_a_bad_value_is_422_naming_the_field_and_writes_nothing(
    gw: Gateway, event: dict[str, Any], field: str
) -> None:
    r = gw.client.post(
        "/api/v1/events", json={"source": "scripts", "events": [event]}, headers=gw.bearer
    )
    assert_problem(r, 422, field)
    assert gw.runs() == 0


def test_non_finite_numbers_in_a_pushed_event_are_422(gw: Gateway) -> None:
    body = b'{"source": "scripts", "events": [{"key": "k", "state": "running",'
    body += b' "observed_at": "2026-01-01T00:00:00Z", "attributes": {"cpu": NaN}}]}'
    headers = {**gw.bearer, "Content-Type": "application/json"}
    r = gw.client.post("/api/v1/events", content=body, headers=headers)
    assert_problem(r, 422, "events[0].attributes")
    assert gw.runs() == 0


def test_pushed_job_with_a_control_character_in_a_label_is_422(gw: Gateway) -> None:
    job = {"key": "j", "kind": "job", "labels": {"host": "web-1\nevil: true"}}
    r = gw.client.post(
        "/api/v1/events", json={"source": "scripts", "jobs": [job]}, headers=gw.bearer
    )
    assert_problem(r, 422, "jobs[0].labels.host")


CRON = {"Authorization": f"Bearer {CRON_TOKEN}"}


def a_report(**fields: Any) -> dict[str, Any]:
    base = {
        "phase": "start",
        "run_id": "r1",
        "job": "web-1/root/0123456789ab",
        "host": "web-1",
        "started_at": "2026-01-01T00:00:00Z",
        "sent_at": "2026-01-01T00:00:00Z",
    }
    return {**base, **fields}


def finish(**fields: Any) -> dict[str, Any]:
    return a_report(
        **{"phase": "finish", "ended_at": "2026-01-01T00:01:00Z", "exit_code": 1, **fields}
    )


@pytest.mark.parametrize(
    ("report", "field"),
    [
        (a_report(job="backup\nfinally:\n  - id: evil"), "reports[0].job"),
        (a_report(host="web-1\x00"), "reports[0].host"),
        (a_report(user="root\n"), "reports[0].user"),
        (a_report(run_id="r\x1b[2J"), "reports[0].run_id"),
        (a_report(started_at=TOO_EARLY), "reports[0].started_at"),
        (finish(exit_code=10**30), "reports[0].exit_code"),
        (a_report(pid=10**30), "reports[0].pid"),
    ],
)
def test_cron_report_with_a_bad_value_is_422_naming_the_field(
    gw: Gateway, report: dict[str, Any], field: str
) -> None:
    r = gw.client.post("/api/v1/cron/report", json={"reports": [report]}, headers=CRON)
    assert_problem(r, 422, field)
    assert gw.runs() == 0


def test_cron_report_with_a_non_finite_duration_is_422(gw: Gateway) -> None:
    body = json.dumps({"reports": [finish(duration_s="@")]}).replace('"@"', "NaN")
    r = gw.client.post(
        "/api/v1/cron/report",
        content=body.encode(),
        headers={**CRON, "Content-Type": "application/json"},
    )
    assert_problem(r, 422)
    assert gw.runs() == 0


def test_nul_in_a_jobs_output_is_kept_as_a_replacement_character(gw: Gateway) -> None:
    """Output is what the job printed: the run is recorded, the NUL made visible."""
    r = gw.client.post(
        "/api/v1/cron/report",
        json={"reports": [finish(output="binary\x00junk", command="sh -c 'a\nb'")]},
        headers=CRON,
    )
    assert r.status_code == 200, r.text
    with Session(gw.engine) as session:
        run = session.exec(select(Run)).one()
    assert run.attributes["cron.output"] == "binary\ufffdjunk"
    assert run.name == "sh -c 'a b'"


def a_job(**fields: Any) -> dict[str, Any]:
    base = {
        "key": "web-1/root/0123456789ab",
        "host": "web-1",
        "user": "root",
        "schedule": "0 * * * *",
        "schedule_native": "0 * * * *",
        "command": "backup.sh",
        "path": "/var/spool/cron/crontabs/root",
        "line_no": 3,
        "line": "0 * * * * backup.sh",
    }
    return {**base, **fields}


@pytest.mark.parametrize(
    ("job", "field"),
    [
        (a_job(key="web-1/root/0123456789ab\nfinally: evil"), "jobs[0].key"),
        (a_job(user="root\x00"), "jobs[0].user"),
        (a_job(host="web-1\r\n"), "jobs[0].host"),
        (a_job(command="backup.sh\nrm -rf /"), "jobs[0].command"),
        (a_job(line_no=10**30), "jobs[0].line_no"),
    ],
)
def test_cron_jobs_with_a_bad_value_are_422_naming_the_field(
    gw: Gateway, job: dict[str, Any], field: str
) -> None:
    r = gw.client.post("/api/v1/cron/jobs", json={"host": "web-1", "jobs": [job]}, headers=CRON)
    assert_problem(r, 422, field)
    with Session(gw.engine) as session:
        assert session.exec(select(Job).where(Job.source == "cronny")).all() == []


def test_a_crontab_line_with_tabs_is_one_line_and_accepted(gw: Gateway) -> None:
    job = a_job(line="0\t*\t* * *\tbackup.sh\t--full", command="backup.sh\t--full")
    r = gw.client.post("/api/v1/cron/jobs", json={"host": "web-1", "jobs": [job]}, headers=CRON)
    assert r.status_code == 200, r.text
    with Session(gw.engine) as session:
        stored = session.exec(select(Job).where(Job.source == "cronny")).one()
    assert stored.name == "backup.sh --full"


# -- secrets compared in constant time, whatever their characters --------------


def test_non_ascii_secrets_are_refused_not_crashed_on(gw: Gateway) -> None:
    c = gw.client
    assert c.get(f"/ping/{PING_KEY}é/backup").status_code == 404
    lineage = c.post("/api/v1/lineage", json={}, headers={"Authorization": "Bearer clé".encode()})
    assert_problem(lineage, 401)
    cron = c.post("/api/v1/cron/report", json={}, headers={"Authorization": "Bearer é".encode()})
    assert_problem(cron, 401)
    body = b'{"runs": []}'
    for header in (f"t={int(time.time())},v1=é", "t=²,v1=ab", "t=" + "9" * 5000 + ",v1=ab"):
        r = c.post(
            "/api/v1/sources/hooked/webhook",
            content=body,
            headers={HEADER: header.encode(), "Content-Type": "application/json"},
        )
        assert_problem(r, 401)


def test_dashboard_refuses_non_ascii_cookies_and_csrf_fields(gw: Gateway) -> None:
    c = gw.client
    cookie = {"Cookie": "swy_session=abc.é".encode()}
    r = c.get("/", headers=cookie, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    c.get("/login")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert c.post("/login", content=b"csrf=%C3%A9&token=x", headers=form).status_code == 401
    gw.log_in()
    for path in ("/logout", "/actions/sources/cronny/poll"):
        assert c.post(path, content=b"csrf=%C3%A9", headers=form).status_code == 403
    assert c.get("/").status_code == 200, "a refused logout ended the session"


# -- numbers: Unicode digits, 5,000 digits, ids past the column ---------------


@pytest.mark.parametrize(
    ("code", "status"),
    [("²", 404), ("\u0661\u0662", 404), ("9" * 5000, 400), ("256", 400), ("7", 200)],
    ids=["superscript", "arabic-indic", "5000 digits", "256", "7"],
)
def test_ping_exit_codes_are_ascii_digits_up_to_255(gw: Gateway, code: str, status: int) -> None:
    r = gw.client.get(f"/ping/{UUID}/{code}")
    assert r.status_code == status, r.text
    assert gw.runs() == (1 if status == 200 else 0)


def test_overflowing_ids_and_garbage_cursors_are_4xx_on_the_api(gw: Gateway) -> None:
    c, auth = gw.client, gw.bearer
    assert_problem(c.get("/api/v1/incidents/" + "9" * 30, headers=auth), 422, "incident_id")
    assert_problem(c.get("/api/v1/runs/" + "9" * 30, headers=auth), 404)
    assert_problem(c.get("/api/v1/runs", params={"limit": "9" * 5000}, headers=auth), 422)
    assert_problem(c.get("/api/v1/runs", params={"limit": "²"}, headers=auth), 422)
    # Runs and incidents page by (time, id); jobs by (source, key), any two lines of text.
    bad_times = [cursor([TOO_EARLY, "abc"]), cursor(["2026-01-01T00:00:00", "abc"])]
    bad_anywhere = [
        cursor(["2026-01-01T00:00:00+00:00", 2**70]),
        cursor(["2026-01-01T00:00:00+00:00", {"a": 1}]),
        cursor([["x"], "\x00"]),
        "!!!not base64!!!",
    ]
    for path, bad_cursors in [
        ("/api/v1/runs", bad_times + bad_anywhere),
        ("/api/v1/incidents", bad_times + bad_anywhere),
        ("/api/v1/jobs", bad_anywhere),
    ]:
        for bad in bad_cursors:
            assert_problem(c.get(path, params={"cursor": bad}, headers=auth), 422)


@pytest.mark.parametrize("stamp", [TOO_EARLY, TOO_LATE])
@pytest.mark.parametrize("param", ["since", "until"])
def test_run_filters_outside_utc_are_422(gw: Gateway, param: str, stamp: str) -> None:
    r = gw.client.get("/api/v1/runs", params={param: stamp}, headers=gw.bearer)
    assert_problem(r, 422, param)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/runs?source=%00", "source"),
        ("/api/v1/runs?job=a%00b", "job"),
        ("/api/v1/jobs?q=%00", "q"),
        ("/api/v1/runs/%00", "path"),
        ("/api/v1/jobs/ab%00", "path"),
        ("/runs?source=%00", "source"),
    ],
)
def test_nul_in_a_url_is_422_naming_the_parameter(gw: Gateway, path: str, field: str) -> None:
    """PostgreSQL refuses NUL as a bound parameter: this was a 500 there."""
    assert_problem(gw.client.get(path, headers=gw.bearer), 422, field)


def test_dashboard_pages_answer_crafted_numbers_and_cursors_without_a_500(gw: Gateway) -> None:
    gw.log_in()
    c = gw.client
    assert c.get("/incidents/" + "9" * 30).status_code == 404
    assert c.get("/incidents/²").status_code == 404
    assert c.get("/runs", params={"since": TOO_EARLY}).status_code == 400
    assert c.get("/runs", params={"until": TOO_LATE}).status_code == 400
    assert c.get("/runs", params={"cursor": cursor([TOO_EARLY, "x"])}).status_code == 400
    big_id = cursor(["2026-01-01T00:00:00+00:00", 2**70])
    assert c.get("/incidents", params={"cursor": big_id}).status_code == 400
    assert c.get("/jobs", params={"cursor": cursor([[1], [2]])}).status_code == 400
    for page in ("9" * 5000, "²", "0"):
        assert c.get("/migrations", params={"page": page}).status_code == 200


# -- OpenLineage: malformed facets, and one bad event in a batch --------------

OL = {"Authorization": f"Bearer {OL_KEY}"}


def lineage(facets: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    run_id = fields.pop("run_id", RUN_ID)
    return {
        "eventType": "START",
        "eventTime": "2026-01-01T00:00:00Z",
        "producer": "https://example.com/producer",
        "run": {"runId": run_id, "facets": facets or {}},
        "job": {"namespace": "spark", "name": "nightly"},
        **fields,
    }


def airflow_facet(**ti: Any) -> dict[str, Any]:
    return {
        "airflow": {
            "dag": {"dag_id": "orders"},
            "dagRun": {"run_id": "manual__1"},
            "task": {"task_id": "load"},
            "taskInstance": ti,
        }
    }


MALFORMED = {
    "map_index is a list": (
        lineage(airflow_facet(map_index=[1])),
        "run.facets.airflow.taskInstance.map_index",
    ),
    "try_number is huge": (
        lineage(airflow_facet(try_number=10**30)),
        "run.facets.airflow.taskInstance.try_number",
    ),
    "dag facet is a string": (
        lineage({"airflowDagRun": {"dagRun": {"run_id": ["x"]}, "dag": "orders"}}),
        "run.facets.airflowDagRun.dagRun.run_id",
    ),
    "dag run start_date overflows": (
        lineage(
            {"airflowDagRun": {"dagRun": {"run_id": "r", "dag_id": "d", "start_date": TOO_EARLY}}}
        ),
        "(body)",
    ),
    "dag run start_date is a number": (
        lineage({"airflowDagRun": {"dagRun": {"run_id": "r", "dag_id": "d", "start_date": 5}}}),
        "run.facets",
    ),
    "parent runId is not a UUID": (
        lineage({"parent": {"run": {"runId": "not-a-uuid"}}}),
        "run.facets.parent.run.runId",
    ),
    "root runId is an object": (
        lineage({"parent": {"run": {"runId": RUN_ID}, "root": {"run": {"runId": {"a": 1}}}}}),
        "run.facets.parent.root.run.runId",
    ),
    "runId is not a UUID": (lineage(run_id="12345"), "run.runId"),
    "eventTime overflows": (lineage(eventTime=TOO_EARLY), "(body)"),
    "job name holds a newline": (
        lineage(job={"namespace": "spark", "name": "nightly\nfinally:"}),
        "(body)",
    ),
}


@pytest.mark.parametrize(("event", "field"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_lineage_event_is_422_naming_where_and_stores_nothing(
    gw: Gateway, event: dict[str, Any], field: str
) -> None:
    r = gw.client.post("/api/v1/lineage", json=event, headers=OL)
    assert_problem(r, 422, field)
    assert gw.runs() == 0


def test_one_bad_event_does_not_fail_its_lineage_batch(gw: Gateway) -> None:
    good = lineage()
    batch = [good, *(event for event, _ in MALFORMED.values())]
    r = gw.client.post("/api/v1/lineage/batch", json=batch, headers=OL)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["status"] == "partial_success"
    assert (report["accepted"], report["stored"], report["failed"]) == (1, 1, len(MALFORMED))
    assert sorted(e["index"] for e in report["errors"]) == list(range(1, len(batch)))
    assert gw.runs() == 1


def test_a_lineage_batch_with_no_valid_event_is_422(gw: Gateway) -> None:
    batch = [event for event, _ in MALFORMED.values()]
    r = gw.client.post("/api/v1/lineage/batch", json=batch, headers=OL)
    assert_problem(r, 422)
    assert gw.runs() == 0
