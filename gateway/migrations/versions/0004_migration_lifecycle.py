"""migration lifecycle: migration (per job) and migration_audit

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 02:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import gateway.store.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, gateway.store.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "migration",
        sa.Column("job_id", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("job_key", sa.String(length=1024), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("namespace", sa.String(length=150), nullable=True),
        sa.Column("flow_id", sa.String(length=100), nullable=True),
        sa.Column("readiness", sa.String(length=16), nullable=True),
        sa.Column("reasons", _json(), nullable=False),
        sa.Column("translated_yaml", sa.Text(), nullable=True),
        sa.Column("wrap_flow_id", sa.String(length=100), nullable=True),
        sa.Column("wrap_yaml", sa.Text(), nullable=True),
        sa.Column("sides", _json(), nullable=False),
        sa.Column("deployed_revision", sa.Integer(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("state_changed_at"),
        sa.PrimaryKeyConstraint("job_id"),
        sa.UniqueConstraint("source", "job_key", name="uq_migration_job"),
    )
    op.create_index("ix_migration_state", "migration", ["state"], unique=False)
    op.create_table(
        "migration_audit",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("job_id", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("job_key", sa.String(length=1024), nullable=False),
        sa.Column("actor", sa.String(length=256), nullable=False),
        _ts("at", nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("before", sa.String(length=32), nullable=False),
        sa.Column("after", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_migration_audit_job", "migration_audit", ["job_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_migration_audit_job", table_name="migration_audit")
    op.drop_table("migration_audit")
    op.drop_index("ix_migration_state", table_name="migration")
    op.drop_table("migration")
