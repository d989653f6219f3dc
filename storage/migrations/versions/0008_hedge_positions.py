"""hedge mode: the master's positions per position side, and the side each master fill moved

Existing rows are one-way ("both"): a master streamed before this revision kept one net position.

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


def upgrade() -> None:
    with op.batch_alter_table("master_fills", schema=None) as batch_op:
        batch_op.add_column(sa.Column("position_side", _SIDE, nullable=False, server_default="both"))
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
    hedged = bind.execute(sa.text("SELECT COUNT(*) FROM master_positions WHERE position_side <> 'both'")).scalar()
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
    with op.batch_alter_table("master_fills", schema=None) as batch_op:
        batch_op.drop_column("position_side")
