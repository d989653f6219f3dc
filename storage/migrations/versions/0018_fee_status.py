"""a fill's commission completed after it: copy_orders.fee_status

Existing copy orders have their fees as recorded (counted).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-08 12:00:00.000000
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("copy_orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "fee_status", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False, server_default="counted"
            )
        )
        batch_op.create_index(batch_op.f("ix_copy_orders_fee_status"), ["fee_status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("copy_orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_copy_orders_fee_status"))
        batch_op.drop_column("fee_status")
