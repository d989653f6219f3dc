"""Angel One's market rules through the real smartapi-python against the stricter fake SmartAPI:
sessions and after-market orders, price bands, read limits, "order not found", the socket's egress."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

import pytest

from core.errors import InvalidOrder, NotAdmitted
from core.model import OrderIntent, OrderType, Side, SkipReason
from core.throttle import RateLimit, Throttle
from core.venues.angelone.accounts import AngelOneAccounts
from core.venues.angelone.credentials import AngelOneEndpoints
from core.venues.angelone.sessions import TradingCalendar
from tests.fakes.smartapi import (
    AMO_STATUS,
    FOLLOWER,
    IST,
    FakeAccount,
    FakeSmartApi,
    credentials_of,
    fresh_accounts,
)
from tests.harness import LOOPBACK_ALLOWED


@pytest.fixture
def fake():
    server = FakeSmartApi(fresh_accounts()).start()
    yield server
    server.stop()


def make_accounts(fake: FakeSmartApi) -> AngelOneAccounts:
    endpoints = AngelOneEndpoints(
        rest_root=fake.rest_root,
        order_updates_url=fake.ws_url,
        scrip_master_url=fake.scrip_master_url,
        egress=LOOPBACK_ALLOWED,  # the fake's egress proxies listen on 127.0.0.x
    )
    return AngelOneAccounts(
        endpoints,
        login_limiter=Throttle([RateLimit(1, 0.0)]),
        session_options={"backoff_base": 0.01},
        clock=fake.clock,
    )


def buy(price: str = "612.35", *, protected: bool = True, after_market: bool = False, cid: str = "ct-1-9-0"):
    return OrderIntent(
        follow_id=1,
        client_order_id=cid,
        symbol="NSE:SBIN-EQ",
        side=Side.BUY,
        quantity=Decimal(10),
        order_type=OrderType.LIMIT,
        price=Decimal(price),
        protected=protected,
        after_market=after_market,
    )


def at(hour: int, minute: int, second: int = 0, day: int = 8) -> datetime:
    return datetime(2026, 12, day, hour, minute, second, tzinfo=IST)


# -- sessions and after-market orders ---------------------------------------------------------------


async def test_a_copy_after_the_close_is_sent_as_an_after_market_order(fake):
    fake.market_time = at(16, 30)
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))

    prepared = await venue.prepare_order(buy(after_market=True))
    report = await venue.place_order(prepared)

    (order,) = fake.orders_of(FOLLOWER.client_code)
    assert (order["orderid"], order["variety"], order["status"]) == (report.venue_order_id, "AMO", AMO_STATUS)
    fake.open_market(FOLLOWER.client_code)
    assert fake.orders_of(FOLLOWER.client_code)[0]["status"] == "open"


async def test_a_copy_after_the_close_without_after_market_orders_is_not_admitted_market_closed(fake):
    fake.market_time = at(16, 30)
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))

    with pytest.raises(NotAdmitted) as refused:
        await venue.prepare_order(buy())

    assert refused.value.reason is SkipReason.MARKET_CLOSED
    assert "NSE closed at 15:30" in str(refused.value)
    assert fake.order_requests == []


async def test_an_order_in_the_last_seconds_before_the_close_is_not_sent(fake):
    """A re-price at 15:29:5x would reach the exchange after its close: it is not sent."""
    fake.market_time = at(15, 29, 55)
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))

    with pytest.raises(NotAdmitted) as refused:
        await venue.prepare_order(buy())

    assert refused.value.reason is SkipReason.MARKET_CLOSED
    assert fake.order_requests == []


async def test_a_trading_holiday_is_closed_even_in_session_hours(fake):
    fake.market_time = at(11, 0, day=25)  # Christmas 2026: NSE's holiday list
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))

    with pytest.raises(NotAdmitted) as refused:
        await venue.prepare_order(buy())

    assert refused.value.reason is SkipReason.MARKET_CLOSED and "holiday" in str(refused.value)


async def test_an_after_market_order_outside_the_amo_window_is_not_admitted(fake):
    fake.market_time = at(2, 0)  # between midnight and 05:00: no broker takes AMOs
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))

    with pytest.raises(NotAdmitted) as refused:
        await venue.prepare_order(buy(after_market=True))

    assert refused.value.reason is SkipReason.MARKET_CLOSED and "after-market" in str(refused.value)


async def test_mcx_trades_in_the_evening_when_nse_is_closed(fake):
    fake.market_time = at(20, 0)
    fake.last_prices["CRUDEOIL24DECFUT"] = "6000"
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))
    crude = replace(buy("6000"), symbol="MCX:CRUDEOIL24DECFUT", quantity=Decimal(100))

    await venue.place_order(await venue.prepare_order(crude))

    assert fake.orders_of(FOLLOWER.client_code)[0]["status"] == "open"


def test_the_packaged_calendar_knows_mcx_trades_only_its_evening_session_on_holi():
    calendar = TradingCalendar.packaged()
    assert calendar.admission("MCX", at(11, 0, day=3).replace(month=3)).verdict == "closed"
    assert calendar.admission("MCX", at(18, 0, day=3).replace(month=3)).verdict == "open"
    assert calendar.admission("NSE", at(18, 0, day=3).replace(month=3)).verdict == "after_market"


# -- price bands ------------------------------------------------------------------------------------


async def test_a_protected_price_outside_the_band_is_not_admitted_with_the_numbers(fake):
    fake.price_bands["SBIN-EQ"] = (Decimal("550.00"), Decimal("610.00"))
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))

    with pytest.raises(NotAdmitted) as refused:
        await venue.prepare_order(buy("612.35"))

    assert refused.value.reason is SkipReason.PRICE_BAND
    assert "612.35" in str(refused.value) and "550" in str(refused.value) and "610" in str(refused.value)
    assert fake.order_requests == []


async def test_a_protected_price_inside_the_band_is_sent(fake):
    fake.price_bands["SBIN-EQ"] = (Decimal("550.00"), Decimal("650.00"))
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))

    await venue.place_order(await venue.prepare_order(buy("612.35")))

    assert [r.errorcode for r in fake.order_requests] == [""]


# -- reads ------------------------------------------------------------------------------------------


async def test_book_reads_of_a_200_follower_fan_out_never_exceed_the_read_limit():
    """200 follower clients each place a copy and look it up twice at once (a send and a settle
    pass): every client's order-book reads are spaced to SmartAPI's one a second."""
    followers = [
        FakeAccount(
            f"key-{n:03d}", f"F9{n:04d}", "4821", FOLLOWER.totp_secret, static_ip="127.0.0.1" if n == 0 else None
        )
        for n in range(200)
    ]
    server = FakeSmartApi(followers, unique_static_ips=False).start()
    try:
        for account in followers:
            server.accounts[account.client_code].static_ip = "127.0.0.1"
        accounts = make_accounts(server)
        venues = [accounts.venue(credentials_of(account)) for account in followers]

        async def copy(venue) -> None:
            order = await venue.place_order(buy(cid=f"ct-{venue.session.client_code}"))
            found = await asyncio.gather(*(venue.fetch_order(order.client_order_id, "NSE:SBIN-EQ") for _ in range(2)))
            assert all(report is not None for report in found)

        await asyncio.gather(*(copy(venue) for venue in venues))

        assert server.read_refusals["order_book"] == 0
        assert server.reads["order_book"] == 400
    finally:
        server.stop()


# -- answers ----------------------------------------------------------------------------------------


async def test_order_not_found_is_an_order_answer_not_an_expired_session(fake):
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))

    with pytest.raises(InvalidOrder, match="Order not found"):
        await venue.session.call("cancelling an order", "cancelOrder", "250000000009999", "NORMAL")

    assert fake.logins[FOLLOWER.client_code] == 1  # no second login: the session was fine


# -- egress -----------------------------------------------------------------------------------------


async def test_the_order_update_socket_leaves_through_the_accounts_egress(fake):
    fake.register_static_ip(FOLLOWER.client_code, "127.0.0.7")
    egress = fake.start_egress_proxy("127.0.0.7")
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER, egress_proxy=egress.url, static_ip="127.0.0.7"))
    events = venue.order_events()
    assert events is not None
    stream = events.changes()
    reading = asyncio.ensure_future(stream.__anext__())
    for _ in range(100):
        if fake.order_update_sources:
            break
        await asyncio.sleep(0.05)
    reading.cancel()
    await events.close()

    assert fake.order_update_sources == ["127.0.0.7"]
