"""re-pricing protected limits, the master's product type kept in the journal:
follows.remainder_action, follows.reprice_attempts, copy_orders.protected, copy_orders.attempt,
master_fills.product

Existing follows re-price (at most 3 times), like new ones; existing copy orders are not protected
limits (they keep the follow's maximum resting time); fills journaled before this revision have no
product (their copies used the follow's or the configured one, as before).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 11:00:00.000000
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("follows", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "remainder_action",
                sqlmodel.sql.sqltypes.AutoString(length=8),
                nullable=False,
                server_default="reprice",
            )
        )
        batch_op.add_column(sa.Column("reprice_attempts", sa.Integer(), nullable=False, server_default="3"))
    with op.batch_alter_table("copy_orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("protected", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("master_fills", schema=None) as batch_op:
        batch_op.add_column(sa.Column("product", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("master_fills", schema=None) as batch_op:
        batch_op.drop_column("product")
    with op.batch_alter_table("copy_orders", schema=None) as batch_op:
        batch_op.drop_column("attempt")
        batch_op.drop_column("protected")
    with op.batch_alter_table("follows", schema=None) as batch_op:
        batch_op.drop_column("reprice_attempts")
        batch_op.drop_column("remainder_action")
