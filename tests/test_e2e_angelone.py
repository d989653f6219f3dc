"""The whole path on the real smartapi-python: the master's completed order arrives on the
order-update socket, the engine copies it, and the follower's order (whole lots, tagged) lands
on the fake SmartAPI — wired as `copytrade run` wires it in live mode."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D

import pytest

from copytrade.app import build_app
from copytrade.config import Mode, Settings
from core.model import CopyStatus
from core.vault import generate_key
from core.venues.angelone.venue import ordertag_for
from tests.fakes.smartapi import FOLLOWER, MASTER, FakeSmartApi, credentials_of, fresh_accounts
from tests.harness import eventually


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


@pytest.fixture
async def app(fake, tmp_path):
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'e2e.db'}",
        secret_key=generate_key(),
        mode=Mode.LIVE,
        angelone_rest_url=fake.rest_root,
        angelone_ws_url=fake.ws_url,
        angelone_scrip_master_url=fake.scrip_master_url,
        max_fill_age_seconds=D(10**9),  # the fake stamps every order with one fixed exchange time
    )
    application = await build_app(settings)
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
