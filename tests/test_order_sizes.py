"""Orders within the venue's maximum per order, and exits within the position the venue shows: a
copy larger than the venue takes at once is split into parts (each journaled under its own derived
id) or, for an entry the follow asks to cap, capped with the reason; an exit never asks for more than
the venue holds, and what the ledger holds beyond it is written off (closed outside the copier).
Paper venues (BTC/USDT:USDT modelled on Binance: at most 120 in one market order, 1000 in one
limit)."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D

from core.copying.positions import VenuePositions
from core.model import CopyStatus, OrderIntent, OrderType, OversizeAction, Side, SkipReason
from tests.harness import BTC

RICH = "100000000"


async def test_a_market_copy_above_the_market_maximum_is_split_into_parts_each_with_its_own_id(h):
    follow_id, venue = await h.add_follower(balance=RICH)
    fill = h.fill(qty="150")

    outcome = await h.engine.on_fill(fill)

    placed = sorted((o.client_order_id, o.intent.quantity) for o in venue.orders.values())
    assert [q for _, q in placed] == [D(75), D(75)]
    assert {cid for cid, _ in placed} == {r.client_order_id for r in outcome.results}
    assert all(cid.startswith("cs") for cid, _ in placed)  # the parts' ids: the copy's own id is never sent
    assert [r.status for r in outcome.results] == [CopyStatus.FILLED, CopyStatus.FILLED]
    rows = await h.rows(follow_id=follow_id)
    assert sorted(r.reason for r in rows) == [
        "part 1 of 2: 150 BTC is above the 120 paper takes in one market order",
        "part 2 of 2: 150 BTC is above the 120 paper takes in one market order",
    ]
    assert await h.position(follow_id) == D(150)


async def test_an_entry_above_the_maximum_is_capped_with_the_reason_when_the_follow_asks_to_cap(h):
    follow_id, venue = await h.add_follower(balance=RICH, oversize_action=OversizeAction.CAP)

    outcome = await h.engine.on_fill(h.fill(qty="150"))

    assert [o.intent.quantity for o in venue.orders.values()] == [D(120)]
    (result,) = outcome.results
    (row,) = await h.rows(follow_id=follow_id)
    assert row.reason == (
        "150 BTC is above the 120 paper takes in one market order: capped at 120, 30 not copied "
        "(your setting: cap large orders)"
    )
    assert result.filled_quantity == D(120)


async def test_an_exit_is_split_even_when_the_follow_caps_large_orders(h):
    follow_id, venue = await h.add_follower(balance=RICH, oversize_action=OversizeAction.CAP, sizing_value=D(2))
    for _ in range(2):
        await h.engine.on_fill(h.fill(qty="100"))  # 200 each, capped at 120
    assert await h.position(follow_id) == D(240)

    await h.engine.on_fill(h.fill(Side.SELL, qty="200", reduce_only=True))  # the master closes everything

    sells = [o.intent.quantity for o in venue.orders.values() if o.intent.side is Side.SELL]
    assert sells == [D(120), D(120)] and await h.position(follow_id) == 0


async def test_a_limit_copy_is_split_only_above_the_lot_maximum(h):
    follow_id, venue = await h.add_follower(balance=RICH)
    price = h.exchange.prices[BTC]

    await h.engine.on_fill(h.fill(qty="150", order_type=OrderType.LIMIT, limit_price=price))
    await h.engine.on_fill(h.fill(qty="1500", order_type=OrderType.LIMIT, limit_price=price))

    assert [o.intent.quantity for o in venue.orders.values()] == [D(150), D(750), D(750)]


async def test_a_replan_of_a_split_copy_follows_its_parts_and_sends_nothing_twice(h):
    follow_id, venue = await h.add_follower(balance=RICH)
    fill = h.fill(qty="150")
    await h.engine.on_fill(fill)
    row = (await h.rows(follow_id=follow_id))[0]
    assert row.fill_id is not None
    h.exchange.set_price(BTC, h.exchange.prices[BTC] * 2)  # equity moved: a fresh plan would size otherwise

    again = await h.engine.copy_journaled(row.fill_id, lambda _: True)

    assert again is not None and sorted(r.client_order_id for r in again) == sorted(venue.orders)
    assert len(venue.orders) == 2 and await h.position(follow_id) == D(150)


async def test_a_fill_planned_after_a_restart_is_split_once(h):
    follow_id, venue = await h.add_follower(balance=RICH)
    entry = await h.journal.journal_fill(h.fill(qty="150"))  # a crash after the fill was journaled
    assert entry is not None

    await h.engine.resume()  # its first plan, after the restart
    first = sorted(venue.orders)
    await h.engine.resume()

    assert sorted(venue.orders) == first and len(first) == 2 and await h.position(follow_id) == D(150)


async def test_an_exit_is_bounded_by_the_venue_position_and_the_rest_written_off(h):
    follow_id, venue = await h.add_follower(balance=RICH)
    await h.engine.on_fill(h.fill(qty="0.1"))
    hand = OrderIntent(follow_id, "by-hand", BTC, Side.SELL, D("0.04"), reduce_only=True)
    await venue.place_order(hand)  # the follower closes part by hand

    outcome = await h.engine.on_fill(h.fill(Side.SELL, qty="0.1", reduce_only=True))

    (result,) = outcome.results
    assert (result.status, result.filled_quantity) == (CopyStatus.FILLED, D("0.06"))
    assert {p.symbol: p.quantity for p in await venue.positions()}.get(BTC, D(0)) == 0
    (row,) = [r for r in await h.rows(follow_id=follow_id) if r.client_order_id == result.client_order_id]
    assert row.reduce_only and "the 0.04 BTC closed outside the copier is not sent" in (row.reason or "")
    assert await h.journal.drifts(follow_id) == [] and await h.position(follow_id) == 0


async def test_an_exit_finding_nothing_on_the_venue_is_skipped_and_the_copy_written_off(h):
    follow_id, venue = await h.add_follower(balance=RICH)
    await h.engine.on_fill(h.fill(qty="0.1"))
    await venue.place_order(OrderIntent(follow_id, "by-hand", BTC, Side.SELL, D("0.1"), reduce_only=True))

    outcome = await h.engine.on_fill(h.fill(Side.SELL, qty="0.1", reduce_only=True))

    (result,) = outcome.results
    assert result.skip is not None and result.skip.reason is SkipReason.NO_POSITION_TO_EXIT
    assert "your exchange shows 0 BTC" in result.skip.detail
    assert await h.journal.drifts(follow_id) == [] and await h.position(follow_id) == 0


async def test_exits_asked_for_in_one_moment_share_one_read_of_the_account(h):
    _, venue = await h.add_follower()
    reads = 0
    positions = venue.positions

    async def counted():
        nonlocal reads
        reads += 1
        return await positions()

    venue.positions = counted
    book = VenuePositions()
    await asyncio.gather(*(book.held("account", venue) for _ in range(5)))
    assert reads == 1
    await book.held("account", venue)  # asked for later: a read of its own, never an older answer
    assert reads == 2
