"""AngelOneVenue and its sessions, with the real smartapi-python against a local fake SmartAPI."""

from __future__ import annotations

import asyncio
import importlib
import logging
import socket
import sys
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import pyotp
import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from core.errors import (
    AuthenticationError,
    InvalidOrder,
    OrderStatusUnknown,
    RateLimited,
    TemporaryError,
    UnknownSymbol,
    UserError,
)
from core.model import CopyStatus, OrderIntent, OrderState, OrderType, Side
from core.throttle import RateLimit, Throttle
from core.venues.angelone.accounts import AngelOneAccounts
from core.venues.angelone.constants import IST, LOGIN_LIMITS, ProductType
from core.venues.angelone.credentials import AngelOneCredentials, AngelOneEndpoints, SecretRedactor
from core.venues.angelone.instruments import FreezeQuantities, InstrumentMaster
from core.venues.angelone.jobs import register_jobs
from core.venues.angelone.sdk import import_smartapi
from core.venues.angelone.venue import ordertag_for
from core.venues.base import ExitScope
from core.venues.catalog import clean_secrets, venue_spec
from tests.fakes.smartapi import FOLLOWER, SCRIP_MASTER_ROWS, FakeSmartApi, credentials_of, fresh_accounts
from tests.harness import LOOPBACK_ALLOWED
from tests.venue_contract import VenueContract

FAST_SESSIONS = {"backoff_base": 0.01}


@pytest.fixture
def fake():
    server = FakeSmartApi(fresh_accounts(), slow_answer_seconds=1.0).start()
    yield server
    server.stop()


def make_accounts(fake: FakeSmartApi, *, timeout: float = 5.0, **session_options) -> AngelOneAccounts:
    endpoints = AngelOneEndpoints(
        rest_root=fake.rest_root,
        order_updates_url=fake.ws_url,
        scrip_master_url=fake.scrip_master_url,
        request_timeout=timeout,
        egress=LOOPBACK_ALLOWED,
    )
    return AngelOneAccounts(
        endpoints,
        login_limiter=Throttle([RateLimit(1, 0.0)]),
        session_options={**FAST_SESSIONS, **session_options},
        clock=fake.clock,  # the market's clock: a trading morning unless a test moves it
    )


def intent(
    symbol: str = "NSE:SBIN-EQ",
    quantity: str = "10",
    order_type: OrderType = OrderType.LIMIT,  # Angel One takes no MARKET API order (since April 2026)
    *,
    price: str | None = "612.35",
    stop_price: str | None = None,
    client_order_id: str = "ct-1-42-7",
    follow_id: int = 1,
    side: Side = Side.BUY,
) -> OrderIntent:
    return OrderIntent(
        follow_id=follow_id,
        client_order_id=client_order_id,
        symbol=symbol,
        side=side,
        quantity=Decimal(quantity),
        order_type=order_type,
        price=Decimal(price) if price else None,
        stop_price=Decimal(stop_price) if stop_price else None,
    )


# -- login and sessions ---------------------------------------------------------------------------


async def test_validate_logs_in_with_the_totp_and_reads_profile_and_funds(fake):
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))

    await venue.validate()

    assert fake.logins[FOLLOWER.client_code] == 1
    assert fake.calls["profile"] >= 1 and fake.calls["rms"] == 1
    assert await venue.equity() == Decimal("250000.00")


async def test_login_with_a_wrong_totp_raises_authentication_error(fake):
    wrong_seed = pyotp.random_base32()
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER, totp_secret=wrong_seed))

    with pytest.raises(AuthenticationError, match="Invalid totp"):
        await venue.validate()
    assert fake.failed_logins == 1 and fake.logins[FOLLOWER.client_code] == 0


async def test_expired_token_triggers_exactly_one_login_and_one_retry(fake):
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))
    await venue.equity()
    fake.expire_sessions()

    assert await venue.equity() == Decimal("250000.00")
    assert fake.logins[FOLLOWER.client_code] == 2
    assert fake.calls["rms"] == 3  # first read, refused read, retried read


async def test_token_refused_again_after_login_is_not_retried_in_a_loop(fake):
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))
    await venue.equity()
    fake.fail_next("rms", "invalid_token", times=5)

    with pytest.raises(AuthenticationError, match="refused a fresh session"):
        await venue.equity()
    assert fake.logins[FOLLOWER.client_code] == 2
    assert fake.calls["rms"] == 3


async def test_concurrent_calls_refused_together_log_in_once(fake):
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))
    await venue.equity()
    fake.expire_sessions()

    await asyncio.gather(*(venue.equity() for _ in range(4)))

    assert fake.logins[FOLLOWER.client_code] == 2


async def test_refresh_due_sessions_logs_in_again_after_the_daily_logout(fake):
    now = [datetime(2024, 12, 20, 3, 0, tzinfo=UTC)]  # 08:30 IST
    accounts = make_accounts(fake, clock=lambda: now[0], daily_logout_ist=time(5, 0))
    venue = accounts.venue(credentials_of(FOLLOWER))
    await venue.equity()

    assert await accounts.refresh_due_sessions() == []
    now[0] += timedelta(hours=21)  # 05:30 IST the next day
    assert await accounts.refresh_due_sessions() == [FOLLOWER.client_code]
    assert await accounts.refresh_due_sessions() == []
    assert fake.logins[FOLLOWER.client_code] == 2


async def test_register_jobs_adds_the_session_refresh_and_instrument_reload():
    scheduler = AsyncIOScheduler()
    accounts = AngelOneAccounts()

    register_jobs(scheduler, accounts)

    assert {job.id for job in scheduler.get_jobs()} == {"angelone.refresh_sessions", "angelone.reload_instruments"}


async def test_login_limiter_spaces_logins_of_many_accounts():
    clock = [100.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    limiter = Throttle(LOGIN_LIMITS, clock=lambda: clock[0], sleep=fake_sleep)
    await asyncio.gather(*(limiter.acquire() for _ in range(4)))

    assert sorted(slept) == pytest.approx([1.1, 2.2, 3.3])


async def test_order_limiter_waits_for_the_tightest_window():
    clock = [0.0]

    async def advance(seconds: float) -> None:
        clock[0] += seconds

    limiter = Throttle((RateLimit(2, 1.0), RateLimit(3, 60.0)), clock=lambda: clock[0], sleep=advance)
    for _ in range(3):
        await limiter.acquire()
    assert clock[0] == pytest.approx(1.0)  # the third waited for the per-second window
    await limiter.acquire()
    assert clock[0] == pytest.approx(60.0)  # the fourth waited for the per-minute window


def test_credentials_name_what_is_missing_and_hide_secrets_in_repr():
    with pytest.raises(UserError, match="missing: pin"):
        AngelOneCredentials.from_mapping(credentials_of(FOLLOWER, pin=""))
    with pytest.raises(UserError, match="TOTP secret"):
        AngelOneCredentials.from_mapping(credentials_of(FOLLOWER, totp_secret="not base32 !"))
    text = repr(AngelOneCredentials.from_mapping(credentials_of(FOLLOWER)))
    assert FOLLOWER.client_code in text
    assert FOLLOWER.api_key not in text and FOLLOWER.pin not in text and FOLLOWER.totp_secret not in text


# -- instruments --------------------------------------------------------------------------------


async def test_market_rules_come_from_the_scrip_master_loaded_once(fake):
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))

    option = await venue.market("NFO:NIFTY24DEC24000CE")
    equity = await venue.market("nse:sbin-eq")
    crude = await venue.market("MCX:CRUDEOIL24DECFUT")
    await venue.market("BSE:SBIN")

    assert (option.quantity_step, option.price_tick, option.min_quantity, option.derivative) == (
        Decimal(25),
        Decimal("0.05"),
        Decimal(25),
        True,
    )
    assert (equity.symbol, equity.quantity_step, equity.derivative, equity.quote) == (
        "NSE:SBIN-EQ",
        Decimal(1),
        False,
        "INR",
    )
    assert crude.price_tick == Decimal(1)
    assert await venue.symbols() == {
        "NSE:SBIN-EQ",
        "BSE:SBIN",
        "NFO:NIFTY24DEC24000CE",
        "NFO:NIFTY29DEC2626000CE",
        "MCX:CRUDEOIL24DECFUT",
    }
    assert fake.scrip_master_downloads == 1


async def test_an_index_option_takes_at_most_its_freeze_quantity_in_whole_lots_per_order(fake):
    """NSE's freeze quantity (the packaged table: NIFTY 1,800 units) bounds one order; on NIFTY's lot of
    65 the most one order may ask for is 27 lots, 1,755 units (ICICI Direct: "the effective freeze
    quantity becomes 1,755"). Equities and MCX contracts have no freeze quantity in the table."""
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))

    nifty = await venue.market("NFO:NIFTY29DEC2626000CE")
    assert (nifty.quantity_step, nifty.max_quantity) == (Decimal(65), Decimal(1800))
    assert nifty.max_order_quantity(OrderType.LIMIT) == Decimal(1755)
    assert (await venue.market("NSE:SBIN-EQ")).max_order_quantity(OrderType.LIMIT) is None
    assert (await venue.market("MCX:CRUDEOIL24DECFUT")).max_quantity is None


def test_the_packaged_freeze_table_says_its_source_and_date_and_refuses_a_wrong_limit():
    table = FreezeQuantities.packaged()
    assert table.of("NFO", "NIFTY") == Decimal(1800) and table.of("NFO", "banknifty") == Decimal(600)
    assert table.of("NSE", "SBIN") is None
    assert table.as_of == date(2026, 2, 1) and "NSE" in table.source
    with pytest.raises(ValueError, match="NIFTY is not a positive whole number"):
        FreezeQuantities.parse({"as_of": "2026-02-01", "segments": {"NFO": {"NIFTY": "1800"}}})
    with pytest.raises(ValueError, match="unknown segment"):
        FreezeQuantities.parse({"as_of": "2026-02-01", "segments": {"XYZ": {"NIFTY": 1800}}})


async def test_positions_are_read_per_product_with_the_demat_holdings_and_an_exit_is_scoped_to_its_product(fake):
    """``position`` gives netqty per instrument and product (an INTRADAY sell of nothing held is a
    negative one), ``holding`` the demat shares; an exit closes only its own product's position."""
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER), product=ProductType.INTRADAY)
    sold = await venue.place_order(intent(side=Side.SELL, quantity="4", price="600"))
    fake.fill(FOLLOWER.client_code, sold.venue_order_id)
    fake.hold(FOLLOWER.client_code, "SBIN-EQ", 30, "550.5", t1=5)

    held = await venue.positions()

    assert [(p.symbol, p.quantity, p.product, p.balance) for p in held] == [
        ("NSE:SBIN-EQ", Decimal(-4), "INTRADAY", False),
        ("NSE:SBIN-EQ", Decimal(35), "DELIVERY", True),
    ]
    assert venue.bounds_exits(await venue.market("NSE:SBIN-EQ"))
    assert venue.exit_scope(1, None).product == "INTRADAY"
    assert "squares INTRADAY positions off" in (venue.exit_scope(1, "intraday").closed_by or "")
    assert venue.exit_scope(1, "DELIVERY") == ExitScope("DELIVERY")
    assert fake.reads["position"] == fake.reads["holding"] == 1


@pytest.mark.parametrize("symbol", ["CDS:USDINR24DECFUT", "NSE:NOSUCH-EQ", "SBIN-EQ"])
async def test_unlisted_or_malformed_symbols_are_unknown(fake, symbol):
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))
    with pytest.raises(UnknownSymbol):
        await venue.market(symbol)


async def test_instrument_master_reloads_on_a_new_day_and_keeps_the_old_list_if_that_fails():
    now = [datetime(2024, 12, 20, 3, 0, tzinfo=UTC)]
    downloads: list[str] = []
    failing = [False]

    def download(url: str):
        downloads.append(url)
        if failing[0]:
            raise OSError("offline")
        return SCRIP_MASTER_ROWS

    master = InstrumentMaster("http://scrip.test/master.json", download=download, clock=lambda: now[0])
    await master.instrument("NSE:SBIN-EQ")
    await master.instrument("NSE:SBIN-EQ")
    assert len(downloads) == 1 and master.loaded_on == date(2024, 12, 20)

    now[0] += timedelta(days=1)
    failing[0] = True
    assert (await master.instrument("NSE:SBIN-EQ")).token == "3045"
    await master.instrument("NSE:SBIN-EQ")  # within the retry delay: no new attempt
    assert len(downloads) == 2 and master.loaded_on == date(2024, 12, 20)

    failing[0] = False
    now[0] += timedelta(minutes=10)
    await master.instrument("NSE:SBIN-EQ")
    assert len(downloads) == 3 and master.loaded_on == now[0].astimezone(IST).date()


async def test_instrument_master_without_any_list_raises_temporary_error():
    def download(url: str):
        raise OSError("offline")

    with pytest.raises(TemporaryError):
        await InstrumentMaster("http://scrip.test/master.json", download=download).instrument("NSE:SBIN-EQ")


# -- orders -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order_type", "price", "stop_price", "variety", "angel_type", "sent_price", "sent_trigger"),
    [
        (OrderType.LIMIT, "612.33", None, "NORMAL", "LIMIT", "612.35", "0"),
        (OrderType.STOP_LIMIT, "615", "612.01", "STOPLOSS", "STOPLOSS_LIMIT", "615.00", "612.00"),
    ],
)
async def test_each_order_type_is_copied_with_variety_tick_rounding_and_tag(
    fake, order_type, price, stop_price, variety, angel_type, sent_price, sent_trigger
):
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER), follow_products={7: ProductType.DELIVERY})

    ack = await venue.place_order(
        intent(order_type=order_type, price=price, stop_price=stop_price, follow_id=7, client_order_id="ct-7-1001-abc")
    )

    [order] = fake.orders_of(FOLLOWER.client_code)
    assert ack.venue_order_id == order["orderid"] and ack.status is CopyStatus.PLACED
    assert (order["variety"], order["ordertype"], order["producttype"]) == (variety, angel_type, "DELIVERY")
    assert Decimal(order["price"]) == Decimal(sent_price) and Decimal(order["triggerprice"]) == Decimal(sent_trigger)
    assert (order["tradingsymbol"], order["symboltoken"], order["exchange"]) == ("SBIN-EQ", "3045", "NSE")
    assert order["ordertag"] == ordertag_for("ct-7-1001-abc") and len(order["ordertag"]) <= 20


@pytest.mark.parametrize(
    ("order_type", "stop_price", "time_in_force"),
    [(OrderType.MARKET, None, None), (OrderType.STOP_MARKET, "612.08", None), (OrderType.LIMIT, None, "IOC")],
)
async def test_market_stop_market_and_ioc_orders_are_refused_without_sending(
    fake, order_type, stop_price, time_in_force
):
    """Angel One refuses them for API orders since 1 April 2026 (docs/research/angelone.md): the
    engine sends protected limits instead, and the adapter never lets one through."""
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))
    order = replace(
        intent(
            order_type=order_type, stop_price=stop_price, price=None if order_type is not OrderType.LIMIT else "612.35"
        ),
        time_in_force=time_in_force,
    )
    with pytest.raises(InvalidOrder, match="refuses market, stop-market and IOC"):
        await venue.place_order(order)
    assert fake.order_requests == [] and fake.calls["place_order"] == 0


async def test_product_defaults_to_the_venue_setting(fake):
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER), product=ProductType.CARRYFORWARD)
    await venue.place_order(intent("NFO:NIFTY24DEC24000CE", "25", OrderType.LIMIT, price="101.25", side=Side.SELL))
    [order] = fake.orders_of(FOLLOWER.client_code)
    assert (order["producttype"], order["transactiontype"]) == ("CARRYFORWARD", "SELL")


async def test_a_quantity_of_one_point_four_lots_is_sent_as_one_lot(fake):
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))
    await venue.place_order(intent("NFO:NIFTY24DEC24000CE", "35", OrderType.LIMIT, price="101.25"))
    [order] = fake.orders_of(FOLLOWER.client_code)
    assert order["quantity"] == "25"


async def test_a_quantity_below_one_lot_is_refused_without_sending(fake):
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))
    with pytest.raises(InvalidOrder, match="below one lot"):
        await venue.place_order(intent("NFO:NIFTY24DEC24000CE", "24"))
    assert fake.calls["place_order"] == 0


async def test_take_profit_orders_are_refused_as_unsupported(fake):
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))
    with pytest.raises(InvalidOrder, match="take_profit_market"):
        await venue.place_order(intent(order_type=OrderType.TAKE_PROFIT_MARKET, stop_price="600"))


async def test_a_rate_limit_answer_is_retried_after_a_backoff(fake):
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))
    fake.fail_next("place_order", "rate_limit")

    ack = await venue.place_order(intent(order_type=OrderType.LIMIT, price="612.35"))

    assert fake.calls["place_order"] == 2
    assert [o["orderid"] for o in fake.orders_of(FOLLOWER.client_code)] == [ack.venue_order_id]


async def test_a_persistent_rate_limit_raises_rate_limited_with_a_retry_delay(fake):
    venue = make_accounts(fake, rate_limit_retries=2).venue(credentials_of(FOLLOWER))
    fake.fail_next("place_order", "rate_limit", times=3)

    with pytest.raises(RateLimited) as raised:
        await venue.place_order(intent())
    assert raised.value.retry_after and raised.value.retry_after > 0
    assert fake.calls["place_order"] == 3 and fake.orders_of(FOLLOWER.client_code) == []


async def test_an_order_refused_for_an_invalid_token_is_placed_once_after_login(fake):
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))
    await venue.equity()
    fake.expire_sessions()

    await venue.place_order(intent(order_type=OrderType.LIMIT, price="612.35"))

    assert len(fake.orders_of(FOLLOWER.client_code)) == 1 and fake.logins[FOLLOWER.client_code] == 2


async def found(venue, client_order_id: str, symbol: str = "NSE:SBIN-EQ"):
    """The order once ``fetch_order`` finds it (a late-recorded order shows after a while)."""
    for _ in range(200):  # 10 s: only a bound on a failing test
        if (report := await venue.fetch_order(client_order_id, symbol)) is not None:
            return report
        await asyncio.sleep(0.05)
    raise AssertionError(f"{client_order_id} never showed in the order book")


async def test_a_lost_answer_raises_status_unknown_and_the_late_order_is_found_by_its_tag(fake):
    venue = make_accounts(fake, timeout=0.3).venue(credentials_of(FOLLOWER))
    await venue.equity()
    fake.fail_next("place_order", "timeout", record_after=1.0)

    with pytest.raises(OrderStatusUnknown):
        await venue.place_order(intent(client_order_id="ct-1-77-lost"))
    assert await venue.fetch_order("ct-1-77-lost", "NSE:SBIN-EQ") is None  # not recorded yet
    await found(venue, "ct-1-77-lost")
    [order] = fake.orders_of(FOLLOWER.client_code)
    fake.fill(FOLLOWER.client_code, order["orderid"])
    ack = await venue.fetch_order("ct-1-77-lost", "NSE:SBIN-EQ")

    assert fake.calls["place_order"] == 1
    assert ack is not None and ack.venue_order_id == order["orderid"]
    assert (ack.status, ack.filled_quantity, ack.average_price) == (CopyStatus.FILLED, Decimal(10), Decimal("612.35"))


async def test_a_lost_answer_whose_order_is_never_recorded_stays_unknown_and_is_not_sent_again(fake):
    venue = make_accounts(fake, timeout=0.3).venue(credentials_of(FOLLOWER))
    await venue.equity()
    fake.fail_next("place_order", "timeout", recorded="never")

    with pytest.raises(OrderStatusUnknown):
        await venue.place_order(intent(client_order_id="ct-1-78-lost"))
    await asyncio.sleep(fake.slow_answer_seconds)

    assert await venue.fetch_order("ct-1-78-lost", "NSE:SBIN-EQ") is None
    assert fake.calls["place_order"] == 1 and fake.orders_of(FOLLOWER.client_code) == []


async def test_angel_one_has_no_send_window_and_ignores_a_send_deadline(fake):
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))
    past = datetime.now(UTC) - timedelta(minutes=1)

    report = await venue.place_order(replace(intent(client_order_id="ct-1-79"), send_deadline=past))

    assert venue.send_window is None and venue.send_deadline() is None
    assert report.venue_order_id == fake.orders_of(FOLLOWER.client_code)[0]["orderid"]


async def test_a_bad_gateway_on_placing_is_status_unknown_not_a_retry(fake):
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))
    fake.fail_next("place_order", "bad_gateway")
    with pytest.raises(OrderStatusUnknown):
        await venue.place_order(intent())
    assert fake.calls["place_order"] == 1


async def test_an_order_angel_one_refuses_maps_to_invalid_order(fake):
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))
    fake.fail_next("place_order", "invalid_variety")
    with pytest.raises(InvalidOrder, match="AB1008"):
        await venue.place_order(intent())
    assert fake.orders_of(FOLLOWER.client_code) == []


async def test_a_limit_price_that_rounds_to_zero_is_refused_without_sending(fake):
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))
    with pytest.raises(InvalidOrder, match="not positive"):
        await venue.place_order(intent(order_type=OrderType.LIMIT, price="0.01"))
    assert fake.calls["place_order"] == 0


async def test_fetch_order_of_an_unknown_client_order_id_is_none(fake):
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))
    await venue.place_order(intent(order_type=OrderType.LIMIT, price="612.35", client_order_id="ct-1-1-a"))
    assert await venue.fetch_order("ct-1-1-b", "NSE:SBIN-EQ") is None


async def test_positions_come_from_the_position_book(fake):
    fake.accounts[FOLLOWER.client_code].positions = [
        {"exchange": "NFO", "tradingsymbol": "NIFTY24DEC24000CE", "netqty": "-50", "avgnetprice": "101.25"},
        {"exchange": "NSE", "tradingsymbol": "SBIN-EQ", "netqty": "0", "avgnetprice": "0"},
    ]
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))
    [position] = await venue.positions()
    assert (position.symbol, position.quantity, position.entry_price) == (
        "NFO:NIFTY24DEC24000CE",
        Decimal(-50),
        Decimal("101.25"),
    )


def test_ordertags_are_short_deterministic_and_distinct():
    long_ids = [f"copytrade-follow-{n}-master-fill-8f4696e6881fbab0" for n in range(50)]
    tags = [ordertag_for(i) for i in long_ids]
    assert all(len(t) <= 20 and t.isalnum() for t in tags)
    assert len(set(tags)) == 50 and tags == [ordertag_for(i) for i in long_ids]
    assert ordertag_for("ct17abc") == "ct17abc"


# -- the SDK's hazards ------------------------------------------------------------------------------


@pytest.fixture
def network_attempts(monkeypatch):
    """Record (and refuse) every name lookup and connection the process tries."""
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args[:2])
        raise OSError("network is off in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    for name in [n for n in sys.modules if n == "SmartApi" or n.startswith("SmartApi.")]:
        monkeypatch.delitem(sys.modules, name)
    return attempts


def test_the_guarded_import_makes_no_connection(network_attempts):
    sdk = import_smartapi()
    assert network_attempts == []
    assert sdk.SmartConnect.clientPublicIp  # the SDK's fallback address was set without a lookup


def test_an_unguarded_import_would_reach_the_network(network_attempts, monkeypatch):
    import logzero

    monkeypatch.setattr(logzero.logger, "disabled", True)
    importlib.import_module("SmartApi.smartConnect")
    assert network_attempts != []


class RecordEverything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def every_log_record(caplog):
    """Records from the root logger and from the loggers the SDK writes to (logzero's is not
    propagated to the root, so caplog alone would miss it)."""
    import logzero

    caplog.set_level(logging.DEBUG)
    handler = RecordEverything()
    sdk_loggers = {
        logzero.logger,
        sys.modules["SmartApi.smartConnect"].logger,
        sys.modules["SmartApi.smartWebSocketOrderUpdate"].logger,
    }
    for logger in sdk_loggers:
        logger.addHandler(handler)
    yield lambda: [caplog.text, *handler.lines]
    for logger in sdk_loggers:
        logger.removeHandler(handler)


def every_file_text(folder: Path) -> list[str]:
    return [p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file()]


async def test_no_secret_reaches_logs_output_or_files(fake, tmp_path, monkeypatch, every_log_record, capfd):
    monkeypatch.chdir(tmp_path)
    wrong_seed = pyotp.random_base32()
    accounts = make_accounts(fake, timeout=0.3)
    failing = accounts.venue(credentials_of(FOLLOWER, totp_secret=wrong_seed))
    with pytest.raises(AuthenticationError) as failed_login:
        await failing.validate()
    sent_totp = [pyotp.TOTP(wrong_seed).at(datetime.now(UTC) + timedelta(seconds=s)) for s in (-30, 0, 30)]

    venue = make_accounts(fake, timeout=0.3).venue(credentials_of(FOLLOWER))
    await venue.equity()
    fake.fail_next("place_order", "timeout")
    with pytest.raises(OrderStatusUnknown) as lost:
        await venue.place_order(intent())
    fake.fail_next("rms", "bad_gateway")
    with pytest.raises(TemporaryError) as bad_gateway:
        await venue.equity()
    assert fake.issued_tokens

    secrets = [FOLLOWER.pin, FOLLOWER.api_key, FOLLOWER.totp_secret, wrong_seed, *sent_totp, *fake.issued_tokens]
    out, err = capfd.readouterr()
    texts = [out, err, *every_log_record()]
    for raised in (failed_login.value, lost.value, bad_gateway.value):
        texts += [str(raised), repr(raised), repr(raised.__cause__), repr(raised.__context__)]
    texts += every_file_text(tmp_path)
    assert not (tmp_path / "logs").exists()
    for secret in secrets:
        assert all(secret not in text for text in texts), "a secret leaked"


async def test_price_and_cancel_of_a_resting_order(fake) -> None:
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))
    fake.last_prices["SBIN-EQ"] = "801.25"
    assert await venue.price("NSE:SBIN-EQ") == Decimal("801.25")
    await venue.place_order(intent(order_type=OrderType.LIMIT, price="700", client_order_id="ct-rest-1"))
    assert await venue.cancel_order("ct-rest-1", "NSE:SBIN-EQ") is True
    cancelled = await venue.fetch_order("ct-rest-1", "NSE:SBIN-EQ")
    assert cancelled is not None and (cancelled.state, cancelled.status) == (OrderState.CANCELED, CopyStatus.CANCELED)
    assert await venue.cancel_order("ct-rest-1", "NSE:SBIN-EQ") is False


# -- the shared contract ----------------------------------------------------------------------------


class TestAngelOneVenueContract(VenueContract):
    """An Angel One follower through the real smartapi-python, against the fake SmartAPI."""

    @pytest.fixture
    def venue(self, fake):
        self.fake = fake  # the contract's signatures take no fake: the fills below come from it
        return make_accounts(fake).venue(credentials_of(FOLLOWER))

    @pytest.fixture
    def listed_symbol(self):
        return "NSE:SBIN-EQ"

    @pytest.fixture
    def price(self):
        return Decimal("612.35")

    # the contract's market orders are refused by Angel One for API orders since 1 April 2026: the
    # same behaviours with the marketable LIMIT the engine sends instead (``core.engine.protected_limit``)

    async def test_market_order_carries_the_client_order_id_and_can_be_looked_up(
        self, venue, listed_symbol, price, order_quantity
    ):
        quantity = await order_quantity(venue, listed_symbol, price)
        ack = await venue.place_order(marketable("ctcontract00000000000000000000001", listed_symbol, quantity, price))
        assert ack.client_order_id == "ctcontract00000000000000000000001" and ack.status is CopyStatus.PLACED
        found = await venue.fetch_order("ctcontract00000000000000000000001", listed_symbol)
        assert found is not None and found.venue_order_id == ack.venue_order_id

    async def test_an_order_is_found_by_its_client_order_id_once_it_has_executed(
        self, venue, listed_symbol, price, order_quantity
    ):
        quantity = await order_quantity(venue, listed_symbol, price)
        placed = await venue.place_order(
            marketable("ctcontract00000000000000000000002", listed_symbol, quantity, price)
        )
        self.fake.fill(FOLLOWER.client_code, placed.venue_order_id)
        found = await venue.fetch_order("ctcontract00000000000000000000002", listed_symbol)
        assert found is not None and found.venue_order_id == placed.venue_order_id
        assert found.state is OrderState.FILLED and found.filled_quantity == quantity

    async def test_filled_buy_shows_in_positions(self, venue, listed_symbol, price, order_quantity):
        quantity = await order_quantity(venue, listed_symbol, price)
        placed = await venue.place_order(
            marketable("ctcontract00000000000000000000003", listed_symbol, quantity, price)
        )
        self.fake.fill(FOLLOWER.client_code, placed.venue_order_id)
        positions = {p.symbol: p.quantity for p in await venue.positions()}
        assert positions.get(listed_symbol, 0) >= quantity


def marketable(client_order_id: str, symbol: str, quantity: Decimal, price: Decimal) -> OrderIntent:
    """A buy limited 1% above ``price``: what the engine sends Angel One for a market copy."""
    return OrderIntent(1, client_order_id, symbol, Side.BUY, quantity, OrderType.LIMIT, price=price * Decimal("1.01"))


# -- orders per second per client and exchange segment (the exchanges' threshold since April 2026) --


async def test_a_fan_out_of_one_client_never_exceeds_ten_orders_a_second_in_a_segment(fake):
    """Two follows of the same client (two venues) send 30 NSE orders at once: the shared
    segment throttle spaces them, the fake (10 a second, sliding) refuses none; the client's
    NFO orders have their own budget and are not held behind them."""
    accounts = make_accounts(fake)
    first, second = accounts.venue(credentials_of(FOLLOWER)), accounts.venue(credentials_of(FOLLOWER))
    await first.equity()
    cash = [venue.place_order(intent(client_order_id=f"ct-ops-{n}")) for n in range(15) for venue in (first, second)]
    options = [
        first.place_order(intent("NFO:NIFTY24DEC24000CE", "25", price="101.25", client_order_id=f"ct-nfo-{n}"))
        for n in range(5)
    ]
    started = asyncio.get_running_loop().time()
    await asyncio.gather(*cash, *options)
    took = asyncio.get_running_loop().time() - started

    placed = [r for r in fake.order_requests if r.route == "place_order"]
    assert len(placed) == 35 and all(r.errorcode == "" for r in placed), {r.errorcode for r in placed}
    assert took >= 2.0  # 30 orders at 10 a second: the third ten waits two windows


async def test_a_registered_algo_may_send_above_the_threshold(fake):
    fake.accounts[FOLLOWER.client_code].algo_id = "ALGO-77"
    fake.accounts[FOLLOWER.client_code].algo_orders_per_second = 30
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER, algo_id="ALGO-77", algo_orders_per_second="30"))
    await venue.equity()
    started = asyncio.get_running_loop().time()
    await asyncio.gather(*(venue.place_order(intent(client_order_id=f"ct-algo-{n}")) for n in range(20)))
    assert asyncio.get_running_loop().time() - started < 1.0
    assert all(r.errorcode == "" for r in fake.order_requests) and len(fake.order_requests) == 20


def test_an_algo_id_without_its_rate_is_refused_with_a_clear_message():
    with pytest.raises(UserError, match="algo id and its registered orders per second go together"):
        AngelOneCredentials.from_mapping(credentials_of(FOLLOWER, algo_id="ALGO-77"))


# -- a static IP per client: each account's own egress ------------------------------------------


async def test_every_order_request_of_an_account_goes_through_its_egress_with_the_matching_header(fake):
    fake.register_static_ip(FOLLOWER.client_code, "127.0.0.5")
    egress = fake.start_egress_proxy("127.0.0.5", username="ops", password="s3cret")
    secrets = credentials_of(FOLLOWER, egress_proxy=egress.url, static_ip="127.0.0.5")
    venue = make_accounts(fake).venue(secrets, require_egress=True)

    await venue.place_order(intent(client_order_id="ct-egress-1"))
    assert await venue.cancel_order("ct-egress-1", "NSE:SBIN-EQ") is True

    assert [(r.route, r.source_ip, r.public_ip_header, r.errorcode) for r in fake.order_requests] == [
        ("place_order", "127.0.0.5", "127.0.0.5", ""),
        ("cancel_order", "127.0.0.5", "127.0.0.5", ""),
    ]
    assert egress.forwarded >= 3  # the login too


async def test_in_live_mode_an_order_without_a_registered_egress_is_refused_unsent(fake):
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER), require_egress=True)
    with pytest.raises(InvalidOrder, match="F80002 has no registered egress"):
        await venue.place_order(intent())
    assert fake.order_requests == [] and fake.calls["place_order"] == 0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"egress_proxy": "http://203.0.113.7:3128"}, "needs both the proxy URL and the static IP"),
        ({"static_ip": "203.0.113.7"}, "needs both the proxy URL and the static IP"),
        ({"egress_proxy": "socks5://203.0.113.7:1080", "static_ip": "203.0.113.7"}, "http:// or https:// URL"),
        ({"egress_proxy": "http://203.0.113.7:3128", "static_ip": "my-host"}, "is not an IP address"),
    ],
)
def test_connect_checks_the_egress_fields_with_a_clear_message(fields, message):
    spec = venue_spec("angelone")
    assert spec is not None and {"egress_proxy", "static_ip"} <= set(spec.optional_fields)
    with pytest.raises(UserError, match=message):
        clean_secrets(spec, credentials_of(FOLLOWER, **fields))


def test_the_egress_proxy_password_never_appears_in_a_redacted_text():
    credentials = AngelOneCredentials.from_mapping(
        credentials_of(FOLLOWER, egress_proxy="http://ops:pr0xy-pass@203.0.113.7:3128", static_ip="203.0.113.7")
    )
    text = SecretRedactor(credentials).redact("proxy http://ops:pr0xy-pass@203.0.113.7:3128 refused pr0xy-pass")
    assert "pr0xy-pass" not in text and "egress_proxy" not in repr(credentials) and "pr0xy" not in repr(credentials)


# -- following an order to its end: the ledger from the trade book ------------------------------


async def test_a_partly_filled_order_is_reported_from_its_trades(fake):
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))
    placed = await venue.place_order(intent(quantity="10", client_order_id="ct-trades-1"))
    fake.fill(FOLLOWER.client_code, placed.venue_order_id, quantity=4, price="612.00")
    fake.fill(FOLLOWER.client_code, placed.venue_order_id, quantity=2, price="612.30")

    report = await venue.fetch_order("ct-trades-1", "NSE:SBIN-EQ")

    assert report is not None and report.state is OrderState.PARTIALLY_FILLED
    trades = fake.trades_of(FOLLOWER.client_code)
    assert [(e.trade_id, e.quantity, e.price) for e in report.executions] == [
        (t["fillid"], Decimal(t["fillsize"]), Decimal(t["fillprice"])) for t in trades
    ]
    assert (report.filled_quantity, report.average_price) == (Decimal(6), Decimal("612.10"))


async def test_a_complete_order_whose_trades_are_not_in_the_trade_book_yet_is_not_ended(fake):
    """The order book may say "complete" before the trade book lists the trades: the report stays
    open (asked again later) instead of ending the order with nothing filled."""
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))
    placed = await venue.place_order(intent(quantity="10", client_order_id="ct-trades-2"))
    fake.fill(FOLLOWER.client_code, placed.venue_order_id)
    fake.accounts[FOLLOWER.client_code].trades.clear()  # the trade book lags

    report = await venue.fetch_order("ct-trades-2", "NSE:SBIN-EQ")

    assert report is not None and report.state is OrderState.ACKNOWLEDGED and report.filled_quantity == 0


async def test_the_last_price_is_read_with_ltpdata_for_the_instruments_exchange_symbol_and_token(fake) -> None:
    """The re-pricing reference: the SDK's ``ltpData`` carries the scrip master's token, which the
    fake (like Angel One) checks against the symbol; another symbol's price is not mixed in."""
    venue = make_accounts(fake).venue(credentials_of(FOLLOWER))
    fake.last_prices.update({"SBIN-EQ": "803.40", "SBIN": "799.10"})

    assert await venue.price("NSE:SBIN-EQ") == Decimal("803.40")
    assert await venue.price("BSE:SBIN") == Decimal("799.10")
    assert fake.calls["ltp"] == 2
