"""`/readyz` is cheap: the head revision is read from the scripts once, then one query a call."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine, make_url

from gateway.api.app import create_app
from gateway.config import parse_config
from gateway.store.migrate import head_revision
from tests.dbs import statements_during


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(parse_config({}), engine)) as c:
        yield c


def queries_during(engine: Engine, work: Any) -> list[str]:
    """The statements `work` ran, but transaction control, whitespace collapsed."""
    texts = (" ".join(t.split()) for t in statements_during(engine, work))
    return [t for t in texts if not t.upper().startswith(("BEGIN", "COMMIT", "ROLLBACK"))]


def test_readyz_runs_one_query_and_loads_no_migration_script(
    client: TestClient, engine: Engine
) -> None:
    assert client.get("/readyz").status_code == 200  # warm: the head is read here at the latest
    seen = queries_during(engine, lambda: client.get("/readyz").raise_for_status())
    assert seen == ["SELECT alembic_version.version_num FROM alembic_version"]
    for _ in range(5):
        assert client.get("/readyz").json()["status"] == "ready"
    assert head_revision.cache_info().misses == 1


def test_readyz_answers_while_a_writer_holds_the_sqlite_write_lock(
    sqlite_engine: Engine,
) -> None:
    with TestClient(create_app(parse_config({}), sqlite_engine)) as client:
        holder = sqlite3.connect(str(make_url(sqlite_engine.url).database), isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            response = client.get("/readyz")
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ready"
