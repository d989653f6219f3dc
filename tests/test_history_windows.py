"""The master listener's REST gap recovery within what Binance's trade history allows, per market
type: spot ``myTrades`` at most 24 hours between startTime and endTime, USD-M ``userTrades`` 7 days
and 6 months back; orders older than 90 days no longer found (docs/research/binance.md §2, §4).
The real ccxt.pro against the fake."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from core.model import Fill, OrderType, Side
from core.venues.ccxt.listener import CcxtFillListener
from core.venues.ccxt.markets import CcxtMarketsCache
from core.venues.ccxt.venue import CcxtVenue
from tests.fakes.binance import SPOT, FakeBinance

MASTER_KEY, MASTER_SECRET = "window-master-key", "window-master-secret"
DAY_MS = 86_400_000


async def until(condition: Callable[[], bool], limit_seconds: float = 10.0) -> None:
    """Poll ``condition``; the timeout only turns a hang into a failure."""
    async with asyncio.timeout(limit_seconds):
        while not condition():  # noqa: ASYNC110 (state a websocket and a REST recovery change)
            await asyncio.sleep(0.01)


class Master:
    """A running master listener on ``exchange_id`` whose fills are collected, recovering from
    ``checkpoint``."""

    def __init__(self, fake: FakeBinance, exchange_id: str, checkpoint: datetime, symbols: list[str]) -> None:
        self.fills: list[Fill] = []
        self._checkpoint = checkpoint
        self.venue = CcxtVenue.create(
            exchange_id,
            MASTER_KEY,
            MASTER_SECRET,
            markets_cache=CcxtMarketsCache(),
            url_overrides=fake.url_overrides(),
            streaming=True,
            enable_rate_limit=False,
            read_retries=0,
        )
        self.listener = CcxtFillListener(
            self.venue,
            master_id=3,
            checkpoint=self.checkpoint,
            symbols=symbols,
            heartbeat_seconds=5.0,
            backoff_initial=0.05,
        )
        self._task: asyncio.Task[None] | None = None

    async def checkpoint(self) -> datetime | None:
        return self.fills[-1].executed_at if self.fills else self._checkpoint

    async def _collect(self) -> None:
        async for event in self.listener.fills():
            if isinstance(event, Fill):  # the master's order events are not what these tests count
                self.fills.append(event)

    def start(self) -> None:
        self._task = asyncio.create_task(self._collect())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.venue.close()


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance() as server:
        server.add_account(MASTER_KEY, MASTER_SECRET)
        yield server


def backdate(fake: FakeBinance, order_id: int, days: float) -> None:
    """The order (its trades and income rows) happened ``days`` ago."""
    account = fake.accounts[MASTER_KEY]
    shift = int(days * DAY_MS)
    order = account.orders[order_id]
    order.time_ms -= shift
    order.update_ms -= shift
    trade_ids = set()
    for trade in account.trades:
        if trade.order_id == order_id:
            trade.time_ms -= shift
            trade_ids.add(trade.trade_id)
    for row in account.income:
        if row.trade_id in trade_ids:
            row.time_ms -= shift


async def test_a_two_day_spot_gap_is_recovered(fake: FakeBinance) -> None:
    """Spot ``myTrades`` refuses more than 24 hours between startTime and endTime (-1127): the gap is
    walked in 24-hour windows, so a master away two days has every trade recovered, once, and streams."""
    old = await fake.master_trade(MASTER_KEY, "BTCUSDT", "BUY", Decimal("0.01"), market=SPOT)
    backdate(fake, old.order_id, days=1.5)
    await fake.master_trade(MASTER_KEY, "BTCUSDT", "SELL", Decimal("0.005"), market=SPOT)  # today
    master = Master(fake, "binance", datetime.now(UTC) - timedelta(days=2), ["BTC/USDT"])
    try:
        master.start()
        await until(lambda: len(master.fills) == 2)

        assert [(f.side, f.quantity) for f in master.fills] == [
            (Side.BUY, Decimal("0.01")),
            (Side.SELL, Decimal("0.005")),
        ]
        assert master.listener.health.last_error is None and master.listener.health.reconnects == 0
        await until(lambda: master.listener.health.connected)
        await fake.master_trade(MASTER_KEY, "BTCUSDT", "SELL", Decimal("0.005"), market=SPOT)
        await until(lambda: len(master.fills) == 3)  # then streamed
    finally:
        await master.stop()


async def test_a_futures_gap_past_ninety_days_recovers_the_trades_whose_orders_are_gone(fake: FakeBinance) -> None:
    """USD-M keeps trades six months but finds no order created more than 90 days ago (-2013, Query
    Order): such trades are recovered from the trade alone (a market order of unknown flags) and the
    missing order is recorded on the listener's health, never a wedge of reconnects."""
    old = await fake.master_trade(
        MASTER_KEY, "BTCUSDT", "BUY", Decimal("0.010"), order_type="LIMIT", price=Decimal(60000)
    )
    backdate(fake, old.order_id, days=100)
    await fake.master_trade(MASTER_KEY, "BTCUSDT", "SELL", Decimal("0.004"), reduce_only=True)  # today
    master = Master(fake, "binanceusdm", datetime.now(UTC) - timedelta(days=120), ["BTC/USDT:USDT"])
    try:
        master.start()
        await until(lambda: len(master.fills) == 2)

        first, second = master.fills
        assert (first.side, first.quantity, first.order_type) == (Side.BUY, Decimal("0.01"), OrderType.MARKET)
        assert (second.side, second.reduce_only) == (Side.SELL, True)
        assert master.listener.health.reconnects == 0
        assert f"order {old.order_id}" in (master.listener.health.last_error or "")
    finally:
        await master.stop()


async def test_a_gap_past_six_months_recovers_what_binance_keeps_and_records_the_rest(fake: FakeBinance) -> None:
    """userTrades: "Only support querying trade in the past 6 months" (§4): the recovery starts
    there and says that what came before cannot be recovered."""
    recent = await fake.master_trade(MASTER_KEY, "BTCUSDT", "BUY", Decimal("0.010"))
    backdate(fake, recent.order_id, days=30)
    master = Master(fake, "binanceusdm", datetime.now(UTC) - timedelta(days=200), ["BTC/USDT:USDT"])
    try:
        master.start()
        await until(lambda: len(master.fills) == 1)

        assert "cannot be recovered: recovery reaches six months back" in (master.listener.health.last_error or "")
        assert master.listener.health.reconnects == 0
    finally:
        await master.stop()


async def test_a_quiet_spot_master_dropped_at_the_24_hour_mark_reconnects_and_recovers() -> None:
    """Binance closes a user-data connection at 24 hours (§3; the fake's, shortened): the master's
    listener reconnects, recovers what the gap held over REST and streams on."""
    async with FakeBinance(socket_seconds=1.0) as fake:
        fake.add_account(MASTER_KEY, MASTER_SECRET)
        master = Master(fake, "binance", datetime.now(UTC) - timedelta(days=2), ["BTC/USDT"])
        try:
            master.start()
            await until(lambda: master.listener.health.connected)
            await until(lambda: master.listener.health.reconnects >= 1)  # the venue closed it

            await fake.master_trade(MASTER_KEY, "BTCUSDT", "BUY", Decimal("0.01"), market=SPOT)
            await until(lambda: len(master.fills) == 1)
            await until(lambda: master.listener.health.reconnects >= 2)  # and again: every trade seen once
            await until(lambda: master.listener.health.connected)
            assert [f.quantity for f in master.fills] == [Decimal("0.01")]
        finally:
            await master.stop()
