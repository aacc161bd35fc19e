"""How `make_engine` sets up PostgreSQL connections."""

from __future__ import annotations

from gateway.store.db import make_engine


def test_postgres_connections_plan_every_statement_with_its_own_values(pg_url: str) -> None:
    # A generic plan kept from when the store was empty would scan `run` whole.
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW plan_cache_mode").scalar() == "force_custom_plan"
    finally:
        engine.dispose()


def test_options_given_in_the_url_are_kept(pg_url: str) -> None:
    sep = "&" if "?" in pg_url else "?"
    engine = make_engine(f"{pg_url}{sep}options=-c%20statement_timeout%3D4321")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "4321ms"
            assert conn.exec_driver_sql("SHOW plan_cache_mode").scalar() == "force_custom_plan"
    finally:
        engine.dispose()
