"""Binance USD-M commissions counted per execution: the real ccxt (binanceusdm) against the fake.

Binance's order answers (``POST``/``GET /fapi/v1/order``) carry no commission; each execution's
commission is in the order-update stream (``ORDER_TRADE_UPDATE`` ``n`` / ``N``) and in
``userTrades`` (``commission`` / ``commissionAsset``; docs/research/binance.md §3, §4). A copy is
recorded filled from its answer at once, its commission still to come; the tracker completes it
afterwards, off the send path, from the stream or one ``userTrades`` read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from sqlmodel import col, select

from core.copying.config import EngineConfig
from core.copying.path import OrderPath
from core.engine import CopyEngine
from core.journal import ReportedOrder
from core.model import CopyStatus, FeeStatus, Fill, OrderIntent, OrderState, OrderType, Side
from core.tracking import OrderStreams
from core.venues.ccxt.markets import CcxtMarketsCache
from core.venues.ccxt.venue import CcxtVenue
from storage.models import CopyExecution, CopyOrder, FollowPosition
from tests.fakes.binance import FakeBinance
from tests.harness import eventually

BTC = "BTC/USDT:USDT"
KEY, SECRET = "fee-key-1234", "fee-secret-abcd"
USER_TRADES = ("GET", "/fapi/v1/userTrades")
#: a tracking pass reads a commission still to come at once (not after waiting for the stream)
READ_AT_ONCE = EngineConfig(retry_delays=(0.001,), commission_stream_wait=timedelta(0))


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance() as server:
        yield server


@pytest.fixture
async def make_venue(fake: FakeBinance) -> AsyncIterator[Callable[..., Awaitable[CcxtVenue]]]:
    created: list[CcxtVenue] = []
    cache = CcxtMarketsCache()

    async def factory(exchange_id: str = "binanceusdm", **kwargs) -> CcxtVenue:
        kwargs.setdefault("retry_backoff", 0.01)
        venue = CcxtVenue.create(
            exchange_id,
            KEY,
            SECRET,
            markets_cache=cache,
            url_overrides=fake.url_overrides(),
            enable_rate_limit=False,
            **kwargs,
        )
        created.append(venue)
        return venue

    yield factory
    for venue in created:
        await venue.close()


class OneVenue:
    """Every follow's venue is the one ccxt account under test."""

    def __init__(self, venue: CcxtVenue) -> None:
        self.venue = venue

    async def venue_for(self, credential_id: str) -> CcxtVenue:
        return self.venue

    async def open_many(self, credential_ids, *, warm_up: bool = False) -> None:
        return None


def order(cid: str, side: Side = Side.BUY, quantity: str = "0.010", **overrides) -> OrderIntent:
    return OrderIntent(1, cid, BTC, side, Decimal(quantity), reference_price=Decimal(60000), **overrides)


async def test_a_filled_futures_order_reports_its_commission_to_come_and_one_read_completes_it(
    fake: FakeBinance, make_venue
) -> None:
    """0.01 BTC at 60000 with the fake's 0.04 %: the answer says the commission is to come (no read
    while placing); it is 0.24 USDT, read from userTrades by order id once."""
    fake.add_account(KEY, SECRET)
    venue = await make_venue()

    ack = await venue.place_order(order("fee-1"))

    assert (ack.state, ack.filled_quantity, ack.fee, ack.fee_pending) == (OrderState.FILLED, Decimal("0.01"), 0, True)
    assert fake.count(*USER_TRADES) == 0
    assert await venue.completed_commission(ack, BTC, read=False) is None  # the stream showed nothing
    completed = await venue.completed_commission(ack, BTC, read=True)
    assert completed is not None and not completed.fee_pending and completed.base_fee == 0
    assert completed.fee == Decimal("0.24") == fake.accounts[KEY].trades[0].commission
    assert fake.count(*USER_TRADES) == 1
    assert (await venue.fetch_order("fee-1", BTC)).fee == Decimal("0.24")


async def test_an_order_without_a_fill_reads_no_trades(fake: FakeBinance, make_venue) -> None:
    fake.add_account(KEY, SECRET)
    venue = await make_venue()

    resting = await venue.place_order(order("rest-1", order_type=OrderType.LIMIT, price=Decimal(59000)))
    found = await venue.fetch_order("rest-1", BTC)

    assert resting.state is OrderState.ACKNOWLEDGED and found is not None and found.fee == 0
    assert fake.count(*USER_TRADES) == 0


async def test_a_futures_commission_paid_in_bnb_is_counted_at_the_bnb_price(fake: FakeBinance, make_venue) -> None:
    """An account paying futures fees with BNB (USD-M "BNB Fee Discount"): 0.24 USDT of commission is
    charged as 0.0004 BNB and counted back at the BNB perpetual's price (600)."""
    fake.add_account(KEY, SECRET, pay_fees_in_bnb=True, futures_bnb=Decimal("1"))
    venue = await make_venue()

    ack = await venue.completed_commission(await venue.place_order(order("bnb-1")), BTC, read=True)

    [trade] = fake.accounts[KEY].trades
    assert (trade.commission_asset, trade.commission) == ("BNB", Decimal("0.0004"))
    assert ack is not None and (ack.fee, ack.base_fee, ack.reason) == (Decimal("0.24"), 0, None)


async def test_commissions_seen_on_the_order_stream_need_no_trade_read(fake: FakeBinance, make_venue, h) -> None:
    """A resting copy filled in two parts while the follower's order stream is open: each
    execution's ``n`` is taken from ``ORDER_TRADE_UPDATE``, so reading the order costs no
    ``userTrades`` read, and the ledger's fees are the fake's commissions."""
    account = fake.add_account(KEY, SECRET)
    venue = await make_venue()
    follow_id, _ = await h.add_follower()
    provider = OneVenue(venue)
    engine = CopyEngine(OrderPath(h.journal, provider, h.events.append, EngineConfig(retry_delays=(0.001,))))
    streams = OrderStreams(engine, h.journal, provider, cap=10)
    limit = Fill(
        h.master_id, "binanceusdm:m", "t1", "o1", BTC, Side.BUY, Decimal("0.02"), Decimal(59900), OrderType.LIMIT
    )
    assert (await engine.on_fill(limit)).results[0].status is CopyStatus.PLACED
    try:
        await streams.refresh()
        await eventually(lambda: fake.open_websockets >= 1, "the follower's order stream")
        await asyncio.sleep(0.05)  # the subscription is in place before the trades

        async def fees_at(quantity: str) -> Decimal | None:
            async with h.db.session() as session:
                rows = await session.execute(select(FollowPosition).where(col(FollowPosition.follow_id) == follow_id))
                row = rows.scalars().first()
            return None if row is None or row.quantity != Decimal(quantity) else row.fees

        async def recorded(quantity: str) -> Decimal | None:
            for _ in range(200):  # no tracking pass runs: only the stream brings the fills in
                if (fees := await fees_at(quantity)) is not None:
                    return fees
                await asyncio.sleep(0.025)
            return None

        await fake.trade_through("BTCUSDT", Decimal(59900), Decimal("0.005"))
        assert await recorded("0.005") == account.trades[0].commission  # one execution, read before the next
        await fake.trade_through("BTCUSDT", Decimal(59900))
        # ccxt signals an order update only to a watch waiting at that moment (its client resolves the
        # pending future, else nothing): the stream may miss the second, the poll reads it. Either way the
        # look-up finds both executions' commissions from the stream.
        await engine.track()
        commissions = sum(t.commission for t in account.trades)
        assert await recorded("0.02") == commissions == Decimal("0.02") * 59900 * fake.fee_rate
        assert fake.count(*USER_TRADES) == 0
    finally:
        await streams.close()


async def test_realized_pnl_after_futures_fees_equals_the_fakes_commissions(fake: FakeBinance, make_venue, h) -> None:
    """Through the engine and the journal: a copied round trip on USD-M realizes the fake's gross
    PnL less every commission the fake charged, and the daily figure the loss limit uses is that."""
    account = fake.add_account(KEY, SECRET)
    venue = await make_venue()
    follow_id, _ = await h.add_follower(daily_loss_limit=Decimal(1000))
    engine = CopyEngine(OrderPath(h.journal, OneVenue(venue), h.events.append, READ_AT_ONCE))

    def fill(trade_id: str, side: Side, price: str) -> Fill:
        return Fill(h.master_id, "binanceusdm:m", trade_id, trade_id, BTC, side, Decimal("0.01"), Decimal(price))

    await engine.on_fill(fill("t1", Side.BUY, "60000"))
    fake.set_mark_price("BTCUSDT", Decimal("61000"))
    await engine.on_fill(fill("t2", Side.SELL, "61000"))
    await engine.track()  # the commissions, which the orders' answers do not carry

    async with h.db.session() as session:
        [row] = (
            await session.execute(select(FollowPosition).where(col(FollowPosition.follow_id) == follow_id))
        ).scalars()
    commissions = sum(t.commission for t in account.trades)
    gross = sum(t.realized_pnl for t in account.trades)
    assert (row.quantity, row.realized_pnl, gross) == (0, Decimal(10), Decimal(10))
    assert row.fees == commissions == Decimal("0.484")
    assert account.futures_wallet - Decimal(10000) == gross - commissions
    midnight = datetime.combine(datetime.now(UTC).date(), time(0), tzinfo=UTC)
    assert await h.journal.realized_since(follow_id, midnight) == gross - commissions  # the loss limit's figure


async def test_a_spot_commission_seen_on_the_order_stream_needs_no_trade_read(fake: FakeBinance, make_venue) -> None:
    """Spot's ``executionReport`` carries ``n`` / ``N`` too (over the WebSocket API, wrapped in
    ``{"subscriptionId", "event"}``): a resting buy filled later is looked up without ``myTrades``,
    its commission taken in the coin bought."""
    account = fake.add_account(KEY, SECRET)
    venue = await make_venue("binance")
    source = venue.order_events()
    seen: list[str] = []

    async def collect() -> None:
        async for change in source.changes():
            seen.append(change.client_order_id)

    intent = OrderIntent(
        1, "spot-rest", "BTC/USDT", Side.BUY, Decimal("0.01"), order_type=OrderType.LIMIT, price=Decimal(59000)
    )
    await venue.place_order(intent)
    task = asyncio.create_task(collect())
    try:
        await eventually(lambda: fake.open_websockets == 1, "the follower's order stream")
        await asyncio.sleep(0.05)  # subscribed before the trade
        await fake.trade_through("BTCUSDT", Decimal(59000))
        await eventually(lambda: "spot-rest" in seen, "the fill on the stream")

        found = await venue.fetch_order("spot-rest", "BTC/USDT")

        [trade] = account.trades
        assert found is not None and (found.filled_quantity, found.base_fee) == (Decimal("0.01"), trade.commission)
        assert found.fee == trade.commission * 59000
        assert fake.count("GET", "/api/v3/myTrades") == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await source.close()


def _master_fill(h, trade_id: str, side: Side = Side.BUY) -> Fill:
    return Fill(h.master_id, "binanceusdm:m", trade_id, trade_id, BTC, side, Decimal("0.01"), Decimal(60000))


async def _copy_order(h) -> CopyOrder:
    async with h.db.session() as session:
        [row] = (await session.execute(select(CopyOrder))).scalars()
    return row


async def _position_fees(h, follow_id: int) -> Decimal:
    async with h.db.session() as session:
        [row] = (
            await session.execute(select(FollowPosition).where(col(FollowPosition.follow_id) == follow_id))
        ).scalars()
    return row.fees


async def test_placing_a_futures_copy_reads_no_trades(fake: FakeBinance, make_venue, h) -> None:
    """The sender's path is the order and nothing else: a filled market copy is recorded filled from
    its answer, its commission still to come, with no userTrades read; the next tracking pass reads
    it once and the ledger's fees are the fake's commission."""
    account = fake.add_account(KEY, SECRET)
    venue = await make_venue()
    follow_id, _ = await h.add_follower()
    engine = CopyEngine(OrderPath(h.journal, OneVenue(venue), h.events.append, READ_AT_ONCE))

    [result] = (await engine.on_fill(_master_fill(h, "t1"))).results

    assert (result.status, result.filled_quantity) == (CopyStatus.FILLED, Decimal("0.01"))
    assert fake.count(*USER_TRADES) == 0
    row = await _copy_order(h)
    assert (row.state, row.fee, row.fee_status) == (OrderState.FILLED, 0, FeeStatus.PENDING)
    assert await _position_fees(h, follow_id) == 0
    told = len(h.events)

    await engine.track()

    [trade] = account.trades
    row = await _copy_order(h)
    assert (row.fee, row.fee_status) == (trade.commission, FeeStatus.COUNTED)
    assert await _position_fees(h, follow_id) == trade.commission == Decimal("0.24")
    assert fake.count(*USER_TRADES) == 1
    assert len(h.events) == told  # the follower was told of the fill once, not again for its fee


async def test_a_commission_that_arrives_after_the_fill_is_counted_once_across_a_restart(
    fake: FakeBinance, make_venue, h
) -> None:
    """A copy recorded filled with its commission to come, then the copier restarts (a new venue
    client, a new engine, the same journal): the new process completes the commission; the old one,
    still finishing its own pass, and a repeated fee-only report change nothing. Counted once in the
    order, the position, the execution /pnl replays and the loss limit's figure."""
    account = fake.add_account(KEY, SECRET)
    before = await make_venue()
    follow_id, _ = await h.add_follower(daily_loss_limit=Decimal(1000))
    old = CopyEngine(OrderPath(h.journal, OneVenue(before), h.events.append, READ_AT_ONCE))
    await old.on_fill(_master_fill(h, "t1"))
    assert (await _copy_order(h)).fee_status is FeeStatus.PENDING

    after = await make_venue()  # the restarted process: nothing of the old one's memory
    new = CopyEngine(OrderPath(h.journal, OneVenue(after), h.events.append, READ_AT_ONCE))
    [owed] = await h.journal.fees_to_come()
    await new.track()
    await old.track()  # nothing left to complete: no read
    completed = await after.completed_commission(owed.report(), BTC, read=True)
    assert completed is not None
    assert await h.journal.record_reports([ReportedOrder(completed)]) == [None]  # a repeat counts nothing

    [trade] = account.trades
    row = await _copy_order(h)
    assert (row.fee, row.fee_status) == (trade.commission, FeeStatus.COUNTED)
    assert await _position_fees(h, follow_id) == trade.commission
    async with h.db.session() as session:
        [execution] = (await session.execute(select(CopyExecution))).scalars()
    assert execution.fee == trade.commission
    midnight = datetime.combine(datetime.now(UTC).date(), time(0), tzinfo=UTC)
    assert await h.journal.realized_since(follow_id, midnight) == -trade.commission
    assert fake.count(*USER_TRADES) == 2  # the new process's pass, and the repeat made here


async def test_a_commission_that_never_comes_is_recorded_missing_with_its_reason(
    fake: FakeBinance, make_venue, h
) -> None:
    """userTrades refused past the give-up time: the copy is marked missing, the refusal in its
    reason, no longer read; the ledger counts no fee it does not know."""
    fake.add_account(KEY, SECRET)
    venue = await make_venue()
    follow_id, _ = await h.add_follower()
    config = EngineConfig(retry_delays=(0.001,), commission_stream_wait=timedelta(0), commission_give_up=timedelta(0))
    engine = CopyEngine(OrderPath(h.journal, OneVenue(venue), h.events.append, config))
    await engine.on_fill(_master_fill(h, "t1"))
    fake.fail_next(*USER_TRADES, status=400, code=-1102, msg="Mandatory parameter 'symbol' was not sent.")

    await engine.track()
    await engine.track()

    row = await _copy_order(h)
    assert (row.status, row.fee, row.fee_status) == (CopyStatus.FILLED, 0, FeeStatus.MISSING)
    assert row.reason is not None and "its commission never came" in row.reason and "-1102" in row.reason
    assert await _position_fees(h, follow_id) == 0
    assert await h.journal.fees_to_come() == []
