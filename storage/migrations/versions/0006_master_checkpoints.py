"""master checkpoints: where each master's stream history is known complete

Masters streamed before this revision get none: their newest journaled fill is where recovery
starts, as before.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 09:00:00
"""

import sqlalchemy as sa
from alembic import op

import storage.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "master_checkpoints",
        sa.Column("master_id", sa.Integer(), nullable=False),
        sa.Column("recovered_until", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["master_id"],
            ["masters.id"],
        ),
        sa.PrimaryKeyConstraint("master_id"),
    )


def downgrade() -> None:
    op.drop_table("master_checkpoints")
