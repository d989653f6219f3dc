"""Engines and sessions. ``DATABASE_URL`` picks the backend; everything else is derived here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, NullPool
from sqlmodel import create_engine

from core.model import utcnow


def _driver_url(database_url: str, *, asynchronous: bool) -> URL:
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url.set(drivername="sqlite+aiosqlite" if asynchronous else "sqlite")
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")  # psycopg 3 serves both sync and async
    raise ValueError(f"unsupported database backend {backend!r}")


def ensure_sqlite_directory(database_url: str) -> None:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()


def create_sync_engine(database_url: str) -> Engine:
    """For migrations and the CLI's one-off maintenance commands."""
    ensure_sqlite_directory(database_url)
    url = _driver_url(database_url, asynchronous=False)
    engine = create_engine(
        url, poolclass=NullPool if url.get_backend_name() == "sqlite" else None, hide_parameters=True
    )
    if url.get_backend_name() == "sqlite":
        _tune_sqlite(engine)
    return engine


class Database:
    """The async engine and a session factory; one per process."""

    def __init__(self, database_url: str) -> None:
        ensure_sqlite_directory(database_url)
        url = _driver_url(database_url, asynchronous=True)
        self.url = database_url
        self.is_sqlite = url.get_backend_name() == "sqlite"
        # statements' parameters (an API token's hash, a sealed credential) never reach a log line
        # or an exception text, at any level
        kwargs: dict[str, object] = {"hide_parameters": True}
        if not self.is_sqlite:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            _tune_sqlite(self.engine.sync_engine)
        self._sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A short unit of work: committed on success, rolled back on any error."""
        async with self._sessions() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def now(self, session: AsyncSession) -> datetime:
        """The database's clock (PostgreSQL: the transaction's ``now()``), the one clock every
        process of a deployment shares for leases and fences; SQLite is embedded, so its clock is
        this host's."""
        if self.is_sqlite:
            return utcnow()
        answer = (await session.execute(text("SELECT now()"))).scalar_one()
        assert isinstance(answer, datetime)
        return answer.astimezone(UTC)

    async def ping(self) -> None:
        """One round trip to the database (readiness); raises when it cannot be reached."""
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
