"""A follower's order stream on USD-M outlives its listen key's 60 minutes: the key is kept alive
while the stream is watched (docs/research/binance.md §3: "valid for 60 minutes after creation",
"Doing a PUT on a listenKey will extend its validity for 60 minutes"). The fake expires keys on
that rule, shortened; the real ccxt.pro watches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from core.model import OrderIntent, OrderType, Side
from core.venues.base import OrderChange
from core.venues.ccxt.markets import CcxtMarketsCache
from core.venues.ccxt.venue import CcxtVenue
from tests.fakes.binance import FakeBinance
from tests.harness import eventually

KEY, SECRET = "stream-follower-key", "stream-follower-secret"
KEY_LIFE = 0.5  # the fake's listen keys, in seconds (Binance: 60 minutes)


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance(listen_key_seconds=KEY_LIFE) as server:
        server.add_account(KEY, SECRET)
        yield server


async def test_a_followers_order_stream_keeps_its_listen_key_alive(fake: FakeBinance) -> None:
    venue = CcxtVenue.create(
        "binanceusdm",
        KEY,
        SECRET,
        markets_cache=CcxtMarketsCache(),
        url_overrides=fake.url_overrides(),
        enable_rate_limit=False,
        listen_key_keepalive_seconds=KEY_LIFE / 5,
    )
    source = venue.order_events()
    changes: list[OrderChange] = []

    async def collect() -> None:
        async for change in source.changes():
            changes.append(change)

    intent = OrderIntent(
        1, "rest-1", "BTC/USDT:USDT", Side.BUY, Decimal("0.01"), order_type=OrderType.LIMIT, price=Decimal(59000)
    )
    await venue.place_order(intent)
    task = asyncio.create_task(collect())
    try:
        await eventually(lambda: fake.open_websockets == 1, "the follower's order stream")
        await asyncio.sleep(KEY_LIFE * 3)  # three lifetimes of an unrenewed key

        await fake.trade_through("BTCUSDT", Decimal(59000))

        await eventually(lambda: any(c.client_order_id == "rest-1" for c in changes), "the fill on the stream")
        assert fake.count("PUT", "/fapi/v1/listenKey") >= 3 and not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await source.close()
        await venue.close()
