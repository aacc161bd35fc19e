"""`switchyard demo`: the gateway on SQLite over an emulated estate of every source kind."""

from gateway.demo.estate import SOURCES, DemoEstate
from gateway.demo.migration import DEMO_ACTOR, migrate_job

__all__ = ["DEMO_ACTOR", "SOURCES", "DemoEstate", "migrate_job"]
