"""The whole path on the real smartapi-python: the master's completed order arrives on the
order-update socket, the engine copies it, and the follower's order (whole lots, tagged) lands
on the fake SmartAPI — wired as `copytrade run` wires it in live mode."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from copytrade.app import build_app
from copytrade.config import Mode, Settings
from core.copying.ids import moved_order_id, reprice_order_id
from core.journal import CopyDraft
from core.model import CopyStatus, Fill, OrderIntent, OrderOrigin, OrderState, OrderType, Side, utcnow
from core.tracking import OrderStreams
from core.vault import generate_key
from core.venues.angelone.venue import ordertag_for
from tests.fakes.smartapi import AMO_STATUS, FOLLOWER, IST, MASTER, FakeSmartApi, credentials_of, fresh_accounts
from tests.harness import LOOPBACK_EGRESS, eventually


@pytest.fixture
def fake():
    server = FakeSmartApi(fresh_accounts()).start()
    yield server
    server.stop()


@pytest.fixture
def follower_secrets(fake):
    """The follower's key as connected in live mode: with its egress (a proxy leaving from the
    static IP registered for the client) — Angel One accepts API orders from that IP only."""
    fake.register_static_ip(FOLLOWER.client_code, "127.0.0.7")
    egress = fake.start_egress_proxy("127.0.0.7")
    return credentials_of(FOLLOWER, egress_proxy=egress.url, static_ip="127.0.0.7")


#: how far the engine's clock of the ``app`` fixture runs ahead (a test lets time pass)
application_shift = [timedelta(0)]


@pytest.fixture
async def app(fake, tmp_path, migrated_sqlite):
    application_shift[0] = timedelta(0)
    settings = Settings(
        database_url=migrated_sqlite(tmp_path / "e2e.db"),
        secret_key=generate_key(),
        mode=Mode.LIVE,
        angelone_rest_url=fake.rest_root,
        angelone_ws_url=fake.ws_url,
        angelone_scrip_master_url=fake.scrip_master_url,
        max_fill_age_seconds=D(10**9),  # the fake stamps every order with one fixed exchange time
        egress_allow=LOOPBACK_EGRESS,
    )
    application = await build_app(
        settings, clock=lambda: utcnow() + application_shift[0], market_clock=market_clock(fake)
    )
    yield application
    await application.close()


async def test_completed_master_order_is_copied_once_in_whole_lots(app, fake, follower_secrets):
    services = app.services
    owner = await services.register_user(4001, "master owner")
    master_key = await services.connect_account(owner.id, "angelone", "master", credentials_of(MASTER))
    master = await services.add_master("Nifty Desk", "angelone", owner_id=owner.id, credential_id=master_key.id)
    user = await services.register_user(4002, "follower")
    key = await services.connect_account(user.id, "angelone", "main", follower_secrets)
    follow = await services.follow(user.id, master.id, key.id, {"sizing_value": "1.45"})
    await app.start_listeners()
    await eventually(lambda: app.listeners.health[master.id].running, "the master's order feed")

    order = fake.master_order(MASTER.client_code, quantity=10, filled=10, average_price="801.5", status="complete")
    await eventually(lambda: len(fake.orders_of(FOLLOWER.client_code)) == 1, "the follower's order")
    fake.push_order_update(MASTER.client_code, order)  # the same order seen again (socket + poller)
    await asyncio.sleep(0.2)
    await app.listeners.idle()

    [copied] = fake.orders_of(FOLLOWER.client_code)
    assert (copied["tradingsymbol"], copied["transactiontype"], copied["quantity"]) == (
        "SBIN-EQ",
        "BUY",
        "14",
    )  # 14.5 -> 14
    [row] = await app.accounts.copy_history(user.id)
    assert row.status in (CopyStatus.PLACED, CopyStatus.FILLED) and row.follow_id == follow.id
    assert copied["ordertag"] == ordertag_for(row.client_order_id)
    # the master's MARKET execution is copied as a LIMIT 1% (the default protection) past its fill
    # price, rounded onto the tick in the follower's favour: 801.5 * 1.01 = 809.515 -> 809.50
    assert (copied["ordertype"], copied["duration"], D(copied["price"])) == ("LIMIT", "DAY", D("809.50"))
    assert_no_market_or_ioc_request(fake)
    assert {(r.source_ip, r.public_ip_header) for r in fake.order_requests} == {("127.0.0.7", "127.0.0.7")}


async def copy_one_master_order(app, fake, follower_secrets, settings: dict[str, str]):
    services = app.services
    owner = await services.register_user(4001, "master owner")
    master_key = await services.connect_account(owner.id, "angelone", "master", credentials_of(MASTER))
    master = await services.add_master("Nifty Desk", "angelone", owner_id=owner.id, credential_id=master_key.id)
    user = await services.register_user(4002, "follower")
    key = await services.connect_account(user.id, "angelone", "main", follower_secrets)
    await services.follow(user.id, master.id, key.id, {"sizing_value": "1", **settings})
    await app.start_listeners()
    await eventually(lambda: app.listeners.health[master.id].running, "the master's order feed")
    fake.master_order(MASTER.client_code, quantity=10, filled=10, average_price="601.5", status="complete")
    for _ in range(200):  # bounded: the copy is recorded within a few hundred milliseconds
        if await app.accounts.copy_history(user.id):
            break
        await asyncio.sleep(0.05)
    await app.listeners.idle()
    return user


async def test_a_copy_after_the_close_is_recorded_skipped_market_closed(fake, tmp_path, migrated_sqlite):
    fake.market_time = datetime(2026, 12, 8, 16, 30, tzinfo=IST)
    async with closed_market_app(fake, tmp_path, migrated_sqlite) as app:
        egress = fake.start_egress_proxy("127.0.0.7")
        fake.register_static_ip(FOLLOWER.client_code, "127.0.0.7")
        secrets = credentials_of(FOLLOWER, egress_proxy=egress.url, static_ip="127.0.0.7")
        user = await copy_one_master_order(app, fake, secrets, {})

        [row] = await app.accounts.copy_history(user.id)
        assert (row.status, row.reason_code) == (CopyStatus.SKIPPED, "market_closed")
        assert "NSE closed at 15:30" in (row.reason or "")
        assert fake.order_requests == []


async def test_a_copy_after_the_close_is_sent_as_an_after_market_order_when_the_follow_says_so(
    fake, tmp_path, migrated_sqlite
):
    fake.market_time = datetime(2026, 12, 8, 16, 30, tzinfo=IST)
    async with closed_market_app(fake, tmp_path, migrated_sqlite) as app:
        egress = fake.start_egress_proxy("127.0.0.7")
        fake.register_static_ip(FOLLOWER.client_code, "127.0.0.7")
        secrets = credentials_of(FOLLOWER, egress_proxy=egress.url, static_ip="127.0.0.7")
        user = await copy_one_master_order(app, fake, secrets, {"closed_market_action": "after_market"})

        [order] = fake.orders_of(FOLLOWER.client_code)
        assert (order["variety"], order["status"], order["ordertype"]) == ("AMO", AMO_STATUS, "LIMIT")
        [row] = await app.accounts.copy_history(user.id)
        assert row.status is CopyStatus.PLACED
        application_shift[0] = timedelta(minutes=5)  # far past a protected limit's 10 s window
        await app.engine.track()  # its window starts at the next open: it waits for it
        assert fake.orders_of(FOLLOWER.client_code)[0]["status"] == AMO_STATUS


def market_clock(fake: FakeSmartApi):
    """The market's clock: the fake's market time (a trading morning unless a test moves it before
    the app starts), running on from there; the engine keeps the real clock (the journal's)."""
    started, market = utcnow(), fake.clock()
    return lambda: market + (utcnow() - started)


@contextlib.asynccontextmanager
async def closed_market_app(fake, tmp_path, migrated_sqlite):
    settings = Settings(
        database_url=migrated_sqlite(tmp_path / "closed.db"),
        secret_key=generate_key(),
        mode=Mode.LIVE,
        angelone_rest_url=fake.rest_root,
        angelone_ws_url=fake.ws_url,
        angelone_scrip_master_url=fake.scrip_master_url,
        max_fill_age_seconds=D(10**9),
        egress_allow=LOOPBACK_EGRESS,
    )
    application_shift[0] = timedelta(0)
    application = await build_app(
        settings, clock=lambda: utcnow() + application_shift[0], market_clock=market_clock(fake)
    )
    try:
        yield application
    finally:
        await application.close()


def assert_no_market_or_ioc_request(fake: FakeSmartApi) -> None:
    sent = [r.body for r in fake.order_requests if r.route in ("place_order", "modify_order")]
    assert sent and all(b.get("ordertype") in ("LIMIT", "STOPLOSS_LIMIT") for b in sent), sent
    assert all(b.get("duration") == "DAY" for b in sent), sent


async def test_the_exit_is_copied_for_what_filled_and_the_masters_product_is_kept(app, fake, follower_secrets):
    """Master BUY (DELIVERY); the follower's protected limit fills 7 of 14 (the ledger moves on
    that fill only, found by tracking); the master's SELL is copied for the 7 that filled, as
    DELIVERY, as a protected limit too."""
    services = app.services
    owner = await services.register_user(4101, "master owner")
    master_key = await services.connect_account(owner.id, "angelone", "master", credentials_of(MASTER))
    master = await services.add_master("Nifty Desk", "angelone", owner_id=owner.id, credential_id=master_key.id)
    user = await services.register_user(4102, "follower")
    key = await services.connect_account(user.id, "angelone", "main", follower_secrets)
    follow = await services.follow(user.id, master.id, key.id, {"sizing_value": "1.45"})
    await app.start_listeners()
    await eventually(lambda: app.listeners.health[master.id].running, "the master's order feed")

    fake.master_order(
        MASTER.client_code, quantity=10, filled=10, average_price="801.5", status="complete", product="DELIVERY"
    )
    await eventually(lambda: len(fake.orders_of(FOLLOWER.client_code)) == 1, "the follower's entry")
    await app.listeners.idle()
    await app.engine.drain()  # the entry's answer recorded: it is no longer in flight, tracking follows it
    [entry] = fake.orders_of(FOLLOWER.client_code)
    assert (entry["producttype"], entry["ordertype"], entry["quantity"]) == ("DELIVERY", "LIMIT", "14")
    fake.fill(FOLLOWER.client_code, entry["orderid"], quantity=7, price="802")
    await app.engine.track()
    positions = await app.engine.journal.follow_positions([follow.id], "NSE:SBIN-EQ")
    assert positions == {follow.id: D(7)}

    fake.master_order(
        MASTER.client_code,
        side="SELL",
        quantity=10,
        filled=10,
        average_price="805",
        status="complete",
        product="DELIVERY",
    )
    await eventually(lambda: len(fake.orders_of(FOLLOWER.client_code)) == 2, "the follower's exit")
    exit_order = fake.orders_of(FOLLOWER.client_code)[1]
    assert (exit_order["transactiontype"], exit_order["quantity"], exit_order["producttype"]) == (
        "SELL",
        "7",
        "DELIVERY",
    )
    assert (exit_order["ordertype"], D(exit_order["price"])) == ("LIMIT", D("796.95"))  # 805 * 0.99 on the tick
    assert_no_market_or_ioc_request(fake)


async def test_in_live_mode_a_follower_without_a_registered_egress_gets_a_clear_failure_and_nothing_is_sent(app, fake):
    services = app.services
    owner = await services.register_user(4201, "master owner")
    master_key = await services.connect_account(owner.id, "angelone", "master", credentials_of(MASTER))
    master = await services.add_master("Nifty Desk", "angelone", owner_id=owner.id, credential_id=master_key.id)
    user = await services.register_user(4202, "follower")
    key = await services.connect_account(user.id, "angelone", "main", credentials_of(FOLLOWER))
    await services.follow(user.id, master.id, key.id, {"sizing_value": "1"})
    await app.start_listeners()
    await eventually(lambda: app.listeners.health[master.id].running, "the master's order feed")

    fake.master_order(MASTER.client_code, quantity=10, filled=10, average_price="801.5", status="complete")
    for _ in range(200):  # journaled pending, then failed as soon as the venue refused it
        rows = await app.accounts.copy_history(user.id)
        if rows and rows[0].status is not CopyStatus.PENDING:
            break
        await asyncio.sleep(0.025)
    [row] = rows
    assert row.status is CopyStatus.FAILED and "has no registered egress" in (row.reason or "")
    assert fake.order_requests == []


async def test_an_order_the_rms_rejects_after_accepting_it_is_recorded_and_notified_with_the_brokers_text(
    app, fake, follower_secrets
):
    services = app.services
    owner = await services.register_user(4301, "master owner")
    master_key = await services.connect_account(owner.id, "angelone", "master", credentials_of(MASTER))
    master = await services.add_master("Nifty Desk", "angelone", owner_id=owner.id, credential_id=master_key.id)
    user = await services.register_user(4302, "follower")
    key = await services.connect_account(user.id, "angelone", "main", follower_secrets)
    await services.follow(user.id, master.id, key.id, {"sizing_value": "1"})
    await app.start_listeners()
    await eventually(lambda: app.listeners.health[master.id].running, "the master's order feed")
    text = "Your order has been rejected due to Insufficient Funds. Available funds - Rs. 12.50"
    fake.reject_next_order(FOLLOWER.client_code, text)

    fake.master_order(MASTER.client_code, quantity=10, filled=10, average_price="801.5", status="complete")
    await eventually(lambda: len(fake.orders_of(FOLLOWER.client_code)) == 1, "the follower's order")
    await app.listeners.idle()
    await app.engine.drain()
    for _ in range(200):  # the RMS rejects just after accepting: tracking reads it from the order book
        await app.engine.track()
        [row] = await app.accounts.copy_history(user.id)
        if row.status is not CopyStatus.PLACED:
            break
        await asyncio.sleep(0.025)

    assert row.status is CopyStatus.FAILED and row.reason == text
    ended = [e for e in app.notifications.take_all() if getattr(e, "client_order_id", None) == row.client_order_id]
    assert ended[-1].status is CopyStatus.FAILED and ended[-1].error == text
    assert await app.engine.journal.follow_positions([row.follow_id], "NSE:SBIN-EQ") == {}


# -- the unfilled remainder of a protected limit ------------------------------------------------------


async def _copied_entry(app, fake, follower_secrets, base: int, **settings):
    """Master BUY 10 @ 801.5 (MARKET, complete) copied ×1.45: the follower's protected LIMIT of 14 @
    809.50 rests. Returns (user id, follow id, the follower's order as the fake shows it)."""
    services = app.services
    owner = await services.register_user(base, "master owner")
    master_key = await services.connect_account(owner.id, "angelone", "master", credentials_of(MASTER))
    master = await services.add_master("Nifty Desk", "angelone", owner_id=owner.id, credential_id=master_key.id)
    user = await services.register_user(base + 1, "follower")
    key = await services.connect_account(user.id, "angelone", "main", follower_secrets)
    follow = await services.follow(user.id, master.id, key.id, {"sizing_value": "1.45", **settings})
    await app.start_listeners()
    await eventually(lambda: app.listeners.health[master.id].running, "the master's order feed")
    fake.master_order(MASTER.client_code, quantity=10, filled=10, average_price="801.5", status="complete")
    await eventually(lambda: len(fake.orders_of(FOLLOWER.client_code)) == 1, "the follower's entry")
    await app.listeners.idle()
    await app.engine.drain()
    [entry] = fake.orders_of(FOLLOWER.client_code)
    assert (entry["ordertype"], entry["quantity"], D(entry["price"])) == ("LIMIT", "14", D("809.50"))
    return user.id, follow.id, entry


def _after_the_window(app) -> None:
    """The engine's clock past the protected window of every order sent so far."""
    application_shift[0] = app.engine.config.protected_window + timedelta(seconds=1)


async def test_an_unfilled_protected_limit_is_repriced_at_the_ltp_and_every_attempts_fill_reaches_the_ledger(
    app, fake, follower_secrets
):
    """4 of 14 fill within the window; the rest (10) is cancelled and sent again at the LTP (806)
    plus the 1 % protection (814.06 -> 814.05 on the tick), inside the 2 % slippage limit from the
    master's 801.5 (817.53); it fills; the position is 4 + 10, from the trades of both orders."""
    user_id, follow_id, entry = await _copied_entry(app, fake, follower_secrets, 4401, slippage_pct="2")
    fake.fill(FOLLOWER.client_code, entry["orderid"], quantity=4, price="805")
    fake.last_prices["SBIN-EQ"] = "806"
    _after_the_window(app)

    await app.engine.track()

    first, again = fake.orders_of(FOLLOWER.client_code)
    assert (first["status"], first["filledshares"]) == ("cancelled", "4")
    [original] = [r for r in await app.accounts.copy_history(user_id) if r.attempt == 0]
    assert again["ordertag"] == ordertag_for(reprice_order_id(original.client_order_id, 1))
    assert (again["transactiontype"], again["quantity"], again["ordertype"], again["duration"]) == (
        "BUY",
        "10",
        "LIMIT",
        "DAY",
    )
    assert D(again["price"]) == D("814.05")
    assert original.state is OrderState.EXPIRED and original.filled_quantity == D(4)
    assert "sent again at 814.05 (re-price 1 of 3)" in (original.reason or "")

    fake.fill(FOLLOWER.client_code, again["orderid"], price="812")
    await app.engine.track()

    rows = {r.attempt: r for r in await app.accounts.copy_history(user_id)}
    assert (rows[1].state, rows[1].filled_quantity, rows[1].average_price) == (OrderState.FILLED, D(10), D(812))
    assert await app.engine.journal.follow_positions([follow_id], "NSE:SBIN-EQ") == {follow_id: D(14)}
    assert_no_market_or_ioc_request(fake)


async def test_a_reprice_past_the_slippage_limit_is_not_sent_and_what_filled_is_kept(app, fake, follower_secrets):
    user_id, follow_id, entry = await _copied_entry(app, fake, follower_secrets, 4501, slippage_pct="2")
    fake.fill(FOLLOWER.client_code, entry["orderid"], quantity=4, price="805")
    fake.last_prices["SBIN-EQ"] = "812"  # 812 * 1.01 = 820.12 -> 820.10 > 801.5 * 1.02 = 817.53
    _after_the_window(app)

    await app.engine.track()

    assert [o["status"] for o in fake.orders_of(FOLLOWER.client_code)] == ["cancelled"]
    [row] = await app.accounts.copy_history(user_id)
    assert (row.state, row.status, row.filled_quantity) == (OrderState.EXPIRED, CopyStatus.FILLED, D(4))
    assert "a fresh price of 820.1 (last 812) is more than 2 % from the master's 801.5" in (row.reason or "")
    assert await app.engine.journal.follow_positions([follow_id], "NSE:SBIN-EQ") == {follow_id: D(4)}


async def test_without_a_slippage_limit_a_reprice_stays_within_the_price_protection(app, fake, follower_secrets):
    user_id, _, _ = await _copied_entry(app, fake, follower_secrets, 4551)
    fake.last_prices["SBIN-EQ"] = "802"  # 802 * 1.01 = 810.02 > 801.5 * 1.01 = 809.515
    _after_the_window(app)

    await app.engine.track()

    assert [o["status"] for o in fake.orders_of(FOLLOWER.client_code)] == ["cancelled"]
    [row] = await app.accounts.copy_history(user_id)
    assert (row.state, row.status) == (OrderState.EXPIRED, CopyStatus.CANCELED)
    assert "more than 1 % from the master's 801.5" in (row.reason or "")


async def test_reprices_stop_after_the_follows_attempts_and_the_last_rest_is_cancelled(app, fake, follower_secrets):
    user_id, _, _ = await _copied_entry(app, fake, follower_secrets, 4601, slippage_pct="5", reprice_attempts="2")
    fake.last_prices["SBIN-EQ"] = "801.5"
    _after_the_window(app)

    for _ in range(4):  # each pass ends the order sent by the pass before
        await app.engine.track()

    orders = fake.orders_of(FOLLOWER.client_code)
    assert [o["status"] for o in orders] == ["cancelled"] * 3  # the first send and two re-prices
    rows = sorted(await app.accounts.copy_history(user_id), key=lambda r: r.attempt)
    assert [r.attempt for r in rows] == [0, 1, 2]
    assert all(r.state is OrderState.EXPIRED for r in rows)
    assert "after 2 re-prices, the follow's maximum" in (rows[-1].reason or "")
    assert len([r for r in fake.order_requests if r.route == "place_order"]) == 3


async def test_a_follow_that_cancels_the_rest_sends_nothing_more(app, fake, follower_secrets):
    user_id, follow_id, entry = await _copied_entry(app, fake, follower_secrets, 4701, remainder_action="cancel")
    fake.fill(FOLLOWER.client_code, entry["orderid"], quantity=6, price="804")
    _after_the_window(app)

    await app.engine.track()
    await app.engine.track()

    assert [o["status"] for o in fake.orders_of(FOLLOWER.client_code)] == ["cancelled"]
    [row] = await app.accounts.copy_history(user_id)
    assert (row.state, row.filled_quantity) == (OrderState.EXPIRED, D(6))
    assert "the rest was cancelled (what filled is kept)" in (row.reason or "")
    assert await app.engine.journal.follow_positions([follow_id], "NSE:SBIN-EQ") == {follow_id: D(6)}


async def test_a_protected_limit_rests_through_its_window(app, fake, follower_secrets):
    user_id, _, _ = await _copied_entry(app, fake, follower_secrets, 4801)

    await app.engine.track()  # the engine's own clock: the window has not ended

    assert [o["status"] for o in fake.orders_of(FOLLOWER.client_code)] == ["open"]
    [row] = await app.accounts.copy_history(user_id)
    assert row.state is OrderState.ACKNOWLEDGED


@pytest.mark.parametrize("sent_before_the_restart", [False, True], ids=["journaled-only", "journaled-and-sent"])
async def test_a_reprice_interrupted_by_a_restart_is_looked_up_and_never_sent_twice(
    app, fake, follower_secrets, sent_before_the_restart
):
    """A run cancelled the order and journaled its re-send, then stopped (before sending it, or
    after sending it without recording the answer). The next pass finds the re-send by its derived
    client order id: it sends it only when Angel One has no order with its tag."""
    user_id, follow_id, entry = await _copied_entry(app, fake, follower_secrets, 4901, slippage_pct="2")
    fake.fill(FOLLOWER.client_code, entry["orderid"], quantity=4, price="805")
    fake.last_prices["SBIN-EQ"] = "806"
    [original] = await app.accounts.copy_history(user_id)
    resend = reprice_order_id(original.client_order_id, 1)
    follow = await app.accounts.follow(follow_id)
    assert follow is not None and follow.credential_id is not None
    venue = await app.venues.venue_for(follow.credential_id)
    assert await venue.cancel_order(original.client_order_id, "NSE:SBIN-EQ")  # the stopped run's cancellation
    await app.engine.journal.begin_copies(
        [
            CopyDraft(
                client_order_id=resend,
                fill_id=original.fill_id,
                follow_id=follow_id,
                user_id=user_id,
                symbol="NSE:SBIN-EQ",
                side=Side.BUY,
                order_type=OrderType.LIMIT,
                reduce_only=False,
                status=CopyStatus.PENDING,
                requested_quantity=D(10),
                master_price=D("801.5"),
                limit_price=D("814.05"),
                protected=True,
                attempt=1,
            )
        ]
    )
    if sent_before_the_restart:
        await venue.place_order(
            OrderIntent(follow_id, resend, "NSE:SBIN-EQ", Side.BUY, D(10), OrderType.LIMIT, price=D("814.05"))
        )
    _after_the_window(app)

    await app.engine.track()
    application_shift[0] = timedelta(0)  # the re-send's own window has not ended: a second pass only reads it
    await app.engine.track()

    places = [r for r in fake.order_requests if r.route == "place_order"]
    assert len(places) == 2  # the first send and one re-send, whoever sent it
    assert places[1].body["ordertag"] == ordertag_for(resend) and places[1].body["quantity"] == "10"
    rows = {r.attempt: r for r in await app.accounts.copy_history(user_id)}
    assert (rows[0].state, rows[0].filled_quantity) == (OrderState.EXPIRED, D(4))
    assert rows[1].state is OrderState.ACKNOWLEDGED


# -- following the follower's orders through its order-update socket -----------------------------------


async def test_a_fill_pushed_on_the_followers_order_update_socket_reaches_the_ledger_without_a_poll(
    app, fake, follower_secrets
):
    """The follower's socket names the order by its tag; the engine reads it by client order id and
    records the trade. No tracking pass runs, and the follower's own (untagged) order is ignored."""
    user_id, follow_id, entry = await _copied_entry(app, fake, follower_secrets, 5001)
    streams = OrderStreams(app.engine, app.journal, app.venues)
    connections = fake.order_update_connections
    await streams.refresh()
    await eventually(lambda: fake.order_update_connections == connections + 1, "the follower's socket")
    assert streams.open_streams == 1
    own = fake.master_order(FOLLOWER.client_code, quantity=3, filled=3, average_price="800", status="complete")

    fake.fill(FOLLOWER.client_code, entry["orderid"], quantity=5, price="804")

    async def recorded() -> bool:
        [row] = await app.accounts.copy_history(user_id)
        return row.filled_quantity == D(5)

    for _ in range(400):
        if await recorded():
            break
        await asyncio.sleep(0.025)
    assert await app.engine.journal.follow_positions([follow_id], "NSE:SBIN-EQ") == {follow_id: D(5)}
    [row] = await app.accounts.copy_history(user_id)
    assert row.state is OrderState.PARTIALLY_FILLED and own["ordertag"] == ""
    await streams.close()


async def test_when_the_followers_socket_drops_the_stream_ends_and_order_book_polling_records_the_fill(
    app, fake, follower_secrets
):
    user_id, follow_id, entry = await _copied_entry(app, fake, follower_secrets, 5101)
    streams = OrderStreams(app.engine, app.journal, app.venues)
    await streams.refresh()
    await eventually(lambda: streams.open_streams == 1 and fake.order_update_connections >= 2, "the socket")
    connections = fake.order_update_connections

    fake.drop_order_update_sockets()
    [(_, task)] = streams._streams.values()
    await eventually(task.done, "the stream ending with its socket")
    fake.fill(FOLLOWER.client_code, entry["orderid"], quantity=14, price="805")
    await app.engine.track()  # the order-book / trade-book fallback

    [row] = await app.accounts.copy_history(user_id)
    assert (row.state, row.filled_quantity) == (OrderState.FILLED, D(14))
    assert await app.engine.journal.follow_positions([follow_id], "NSE:SBIN-EQ") == {follow_id: D(14)}
    await streams.refresh()  # no open copy is left: nothing to reopen
    assert streams.open_streams == 0 and fake.order_update_connections >= connections
    await streams.close()


async def test_a_fill_replayed_after_a_restart_keeps_the_masters_product_type(app, fake, follower_secrets):
    """The master's DELIVERY execution was journaled, then the process stopped before copying it:
    ``resume`` re-plans it from the journal, which kept the product, so the copy is DELIVERY too
    (the broker would square an INTRADAY copy off the same day)."""
    services = app.services
    owner = await services.register_user(5201, "master owner")
    master_key = await services.connect_account(owner.id, "angelone", "master", credentials_of(MASTER))
    master = await services.add_master("Nifty Desk", "angelone", owner_id=owner.id, credential_id=master_key.id)
    user = await services.register_user(5202, "follower")
    key = await services.connect_account(user.id, "angelone", "main", follower_secrets)
    await services.follow(user.id, master.id, key.id, {"sizing_value": "1"})
    fill = Fill(
        master.id,
        f"angelone:{master.id}",
        "250000000000009:10",
        "250000000000009",
        "NSE:SBIN-EQ",
        Side.BUY,
        D(10),
        D("801.5"),
        product="DELIVERY",
    )
    assert await app.engine.journal.journal_fill(fill) is not None  # journaled, never planned

    await app.engine.resume()

    [copied] = fake.orders_of(FOLLOWER.client_code)
    assert (copied["producttype"], copied["quantity"], copied["ordertype"]) == ("DELIVERY", "10", "LIMIT")


# -- the master's fills made while copytrade was down ------------------------------------------------


async def test_the_masters_fills_made_while_down_are_copied_once_after_a_restart(app, fake, follower_secrets):
    """While the listener is stopped the master completes a new order (B) and fills more of a
    partly filled one (A: 4 of 10 seen live, 10 when back). At the restart the journal's checkpoint
    and the journaled part of A say what is missing: B (10) and A's 6 are copied, once; an order
    completed before copytrade ever started (the baseline) never is; a second restart copies nothing."""
    services = app.services
    before_start = fake.master_order(
        MASTER.client_code, quantity=5, filled=5, average_price="790", status="complete", push=False
    )
    owner = await services.register_user(5301, "master owner")
    master_key = await services.connect_account(owner.id, "angelone", "master", credentials_of(MASTER))
    master = await services.add_master("Nifty Desk", "angelone", owner_id=owner.id, credential_id=master_key.id)
    user = await services.register_user(5302, "follower")
    key = await services.connect_account(user.id, "angelone", "main", follower_secrets)
    await services.follow(user.id, master.id, key.id, {"sizing_value": "1"})
    await app.start_listeners()
    await eventually(lambda: app.listeners.health[master.id].running, "the master's order feed")
    started = utcnow()  # after the first start's checkpoint; the exchange's times are to the second
    a = fake.master_order(
        MASTER.client_code,
        quantity=10,
        filled=4,
        average_price="801",
        status="open",
        updated=started + timedelta(seconds=1),
    )
    await eventually(lambda: len(fake.orders_of(FOLLOWER.client_code)) == 1, "A's first copy")
    await app.listeners.idle()
    await app.listeners.stop()

    fake.master_order(
        MASTER.client_code,
        quantity=10,
        filled=10,
        average_price="802",
        status="complete",
        order_id=a["orderid"],
        push=False,
        updated=started + timedelta(seconds=2),
    )
    b = fake.master_order(
        MASTER.client_code,
        side="BUY",
        quantity=10,
        filled=10,
        average_price="805",
        status="complete",
        push=False,
        updated=started + timedelta(seconds=2),
    )
    await app.start_listeners()
    await eventually(lambda: len(fake.orders_of(FOLLOWER.client_code)) == 3, "the copies of what was missed")
    await app.listeners.idle()
    await app.listeners.stop()
    await app.start_listeners()  # again: nothing is missing now
    await eventually(lambda: app.listeners.health[master.id].running, "the master's order feed, again")
    await asyncio.sleep(0.2)
    await app.listeners.idle()

    copies = [o["quantity"] for o in fake.orders_of(FOLLOWER.client_code)]
    assert sorted(copies) == ["10", "4", "6"]
    journaled = await app.engine.journal.master_order_progress(
        master.id, [a["orderid"], b["orderid"], before_start["orderid"]]
    )
    # A: 4 @ 801 then 6 @ 802.6667 (its average moved from 801 to 802); B: 10 @ 805; the baseline: nothing
    assert {order_id: filled for order_id, (filled, _) in journaled.items()} == {
        a["orderid"]: D(10),
        b["orderid"]: D(10),
    }
    assert journaled[a["orderid"]][1].quantize(D("0.01")) == D("802.00")  # increments' prices to 4 places


async def test_a_cancellation_that_shows_a_moment_later_is_waited_for_and_the_rest_still_repriced(
    app, fake, follower_secrets
):
    user_id, _, entry = await _copied_entry(app, fake, follower_secrets, 5401, slippage_pct="2")
    fake.fill(FOLLOWER.client_code, entry["orderid"], quantity=4, price="805")
    fake.last_prices["SBIN-EQ"] = "806"
    fake.cancel_delay_seconds = 0.2  # between the engine's first and last re-read (0.25 + 0.5 + 1 s)
    _after_the_window(app)

    await app.engine.track()

    first, again = fake.orders_of(FOLLOWER.client_code)
    assert first["status"] == "cancelled" and (again["quantity"], D(again["price"])) == ("10", D("814.05"))
    rows = {r.attempt: r for r in await app.accounts.copy_history(user_id)}
    assert rows[0].state is OrderState.EXPIRED and rows[1].state is OrderState.ACKNOWLEDGED


# -- the master's cancellations and modifications: its resting copies follow them (research §2) ----

PARTLY_FILLED = {"quantity": 10, "filled": 4, "average_price": "800", "order_type": "LIMIT", "price": "800"}


async def _resting_copy(app, fake, follower_secrets, telegram_id: int) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """The master's BUY 10 @ 800 has executed 4; the follower's copy of those 4 rests at 800."""
    services = app.services
    owner = await services.register_user(telegram_id, "master owner")
    master_key = await services.connect_account(owner.id, "angelone", "master", credentials_of(MASTER))
    master = await services.add_master("Nifty Desk", "angelone", owner_id=owner.id, credential_id=master_key.id)
    user = await services.register_user(telegram_id + 1, "follower")
    key = await services.connect_account(user.id, "angelone", "main", follower_secrets)
    await services.follow(user.id, master.id, key.id, {"sizing_value": "1"})
    await app.start_listeners()
    await eventually(lambda: app.listeners.health[master.id].running, "the master's order feed")
    order = fake.master_order(MASTER.client_code, status="open", **PARTLY_FILLED)
    await eventually(lambda: len(fake.orders_of(FOLLOWER.client_code)) == 1, "the follower's copy")
    await app.listeners.idle()
    [copy] = fake.orders_of(FOLLOWER.client_code)
    assert (copy["status"], copy["quantity"], D(copy["price"])) == ("open", "4", D(800))
    return user.id, order, copy


async def test_a_masters_cancel_on_angel_one_cancels_the_resting_copy(app, fake, follower_secrets):
    user_id, order, copy = await _resting_copy(app, fake, follower_secrets, 4801)
    fake.master_order(MASTER.client_code, order_id=order["orderid"], status="cancelled", **PARTLY_FILLED)
    await eventually(lambda: fake.orders_of(FOLLOWER.client_code)[0]["status"] == "cancelled", "the copy cancelled")
    await app.listeners.idle()
    [row] = await app.accounts.copy_history(user_id)
    assert (row.state, row.status) == (OrderState.CANCELED, CopyStatus.CANCELED)
    assert "master cancelled" in (row.reason or "")


async def test_a_masters_modified_price_on_angel_one_moves_the_resting_copy(app, fake, follower_secrets):
    user_id, order, copy = await _resting_copy(app, fake, follower_secrets, 4811)
    modified = {**PARTLY_FILLED, "price": "805"}
    fake.master_order(MASTER.client_code, order_id=order["orderid"], status="open", **modified)
    await eventually(lambda: len(fake.orders_of(FOLLOWER.client_code)) == 2, "the copy placed again")
    await app.listeners.idle()
    old, new = fake.orders_of(FOLLOWER.client_code)
    assert old["status"] == "cancelled"
    assert (new["status"], new["quantity"], D(new["price"]), new["ordertype"]) == ("open", "4", D(805), "LIMIT")
    [original] = [r for r in await app.accounts.copy_history(user_id) if r.attempt == 0]
    assert new["ordertag"] == ordertag_for(moved_order_id(original.client_order_id, 1))
    assert original.state is OrderState.CANCELED and "moved its order to 805" in (original.reason or "")


async def follow_the_master(app, user_telegram_id: int, follower_secrets, settings: dict[str, str] | None = None):
    services = app.services
    owner = await services.register_user(user_telegram_id, "master owner")
    master_key = await services.connect_account(owner.id, "angelone", "master", credentials_of(MASTER))
    master = await services.add_master("Nifty Desk", "angelone", owner_id=owner.id, credential_id=master_key.id)
    user = await services.register_user(user_telegram_id + 1, "follower")
    key = await services.connect_account(user.id, "angelone", "main", follower_secrets)
    follow = await services.follow(user.id, master.id, key.id, {"sizing_value": "1", **(settings or {})})
    await app.start_listeners()
    await eventually(lambda: app.listeners.health[master.id].running, "the master's order feed")
    return user, follow


def net_quantity(fake: FakeSmartApi, symbol: str, product: str = "INTRADAY") -> int:
    return sum(
        int(p["netqty"])
        for p in fake.positions_of(FOLLOWER.client_code)
        if p["tradingsymbol"] == symbol and p["producttype"] == product
    )


async def test_a_follower_the_broker_squared_off_ends_flat_not_short_when_the_master_exits(app, fake, follower_secrets):
    """SmartAPI has no reduce-only flag: the follower's copied 10 SBIN (INTRADAY) were squared off by
    the broker before the close, the master then sold. The exit is bounded by the follower's INTRADAY
    position (read through the read gate): nothing is sent, the 10 are written off the ledger with
    the reason, and the follower is told."""
    user, follow = await follow_the_master(app, 4301, follower_secrets)
    fake.master_order(MASTER.client_code, quantity=10, filled=10, average_price="601.5", status="complete")
    await eventually(lambda: len(fake.orders_of(FOLLOWER.client_code)) == 1, "the follower's entry")
    await app.listeners.idle()
    await app.engine.drain()
    [entry] = fake.orders_of(FOLLOWER.client_code)
    fake.fill(FOLLOWER.client_code, entry["orderid"])
    await app.engine.track()
    assert await app.engine.journal.follow_positions([follow.id], "NSE:SBIN-EQ") == {follow.id: D(10)}
    app.notifications.take_all()

    [square_off] = fake.square_off_intraday(FOLLOWER.client_code)
    fake.master_order(MASTER.client_code, side="SELL", quantity=10, filled=10, average_price="605", status="complete")

    async def written_off() -> bool:
        return any(r.origin == "write_off" for r in await app.accounts.copy_history(user.id, limit=10))

    for _ in range(200):  # bounded: the exit is decided within a few hundred milliseconds
        if await written_off():
            break
        await asyncio.sleep(0.05)
    await app.listeners.idle()
    await app.engine.drain()

    assert [o["orderid"] for o in fake.orders_of(FOLLOWER.client_code)] == [entry["orderid"], square_off["orderid"]]
    assert net_quantity(fake, "SBIN-EQ") == 0  # flat, not -10
    history = await app.accounts.copy_history(user.id, limit=10)
    [write_off] = [r for r in history if r.origin == "write_off"]
    assert (write_off.status, write_off.side, write_off.requested_quantity) == (CopyStatus.WRITTEN_OFF, "sell", D(10))
    assert "Angel One squares INTRADAY positions off before the close" in (write_off.reason or "")
    assert "showed 0 SBIN INTRADAY of the 10 SBIN copied" in (write_off.reason or "")
    [exit_copy] = [r for r in history if r.origin == "copy" and r.status is CopyStatus.SKIPPED]
    assert exit_copy.reason_code == "no_position_to_exit" and "closed outside the copier" in (exit_copy.reason or "")
    assert await app.engine.journal.follow_positions([follow.id], "NSE:SBIN-EQ") in ({}, {follow.id: D(0)})
    told = [e for e in app.notifications.take_all() if getattr(e, "origin", None) is OrderOrigin.WRITE_OFF]
    assert [e.client_order_id for e in told] == [write_off.client_order_id]


NIFTY = "NIFTY29DEC2626000CE"


async def test_a_copy_above_the_freeze_quantity_goes_out_in_whole_lot_slices_that_fill_and_so_does_its_exit(
    app, fake, follower_secrets
):
    """NIFTY's freeze quantity is 1,800 units (NSE, 2026) and its lot 65: a 2,015-unit (31-lot) copy is
    sent as 16 + 15 lots, each slice its own ordertag, each followed to its fill; the ledger equals the
    follower's position. The master's exit of all of it is sliced too and closes the position."""
    user, follow = await follow_the_master(app, 4401, follower_secrets)
    fake.master_order(
        MASTER.client_code,
        symbol=NIFTY,
        exchange="NFO",
        quantity=2015,
        filled=2015,
        average_price="120.05",
        status="complete",
    )
    await eventually(lambda: len(fake.orders_of(FOLLOWER.client_code)) == 2, "both slices of the entry")
    await app.listeners.idle()
    await app.engine.drain()

    slices = fake.orders_of(FOLLOWER.client_code)
    assert [(o["transactiontype"], o["quantity"]) for o in slices] == [("BUY", "1040"), ("BUY", "975")]
    assert len({o["ordertag"] for o in slices}) == 2 and all(0 < len(o["ordertag"]) <= 20 for o in slices)
    for order in slices:
        fake.fill(FOLLOWER.client_code, order["orderid"])
    await app.engine.track()
    rows = [r for r in await app.accounts.copy_history(user.id, limit=10) if r.origin == "copy"]
    assert sorted((r.status, r.filled_quantity) for r in rows) == [
        (CopyStatus.FILLED, D(975)),
        (CopyStatus.FILLED, D(1040)),
    ]
    assert {ordertag_for(r.client_order_id) for r in rows} == {o["ordertag"] for o in slices}
    symbol = f"NFO:{NIFTY}"
    assert await app.engine.journal.follow_positions([follow.id], symbol) == {follow.id: D(2015)}
    assert net_quantity(fake, NIFTY) == 2015

    fake.master_order(
        MASTER.client_code,
        symbol=NIFTY,
        exchange="NFO",
        side="SELL",
        quantity=2015,
        filled=2015,
        average_price="125",
        status="complete",
    )
    await eventually(lambda: len(fake.orders_of(FOLLOWER.client_code)) == 4, "both slices of the exit")
    await app.listeners.idle()
    await app.engine.drain()
    exits = fake.orders_of(FOLLOWER.client_code)[2:]
    assert [(o["transactiontype"], o["quantity"]) for o in exits] == [("SELL", "1040"), ("SELL", "975")]
    for order in exits:
        fake.fill(FOLLOWER.client_code, order["orderid"])
    await app.engine.track()
    assert net_quantity(fake, NIFTY) == 0
    assert await app.engine.journal.follow_positions([follow.id], symbol) in ({}, {follow.id: D(0)})
    assert all(o["status"] == "complete" for o in fake.orders_of(FOLLOWER.client_code))
