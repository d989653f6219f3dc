"""Hedge-mode masters and followers on Binance USD-M, through the real ccxt against the fake
exchange in hedge mode (``dualSidePosition``): a master's long and short are two positions,
each leg is split against the position of its side, a hedge-mode follower copies each side on
that side, and a one-way follower gets the net effect with the reason recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal as D

import pytest
from sqlmodel import col, select

from copytrade.app import build_app
from copytrade.config import Settings
from core.model import OrderOrigin, PositionSide
from storage.models import MasterPosition
from tests.fakes.binance import FakeBinance
from tests.harness import eventually
from tests.hedge_world import BTC, HEDGED, MASTER, ONE_WAY, hedge_exchange, hedge_settings, sides


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with hedge_exchange() as server:
        yield server


def _settings(fake, tmp_path) -> Settings:
    return hedge_settings(fake, tmp_path / "hedge.db")


@pytest.fixture
async def app(fake, tmp_path, migrated_sqlite):
    migrated_sqlite(tmp_path / "hedge.db")  # the file _settings names (a restart opens it again)
    application = await build_app(_settings(fake, tmp_path))
    yield application
    await application.close()


async def _setup(app, fake):
    services = app.services
    owner = await services.register_user(1001, "master owner")
    master_key = await services.connect_account(
        owner.id, "binanceusdm", "master", {"api_key": MASTER[0], "secret": MASTER[1]}
    )
    master = await services.add_master("Hedger", "binanceusdm", owner_id=owner.id, credential_id=master_key.id)
    follows = []
    for n, (key, secret) in enumerate((HEDGED, ONE_WAY), start=1):
        user = await services.register_user(2000 + n, f"follower {n}")
        credential = await services.connect_account(user.id, "binanceusdm", "main", {"api_key": key, "secret": secret})
        follows.append(await services.follow(user.id, master.id, credential.id, {"sizing_value": "1"}))
    await app.start_listeners()
    await eventually(lambda: fake.open_websockets >= 1, "the master's user-data stream")
    return master, follows


async def _master_sides(app, master_id: int) -> dict[tuple[str, PositionSide], D]:
    async with app.journal.db.session() as session:
        rows = await session.execute(select(MasterPosition).where(col(MasterPosition.master_id) == master_id))
        return {(r.symbol, r.position_side): r.quantity for r in rows.scalars() if r.quantity != 0}


async def test_a_master_opening_a_short_while_long_keeps_the_hedge_followers_long_and_opens_its_short(app, fake):
    master, follows = await _setup(app, fake)
    await fake.master_trade(MASTER[0], "BTCUSDT", "BUY", D("0.2"), position_side="LONG")
    await eventually(lambda: sides(fake, HEDGED[0]) == (D("0.2"), 0), "the long copied")

    await fake.master_trade(MASTER[0], "BTCUSDT", "SELL", D("0.1"), position_side="SHORT")  # opens a short
    await eventually(lambda: sides(fake, HEDGED[0]) == (D("0.2"), D("0.1")), "both sides held")
    await app.listeners.idle()

    assert await _master_sides(app, master.id) == {
        (BTC, PositionSide.LONG): D("0.2"),
        (BTC, PositionSide.SHORT): D("-0.1"),
    }
    assert await app.journal.master_positions(master.id) == {BTC: D("0.1")}  # net, for reconciliation


async def test_a_one_way_follower_gets_the_net_effect_of_hedge_legs_with_the_reason_recorded(app, fake):
    master, follows = await _setup(app, fake)
    one_way = fake.accounts[ONE_WAY[0]]
    await fake.master_trade(MASTER[0], "BTCUSDT", "BUY", D("0.2"), position_side="LONG")
    await eventually(lambda: one_way.signed_position("BTCUSDT") == D("0.2"), "the long copied")

    await fake.master_trade(MASTER[0], "BTCUSDT", "SELL", D("0.1"), position_side="SHORT")  # opens a short
    await eventually(lambda: one_way.signed_position("BTCUSDT") == D("0.1"), "the net: long 0.2 - short 0.1")
    await fake.master_trade(MASTER[0], "BTCUSDT", "BUY", D("0.1"), position_side="SHORT")  # closes the short
    await eventually(lambda: one_way.signed_position("BTCUSDT") == D("0.2"), "the net: long 0.2 again")
    await app.listeners.idle()

    rows = await app.accounts.copy_history((await app.accounts.follow(follows[1].id)).user_id, limit=50)
    reasons = [r.reason for r in sorted(rows, key=lambda r: r.created_at)]
    assert reasons == [
        None,
        "the master opened its short (hedge mode) while your copy is long: your one-way account reduces its long",
        "the master reduced its short (hedge mode) while your copy is long: your one-way account adds to its long",
    ]
    assert not any(o.reduce_only for o in one_way.orders.values())  # Binance would refuse the add as reduce-only


async def test_a_partial_exit_of_one_side_closes_that_fraction_of_that_side_only(app, fake):
    master, follows = await _setup(app, fake)
    await fake.master_trade(MASTER[0], "BTCUSDT", "BUY", D("0.4"), position_side="LONG")
    await fake.master_trade(MASTER[0], "BTCUSDT", "SELL", D("0.2"), position_side="SHORT")
    await eventually(lambda: sides(fake, HEDGED[0]) == (D("0.4"), D("0.2")), "both sides copied")

    await fake.master_trade(MASTER[0], "BTCUSDT", "BUY", D("0.1"), position_side="SHORT")  # half of the short
    await eventually(lambda: sides(fake, HEDGED[0]) == (D("0.4"), D("0.1")), "half the short closed")
    await fake.master_trade(MASTER[0], "BTCUSDT", "SELL", D("0.1"), position_side="LONG")  # a quarter of the long
    await eventually(lambda: sides(fake, HEDGED[0]) == (D("0.3"), D("0.1")), "a quarter of the long closed")
    await eventually(lambda: fake.accounts[ONE_WAY[0]].signed_position("BTCUSDT") == D("0.2"), "one-way net")
    await app.listeners.idle()
    hedged_orders = fake.accounts[HEDGED[0]].orders.values()
    assert all(not o.reduce_only for o in hedged_orders)  # hedge mode: positionSide, never reduceOnly


async def test_hedge_legs_made_while_down_are_replayed_per_side(app, fake, tmp_path):
    master, follows = await _setup(app, fake)
    await fake.master_trade(MASTER[0], "BTCUSDT", "BUY", D("0.4"), position_side="LONG")
    await fake.master_trade(MASTER[0], "BTCUSDT", "SELL", D("0.2"), position_side="SHORT")
    await eventually(lambda: sides(fake, HEDGED[0]) == (D("0.4"), D("0.2")), "both sides copied")
    await app.listeners.idle()
    await app.close()

    await fake.master_trade(MASTER[0], "BTCUSDT", "SELL", D("0.2"), position_side="LONG")  # while down: half the long
    await fake.master_trade(MASTER[0], "BTCUSDT", "BUY", D("0.2"), position_side="SHORT")  # while down: the short
    restarted = await build_app(_settings(fake, tmp_path))
    try:
        await restarted.start_listeners()
        await eventually(lambda: sides(fake, HEDGED[0]) == (D("0.2"), 0), "half the long and all the short")
        await eventually(lambda: fake.accounts[ONE_WAY[0]].signed_position("BTCUSDT") == D("0.2"), "one-way net")
        await restarted.listeners.idle()
        assert await _master_sides(restarted, master.id) == {(BTC, PositionSide.LONG): D("0.2")}
    finally:
        await restarted.close()


async def test_closing_a_hedge_followers_copies_closes_each_side_and_its_ledger(app, fake):
    master, follows = await _setup(app, fake)
    await fake.master_trade(MASTER[0], "BTCUSDT", "BUY", D("0.4"), position_side="LONG")
    await fake.master_trade(MASTER[0], "BTCUSDT", "SELL", D("0.2"), position_side="SHORT")
    await eventually(lambda: sides(fake, HEDGED[0]) == (D("0.4"), D("0.2")), "both sides copied")
    await app.listeners.idle()

    [settings] = [f for f in await app.journal.active_follows(master.id) if f.follow_id == follows[0].id]
    await app.risk.close_positions(settings, origin=OrderOrigin.CLOSE)

    await eventually(lambda: sides(fake, HEDGED[0]) == (0, 0), "both sides closed")
    assert await app.journal.real_positions(follows[0].id) == []


async def test_closing_a_one_way_followers_copies_of_both_legs_leaves_it_flat(app, fake):
    master, follows = await _setup(app, fake)
    one_way = fake.accounts[ONE_WAY[0]]
    await fake.master_trade(MASTER[0], "BTCUSDT", "BUY", D("0.4"), position_side="LONG")
    await fake.master_trade(MASTER[0], "BTCUSDT", "SELL", D("0.2"), position_side="SHORT")
    await eventually(lambda: one_way.signed_position("BTCUSDT") == D("0.2"), "the net copied")
    await app.listeners.idle()

    [settings] = [f for f in await app.journal.active_follows(master.id) if f.follow_id == follows[1].id]
    results = await app.risk.close_positions(settings, origin=OrderOrigin.CLOSE)

    assert [r.error for r in results] == [None, None]
    await eventually(lambda: one_way.signed_position("BTCUSDT") == 0, "flat")
    closes = [o for o in one_way.orders.values() if o.client_order_id in {r.client_order_id for r in results}]
    # the long's copy (0.4) is more than the account's net long (0.2): reduce-only would be cut to 0.2
    assert sorted((o.side, o.quantity, o.reduce_only) for o in closes) == [
        ("BUY", D("0.2"), True),
        ("SELL", D("0.4"), False),
    ]
    assert await app.journal.real_positions(follows[1].id) == []
