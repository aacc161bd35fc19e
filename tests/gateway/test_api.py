"""The REST API through the real app, on SQLite and PostgreSQL: auth, runs, events, errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from gateway.api.app import create_app
from gateway.auth import create_token, hash_token, revoke_token
from gateway.config import parse_config
from gateway.merge import PUSH_CLOCK_SKEW
from gateway.store.models import ApiToken, RunEventRow
from gateway.store.models import Run as RunRow

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Api:
    client: TestClient
    engine: Engine
    viewer: dict[str, str]
    operator: dict[str, str]
    admin: dict[str, str]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def serving(engine: Engine, config: dict[str, Any]) -> Iterator[Api]:
    with TestClient(create_app(parse_config(config), engine)) as client:
        yield Api(
            client=client,
            engine=engine,
            viewer=_bearer(create_token(engine, role="viewer", name="v")),
            operator=_bearer(create_token(engine, role="operator", name="o")),
            admin=_bearer(create_token(engine, role="admin", name="a")),
        )


@pytest.fixture
def api(engine: Engine) -> Iterator[Api]:
    with serving(engine, {}) as api:
        yield api


def event(key: str, *, at: datetime = T0, state: str = "running", **extra: Any) -> dict[str, Any]:
    return {
        "key": key,
        "state": state,
        "started_at": at.isoformat(),
        "observed_at": at.isoformat(),
        **extra,
    }


def post(api: Api, events: list[dict[str, Any]], source: str = "scripts", **kw: Any) -> Any:
    return api.client.post(
        "/api/v1/events", headers=api.operator, json={"source": source, "events": events, **kw}
    )


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"] and body["type"]
    return body


# -- health ------------------------------------------------------------------


def test_health_and_readiness_need_no_token(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok", "detail": None}
    assert api.client.get("/readyz").json()["status"] == "ready"


def test_readyz_is_503_when_the_schema_is_not_at_head(sqlite_url: str) -> None:
    from gateway.store.db import make_engine

    bare = make_engine(sqlite_url)  # never migrated
    with TestClient(create_app(parse_config({}), bare)) as client:
        body = assert_problem(client.get("/readyz"), 503)
    assert "migration head" in body["detail"]
    bare.dispose()


def test_openapi_document_is_served_under_api_v1(api: Api) -> None:
    doc = api.client.get("/api/v1/openapi.json").json()
    assert "/api/v1/runs" in doc["paths"]
    assert "/api/v1/events" in doc["paths"]
    assert "/api/v1/sources/{name}/webhook" in doc["paths"]


def test_metrics_count_requests_by_route_template(api: Api) -> None:
    post(api, [event("m1")])
    run_id = api.client.get("/api/v1/runs", headers=api.viewer).json()["data"][0]["id"]
    api.client.get(f"/api/v1/runs/{run_id}", headers=api.viewer)
    text = api.client.get("/metrics").text
    assert 'route="/api/v1/runs/{run_id}",status="200"' in text
    assert run_id not in text
    applied = 'switchyard_api_ingest_events_total{outcome="applied",path="events",source="scripts"}'
    assert f"{applied} 1.0" in text


# -- auth --------------------------------------------------------------------


def test_no_token_is_401_problem_with_bearer_challenge(api: Api) -> None:
    r = api.client.get("/api/v1/runs")
    assert_problem(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_unknown_and_revoked_tokens_are_401(api: Api) -> None:
    assert_problem(api.client.get("/api/v1/runs", headers=_bearer("swy_nonsense")), 401)
    token = create_token(api.engine, role="admin", name="leaving")
    assert api.client.get("/api/v1/runs", headers=_bearer(token)).status_code == 200
    with Session(api.engine) as s:
        row = s.exec(select(ApiToken).where(ApiToken.name == "leaving")).one()
    revoke_token(api.engine, row.id or 0)
    assert_problem(api.client.get("/api/v1/runs", headers=_bearer(token)), 401)


def test_viewer_can_read_but_cannot_post_events(api: Api) -> None:
    assert api.client.get("/api/v1/runs", headers=api.viewer).status_code == 200
    r = api.client.post(
        "/api/v1/events", headers=api.viewer, json={"source": "s", "events": [event("x")]}
    )
    body = assert_problem(r, 403)
    assert "operator" in body["detail"]
    assert api.client.get("/api/v1/runs", headers=api.viewer).json()["data"] == []


def test_token_is_stored_only_as_its_hash(engine: Engine) -> None:
    token = create_token(engine, role="operator", name="ci")
    with Session(engine) as s:
        row = s.exec(select(ApiToken).where(ApiToken.name == "ci")).one()
    assert row.token_hash == hash_token(token)
    assert token not in (row.token_hash, row.prefix, row.name)
    assert token.startswith(row.prefix) and len(row.prefix) < len(token) // 3


def test_ingest_token_reads_nothing(api: Api) -> None:
    ingest = _bearer(create_token(api.engine, role="ingest", name="ci", sources=["scripts"]))
    body = assert_problem(api.client.get("/api/v1/runs", headers=ingest), 403)
    assert "viewer" in body["detail"]


# -- who may push events where -------------------------------------------------

POLLED = {"sources": [{"name": "airflow-prod", "kind": "airflow", "options": {"url": "http://x"}}]}


@pytest.fixture
def polled_api(engine: Engine) -> Iterator[Api]:
    """The API with one configured (polled) source, `airflow-prod`."""
    with serving(engine, POLLED) as api:
        yield api


def stored_run_keys(engine: Engine) -> list[tuple[str, str]]:
    with Session(engine) as s:
        return sorted((r.source, r.key) for r in s.exec(select(RunRow)))


@pytest.mark.parametrize("role", ["operator", "admin"])
def test_operator_and_admin_cannot_push_into_a_configured_source(
    polled_api: Api, role: str
) -> None:
    headers = polled_api.operator if role == "operator" else polled_api.admin
    r = polled_api.client.post(
        "/api/v1/events",
        headers=headers,
        json={"source": "airflow-prod", "events": [event("x", state="succeeded")]},
    )
    body = assert_problem(r, 403)
    assert "--role ingest --sources airflow-prod" in body["detail"]
    # Names no configured source uses stay open to them.
    free = polled_api.client.post(
        "/api/v1/events", headers=headers, json={"source": "scripts", "events": [event("y")]}
    )
    assert free.status_code == 200, free.text
    assert stored_run_keys(polled_api.engine) == [("scripts", "y")]


def test_ingest_token_pushes_only_into_the_sources_it_was_granted(polled_api: Api) -> None:
    token = create_token(polled_api.engine, role="ingest", name="ci", sources=["airflow-prod"])
    ingest = _bearer(token)
    ok = polled_api.client.post(
        "/api/v1/events",
        headers=ingest,
        json={"source": "airflow-prod", "events": [event("granted")]},
    )
    assert ok.status_code == 200, ok.text
    for source in ("k8s-prod", "scripts"):
        r = polled_api.client.post(
            "/api/v1/events", headers=ingest, json={"source": source, "events": [event("no")]}
        )
        body = assert_problem(r, 403)
        assert "only into: airflow-prod" in body["detail"]
    assert stored_run_keys(polled_api.engine) == [("airflow-prod", "granted")]


def test_pushed_events_are_marked_and_their_clock_clamped_whatever_the_sender_says(
    api: Api,
) -> None:
    future = datetime.now(UTC) + timedelta(days=365)
    r = post(api, [event("from-the-future", at=future, pushed=False)])
    assert r.status_code == 200, r.text
    with Session(api.engine) as s:
        run = s.exec(select(RunRow)).one()
        (stored,) = s.exec(select(RunEventRow)).all()
    assert run.state_pushed is True
    assert stored.payload["pushed"] is True
    assert run.observed_at is not None
    assert run.observed_at <= datetime.now(UTC) + PUSH_CLOCK_SKEW
    assert stored.observed_at == run.observed_at


# -- events ------------------------------------------------------------------


def test_posted_events_become_runs_with_history(api: Api) -> None:
    r = post(
        api,
        [
            event("job/1", job="nightly", name="nightly #1"),
            event(
                "job/1",
                at=T0 + timedelta(minutes=5),
                state="failed",
                started_at=T0.isoformat(),
                ended_at=(T0 + timedelta(minutes=5)).isoformat(),
                error={"kind": "exit_code", "message": "disk full", "exit_code": 3},
                refs=[{"namespace": "cron.rid", "value": "abc"}],
            ),
        ],
    )
    assert r.status_code == 200, r.text
    assert r.json()["applied"] == 2 and r.json()["runs_created"] == 1
    runs = api.client.get("/api/v1/runs", headers=api.viewer).json()["data"]
    assert [(x["key"], x["state"]) for x in runs] == [("job/1", "failed")]
    detail = api.client.get(f"/api/v1/runs/{runs[0]['id']}", headers=api.viewer).json()
    assert [h["state"] for h in detail["history"]] == ["running", "failed"]
    assert detail["error"] == {"kind": "exit_code", "message": "disk full", "exit_code": 3}
    assert detail["refs"] == [{"namespace": "cron.rid", "value": "abc"}]
    assert detail["duration_s"] == 300.0


def test_unknown_state_is_422_naming_the_field_and_writes_nothing(api: Api) -> None:
    r = post(api, [event("ok-1"), event("ok-2"), event("bad", state="exploded")])
    body = assert_problem(r, 422)
    assert [e["field"] for e in body["errors"]] == ["events[2].state"]
    assert body["detail"].startswith("events[2].state")
    assert api.client.get("/api/v1/runs", headers=api.viewer).json()["data"] == []


def test_missing_key_is_422_naming_the_field(api: Api) -> None:
    bad = event("x")
    del bad["key"]
    body = assert_problem(post(api, [event("fine"), bad]), 422)
    assert body["errors"][0]["field"] == "events[1].key"


def test_naive_timestamp_is_422_naming_the_field(api: Api) -> None:
    body = assert_problem(post(api, [event("x", observed_at="2026-03-01T12:00:00")]), 422)
    assert body["errors"] == [
        {
            "field": "events[0].observed_at",
            "message": "observed_at must carry a timezone (naive timestamps are ambiguous)",
        }
    ]


def test_event_naming_another_source_is_422(api: Api) -> None:
    body = assert_problem(post(api, [event("x", source="elsewhere")]), 422)
    assert body["errors"][0]["field"] == "events[0].source"


def test_attribute_over_the_event_limit_is_422_within_the_body_cap(api: Api) -> None:
    # 100 kB of attributes: under the 5 MiB body cap, over the 64 KiB event limit.
    body = assert_problem(post(api, [event("big", attributes={"blob": "x" * 100_000})]), 422)
    assert body["errors"][0]["field"] == "events[0].attributes"
    assert "limit" in body["errors"][0]["message"]


def test_ten_megabyte_attribute_is_422_when_the_cap_allows_the_body(engine: Engine) -> None:
    app = create_app(parse_config({"max_body_bytes": 20 * 1024 * 1024}), engine)
    token = create_token(engine, role="operator", name="big")
    with TestClient(app) as client:
        r = client.post(
            "/api/v1/events",
            headers=_bearer(token),
            json={"source": "s", "events": [event("huge", attributes={"blob": "x" * 10_000_000})]},
        )
    assert_problem(r, 422)
    assert r.json()["errors"][0]["field"] == "events[0].attributes"


def test_ten_megabyte_body_is_413_under_the_default_cap(api: Api) -> None:
    r = post(api, [event("huge", attributes={"blob": "x" * 10_000_000})])
    body = assert_problem(r, 413)
    assert str(5 * 1024 * 1024) in body["detail"]


def test_streamed_body_without_content_length_is_capped(engine: Engine) -> None:
    app = create_app(parse_config({"max_body_bytes": 1000}), engine)
    token = create_token(engine, role="operator", name="stream")

    def chunks() -> Iterator[bytes]:
        yield b'{"source": "s", "events": ['
        for _ in range(50):
            yield b" " * 100
        yield b"]}"

    with TestClient(app) as client:
        r = client.post(
            "/api/v1/events",
            headers={**_bearer(token), "Content-Type": "application/json"},
            content=chunks(),
        )
    assert "content-length" not in {k.lower() for k in r.request.headers}
    assert_problem(r, 413)


def test_unknown_route_and_malformed_json_are_problems(api: Api) -> None:
    assert_problem(api.client.get("/api/v1/nothing-here", headers=api.viewer), 404)
    r = api.client.post(
        "/api/v1/events",
        headers={**api.operator, "Content-Type": "application/json"},
        content=b"{not json",
    )
    assert_problem(r, 422)


def test_unexpected_error_is_a_generic_500_problem(engine: Engine) -> None:
    app = create_app(parse_config({}), engine)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/boom")
    body = assert_problem(r, 500)
    assert "secret internals" not in r.text and "Traceback" not in r.text
    assert body["detail"]


# -- listing -----------------------------------------------------------------


def test_runs_filter_by_source_state_kind_job_time_and_text(api: Api) -> None:
    post(api, [event("a1", job="alpha", at=T0)], source="one")
    post(
        api,
        [
            event(
                "b1",
                job="beta",
                at=T0 + timedelta(hours=1),
                state="failed",
                error={"kind": "OOMKilled", "message": "container ran out of memory"},
            )
        ],
        source="two",
    )
    post(
        api, [event("b1/t", kind="task", parent_key="b1", at=T0 + timedelta(hours=2))], source="two"
    )

    def keys(**params: Any) -> list[str]:
        r = api.client.get("/api/v1/runs", headers=api.viewer, params=params)
        assert r.status_code == 200, r.text
        return [x["key"] for x in r.json()["data"]]

    assert keys() == ["b1/t", "b1", "a1"]
    assert keys(source="one") == ["a1"]
    assert keys(state="failed") == ["b1"]
    assert keys(state=["failed", "running"], kind="run") == ["b1", "a1"]
    assert keys(kind="task") == ["b1/t"]
    assert keys(job="alpha") == ["a1"]
    assert keys(since=(T0 + timedelta(minutes=30)).isoformat()) == ["b1/t", "b1"]
    assert keys(until=(T0 + timedelta(minutes=30)).isoformat()) == ["a1"]
    assert keys(q="OUT OF MEMORY") == ["b1"]
    assert keys(q="alph") == ["a1"]
    assert keys(q="%") == []


def test_bad_query_parameters_are_422_naming_the_parameter(api: Api) -> None:
    body = assert_problem(api.client.get("/api/v1/runs?state=bogus", headers=api.viewer), 422)
    assert body["errors"][0]["field"] == "state[0]"
    body = assert_problem(
        api.client.get("/api/v1/runs?since=2026-01-01T00:00:00", headers=api.viewer), 422
    )
    assert body["errors"][0]["field"] == "since"
    body = assert_problem(api.client.get("/api/v1/runs?limit=501", headers=api.viewer), 422)
    assert body["errors"][0]["field"] == "limit"
    body = assert_problem(api.client.get("/api/v1/runs?cursor=garbage", headers=api.viewer), 422)


def test_keyset_pagination_is_stable_under_inserts(api: Api) -> None:
    post(api, [event(f"r{i:02d}", at=T0 + timedelta(minutes=i)) for i in range(25)])
    seen: list[str] = []
    cursor = None
    pages = 0
    while pages < 10:
        params: dict[str, Any] = {"limit": 10}
        if cursor:
            params["cursor"] = cursor
        body = api.client.get("/api/v1/runs", headers=api.viewer, params=params).json()
        seen += [x["key"] for x in body["data"]]
        pages += 1
        # Newer runs arrive between pages; they belong before the first page.
        post(api, [event(f"new{pages}", at=T0 + timedelta(days=1, minutes=pages))])
        # And some with the same start time as rows already seen.
        post(api, [event(f"tie{pages}", at=T0 + timedelta(minutes=24))])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    expected = [f"r{i:02d}" for i in reversed(range(25))]
    assert [k for k in seen if k.startswith("r")] == expected
    assert len(seen) == len(set(seen))
    assert pages == 3


def test_jobs_and_sources_list(engine: Engine) -> None:
    config = parse_config({"sources": [{"name": "cron-a", "kind": "cron", "interval": "1m"}]})
    app = create_app(config, engine, adapters={"cron-a": object()})
    token = _bearer(create_token(engine, role="operator", name="j"))
    pusher = _bearer(create_token(engine, role="ingest", name="p", sources=["cron-a"]))
    with TestClient(app) as client:
        r = client.post(
            "/api/v1/events",
            headers=pusher,
            json={
                "source": "cron-a",
                "events": [event("backup/1", job="backup")],
                "jobs": [{"key": "backup", "kind": "crontab", "schedule": "0 3 * * *"}],
            },
        )
        assert r.status_code == 200, r.text
        jobs = client.get("/api/v1/jobs", headers=token).json()
        assert [(j["source"], j["key"], j["schedule"]) for j in jobs["data"]] == [
            ("cron-a", "backup", "0 3 * * *")
        ]
        detail = client.get(f"/api/v1/jobs/{jobs['data'][0]['id']}", headers=token).json()
        assert [x["key"] for x in detail["recent_runs"]] == ["backup/1"]
        assert_problem(client.get("/api/v1/jobs/nope", headers=token), 404)
        sources = client.get("/api/v1/sources", headers=token).json()["data"]
    assert [(s["name"], s["kind"], s["interval_s"]) for s in sources] == [("cron-a", "cron", 60.0)]
    assert sources[0]["holder"] is None


# -- traces ------------------------------------------------------------------


def test_trace_spans_sources_through_links_with_evidence(api: Api) -> None:
    ti = {"namespace": "airflow.ti", "value": "etl/run1/load/-1/1"}
    post(
        api,
        [
            event("etl/run1", job="etl"),
            event("etl/run1/load", kind="task", parent_key="etl/run1", refs=[ti]),
        ],
        source="airflow",
    )
    post(
        api,
        [event("ns/pod-1", state="failed", refs=[ti], error={"kind": "OOMKilled"})],
        source="k8s",
    )
    post(api, [event("unrelated")], source="k8s")
    listing = api.client.get("/api/v1/runs", headers=api.viewer, params={"source": "airflow"})
    root = next(x for x in listing.json()["data"] if x["key"] == "etl/run1")

    r = api.client.get(f"/api/v1/traces/{root['trace_id']}", headers=api.viewer)
    assert r.status_code == 200, r.text
    trace = r.json()
    assert sorted((s["source"], s["key"]) for s in trace["spans"]) == [
        ("airflow", "etl/run1"),
        ("airflow", "etl/run1/load"),
        ("k8s", "ns/pod-1"),
    ]
    assert trace["traces"][0] == root["trace_id"] and len(trace["traces"]) == 2
    assert trace["truncated"] is False
    ids = {s["key"]: s["id"] for s in trace["spans"]}
    [link] = trace["links"]
    assert {link["from_run_id"], link["to_run_id"]} == {ids["etl/run1/load"], ids["ns/pod-1"]}
    assert link["strength"] == "exact" and link["evidence"]

    pod = api.client.get(f"/api/v1/runs/{ids['ns/pod-1']}", headers=api.viewer).json()
    linked = pod["links_in"] + pod["links_out"]
    assert [x["run"]["key"] for x in linked] == ["etl/run1/load"]
    assert_problem(api.client.get("/api/v1/traces/" + "0" * 32, headers=api.viewer), 404)
    assert_problem(api.client.get("/api/v1/runs/nope", headers=api.viewer), 404)


def test_sources_show_status_error_redacted_holder_and_cursor_age(engine: Engine) -> None:
    from gateway.ingest import apply_batch
    from gateway.runtime.leases import acquire
    from gateway.runtime.status import record_failure, record_success

    config = parse_config(
        {
            "sources": [
                {
                    "name": "cron-a",
                    "kind": "cron",
                    "interval": "1m",
                    "options": {"password": "${CRON_PW}"},
                },
                {"name": "cron-b", "kind": "cron", "enabled": False},
            ]
        },
        env={"CRON_PW": "hunter2-secret"},
    )
    now = datetime.now(UTC)
    record_success(
        engine,
        source="cron-a",
        kind="cron",
        interval_s=60,
        holder="r1",
        now=now - timedelta(seconds=30),
    )
    record_failure(
        engine,
        config,
        source="cron-a",
        kind="cron",
        interval_s=60,
        holder="r1",
        error="login failed for password hunter2-secret",
        consecutive_failures=1,
        last_success_at=now - timedelta(seconds=30),
        now=now,
    )
    acquire(engine, "cron-a", "replica-1", 60, now=now)
    apply_batch(engine, "cron-a", [], cursor="c-1")
    app = create_app(config, engine, adapters={"cron-a": object()})
    token = _bearer(create_token(engine, role="viewer", name="s"))
    with TestClient(app) as client:
        sources = client.get("/api/v1/sources", headers=token).json()["data"]
        metrics = client.get("/metrics").text
    a, b = sources
    assert (a["name"], a["status"], a["holder"], a["consecutive_failures"]) == (
        "cron-a",
        "degraded",
        "replica-1",
        1,
    )
    assert "hunter2" not in str(sources) and "***" in a["last_error"]
    assert a["cursor_age_s"] is not None and a["cursor_age_s"] < 3600
    assert (b["name"], b["status"], b["holder"]) == ("cron-b", "disabled", None)
    assert 'switchyard_source_status{kind="cron",source="cron-a",status="degraded"} 1.0' in metrics
    assert 'switchyard_source_consecutive_failures{source="cron-a"} 1.0' in metrics


class PushAdapter:
    """A source that receives pushes at `/push/{key}` and hands them to the sink."""

    kind = "cron"

    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False

    def discover(self) -> list[Any]:
        return []

    def poll(self, cursor: str | None) -> Any:
        from gateway.contract import PollResult

        return PollResult(events=[], cursor=cursor)

    def routes(self, sink: Any) -> Any:
        from fastapi import APIRouter

        from gateway.contract import RunEvent, State

        router = APIRouter()

        @router.post("/push/{key}")
        def push(key: str) -> dict[str, str]:
            sink.submit(
                self.name,
                [RunEvent(source=self.name, key=key, state=State.succeeded, observed_at=T0)],
            )
            return {"ok": key}

        return router

    def close(self) -> None:
        self.closed = True


def test_adapter_push_routes_are_mounted_with_a_committing_sink(engine: Engine) -> None:
    config = parse_config({"sources": [{"name": "pusher", "kind": "cron"}]})
    adapter = PushAdapter("pusher")
    app = create_app(config, engine, adapters={"pusher": adapter})
    token = _bearer(create_token(engine, role="viewer", name="p"))
    with TestClient(app) as client:
        assert client.post("/push/job-7").json() == {"ok": "job-7"}
        runs = client.get("/api/v1/runs", headers=token).json()["data"]
        metrics = client.get("/metrics").text
    assert [(r["source"], r["key"], r["state"]) for r in runs] == [("pusher", "job-7", "succeeded")]
    assert 'route="/push/{key}"' in metrics
    assert adapter.closed
