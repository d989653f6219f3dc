"""Shared fixtures: a migrated database on SQLite or PostgreSQL, and the stores over it.

PostgreSQL runs at 127.0.0.1:5432 (trust auth, database ``test``; override with
``TEST_POSTGRES_URL``). Each test gets a schema of its own, dropped afterwards, so tests never
see each other's rows and the suite can run while another one does.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal as D

import psycopg
import pytest

from core.vault import Vault, generate_key
from core.venues.paper.venue import PaperExchange
from core.venues.registry import VenueRegistry
from storage.accounts import AccountStore
from storage.db import Database
from storage.journal import JournalStore
from storage.migrate import upgrade
from storage.models import Master
from tests.harness import Harness

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_schema_url(schema: str) -> str:
    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'copytrade.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    dsn = POSTGRES_URL.replace("postgresql://", "postgresql://", 1)
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield _postgres_schema_url(schema)
    finally:
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request) -> str:
    """Both backends: storage behaviour must not depend on which one runs."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")


@pytest.fixture
async def db(database_url) -> AsyncIterator[Database]:
    upgrade(database_url)
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture
async def sqlite_db(sqlite_url) -> AsyncIterator[Database]:
    """SQLite only: for engine tests whose subject is not the backend."""
    upgrade(sqlite_url)
    database = Database(sqlite_url)
    yield database
    await database.dispose()


@pytest.fixture
def accounts(db) -> AccountStore:
    return AccountStore(db)


@pytest.fixture
def journal(db) -> JournalStore:
    return JournalStore(db)


@pytest.fixture
async def h(sqlite_db) -> Harness:
    """A copy engine and risk service on SQLite with paper venues and one master (``tests/harness.py``)."""
    accounts = AccountStore(sqlite_db)
    exchange = PaperExchange()
    vault = Vault(generate_key())

    async def paper(account):
        return exchange.account(account.credential_id, balance=D(account.secrets.get("balance", "10000")))

    harness = Harness(
        sqlite_db, accounts, JournalStore(sqlite_db), exchange, vault, VenueRegistry(accounts, vault, {"paper": paper})
    )
    owner = await accounts.ensure_user(None, "master")
    master = await accounts.add_master(Master(name="M", venue="paper"))
    assert owner.id and master.id
    harness.master_id = master.id
    harness.build_engine()
    return harness
