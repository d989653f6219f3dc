"""CcxtFillListener: real ccxt.pro (binanceusdm) user-data stream against the local fake Binance."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from core.model import Fill, FillStatus, MasterOrderChange, MasterOrderEvent, OrderType, PositionSide, Side
from core.venues.ccxt.listener import CcxtFillListener
from core.venues.ccxt.markets import CcxtMarketsCache
from core.venues.ccxt.venue import CcxtVenue
from tests.fakes.binance import FakeBinance

MASTER_KEY, MASTER_SECRET = "master-key", "master-secret"
MASTER_ID = 7


async def until(condition: Callable[[], bool], limit_seconds: float = 5.0) -> None:
    """Poll ``condition``; the timeout only turns a hang into a failure."""
    async with asyncio.timeout(limit_seconds):
        while not condition():  # noqa: ASYNC110 (a condition on state a websocket changes, no event to await)
            await asyncio.sleep(0.01)


class Harness:
    """A running listener whose fills are collected; ``checkpoint`` is the last collected fill."""

    def __init__(self, fake: FakeBinance, **listener_kwargs) -> None:
        self.fake = fake
        self.fills: list[Fill] = []
        self.order_events: list[MasterOrderEvent] = []
        self.checkpoint_override: datetime | None = None
        self.venue = CcxtVenue.create(
            "binanceusdm",
            MASTER_KEY,
            MASTER_SECRET,
            markets_cache=CcxtMarketsCache(),
            url_overrides=fake.url_overrides(),
            streaming=True,
            enable_rate_limit=False,
            options=listener_kwargs.pop("options", {}),
        )
        listener_kwargs.setdefault("heartbeat_seconds", 5.0)
        listener_kwargs.setdefault("backoff_initial", 0.05)
        listener_kwargs.setdefault("symbols", ["BTC/USDT:USDT"])
        self.listener = CcxtFillListener(self.venue, master_id=MASTER_ID, checkpoint=self.checkpoint, **listener_kwargs)
        self._task: asyncio.Task[None] | None = None

    async def checkpoint(self) -> datetime | None:
        if self.fills:
            return self.fills[-1].executed_at
        return self.checkpoint_override

    async def _collect(self) -> None:
        async for event in self.listener.fills():
            if isinstance(event, MasterOrderEvent):
                self.order_events.append(event)
            else:
                self.fills.append(event)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._collect())
        await until(lambda: self.listener.health.connected)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.venue.close()

    def trade_ids(self) -> list[str]:
        return [f.trade_id for f in self.fills]


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance() as server:
        server.add_account(MASTER_KEY, MASTER_SECRET)
        yield server


@pytest.fixture
async def harness(fake: FakeBinance) -> AsyncIterator[Harness]:
    running = Harness(fake)
    yield running
    await running.stop()


async def test_streamed_executions_become_fills_with_increments(fake: FakeBinance, harness: Harness) -> None:
    await harness.start()

    order = await fake.master_trade(
        MASTER_KEY,
        "BTCUSDT",
        "BUY",
        Decimal("0.010"),
        fills=[Decimal("0.004"), Decimal("0.006")],
        price=Decimal("60000.5"),
    )
    await until(lambda: len(harness.fills) == 2)

    first, second = harness.fills
    assert [f.quantity for f in harness.fills] == [Decimal("0.004"), Decimal("0.006")]
    assert [f.status for f in harness.fills] == [FillStatus.PARTIALLY_FILLED, FillStatus.FILLED]
    assert first.trade_id != second.trade_id and first.order_id == second.order_id == str(order.order_id)
    assert (first.master_id, first.venue, first.symbol, first.side) == (
        MASTER_ID,
        f"binanceusdm:{MASTER_ID}",
        "BTC/USDT:USDT",
        Side.BUY,
    )
    assert (first.price, first.order_type, first.reduce_only) == (Decimal("60000.5"), OrderType.MARKET, False)
    assert first.executed_at.tzinfo is not None
    assert harness.listener.health.last_event_at is not None


async def test_reduce_only_and_limit_orders_carry_their_flags(fake: FakeBinance, harness: Harness) -> None:
    await harness.start()

    await fake.master_trade(MASTER_KEY, "BTCUSDT", "BUY", Decimal("0.010"), order_type="LIMIT", price=Decimal("59000"))
    await fake.master_trade(MASTER_KEY, "BTCUSDT", "SELL", Decimal("0.010"), reduce_only=True)
    await until(lambda: len(harness.fills) == 2)

    entry, exit_ = harness.fills
    assert (entry.order_type, entry.limit_price, entry.reduce_only) == (OrderType.LIMIT, Decimal("59000"), False)
    assert (exit_.side, exit_.reduce_only, exit_.status) == (Side.SELL, True, FillStatus.FILLED)


async def test_hedge_mode_fills_carry_the_masters_position_side_streamed_and_recovered(fake: FakeBinance) -> None:
    """ORDER_TRADE_UPDATE ``ps`` and userTrades ``positionSide``: a hedge-mode master's long and
    short are two positions, so each fill says which one it moves."""
    fake.accounts[MASTER_KEY].hedge_mode = True
    harness = Harness(fake)
    try:
        await harness.start()
        await fake.master_trade(MASTER_KEY, "BTCUSDT", "BUY", Decimal("0.010"), position_side="LONG")
        await fake.master_trade(MASTER_KEY, "BTCUSDT", "SELL", Decimal("0.004"), position_side="SHORT")
        await until(lambda: len(harness.fills) == 2)
        await fake.drop_websockets(refuse_new=True)
        await until(lambda: not harness.listener.health.connected)
        await fake.master_trade(MASTER_KEY, "BTCUSDT", "BUY", Decimal("0.004"), position_side="SHORT")  # recovered
        fake.accept_websockets()
        await until(lambda: len(harness.fills) == 3)
    finally:
        await harness.stop()

    assert [(f.side, f.position_side, f.reduce_only) for f in harness.fills] == [
        (Side.BUY, PositionSide.LONG, False),
        (Side.SELL, PositionSide.SHORT, False),  # opens a short: not an exit of the long
        (Side.BUY, PositionSide.SHORT, True),
    ]


async def test_fills_during_a_dropped_socket_are_recovered_once(fake: FakeBinance, harness: Harness) -> None:
    await harness.start()
    await fake.master_trade(MASTER_KEY, "BTCUSDT", "BUY", Decimal("0.010"))
    await until(lambda: len(harness.fills) == 1)

    await fake.drop_websockets(refuse_new=True)
    await until(lambda: not harness.listener.health.connected)
    gap_order = await fake.master_trade(
        MASTER_KEY, "BTCUSDT", "BUY", Decimal("0.020"), fills=[Decimal("0.005"), Decimal("0.015")]
    )
    assert len(harness.fills) == 1
    fake.accept_websockets()
    await until(lambda: harness.listener.health.connected and len(harness.fills) == 3)
    await fake.master_trade(MASTER_KEY, "BTCUSDT", "SELL", Decimal("0.030"), reduce_only=True)
    await until(lambda: len(harness.fills) == 4)

    ids = harness.trade_ids()
    assert len(ids) == len(set(ids)) == 4
    recovered = harness.fills[1:3]
    assert [f.order_id for f in recovered] == [str(gap_order.order_id)] * 2
    assert [(f.quantity, f.status) for f in recovered] == [
        (Decimal("0.005"), FillStatus.PARTIALLY_FILLED),
        (Decimal("0.015"), FillStatus.FILLED),
    ]
    assert harness.listener.health.reconnects >= 1
    assert fake.count("GET", "/fapi/v1/userTrades") >= 2


async def test_start_recovers_fills_after_the_checkpoint_only(fake: FakeBinance, harness: Harness) -> None:
    await fake.master_trade(MASTER_KEY, "ETHUSDT", "BUY", Decimal("1.000"))
    await asyncio.sleep(0.01)
    harness.checkpoint_override = datetime.now(UTC)
    await asyncio.sleep(0.01)
    await fake.master_trade(MASTER_KEY, "ETHUSDT", "SELL", Decimal("0.400"), reduce_only=True)

    await harness.start()
    await until(lambda: len(harness.fills) == 1)

    [recovered] = harness.fills
    assert (recovered.symbol, recovered.side, recovered.quantity, recovered.reduce_only) == (
        "ETH/USDT:USDT",
        Side.SELL,
        Decimal("0.4"),
        True,
    )


async def test_silent_socket_is_treated_as_dead_and_reconnected(fake: FakeBinance) -> None:
    harness = Harness(fake, heartbeat_seconds=0.6)
    try:
        await harness.start()
        fake.silence_websockets()
        await until(lambda: harness.listener.health.reconnects >= 1)
        await until(lambda: harness.listener.health.connected)

        await fake.master_trade(MASTER_KEY, "BTCUSDT", "BUY", Decimal("0.010"))
        await until(lambda: len(harness.fills) == 1)

        assert harness.listener.health.last_error is not None
    finally:
        await harness.stop()


async def test_listen_key_is_kept_alive_through_the_overridden_urls(fake: FakeBinance) -> None:
    harness = Harness(fake, listen_key_refresh_seconds=0.05, heartbeat_seconds=0.8)
    try:
        await harness.start()
        await until(lambda: fake.count("PUT", "/fapi/v1/listenKey") >= 3)
        assert fake.count("POST", "/fapi/v1/listenKey") == 1
        assert harness.listener.health.reconnects == 0
    finally:
        await harness.stop()


async def test_a_spot_venue_without_streaming_is_refused(fake: FakeBinance) -> None:
    venue = CcxtVenue.create(
        "binance", MASTER_KEY, MASTER_SECRET, markets_cache=CcxtMarketsCache(), url_overrides=fake.url_overrides()
    )
    try:
        with pytest.raises(ValueError, match="streaming=True"):
            CcxtFillListener(venue, master_id=1, checkpoint=lambda: None)  # type: ignore[arg-type, return-value]
    finally:
        await venue.close()


def test_journal_key_separates_symbols_and_masters_sharing_a_trade_id() -> None:
    from core.venues.ccxt.listener import journal_key

    keys = {
        journal_key("binanceusdm", 1, "BTC/USDT:USDT", "123"),
        journal_key("binanceusdm", 1, "ETH/USDT:USDT", "123"),  # Binance numbers trades per symbol
        journal_key("binanceusdm", 2, "BTC/USDT:USDT", "123"),  # the other side of the same trade
    }
    assert len(keys) == 3
    assert journal_key("binanceusdm", 1, "BTC/USDT:USDT", "123") == journal_key(
        "binanceusdm", 1, "BTC/USDT:USDT", "123"
    )


# --------------------------------------------------------------------------- complete streams (issue 13)


def _backdate(fake: FakeBinance, order_id: int, days: float) -> None:
    """The order's trades (and their income rows) happened ``days`` ago."""
    account = fake.accounts[MASTER_KEY]
    shift = int(days * 86_400_000)
    trade_ids = set()
    for trade in account.trades:
        if trade.order_id == order_id:
            trade.time_ms -= shift
            trade_ids.add(trade.trade_id)
    for row in account.income:
        if row.trade_id in trade_ids:
            row.time_ms -= shift


async def test_a_flat_master_with_no_known_symbol_streams_its_first_trade_at_once(fake: FakeBinance) -> None:
    harness = Harness(fake, symbols=[])
    try:
        await harness.start()
        await fake.master_trade(MASTER_KEY, "SOLUSDT", "BUY", Decimal("1"))
        await until(lambda: len(harness.fills) == 1, limit_seconds=10)  # a bound on a hang, not a timing

        # never asked for trades without a symbol: ccxt refuses that before sending (binanceusdm
        # fetch_my_trades requires a symbol), which would have been an error and a reconnect. Whether the
        # trade came on the socket or through a recovery (the socket may subscribe after the trade) is not
        # this test's subject.
        assert harness.listener.health.reconnects == 0 and harness.listener.health.last_error is None
    finally:
        await harness.stop()


async def test_symbols_traded_and_closed_while_away_are_found_in_the_income_history(fake: FakeBinance) -> None:
    harness = Harness(fake, symbols=[])
    harness.checkpoint_override = datetime.now(UTC)
    await asyncio.sleep(0.01)
    await fake.master_trade(MASTER_KEY, "ETHUSDT", "BUY", Decimal("1.000"))
    await fake.master_trade(MASTER_KEY, "ETHUSDT", "SELL", Decimal("1.000"), reduce_only=True)  # flat again
    try:
        await harness.start()
        await until(lambda: len(harness.fills) == 2)

        assert [(f.symbol, f.side) for f in harness.fills] == [
            ("ETH/USDT:USDT", Side.BUY),
            ("ETH/USDT:USDT", Side.SELL),
        ]
        assert fake.count("GET", "/fapi/v1/income") >= 1
    finally:
        await harness.stop()


async def test_recovery_walks_seven_day_windows_from_the_checkpoint_to_now(fake: FakeBinance) -> None:
    harness = Harness(fake)
    harness.checkpoint_override = datetime.now(UTC) - timedelta(days=20)
    old = await fake.master_trade(MASTER_KEY, "BTCUSDT", "BUY", Decimal("0.010"))
    _backdate(fake, old.order_id, days=16)
    middle = await fake.master_trade(MASTER_KEY, "BTCUSDT", "BUY", Decimal("0.020"))
    _backdate(fake, middle.order_id, days=9)
    await fake.master_trade(MASTER_KEY, "BTCUSDT", "SELL", Decimal("0.005"), reduce_only=True)  # today
    try:
        await harness.start()
        await until(lambda: len(harness.fills) == 3)

        assert [f.quantity for f in harness.fills] == [Decimal("0.01"), Decimal("0.02"), Decimal("0.005")]
        assert fake.count("GET", "/fapi/v1/userTrades") >= 3  # one 7-day window each at least
    finally:
        await harness.stop()


async def test_recovery_that_finds_nothing_saves_a_checkpoint_before_the_socket_opened(fake: FakeBinance) -> None:
    saved: list[datetime] = []

    async def save(at: datetime) -> None:
        saved.append(at)

    harness = Harness(fake, save_checkpoint=save)
    before = datetime.now(UTC)
    try:
        await harness.start()
        await until(lambda: len(saved) == 1)
        assert before - timedelta(minutes=2) < saved[0] < before
    finally:
        await harness.stop()


async def test_an_expired_listen_key_reconnects_at_once(fake: FakeBinance) -> None:
    harness = Harness(fake, heartbeat_seconds=30.0)  # silence alone would take 30 s to notice
    try:
        await harness.start()
        await fake.expire_listen_key(MASTER_KEY)
        await until(lambda: fake.count("POST", "/fapi/v1/listenKey") == 2, limit_seconds=3)
        await until(lambda: harness.listener.health.connected, limit_seconds=3)

        await fake.master_trade(MASTER_KEY, "BTCUSDT", "BUY", Decimal("0.010"))
        await until(lambda: len(harness.fills) == 1, limit_seconds=3)
        assert harness.listener.health.reconnects == 1
    finally:
        await harness.stop()


# -- the master's orders: cancellations and amendments (ORDER_TRADE_UPDATE x=CANCELED / x=AMENDMENT) --


def _changes(harness: Harness) -> list[tuple[str, MasterOrderChange, Decimal | None]]:
    return [(e.order_id, e.change, e.price) for e in harness.order_events]


async def test_a_cancel_of_an_order_that_executed_is_yielded_after_its_fill(
    fake: FakeBinance, harness: Harness
) -> None:
    await harness.start()
    order = await fake.master_limit(MASTER_KEY, "BTCUSDT", "BUY", Decimal("0.010"), Decimal("59000"))
    await fake.fill_resting(MASTER_KEY, order.order_id, Decimal("0.004"))
    await fake.master_cancel(MASTER_KEY, order.order_id)
    await until(lambda: len(harness.order_events) == 1)
    assert [f.quantity for f in harness.fills] == [Decimal("0.004")]
    [cancel] = harness.order_events
    assert (cancel.master_id, cancel.order_id, cancel.symbol) == (MASTER_ID, str(order.order_id), "BTC/USDT:USDT")
    assert (cancel.change, cancel.price) == (MasterOrderChange.CANCELED, None)


async def test_an_order_cancelled_unfilled_or_filled_whole_yields_no_order_event(
    fake: FakeBinance, harness: Harness
) -> None:
    await harness.start()
    unfilled = await fake.master_limit(MASTER_KEY, "BTCUSDT", "BUY", Decimal("0.010"), Decimal("59000"))
    await fake.master_cancel(MASTER_KEY, unfilled.order_id)  # nothing executed: nothing was copied
    await fake.master_trade(MASTER_KEY, "BTCUSDT", "BUY", Decimal("0.010"))
    await until(lambda: len(harness.fills) == 1)
    assert harness.order_events == []


async def test_an_amended_price_is_yielded_a_quantity_alone_is_not(fake: FakeBinance, harness: Harness) -> None:
    await harness.start()
    order = await fake.master_limit(MASTER_KEY, "BTCUSDT", "BUY", Decimal("0.010"), Decimal("59000"))
    await fake.fill_resting(MASTER_KEY, order.order_id, Decimal("0.004"))
    # the execution seen first, as it is live: an order first seen already amended counts as moved
    # (its earlier price was not seen), which a quantity-only amendment seen first would then be
    await until(lambda: len(harness.fills) == 1)
    await fake.master_modify(MASTER_KEY, order.order_id, Decimal("0.012"), Decimal("59000"))  # quantity only
    await fake.master_modify(MASTER_KEY, order.order_id, Decimal("0.012"), Decimal("59400.5"))
    await until(lambda: len(harness.order_events) == 1)
    assert _changes(harness) == [(str(order.order_id), MasterOrderChange.AMENDED, Decimal("59400.5"))]


async def test_an_amendment_below_what_executed_is_a_cancel(fake: FakeBinance, harness: Harness) -> None:
    """Modify Order: "the order will be cancelled by the amendment" when partially filled and the
    new quantity <= executedQty (docs/research/binance.md §3)."""
    await harness.start()
    order = await fake.master_limit(MASTER_KEY, "BTCUSDT", "BUY", Decimal("0.010"), Decimal("59000"))
    await fake.fill_resting(MASTER_KEY, order.order_id, Decimal("0.004"))
    await fake.master_modify(MASTER_KEY, order.order_id, Decimal("0.004"), Decimal("59500"))
    await until(lambda: len(harness.order_events) == 1)
    assert _changes(harness) == [(str(order.order_id), MasterOrderChange.CANCELED, None)]
    assert fake.accounts[MASTER_KEY].orders[order.order_id].price == Decimal("59000")  # not moved: cancelled


async def test_an_ioc_limits_expired_rest_is_yielded_as_an_expiry(fake: FakeBinance, harness: Harness) -> None:
    await harness.start()
    order = await fake.master_limit(MASTER_KEY, "BTCUSDT", "BUY", Decimal("0.010"), Decimal("59000"))
    order.time_in_force = "IOC"
    await fake.fill_resting(MASTER_KEY, order.order_id, Decimal("0.004"))
    await fake._finish(fake.accounts[MASTER_KEY], order, "EXPIRED")  # what the matching engine does with the rest
    await until(lambda: len(harness.order_events) == 1)
    assert _changes(harness) == [(str(order.order_id), MasterOrderChange.EXPIRED, None)]


async def test_a_cancel_made_while_the_socket_was_down_is_found_at_reconnect(
    fake: FakeBinance, harness: Harness
) -> None:
    await harness.start()
    order = await fake.master_limit(MASTER_KEY, "BTCUSDT", "BUY", Decimal("0.010"), Decimal("59000"))
    await fake.fill_resting(MASTER_KEY, order.order_id, Decimal("0.004"))
    await until(lambda: len(harness.fills) == 1)
    await fake.drop_websockets(refuse_new=True)
    await until(lambda: not harness.listener.health.connected)
    await fake.master_cancel(MASTER_KEY, order.order_id)  # pushed to no socket
    fake.accept_websockets()
    await until(lambda: len(harness.order_events) == 1, limit_seconds=10)
    assert _changes(harness) == [(str(order.order_id), MasterOrderChange.CANCELED, None)]
    assert len(harness.fills) == 1  # the execution is not yielded twice


async def test_an_amendment_made_while_the_socket_was_down_moves_once_and_never_back(
    fake: FakeBinance, harness: Harness
) -> None:
    await harness.start()
    order = await fake.master_limit(MASTER_KEY, "BTCUSDT", "BUY", Decimal("0.010"), Decimal("59000"))
    await fake.fill_resting(MASTER_KEY, order.order_id, Decimal("0.004"))
    await until(lambda: len(harness.fills) == 1)
    await fake.drop_websockets(refuse_new=True)
    await until(lambda: not harness.listener.health.connected)
    await fake.master_modify(MASTER_KEY, order.order_id, Decimal("0.010"), Decimal("59500"))  # pushed to no socket
    fake.accept_websockets()
    await until(lambda: len(harness.order_events) == 1, limit_seconds=10)
    await fake.master_trade(MASTER_KEY, "BTCUSDT", "BUY", Decimal("0.001"))  # one more pass over ccxt's cache
    await until(lambda: len(harness.fills) == 2)
    assert _changes(harness) == [(str(order.order_id), MasterOrderChange.AMENDED, Decimal("59500"))]
