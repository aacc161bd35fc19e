"""Persistence: tables, engine, migrations."""

from gateway.store.db import make_engine, session_scope
from gateway.store.models import (
    ApiToken,
    Cursor,
    Flow,
    Job,
    Lease,
    Link,
    Run,
    RunEventRow,
    RunRef,
    SourceRow,
    WebhookDelivery,
)

__all__ = [
    "ApiToken",
    "Cursor",
    "Flow",
    "Job",
    "Lease",
    "Link",
    "Run",
    "RunEventRow",
    "RunRef",
    "SourceRow",
    "WebhookDelivery",
    "make_engine",
    "session_scope",
]
