"""Shared fixtures: a migrated database on SQLite or PostgreSQL, and the stores over it.

PostgreSQL runs at 127.0.0.1:5432 (trust auth, database ``test``; override with
``TEST_POSTGRES_URL``). Every test gets a database of its own, dropped afterwards, so tests never
see each other's rows and the suite can run while another one does.

Alembic runs once per test session (per xdist worker) into a template; each test that wants a
migrated database gets a fresh copy of it: on SQLite a copy of the migrated file, on PostgreSQL a
database created from the migrated template database (every name unique, so workers and other
runs on the same server never collide). The empty databases of ``database_url``,
``sqlite_url`` and ``postgres_url`` are for the tests of the migrations themselves, which run
Alembic for real.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal as D
from pathlib import Path

import psycopg
import pytest
from hypothesis import settings
from sqlalchemy.engine import make_url

from core.vault import Vault, generate_key
from core.venues.paper.venue import PaperExchange
from core.venues.registry import VenueRegistry
from storage.accounts import AccountStore
from storage.db import Database
from storage.journal import JournalStore
from storage.migrate import upgrade
from storage.models import Master
from tests.harness import Harness

# Hypothesis's per-example deadline is a wall-clock assertion: on a loaded machine (CI shares two
# cores) it fails examples that are merely slow. Properties are about behaviour, never time.
settings.register_profile("copytrade", deadline=None)
settings.load_profile("copytrade")

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_schema_url(schema: str) -> str:
    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


def _postgres_database_url(name: str) -> str:
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


# -- empty databases: for the tests of the migrations -----------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'copytrade.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield _postgres_schema_url(schema)
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request) -> str:
    """Both backends: storage behaviour must not depend on which one runs."""
    return request.param


@pytest.fixture
def database_url(request, backend) -> str:
    """An empty database on each backend (``db`` is a migrated one of its own)."""
    return request.getfixturevalue("sqlite_url" if backend == "sqlite" else "postgres_url")


# -- migrated databases: copies of a template migrated once per session ---------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A SQLite file migrated to the head revision, once per session (per xdist worker)."""
    path = tmp_path_factory.mktemp("template") / "migrated.db"
    upgrade(f"sqlite:///{path}")
    # Alembic's last connection closed checkpointed the WAL into the file: the file is the database.
    assert not path.with_name(f"{path.name}-wal").exists(), "the template's WAL was not checkpointed"
    return path


@pytest.fixture(scope="session")
def migrated_sqlite(sqlite_template) -> Callable[[Path], str]:
    """``migrated_sqlite(path)`` puts a fresh copy of the migrated template at ``path`` (which must
    not exist yet) and returns its URL: what ``upgrade`` on an empty file would have made."""

    def copy(path: Path) -> str:
        assert not path.exists(), f"{path} exists: a migrated copy goes to a new file"
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sqlite_template, path)
        return f"sqlite:///{path}"

    return copy


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """The name of a PostgreSQL database migrated to the head revision, once per session (per
    xdist worker); nothing stays connected to it, so ``CREATE DATABASE ... TEMPLATE`` can copy it."""
    name = f"ct_template_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        upgrade(_postgres_database_url(name))
        yield name
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def migrated_postgres_url(request) -> Iterator[str]:
    """A fresh PostgreSQL database copied from the migrated template, dropped afterwards."""
    template = request.getfixturevalue("postgres_template")
    name = f"ct_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield _postgres_database_url(name)
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def migrated_sqlite_url(tmp_path, migrated_sqlite) -> str:
    return migrated_sqlite(tmp_path / "migrated.db")


@pytest.fixture
async def db(request, backend) -> AsyncIterator[Database]:
    """A migrated database of its own on each backend (its URL is ``db.url``)."""
    database = Database(request.getfixturevalue(f"migrated_{backend}_url"))
    yield database
    await database.dispose()


@pytest.fixture
async def sqlite_db(migrated_sqlite_url) -> AsyncIterator[Database]:
    """SQLite only: for engine tests whose subject is not the backend."""
    database = Database(migrated_sqlite_url)
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first, the longest (by their explicit timeout) first of all: a parallel run
    ends when its last worker does, and a campaign of minutes started last would end the run
    minutes late. Only the order changes (the same on every xdist worker, as xdist requires)."""

    def explicit_timeout(item: pytest.Item) -> float:
        marker = item.get_closest_marker("timeout")
        return float(marker.args[0]) if marker and marker.args else 0.0

    items.sort(key=lambda item: (item.get_closest_marker("slow") is None, -explicit_timeout(item)))
