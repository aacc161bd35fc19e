"""migration claim: the action holding a job (compare-and-set before any side effect)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gateway.store.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("migration", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_token", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("claim_action", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column(
                "claim_expires_at",
                gateway.store.types.UTCDateTime(timezone=True),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("migration", schema=None) as batch_op:
        batch_op.drop_column("claim_expires_at")
        batch_op.drop_column("claim_action")
        batch_op.drop_column("claimed_by")
        batch_op.drop_column("claim_token")
