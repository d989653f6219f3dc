"""Versioned schema migrations (Alembic), applied by ``copytrade migrate`` and at start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from storage.db import create_sync_engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def _config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema to ``revision``. Safe to run on every start: a no-op when current."""
    command.upgrade(_config(database_url), revision)


def current_revision(database_url: str) -> str | None:
    engine = create_sync_engine(database_url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config("sqlite://")).get_current_head()
