"""Issue 6's controls on real storage and paper venues: TP/SL (resting and watched), the daily
loss limit, the slippage guard, side and total-position limits, reconciliation and sync, and
opening the master's positions for a new follow."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest

from core.copying.config import FollowPaused
from core.journal import PositionChange
from core.model import CopyStatus, FollowStatus, OrderIntent, OrderOrigin, OrderType, Side, SkipReason, utcnow
from core.risk_service import DriftFound, crossed, protection_levels
from tests.harness import BTC

ETH = "ETH/USDT:USDT"


async def follow_settings(h, follow_id):
    return next(f for f in await h.journal.all_active_follows() if f.follow_id == follow_id)


def resting(venue, kind_prefix=""):
    return [o for o in venue.orders.values() if o.status is CopyStatus.PLACED and o.intent.stop_price is not None]


# -- levels --------------------------------------------------------------------------------------


def test_levels_are_percent_of_the_entry_on_the_tick_and_never_later():
    assert protection_levels(D("0.1"), D(60000), D(10), D(5), D("0.1")) == (D(66000), D(57000))
    assert protection_levels(D("-0.1"), D(60000), D(10), D(5), D("0.1")) == (D(54000), D(63000))
    # 1 % of 100.05 = 1.0005: a long's take-profit rounds down, its stop-loss up (both nearer the entry)
    assert protection_levels(D(1), D("100.05"), D(1), D(1), D("0.01")) == (D("101.05"), D("99.05"))


@pytest.mark.parametrize(
    "quantity, price, expected",
    [
        (D(1), D(110), "take_profit"),  # exactly at the level
        (D(1), D("109.9"), None),  # one tick short
        (D(1), D(95), "stop_loss"),
        (D(1), D("95.1"), None),
        (D(-1), D(90), "take_profit"),
        (D(-1), D(105), "stop_loss"),
    ],
)
def test_a_level_counts_from_exactly_the_trigger_price(quantity, price, expected):
    take_profit, stop_loss = (D(110), D(95)) if quantity > 0 else (D(90), D(105))
    assert crossed(quantity, price, take_profit, stop_loss) == expected


# -- resting TP/SL (the paper venue holds conditional orders) -------------------------------------


async def test_tp_sl_rest_on_the_venue_and_follow_the_position(h):
    follow_id, venue = await h.add_follower(take_profit_pct=D(10), stop_loss_pct=D(5))
    await h.engine.on_fill(h.fill(Side.BUY, "0.1", price="60000"))
    orders = sorted((o.intent.order_type.value, o.intent.stop_price, o.intent.quantity) for o in resting(venue))
    assert orders == [("stop_market", D(57000), D("0.1")), ("take_profit_market", D(66000), D("0.1"))]
    assert all(o.intent.reduce_only and o.intent.side is Side.SELL for o in resting(venue))

    await h.engine.on_fill(h.fill(Side.BUY, "0.1", price="60000"))  # added: resized
    assert sorted(o.intent.quantity for o in resting(venue)) == [D("0.2"), D("0.2")]
    await h.engine.on_fill(h.fill(Side.SELL, "0.1", price="60000"))  # partial exit: resized again
    assert sorted(o.intent.quantity for o in resting(venue)) == [D("0.1"), D("0.1")]
    await h.engine.on_fill(h.fill(Side.SELL, "0.1", price="60000"))  # full exit: nothing left behind
    assert resting(venue) == []
    assert await h.journal.protective_orders(follow_id) == []


async def test_a_triggered_stop_is_recorded_notified_and_its_sibling_cancelled(h):
    follow_id, venue = await h.add_follower(take_profit_pct=D(10), stop_loss_pct=D(5))
    await h.engine.on_fill(h.fill(Side.BUY, "0.1", price="60000"))
    h.exchange.set_price(BTC, D(56900))  # the venue executes the resting stop
    await h.risk.watch()
    assert await h.position(follow_id) == 0
    [stop] = await h.rows(follow_id=follow_id, origin="stop_loss")
    assert (stop.status, stop.filled_quantity, stop.fill_id) == (CopyStatus.FILLED, D("0.1"), None)
    assert stop.realized_pnl < 0
    assert resting(venue) == []  # the take-profit went with it
    assert any(getattr(e, "origin", None) == "stop_loss" for e in h.events)
    await h.risk.watch()  # seen again: recorded once
    assert len(await h.rows(follow_id=follow_id, origin="stop_loss")) == 1


# -- watched TP/SL (venues without conditional orders) ---------------------------------------------


async def test_the_watcher_closes_at_the_take_profit_once(h):
    follow_id, venue = await h.add_follower(take_profit_pct=D(10))
    venue.supports_conditional_orders = False
    await h.engine.on_fill(h.fill(Side.BUY, "0.1", price="60000"))
    assert resting(venue) == []
    h.exchange.set_price(BTC, D("65999.9"))  # one tick short
    assert await h.risk.watch() == []
    h.exchange.set_price(BTC, D(66000))
    [result] = await h.risk.watch()
    assert (result.origin, result.status, result.filled_quantity) == ("take_profit", CopyStatus.FILLED, D("0.1"))
    assert await h.position(follow_id) == 0
    assert await h.risk.watch() == []


# -- daily loss limit -----------------------------------------------------------------------------


async def test_daily_loss_exactly_at_the_limit_pauses_one_tick_better_does_not(h):
    h.exchange.fee_rate = D(0)  # fees count towards the loss: keep the numbers round
    follow_id, _ = await h.add_follower(daily_loss_limit=D(100))
    await h.engine.on_fill(h.fill(Side.BUY, "0.1", price="60000"))
    follow = await follow_settings(h, follow_id)
    h.exchange.set_price(BTC, D("59000.1"))  # -99.99
    assert not await h.risk.check_daily_loss(follow)
    h.exchange.set_price(BTC, D(59000))  # -100: the limit
    assert await h.risk.check_daily_loss(follow)
    row = await h.accounts.follow(follow_id)
    assert row.status is FollowStatus.PAUSED and "daily loss limit" in row.status_reason
    assert any(isinstance(e, FollowPaused) and e.follow_id == follow_id for e in h.events)


async def test_yesterdays_losses_do_not_count_after_midnight(h):
    follow_id, _ = await h.add_follower(daily_loss_limit=D(100))
    await h.engine.on_fill(h.fill(Side.BUY, "0.1", price="60000"))
    h.exchange.set_price(BTC, D(58000))
    await h.engine.on_fill(h.fill(Side.SELL, "0.1", price="58000"))  # realized -200 today: paused at once
    assert (await h.accounts.follow(follow_id)).status is FollowStatus.PAUSED
    await h.accounts.set_follow_status([follow_id], FollowStatus.ACTIVE, None)
    h.now = utcnow() + timedelta(days=1)  # the next UTC day
    assert not await h.risk.check_daily_loss(await follow_settings(h, follow_id))


async def test_loss_limit_can_close_the_positions(h):
    follow_id, venue = await h.add_follower(daily_loss_limit=D(50), close_on_daily_loss=True)
    await h.engine.on_fill(h.fill(Side.BUY, "0.1", price="60000"))
    h.exchange.set_price(BTC, D(59000))
    await h.risk.watch()
    assert (await h.accounts.follow(follow_id)).status is FollowStatus.PAUSED
    assert await h.position(follow_id) == 0 and (await venue.positions()) == []
    [close] = await h.rows(follow_id=follow_id, origin="close")
    assert close.status is CopyStatus.FILLED


# -- slippage guard, sides, total position --------------------------------------------------------


async def test_slippage_guard_skips_a_market_copy_past_the_limit(h):
    follow_id, venue = await h.add_follower(slippage_pct=D("0.5"))
    h.exchange.set_price(BTC, D(60300))  # exactly 0.5 % worse: still copied
    assert (await h.engine.on_fill(h.fill(Side.BUY, "0.1", price="60000"))).results[0].status is CopyStatus.FILLED
    h.exchange.set_price(BTC, D("60301"))  # past the limit
    result = (await h.engine.on_fill(h.fill(Side.BUY, "0.1", price="60000"))).results[0]
    assert result.skip.reason is SkipReason.SLIPPAGE and "0.5%" in str(result.skip)
    assert len(venue.orders) == 1


async def test_slippage_guard_in_limit_mode_sends_an_ioc_at_the_guard_price(h):
    follow_id, venue = await h.add_follower(slippage_pct=D("0.5"), slippage_action="limit")
    h.exchange.set_price(BTC, D(60600))
    result = (await h.engine.on_fill(h.fill(Side.BUY, "0.1", price="60000"))).results[0]
    [order] = venue.orders.values()
    assert (order.intent.order_type.value, order.intent.price, order.intent.time_in_force) == ("limit", D(60300), "IOC")
    assert (
        result.status is CopyStatus.SKIPPED and result.skip.reason is SkipReason.SLIPPAGE
    )  # nothing at 60300: cancelled
    assert await h.position(follow_id) == 0


async def test_long_only_follow_skips_short_entries_but_copies_exits(h):
    follow_id, _ = await h.add_follower(entry_sides="long")
    await h.engine.on_fill(h.fill(Side.BUY, "0.1"))
    await h.engine.on_fill(h.fill(Side.SELL, "0.1"))  # exit of the long: copied
    short = (await h.engine.on_fill(h.fill(Side.SELL, "0.1"))).results[0]  # a short entry: skipped
    assert short.skip.reason is SkipReason.SIDE_FILTERED
    assert await h.position(follow_id) == 0


async def test_total_position_limit_counts_every_symbol(h):
    follow_id, venue = await h.add_follower(max_total_notional=D(9000))
    await h.engine.on_fill(h.fill(Side.BUY, "0.1", price="60000"))  # 6000 used
    eth = (await h.engine.on_fill(h.fill(Side.BUY, "2", symbol=ETH, price="3000"))).results[0]  # 6000 asked, 3000 left
    assert eth.filled_quantity == D(1)
    full = (await h.engine.on_fill(h.fill(Side.BUY, "1", symbol=ETH, price="3000"))).results[0]
    assert full.skip.reason is SkipReason.MAX_POSITION


# -- reconciliation and sync ----------------------------------------------------------------------


async def test_missed_copy_is_reported_and_synced_without_duplicates(h):
    follow_id, venue = await h.add_follower()
    await h.engine.on_fill(h.fill(Side.BUY, "0.1"))
    await venue.place_order(OrderIntent(0, "liquidated", BTC, Side.SELL, D("0.1")))  # gone from the venue
    follow = await follow_settings(h, follow_id)
    assert await h.risk.reconcile(follow) == {BTC: (D("0.1"), D(0))}
    assert any(isinstance(e, DriftFound) and not e.synced for e in h.events)
    [result] = await h.risk.sync(follow)
    assert (result.origin, result.side, result.filled_quantity) == ("sync", Side.BUY, D("0.1"))
    assert await h.position(follow_id) == D("0.1")  # the copy history is the target: unchanged
    assert await h.risk.sync(follow) == []  # nothing left to do
    assert await h.risk.reconcile(follow) == {}


async def test_a_manual_trade_is_reduced_back_by_auto_sync(h):
    follow_id, venue = await h.add_follower(auto_sync=True)
    await h.engine.on_fill(h.fill(Side.BUY, "0.1"))
    await venue.place_order(OrderIntent(0, "manual", BTC, Side.BUY, D("0.05")))  # the user's own trade
    await h.risk.reconcile(await follow_settings(h, follow_id))
    [sync] = await h.rows(follow_id=follow_id, origin="sync")
    assert (sync.side, sync.requested_quantity, sync.reduce_only) == (Side.SELL, D("0.05"), True)
    assert (await venue.positions())[0].quantity == D("0.1")
    assert any(isinstance(e, DriftFound) and e.synced for e in h.events)


async def test_no_drift_means_no_report(h):
    follow_id, _ = await h.add_follower()
    await h.engine.on_fill(h.fill(Side.BUY, "0.1"))
    assert await h.risk.reconcile(await follow_settings(h, follow_id)) == {}
    assert not any(isinstance(e, DriftFound) for e in h.events)


# -- opening the master's positions ---------------------------------------------------------------


async def test_a_new_follow_can_take_over_the_masters_positions_once(h):
    await h.journal.set_master_position(h.master_id, BTC, D("0.4"))
    await h.journal.set_master_position(h.master_id, ETH, D("-2"))
    follow_id, venue = await h.add_follower(sizing_value=D("0.5"))
    follow = await follow_settings(h, follow_id)
    outcomes = await h.risk.open_master_positions(follow)
    assert {(r.fill.symbol, r.side, r.filled_quantity) for r in outcomes} == {
        (BTC, Side.BUY, D("0.2")),
        (ETH, Side.SELL, D(1)),
    }
    assert await h.position(follow_id) == D("0.2") and await h.position(follow_id, ETH) == D(-1)
    again = await h.risk.open_master_positions(follow)  # a repeated request places nothing new
    assert len(venue.orders) == 2 and all(r.status is CopyStatus.FILLED for r in again)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"slippage_pct": "80"}, "slippage limit % must be"),
        ({"slippage_pct": "-1"}, "slippage limit % must be"),
        ({"slippage_action": "maybe"}, "slippage action must be one of skip, limit"),
        ({"entry_sides": "sideways"}, "entry sides must be one of both, long, short"),
        ({"margin_mode": "portfolio"}, "margin mode must be one of cross, isolated"),
        ({"max_total_notional": "abc"}, "max total position must be a number"),
        ({"auto_sync": "perhaps"}, "auto-sync must be on or off"),
    ],
)
def test_bad_risk_settings_are_refused_with_a_specific_message(changes, message):
    from core.errors import UserError
    from core.follow_settings import validate_follow_changes

    with pytest.raises(UserError, match=message):
        validate_follow_changes(changes)


def test_risk_settings_are_parsed():
    from core.follow_settings import validate_follow_changes

    assert validate_follow_changes(
        {
            "slippage_pct": "0.5",
            "slippage_action": "LIMIT",
            "entry_sides": "long",
            "margin_mode": "off",
            "auto_sync": "on",
        }
    ) == {
        "slippage_pct": D("0.5"),
        "slippage_action": "limit",
        "entry_sides": "long",
        "margin_mode": None,
        "auto_sync": True,
    }


async def test_switching_tp_sl_off_cancels_what_rests(h):
    follow_id, venue = await h.add_follower(take_profit_pct=D(10), stop_loss_pct=D(5))
    await h.engine.on_fill(h.fill(Side.BUY, "0.1", price="60000"))
    assert len(resting(venue)) == 2
    await h.accounts.update_follow(follow_id, {"take_profit_pct": None, "stop_loss_pct": None})
    await h.risk.watch()
    assert resting(venue) == [] and await h.journal.protective_orders(follow_id) == []


async def test_closing_rounds_to_the_step_and_reports_the_remainder(h):
    follow_id, venue = await h.add_follower(sizing_mode="fixed_notional", sizing_value=D(1))
    await h.journal.finish_copies(
        [], [PositionChange(follow_id, "SOL/USDT:USDT", D("40.4"), D(150))]
    )  # off the step of 1
    await venue.place_order(OrderIntent(0, "seed", "SOL/USDT:USDT", Side.BUY, D(41)))
    results = await h.risk.close_positions(await follow_settings(h, follow_id), origin=OrderOrigin.CLOSE)
    assert [(r.status, r.filled_quantity or r.requested_quantity) for r in results] == [
        (CopyStatus.FILLED, D(40)),
        (CopyStatus.SKIPPED, D("0.4")),
    ]
    assert results[1].skip.reason is SkipReason.BELOW_MIN_QUANTITY
    assert len(await h.rows(follow_id=follow_id, origin="close")) == 2  # both recorded


# -- venues that take no market or IOC order (Angel One since April 2026) --------------------------


async def test_a_market_copy_to_a_venue_without_market_orders_is_a_protected_limit(h):
    follow_id, venue = await h.add_follower(price_protection_pct=D("0.5"))
    venue.takes_market_orders = False
    await h.engine.on_fill(h.fill(Side.BUY, "0.1", price="60000"))
    await h.engine.on_fill(h.fill(Side.SELL, "0.1", price="60000"))
    buy, sell = (order.intent for order in venue.orders.values())
    # 0.5 % past the master's price on the side that executes, rounded in the follower's favour
    assert (buy.order_type.value, buy.price, buy.time_in_force) == ("limit", D(60300), None)
    assert (sell.order_type.value, sell.price, sell.time_in_force) == ("limit", D(59700), None)


async def test_a_triggered_stop_is_copied_to_such_a_venue_as_a_protected_limit_at_the_default(h):
    follow_id, venue = await h.add_follower()
    venue.takes_market_orders = False
    await h.engine.on_fill(h.fill(Side.BUY, "0.1", price="60000", order_type=OrderType.STOP_MARKET))
    [order] = venue.orders.values()
    assert (order.intent.order_type, order.intent.price) == (OrderType.LIMIT, D(60600))  # 1 %: the default


async def test_the_slippage_guard_rests_a_limit_instead_of_an_ioc_where_the_venue_takes_none(h):
    follow_id, venue = await h.add_follower(slippage_pct=D("0.5"), slippage_action="limit")
    venue.takes_market_orders = False
    h.exchange.set_price(BTC, D(60600))
    result = (await h.engine.on_fill(h.fill(Side.BUY, "0.1", price="60000"))).results[0]
    [order] = venue.orders.values()
    assert (order.intent.order_type, order.intent.price, order.intent.time_in_force) == (
        OrderType.LIMIT,
        D(60300),
        None,
    )
    assert result.status is CopyStatus.PLACED  # it rests until filled, cancelled or its max resting time


async def test_a_follow_overrides_the_master_product_type(h):
    follow_id, venue = await h.add_follower(product="DELIVERY")
    await h.engine.on_fill(h.fill(Side.BUY, "0.1", price="60000", product="INTRADAY"))
    [order] = venue.orders.values()
    assert order.intent.product == "DELIVERY"
