"""The risk controls for hedge-mode followers on Binance USD-M, through the real ccxt against the
fake exchange in hedge mode (``dualSidePosition``): take-profit / stop-loss per leg, opening a
hedge-mode master's legs for a new follow, and drift checks per position side.

Binance's New Order: ``positionSide`` "must be sent in Hedge Mode" and ``reduceOnly`` "Cannot be
sent in Hedge Mode" (docs/research/binance.md §5); the fake refuses both mistakes (-4061, -1106),
conditional (algo) orders included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal as D

import pytest

from copytrade.app import build_app
from core.model import OrderOrigin, PositionSide
from tests.fakes.binance import FakeBinance
from tests.harness import eventually
from tests.hedge_world import BTC, HEDGED, MASTER, ONE_WAY, hedge_exchange, hedge_settings, sides


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with hedge_exchange() as server:
        yield server


@pytest.fixture
async def app(fake, tmp_path, migrated_sqlite):
    database = tmp_path / "hedge-risk.db"
    migrated_sqlite(database)
    application = await build_app(hedge_settings(fake, database))
    yield application
    await application.close()


async def _master(app):
    owner = await app.services.register_user(1001, "master owner")
    key = await app.services.connect_account(
        owner.id, "binanceusdm", "master", {"api_key": MASTER[0], "secret": MASTER[1]}
    )
    return await app.services.add_master("Hedger", "binanceusdm", owner_id=owner.id, credential_id=key.id)


async def _follow(app, master, telegram_id: int, account: tuple[str, str], **settings: str):
    user = await app.services.register_user(telegram_id, f"follower {telegram_id}")
    credential = await app.services.connect_account(
        user.id, "binanceusdm", "main", {"api_key": account[0], "secret": account[1]}
    )
    return await app.services.follow(user.id, master.id, credential.id, {"sizing_value": "1", **settings})


async def _settings(app, master, follow):
    [settings] = [f for f in await app.journal.active_follows(master.id) if f.follow_id == follow.id]
    return settings


def _resting(fake, api_key: str) -> list[tuple[str, str, str, D, D]]:
    """The account's resting conditional orders: (type, side, positionSide, quantity, trigger)."""
    orders = fake.accounts[api_key].orders.values()
    return sorted(
        (o.type, o.side, o.position_side, o.quantity, o.stop_price) for o in orders if o.algo and o.status == "NEW"
    )


async def _ledger(app, follow_id: int) -> dict[PositionSide, D]:
    return {p.position_side: p.quantity for p in await app.journal.real_positions(follow_id)}


# -- take-profit / stop-loss per leg ------------------------------------------------------------


async def test_each_hedge_leg_gets_its_own_take_profit_and_stop_loss_with_its_position_side(app, fake):
    master = await _master(app)
    follow = await _follow(app, master, 2001, HEDGED, take_profit_pct="5", stop_loss_pct="10")
    await app.start_listeners()
    await eventually(lambda: fake.open_websockets >= 1, "the master's user-data stream")

    await fake.master_trade(MASTER[0], "BTCUSDT", "BUY", D("0.2"), position_side="LONG")
    await fake.master_trade(MASTER[0], "BTCUSDT", "SELL", D("0.1"), position_side="SHORT")
    await eventually(lambda: sides(fake, HEDGED[0]) == (D("0.2"), D("0.1")), "both legs copied")
    await app.listeners.idle()
    await eventually(lambda: len(_resting(fake, HEDGED[0])) == 4, "two protective orders per leg")

    # entries at 60000: the long is protected by SELLs on LONG, the short by BUYs on SHORT
    assert _resting(fake, HEDGED[0]) == [
        ("STOP_MARKET", "BUY", "SHORT", D("0.1"), D("66000")),
        ("STOP_MARKET", "SELL", "LONG", D("0.2"), D("54000")),
        ("TAKE_PROFIT_MARKET", "BUY", "SHORT", D("0.1"), D("57000")),
        ("TAKE_PROFIT_MARKET", "SELL", "LONG", D("0.2"), D("63000")),
    ]
    assert not any(o.reduce_only for o in fake.accounts[HEDGED[0]].orders.values())  # refused in hedge mode

    # the price reaches the long's take-profit (and none of the short's levels)
    fake.set_mark_price("BTCUSDT", D("63500"))
    await fake.trigger_conditional(HEDGED[0])
    assert sides(fake, HEDGED[0]) == (0, D("0.1"))  # the venue closed the long only
    await app.risk.watch()

    assert await _ledger(app, follow.id) == {PositionSide.SHORT: D("-0.1")}  # the long's copy closed
    assert _resting(fake, HEDGED[0]) == [  # the long's stop-loss went, the short's orders stay
        ("STOP_MARKET", "BUY", "SHORT", D("0.1"), D("66000")),
        ("TAKE_PROFIT_MARKET", "BUY", "SHORT", D("0.1"), D("57000")),
    ]
    rows = await app.accounts.copy_history((await app.accounts.follow(follow.id)).user_id, limit=50)
    [triggered] = [r for r in rows if r.origin == OrderOrigin.TAKE_PROFIT]
    assert (triggered.side.value, triggered.filled_quantity) == ("sell", D("0.2"))


async def test_a_hedge_legs_stop_loss_fill_moves_the_ledger_by_what_the_venue_executed(app, fake):
    master = await _master(app)
    follow = await _follow(app, master, 2001, HEDGED, stop_loss_pct="5")
    await app.start_listeners()
    await eventually(lambda: fake.open_websockets >= 1, "the master's user-data stream")
    await fake.master_trade(MASTER[0], "BTCUSDT", "BUY", D("0.2"), position_side="LONG")
    await fake.master_trade(MASTER[0], "BTCUSDT", "SELL", D("0.1"), position_side="SHORT")
    await eventually(lambda: sides(fake, HEDGED[0]) == (D("0.2"), D("0.1")), "both legs copied")
    await app.listeners.idle()
    await eventually(lambda: len(_resting(fake, HEDGED[0])) == 2, "a stop-loss per leg")

    fake.set_mark_price("BTCUSDT", D("63100"))  # above the short's stop (63000), far from the long's
    await fake.trigger_conditional(HEDGED[0])
    await app.risk.watch()
    await app.risk.watch()  # seen twice: recorded once

    assert sides(fake, HEDGED[0]) == (D("0.2"), 0)
    assert await _ledger(app, follow.id) == {PositionSide.LONG: D("0.2")}
    rows = await app.accounts.copy_history((await app.accounts.follow(follow.id)).user_id, limit=50)
    stops = [r for r in rows if r.origin == OrderOrigin.STOP_LOSS]
    assert [(r.side.value, r.filled_quantity, r.average_price) for r in stops] == [("buy", D("0.1"), D("63100"))]
    assert _resting(fake, HEDGED[0]) == [("STOP_MARKET", "SELL", "LONG", D("0.2"), D("57000"))]


# -- opening a hedge-mode master's positions at follow time ---------------------------------------


async def _master_with_both_legs(app, fake):
    master = await _master(app)
    await app.journal.set_master_position(master.id, BTC, D("0.01"), PositionSide.LONG)
    await app.journal.set_master_position(master.id, BTC, D("-0.004"), PositionSide.SHORT)
    return master


async def test_a_hedge_follower_opens_both_legs_of_a_hedge_master_at_follow_time(app, fake):
    master = await _master_with_both_legs(app, fake)
    follow = await _follow(app, master, 2001, HEDGED)

    outcomes = await app.risk.open_master_positions(await _settings(app, master, follow))

    assert [(o.side.value, o.filled_quantity, o.error) for o in outcomes] == [
        ("buy", D("0.01"), None),
        ("sell", D("0.004"), None),
    ]
    assert sides(fake, HEDGED[0]) == (D("0.01"), D("0.004"))
    assert await _ledger(app, follow.id) == {PositionSide.LONG: D("0.01"), PositionSide.SHORT: D("-0.004")}
    again = await app.risk.open_master_positions(await _settings(app, master, follow))  # nothing sent twice
    assert [o.client_order_id for o in again] == [o.client_order_id for o in outcomes]
    assert sides(fake, HEDGED[0]) == (D("0.01"), D("0.004"))


async def test_a_one_way_follower_opens_the_net_of_a_hedge_masters_legs_with_the_reason_recorded(app, fake):
    master = await _master_with_both_legs(app, fake)
    follow = await _follow(app, master, 2002, ONE_WAY)

    outcomes = await app.risk.open_master_positions(await _settings(app, master, follow))

    assert all(o.error is None for o in outcomes)
    assert fake.accounts[ONE_WAY[0]].signed_position("BTCUSDT") == D("0.006")
    assert await _ledger(app, follow.id) == {PositionSide.LONG: D("0.01"), PositionSide.SHORT: D("-0.004")}
    rows = await app.accounts.copy_history((await app.accounts.follow(follow.id)).user_id, limit=50)
    reasons = [r.reason for r in sorted(rows, key=lambda r: r.created_at)]
    assert reasons == [
        None,
        "the master opened its short (hedge mode) while your copy is long: your one-way account reduces its long",
    ]


# -- drift checks per position side ---------------------------------------------------------------


async def test_drift_is_checked_and_synced_per_leg_on_a_hedge_account_even_when_the_net_agrees(app, fake):
    master = await _master(app)
    await app.journal.set_master_position(master.id, BTC, D("0.2"), PositionSide.LONG)
    await app.journal.set_master_position(master.id, BTC, D("-0.1"), PositionSide.SHORT)
    follow = await _follow(app, master, 2001, HEDGED)
    await app.risk.open_master_positions(await _settings(app, master, follow))
    assert sides(fake, HEDGED[0]) == (D("0.2"), D("0.1"))
    # the user sells half the long and closes the short by hand: the net (0.1) is unchanged
    await fake.master_trade(HEDGED[0], "BTCUSDT", "SELL", D("0.1"), position_side="LONG")
    await fake.master_trade(HEDGED[0], "BTCUSDT", "BUY", D("0.1"), position_side="SHORT")
    settings = await _settings(app, master, follow)

    assert await app.risk.reconcile(settings) == {
        f"{BTC} long": (D("0.2"), D("0.1")),
        f"{BTC} short": (D("-0.1"), D(0)),
    }
    results = await app.risk.sync(settings)

    assert [(r.side.value, r.filled_quantity, r.error) for r in results] == [
        ("buy", D("0.1"), None),
        ("sell", D("0.1"), None),
    ]
    sent = [
        o for o in fake.accounts[HEDGED[0]].orders.values() if o.client_order_id in {r.client_order_id for r in results}
    ]
    assert sorted((o.side, o.position_side, o.reduce_only) for o in sent) == [
        ("BUY", "LONG", False),
        ("SELL", "SHORT", False),
    ]
    assert sides(fake, HEDGED[0]) == (D("0.2"), D("0.1"))
    assert await _ledger(app, follow.id) == {PositionSide.LONG: D("0.2"), PositionSide.SHORT: D("-0.1")}  # target
    assert await app.risk.reconcile(settings) == {}
    assert await app.risk.sync(settings) == []


async def test_a_one_way_follower_of_hedge_legs_is_checked_by_its_net(app, fake):
    master = await _master(app)
    await app.journal.set_master_position(master.id, BTC, D("0.2"), PositionSide.LONG)
    await app.journal.set_master_position(master.id, BTC, D("-0.1"), PositionSide.SHORT)
    follow = await _follow(app, master, 2002, ONE_WAY)
    await app.risk.open_master_positions(await _settings(app, master, follow))
    settings = await _settings(app, master, follow)
    assert await app.risk.reconcile(settings) == {}  # legs 0.2 and -0.1 copied, the venue's net 0.1

    await fake.master_trade(ONE_WAY[0], "BTCUSDT", "SELL", D("0.1"))  # by hand: flat
    assert await app.risk.reconcile(settings) == {BTC: (D("0.1"), D(0))}
    [result] = await app.risk.sync(settings)
    assert (result.side.value, result.filled_quantity) == ("buy", D("0.1"))
    assert fake.accounts[ONE_WAY[0]].signed_position("BTCUSDT") == D("0.1")


async def test_a_one_way_follower_of_hedge_legs_protects_its_net_and_a_trigger_closes_that_leg(app, fake):
    master = await _master(app)
    follow = await _follow(app, master, 2002, ONE_WAY, take_profit_pct="5", stop_loss_pct="10")
    await app.start_listeners()
    await eventually(lambda: fake.open_websockets >= 1, "the master's user-data stream")
    one_way = fake.accounts[ONE_WAY[0]]

    await fake.master_trade(MASTER[0], "BTCUSDT", "BUY", D("0.2"), position_side="LONG")
    await fake.master_trade(MASTER[0], "BTCUSDT", "SELL", D("0.1"), position_side="SHORT")
    await eventually(lambda: one_way.signed_position("BTCUSDT") == D("0.1"), "the net copied")
    await app.listeners.idle()
    await app.risk.watch()

    # the venue holds a long of 0.1: that is what is protected, from the long copy's entry
    assert _resting(fake, ONE_WAY[0]) == [
        ("STOP_MARKET", "SELL", "BOTH", D("0.1"), D("54000")),
        ("TAKE_PROFIT_MARKET", "SELL", "BOTH", D("0.1"), D("63000")),
    ]
    fake.set_mark_price("BTCUSDT", D("63500"))
    await fake.trigger_conditional(ONE_WAY[0])
    await app.risk.watch()

    assert one_way.signed_position("BTCUSDT") == 0
    assert await _ledger(app, follow.id) == {PositionSide.LONG: D("0.1"), PositionSide.SHORT: D("-0.1")}  # net 0
    assert _resting(fake, ONE_WAY[0]) == []
