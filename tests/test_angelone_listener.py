"""AngelOneFillSource: the master's fills from the order-update socket and the order book, each once."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import socket
import threading
import time
from collections.abc import Callable
from decimal import Decimal

import pytest

from core.model import Fill, FillStatus, MasterOrderChange, MasterOrderEvent, OrderType, Side
from core.throttle import RateLimit, Throttle
from core.venues.angelone.accounts import AngelOneAccounts
from core.venues.angelone.credentials import AngelOneEndpoints
from core.venues.angelone.listener import AngelOneFillSource, FillTracker
from core.venues.angelone.sdk import OrderUpdateSocket
from tests.fakes.smartapi import MASTER, FakeSmartApi, credentials_of, fresh_accounts

WAIT_LIMIT_SECONDS = 10  # only a bound on a failing test, never an expectation


@pytest.fixture
def fake():
    server = FakeSmartApi(fresh_accounts()).start()
    yield server
    server.stop()


def make_source(fake: FakeSmartApi, **options) -> AngelOneFillSource:
    endpoints = AngelOneEndpoints(
        rest_root=fake.rest_root, order_updates_url=fake.ws_url, scrip_master_url=fake.scrip_master_url
    )
    accounts = AngelOneAccounts(
        endpoints, login_limiter=Throttle([RateLimit(1, 0.0)]), session_options={"backoff_base": 0.01}
    )
    settings = {
        "poll_interval": 0.05,
        "connected_poll_interval": 3600.0,
        "min_poll_spacing": 0.0,
        "reconnect_delay": 0.05,
        **options,
    }
    return AngelOneFillSource(accounts.session(credentials_of(MASTER)), master_id=3, **settings)


async def wait_until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_LIMIT_SECONDS):
        while not condition():  # noqa: ASYNC110 (a condition on state other threads change, no event to await)
            await asyncio.sleep(0.01)


class Collector:
    """Drains a source's fills in the background so tests can wait on them."""

    def __init__(self, source: AngelOneFillSource) -> None:
        self.fills: list[Fill] = []
        self._task = asyncio.create_task(self._drain(source))

    async def _drain(self, source: AngelOneFillSource) -> None:
        async for event in source.fills():
            if isinstance(event, Fill):  # the tests here are about executions
                self.fills.append(event)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@pytest.fixture
async def running(fake):
    """A started source with its collector; waits for the socket to connect."""
    started: list[tuple[AngelOneFillSource, Collector]] = []

    async def start(**options) -> tuple[AngelOneFillSource, Collector]:
        source = make_source(fake, **options)
        collector = Collector(source)
        started.append((source, collector))
        return source, collector

    yield start
    for source, collector in started:
        await collector.stop()
        await source.close()


async def test_a_partial_then_complete_order_gives_two_increments_summing_to_the_order(fake, running):
    source, collector = await running()
    await wait_until(lambda: source.health().connected)

    order = fake.master_order(
        MASTER.client_code, quantity=50, filled=20, average_price="612.00", order_type="LIMIT", price="612.50"
    )
    await wait_until(lambda: len(collector.fills) == 1)
    fake.master_order(
        MASTER.client_code,
        order_id=order["orderid"],
        quantity=50,
        filled=50,
        average_price="612.30",
        order_type="LIMIT",
        price="612.50",
        status="complete",
    )
    await wait_until(lambda: len(collector.fills) == 2)

    first, second = collector.fills
    assert (first.quantity, first.status, first.trade_id) == (
        Decimal(20),
        FillStatus.PARTIALLY_FILLED,
        f"{order['orderid']}:20",
    )
    assert (second.quantity, second.status, second.trade_id) == (
        Decimal(30),
        FillStatus.FILLED,
        f"{order['orderid']}:50",
    )
    assert first.quantity + second.quantity == Decimal(50)
    assert second.price == Decimal("612.5000")  # the second increment's own price from the averages
    assert (first.symbol, first.side, first.order_type, first.limit_price, first.venue, first.master_id) == (
        "NSE:SBIN-EQ",
        Side.BUY,
        OrderType.LIMIT,
        Decimal("612.5"),
        "angelone:3",
        3,
    )


async def test_an_order_seen_by_the_socket_and_the_poller_is_emitted_once(fake, running):
    source, collector = await running(connected_poll_interval=0.02)
    await wait_until(lambda: source.health().connected)

    fake.master_order(
        MASTER.client_code,
        quantity=10,
        filled=10,
        average_price="101.25",
        status="complete",
        side="SELL",
        symbol="NIFTY24DEC24000CE",
        exchange="NFO",
    )
    await wait_until(lambda: len(collector.fills) == 1)
    polls_after_fill = fake.calls["order_book"]
    await wait_until(lambda: fake.calls["order_book"] >= polls_after_fill + 3)
    fake.push_order_update(MASTER.client_code, fake.orders_of(MASTER.client_code)[0])  # a duplicate push
    await wait_until(lambda: fake.calls["order_book"] >= polls_after_fill + 5)

    [fill] = collector.fills
    assert (fill.symbol, fill.side, fill.quantity, fill.price) == (
        "NFO:NIFTY24DEC24000CE",
        Side.SELL,
        Decimal(10),
        Decimal("101.25"),
    )


async def test_orders_filled_while_the_socket_was_down_are_recovered_on_reconnect(fake, running):
    source, collector = await running(poll_interval=3600.0)  # only the reconnect can recover the gap
    await wait_until(lambda: source.health().connected)
    polls_before_drop = fake.calls["order_book"]

    fake.refuse_order_update_sockets = True
    fake.drop_order_update_sockets()
    await wait_until(lambda: not source.health().connected and fake.calls["order_book"] > polls_before_drop)
    assert source.health().mode == "polling"
    gap_order = fake.master_order(
        MASTER.client_code, quantity=5, filled=5, average_price="600.05", status="complete", push=False
    )
    fake.refuse_order_update_sockets = False
    await wait_until(lambda: source.health().connected and len(collector.fills) == 1)

    assert collector.fills[0].order_id == gap_order["orderid"]
    assert source.health().reconnects == 1


async def test_the_order_book_is_polled_when_the_socket_is_unavailable(fake, running):
    fake.refuse_order_update_sockets = True
    source, collector = await running()
    await wait_until(lambda: fake.calls["order_book"] >= 2)

    fake.master_order(MASTER.client_code, quantity=3, filled=3, average_price="99.95", status="complete", push=False)
    await wait_until(lambda: len(collector.fills) == 1)

    health = source.health()
    assert (health.connected, health.mode) == (False, "polling") and health.last_event_at is not None


async def test_orders_already_in_the_book_at_start_are_not_copied(fake, running):
    old = fake.master_order(MASTER.client_code, quantity=4, filled=4, average_price="10", status="complete", push=False)
    source, collector = await running(connected_poll_interval=0.02)
    await wait_until(lambda: source.health().connected)
    polls = fake.calls["order_book"]

    fake.master_order(MASTER.client_code, quantity=2, filled=2, average_price="11", status="complete")
    await wait_until(lambda: len(collector.fills) == 1 and fake.calls["order_book"] >= polls + 3)

    assert [f.order_id for f in collector.fills] != [old["orderid"]]
    assert len(collector.fills) == 1


async def test_the_listener_logs_in_again_once_when_its_token_is_refused(fake, running):
    source, collector = await running()
    await wait_until(lambda: source.health().connected)
    fake.expire_sessions()
    fake.refuse_order_update_sockets = True
    fake.drop_order_update_sockets()

    fake.master_order(MASTER.client_code, quantity=1, filled=1, average_price="5", status="complete", push=False)
    await wait_until(lambda: len(collector.fills) == 1)
    assert fake.logins[MASTER.client_code] == 2


def test_tracker_ignores_stale_and_repeated_snapshots():
    tracker = FillTracker(master_id=1)
    order = {
        "orderid": "9",
        "filledshares": "30",
        "averageprice": 100.0,
        "quantity": "30",
        "transactiontype": "BUY",
        "status": "complete",
        "exchange": "NSE",
        "tradingsymbol": "SBIN-EQ",
        "ordertype": "STOPLOSS_MARKET",
        "triggerprice": 99.5,
        "price": 0.0,
    }
    stale = {**order, "filledshares": "10", "status": "open"}

    fill = tracker.observe(order)
    assert fill is not None and fill.quantity == Decimal(30) and fill.stop_price == Decimal("99.5")
    assert fill.order_type is OrderType.STOP_MARKET and fill.limit_price is None
    assert tracker.observe(order) is None
    assert tracker.observe(stale) is None


def test_tracker_skips_orders_without_an_execution():
    tracker = FillTracker(master_id=1)
    base = {"orderid": "5", "quantity": "10", "transactiontype": "BUY", "exchange": "NSE", "tradingsymbol": "SBIN-EQ"}
    assert tracker.observe({**base, "filledshares": "0", "averageprice": 0.0, "status": "rejected"}) is None
    assert tracker.observe({**base, "filledshares": "", "averageprice": 0.0, "status": "open"}) is None


def _limit_order(**fields) -> dict[str, object]:
    order = {
        "orderid": "9",
        "quantity": "10",
        "filledshares": "4",
        "averageprice": 800.0,
        "price": "800.00",
        "transactiontype": "BUY",
        "status": "open",
        "exchange": "NSE",
        "tradingsymbol": "SBIN-EQ",
        "ordertype": "LIMIT",
        "updatetime": "20-Dec-2024 10:35:49",
    }
    return {**order, **fields}


def _changes(events: list) -> list[tuple[MasterOrderChange, Decimal | None]]:
    return [(e.change, e.price) for e in events if isinstance(e, MasterOrderEvent)]


def test_tracker_tells_a_cancel_of_an_order_that_executed_after_its_fill():
    tracker = FillTracker(master_id=1)
    opened = tracker.observe_all(_limit_order())
    assert [type(e) for e in opened] == [Fill]
    cancelled = tracker.observe_all(_limit_order(filledshares="6", averageprice=800.0, status="cancelled"))
    assert [type(e) for e in cancelled] == [Fill, MasterOrderEvent]  # the last execution, then the cancel
    [event] = [e for e in cancelled if isinstance(e, MasterOrderEvent)]
    assert (event.master_id, event.order_id, event.symbol) == (1, "9", "NSE:SBIN-EQ")
    assert tracker.observe_all(_limit_order(filledshares="6", status="cancelled")) == []  # seen again


def test_tracker_tells_a_new_limit_price_but_not_a_new_quantity_nor_an_older_snapshot():
    tracker = FillTracker(master_id=1)
    tracker.observe_all(_limit_order())
    assert tracker.observe_all(_limit_order(quantity="20")) == []
    moved = _limit_order(price="805.00", updatetime="20-Dec-2024 10:36:10")
    assert _changes(tracker.observe_all(moved)) == [(MasterOrderChange.AMENDED, Decimal("805.00"))]
    assert tracker.observe_all(_limit_order()) == []  # a poll read before the modification


def test_tracker_tells_nothing_of_an_order_that_never_executed_and_nothing_of_the_baseline():
    tracker = FillTracker(master_id=1)
    unfilled = _limit_order(filledshares="0", averageprice=0.0)
    tracker.observe_all(unfilled)
    assert tracker.observe_all({**unfilled, "status": "cancelled"}) == []
    tracker.remember(_limit_order(orderid="10"))
    assert tracker.observe_all(_limit_order(orderid="10", status="cancelled")) != []  # after the baseline: told
    tracker.remember(_limit_order(orderid="11", status="cancelled"))
    assert tracker.observe_all(_limit_order(orderid="11", status="cancelled")) == []  # the baseline itself: not


class StalledPeer:
    """A websocket server that completes the handshake, starts a text frame it never finishes and
    then neither reads nor answers anything (a peer gone silent mid-message)."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        connection, _ = self._server.accept()
        self._connections.append(connection)
        request = b""
        while b"\r\n\r\n" not in request:
            request += connection.recv(4096)
        key = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        connection.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n" + b"\x81\x0a{"  # 10 bytes announced, 1 sent
        )

    def close(self) -> None:
        for connection in self._connections:
            connection.close()
        self._server.close()


def test_closing_the_order_update_socket_from_another_thread_returns_while_the_peer_is_silent():
    """The SDK's close runs the close handshake from the calling thread, behind the socket thread's
    read of a frame that never completes: it waited on a silent peer. Ours shuts the connection down
    under the socket thread, and both threads return."""
    peer = StalledPeer()
    opened = threading.Event()
    closed = threading.Event()
    order_updates = OrderUpdateSocket(
        f"ws://127.0.0.1:{peer.port}/smart-order-update",
        auth_token="Bearer t",
        api_key="k",
        client_code="C1",
        feed_token="f",
        on_open=opened.set,
        on_message=lambda text: None,
        on_close=closed.set,
    )
    running = threading.Thread(target=order_updates.connect, daemon=True)
    running.start()
    try:
        assert opened.wait(WAIT_LIMIT_SECONDS)
        time.sleep(0.2)  # the socket thread is now blocked reading the unfinished frame
        closer = threading.Thread(target=order_updates.close_connection, daemon=True)
        closer.start()
        closer.join(2.0)  # a hang detector, not a timing expectation: returning at all is the point
        assert not closer.is_alive(), "close_connection waited on the silent peer"
        running.join(WAIT_LIMIT_SECONDS)
        assert not running.is_alive() and closed.is_set()
    finally:
        peer.close()
