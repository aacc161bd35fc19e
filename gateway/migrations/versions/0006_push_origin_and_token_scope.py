"""run.state_pushed (a state that came from a push) and api_token.sources (an ingest scope)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("run", schema=None) as batch_op:
        # Every state stored before pushes were told apart counts as polled.
        batch_op.add_column(
            sa.Column("state_pushed", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "sources",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_column("sources")
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.drop_column("state_pushed")
