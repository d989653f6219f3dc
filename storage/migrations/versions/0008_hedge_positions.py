"""hedge mode: the master's and the copied positions per position side, and the side each master
fill and each copy order moved

Existing rows are one-way ("both"): before this revision every position was one net position.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 09:20:00
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import storage.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_SIDE = sa.Enum("both", "long", "short", name="positionside", native_enum=False, length=32)


_FOLLOW_COLUMNS = "follow_id, symbol, simulated, quantity, entry_price, realized_pnl, fees, updated_at"


def _follow_positions_table(name: str, hedged: bool) -> None:
    columns = [
        sa.Column("follow_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("simulated", sa.Boolean(), nullable=False),
        sa.Column("quantity", storage.types.ExactDecimal(), nullable=False),
        sa.Column("entry_price", storage.types.ExactDecimal(), nullable=True),
        sa.Column("realized_pnl", storage.types.ExactDecimal(), nullable=False),
        sa.Column("fees", storage.types.ExactDecimal(), nullable=False),
        sa.Column("updated_at", storage.types.UTCDateTime(timezone=True), nullable=False),
    ]
    key = ["follow_id", "symbol", "simulated"]
    if hedged:
        columns.insert(3, sa.Column("position_side", _SIDE, nullable=False))
        key.append("position_side")
    op.create_table(
        name, *columns, sa.ForeignKeyConstraint(["follow_id"], ["follows.id"]), sa.PrimaryKeyConstraint(*key)
    )


def upgrade() -> None:
    for table in ("master_fills", "copy_orders"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("position_side", _SIDE, nullable=False, server_default="both"))
    if op.get_bind().dialect.name == "sqlite":
        _follow_positions_table("follow_positions_0008", hedged=True)
        op.execute(
            f"INSERT INTO follow_positions_0008 ({_FOLLOW_COLUMNS}, position_side) "
            f"SELECT {_FOLLOW_COLUMNS}, 'both' FROM follow_positions"
        )
        op.drop_table("follow_positions")
        op.rename_table("follow_positions_0008", "follow_positions")
    else:
        op.add_column("follow_positions", sa.Column("position_side", _SIDE, nullable=False, server_default="both"))
        op.drop_constraint("follow_positions_pkey", "follow_positions", type_="primary")
        op.create_primary_key(
            "follow_positions_pkey", "follow_positions", ["follow_id", "symbol", "simulated", "position_side"]
        )
    if op.get_bind().dialect.name == "sqlite":  # SQLite cannot change a primary key: copy the table
        op.create_table(
            "master_positions_0008",
            sa.Column("master_id", sa.Integer(), nullable=False),
            sa.Column("symbol", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
            sa.Column("position_side", _SIDE, nullable=False),
            sa.Column("quantity", storage.types.ExactDecimal(), nullable=False),
            sa.ForeignKeyConstraint(["master_id"], ["masters.id"]),
            sa.PrimaryKeyConstraint("master_id", "symbol", "position_side"),
        )
        op.execute(
            "INSERT INTO master_positions_0008 (master_id, symbol, position_side, quantity) "
            "SELECT master_id, symbol, 'both', quantity FROM master_positions"
        )
        op.drop_table("master_positions")
        op.rename_table("master_positions_0008", "master_positions")
    else:
        op.add_column("master_positions", sa.Column("position_side", _SIDE, nullable=False, server_default="both"))
        op.drop_constraint("master_positions_pkey", "master_positions", type_="primary")
        op.create_primary_key("master_positions_pkey", "master_positions", ["master_id", "symbol", "position_side"])


def downgrade() -> None:
    bind = op.get_bind()
    hedged = sum(
        bind.execute(sa.text(f"SELECT COUNT(*) FROM {table} WHERE position_side <> 'both'")).scalar() or 0
        for table in ("master_positions", "follow_positions")
    )
    if hedged:  # a long and a short cannot become one row without the journal's replay
        raise RuntimeError("hedge-mode master positions exist: they cannot be merged into one-way rows")
    if bind.dialect.name == "sqlite":
        op.create_table(
            "master_positions_0007",
            sa.Column("master_id", sa.Integer(), nullable=False),
            sa.Column("symbol", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
            sa.Column("quantity", storage.types.ExactDecimal(), nullable=False),
            sa.ForeignKeyConstraint(["master_id"], ["masters.id"]),
            sa.PrimaryKeyConstraint("master_id", "symbol"),
        )
        op.execute(
            "INSERT INTO master_positions_0007 (master_id, symbol, quantity) "
            "SELECT master_id, symbol, quantity FROM master_positions"
        )
        op.drop_table("master_positions")
        op.rename_table("master_positions_0007", "master_positions")
    else:
        op.drop_constraint("master_positions_pkey", "master_positions", type_="primary")
        op.drop_column("master_positions", "position_side")
        op.create_primary_key("master_positions_pkey", "master_positions", ["master_id", "symbol"])
    if bind.dialect.name == "sqlite":
        _follow_positions_table("follow_positions_0007", hedged=False)
        op.execute(
            f"INSERT INTO follow_positions_0007 ({_FOLLOW_COLUMNS}) SELECT {_FOLLOW_COLUMNS} FROM follow_positions"
        )
        op.drop_table("follow_positions")
        op.rename_table("follow_positions_0007", "follow_positions")
    else:
        op.drop_constraint("follow_positions_pkey", "follow_positions", type_="primary")
        op.drop_column("follow_positions", "position_side")
        op.create_primary_key("follow_positions_pkey", "follow_positions", ["follow_id", "symbol", "simulated"])
    for table in ("master_fills", "copy_orders"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("position_side")
