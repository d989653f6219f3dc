"""protected limits and product type per follow: follows.price_protection_pct, follows.product

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 09:20:00.000000
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import storage.types

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("follows", schema=None) as batch_op:
        batch_op.add_column(sa.Column("price_protection_pct", storage.types.ExactDecimal(), nullable=True))
        batch_op.add_column(sa.Column("product", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("follows", schema=None) as batch_op:
        batch_op.drop_column("product")
        batch_op.drop_column("price_protection_pct")
