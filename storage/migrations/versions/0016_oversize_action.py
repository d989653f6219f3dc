"""copies larger than the venue takes in one order: follows.oversize_action

Existing follows split such a copy into several orders, like new ones.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 23:30:00.000000
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("follows", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "oversize_action",
                sqlmodel.sql.sqltypes.AutoString(length=8),
                nullable=False,
                server_default="split",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("follows", schema=None) as batch_op:
        batch_op.drop_column("oversize_action")
