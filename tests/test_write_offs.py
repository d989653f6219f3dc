"""What was closed outside the copier is written off the ledger, and the copier's own orders (closing,
sync, opening the master's positions) are bounded by the venue's position and split within its
maximum per order like copies. Paper venues (BTC/USDT:USDT modelled on Binance: at most 120 in one
market order); the paper venue refuses a reduce-only order above the position and an order above
its maximum, as Binance does (-2022, -4005)."""

from __future__ import annotations

from decimal import Decimal as D

from bot.formatting import format_copy_result
from core.model import CopyStatus, OrderIntent, OrderOrigin, OrderType, Side
from core.stats import replay
from storage.stats import StatsStore
from tests.harness import BTC

RICH = "100000000"


async def follow_settings(h, follow_id):
    return next(f for f in await h.journal.all_active_follows() if f.follow_id == follow_id)


async def close_by_hand(venue, follow_id, quantity, side=Side.SELL) -> None:
    await venue.place_order(OrderIntent(follow_id, f"by-hand-{quantity}", BTC, side, D(quantity), reduce_only=True))


async def venue_position(venue) -> D:
    return {p.symbol: p.quantity for p in await venue.positions()}.get(BTC, D(0))


async def test_a_follower_who_closed_part_by_hand_is_not_bought_back_by_sync_after_the_master_exits(h):
    follow_id, venue = await h.add_follower()
    await h.engine.on_fill(h.fill(qty="0.1"))
    await close_by_hand(venue, follow_id, "0.04")

    await h.engine.on_fill(h.fill(Side.SELL, qty="0.1", reduce_only=True))  # the master is flat

    assert await venue_position(venue) == 0 and await h.position(follow_id) == 0  # the ledger equals the venue
    follow = await follow_settings(h, follow_id)
    assert await h.risk.reconcile(follow) == {}  # nothing to report again
    assert await h.risk.sync(follow) == []  # nothing bought back
    assert await venue_position(venue) == 0
    assert await h.journal.drifts(follow_id) == []
    (write_off,) = await h.rows(follow_id=follow_id, origin=OrderOrigin.WRITE_OFF)
    assert (write_off.status, write_off.side, write_off.requested_quantity, write_off.state) == (
        CopyStatus.WRITTEN_OFF,
        Side.SELL,
        D("0.04"),
        None,  # never sent to a venue
    )
    assert write_off.fill_id is not None and write_off.reason is not None
    assert write_off.reason.startswith("closed outside the copier")
    assert write_off.client_order_id not in venue.orders
    (told,) = [e for e in h.events if getattr(e, "origin", None) is OrderOrigin.WRITE_OFF]
    assert format_copy_result(told).startswith("✂️ Closed outside the copier: 0.04 BTC/USDT:USDT taken off")


async def test_a_write_off_realizes_no_pnl_and_the_replay_of_the_executions_equals_the_ledger(h):
    follow_id, venue = await h.add_follower()
    await h.engine.on_fill(h.fill(qty="0.1", price="60000"))
    await close_by_hand(venue, follow_id, "0.04")
    h.exchange.set_price(BTC, D(61000))

    await h.engine.on_fill(h.fill(Side.SELL, qty="0.1", price="61000", reduce_only=True))

    live = replay(await StatsStore(h.db).follow_executions(follow_id, simulated=False))
    assert all(holding.quantity == 0 and holding.entry_price is None for holding in live.positions.values())
    exit_row = next(r for r in await h.rows(follow_id=follow_id, origin=OrderOrigin.COPY) if r.side is Side.SELL)
    assert exit_row.filled_quantity == D("0.06")
    gained = (exit_row.average_price - D(60000)) * D("0.06")  # only what the copier closed: 60 USDT
    assert sum(live.realized_by_day.values(), D(0)) == gained
    (write_off,) = await h.rows(follow_id=follow_id, origin=OrderOrigin.WRITE_OFF)
    assert write_off.realized_pnl == 0 and write_off.fee == 0


async def test_a_repeated_plan_of_the_exit_writes_nothing_off_twice(h):
    follow_id, venue = await h.add_follower()
    await h.engine.on_fill(h.fill(qty="0.1"))
    await close_by_hand(venue, follow_id, "0.04")
    exit_fill = h.fill(Side.SELL, qty="0.1", reduce_only=True)
    await h.engine.on_fill(exit_fill)
    (exit_row,) = [r for r in await h.rows(follow_id=follow_id, origin=OrderOrigin.COPY) if r.side is Side.SELL]
    assert exit_row.fill_id is not None
    h.events.clear()

    await h.engine.copy_journaled(exit_row.fill_id, lambda _: True)

    assert len(await h.rows(follow_id=follow_id, origin=OrderOrigin.WRITE_OFF)) == 1
    assert await h.position(follow_id) == 0 and await venue_position(venue) == 0
    assert not [e for e in h.events if getattr(e, "origin", None) is OrderOrigin.WRITE_OFF]


async def test_a_partial_exit_that_finds_less_than_it_closes_brings_the_ledger_to_the_venue(h):
    follow_id, venue = await h.add_follower()
    await h.engine.on_fill(h.fill(qty="1"))
    await close_by_hand(venue, follow_id, "0.8")  # 0.2 left on the venue

    await h.engine.on_fill(h.fill(Side.SELL, qty="0.5", reduce_only=True))  # the master closes half

    assert await venue_position(venue) == 0 and await h.position(follow_id) == 0
    (write_off,) = await h.rows(follow_id=follow_id, origin=OrderOrigin.WRITE_OFF)
    assert write_off.requested_quantity == D("0.8")
    await h.engine.on_fill(h.fill(Side.SELL, qty="0.5", reduce_only=True))  # the rest: nothing left to close
    assert [o.intent.quantity for o in venue.orders.values() if o.intent.side is Side.SELL] == [D("0.8"), D("0.2")]


async def test_a_take_profit_still_resting_on_the_venue_does_not_hold_the_write_off_back(h):
    follow_id, venue = await h.add_follower(take_profit_pct=D(10), stop_loss_pct=D(5))
    await h.engine.on_fill(h.fill(qty="0.1"))
    assert len(await h.journal.protective_orders(follow_id)) == 2  # resting on the venue, untriggered
    await close_by_hand(venue, follow_id, "0.04")

    await h.engine.on_fill(h.fill(Side.SELL, qty="0.1", reduce_only=True))

    assert len(await h.rows(follow_id=follow_id, origin=OrderOrigin.WRITE_OFF)) == 1
    assert await h.position(follow_id) == 0 and await venue_position(venue) == 0
    assert await h.journal.protective_orders(follow_id) == []  # flat: nothing left to protect


async def test_a_take_profit_that_triggered_unseen_is_recorded_as_the_close_never_written_off(h):
    follow_id, venue = await h.add_follower(take_profit_pct=D(10))
    await h.engine.on_fill(h.fill(qty="0.1", price=str(h.exchange.prices[BTC])))
    h.exchange.set_price(BTC, h.exchange.prices[BTC] * D("1.2"))  # the take-profit fires on the venue
    assert await venue_position(venue) == 0 and await h.position(follow_id) == D("0.1")  # not seen yet

    await h.engine.on_fill(h.fill(Side.SELL, qty="0.1", reduce_only=True))
    await h.risk.watch()  # the risk watch finds it

    assert await h.rows(follow_id=follow_id, origin=OrderOrigin.WRITE_OFF) == []
    (close,) = await h.rows(follow_id=follow_id, origin=OrderOrigin.TAKE_PROFIT)
    assert close.filled_quantity == D("0.1") and close.realized_pnl > 0  # the copier's PnL, counted
    assert await h.position(follow_id) == 0


async def test_a_write_off_waits_while_an_order_of_the_follow_may_still_execute_in_the_symbol(h):
    follow_id, venue = await h.add_follower()
    await h.engine.on_fill(h.fill(qty="0.1"))
    below = h.exchange.prices[BTC] - 1000
    await h.engine.on_fill(h.fill(qty="0.1", order_type=OrderType.LIMIT, limit_price=below))  # the copy rests
    await close_by_hand(venue, follow_id, "0.04")

    outcome = await h.engine.on_fill(h.fill(Side.SELL, qty="0.2", reduce_only=True))

    assert await h.rows(follow_id=follow_id, origin=OrderOrigin.WRITE_OFF) == []  # the ledger may miss a fill
    (result,) = outcome.results
    (row,) = await h.rows(client_order_id=result.client_order_id)
    assert "closed outside the copier is not sent (recorded as drift)" in (row.reason or "")
    assert [(d.symbol, d.expected, d.actual) for d in await h.journal.drifts(follow_id)] == [(BTC, D("0.04"), D(0))]


# -- the copier's own orders ------------------------------------------------------------------------


async def test_a_150_btc_stop_close_is_sent_in_parts_and_the_follower_ends_flat(h):
    follow_id, venue = await h.add_follower(balance=RICH)
    await h.engine.on_fill(h.fill(qty="150"))
    assert await h.position(follow_id) == D(150)

    results = await h.risk.close_positions(await follow_settings(h, follow_id), origin=OrderOrigin.CLOSE)

    closes = [o for o in venue.orders.values() if o.intent.side is Side.SELL]
    assert sorted(o.intent.quantity for o in closes) == [D(75), D(75)]
    assert all(o.intent.reduce_only and o.intent.client_order_id.startswith("cs") for o in closes)
    assert [r.status for r in results] == [CopyStatus.FILLED, CopyStatus.FILLED]
    assert await venue_position(venue) == 0 and await h.position(follow_id) == 0
    again = await h.risk.close_positions(await follow_settings(h, follow_id), origin=OrderOrigin.CLOSE)
    assert again == [] and len(venue.orders) == 4  # two entry parts, two close parts: nothing twice


async def test_a_stop_close_larger_than_the_venue_position_closes_what_is_there_and_writes_off_the_rest(h):
    follow_id, venue = await h.add_follower()
    await h.engine.on_fill(h.fill(qty="0.1"))
    await close_by_hand(venue, follow_id, "0.04")

    (result,) = await h.risk.close_positions(await follow_settings(h, follow_id), origin=OrderOrigin.CLOSE)

    assert (result.status, result.filled_quantity) == (CopyStatus.FILLED, D("0.06"))
    assert await venue_position(venue) == 0 and await h.position(follow_id) == 0
    (write_off,) = await h.rows(follow_id=follow_id, origin=OrderOrigin.WRITE_OFF)
    assert write_off.requested_quantity == D("0.04") and write_off.fill_id is None


async def test_opening_the_masters_150_btc_position_is_sent_in_parts(h):
    await h.journal.set_master_position(h.master_id, BTC, D(150))
    follow_id, venue = await h.add_follower(balance=RICH)

    outcomes = await h.risk.open_master_positions(await follow_settings(h, follow_id))

    assert sorted(o.intent.quantity for o in venue.orders.values()) == [D(75), D(75)]
    assert [r.status for r in outcomes] == [CopyStatus.FILLED, CopyStatus.FILLED]
    assert await h.position(follow_id) == D(150) and await venue_position(venue) == D(150)


async def test_a_sync_above_the_market_maximum_is_sent_in_parts(h):
    follow_id, venue = await h.add_follower(balance=RICH)
    await h.engine.on_fill(h.fill(qty="150"))
    for half in ("75", "75.0"):  # a liquidation, say: the copy history still holds 150
        await close_by_hand(venue, follow_id, half)
    follow = await follow_settings(h, follow_id)
    await h.risk.reconcile(follow)

    results = await h.risk.sync(follow)

    assert [r.status for r in results] == [CopyStatus.FILLED, CopyStatus.FILLED]
    assert await venue_position(venue) == D(150) and await h.position(follow_id) == D(150)
