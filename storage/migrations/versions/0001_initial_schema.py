"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21 20:08:32.883039
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import storage.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("telegram_id", sa.BigInteger(), nullable=True),
        sa.Column("display_name", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("blocked_bot", sa.Boolean(), nullable=False),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_telegram_id"), ["telegram_id"], unique=True)

    op.create_table(
        "credentials",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("venue", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("label", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("environment", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("key_fingerprint", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("last_validated_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "label", name="uq_credential_user_label"),
    )
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_credentials_user_id"), ["user_id"], unique=False)

    op.create_table(
        "masters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("venue", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("credential_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column(
            "status",
            sa.Enum("active", "hidden", "retired", name="masterstatus", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["credential_id"],
            ["credentials.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "follows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("master_id", sa.Integer(), nullable=False),
        sa.Column("credential_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column(
            "sizing_mode",
            sa.Enum(
                "coefficient",
                "equity_ratio",
                "fixed_notional",
                "fixed_quantity",
                name="sizingmode",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("sizing_value", storage.types.ExactDecimal(), nullable=False),
        sa.Column("reverse", sa.Boolean(), nullable=False),
        sa.Column("take_profit_pct", storage.types.ExactDecimal(), nullable=True),
        sa.Column("stop_loss_pct", storage.types.ExactDecimal(), nullable=True),
        sa.Column("max_position_notional", storage.types.ExactDecimal(), nullable=True),
        sa.Column("daily_loss_limit", storage.types.ExactDecimal(), nullable=True),
        sa.Column("leverage", sa.Integer(), nullable=True),
        sa.Column("allowed_symbols", sa.JSON(), nullable=False),
        sa.Column("blocked_symbols", sa.JSON(), nullable=False),
        sa.Column("order_types", sa.JSON(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("active", "paused", "stopped", name="followstatus", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("status_reason", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["credential_id"],
            ["credentials.id"],
        ),
        sa.ForeignKeyConstraint(
            ["master_id"],
            ["masters.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("master_id", "credential_id", name="uq_follow_master_credential"),
    )
    with op.batch_alter_table("follows", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_follows_master_id"), ["master_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_follows_user_id"), ["user_id"], unique=False)

    op.create_table(
        "master_fills",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("master_id", sa.Integer(), nullable=False),
        sa.Column("venue", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("trade_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("order_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("symbol", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("side", sa.Enum("buy", "sell", name="side", native_enum=False, length=32), nullable=False),
        sa.Column("quantity", storage.types.ExactDecimal(), nullable=False),
        sa.Column("price", storage.types.ExactDecimal(), nullable=False),
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
        sa.Column("reduce_only", sa.Boolean(), nullable=False),
        sa.Column("master_position_before", storage.types.ExactDecimal(), nullable=False),
        sa.Column("executed_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("planned", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["master_id"],
            ["masters.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("venue", "trade_id", name="uq_master_fill_venue_trade"),
    )
    with op.batch_alter_table("master_fills", schema=None) as batch_op:
        batch_op.create_index("ix_master_fills_master_executed", ["master_id", "executed_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_master_fills_master_id"), ["master_id"], unique=False)

    op.create_table(
        "master_positions",
        sa.Column("master_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("quantity", storage.types.ExactDecimal(), nullable=False),
        sa.ForeignKeyConstraint(
            ["master_id"],
            ["masters.id"],
        ),
        sa.PrimaryKeyConstraint("master_id", "symbol"),
    )
    op.create_table(
        "copy_orders",
        sa.Column("client_order_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("fill_id", sa.Integer(), nullable=False),
        sa.Column("follow_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("side", sa.Enum("buy", "sell", name="side", native_enum=False, length=32), nullable=True),
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
        sa.Column("reduce_only", sa.Boolean(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending", "placed", "filled", "skipped", "failed", name="copystatus", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("reason_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("requested_quantity", storage.types.ExactDecimal(), nullable=True),
        sa.Column("filled_quantity", storage.types.ExactDecimal(), nullable=False),
        sa.Column("average_price", storage.types.ExactDecimal(), nullable=True),
        sa.Column("limit_price", storage.types.ExactDecimal(), nullable=True),
        sa.Column("master_price", storage.types.ExactDecimal(), nullable=False),
        sa.Column("fee", storage.types.ExactDecimal(), nullable=False),
        sa.Column("venue_order_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["fill_id"],
            ["master_fills.id"],
        ),
        sa.ForeignKeyConstraint(
            ["follow_id"],
            ["follows.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("client_order_id"),
    )
    with op.batch_alter_table("copy_orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_copy_orders_fill_id"), ["fill_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_copy_orders_follow_id"), ["follow_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_copy_orders_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_copy_orders_user_id"), ["user_id"], unique=False)

    op.create_table(
        "follow_positions",
        sa.Column("follow_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("quantity", storage.types.ExactDecimal(), nullable=False),
        sa.Column("entry_price", storage.types.ExactDecimal(), nullable=True),
        sa.Column("realized_pnl", storage.types.ExactDecimal(), nullable=False),
        sa.Column("updated_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["follow_id"],
            ["follows.id"],
        ),
        sa.PrimaryKeyConstraint("follow_id", "symbol"),
    )


def downgrade() -> None:
    op.drop_table("follow_positions")
    with op.batch_alter_table("copy_orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_copy_orders_user_id"))
        batch_op.drop_index(batch_op.f("ix_copy_orders_status"))
        batch_op.drop_index(batch_op.f("ix_copy_orders_follow_id"))
        batch_op.drop_index(batch_op.f("ix_copy_orders_fill_id"))

    op.drop_table("copy_orders")
    op.drop_table("master_positions")
    with op.batch_alter_table("master_fills", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_master_fills_master_id"))
        batch_op.drop_index("ix_master_fills_master_executed")

    op.drop_table("master_fills")
    with op.batch_alter_table("follows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_follows_user_id"))
        batch_op.drop_index(batch_op.f("ix_follows_master_id"))

    op.drop_table("follows")
    op.drop_table("masters")
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_credentials_user_id"))

    op.drop_table("credentials")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_telegram_id"))

    op.drop_table("users")
