"""the paper world kept across restarts: paper_accounts, paper_holdings, paper_orders, paper_prices

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 10:50:00.000000
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import storage.types

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "paper_accounts",
        sa.Column("account_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("balance", storage.types.ExactDecimal(), nullable=False),
        sa.Column("leverage", sa.Integer(), nullable=False),
        sa.Column("realized_pnl", storage.types.ExactDecimal(), nullable=False),
        sa.Column("fees_paid", storage.types.ExactDecimal(), nullable=False),
        sa.Column("updated_at", storage.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("account_id"),
    )
    op.create_table(
        "paper_holdings",
        sa.Column("account_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("symbol", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("quantity", storage.types.ExactDecimal(), nullable=False),
        sa.Column("entry_price", storage.types.ExactDecimal(), nullable=True),
        sa.Column("realized_pnl", storage.types.ExactDecimal(), nullable=False),
        sa.Column("fees", storage.types.ExactDecimal(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["paper_accounts.account_id"]),
        sa.PrimaryKeyConstraint("account_id", "symbol"),
    )
    op.create_table(
        "paper_orders",
        sa.Column("account_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("client_order_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("venue_order_id", sa.BigInteger(), nullable=False),
        sa.Column("symbol", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("side", sa.Enum("buy", "sell", name="side", native_enum=False, length=32), nullable=False),
        sa.Column("quantity", storage.types.ExactDecimal(), nullable=False),
        sa.Column(
            "order_type",
            sa.Enum(
                "market",
                "limit",
                "stop_market",
                "stop_limit",
                "take_profit_market",
                name="ordertype",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("price", storage.types.ExactDecimal(), nullable=True),
        sa.Column("stop_price", storage.types.ExactDecimal(), nullable=True),
        sa.Column("reduce_only", sa.Boolean(), nullable=False),
        sa.Column("time_in_force", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
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
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("filled", storage.types.ExactDecimal(), nullable=False),
        sa.Column("average_price", storage.types.ExactDecimal(), nullable=True),
        sa.Column("fee", storage.types.ExactDecimal(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["paper_accounts.account_id"]),
        sa.PrimaryKeyConstraint("account_id", "client_order_id"),
    )
    op.create_index(op.f("ix_paper_orders_venue_order_id"), "paper_orders", ["venue_order_id"], unique=False)
    op.create_table(
        "paper_prices",
        sa.Column("symbol", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("price", storage.types.ExactDecimal(), nullable=False),
        sa.PrimaryKeyConstraint("symbol"),
    )


def downgrade() -> None:
    op.drop_table("paper_prices")
    op.drop_index(op.f("ix_paper_orders_venue_order_id"), table_name="paper_orders")
    op.drop_table("paper_orders")
    op.drop_table("paper_holdings")
    op.drop_table("paper_accounts")
