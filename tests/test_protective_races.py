"""A take-profit or stop-loss that fires on the venue just before the copier resizes it: the cancel
finds it no longer resting, so it is read, and its fill is recorded like any triggered one — never
marked failed with the position it closed still in the ledger. Real storage, paper venues."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D

from core.model import CopyStatus, Side
from tests.harness import BTC


def resting(venue):
    return [o for o in venue.orders.values() if o.status is CopyStatus.PLACED and o.intent.stop_price is not None]


async def test_a_stop_that_fired_just_before_a_resize_is_recorded_and_the_resize_follows_the_venue(h):
    follow_id, venue = await h.add_follower(take_profit_pct=D(10), stop_loss_pct=D(5))
    await h.engine.on_fill(h.fill(Side.BUY, "0.1", price="60000"))
    h.exchange.set_price(BTC, D(56900))  # the venue executes the resting stop; no watch has run yet

    # the master adds: the copy fills, and its upkeep resizes the protection it finds
    added = await asyncio.wait_for(h.engine.on_fill(h.fill(Side.BUY, "0.1", price="56900")), timeout=30)

    assert added.results[0].status is CopyStatus.FILLED
    [stop] = await h.rows(follow_id=follow_id, origin="stop_loss")
    assert (stop.status, stop.filled_quantity) == (CopyStatus.FILLED, D("0.1"))
    [held] = await venue.positions()
    assert await h.position(follow_id) == held.quantity == D("0.1")
    assert sorted(o.intent.quantity for o in resting(venue)) == [D("0.1"), D("0.1")]  # protecting what is held
    assert any(getattr(e, "origin", None) == "stop_loss" for e in h.events)
    await h.risk.watch()  # seen again: recorded once
    assert len(await h.rows(follow_id=follow_id, origin="stop_loss")) == 1


async def test_a_loss_limit_reached_through_a_copy_closes_the_positions_from_that_copys_upkeep(h):
    """The limit is checked after every filled copy, in that copy's place in the follow's queue: the
    close it sends in the same symbol runs there too, never queued behind the copy (waiting for itself)."""
    follow_id, venue = await h.add_follower(daily_loss_limit=D(50), close_on_daily_loss=True)
    await h.engine.on_fill(h.fill(Side.BUY, "0.1", price="60000"))
    h.exchange.set_price(BTC, D(59000))  # -100 open

    await asyncio.wait_for(h.engine.on_fill(h.fill(Side.BUY, "0.01", price="59000")), timeout=30)

    [close] = await h.rows(follow_id=follow_id, origin="close")
    assert (close.status, close.filled_quantity) == (CopyStatus.FILLED, D("0.11"))
    assert await h.position(follow_id) == 0 and await venue.positions() == []
