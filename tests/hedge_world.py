"""The hedge-mode world the hedge tests share: a hedge-mode master, a hedge-mode follower and a
one-way follower on the fake Binance USD-M, and the app's settings against it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal as D
from pathlib import Path

from copytrade.config import Mode, Settings
from core.vault import generate_key
from tests.fakes.binance import FakeBinance

MASTER = ("master-key-0001", "master-secret")
HEDGED = ("follower-key-hedge", "follower-secret-1")
ONE_WAY = ("follower-key-oneway", "follower-secret-2")
KEY = generate_key()
BTC = "BTC/USDT:USDT"


@asynccontextmanager
async def hedge_exchange() -> AsyncIterator[FakeBinance]:
    async with FakeBinance() as server:
        server.add_account(*MASTER, hedge_mode=True)
        server.add_account(*HEDGED, hedge_mode=True)
        server.add_account(*ONE_WAY)
        yield server


def hedge_settings(fake: FakeBinance, database: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{database}",
        secret_key=KEY,
        mode=Mode.TESTNET,
        venue_urls={"binanceusdm": fake.url_overrides()},
        max_fill_age_seconds=D(3600),  # executions replayed after a restart are copied, not stale
    )


def sides(fake: FakeBinance, api_key: str) -> tuple[D, D]:
    """The account's (long, short) amounts in BTCUSDT (hedge mode), as positive numbers."""
    account = fake.accounts[api_key]
    return account.position("BTCUSDT", "LONG").amount, account.position("BTCUSDT", "SHORT").amount
