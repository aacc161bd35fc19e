"""Shared fixtures: a migrated store on SQLite and on PostgreSQL.

`engine` is parametrised over both databases, so a test that takes it proves
the behaviour on each. `sqlite_engine` and `pg_engine` pick one.
`real_airflow` is the one real Airflow 3 of a session, shared by every test
directory that needs it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.engine import Engine

from tests.dbs import PG_SKIP_REASON, fresh_pg_database, migrated_engine, pg_admin_url, truncate_all

if TYPE_CHECKING:  # the harness is imported only by sessions that start Airflow
    from tests.adapters.airflow.harness import RealAirflow


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


@pytest.fixture(scope="session")
def real_airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealAirflow]:
    """One real Airflow 3 per session (`airflow standalone`, see tests/adapters/airflow/harness.py).

    Defined here so the Airflow adapter tests and the migration tests share one
    process. Setting SWITCHYARD_SKIP_REAL_AIRFLOW=1 skips (with that reason)
    outside CI only; in CI a missing or broken Airflow is an error, never a skip.
    """
    from tests.adapters.airflow.harness import AirflowDidNotStart, ensure_venv
    from tests.adapters.airflow.harness import RealAirflow as Airflow

    if os.environ.get("SWITCHYARD_SKIP_REAL_AIRFLOW") and not os.environ.get("CI"):
        pytest.skip("SWITCHYARD_SKIP_REAL_AIRFLOW is set: no real Airflow 3 for this run")
    try:
        airflow = Airflow(home=tmp_path_factory.mktemp("airflow-home"), venv=ensure_venv())
        airflow.start()
    except AirflowDidNotStart as exc:
        pytest.fail(f"the real Airflow 3 did not come up: {exc}", pytrace=False)
    try:
        yield airflow
    finally:
        airflow.stop()
