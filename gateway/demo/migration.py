"""The demo's migration step: translate a discovered job, deploy it to Kestra, record it.

No migration lifecycle module exists yet, so this is the one write path the
demo uses for `job.migration_state`: `record_migration_state` is a single
UPDATE of one job row (no read-then-write), refuses a state outside the
lifecycle, and raises `JobNotFound` naming the source and key when the job has
not been discovered. `migrate_job` reads the stored `JobSpec`, translates it
with `migration_tools.translate.translate` (triggers disabled: the legacy
schedule still runs), deploys the flow with `KestraApi.put_flow`, and only
then records `translated` — a failed deploy leaves the state untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.contract import JobSpec
from gateway.links import table
from gateway.store import models as _models  # noqa: F401  # registers the job table
from migration_tools.kestra_api import KestraApi
from migration_tools.translate import translate

MIGRATION_STATES = ("observed", "translated", "wrapped", "shadow", "cut_over", "retired")


class JobNotFound(LookupError):
    def __init__(self, source: str, key: str) -> None:
        super().__init__(f"source {source!r}: no discovered job {key!r}")
        self.source = source
        self.key = key


def record_migration_state(engine: Engine, *, source: str, key: str, state: str) -> None:
    """Set one job's migration state in one statement."""
    if state not in MIGRATION_STATES:
        raise ValueError(f"migration_state: {state!r} is not one of {', '.join(MIGRATION_STATES)}")
    job = table("job")
    with engine.begin() as conn:
        result = conn.execute(
            sa.update(job)
            .where(job.c.source == source, job.c.key == key)
            .values(migration_state=state, updated_at=datetime.now(UTC))
        )
    if result.rowcount != 1:
        raise JobNotFound(source, key)


def stored_spec(engine: Engine, *, source: str, key: str) -> JobSpec:
    job = table("job")
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(job.c.spec).where(job.c.source == source, job.c.key == key)
        ).first()
    if row is None:
        raise JobNotFound(source, key)
    return JobSpec.model_validate(row.spec)


@dataclass(frozen=True)
class Deployed:
    namespace: str
    flow_id: str
    readiness: str
    revision: int | None


def migrate_job(engine: Engine, kestra: KestraApi, *, source: str, key: str) -> Deployed:
    """Translate the stored job, deploy the flow to Kestra, record `translated`."""
    translation = translate(stored_spec(engine, source=source, key=key))
    flow = kestra.put_flow(translation.namespace, translation.flow_id, translation.yaml_text)
    record_migration_state(engine, source=source, key=key, state="translated")
    revision = flow.get("revision")
    return Deployed(
        namespace=translation.namespace,
        flow_id=translation.flow_id,
        readiness=translation.readiness,
        revision=int(revision) if isinstance(revision, int) else None,
    )


__all__ = [
    "MIGRATION_STATES",
    "Deployed",
    "JobNotFound",
    "migrate_job",
    "record_migration_state",
    "stored_spec",
]
