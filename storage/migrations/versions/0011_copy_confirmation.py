"""manual confirmation per follow: follows.confirm_seconds

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 11:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("follows", schema=None) as batch_op:
        batch_op.add_column(sa.Column("confirm_seconds", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("follows", schema=None) as batch_op:
        batch_op.drop_column("confirm_seconds")
