import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from bench.instant_venue import InstantVenue
from core.errors import DuplicateOrder, InsufficientFunds, InvalidOrder, NotSent, OrderStatusUnknown
from core.model import CopyStatus, FillStatus, OrderIntent, OrderState, OrderType, Side
from core.venues.base import SendWindow
from core.venues.paper.listener import PaperFillSource
from core.venues.paper.venue import PaperExchange
from tests.venue_contract import VenueContract

BTC = "BTC/USDT:USDT"
SPOT = "ETH/USDT"


class TestPaperVenueContract(VenueContract):
    @pytest.fixture
    def venue(self):
        return PaperExchange().account("acct", balance=D(100000))

    @pytest.fixture
    def listed_symbol(self):
        return BTC

    @pytest.fixture
    def price(self):
        return D(60000)


@pytest.fixture
def exchange():
    return PaperExchange()


def order(cid, side=Side.BUY, qty="0.01", symbol=BTC, **kw):
    return OrderIntent(1, cid, symbol, side, D(qty), **kw)


async def test_markets_are_shared_by_every_account(exchange):
    a, b = exchange.account("a"), exchange.account("b")
    assert (await a.market(BTC)) is (await b.market(BTC))


async def test_below_min_notional_is_refused(exchange):
    with pytest.raises(InvalidOrder, match="minimum"):
        await exchange.account("a").place_order(order("c1", qty="0.001"))  # 60 USDT < 100


async def test_reduce_only_may_not_open_or_flip(exchange):
    venue = exchange.account("a")
    with pytest.raises(InvalidOrder, match="reduce-only"):
        await venue.place_order(order("c1", Side.SELL, reduce_only=True))
    await venue.place_order(order("c2", Side.BUY, "0.01"))
    with pytest.raises(InvalidOrder):
        await venue.place_order(order("c3", Side.SELL, "0.02", reduce_only=True))
    await venue.place_order(order("c4", Side.SELL, "0.01", reduce_only=True))
    assert await venue.positions() == []


async def test_margin_is_checked_with_leverage(exchange):
    venue = exchange.account("a", balance=D(100), leverage=10)
    with pytest.raises(InsufficientFunds):
        await venue.place_order(order("c1", qty="0.02"))  # 1200 notional / 10 = 120 > 100
    await venue.place_order(order("c2", qty="0.01"))


async def test_spot_cannot_sell_what_is_not_held(exchange):
    venue = exchange.account("a", balance=D(1000))
    with pytest.raises(InsufficientFunds):
        await venue.place_order(order("c1", Side.SELL, "0.01", symbol=SPOT))
    await venue.place_order(order("c2", Side.BUY, "0.01", symbol=SPOT))
    await venue.place_order(order("c3", Side.SELL, "0.01", symbol=SPOT))
    assert await venue.positions() == []


async def test_realized_pnl_and_fees_move_the_balance(exchange):
    venue = exchange.account("a", balance=D(10000))
    await venue.place_order(order("c1", qty="0.1"))
    exchange.set_price(BTC, D(61000))
    await venue.place_order(order("c2", Side.SELL, "0.1"))
    assert venue.realized_pnl == D(100)
    assert venue.balance == D(10000) + D(100) - venue.fees_paid
    assert await venue.equity() == venue.balance


async def test_limit_order_rests_until_the_price_crosses(exchange):
    venue = exchange.account("a")
    ack = await venue.place_order(order("c1", qty="0.01", order_type=OrderType.LIMIT, price=D("59000.0")))
    assert ack.status is CopyStatus.PLACED
    exchange.set_price(BTC, D(58900))
    assert (await venue.fetch_order("c1", BTC)).status is CopyStatus.FILLED
    assert (await venue.positions())[0].quantity == D("0.01")


async def test_stop_order_triggers_on_the_stop_price(exchange):
    venue = exchange.account("a")
    await venue.place_order(order("c1", qty="0.01"))
    await venue.place_order(
        order("c2", Side.SELL, "0.01", order_type=OrderType.STOP_MARKET, stop_price=D(59000), reduce_only=True)
    )
    exchange.set_price(BTC, D(59500))
    assert (await venue.fetch_order("c2", BTC)).status is CopyStatus.PLACED
    exchange.set_price(BTC, D(58999))
    assert (await venue.fetch_order("c2", BTC)).status is CopyStatus.FILLED
    assert await venue.positions() == []


async def test_injected_lost_answer_books_the_order(exchange):
    venue = exchange.account("a")
    venue.fail_next(OrderStatusUnknown("timeout"), after_accepting=True)
    with pytest.raises(OrderStatusUnknown):
        await venue.place_order(order("c1"))
    assert (await venue.fetch_order("c1", BTC)).status is CopyStatus.FILLED


async def test_fill_stream_reports_each_execution(exchange):
    venue = exchange.account("master")
    stream = PaperFillSource(venue, master_id=7).fills()
    await venue.place_order(order("m1", qty="0.01"))
    await venue.place_order(order("m2", Side.SELL, "0.01", reduce_only=True))
    first, second = await anext(stream), await anext(stream)
    assert (first.master_id, first.side, first.quantity, first.status) == (7, Side.BUY, D("0.01"), FillStatus.FILLED)
    assert second.reduce_only and second.trade_id != first.trade_id
    assert first.venue == second.venue == "paper:master"


class Clock:
    """The paper venue's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_the_send_window_and_the_venue_time_are_the_paper_venues_own_clock():
    clock = Clock()
    venue = PaperExchange(clock=clock).account("a")

    assert venue.send_window == SendWindow(length=timedelta(milliseconds=500), settle=timedelta(0))
    assert venue.estimated_venue_time() == await venue.venue_time() == clock.now
    assert venue.send_deadline() == clock.now + timedelta(milliseconds=500)
    clock.now += timedelta(minutes=1)
    assert await venue.venue_time() == clock.now and venue.send_deadline() == clock.now + timedelta(milliseconds=500)


async def test_an_order_whose_send_deadline_has_passed_is_not_sent_and_nothing_is_booked():
    clock = Clock()
    venue = PaperExchange(clock=clock).account("a")
    deadline = venue.send_deadline()
    clock.now += timedelta(milliseconds=500)

    with pytest.raises(NotSent):
        await venue.place_order(replace(order("c1"), send_deadline=deadline))

    assert await venue.fetch_order("c1", BTC) is None
    clock.now -= timedelta(milliseconds=1)
    report = await venue.place_order(replace(order("c1"), send_deadline=deadline))  # sent again: safe
    assert report.status is CopyStatus.FILLED


async def test_a_deadline_the_latency_outlasts_is_refused_on_arrival():
    start, began = time.monotonic(), datetime(2026, 3, 2, 9, 15, tzinfo=UTC)

    def fast_clock() -> datetime:  # 100 venue seconds a second: the 0.1 s latency is 10 s
        return began + timedelta(seconds=(time.monotonic() - start) * 100)

    venue = PaperExchange(clock=fast_clock).account("a", latency=0.1)
    with pytest.raises(NotSent, match="refused on arrival"):
        await venue.place_order(replace(order("c1"), send_deadline=venue.send_deadline()))
    assert await venue.fetch_order("c1", BTC) is None


async def test_an_intent_without_a_send_deadline_is_placed_whatever_the_clock(exchange):
    assert (await exchange.account("a").place_order(order("c1"))).status is CopyStatus.FILLED


async def test_a_client_order_id_the_venue_already_holds_is_a_duplicate_order(exchange):
    venue = exchange.account("a")
    first = await venue.place_order(order("c1"))

    with pytest.raises(DuplicateOrder):
        await venue.place_order(order("c1"))
    assert (await venue.fetch_order("c1", BTC)) == first and len(await venue.positions()) == 1


async def test_the_benchmarks_instant_venue_takes_the_paper_send_window():
    venue = InstantVenue()
    late = replace(order("c1", reference_price=D(60000)), send_deadline=datetime.now(UTC) - timedelta(seconds=1))

    assert venue.send_window == PaperExchange().account("a").send_window
    with pytest.raises(NotSent):
        await venue.place_order(late)
    placed = await venue.place_order(replace(late, send_deadline=venue.send_deadline()))
    assert placed.state is OrderState.FILLED
