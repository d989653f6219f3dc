"""risk controls: follow settings, orders the copier places itself, TP/SL orders, drift

Existing rows get the defaults of the new columns (origin copy, no slippage guard, both sides).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 20:47:10.668892
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import storage.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "position_drifts",
        sa.Column("follow_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("expected", storage.types.ExactDecimal(), nullable=False),
        sa.Column("actual", storage.types.ExactDecimal(), nullable=False),
        sa.Column("detected_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["follow_id"],
            ["follows.id"],
        ),
        sa.PrimaryKeyConstraint("follow_id", "symbol"),
    )
    op.create_table(
        "protective_orders",
        sa.Column("client_order_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("follow_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("side", sa.Enum("buy", "sell", name="side", native_enum=False, length=32), nullable=False),
        sa.Column("quantity", storage.types.ExactDecimal(), nullable=False),
        sa.Column("trigger_price", storage.types.ExactDecimal(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending", "placed", "filled", "skipped", "failed", name="copystatus", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("venue_order_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["follow_id"],
            ["follows.id"],
        ),
        sa.PrimaryKeyConstraint("client_order_id"),
    )
    with op.batch_alter_table("protective_orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_protective_orders_follow_id"), ["follow_id"], unique=False)

    with op.batch_alter_table("copy_orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("origin", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False, server_default="copy")
        )
        batch_op.add_column(sa.Column("realized_pnl", storage.types.ExactDecimal(), nullable=False, server_default="0"))
        batch_op.alter_column("fill_id", existing_type=sa.INTEGER(), nullable=True)

    with op.batch_alter_table("follows", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_total_notional", storage.types.ExactDecimal(), nullable=True))
        batch_op.add_column(sa.Column("slippage_pct", storage.types.ExactDecimal(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "slippage_action", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False, server_default="skip"
            )
        )
        batch_op.add_column(sa.Column("margin_mode", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("entry_sides", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False, server_default="both")
        )
        batch_op.add_column(sa.Column("close_on_daily_loss", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("auto_sync", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("follows", schema=None) as batch_op:
        batch_op.drop_column("auto_sync")
        batch_op.drop_column("close_on_daily_loss")
        batch_op.drop_column("entry_sides")
        batch_op.drop_column("margin_mode")
        batch_op.drop_column("slippage_action")
        batch_op.drop_column("slippage_pct")
        batch_op.drop_column("max_total_notional")

    with op.batch_alter_table("copy_orders", schema=None) as batch_op:
        batch_op.alter_column("fill_id", existing_type=sa.INTEGER(), nullable=False)
        batch_op.drop_column("realized_pnl")
        batch_op.drop_column("origin")

    with op.batch_alter_table("protective_orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_protective_orders_follow_id"))

    op.drop_table("protective_orders")
    op.drop_table("position_drifts")
