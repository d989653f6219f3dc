"""The fake SmartAPI behaves as Angel One does under the 2026 retail-algo rules, seen through the
real smartapi-python (copytrade's ``QuietSmartConnect`` and ``OrderUpdateSocket``): orders rest
until filled, partly or fully; the RMS rejects after accepting; MARKET and IOC are refused; order
requests count only from the client's static IP; orders per second are capped per segment;
product types are carried everywhere. See tests/fakes/smartapi.py for the sources of each rule."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyotp
import pytest
import requests

from core.venues.angelone.sdk import SDK, OrderUpdateSocket, QuietSmartConnect
from tests.fakes.smartapi import (
    FOLLOWER,
    LOST,
    LOST_REQUEST_DELAY_SECONDS,
    MASTER,
    REFUSALS,
    FakeAccount,
    FakeSmartApi,
    fresh_accounts,
)
from tests.harness import LOOPBACK_ALLOWED

WAIT_LIMIT_SECONDS = 10  # only a bound on a failing test, never an expectation
STATIC_IP_REFUSED = REFUSALS["static_ip"]["errorcode"]
MARKET_OR_IOC_REFUSED = REFUSALS["market_or_ioc"]["errorcode"]
ABOVE_ORDERS_PER_SECOND = REFUSALS["orders_per_second"]["errorcode"]


@pytest.fixture
def fake() -> Iterator[FakeSmartApi]:
    # these tests read the books straight after each step to check other rules; the read limits
    # have tests of their own (``limited``)
    server = FakeSmartApi(fresh_accounts(), read_limits={}).start()
    yield server
    server.stop()


def logged_in(fake: FakeSmartApi, account: FakeAccount, *, proxy: str | None = None) -> Any:
    """A SmartConnect logged in to ``account``, sending through the ``proxy`` URL if given."""
    client = QuietSmartConnect(
        account.api_key, root=fake.rest_root, timeout=5.0, public_ip=None, proxy=proxy, egress=LOOPBACK_ALLOWED
    )
    answer = client.generateSession(account.client_code, account.pin, pyotp.TOTP(account.totp_secret).now())
    assert answer["status"] is True
    return client


def limit_order(
    price: str = "612.35",
    quantity: str = "10",
    *,
    side: str = "BUY",
    symbol: str = "SBIN-EQ",
    token: str = "3045",
    exchange: str = "NSE",
    product: str = "INTRADAY",
    **overrides: str,
) -> dict[str, str]:
    return {
        "variety": "NORMAL",
        "tradingsymbol": symbol,
        "symboltoken": token,
        "transactiontype": side,
        "exchange": exchange,
        "ordertype": "LIMIT",
        "producttype": product,
        "duration": "DAY",
        "price": price,
        "triggerprice": "0",
        "squareoff": "0",
        "stoploss": "0",
        "quantity": quantity,
        **overrides,
    }


def book(client: Any) -> list[dict[str, Any]]:
    return client.orderBook()["data"] or []


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@dataclass
class OrderUpdates:
    """The follower's order-update socket, run in a thread as the listener runs it."""

    socket: OrderUpdateSocket
    messages: list[dict[str, Any]] = field(default_factory=list)
    opened: threading.Event = field(default_factory=threading.Event)

    def orders(self) -> list[dict[str, Any]]:
        return [m["orderData"] for m in self.messages if m["order-status"] != "AB00"]


@pytest.fixture
def order_updates() -> Iterator[Callable[[FakeSmartApi, Any, FakeAccount], OrderUpdates]]:
    started: list[tuple[FakeSmartApi, threading.Thread]] = []

    def start(fake: FakeSmartApi, client: Any, account: FakeAccount) -> OrderUpdates:
        updates: OrderUpdates

        def on_message(text: str) -> None:
            updates.messages.append(json.loads(text))

        socket = OrderUpdateSocket(
            fake.ws_url,
            auth_token=f"Bearer {client.access_token}",
            api_key=account.api_key,
            client_code=account.client_code,
            feed_token=client.feed_token,
            on_open=lambda: updates.opened.set(),
            on_message=on_message,
            on_close=lambda: None,
        )
        updates = OrderUpdates(socket)
        thread = threading.Thread(target=socket.connect, daemon=True)
        thread.start()
        started.append((fake, thread))
        wait_until(lambda: updates.opened.is_set() and len(updates.messages) >= 1)  # the AB00 ack
        return updates

    yield start
    for fake, thread in started:
        # the server's close frame ends the socket's run_forever. (OrderUpdateSocket.close_connection()
        # from this thread sometimes left it blocked in poll() for good: about 1 run in 6 here.)
        fake.drop_order_update_sockets()
        thread.join(WAIT_LIMIT_SECONDS)
        assert not thread.is_alive()


# -- placeOrder returns only the id; fills come later, maybe partly --------------------------------


def test_place_order_answers_only_the_order_id_and_the_order_rests_open(fake):
    client = logged_in(fake, FOLLOWER)

    order_id = client.placeOrder(limit_order())

    assert isinstance(order_id, str) and order_id
    [order] = book(client)
    assert (order["orderid"], order["status"], order["filledshares"], order["unfilledshares"]) == (
        order_id,
        "open",
        "0",
        "10",
    )
    assert client.tradeBook()["data"] is None


def test_a_partial_then_complete_fill_reaches_the_socket_the_order_book_and_the_trade_book(fake, order_updates):
    client = logged_in(fake, FOLLOWER)
    updates = order_updates(fake, client, FOLLOWER)
    order_id = client.placeOrder(limit_order("612.35", "10"))

    fake.fill(FOLLOWER.client_code, order_id, 4, "612.30")
    assert book(client)[0]["status"] == "open"
    fake.fill(FOLLOWER.client_code, order_id, price="612.35")
    wait_until(lambda: len(updates.orders()) == 3)

    seen = [(o["status"], o["filledshares"], o["unfilledshares"]) for o in updates.orders()]
    assert seen == [("open", "0", "10"), ("open", "4", "6"), ("complete", "10", "0")]
    [order] = book(client)
    assert (order["status"], order["filledshares"], order["averageprice"]) == ("complete", "10", "612.33")
    trades = client.tradeBook()["data"]
    assert [(t["orderid"], t["fillsize"], t["fillprice"]) for t in trades] == [
        (order_id, "4", "612.30"),
        (order_id, "6", "612.35"),
    ]
    [position] = client.position()["data"]
    assert (position["tradingsymbol"], position["netqty"], position["producttype"]) == ("SBIN-EQ", "10", "INTRADAY")


def test_the_fill_helper_never_fills_through_the_limit_price(fake):
    client = logged_in(fake, FOLLOWER)
    buy = client.placeOrder(limit_order("612.35"))
    sell = client.placeOrder(limit_order("612.35", side="SELL"))

    with pytest.raises(AssertionError, match="through the limit"):
        fake.fill(FOLLOWER.client_code, buy, price="612.40")
    with pytest.raises(AssertionError, match="through the limit"):
        fake.fill(FOLLOWER.client_code, sell, price="612.30")
    assert client.tradeBook()["data"] is None


def test_a_stop_loss_limit_order_waits_for_its_trigger(fake):
    client = logged_in(fake, FOLLOWER)
    order_id = client.placeOrder(
        limit_order("611.00", side="SELL", variety="STOPLOSS", ordertype="STOPLOSS_LIMIT", triggerprice="611.50")
    )
    assert book(client)[0]["status"] == "trigger pending"
    with pytest.raises(AssertionError, match="not open"):
        fake.fill(FOLLOWER.client_code, order_id)

    fake.trigger(FOLLOWER.client_code, order_id)
    fake.fill(FOLLOWER.client_code, order_id, price="611.20")

    assert (book(client)[0]["status"], book(client)[0]["averageprice"]) == ("complete", "611.20")


def test_the_masters_manual_orders_still_come_from_master_order_with_their_trades(fake):
    client = logged_in(fake, MASTER)
    order = fake.master_order(MASTER.client_code, quantity=10, filled=4, average_price="600", push=False)
    fake.master_order(
        MASTER.client_code,
        order_id=order["orderid"],
        quantity=10,
        filled=10,
        average_price="603",
        status="complete",
        product="DELIVERY",
        push=False,
    )

    assert [(t["fillsize"], t["fillprice"]) for t in client.tradeBook()["data"]] == [("4", "600.00"), ("6", "605.00")]
    assert book(client)[0]["producttype"] == "DELIVERY"


# -- the RMS rejects after accepting ----------------------------------------------------------------


def test_the_rms_rejects_an_accepted_order_with_its_reason(fake, order_updates):
    client = logged_in(fake, FOLLOWER)
    updates = order_updates(fake, client, FOLLOWER)
    fake.reject_next_order(FOLLOWER.client_code, "RMS: margin exceeds")

    order_id = client.placeOrder(limit_order())

    assert order_id  # accepted: placeOrder cannot tell
    wait_until(lambda: [o["status"] for o in updates.orders()] == ["open", "rejected"])
    assert updates.orders()[-1]["text"] == "RMS: margin exceeds"
    [order] = book(client)
    assert (order["orderid"], order["status"], order["text"]) == (order_id, "rejected", "RMS: margin exceeds")
    assert client.placeOrder(limit_order())  # the next order is not rejected
    wait_until(lambda: len(updates.orders()) == 3)
    assert book(client)[-1]["status"] == "open"


def test_the_default_rms_rejection_names_the_funds_required(fake):
    client = logged_in(fake, FOLLOWER)
    fake.reject_next_order(FOLLOWER.client_code)
    client.placeOrder(limit_order("612.35", "10"))

    wait_until(lambda: book(client)[0]["status"] == "rejected")
    assert "Insufficient Funds" in book(client)[0]["text"] and "6123.50" in book(client)[0]["text"]


# -- MARKET, STOPLOSS_MARKET and IOC are refused ----------------------------------------------------


@pytest.mark.parametrize(
    "terms",
    [
        {"ordertype": "MARKET", "price": "0"},
        {"duration": "IOC"},
        {"variety": "STOPLOSS", "ordertype": "STOPLOSS_MARKET", "price": "0", "triggerprice": "611.50"},
    ],
    ids=["market", "ioc", "stoploss-market"],
)
def test_market_and_ioc_orders_are_refused_with_angel_ones_error(fake, terms):
    client = logged_in(fake, FOLLOWER)

    assert client.placeOrder(limit_order(**terms)) is None  # the SDK's placeOrder swallows refusals
    answer = client.placeOrderFullResponse(limit_order(**terms))

    assert (answer["status"], answer["errorcode"]) == (False, MARKET_OR_IOC_REFUSED)
    assert "Market and IOC orders are not allowed" in answer["message"]
    assert book(client) == []


def test_a_resting_order_cannot_be_modified_into_a_market_order(fake):
    client = logged_in(fake, FOLLOWER)
    order_id = client.placeOrder(limit_order("612.35"))
    modify = {**limit_order("612.50"), "orderid": order_id}

    assert client.modifyOrder({**modify, "ordertype": "MARKET", "price": "0"})["errorcode"] == MARKET_OR_IOC_REFUSED
    assert client.modifyOrder(modify)["status"] is True
    assert book(client)[0]["price"] == "612.50"


def test_a_price_off_the_tick_is_refused(fake):
    client = logged_in(fake, FOLLOWER)
    answer = client.placeOrderFullResponse(limit_order("612.33"))
    assert answer["errorcode"] == REFUSALS["off_tick"]["errorcode"] and book(client) == []


# -- order requests only from the registered static IP ----------------------------------------------


def test_an_order_from_an_unregistered_ip_is_refused_whatever_the_public_ip_header_says(fake):
    fake.register_static_ip(FOLLOWER.client_code, "127.0.0.5")
    direct = logged_in(fake, FOLLOWER)
    direct.clientPublicIp = "127.0.0.5"  # the header claims the registered IP; the connection is not from it

    answer = direct.placeOrderFullResponse(limit_order())

    assert (answer["status"], answer["errorcode"]) == (False, STATIC_IP_REFUSED)
    assert "registered static IP" in answer["message"]
    assert book(direct) == []  # reads are not order execution
    [request] = fake.order_requests
    assert (request.source_ip, request.public_ip_header, request.errorcode) == (
        "127.0.0.1",
        "127.0.0.5",
        STATIC_IP_REFUSED,
    )


def test_an_order_through_the_clients_own_egress_is_accepted(fake):
    fake.register_static_ip(FOLLOWER.client_code, "127.0.0.5")
    egress = fake.start_egress_proxy("127.0.0.5")
    client = logged_in(fake, FOLLOWER, proxy=egress.url)

    order_id = client.placeOrder(limit_order())
    assert client.cancelOrder(order_id, "NORMAL")["status"] is True

    assert [(r.route, r.source_ip, r.errorcode) for r in fake.order_requests] == [
        ("place_order", "127.0.0.5", ""),
        ("cancel_order", "127.0.0.5", ""),
    ]
    assert egress.forwarded >= 3  # login, place, cancel


def test_each_client_is_accepted_only_through_its_own_egress(fake):
    first = FakeAccount("key-a-11", "A11", "1111", pyotp.random_base32(), static_ip="127.0.0.11")
    second = FakeAccount("key-b-12", "B12", "2222", pyotp.random_base32(), static_ip="127.0.0.12")
    server = FakeSmartApi([first, second]).start()
    try:
        egress_a, egress_b = server.start_egress_proxy("127.0.0.11"), server.start_egress_proxy("127.0.0.12")
        a_through_a = logged_in(server, first, proxy=egress_a.url)
        a_through_b = logged_in(server, first, proxy=egress_b.url)
        b_through_b = logged_in(server, second, proxy=egress_b.url)

        assert a_through_a.placeOrder(limit_order())
        assert b_through_b.placeOrder(limit_order())
        assert a_through_b.placeOrderFullResponse(limit_order())["errorcode"] == STATIC_IP_REFUSED
        assert [len(server.orders_of(code)) for code in ("A11", "B12")] == [1, 1]
    finally:
        server.stop()


def test_an_egress_with_credentials_refuses_requests_without_them(fake):
    fake.register_static_ip(FOLLOWER.client_code, "127.0.0.6")
    egress = fake.start_egress_proxy("127.0.0.6", username="ops", password="s3cret")
    anonymous = egress.url.replace("ops:s3cret@", "")

    with pytest.raises(SDK.exceptions.DataException):  # the SDK cannot read the proxy's 407
        logged_in(fake, FOLLOWER, proxy=anonymous)
    client = logged_in(fake, FOLLOWER, proxy=egress.url)
    assert client.placeOrder(limit_order())
    assert egress.refused == 1


def test_an_account_without_a_registered_ip_can_place_no_order(fake):
    fake.register_static_ip(FOLLOWER.client_code, None)
    client = logged_in(fake, FOLLOWER)
    assert client.placeOrderFullResponse(limit_order())["errorcode"] == STATIC_IP_REFUSED


def test_a_static_ip_is_registered_for_one_client_only(fake):
    with pytest.raises(ValueError, match="another client"):
        fake.register_static_ip(MASTER.client_code, "127.0.0.1")  # the follower's
    shared = [FakeAccount(f"k{n}", f"C{n}", "1234", pyotp.random_base32(), static_ip="127.0.0.9") for n in (1, 2)]
    with pytest.raises(ValueError, match="one client only"):
        FakeSmartApi(shared)
    FakeSmartApi(shared, unique_static_ips=False)  # family accounts


# -- orders per second, per client and exchange segment ---------------------------------------------


def place_at_once(client: Any, orders: list[dict[str, str]]) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(len(orders)) as pool:
        return list(pool.map(client.placeOrderFullResponse, orders))


def test_orders_above_ten_a_second_in_a_segment_are_refused(fake):
    client = logged_in(fake, FOLLOWER)

    answers = place_at_once(client, [limit_order() for _ in range(11)])
    other_segment = client.placeOrderFullResponse(
        limit_order("101.25", "25", symbol="NIFTY24DEC24000CE", token="43650", exchange="NFO")
    )

    assert sorted(a["errorcode"] for a in answers) == [""] * 10 + [ABOVE_ORDERS_PER_SECOND]
    assert other_segment["status"] is True
    assert len(book(client)) == 11
    time.sleep(1.05)
    assert client.placeOrderFullResponse(limit_order())["status"] is True


def test_the_threshold_is_configurable_and_cancellations_count(fake):
    server = FakeSmartApi(fresh_accounts(), orders_per_second=2).start()
    try:
        client = logged_in(server, FOLLOWER)
        order_id = client.placeOrder(limit_order())
        assert client.cancelOrder(order_id, "NORMAL")["status"] is True
        assert client.placeOrderFullResponse(limit_order())["errorcode"] == ABOVE_ORDERS_PER_SECOND
    finally:
        server.stop()


def test_a_registered_algo_is_allowed_its_registered_rate(fake):
    accounts = fresh_accounts()
    follower = accounts[1]
    follower.algo_id, follower.algo_orders_per_second = "NSE-ALGO-000123", 15
    server = FakeSmartApi(accounts).start()
    try:
        client = logged_in(server, follower)
        answers = place_at_once(client, [limit_order() for _ in range(16)])
        assert sorted(a["errorcode"] for a in answers) == [""] * 15 + [ABOVE_ORDERS_PER_SECOND]
    finally:
        server.stop()
    with pytest.raises(ValueError, match="go together"):
        FakeAccount("k", "C", "1234", pyotp.random_base32(), algo_id="NSE-ALGO-1")


# -- product types ----------------------------------------------------------------------------------


def test_product_types_are_carried_on_orders_trades_positions_and_updates(fake, order_updates):
    client = logged_in(fake, FOLLOWER)
    updates = order_updates(fake, client, FOLLOWER)
    delivery = client.placeOrder(limit_order(product="DELIVERY"))
    intraday = client.placeOrder(limit_order(product="INTRADAY", quantity="3"))
    fake.fill(FOLLOWER.client_code, delivery)
    fake.fill(FOLLOWER.client_code, intraday)
    wait_until(lambda: len(updates.orders()) == 4)

    assert {o["orderid"]: o["producttype"] for o in book(client)} == {delivery: "DELIVERY", intraday: "INTRADAY"}
    assert {(o["orderid"], o["producttype"]) for o in updates.orders()} == {
        (delivery, "DELIVERY"),
        (intraday, "INTRADAY"),
    }
    assert {(t["orderid"], t["producttype"]) for t in client.tradeBook()["data"]} == {
        (delivery, "DELIVERY"),
        (intraday, "INTRADAY"),
    }
    assert {(p["producttype"], p["netqty"]) for p in client.position()["data"]} == {
        ("DELIVERY", "10"),
        ("INTRADAY", "3"),
    }
    refused = client.placeOrderFullResponse(limit_order(product="BO"))
    assert refused["status"] is False and refused["errorcode"] == "AB1012"


def test_a_sell_of_nothing_held_makes_a_short_intraday_position(fake):
    """NSE allows intraday short selling: a SELL with no position fills and the net goes negative."""
    client = logged_in(fake, FOLLOWER)
    sold = client.placeOrder(limit_order(side="SELL", quantity="10"))
    fake.fill(FOLLOWER.client_code, sold)

    [position] = client.position()["data"]
    assert (position["producttype"], position["netqty"], position["sellqty"]) == ("INTRADAY", "-10", "10")


def test_the_brokers_square_off_closes_intraday_positions_only_with_orders_of_its_own(fake, order_updates):
    client = logged_in(fake, FOLLOWER)
    updates = order_updates(fake, client, FOLLOWER)
    intraday = client.placeOrder(limit_order(quantity="10"))
    delivery = client.placeOrder(limit_order(quantity="4", product="DELIVERY"))
    fake.fill(FOLLOWER.client_code, intraday)
    fake.fill(FOLLOWER.client_code, delivery)
    resting = client.placeOrder(limit_order(quantity="2", price="600"))
    fake.last_prices["SBIN-EQ"] = "615.00"

    [square_off] = fake.square_off_intraday(FOLLOWER.client_code)

    assert (square_off["transactiontype"], square_off["quantity"], square_off["ordertag"]) == ("SELL", "10", "")
    assert (square_off["status"], square_off["averageprice"]) == ("complete", "615.00")
    assert {(p["producttype"], p["netqty"]) for p in client.position()["data"]} == {
        ("INTRADAY", "0"),
        ("DELIVERY", "4"),
    }
    assert {o["orderid"]: o["status"] for o in book(client)}[resting] == "cancelled"  # cancelled first
    assert square_off["orderid"] in {t["orderid"] for t in client.tradeBook()["data"]}
    wait_until(lambda: square_off["orderid"] in {o["orderid"] for o in updates.orders()})


def test_holdings_are_served_by_get_holding(fake):
    client = logged_in(fake, FOLLOWER)
    assert client.holding()["data"] is None
    fake.hold(FOLLOWER.client_code, "SBIN-EQ", 30, "550.5", t1=5)

    [holding] = client.holding()["data"]

    assert (holding["tradingsymbol"], holding["quantity"], holding["t1quantity"], holding["product"]) == (
        "SBIN-EQ",
        "30",
        "5",
        "DELIVERY",
    )


def test_an_nfo_order_above_the_freeze_quantity_is_accepted_then_rejected_by_the_exchange(fake, order_updates):
    """NSE: an order "with quantity more than the respective freeze quantity limit" is rejected; the
    freeze quantity itself is taken (NIFTY 1,800 units; 27 lots of 65 = 1,755 is the most on the lot)."""
    client = logged_in(fake, FOLLOWER)
    updates = order_updates(fake, client, FOLLOWER)
    option = {"symbol": "NIFTY29DEC2626000CE", "token": "61250", "exchange": "NFO", "price": "120.05"}

    above = client.placeOrder(limit_order(quantity="1820", **option))  # 28 lots
    within = client.placeOrder(limit_order(quantity="1755", **option))

    wait_until(lambda: {o["orderid"]: o["status"] for o in updates.orders()}.get(above) == "rejected")
    orders = {o["orderid"]: o for o in book(client)}
    assert orders[above]["text"] == "Order quantity 1820 is above the freeze quantity 1800 of the contract"
    assert orders[within]["status"] == "open"
    assert fake.freeze_quantity({"exch_seg": "NFO", "name": "NIFTY"}) == 1800
    assert fake.freeze_quantity({"exch_seg": "NSE", "name": "SBIN"}) is None


def test_cancelling_a_partly_filled_order_keeps_what_filled(fake):
    client = logged_in(fake, FOLLOWER)
    order_id = client.placeOrder(limit_order("612.35", "10"))
    fake.fill(FOLLOWER.client_code, order_id, 4)

    assert client.cancelOrder(order_id, "NORMAL")["status"] is True

    [order] = book(client)
    assert (order["status"], order["filledshares"], order["cancelsize"]) == ("cancelled", "4", "6")
    assert client.cancelOrder(order_id, "NORMAL")["status"] is False


def test_ltp_data_answers_the_instruments_last_price_and_refuses_a_token_of_another_symbol(fake):
    client = logged_in(fake, FOLLOWER)
    fake.last_prices["SBIN-EQ"] = "803.45"

    answer = client.ltpData("NSE", "SBIN-EQ", "3045")
    assert answer["status"] is True
    assert answer["data"]["ltp"] == 803.45
    assert {k: answer["data"][k] for k in ("exchange", "tradingsymbol", "symboltoken")} == {
        "exchange": "NSE",
        "tradingsymbol": "SBIN-EQ",
        "symboltoken": "3045",
    }
    refused = client.ltpData("NSE", "SBIN-EQ", "500112")  # BSE SBIN's token
    assert (refused["status"], refused["errorcode"]) == (False, "AB1009")


# -- a lost answer: the order is recorded later, or never; the tag guards nothing ------------------


def test_a_repeated_ordertag_makes_a_second_order(fake):
    client = logged_in(fake, FOLLOWER)

    first = client.placeOrder(limit_order(ordertag="ct1x42x7"))
    second = client.placeOrder(limit_order(ordertag="ct1x42x7"))

    assert first and second and first != second
    assert [(o["orderid"], o["ordertag"]) for o in book(client)] == [(first, "ct1x42x7"), (second, "ct1x42x7")]


def test_an_order_whose_answer_is_lost_is_recorded_only_after_the_client_gave_up(fake):
    client = logged_in(fake, FOLLOWER)
    client.timeout = 0.2
    fake.fail_next("place_order", "timeout", record_after=0.6)

    with pytest.raises(requests.ReadTimeout):
        client.placeOrder(limit_order(ordertag="lost1"))
    assert fake.orders_of(FOLLOWER.client_code) == [] and fake.order_requests == []

    wait_until(lambda: len(fake.orders_of(FOLLOWER.client_code)) == 1)
    [order] = fake.orders_of(FOLLOWER.client_code)
    assert (order["ordertag"], order["status"]) == ("lost1", "open")
    [request] = fake.order_requests
    assert (request.route, request.errorcode) == ("place_order", "")


def test_an_order_whose_answer_is_lost_may_never_be_recorded(fake):
    client = logged_in(fake, FOLLOWER)
    client.timeout = 0.2
    fake.fail_next("place_order", "timeout", recorded="never")

    with pytest.raises(requests.ReadTimeout):
        client.placeOrder(limit_order(ordertag="lost2"))
    time.sleep(fake.slow_answer_seconds)  # the fake has answered (a gateway timeout) by now

    assert fake.orders_of(FOLLOWER.client_code) == []
    [request] = fake.order_requests
    assert (request.route, request.body["ordertag"], request.errorcode) == ("place_order", "lost2", LOST)


def test_a_client_that_waits_long_enough_gets_the_late_orders_answer_or_a_gateway_timeout(fake):
    client = logged_in(fake, FOLLOWER)
    fake.slow_answer_seconds = 0.3
    fake.fail_next("place_order", "timeout", record_after=0.1)
    fake.fail_next("place_order", "timeout", record_after=0.5)

    recorded_in_time = client.placeOrderFullResponse(limit_order(ordertag="late1"))
    with pytest.raises(SDK.exceptions.DataException, match="504 Gateway Time-out"):
        client.placeOrderFullResponse(limit_order(ordertag="late2"))

    assert recorded_in_time["status"] is True
    wait_until(lambda: len(fake.orders_of(FOLLOWER.client_code)) == 2)
    assert [o["ordertag"] for o in fake.orders_of(FOLLOWER.client_code)] == ["late1", "late2"]


def test_the_delay_of_a_lost_request_is_drawn_from_the_seeded_range():
    def delays(seed: int) -> list[float]:
        fake = FakeSmartApi(fresh_accounts(), seed=seed)
        return [fake._rng.uniform(*fake.lost_request_delay) for _ in range(5)]

    assert delays(7) == delays(7) != delays(8)
    assert all(LOST_REQUEST_DELAY_SECONDS[0] <= d <= LOST_REQUEST_DELAY_SECONDS[1] for d in delays(7))
