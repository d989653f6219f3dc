"""Alembic environment: the URL comes from the caller (storage.migrate), never from an ini file."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from storage import models  # noqa: F401  (registers every table on the metadata)
from storage.db import create_sync_engine

config = context.config
engine = create_sync_engine(config.attributes["database_url"])
try:
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=SQLModel.metadata,
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copy
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
finally:
    engine.dispose()
