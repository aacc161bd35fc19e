"""Schemathesis over the gateway's whole surface: no 5xx, no partial writes.

The app is built with a cron source (pings and host API), an OpenLineage
source and a source taking signed webhooks, so their push routes are in the
document too, and driven in-process through schemathesis' ASGI transport on
SQLite with an admin token (the cron host token on `/api/v1/cron/*`, the
lineage key on `/api/v1/lineage*`). Routes the document leaves out — the
dashboard, the pings, the bodies of the push routes that read their request
themselves — are fuzzed from `tests/fuzz/unlisted_routes.py`, the dashboard
with a logged-in session. Every generated case — valid and invalid bodies,
parameters, paths — must get a non-5xx answer, and after every case the store
must still hold its invariants: every run has at least one event, no event or
ref points at a missing run, and cursors exist only for configured sources.

`CRAFTED` adds the inputs that were 500s once, as explicit cases through the
same harness: non-ASCII secrets, Unicode and 5,000-digit numbers, timestamps
outside UTC, overflowing ids and cursors, NUL in URLs, malformed OpenLineage
facets, control characters and out-of-range numbers in what a source reports.
(NaN cannot be sent through schemathesis, which writes strict JSON; it is
covered by `tests/security/test_crafted_input.py`.)
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import sqlalchemy as sa
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Receive, Scope, Send

from dashboards.web.session import SESSION_COOKIE, app_signer, start_session
from gateway.api.app import create_app
from gateway.auth import authenticate, create_token
from gateway.config import Config, parse_config
from gateway.store.db import make_engine
from tests.dbs import migrated_engine
from tests.fuzz.unlisted_routes import unlisted_routes
from tests.gateway.test_api_webhooks import SECRET, HookAdapter
from tests.security.test_crafted_input import (
    TOO_EARLY,
    TOO_LATE,
    UUID,
    a_report,
    airflow_facet,
    cursor,
    lineage,
)

pytestmark = pytest.mark.slow

CRON_TOKEN = "cron-host-token-for-fuzzing"
PING_KEY = "ping-key-for-fuzzing"
LINEAGE_KEY = "lineage-key-for-fuzzing"
MAX_EXAMPLES = 200
# The routes outside the document are many small pages: fewer cases each keeps
# the whole run near a minute.
MAX_UNLISTED_EXAMPLES = 30

INVARIANTS = {
    "run without any event": (
        "SELECT count(*) FROM run r WHERE NOT EXISTS "
        "(SELECT 1 FROM run_event e WHERE e.run_id = r.id)"
    ),
    "event for a missing run": (
        "SELECT count(*) FROM run_event e WHERE NOT EXISTS "
        "(SELECT 1 FROM run r WHERE r.id = e.run_id)"
    ),
    "ref for a missing run": (
        "SELECT count(*) FROM run_ref f WHERE NOT EXISTS "
        "(SELECT 1 FROM run r WHERE r.id = f.run_id)"
    ),
    "link to a missing run": (
        "SELECT count(*) FROM link k "
        "WHERE NOT EXISTS (SELECT 1 FROM run r WHERE r.id = k.from_run_id) "
        "OR NOT EXISTS (SELECT 1 FROM run r WHERE r.id = k.to_run_id)"
    ),
}


def broken_invariants(engine: Engine, configured: set[str]) -> dict[str, Any]:
    broken: dict[str, Any] = {}
    with engine.connect() as conn:
        for name, query in INVARIANTS.items():
            n = conn.execute(sa.text(query)).scalar_one()
            if n:
                broken[name] = n
        cursors = set(conn.execute(sa.text("SELECT source FROM source_cursor")).scalars())
    if cursors - configured:
        broken["cursor of an unconfigured source"] = sorted(cursors - configured)
    return broken


def fuzz_config(tmp: Path) -> Config:
    return parse_config(
        {
            "sources": [
                {
                    "name": "cron-hosts",
                    "kind": "cron",
                    "options": {
                        "token": CRON_TOKEN,
                        "ping_key": PING_KEY,
                        # Generated uuids reach the whole ping path, not only the 404.
                        "auto_provision": True,
                        "provision_per_minute": 100_000,
                        "provision_burst": 100_000,
                        "control_file": str(tmp / "control.json"),
                    },
                },
                {"name": "lineage", "kind": "openlineage", "options": {"api_key": LINEAGE_KEY}},
                {"name": "hooked", "kind": "cron", "options": {"webhook_secret": SECRET}},
            ]
        }
    )


def openapi_schema(app: ASGIApp) -> Any:
    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)


def fuzz_app(config: Config, engine: Engine) -> FastAPI:
    return create_app(config, engine, adapters={"hooked": HookAdapter("hooked")})


def lifespan_kept_by_the_fixture(app: ASGIApp) -> ASGIApp:
    """`app` for schemathesis, which ends an ASGI app's lifespan after every test.

    The gateway's lifespan closes its push sink on the way out, and an app is
    not restarted after that: pushes reaching it in the next test would meet a
    closed sink. The `fuzzed` fixture owns the app's life instead (it closes
    the sink at the end of the module); schemathesis' startup and shutdown are
    acknowledged here and go no further.
    """

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    return guarded


def operation_labels() -> list[str]:
    """Every operation of the document, read at collection from an app on no database."""
    app = fuzz_app(fuzz_config(Path(tempfile.gettempdir())), make_engine("sqlite://"))
    return [result.ok().label for result in openapi_schema(app).get_all_operations()]


def unlisted_schema(app: ASGIApp | None) -> Any:
    schema = schemathesis.openapi.from_dict(unlisted_routes())
    schema.app = app
    return schema


def unlisted_labels() -> list[str]:
    return [r.ok().label for r in unlisted_schema(None).get_all_operations()]


class Fuzzed:
    def __init__(self, tmp: Path) -> None:
        self.engine = migrated_engine(f"sqlite:///{tmp / 'fuzz.db'}")
        self.config = fuzz_config(tmp)
        self.app = fuzz_app(self.config, self.engine)
        self.admin = create_token(self.engine, role="admin", name="fuzzer")
        principal = authenticate(self.engine, self.admin)
        assert principal is not None
        self.session = start_session(self.engine, app_signer(self.app.state), principal.token_id)
        self.configured = {s.name for s in self.config.sources}
        self.cases: dict[str, int] = {}
        served = lifespan_kept_by_the_fixture(self.app)
        self.operations = {
            r.ok().label: r.ok() for r in openapi_schema(served).get_all_operations()
        }
        self.unlisted = {r.ok().label: r.ok() for r in unlisted_schema(served).get_all_operations()}

    def headers(self, path: str) -> dict[str, str]:
        """What a legitimate caller of `path` would send: its credential."""
        if path.startswith("/api/v1/cron"):
            return {"Authorization": f"Bearer {CRON_TOKEN}"}
        if path.startswith("/api/v1/lineage"):
            return {"Authorization": f"Bearer {LINEAGE_KEY}"}
        if path.startswith("/api/") or path in ("/healthz", "/readyz"):
            return {"Authorization": f"Bearer {self.admin}"}
        if path.startswith("/ping/"):
            return {}
        return {"Cookie": f"{SESSION_COOKIE}={self.session}"}  # the dashboard, logged in

    def check(self, case: Any, headers: dict[str, Any]) -> int:
        """Send `case`: no 5xx, and the store still holds its invariants."""
        response = case.call(headers={**self.headers(case.operation.path), **headers})
        case.validate_response(response, checks=[not_a_server_error])
        broken = broken_invariants(self.engine, self.configured)
        assert broken == {}, f"{broken} after {case.as_curl_command()}"
        return int(response.status_code)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    f = Fuzzed(tmp_path_factory.mktemp("fuzz"))
    yield f
    if f.app.state.sink is not None:
        f.app.state.sink.close()
    f.engine.dispose()


def fuzz(fuzzed: Fuzzed, operation: Any, max_examples: int) -> int:
    """Send `max_examples` generated cases (valid and invalid) through `Fuzzed.check`."""
    calls: list[int] = []

    @given(
        case=st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )
    )
    @settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        calls.append(fuzzed.check(case, {}))

    check()
    assert calls, f"{operation.label}: no case was generated"
    return len(calls)


@pytest.mark.parametrize("label", operation_labels())
def test_no_generated_request_gets_a_5xx_or_leaves_a_partial_write(
    label: str, fuzzed: Fuzzed
) -> None:
    fuzzed.cases[label] = fuzz(fuzzed, fuzzed.operations[label], MAX_EXAMPLES)


@pytest.mark.parametrize("label", unlisted_labels())
def test_no_generated_request_to_a_route_outside_the_document_gets_a_5xx(
    label: str, fuzzed: Fuzzed
) -> None:
    fuzz(fuzzed, fuzzed.unlisted[label], MAX_UNLISTED_EXAMPLES)


# -- the inputs that were 500s, as explicit cases --------------------------------


def report(**fields: Any) -> dict[str, Any]:
    return {"reports": [a_report(**fields)]}


# (operation label, how the case differs from an empty one, the status it must get)
CRAFTED: dict[str, tuple[str, dict[str, Any], int]] = {
    "ping exit ²": (
        "GET /ping/{uuid}/{action}",
        {"path_parameters": {"uuid": UUID, "action": "²"}},
        404,
    ),
    "ping exit arabic-indic": (
        "GET /ping/{uuid}/{action}",
        {"path_parameters": {"uuid": UUID, "action": "\u0661\u0662"}},
        404,
    ),
    "ping exit 5000 digits": (
        "GET /ping/{uuid}/{action}",
        {"path_parameters": {"uuid": UUID, "action": "9" * 5000}},
        400,
    ),
    "ping key non-ascii": (
        "GET /ping/{key}/{slug}",
        {"path_parameters": {"key": PING_KEY + "é", "slug": "backup"}},
        404,
    ),
    "webhook t=²": (
        "POST /api/v1/sources/{name}/webhook",
        {
            "path_parameters": {"name": "hooked"},
            "headers": {"X-Switchyard-Signature": "t=²,v1=ab"},
            "body": {},
        },
        401,
    ),
    "webhook t of 5000 digits": (
        "POST /api/v1/sources/{name}/webhook",
        {
            "path_parameters": {"name": "hooked"},
            "headers": {"X-Switchyard-Signature": "t=" + "9" * 5000 + ",v1=ab"},
            "body": {},
        },
        401,
    ),
    "runs since before UTC": ("GET /api/v1/runs", {"query": {"since": TOO_EARLY}}, 422),
    "runs until past UTC": ("GET /api/v1/runs", {"query": {"until": TOO_LATE}}, 422),
    "runs limit ²": ("GET /api/v1/runs", {"query": {"limit": "²"}}, 422),
    "runs limit 5000 digits": ("GET /api/v1/runs", {"query": {"limit": "9" * 5000}}, 422),
    "runs cursor before UTC": (
        "GET /api/v1/runs",
        {"query": {"cursor": cursor([TOO_EARLY, "x"])}},
        422,
    ),
    "runs source NUL": ("GET /api/v1/runs", {"query": {"source": "\x00"}}, 422),
    "run id huge": ("GET /api/v1/runs/{run_id}", {"path_parameters": {"run_id": "9" * 40}}, 404),
    "incident id huge": (
        "GET /api/v1/incidents/{incident_id}",
        {"path_parameters": {"incident_id": "9" * 40}},
        422,
    ),
    "incidents cursor huge id": (
        "GET /api/v1/incidents",
        {"query": {"cursor": cursor(["2026-01-01T00:00:00+00:00", 2**70])}},
        422,
    ),
    "jobs cursor garbage": ("GET /api/v1/jobs", {"query": {"cursor": "!!!"}}, 422),
    "event key with a newline": (
        "POST /api/v1/events",
        {
            "body": {
                "source": "scripts",
                "events": [
                    {
                        "key": "a\nfinally:",
                        "state": "running",
                        "observed_at": "2026-01-01T00:00:00Z",
                    }
                ],
            }
        },
        422,
    ),
    "cron report job with a newline": (
        "POST /api/v1/cron/report",
        {"body": report(job="backup\nfinally:")},
        422,
    ),
    "cron report before UTC": (
        "POST /api/v1/cron/report",
        {"body": report(started_at=TOO_EARLY)},
        422,
    ),
    "cron report exit code 10^30": (
        "POST /api/v1/cron/report",
        {"body": report(phase="finish", ended_at="2026-01-01T00:01:00Z", exit_code=10**30)},
        422,
    ),
    "cron job key with NUL": (
        "POST /api/v1/cron/jobs",
        {
            "body": {
                "host": "web-1",
                "jobs": [
                    {
                        "key": "k\x00",
                        "host": "web-1",
                        "user": "root",
                        "schedule": "* * * * *",
                        "schedule_native": "* * * * *",
                        "command": "x",
                        "path": "/etc/crontab",
                        "line_no": 1,
                        "line": "x",
                    }
                ],
            }
        },
        422,
    ),
    "lineage map_index list": (
        "POST /api/v1/lineage",
        {"body": lineage(airflow_facet(map_index=[1]))},
        422,
    ),
    "lineage dag facet a string": (
        "POST /api/v1/lineage",
        {"body": lineage({"airflowDagRun": {"dagRun": {"run_id": ["x"]}, "dag": "d"}})},
        422,
    ),
    "lineage parent runId not a UUID": (
        "POST /api/v1/lineage",
        {"body": lineage({"parent": {"run": {"runId": "nope"}}})},
        422,
    ),
    "lineage eventTime before UTC": (
        "POST /api/v1/lineage",
        {"body": lineage(eventTime=TOO_EARLY)},
        422,
    ),
    "lineage batch with one bad event": (
        "POST /api/v1/lineage/batch",
        {
            "body": [
                lineage(),
                lineage(airflow_facet(map_index=1e300)),
            ]
        },
        200,
    ),
    "dashboard incident huge": (
        "GET /incidents/{incident_id}",
        {"path_parameters": {"incident_id": "9" * 40}},
        404,
    ),
    "dashboard incident ²": (
        "GET /incidents/{incident_id}",
        {"path_parameters": {"incident_id": "²"}},
        404,
    ),
    "dashboard runs since before UTC": ("GET /runs", {"query": {"since": TOO_EARLY}}, 400),
    "dashboard incidents cursor huge id": (
        "GET /incidents",
        {"query": {"cursor": cursor(["2026-01-01T00:00:00+00:00", 2**70])}},
        400,
    ),
    "dashboard migrations page ²": ("GET /migrations", {"query": {"page": "²"}}, 200),
    "dashboard migrations page 5000 digits": (
        "GET /migrations",
        {"query": {"page": "9" * 5000}},
        200,
    ),
    "dashboard login CSRF non-ascii": (
        "POST /login",
        {"body": {"csrf": "é", "token": "x"}, "media_type": "application/x-www-form-urlencoded"},
        401,
    ),
    "dashboard re-poll CSRF non-ascii": (
        "POST /actions/sources/{name}/poll",
        {
            "path_parameters": {"name": "cron-hosts"},
            "body": {"csrf": "é"},
            "media_type": "application/x-www-form-urlencoded",
        },
        403,
    ),
}


@pytest.mark.parametrize(("label", "given", "status"), CRAFTED.values(), ids=CRAFTED.keys())
def test_crafted_inputs_that_were_500s_get_their_4xx(
    label: str, given: dict[str, Any], status: int, fuzzed: Fuzzed
) -> None:
    operations = {**fuzzed.unlisted, **fuzzed.operations}
    operation = fuzzed.unlisted.get(label) or operations[label]
    fields = dict(given)
    headers = fields.pop("headers", {})
    case = operation.Case(**fields)
    assert fuzzed.check(case, headers) == status


def test_fuzzing_sent_thousands_of_cases_across_every_operation(fuzzed: Fuzzed) -> None:
    if set(fuzzed.cases) != set(fuzzed.operations):
        pytest.skip(reason="counts only after every operation was fuzzed in this session")
    total = sum(fuzzed.cases.values())
    print(f"\nfuzzed {len(fuzzed.cases)} operations with {total} cases")
    assert total >= 1000
