"""follows keep their history when a key is removed

follows.credential_id becomes nullable with ON DELETE SET NULL: removing a key that only
stopped follows used destroys the secret and keeps the copy history.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 20:26:49
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# 0001 created the foreign key unnamed: PostgreSQL named it itself, SQLite keeps it nameless
# (a naming convention names it for the batch rebuild).
_SQLITE_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}
_OLD_FK = {"postgresql": "follows_credential_id_fkey", "sqlite": "fk_follows_credential_id_credentials"}
_NEW_FK = "fk_follows_credential_id"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("follows", naming_convention=_SQLITE_NAMES if dialect == "sqlite" else None) as batch_op:
        batch_op.drop_constraint(_OLD_FK[dialect], type_="foreignkey")
        batch_op.alter_column("credential_id", existing_type=sa.String(length=32), nullable=True)
        batch_op.create_foreign_key(_NEW_FK, "credentials", ["credential_id"], ["id"], ondelete="SET NULL")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute("DELETE FROM follows WHERE credential_id IS NULL")
    with op.batch_alter_table("follows") as batch_op:
        batch_op.drop_constraint(_NEW_FK, type_="foreignkey")
        batch_op.alter_column("credential_id", existing_type=sa.String(length=32), nullable=False)
        batch_op.create_foreign_key(
            _OLD_FK[dialect] if dialect == "postgresql" else None, "credentials", ["credential_id"], ["id"]
        )
