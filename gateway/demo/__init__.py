"""`switchyard demo`: the gateway on SQLite over an emulated estate of every source kind."""

from gateway.demo.estate import SOURCES, DemoEstate
from gateway.demo.migration import MIGRATION_STATES, migrate_job, record_migration_state

__all__ = ["MIGRATION_STATES", "SOURCES", "DemoEstate", "migrate_job", "record_migration_state"]
