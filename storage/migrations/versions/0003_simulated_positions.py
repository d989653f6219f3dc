"""dry-run copies keep a ledger of their own

follow_positions gains ``simulated`` as part of its primary key, so that switching dry run off
discards only the simulated positions and never the real ones. Rows of follows that are in dry
run now are taken to be simulated; every other row is real.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 20:45:00
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import storage.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _columns(simulated: bool) -> list[sa.Column]:
    columns = [
        sa.Column("follow_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("quantity", storage.types.ExactDecimal(), nullable=False),
        sa.Column("entry_price", storage.types.ExactDecimal(), nullable=True),
        sa.Column("realized_pnl", storage.types.ExactDecimal(), nullable=False),
        sa.Column("updated_at", storage.types.UTCDateTime(timezone=True), nullable=False),
    ]
    if simulated:
        columns.insert(2, sa.Column("simulated", sa.Boolean(), nullable=False))
    return columns


def _rebuild_sqlite(simulated: bool, copy_sql: str) -> None:
    """SQLite cannot change a primary key in place: build the new table, copy, swap."""
    key = ["follow_id", "symbol", "simulated"] if simulated else ["follow_id", "symbol"]
    op.create_table(
        "_follow_positions_new",
        *_columns(simulated),
        sa.ForeignKeyConstraint(["follow_id"], ["follows.id"]),
        sa.PrimaryKeyConstraint(*key, name="follow_positions_pkey"),
    )
    op.execute(copy_sql)
    op.drop_table("follow_positions")
    op.rename_table("_follow_positions_new", "follow_positions")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(
            True,
            "INSERT INTO _follow_positions_new"
            " (follow_id, symbol, simulated, quantity, entry_price, realized_pnl, updated_at) "
            "SELECT p.follow_id, p.symbol, COALESCE(f.dry_run, 0), p.quantity, p.entry_price, p.realized_pnl,"
            " p.updated_at "
            "FROM follow_positions p LEFT JOIN follows f ON f.id = p.follow_id",
        )
        return
    op.add_column("follow_positions", sa.Column("simulated", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute("UPDATE follow_positions p SET simulated = f.dry_run FROM follows f WHERE f.id = p.follow_id")
    op.alter_column("follow_positions", "simulated", server_default=None)
    op.drop_constraint("follow_positions_pkey", "follow_positions", type_="primary")
    op.create_primary_key("follow_positions_pkey", "follow_positions", ["follow_id", "symbol", "simulated"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(
            False,
            "INSERT INTO _follow_positions_new (follow_id, symbol, quantity, entry_price, realized_pnl, updated_at) "
            "SELECT follow_id, symbol, quantity, entry_price, realized_pnl, updated_at"
            " FROM follow_positions WHERE NOT simulated",
        )
        return
    op.execute("DELETE FROM follow_positions WHERE simulated")
    op.drop_constraint("follow_positions_pkey", "follow_positions", type_="primary")
    op.create_primary_key("follow_positions_pkey", "follow_positions", ["follow_id", "symbol"])
    op.drop_column("follow_positions", "simulated")
