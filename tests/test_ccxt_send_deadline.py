"""Order requests signed for the sender's deadline, real ccxt against the fake Binance.

Binance refuses a request that reaches it after ``timestamp + recvWindow`` and its matching engine
takes none past that moment (docs/research/binance.md §9): the adapter signs every order with
``timestamp + recvWindow`` equal to the deadline the sender chose, so that, once the venue's own
clock is past it, a look-up's "no such order" is final.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import ccxt
import pytest

from core import errors
from core.model import OrderIntent, OrderType, Side, utcnow
from core.venues.base import SendWindow
from core.venues.ccxt.errors import map_ccxt_error
from core.venues.ccxt.markets import CcxtMarketsCache
from core.venues.ccxt.venue import CcxtVenue
from tests.fakes.binance import FUTURES, SPOT, FakeBinance
from tests.harness import eventually

BTC, SPOT_BTC = "BTC/USDT:USDT", "BTC/USDT"
KEY, SECRET = "deadline-key-0001", "deadline-secret"
ORDER = ("POST", "/fapi/v1/order")
EPOCH = datetime(1970, 1, 1, tzinfo=utcnow().tzinfo)


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance() as server:
        server.add_account(KEY, SECRET)
        yield server


@pytest.fixture
async def venues(fake: FakeBinance) -> AsyncIterator[dict[str, CcxtVenue]]:
    built = {
        exchange_id: CcxtVenue.create(
            exchange_id,
            KEY,
            SECRET,
            markets_cache=CcxtMarketsCache(),
            url_overrides=fake.url_overrides(),
            enable_rate_limit=False,
            retry_backoff=0.01,
        )
        for exchange_id in ("binanceusdm", "binance")
    }
    for venue in built.values():
        await venue.warm_up()
    yield built
    for venue in built.values():
        await venue.close()


@pytest.fixture
def venue(venues: dict[str, CcxtVenue]) -> CcxtVenue:
    return venues["binanceusdm"]


def intent(client_order_id: str = "ct-deadline-1", **overrides: Any) -> OrderIntent:
    values: dict[str, Any] = dict(
        follow_id=1,
        client_order_id=client_order_id,
        symbol=BTC,
        side=Side.BUY,
        quantity=Decimal("0.010"),
        reference_price=Decimal("60000"),
    )
    values.update(overrides)
    return OrderIntent(**values)


def ms(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def signed_deadlines(fake: FakeBinance, path: str = ORDER[1]) -> list[int]:
    return [int(r.params["timestamp"]) + int(r.params["recvWindow"]) for r in fake.order_requests if r.path == path]


async def test_only_the_binance_family_has_a_send_window(venues: dict[str, CcxtVenue]) -> None:
    bybit = CcxtVenue.create("bybit", "k", "s", markets_cache=CcxtMarketsCache())
    try:
        assert bybit.send_window is None and bybit.send_deadline() is None
    finally:
        await bybit.close()
    for venue in venues.values():
        assert venue.send_window == SendWindow(length=timedelta(seconds=5), settle=timedelta(seconds=2))


@pytest.mark.parametrize(
    ("exchange_id", "symbol", "path"), [("binanceusdm", BTC, ORDER[1]), ("binance", SPOT_BTC, "/api/v3/order")]
)
async def test_an_order_is_signed_to_expire_at_the_send_deadline(
    fake: FakeBinance, venues: dict[str, CcxtVenue], exchange_id: str, symbol: str, path: str
) -> None:
    venue = venues[exchange_id]
    deadline = venue.send_deadline()
    assert deadline is not None

    await venue.place_order(intent(symbol=symbol, send_deadline=deadline))

    assert signed_deadlines(fake, path) == [ms(deadline)]  # in whole ms, rounded down: never later
    [request] = fake.order_requests
    assert int(request.params["recvWindow"]) <= 5000
    market = FUTURES if exchange_id == "binanceusdm" else SPOT
    assert len(fake.accounts[KEY].orders_with_client_id(market, "ct-deadline-1")) == 1


async def test_without_a_deadline_an_order_is_sent_as_before(fake: FakeBinance, venue: CcxtVenue) -> None:
    await venue.place_order(intent())

    [request] = fake.order_requests
    assert request.params["recvWindow"] == "10000"  # ccxt's own default, not a deadline of ours


@pytest.mark.parametrize("left", [timedelta(milliseconds=900), timedelta(0), timedelta(seconds=-3)])
async def test_an_order_with_too_little_of_its_deadline_left_is_not_sent(
    fake: FakeBinance, venue: CcxtVenue, left: timedelta
) -> None:
    with pytest.raises(errors.NotSent):
        await venue.place_order(intent(send_deadline=venue.estimated_venue_time() + left))

    assert fake.count(*ORDER) == 0 and fake.order_requests == []


async def test_the_clock_cure_resends_for_the_same_deadline(fake: FakeBinance, venue: CcxtVenue) -> None:
    deadline = venue.send_deadline()
    assert deadline is not None
    fake.skew_clock(-20_000)  # the venue's clock is behind: the first request is "ahead", -1021

    await venue.place_order(intent(send_deadline=deadline))

    first, second = fake.order_requests
    assert signed_deadlines(fake) == [ms(deadline), ms(deadline)]  # recomputed, never extended
    assert int(second.params["timestamp"]) < int(first.params["timestamp"]) - 15_000  # on the resynced clock
    assert len(fake.accounts[KEY].orders_with_client_id(FUTURES, "ct-deadline-1")) == 1


async def test_the_clock_cure_does_not_send_when_the_deadline_has_passed_on_the_venue(
    fake: FakeBinance, venue: CcxtVenue
) -> None:
    deadline = venue.send_deadline()
    fake.skew_clock(20_000)  # the venue's clock is 20 s ahead: the deadline is already past there

    with pytest.raises(errors.NotSent):
        await venue.place_order(intent(send_deadline=deadline))

    assert fake.count(*ORDER) == 1  # the refused first request only
    assert fake.accounts[KEY].orders_with_client_id(FUTURES, "ct-deadline-1") == []


async def test_a_second_order_under_an_open_orders_client_id_is_a_duplicate(
    fake: FakeBinance, venues: dict[str, CcxtVenue]
) -> None:
    for venue, symbol in ((venues["binanceusdm"], BTC), (venues["binance"], SPOT_BTC)):
        resting = intent("ct-dup-1", symbol=symbol, order_type=OrderType.LIMIT, price=Decimal("50000"))
        await venue.place_order(resting)

        with pytest.raises(errors.DuplicateOrder, match="-4116" if venue.name == "binanceusdm" else "-2010"):
            await venue.place_order(resting)


async def test_an_order_still_on_its_way_to_the_matching_engine_holds_its_client_id(
    fake: FakeBinance, venue: CcxtVenue
) -> None:
    fake.accept_late_next(delay=0.5)
    with pytest.raises(errors.OrderStatusUnknown, match="-1007"):
        await venue.place_order(intent(send_deadline=venue.send_deadline()))

    with pytest.raises(errors.DuplicateOrder, match="-4116"):
        await venue.place_order(intent(send_deadline=venue.send_deadline()))
    await eventually(lambda: fake.late_orders[0].outcome == "placed", "the late order")
    assert (await venue.fetch_order("ct-deadline-1", BTC)) is not None


async def test_a_lost_order_past_its_deadline_on_the_venues_clock_never_executes(
    fake: FakeBinance, venue: CcxtVenue
) -> None:
    deadline = venue.estimated_venue_time() + timedelta(milliseconds=1200)
    fake.accept_late_next(delay=1.6)  # the answer is lost; the engine would take it after the deadline
    with pytest.raises(errors.OrderStatusUnknown):
        await venue.place_order(intent(send_deadline=deadline))
    [late] = fake.late_orders
    assert late.deadline_ms == ms(deadline)

    await eventually(lambda: late.outcome != "queued", "the late order reaching the matching engine")
    assert late.outcome == "expired"
    assert await venue.venue_time() > deadline
    assert await venue.fetch_order("ct-deadline-1", BTC) is None


async def test_venue_time_is_read_from_the_venue(fake: FakeBinance, venue: CcxtVenue) -> None:
    fake.skew_clock(30_000)

    assert await venue.venue_time() - utcnow() > timedelta(seconds=25)
    assert venue.estimated_venue_time() - utcnow() < timedelta(seconds=5)  # not measured yet
    await venue.exchange.load_time_difference()  # what the -1021 cure does
    assert venue.estimated_venue_time() - utcnow() > timedelta(seconds=25)
    assert fake.count("GET", "/fapi/v1/time") == 2


def test_ccxts_duplicate_order_id_is_a_duplicate_order() -> None:
    mapped = map_ccxt_error(ccxt.DuplicateOrderId("bybit duplicate"), exchange_id="bybit", placing_order=True)
    assert type(mapped) is errors.DuplicateOrder
