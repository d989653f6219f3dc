"""order lifecycle: each copy order's state on the venue, its executions, fees on the copied positions

Existing copy orders get the state their status implies (placed -> acknowledged, filled -> filled,
failed -> rejected, pending -> pending; skipped rows were never sent and keep none). Executions
recorded before this revision are not back-filled: the copied positions already hold them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 08:37:12.878772
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import storage.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "copy_executions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_order_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("filled_after", storage.types.ExactDecimal(), nullable=False),
        sa.Column("trade_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("follow_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("side", sa.Enum("buy", "sell", name="side", native_enum=False, length=32), nullable=False),
        sa.Column("quantity", storage.types.ExactDecimal(), nullable=False),
        sa.Column("ledger_quantity", storage.types.ExactDecimal(), nullable=False),
        sa.Column("price", storage.types.ExactDecimal(), nullable=False),
        sa.Column("fee", storage.types.ExactDecimal(), nullable=False),
        sa.Column("moved_ledger", sa.Boolean(), nullable=False),
        sa.Column("realized_pnl", storage.types.ExactDecimal(), nullable=False),
        sa.Column("recorded_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_order_id"],
            ["copy_orders.client_order_id"],
        ),
        sa.ForeignKeyConstraint(
            ["follow_id"],
            ["follows.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_order_id", "filled_after", name="uq_copy_execution_order_fill"),
    )
    with op.batch_alter_table("copy_executions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_copy_executions_follow_id"), ["follow_id"], unique=False)

    with op.batch_alter_table("copy_orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "state",
                sa.Enum(
                    "pending",
                    "acknowledged",
                    "partially_filled",
                    "filled",
                    "canceled",
                    "expired",
                    "rejected",
                    name="orderstate",
                    native_enum=False,
                    length=20,
                ),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("base_fee", storage.types.ExactDecimal(), nullable=False, server_default="0"))
        batch_op.create_index(batch_op.f("ix_copy_orders_state"), ["state"], unique=False)
    for status, state in (
        ("pending", "pending"),
        ("placed", "acknowledged"),
        ("filled", "filled"),
        ("failed", "rejected"),
    ):
        op.execute(
            sa.text("UPDATE copy_orders SET state = :state WHERE status = :status").bindparams(
                state=state, status=status
            )
        )

    with op.batch_alter_table("follow_positions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fees", storage.types.ExactDecimal(), nullable=False, server_default="0"))

    with op.batch_alter_table("follows", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_resting_minutes", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("follows", schema=None) as batch_op:
        batch_op.drop_column("max_resting_minutes")

    with op.batch_alter_table("follow_positions", schema=None) as batch_op:
        batch_op.drop_column("fees")

    with op.batch_alter_table("copy_orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_copy_orders_state"))
        batch_op.drop_column("base_fee")
        batch_op.drop_column("state")

    with op.batch_alter_table("copy_executions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_copy_executions_follow_id"))

    op.drop_table("copy_executions")
