"""write-offs: what was closed outside the copier, taken off the ledger: copy_executions.written_off

A write-off is a copy_orders row of origin write_off (never sent) with one copy_executions row
marked written_off, which moves the copied position through core.ledger.write_off (no PnL, no
fee). Existing executions are venue executions.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-08 00:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("copy_executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("written_off", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("copy_executions", schema=None) as batch_op:
        batch_op.drop_column("written_off")
