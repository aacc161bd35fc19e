"""Shared fixtures: a migrated store on SQLite and on PostgreSQL.

`engine` is parametrised over both databases, so a test that takes it proves
the behaviour on each. `sqlite_engine` and `pg_engine` pick one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from tests.dbs import PG_SKIP_REASON, fresh_pg_database, migrated_engine, pg_admin_url, truncate_all


@pytest.fixture(scope="session")
def _pg_session_url() -> Iterator[str | None]:
    if pg_admin_url() is None:
        yield None
        return
    with fresh_pg_database() as url:
        yield url


@pytest.fixture(scope="session")
def _pg_session_engine(_pg_session_url: str | None) -> Iterator[Engine | None]:
    if _pg_session_url is None:
        yield None
        return
    engine = migrated_engine(_pg_session_url)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine(_pg_session_engine: Engine | None) -> Iterator[Engine]:
    if _pg_session_engine is None:
        pytest.skip(PG_SKIP_REASON)
    truncate_all(_pg_session_engine)
    yield _pg_session_engine


@pytest.fixture
def pg_url(_pg_session_url: str | None, pg_engine: Engine) -> str:
    assert _pg_session_url is not None
    return _pg_session_url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'switchyard.db'}"


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = migrated_engine(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest) -> Engine:
    name = "sqlite_engine" if request.param == "sqlite" else "pg_engine"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]
