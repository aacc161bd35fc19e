"""How `make_engine` sets up connections: plans on PostgreSQL, bounded waits on both."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from gateway.store.db import LOCK_TIMEOUT_S, make_engine


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


def test_every_wait_on_the_database_is_bounded_by_default(engine: Engine) -> None:
    # The engine fixture is built by make_engine's defaults, as a deployment's is.
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            busy_ms = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
            assert busy_ms == LOCK_TIMEOUT_S * 1000
        else:
            assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == f"{LOCK_TIMEOUT_S:g}s"
            dsn = conn.connection.dbapi_connection.info.dsn  # type: ignore[union-attr]
            assert f"connect_timeout={LOCK_TIMEOUT_S:g}" in dsn
    assert engine.pool.timeout() == LOCK_TIMEOUT_S  # type: ignore[attr-defined]


def test_a_lock_timeout_in_the_url_wins_over_the_default(pg_url: str) -> None:
    sep = "&" if "?" in pg_url else "?"
    engine = make_engine(f"{pg_url}{sep}options=-c%20lock_timeout%3D60000")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "1min"
    finally:
        engine.dispose()
