"""CcxtVenue: the real ccxt (binanceusdm, binance) against the local fake Binance."""

from __future__ import annotations

import asyncio
import dataclasses
import decimal
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlmodel import col, select

from core import errors
from core.copying.config import EngineConfig
from core.copying.path import OrderPath
from core.engine import CopyEngine
from core.model import CopyStatus, Fill, OrderIntent, OrderState, OrderType, Side, utcnow
from core.tracking import OrderStreams
from core.venues.catalog import clean_secrets, venue_spec
from core.venues.ccxt.errors import map_ccxt_error
from core.venues.ccxt.markets import CcxtMarketsCache
from core.venues.ccxt.venue import CcxtVenue, FuturesSettings
from storage.models import FollowPosition
from tests.fakes.binance import FUTURES, SPOT, FakeBinance
from tests.fakes.smartapi import EgressProxy
from tests.harness import LOOPBACK_ALLOWED, eventually
from tests.venue_contract import VenueContract

FUTURES_BTC = "BTC/USDT:USDT"
SPOT_BTC = "BTC/USDT"
KEY, SECRET = "follower-key-1234", "follower-secret-abcd"

VenueFactory = Callable[..., Awaitable[CcxtVenue]]


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance() as server:
        yield server


@pytest.fixture
async def make_venue(fake: FakeBinance) -> AsyncIterator[VenueFactory]:
    """Builds venues against the fake (one shared markets cache by default); closes them all."""
    created: list[CcxtVenue] = []
    shared_cache = CcxtMarketsCache()

    async def factory(
        exchange_id: str = "binanceusdm", api_key: str = KEY, secret: str = SECRET, **kwargs
    ) -> CcxtVenue:
        kwargs.setdefault("markets_cache", shared_cache)
        kwargs.setdefault("retry_backoff", 0.01)
        kwargs.setdefault("enable_rate_limit", False)
        venue = CcxtVenue.create(exchange_id, api_key, secret, url_overrides=fake.url_overrides(), **kwargs)
        created.append(venue)
        return venue

    yield factory
    for venue in created:
        await venue.close()


def intent(client_order_id: str = "cp1", **overrides) -> OrderIntent:
    values: dict[str, Any] = dict(
        follow_id=1,
        client_order_id=client_order_id,
        symbol=FUTURES_BTC,
        side=Side.BUY,
        quantity=Decimal("0.010"),
        reference_price=Decimal("60000"),
    )
    values.update(overrides)
    return OrderIntent(**values)


def orders_with(fake: FakeBinance, client_order_id: str, market: str = FUTURES):
    return fake.accounts[KEY].orders_with_client_id(market, client_order_id)


# --------------------------------------------------------------------------- markets


async def test_markets_are_loaded_once_and_shared_by_two_accounts(fake: FakeBinance, make_venue: VenueFactory) -> None:
    fake.add_account(KEY, SECRET)
    fake.add_account("other-key", "other-secret")
    first = await make_venue()
    second = await make_venue(api_key="other-key", secret="other-secret")

    rules_first = await first.market(FUTURES_BTC)
    rules_second = await second.market(FUTURES_BTC)

    assert rules_first == rules_second
    assert fake.count("GET", "/fapi/v1/exchangeInfo") == 1
    assert second.exchange.markets is first.exchange.markets


async def test_market_rules_come_from_the_exchange_filters(fake: FakeBinance, make_venue: VenueFactory) -> None:
    fake.add_account(KEY, SECRET)
    futures = await make_venue()
    spot = await make_venue("binance")

    perp = await futures.market(FUTURES_BTC)
    cash = await spot.market(SPOT_BTC)

    assert (perp.quantity_step, perp.price_tick, perp.min_quantity, perp.min_notional) == (
        Decimal("0.001"),
        Decimal("0.1"),
        Decimal("0.001"),
        Decimal("100"),
    )
    assert perp.derivative and perp.contract_size == 1 and (perp.base, perp.quote) == ("BTC", "USDT")
    assert (cash.quantity_step, cash.price_tick, cash.min_notional) == (
        Decimal("0.00001"),
        Decimal("0.01"),
        Decimal("5"),
    )
    assert not cash.derivative
    assert fake.count("GET", "/api/v3/exchangeInfo") == 1 and fake.unknown_requests == []


async def test_unknown_symbol_is_refused_with_the_symbol_named(fake: FakeBinance, make_venue: VenueFactory) -> None:
    venue = await make_venue()
    with pytest.raises(errors.UnknownSymbol, match="DOGE/USDT:USDT"):
        await venue.market("DOGE/USDT:USDT")


async def test_master_symbol_missing_on_the_follower_venue_is_unknown(
    fake: FakeBinance, make_venue: VenueFactory
) -> None:
    spot = await make_venue("binance")
    mapped = await make_venue("binance", symbol_map={FUTURES_BTC: SPOT_BTC}, markets_cache=CcxtMarketsCache())

    with pytest.raises(errors.UnknownSymbol, match="binance does not list SOL/USDT:USDT"):
        await spot.follower_symbol("SOL/USDT:USDT")
    assert await spot.follower_symbol(SPOT_BTC) == SPOT_BTC
    assert await mapped.follower_symbol(FUTURES_BTC) == SPOT_BTC


# --------------------------------------------------------------------------- orders


async def test_market_order_is_copied_with_the_client_order_id(fake: FakeBinance, make_venue: VenueFactory) -> None:
    fake.add_account(KEY, SECRET)
    venue = await make_venue()

    ack = await venue.place_order(intent("cp-market-1"))

    assert ack.status is CopyStatus.FILLED
    assert (ack.client_order_id, ack.filled_quantity, ack.average_price) == (
        "cp-market-1",
        Decimal("0.01"),
        Decimal("60000"),
    )
    [order] = orders_with(fake, "cp-market-1")
    assert (order.type, order.side, order.quantity) == ("MARKET", "BUY", Decimal("0.010"))
    assert ack.venue_order_id == str(order.order_id)
    [position] = await venue.positions()
    assert (position.symbol, position.quantity, position.entry_price) == (
        FUTURES_BTC,
        Decimal("0.01"),
        Decimal("60000"),
    )


async def test_placing_orders_leaves_the_process_decimal_context_alone(
    fake: FakeBinance, make_venue: VenueFactory
) -> None:
    """ccxt's decimal_to_precision rounds half up and traps underflow on the shared context; the
    copier's money arithmetic must keep Python's defaults whatever ccxt ran."""
    fake.add_account(KEY, SECRET)
    venue = await make_venue()
    before = decimal.getcontext().copy()

    await venue.place_order(intent("cp-context-1"))
    await venue.place_order(
        dataclasses.replace(intent("cp-context-2"), order_type=OrderType.LIMIT, price=Decimal("59000.05"))
    )

    after = decimal.getcontext()
    assert (after.rounding, after.traps[decimal.Underflow]) == (before.rounding, before.traps[decimal.Underflow])


async def test_limit_order_rests_and_partial_fills_show_as_increments(
    fake: FakeBinance, make_venue: VenueFactory
) -> None:
    fake.add_account(KEY, SECRET)
    venue = await make_venue()

    ack = await venue.place_order(intent("cp-limit", order_type=OrderType.LIMIT, price=Decimal("59000.07")))
    [order] = orders_with(fake, "cp-limit")
    assert ack.status is CopyStatus.PLACED and ack.filled_quantity == 0
    assert (order.type, order.price) == ("LIMIT", Decimal("59000.0"))

    await fake.fill_resting(KEY, order.order_id, Decimal("0.004"))
    partial = await venue.fetch_order("cp-limit", FUTURES_BTC)
    await fake.fill_resting(KEY, order.order_id)
    complete = await venue.fetch_order("cp-limit", FUTURES_BTC)

    assert partial is not None and (partial.status, partial.filled_quantity) == (CopyStatus.PLACED, Decimal("0.004"))
    assert complete is not None and (complete.status, complete.filled_quantity) == (CopyStatus.FILLED, Decimal("0.01"))


@pytest.mark.parametrize(
    ("order_type", "wire_type"),
    [(OrderType.STOP_MARKET, "STOP_MARKET"), (OrderType.TAKE_PROFIT_MARKET, "TAKE_PROFIT_MARKET")],
)
async def test_conditional_orders_rest_with_trigger_and_client_id(
    fake: FakeBinance, make_venue: VenueFactory, order_type: OrderType, wire_type: str
) -> None:
    fake.add_account(KEY, SECRET)
    venue = await make_venue()

    ack = await venue.place_order(intent("cp-cond", order_type=order_type, stop_price=Decimal("61000.05")))
    found = await venue.fetch_order("cp-cond", FUTURES_BTC)

    [order] = orders_with(fake, "cp-cond")
    assert order.algo and (order.type, order.stop_price) == (wire_type, Decimal("61000.0"))
    assert ack.status is CopyStatus.PLACED and found is not None and found.venue_order_id == str(order.order_id)


async def test_reduce_only_exit_closes_the_position(fake: FakeBinance, make_venue: VenueFactory) -> None:
    fake.add_account(KEY, SECRET)
    venue = await make_venue()
    await venue.place_order(intent("open"))

    await venue.place_order(intent("exit", side=Side.SELL, reduce_only=True))

    [exit_order] = orders_with(fake, "exit")
    assert exit_order.reduce_only and exit_order.position_side == "BOTH"
    assert await venue.positions() == []


async def test_hedge_mode_derives_position_side_from_side_and_reduce_only(
    fake: FakeBinance, make_venue: VenueFactory
) -> None:
    fake.add_account(KEY, SECRET, hedge_mode=True)
    venue = await make_venue()

    await venue.place_order(intent("open-long"))
    await venue.place_order(intent("open-short", side=Side.SELL))
    await venue.place_order(intent("close-long", side=Side.SELL, reduce_only=True))

    sides = {cid: orders_with(fake, cid)[0].position_side for cid in ("open-long", "open-short", "close-long")}
    assert sides == {"open-long": "LONG", "open-short": "SHORT", "close-long": "LONG"}
    [short] = await venue.positions()
    assert short.quantity == Decimal("-0.01")
    assert fake.count("GET", "/fapi/v1/positionSide/dual") == 1


async def test_leverage_and_margin_mode_are_set_once_before_the_first_order(
    fake: FakeBinance, make_venue: VenueFactory
) -> None:
    account = fake.add_account(KEY, SECRET)
    venue = await make_venue(settings=FuturesSettings(leverage=5, margin_mode="isolated"))

    await venue.place_order(intent("first"))
    await venue.place_order(intent("second"))

    relevant = [
        entry
        for entry in fake.request_log
        if entry[1] in ("/fapi/v1/leverage", "/fapi/v1/marginType", "/fapi/v1/order")
    ]
    assert relevant == [
        ("POST", "/fapi/v1/marginType"),
        ("POST", "/fapi/v1/leverage"),
        ("POST", "/fapi/v1/order"),
        ("POST", "/fapi/v1/order"),
    ]
    assert (account.leverage["BTCUSDT"], account.margin_type["BTCUSDT"]) == (5, "ISOLATED")


async def test_per_call_leverage_change_is_applied_again(fake: FakeBinance, make_venue: VenueFactory) -> None:
    account = fake.add_account(KEY, SECRET, margin_type={"BTCUSDT": "ISOLATED"})
    venue = await make_venue()

    await venue.place_order(intent("a"), FuturesSettings(leverage=3, margin_mode="isolated"))
    await venue.place_order(intent("b"), FuturesSettings(leverage=7, margin_mode="isolated"))

    assert account.leverage["BTCUSDT"] == 7
    assert fake.count("POST", "/fapi/v1/leverage") == 2 and fake.count("POST", "/fapi/v1/marginType") == 1


async def test_quantity_is_truncated_to_the_lot_step(fake: FakeBinance, make_venue: VenueFactory) -> None:
    fake.add_account(KEY, SECRET)
    venue = await make_venue()

    ack = await venue.place_order(intent("trunc", quantity=Decimal("0.0109")))

    assert orders_with(fake, "trunc")[0].quantity == Decimal("0.010") and ack.filled_quantity == Decimal("0.01")


async def test_order_below_min_notional_is_refused_with_the_numbers(
    fake: FakeBinance, make_venue: VenueFactory
) -> None:
    fake.add_account(KEY, SECRET)
    venue = await make_venue()

    with pytest.raises(errors.InvalidOrder, match=r"order value 60 \(0\.001 x 60000\) is below the minimum 100$"):
        await venue.place_order(intent("tiny", quantity=Decimal("0.001")))
    with pytest.raises(errors.InvalidOrder, match="rounds to zero with step 0.001"):
        await venue.place_order(intent("dust", quantity=Decimal("0.0004")))
    assert fake.count("POST", "/fapi/v1/order") == 0


async def test_reduce_only_exit_below_min_notional_is_still_sent(fake: FakeBinance, make_venue: VenueFactory) -> None:
    fake.add_account(KEY, SECRET)
    venue = await make_venue()
    await venue.place_order(intent("open"))

    ack = await venue.place_order(intent("small-exit", side=Side.SELL, quantity=Decimal("0.001"), reduce_only=True))

    assert ack.status is CopyStatus.FILLED


async def test_spot_market_order_reports_fee_and_spot_positions(fake: FakeBinance, make_venue: VenueFactory) -> None:
    """Binance spot takes a buy's commission from the coin received unless BNB pays it
    (docs/research/binance.md §6, commission_faq.md l.168): 0.01 BTC bought at 60000 with the
    0.04 % rate leaves 0.009996 BTC and 9400 USDT; the fee is 0.000004 BTC, 0.24 in the quote."""
    fake.add_account(KEY, SECRET)
    venue = await make_venue("binance")

    ack = await venue.place_order(intent("spot-buy", symbol=SPOT_BTC, quantity=Decimal("0.010009")))

    assert (ack.status, ack.filled_quantity, ack.fee, ack.base_fee) == (
        CopyStatus.FILLED,
        Decimal("0.01"),
        Decimal("0.24"),
        Decimal("0.000004"),
    )
    assert orders_with(fake, "spot-buy", SPOT)[0].quantity == Decimal("0.01000")
    [position] = await venue.positions()
    assert (position.symbol, position.quantity) == (SPOT_BTC, Decimal("0.009996"))
    assert await venue.equity() == Decimal("10000") - Decimal("600")  # the quote balance: the fee was paid in BTC


async def test_a_spot_sell_is_capped_to_the_free_balance(fake: FakeBinance, make_venue: VenueFactory) -> None:
    fake.add_account(KEY, SECRET)
    venue = await make_venue("binance")
    await venue.place_order(intent("spot-buy", symbol=SPOT_BTC, quantity=Decimal("0.01")))  # holds 0.009996

    sold = await venue.place_order(intent("spot-sell", symbol=SPOT_BTC, side=Side.SELL, quantity=Decimal("0.01")))

    assert (sold.status, sold.filled_quantity) == (CopyStatus.FILLED, Decimal("0.00999"))
    [position] = await venue.positions()
    assert position.quantity == Decimal("0.000006")


class OneVenue:
    """Every follow's venue is the one ccxt account under test."""

    def __init__(self, venue: CcxtVenue) -> None:
        self.venue = venue

    async def venue_for(self, credential_id: str) -> CcxtVenue:
        return self.venue

    async def open_many(self, credential_ids, *, warm_up: bool = False) -> None:
        return None


async def test_a_spot_copy_holds_the_net_quantity_and_its_full_exit_succeeds(
    fake: FakeBinance, make_venue: VenueFactory, h
) -> None:
    fake.add_account(KEY, SECRET)
    venue = await make_venue("binance")
    follow_id, _ = await h.add_follower()
    engine = CopyEngine(OrderPath(h.journal, OneVenue(venue), h.events.append, EngineConfig(retry_delays=(0.001,))))

    def master(side: Side, trade_id: str) -> Fill:
        return Fill(h.master_id, "binance:master", trade_id, trade_id, SPOT_BTC, side, Decimal("0.01"), Decimal(60000))

    entry = await engine.on_fill(master(Side.BUY, "t1"))
    assert entry.results[0].status is CopyStatus.FILLED
    assert await h.position(follow_id, SPOT_BTC) == Decimal("0.009996")  # the commission was taken in BTC

    exit_ = await engine.on_fill(master(Side.SELL, "t2"))

    assert exit_.results[0].status is CopyStatus.FILLED, exit_.results[0].error
    [position] = await venue.positions()
    assert await h.position(follow_id, SPOT_BTC) == position.quantity == Decimal("0.000006")  # below one step


async def test_futures_equity_is_wallet_plus_unrealized(fake: FakeBinance, make_venue: VenueFactory) -> None:
    fake.add_account(KEY, SECRET, futures_wallet=Decimal("5000"))
    venue = await make_venue()
    await venue.place_order(intent("long"))
    fee = Decimal("600") * fake.fee_rate

    fake.set_mark_price("BTCUSDT", Decimal("61000"))

    assert await venue.equity() == Decimal("5000") - fee + Decimal("10")


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "code", "msg", "expected"),
    [
        (400, -1013, "Filter failure: LOT_SIZE", errors.InvalidOrder),
        (400, -2019, "Margin is insufficient.", errors.InsufficientFunds),
        # the balance was read with the key first: Binance answers -2015 on a temporary ban
        # too, so after a working session it is not a revoked key (issue 13; this case said
        # AuthenticationError before). A fresh key's -2015: tests/test_ccxt_order_errors.py.
        (401, -2015, "Invalid API-key, IP, or permissions for action.", errors.RateLimited),
        (400, -4116, "clientOrderId is duplicated.", errors.DuplicateOrder),
    ],
)
async def test_order_rejections_are_mapped(
    fake: FakeBinance, make_venue: VenueFactory, status, code, msg, expected
) -> None:
    fake.add_account(KEY, SECRET)
    venue = await make_venue()
    await venue.equity()  # a signed call that worked
    fake.fail_next("POST", "/fapi/v1/order", status=status, code=code, msg=msg)

    with pytest.raises(expected, match=str(code)) as caught:
        await venue.place_order(intent())
    assert type(caught.value) is expected


async def test_margin_insufficient_from_the_matching_engine(fake: FakeBinance, make_venue: VenueFactory) -> None:
    fake.add_account(KEY, SECRET, futures_wallet=Decimal("100"))
    venue = await make_venue()
    with pytest.raises(errors.InsufficientFunds, match="-2019"):
        await venue.place_order(intent(quantity=Decimal("1")))


async def test_rate_limit_carries_retry_after(fake: FakeBinance, make_venue: VenueFactory) -> None:
    fake.add_account(KEY, SECRET)
    venue = await make_venue()
    await venue.market(FUTURES_BTC)
    fake.fail_next(
        "POST", "/fapi/v1/order", status=429, code=-1003, msg="Too many requests.", headers={"Retry-After": "7"}
    )

    with pytest.raises(errors.RateLimited) as caught:
        await venue.place_order(intent())
    assert caught.value.retry_after == 7.0


async def test_server_error_on_a_read_is_temporary_and_retried(fake: FakeBinance, make_venue: VenueFactory) -> None:
    fake.add_account(KEY, SECRET)
    venue = await make_venue(read_retries=1)
    await venue.market(FUTURES_BTC)
    fake.fail_next("GET", "/fapi/v3/account", status=503, msg="Service Unavailable")
    assert await venue.equity() == Decimal("10000")
    assert fake.count("GET", "/fapi/v3/account") == 2

    fake.fail_next("GET", "/fapi/v3/account", status=502, msg="Bad Gateway")
    fake.fail_next("GET", "/fapi/v3/account", status=500, msg="Internal Server Error")
    with pytest.raises(errors.TemporaryError):
        await venue.equity()


async def test_server_error_while_placing_is_status_unknown_and_not_retried(
    fake: FakeBinance, make_venue: VenueFactory
) -> None:
    fake.add_account(KEY, SECRET)
    venue = await make_venue()
    await venue.market(FUTURES_BTC)
    fake.fail_next("POST", "/fapi/v1/order", status=503, msg="Service Unavailable")

    with pytest.raises(errors.OrderStatusUnknown):
        await venue.place_order(intent())
    assert fake.count("POST", "/fapi/v1/order") == 1


async def test_clock_drift_is_temporary_and_the_clock_is_resynced(fake: FakeBinance, make_venue: VenueFactory) -> None:
    fake.add_account(KEY, SECRET)
    venue = await make_venue(read_retries=0)
    await venue.market(FUTURES_BTC)
    fake.clock_skew_ms = 20_000

    with pytest.raises(errors.TemporaryError, match="-1021"):
        await venue.equity()
    assert await venue.equity() == Decimal("10000")


async def test_wrong_secret_is_an_authentication_error_without_secrets(
    fake: FakeBinance, make_venue: VenueFactory
) -> None:
    fake.add_account(KEY, SECRET)
    venue = await make_venue(secret="not-the-secret")

    with pytest.raises(errors.AuthenticationError, match="-1022") as caught:
        await venue.equity()
    assert KEY not in str(caught.value) and "not-the-secret" not in str(caught.value)


async def test_timeout_while_placing_then_fetch_order_finds_the_single_order(
    fake: FakeBinance, make_venue: VenueFactory
) -> None:
    fake.add_account(KEY, SECRET)
    venue = await make_venue(timeout_ms=300)
    await venue.market(FUTURES_BTC)
    fake.delay_next("POST", "/fapi/v1/order", 1.0)

    with pytest.raises(errors.OrderStatusUnknown) as caught:
        await venue.place_order(intent("cp-timeout"))
    found = await venue.fetch_order("cp-timeout", FUTURES_BTC)

    assert found is not None and (found.status, found.filled_quantity) == (CopyStatus.FILLED, Decimal("0.01"))
    assert len(orders_with(fake, "cp-timeout")) == 1 and fake.count("POST", "/fapi/v1/order") == 1
    assert "signature" not in str(caught.value) and KEY not in str(caught.value)


async def test_fetch_order_of_an_unknown_client_id_is_none(fake: FakeBinance, make_venue: VenueFactory) -> None:
    fake.add_account(KEY, SECRET)
    futures = await make_venue()
    spot = await make_venue("binance")

    assert await futures.fetch_order("never-sent", FUTURES_BTC) is None
    assert await spot.fetch_order("never-sent", SPOT_BTC) is None
    assert fake.count("GET", "/fapi/v1/algoOrder") == 1


def test_map_ccxt_error_scrubs_secrets_and_signed_queries() -> None:
    import ccxt

    raw = ccxt.RequestTimeout("binance GET http://h/api/v3/account?timestamp=1&signature=abc123 key=K1 secret=S1")
    mapped = map_ccxt_error(raw, exchange_id="binance", placing_order=True, secrets=("K1", "S1"))

    assert isinstance(mapped, errors.OrderStatusUnknown)
    assert "abc123" not in str(mapped) and "K1" not in str(mapped) and "S1" not in str(mapped)
    assert isinstance(map_ccxt_error(ccxt.RequestTimeout("x")), errors.TemporaryError)
    assert isinstance(map_ccxt_error(ccxt.AccountSuspended("x")), errors.PermissionDenied)
    assert isinstance(map_ccxt_error(ccxt.BadSymbol("x")), errors.UnknownSymbol)
    assert isinstance(map_ccxt_error(ccxt.OrderNotFound("x")), errors.InvalidOrder)


# --------------------------------------------------------------------------- validate


async def test_validate_refuses_a_withdrawal_enabled_key(fake: FakeBinance, make_venue: VenueFactory) -> None:
    fake.add_account(KEY, SECRET, enable_withdrawals=True)
    venue = await make_venue("binance")
    with pytest.raises(errors.PermissionDenied, match="withdrawal-enabled keys are refused"):
        await venue.validate()


@pytest.mark.parametrize(
    ("exchange_id", "flag"), [("binance", "enable_spot_trading"), ("binanceusdm", "enable_futures")]
)
async def test_validate_refuses_a_key_that_may_not_trade(
    fake: FakeBinance, make_venue: VenueFactory, exchange_id, flag
) -> None:
    fake.add_account(KEY, SECRET, **{flag: False})
    venue = await make_venue(exchange_id)
    with pytest.raises(errors.PermissionDenied, match="may not trade"):
        await venue.validate()


async def test_validate_accepts_a_trading_key_and_reads_the_balance(
    fake: FakeBinance, make_venue: VenueFactory
) -> None:
    fake.add_account(KEY, SECRET)
    venue = await make_venue("binance")
    await venue.validate()
    assert fake.count("GET", "/api/v3/account") == 1


async def test_validate_with_an_unknown_key_is_an_authentication_error(
    fake: FakeBinance, make_venue: VenueFactory
) -> None:
    venue = await make_venue("binance", api_key="revoked-key")
    with pytest.raises(errors.AuthenticationError, match="-2015"):
        await venue.validate()


# --------------------------------------------------------------------------- prices, cancels, IOC


async def test_price_comes_from_the_ticker(fake: FakeBinance, make_venue: VenueFactory) -> None:
    venue = await make_venue()
    fake.set_mark_price("BTCUSDT", Decimal("61234.5"))
    assert await venue.price(FUTURES_BTC) == Decimal("61234.5")


async def test_resting_order_is_cancelled_once(fake: FakeBinance, make_venue: VenueFactory) -> None:
    fake.add_account(KEY, SECRET)
    venue = await make_venue()
    await venue.place_order(intent("rest1", order_type=OrderType.LIMIT, price=Decimal("50000")))
    assert await venue.cancel_order("rest1", FUTURES_BTC) is True
    assert orders_with(fake, "rest1")[0].status == "CANCELED"
    assert await venue.cancel_order("rest1", FUTURES_BTC) is False
    assert await venue.cancel_order("never-placed", FUTURES_BTC) is False


async def test_ioc_limit_fills_now_or_expires(fake: FakeBinance, make_venue: VenueFactory) -> None:
    fake.add_account(KEY, SECRET)
    venue = await make_venue()
    filled = await venue.place_order(
        intent("ioc1", order_type=OrderType.LIMIT, price=Decimal("60010"), time_in_force="IOC")
    )
    assert filled.status is CopyStatus.FILLED and orders_with(fake, "ioc1")[0].time_in_force == "IOC"
    expired = await venue.place_order(
        intent("ioc2", order_type=OrderType.LIMIT, price=Decimal("59000"), time_in_force="IOC")
    )
    assert (expired.state, expired.status, expired.filled_quantity) == (OrderState.EXPIRED, CopyStatus.CANCELED, 0)
    assert orders_with(fake, "ioc2")[0].status == "EXPIRED"


# --------------------------------------------------------------------------- the shared contract


class TestCcxtVenueContract(VenueContract):
    """Binance USD-M futures through real ccxt, against the fake Binance."""

    @pytest.fixture
    async def venue(self, fake: FakeBinance, make_venue: VenueFactory) -> CcxtVenue:
        fake.add_account(KEY, SECRET)
        return await make_venue()

    @pytest.fixture
    def listed_symbol(self) -> str:
        return FUTURES_BTC

    @pytest.fixture
    def price(self) -> Decimal:
        return Decimal(60000)


async def test_a_resting_spot_buy_filled_later_reports_its_commission_in_the_coin(
    fake: FakeBinance, make_venue: VenueFactory
) -> None:
    fake.add_account(KEY, SECRET)
    venue = await make_venue("binance")
    placed = await venue.place_order(
        intent("spot-rest", symbol=SPOT_BTC, order_type=OrderType.LIMIT, price=Decimal("59000"))
    )
    assert placed.state is OrderState.ACKNOWLEDGED

    await fake.trade_through("BTCUSDT", Decimal("59000"))
    found = await venue.fetch_order("spot-rest", SPOT_BTC)

    assert found is not None and (found.state, found.filled_quantity) == (OrderState.FILLED, Decimal("0.01"))
    [position] = await venue.positions()
    assert found.base_fee == Decimal("0.01") - position.quantity > 0
    assert found.fee == found.base_fee * Decimal("59000")
    assert [e.quantity for e in found.executions] == [Decimal("0.01")]


async def test_a_resting_copy_filled_later_is_recorded_from_the_followers_order_stream(
    fake: FakeBinance, make_venue: VenueFactory, h
) -> None:
    fake.add_account(KEY, SECRET)
    venue = await make_venue()
    follow_id, _ = await h.add_follower()
    provider = OneVenue(venue)
    engine = CopyEngine(OrderPath(h.journal, provider, h.events.append, EngineConfig(retry_delays=(0.001,))))
    streams = OrderStreams(engine, h.journal, provider, cap=10)
    limit = Fill(
        h.master_id,
        "binanceusdm:m",
        "t1",
        "o1",
        FUTURES_BTC,
        Side.BUY,
        Decimal("0.01"),
        Decimal(59900),
        order_type=OrderType.LIMIT,
    )
    placed = await engine.on_fill(limit)
    assert placed.results[0].status is CopyStatus.PLACED
    try:
        await streams.refresh()
        await eventually(lambda: fake.open_websockets >= 1, "the follower's order stream")
        assert streams.open_streams == 1

        await fake.trade_through("BTCUSDT", Decimal(59900))

        async def ledger() -> Decimal:
            return await h.position(follow_id, FUTURES_BTC)

        for _ in range(200):  # no tracking pass runs: only the stream can bring the fill in
            if await ledger() == Decimal("0.01"):
                break
            await asyncio.sleep(0.025)
        assert await ledger() == Decimal("0.01") == fake.accounts[KEY].signed_position("BTCUSDT")
        await streams.refresh()  # nothing open any more: the stream is closed
        assert streams.open_streams == 0
    finally:
        await streams.close()


async def test_a_partly_filled_copy_past_its_resting_time_keeps_the_fill_and_is_recorded_expired(
    fake: FakeBinance, make_venue: VenueFactory, h
) -> None:
    fake.add_account(KEY, SECRET)
    venue = await make_venue()
    follow_id, _ = await h.add_follower(max_resting_minutes=30)
    shift = [timedelta(0)]  # the engine's clock, moved on below
    engine = CopyEngine(
        OrderPath(
            h.journal,
            OneVenue(venue),
            h.events.append,
            EngineConfig(retry_delays=(0.001,)),
            clock=lambda: utcnow() + shift[0],
        )
    )
    limit = Fill(
        h.master_id,
        "binanceusdm:m",
        "t1",
        "o1",
        FUTURES_BTC,
        Side.BUY,
        Decimal("0.01"),
        Decimal(59900),
        order_type=OrderType.LIMIT,
    )
    await engine.on_fill(limit)
    await fake.trade_through("BTCUSDT", Decimal(59900), quantity=Decimal("0.004"))

    [partial] = await engine.track()  # a fill in between is recorded (and moves the ledger), not notified
    assert partial.state is OrderState.PARTIALLY_FILLED
    assert await h.position(follow_id, FUTURES_BTC) == Decimal("0.004")
    shift[0] = timedelta(minutes=31)
    [expired] = await engine.track()

    assert (expired.state, expired.status, expired.filled_quantity) == (
        OrderState.EXPIRED,
        CopyStatus.FILLED,
        Decimal("0.004"),
    )
    assert await h.position(follow_id, FUTURES_BTC) == Decimal("0.004") == fake.accounts[KEY].signed_position("BTCUSDT")
    assert [e.status for e in h.events] == [CopyStatus.PLACED, CopyStatus.FILLED]


async def test_an_account_with_an_egress_sends_every_request_through_its_proxy(
    fake: FakeBinance, make_venue: VenueFactory
) -> None:
    """The per-credential egress (``egress_proxy``) is ccxt's per-instance proxy: an account
    whose key is bound to one IP reaches the exchange only through it."""
    fake.add_account(KEY, SECRET)
    proxy = EgressProxy("127.0.0.9")
    await proxy.start()
    try:
        through = await make_venue(egress_proxy=proxy.url, egress=LOOPBACK_ALLOWED)
        assert await through.equity() > 0
        forwarded = proxy.forwarded
        assert forwarded >= 1
        direct = await make_venue()
        assert await direct.equity() > 0
        assert proxy.forwarded == forwarded
    finally:
        await proxy.close()


def test_connect_checks_a_ccxt_egress_proxy_url():
    spec = venue_spec("binanceusdm")
    assert spec is not None and "egress_proxy" in spec.optional_fields
    assert clean_secrets(spec, {"api_key": "k", "secret": "s", "egress_proxy": "http://203.0.113.7:3128"})
    with pytest.raises(errors.UserError, match="egress proxy must be an http:// or https:// URL"):
        clean_secrets(spec, {"api_key": "k", "secret": "s", "egress_proxy": "203.0.113.7:3128"})


# --------------------------------------------------------------------------- fees paid in a third coin


async def test_a_spot_commission_paid_in_bnb_is_counted_in_the_quote_at_the_bnb_price(
    fake: FakeBinance, make_venue: VenueFactory
) -> None:
    """An account paying fees with BNB (commission_faq.md): 0.01 BTC bought at 60000 costs 0.0004
    BNB (0.24 USDT at BNB 600); the coin bought is received whole, so no base fee."""
    account = fake.add_account(KEY, SECRET, pay_fees_in_bnb=True)
    account.spot_balances["BNB"] = Decimal("1")
    venue = await make_venue("binance")

    ack = await venue.place_order(intent("bnb-buy", symbol=SPOT_BTC, quantity=Decimal("0.01")))
    sold = await venue.place_order(intent("bnb-sell", symbol=SPOT_BTC, side=Side.SELL, quantity=Decimal("0.01")))

    assert (ack.filled_quantity, ack.fee, ack.base_fee, ack.reason) == (Decimal("0.01"), Decimal("0.24"), 0, None)
    assert (sold.fee, sold.base_fee) == (Decimal("0.24"), 0)
    assert fake.count("GET", "/api/v3/ticker/24hr") == 1  # BNB's price is read once and kept briefly
    [position] = await venue.positions()
    assert position.symbol == "BNB/USDT" and position.quantity == Decimal("0.9992")  # the two commissions


async def test_a_resting_order_filled_later_counts_its_bnb_commission(
    fake: FakeBinance, make_venue: VenueFactory
) -> None:
    account = fake.add_account(KEY, SECRET, pay_fees_in_bnb=True)
    account.spot_balances["BNB"] = Decimal("1")
    venue = await make_venue("binance")
    await venue.place_order(intent("bnb-rest", symbol=SPOT_BTC, order_type=OrderType.LIMIT, price=Decimal("59000")))

    await fake.trade_through("BTCUSDT", Decimal("59000"))
    found = await venue.fetch_order("bnb-rest", SPOT_BTC)

    assert found is not None and found.state is OrderState.FILLED
    [trade] = account.trades
    assert (trade.commission_asset, trade.commission) == ("BNB", Decimal("0.00039333"))  # 0.236 USDT / 600
    assert (found.fee, found.base_fee) == (Decimal("0.00039333") * 600, 0)


async def test_a_commission_in_a_coin_without_a_price_is_recorded_in_that_coin_never_guessed(
    fake: FakeBinance, make_venue: VenueFactory
) -> None:
    account = fake.add_account(KEY, SECRET, pay_fees_in_bnb=True)
    account.spot_balances["BNB"] = Decimal("1")
    venue = await make_venue("binance", read_retries=0)
    fake.fail_next("GET", "/api/v3/ticker/24hr", status=400, code=-1121, msg="Invalid symbol.")

    ack = await venue.place_order(intent("bnb-unpriced", symbol=SPOT_BTC, quantity=Decimal("0.01")))

    assert (ack.state, ack.filled_quantity, ack.fee, ack.base_fee) == (OrderState.FILLED, Decimal("0.01"), 0, 0)
    assert ack.reason == "a commission of 0.0004 BNB is not counted in USDT: binance gave no BNB/USDT price"


async def test_a_spot_followers_realized_pnl_is_net_of_commissions_paid_in_bnb(
    fake: FakeBinance, make_venue: VenueFactory, h
) -> None:
    """Through the engine and the journal: a copied round trip on a BNB-paying spot account holds
    the whole coin bought and its ledger's fees are the BNB commissions at BNB's price."""
    account = fake.add_account(KEY, SECRET, pay_fees_in_bnb=True)
    account.spot_balances["BNB"] = Decimal("1")
    venue = await make_venue("binance")
    follow_id, _ = await h.add_follower()
    engine = CopyEngine(OrderPath(h.journal, OneVenue(venue), h.events.append, EngineConfig(retry_delays=(0.001,))))

    def fill(trade_id: str, side: Side, price: str) -> Fill:
        return Fill(h.master_id, "binance:m", trade_id, trade_id, SPOT_BTC, side, Decimal("0.01"), Decimal(price))

    await engine.on_fill(fill("t1", Side.BUY, "60000"))
    assert await h.position(follow_id, SPOT_BTC) == Decimal("0.01") == account.spot_balances["BTC"]
    fake.set_mark_price("BTCUSDT", Decimal("61000"))
    await engine.on_fill(fill("t2", Side.SELL, "61000"))

    async with h.db.session() as session:
        [row] = (
            await session.execute(select(FollowPosition).where(col(FollowPosition.follow_id) == follow_id))
        ).scalars()
    commissions = [t.commission for t in account.trades]
    assert [t.commission_asset for t in account.trades] == ["BNB", "BNB"]
    assert (row.quantity, row.realized_pnl) == (0, Decimal(10))
    # 0.24 + 0.244 USDT charged as 0.0004 + 0.00040667 BNB (8 decimals), counted back at BNB's 600
    assert row.fees == sum(commissions) * 600 == Decimal("0.484002")
    assert [r.reason for r in await h.rows(follow_id=follow_id)] == [None, None]
