"""The demo's migration step, through the migration lifecycle (`migration_tools.lifecycle`).

Once the gateway has discovered the demo CronJob, `migrate_job` runs two
lifecycle actions on it as the actor `switchyard-demo`: `translate` (the
Kestra flow generated with `migration_tools.translate.translate` and checked)
and `deploy` (pushed to Kestra with its triggers disabled, so the legacy
schedule still runs). The lifecycle writes `job.migration_state`, the
`migration` row and one `migration_audit` row per action; the demo writes
none of them itself.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from migration_tools.kestra_api import KestraApi
from migration_tools.lifecycle import Migrations, MigrationView

DEMO_ACTOR = "switchyard-demo"


def migrate_job(engine: Engine, kestra: KestraApi, *, source: str, key: str) -> MigrationView:
    """Translate the discovered job and deploy its flow to Kestra (state `translated`)."""
    migrations = Migrations(engine, kestra=kestra)
    migrations.translate(source, key, actor=DEMO_ACTOR)
    return migrations.deploy(source, key, actor=DEMO_ACTOR)


__all__ = ["DEMO_ACTOR", "migrate_job"]
