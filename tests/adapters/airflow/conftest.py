"""Fixtures for the Airflow adapter tests: one real Airflow 3 per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.adapters.airflow.harness import AirflowDidNotStart, RealAirflow, ensure_venv


@pytest.fixture(scope="session")
def real_airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealAirflow]:
    """`airflow standalone` with the DAGs in ./dags, installed on first use and reused.

    Setting SWITCHYARD_SKIP_REAL_AIRFLOW=1 skips (with that reason) outside CI
    only; in CI a missing or broken Airflow is an error, never a skip.
    """
    if os.environ.get("SWITCHYARD_SKIP_REAL_AIRFLOW") and not os.environ.get("CI"):
        pytest.skip("SWITCHYARD_SKIP_REAL_AIRFLOW is set: no real Airflow 3 for this run")
    try:
        airflow = RealAirflow(home=tmp_path_factory.mktemp("airflow-home"), venv=ensure_venv())
        airflow.start()
    except AirflowDidNotStart as exc:
        pytest.fail(f"the real Airflow 3 did not come up: {exc}", pytrace=False)
    try:
        yield airflow
    finally:
        airflow.stop()
