"""The ccxt adapter's error edge on the order path, real ccxt against the fake Binance.

An answer that may mean the order reached the matching engine is ``OrderStatusUnknown`` (the
engine looks the client id up before anything else); an answer that surely placed nothing is
a rejection or a temporary error. Binance's documented behaviour: docs/research/binance.md §1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from core import errors
from core.model import CopyStatus, OrderIntent, Side
from core.venues.ccxt.markets import CcxtMarketsCache
from core.venues.ccxt.venue import CcxtVenue
from tests.fakes.binance import (
    FUTURES,
    MSG_DISCONNECTED,
    MSG_TIMEOUT,
    MSG_UNEXPECTED_RESP,
    MSG_UNKNOWN,
    MSG_UNKNOWN_ERROR_503,
    FakeBinance,
)

BTC = "BTC/USDT:USDT"
KEY, SECRET = "edge-key-0001", "edge-secret"
ORDER = ("POST", "/fapi/v1/order")


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance() as server:
        server.add_account(KEY, SECRET)
        yield server


@pytest.fixture
async def venue(fake: FakeBinance) -> AsyncIterator[CcxtVenue]:
    created = CcxtVenue.create(
        "binanceusdm",
        KEY,
        SECRET,
        markets_cache=CcxtMarketsCache(),
        url_overrides=fake.url_overrides(),
        enable_rate_limit=False,
        retry_backoff=0.01,
    )
    await created.market(BTC)
    yield created
    await created.close()


def intent(client_order_id: str = "ct-edge-1", **overrides: Any) -> OrderIntent:
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


STATUS_UNKNOWN_ANSWERS = [
    pytest.param(400, -1000, MSG_UNKNOWN, id="-1000"),
    pytest.param(500, -1001, MSG_DISCONNECTED, id="-1001"),
    pytest.param(400, -1006, MSG_UNEXPECTED_RESP, id="-1006"),
    pytest.param(408, -1007, MSG_TIMEOUT, id="-1007"),
    pytest.param(503, 0, MSG_UNKNOWN_ERROR_503, id="503-unknown-error"),
    pytest.param(502, 0, "Bad Gateway", id="502"),
]


@pytest.mark.parametrize(("status", "code", "msg"), STATUS_UNKNOWN_ANSWERS)
async def test_an_order_accepted_then_answered_status_unknown_is_never_called_a_failure(
    fake: FakeBinance, venue: CcxtVenue, status: int, code: int, msg: str
) -> None:
    fake.fail_after_processing_next(*ORDER, status=status, code=code, msg=msg)

    with pytest.raises(errors.OrderStatusUnknown):
        await venue.place_order(intent())

    found = await venue.fetch_order("ct-edge-1", BTC)
    assert found is not None and found.status is CopyStatus.FILLED  # it was placed: the look-up says so
    assert fake.count(*ORDER) == 1 and len(fake.accounts[KEY].orders_with_client_id(FUTURES, "ct-edge-1")) == 1


@pytest.mark.parametrize(("status", "code", "msg"), STATUS_UNKNOWN_ANSWERS[:4])
async def test_status_unknown_codes_on_a_read_stay_temporary_and_retried(
    fake: FakeBinance, venue: CcxtVenue, status: int, code: int, msg: str
) -> None:
    fake.fail_next("GET", "/fapi/v3/account", status=status, code=code, msg=msg)
    assert await venue.equity() == Decimal("10000")
    assert fake.count("GET", "/fapi/v3/account") == 2


async def test_clock_drift_on_the_order_path_resyncs_and_sends_once_more(fake: FakeBinance, venue: CcxtVenue) -> None:
    await venue.warm_up()  # markets and the connection, before the server's clock jumps
    fake.skew_clock(-20_000)  # -1021: "Timestamp for this request is outside of the recvWindow": nothing placed

    ack = await venue.place_order(intent())

    assert ack.status is CopyStatus.FILLED
    assert fake.count(*ORDER) == 2 and fake.count("GET", "/fapi/v1/time") >= 1
    assert len(fake.accounts[KEY].orders_with_client_id(FUTURES, "ct-edge-1")) == 1


async def test_position_mode_changed_on_the_venue_is_read_again_after_4061(fake: FakeBinance, venue: CcxtVenue) -> None:
    assert await venue.hedge_mode() is False  # one-way mode read and kept
    fake.accounts[KEY].hedge_mode = True  # the user switched to hedge mode on Binance

    ack = await venue.place_order(intent())

    assert ack.status is CopyStatus.FILLED
    [order] = fake.accounts[KEY].orders_with_client_id(FUTURES, "ct-edge-1")
    assert order.position_side == "LONG"
    assert fake.count(*ORDER) == 2 and fake.count("GET", "/fapi/v1/positionSide/dual") == 2

    await venue.place_order(intent("ct-edge-2"))  # the new mode is kept: no second -4061
    assert fake.count(*ORDER) == 3


async def test_rejected_api_key_after_a_working_session_is_a_temporary_ban(fake: FakeBinance, venue: CcxtVenue) -> None:
    await venue.equity()  # a private call succeeded: ccxt now reads -2015 as a temporary ban
    fake.fail_next(*ORDER, status=401, code=-2015, msg="Invalid API-key, IP, or permissions for action.")

    with pytest.raises(errors.RateLimited, match="-2015"):
        await venue.place_order(intent())


async def test_rejected_api_key_on_a_fresh_session_is_an_authentication_error(fake: FakeBinance) -> None:
    venue = CcxtVenue.create(
        "binanceusdm", KEY, SECRET, markets_cache=CcxtMarketsCache(), url_overrides=fake.url_overrides()
    )
    try:
        await venue.market(BTC)
        fake.fail_next("GET", "/fapi/v3/account", status=401, code=-2015, msg="Invalid API-key, IP, or permissions.")
        with pytest.raises(errors.AuthenticationError, match="-2015"):
            await venue.equity()
    finally:
        await venue.close()


async def test_percent_price_rejection_is_an_invalid_order_saying_why(fake: FakeBinance, venue: CcxtVenue) -> None:
    fake.fail_next(
        *ORDER,
        status=400,
        code=-4131,
        msg="The counterparty's best price does not meet the PERCENT_PRICE filter limit.",
    )

    with pytest.raises(errors.InvalidOrder, match="PERCENT_PRICE") as caught:
        await venue.place_order(intent())
    assert "too far from the mark price" in str(caught.value)
