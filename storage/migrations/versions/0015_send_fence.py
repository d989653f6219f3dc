"""the send fence: copy_orders.claim_epoch, copy_orders.send_started_at, copy_orders.send_deadline

Rows pending when this runs may have been sent by the code before it, which signed its requests
with ccxt's default 10 s recvWindow while it held the row's lease: they are marked as sent, with a
deadline a full minute (Binance's largest recvWindow) after their lease, so nothing resends them
before their first request can no longer execute.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 20:30:00.000000
"""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

import storage.types

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("copy_orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_epoch", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("send_started_at", storage.types.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("send_deadline", storage.types.UTCDateTime(), nullable=True))
    copy_orders = sa.table(
        "copy_orders",
        sa.column("client_order_id", sa.String),
        sa.column("status", sa.String),
        sa.column("lease_until", storage.types.UTCDateTime()),
        sa.column("send_started_at", storage.types.UTCDateTime()),
        sa.column("send_deadline", storage.types.UTCDateTime()),
    )
    connection = op.get_bind()
    pending = connection.execute(
        sa.select(copy_orders.c.client_order_id, copy_orders.c.lease_until).where(copy_orders.c.status == "pending")
    ).all()
    now = datetime.now(UTC)
    for client_order_id, lease_until in pending:
        started = lease_until or now
        connection.execute(
            copy_orders.update()
            .where(copy_orders.c.client_order_id == client_order_id)
            .values(send_started_at=started, send_deadline=started + timedelta(minutes=1))
        )


def downgrade() -> None:
    with op.batch_alter_table("copy_orders", schema=None) as batch_op:
        batch_op.drop_column("send_deadline")
        batch_op.drop_column("send_started_at")
        batch_op.drop_column("claim_epoch")
