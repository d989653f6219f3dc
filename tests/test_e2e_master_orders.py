"""A master's cancel or amend reaches its copies, end to end on real ccxt.pro against the fake
Binance: the master's limit executes in part, the copy of that part rests on the follower's
account, and then the master cancels or moves the rest of its order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal as D
from typing import Any

import pytest

from copytrade.app import build_app
from copytrade.config import Mode, Settings
from core.model import CopyResult, CopyStatus, OrderState, SkipReason
from core.vault import generate_key
from tests.fakes.binance import FakeBinance, FakeOrder
from tests.harness import eventually

MASTER = ("master-key-0001", "master-secret")
FOLLOWER = ("follower-key-0001", "follower-secret-1")


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance() as server:
        for key, secret in (MASTER, FOLLOWER):
            server.add_account(key, secret)
        yield server


@pytest.fixture
async def app(fake, tmp_path, migrated_sqlite):
    settings = Settings(
        database_url=migrated_sqlite(tmp_path / "e2e.db"),
        secret_key=generate_key(),
        mode=Mode.TESTNET,
        venue_urls={"binanceusdm": fake.url_overrides()},
    )
    application = await build_app(settings)
    yield application
    await application.close()


async def _follow(app, fake):
    services = app.services
    owner = await services.register_user(1001, "master owner")
    master_key = await services.connect_account(
        owner.id, "binanceusdm", "master", {"api_key": MASTER[0], "secret": MASTER[1]}
    )
    master = await services.add_master("Futures Pro", "binanceusdm", owner_id=owner.id, credential_id=master_key.id)
    user = await services.register_user(2001, "follower")
    credential = await services.connect_account(
        user.id, "binanceusdm", "main", {"api_key": FOLLOWER[0], "secret": FOLLOWER[1]}
    )
    follow = await services.follow(user.id, master.id, credential.id, {"sizing_value": "1"})
    await app.start_listeners()
    await eventually(lambda: fake.open_websockets >= 1, "the master's user-data stream")
    return follow


def _open_orders(fake: FakeBinance) -> list[FakeOrder]:
    return [o for o in fake.accounts[FOLLOWER[0]].orders.values() if o.is_open]


async def _master_limit_partly_filled(app, fake) -> FakeOrder:
    """The master's BUY 0.2 @ 59,000 executes 0.1; the copy of that 0.1 rests at 59,000 (the
    follower's book is at 60,000: nothing crosses it)."""
    order = await fake.master_limit(MASTER[0], "BTCUSDT", "BUY", D("0.2"), D("59000"))
    await fake.fill_resting(MASTER[0], order.order_id, D("0.1"))
    await eventually(lambda: len(_open_orders(fake)) == 1, "the copy resting on the follower's account")
    await app.listeners.idle()
    return order


async def _skips_once_recorded(app, user_id: int) -> list[Any]:
    """The follower's skipped copies, once there is one (bounded wait: the exit streams in)."""
    for _ in range(400):
        await app.listeners.idle()
        rows = [r for r in await app.accounts.copy_history(user_id, limit=10) if r.status is CopyStatus.SKIPPED]
        if rows:
            return rows
        await asyncio.sleep(0.025)
    raise AssertionError("timed out waiting for the exit's skip")


def _told(app, client_order_id: str) -> list[CopyResult]:
    return [
        e for e in app.notifications.take_all() if isinstance(e, CopyResult) and e.client_order_id == client_order_id
    ]


async def test_a_masters_cancel_leaves_no_copy_resting_and_its_exit_leaves_the_follower_flat(app, fake):
    follow = await _follow(app, fake)
    follower = fake.accounts[FOLLOWER[0]]
    order = await _master_limit_partly_filled(app, fake)
    [copy] = _open_orders(fake)
    assert (copy.price, copy.quantity) == (D("59000"), D("0.1"))
    app.notifications.take_all()

    await fake.master_cancel(MASTER[0], order.order_id)
    await eventually(lambda: not _open_orders(fake), "the copy cancelled on the follower's account")
    await app.listeners.idle()
    row = await app.journal.copy_order(copy.client_order_id)
    assert row is not None and (row.state, row.status) == (OrderState.CANCELED, CopyStatus.CANCELED)
    assert row.reason is not None and "master cancelled" in row.reason
    [told] = _told(app, copy.client_order_id)
    assert told.status is CopyStatus.CANCELED and "master cancelled" in (told.reason or "")

    # the master leaves its 0.1; the follower holds nothing to close, and never will
    await fake.master_trade(MASTER[0], "BTCUSDT", "SELL", D("0.1"), reduce_only=True)
    skipped = await _skips_once_recorded(app, follow.user_id)
    assert [r.reason_code for r in skipped] == [SkipReason.NO_POSITION_TO_EXIT]
    await fake.trade_through("BTCUSDT", D("58000"))  # the market later falls through 59,000
    assert follower.signed_position("BTCUSDT") == 0


async def test_a_masters_amended_price_moves_its_resting_copy_there(app, fake):
    follow = await _follow(app, fake)
    follower = fake.accounts[FOLLOWER[0]]
    order = await _master_limit_partly_filled(app, fake)
    [old] = _open_orders(fake)

    await fake.master_modify(MASTER[0], order.order_id, D("0.2"), D("59500"))  # x=AMENDMENT
    await eventually(lambda: [o.price for o in _open_orders(fake)] == [D("59500")], "the copy moved to 59,500")
    await app.listeners.idle()
    [new] = _open_orders(fake)
    assert new.quantity == D("0.1") and new.client_order_id.startswith("cm")
    assert follower.orders[old.order_id].status == "CANCELED"
    old_row = await app.journal.copy_order(old.client_order_id)
    assert old_row is not None and old_row.state is OrderState.CANCELED
    assert old_row.reason is not None and "moved its order to 59500" in old_row.reason

    await fake.trade_through("BTCUSDT", D("59500"))  # the market reaches the new price
    await eventually(lambda: follower.signed_position("BTCUSDT") == D("0.1"), "the moved copy filled")
    await app.engine.track()
    new_row = await app.journal.copy_order(new.client_order_id)
    assert new_row is not None and new_row.state is OrderState.FILLED
    assert await app.journal.follow_positions([follow.id], "BTC/USDT:USDT") == {follow.id: D("0.1")}  # the ledger


async def test_an_amendment_of_the_quantity_alone_leaves_the_copy_as_it_is(app, fake):
    await _follow(app, fake)
    order = await _master_limit_partly_filled(app, fake)
    [copy] = _open_orders(fake)

    await fake.master_modify(MASTER[0], order.order_id, D("0.3"), D("59000"))
    await fake.fill_resting(MASTER[0], order.order_id, D("0.05"))  # streamed after the amendment
    await eventually(lambda: len(_open_orders(fake)) == 2, "the copy of the next execution")
    await app.listeners.idle()
    assert copy in _open_orders(fake)  # copies are of executions: the amendment changed none
