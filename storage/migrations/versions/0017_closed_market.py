"""a copy while its market is closed: follows.closed_market_action

Existing follows skip such a copy (recorded market_closed), as new ones do by default; a follow
may choose to send it as an after-market order instead.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-08 10:00:00.000000
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("follows", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "closed_market_action",
                sqlmodel.sql.sqltypes.AutoString(length=16),
                nullable=False,
                server_default="skip",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("follows", schema=None) as batch_op:
        batch_op.drop_column("closed_market_action")
