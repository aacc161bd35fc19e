"""run indexes on the listing sort key coalesce(started_at, observed_at)

Runs are listed, paged and windowed by `coalesce(started_at, observed_at)`
(`gateway.queries.run_sort_key`). Without an index on that expression every
listing sorts the whole table. These expression indexes exist on SQLite and
PostgreSQL alike, and each one serves a listing as a range scan with a LIMIT:

- `ix_run_sort`: the unfiltered runs list and its keyset cursor.
- `ix_run_source_sort`: runs of one source.
- `ix_run_state_sort`: runs in one state (what is failing now).
- `ix_run_kind_sort`: root runs in a time window, with `source` in the index
  so runs-per-system counts and the timeline read the index only.
- `ix_run_job_sort`: a job's recent runs.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_SORT = "coalesce(started_at, observed_at)"

_INDEXES: dict[str, list[str]] = {
    "ix_run_sort": [_SORT, "id"],
    "ix_run_source_sort": ["source", _SORT, "id"],
    "ix_run_state_sort": ["state", _SORT, "id"],
    "ix_run_kind_sort": ["kind", _SORT, "source"],
    "ix_run_job_sort": ["source", "job", _SORT],
}


def upgrade() -> None:
    for name, parts in _INDEXES.items():
        op.create_index(name, "run", [sa.text(p) if p == _SORT else p for p in parts], unique=False)


def downgrade() -> None:
    for name in reversed(_INDEXES):
        op.drop_index(name, table_name="run")
