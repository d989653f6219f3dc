"""Spot reconciliation counts only what the copier bought: a spot account's balances are the user's
own coins as much as the copies', so ``/sync`` and auto-sync never sell coins the user bought
themselves. The real ccxt (binance spot) against the fake, through the engine and the journal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from core.copying.config import EngineConfig
from core.copying.path import OrderPath
from core.engine import CopyEngine
from core.model import Fill, OrderIntent, Side
from core.risk_service import RiskService
from core.venues.ccxt.markets import CcxtMarketsCache
from core.venues.ccxt.venue import CcxtVenue
from tests.fakes.binance import FakeBinance

BTC = "BTC/USDT"
KEY, SECRET = "spot-follower-key", "spot-follower-secret"


class OneVenue:
    def __init__(self, venue: CcxtVenue) -> None:
        self.venue = venue

    async def venue_for(self, credential_id: str) -> CcxtVenue:
        return self.venue

    async def open_many(self, credential_ids, *, warm_up: bool = False) -> None:
        return None


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance() as server:
        yield server


@pytest.fixture
async def venue(fake: FakeBinance) -> AsyncIterator[CcxtVenue]:
    account = fake.add_account(KEY, SECRET)
    account.spot_balances["BTC"] = Decimal("1")  # the user's own coin, bought before following
    spot = CcxtVenue.create(
        "binance",
        KEY,
        SECRET,
        markets_cache=CcxtMarketsCache(),
        url_overrides=fake.url_overrides(),
        enable_rate_limit=False,
        retry_backoff=0.01,
    )
    yield spot
    await spot.close()


def master_fill(h, trade_id: str, side: Side, quantity: str = "0.01") -> Fill:
    return Fill(h.master_id, "binance:m", trade_id, trade_id, BTC, side, Decimal(quantity), Decimal(60000))


def wired(h, venue: CcxtVenue) -> tuple[CopyEngine, RiskService]:
    path = OrderPath(h.journal, OneVenue(venue), h.events.append, EngineConfig(retry_delays=(0.001,)))
    return CopyEngine(path), RiskService(h.journal, path, h.events.append)


async def follow(h, follow_id: int):
    return next(f for f in await h.journal.all_active_follows() if f.follow_id == follow_id)


async def test_sync_never_sells_the_users_own_coins(fake: FakeBinance, venue: CcxtVenue, h) -> None:
    follow_id, _ = await h.add_follower(auto_sync=True)
    engine, risk = wired(h, venue)
    await engine.on_fill(master_fill(h, "t1", Side.BUY))  # the copier holds 0.009996 (its commission in BTC)

    assert await risk.reconcile(await follow(h, follow_id)) == {}
    assert await risk.sync(await follow(h, follow_id)) == []
    await engine.on_fill(master_fill(h, "t2", Side.SELL))  # the master closes: so does the copy
    assert await risk.reconcile(await follow(h, follow_id)) == {}  # the coin left is the user's
    assert fake.accounts[KEY].spot_balances["BTC"] >= Decimal("1")
    sells = [r for r in fake.order_requests if r.params.get("side") == "SELL"]
    assert [r.params["quantity"] for r in sells] == ["0.00999"]  # only the copy's own exit


async def test_a_copied_coin_sold_by_hand_is_a_drift_synced_back(fake: FakeBinance, venue: CcxtVenue, h) -> None:
    fake.accounts[KEY].spot_balances["BTC"] = Decimal(0)
    follow_id, _ = await h.add_follower()
    engine, risk = wired(h, venue)
    await engine.on_fill(master_fill(h, "t1", Side.BUY, "0.02"))  # holds 0.019992
    await venue.place_order(OrderIntent(0, "by-hand", BTC, Side.SELL, Decimal("0.01"), reference_price=Decimal(60000)))

    drifts = await risk.reconcile(await follow(h, follow_id))

    assert drifts == {BTC: (Decimal("0.019992"), Decimal("0.009992"))}
    [bought] = await risk.sync(await follow(h, follow_id))
    assert (bought.side, bought.filled_quantity) == (Side.BUY, Decimal("0.01"))
