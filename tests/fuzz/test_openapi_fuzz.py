"""Schemathesis over the gateway's own OpenAPI document: no 5xx, no partial writes.

The app is built with a cron source (pings and host API) and an OpenLineage
source, so their push routes are in the document too, and driven in-process
through schemathesis' ASGI transport on SQLite with an admin token (the cron
host token on `/api/v1/cron/*`). Every generated case — valid and invalid
bodies, parameters, paths — must get a non-5xx answer, and after every case
the store must still hold its invariants: every run has at least one event,
no event or ref points at a missing run, and cursors exist only for
configured sources.
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

from gateway.api.app import create_app
from gateway.auth import create_token
from gateway.config import Config, parse_config
from gateway.store.db import make_engine
from tests.dbs import migrated_engine

pytestmark = pytest.mark.slow

CRON_TOKEN = "cron-host-token-for-fuzzing"
MAX_EXAMPLES = 200

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
                    "options": {"token": CRON_TOKEN, "control_file": str(tmp / "control.json")},
                },
                # Anonymous on purpose: generated bodies then reach the parser, not the 401.
                {"name": "lineage", "kind": "openlineage", "options": {"allow_anonymous": True}},
            ]
        }
    )


def openapi_schema(app: FastAPI) -> Any:
    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)


def operation_labels() -> list[str]:
    """Every operation of the document, read at collection from an app on no database."""
    app = create_app(fuzz_config(Path(tempfile.gettempdir())), make_engine("sqlite://"))
    return [result.ok().label for result in openapi_schema(app).get_all_operations()]


class Fuzzed:
    def __init__(self, tmp: Path) -> None:
        self.engine = migrated_engine(f"sqlite:///{tmp / 'fuzz.db'}")
        self.config = fuzz_config(tmp)
        self.app = create_app(self.config, self.engine)
        self.admin = create_token(self.engine, role="admin", name="fuzzer")
        self.configured = {s.name for s in self.config.sources}
        self.cases: dict[str, int] = {}
        self.operations = {
            r.ok().label: r.ok() for r in openapi_schema(self.app).get_all_operations()
        }


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    f = Fuzzed(tmp_path_factory.mktemp("fuzz"))
    yield f
    if f.app.state.sink is not None:
        f.app.state.sink.close()
    f.engine.dispose()


@pytest.mark.parametrize("label", operation_labels())
def test_no_generated_request_gets_a_5xx_or_leaves_a_partial_write(
    label: str, fuzzed: Fuzzed
) -> None:
    operation = fuzzed.operations[label]
    token = CRON_TOKEN if operation.path.startswith("/api/v1/cron") else fuzzed.admin
    headers = {"Authorization": f"Bearer {token}"}
    calls: list[int] = []

    @given(
        case=st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )
    )
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        response = case.call(headers=headers)
        calls.append(response.status_code)
        case.validate_response(response, checks=[not_a_server_error])
        broken = broken_invariants(fuzzed.engine, fuzzed.configured)
        assert broken == {}, f"{broken} after {case.as_curl_command()}"

    check()
    assert calls, f"{label}: no case was generated"
    fuzzed.cases[label] = len(calls)


def test_fuzzing_sent_thousands_of_cases_across_every_operation(fuzzed: Fuzzed) -> None:
    if set(fuzzed.cases) != set(fuzzed.operations):
        pytest.skip(reason="counts only after every operation was fuzzed in this session")
    total = sum(fuzzed.cases.values())
    print(f"\nfuzzed {len(fuzzed.cases)} operations with {total} cases")
    assert total >= 1000
