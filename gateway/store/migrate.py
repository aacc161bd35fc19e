"""Alembic, driven from code: `switchyard db upgrade` and the readiness check.

The head revision comes from the migration scripts, which do not change while
a process runs: it is read once per process (`head_revision`). The readiness
check (`at_head`) then costs one query, `SELECT version_num FROM
alembic_version`, in a read-only transaction (on SQLite a deferred one, which
never queues behind the writers); only a store without that table yet takes
Alembic's slower path.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from gateway.store.db import READ_ONLY

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"

# Alembic's own bookkeeping table, as it creates it.
_VERSION = sa.table("alembic_version", sa.column("version_num", sa.String))


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


@cache
def head_revision() -> str | None:
    """The newest revision among the migration scripts (read from them once per process)."""
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _stored_revisions(engine: Engine) -> list[str]:
    """The revisions in `alembic_version`: one query (Alembic's path when the table is missing)."""
    with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        try:
            return list(conn.execute(sa.select(_VERSION.c.version_num)).scalars())
        except DBAPIError:
            conn.rollback()
            # No alembic_version yet (a store never migrated), or the database
            # failing: Alembic looks for the table first and raises the latter again.
            revision = MigrationContext.configure(conn).get_current_revision()
            return [revision] if revision else []


def at_head(engine: Engine) -> bool:
    return _stored_revisions(engine) == [head_revision()]
