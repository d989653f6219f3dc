"""Issue 13: the venue is the truth. Every copy order is followed to its final state, and the
copied positions move only on executions the journal records (once, whatever reports them)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal as D

from sqlalchemy import select
from sqlmodel import col

from core.errors import OrderStatusUnknown, TemporaryError
from core.journal import CopyDraft, ReportedOrder
from core.model import (
    CopyStatus,
    MasterOrderChange,
    MasterOrderEvent,
    OrderIntent,
    OrderOrigin,
    OrderReport,
    OrderState,
    OrderType,
    Side,
    utcnow,
)
from storage.models import CopyExecution
from tests.harness import BTC


async def executions(h, cid: str) -> list[CopyExecution]:
    async with h.db.session() as session:
        rows = await session.execute(select(CopyExecution).where(col(CopyExecution.client_order_id) == cid))
        return list(rows.scalars())


async def pending_copy(h, follow_id: int, cid: str = "ct-lifecycle", side=Side.BUY, origin=None) -> str:
    extra = {"origin": origin} if origin is not None else {}
    draft = CopyDraft(
        cid, None, follow_id, 1, BTC, side, OrderType.LIMIT, False, CopyStatus.PENDING, D(1), D(100), **extra
    )
    assert await h.journal.begin_copies([draft]) == set()
    return cid


def reported(cid: str, state: OrderState, filled: str, average: str | None = None, fee: str = "0") -> ReportedOrder:
    return ReportedOrder(OrderReport("v1", cid, state, D(filled), D(average) if average else None, D(fee)))


# -- the journal ---------------------------------------------------------------------------------


async def test_duplicate_and_out_of_order_reports_move_the_ledger_once(h):
    follow_id, _ = await h.add_follower()
    cid = await pending_copy(h, follow_id)
    sequence = [
        reported(cid, OrderState.ACKNOWLEDGED, "0"),
        reported(cid, OrderState.PARTIALLY_FILLED, "0.4", "100", "0.04"),
        reported(cid, OrderState.PARTIALLY_FILLED, "0.4", "100", "0.04"),  # stream and poll both saw it
        reported(cid, OrderState.ACKNOWLEDGED, "0"),  # a late answer to the send
        reported(cid, OrderState.FILLED, "1", "106", "0.1"),
        reported(cid, OrderState.PARTIALLY_FILLED, "0.4", "100", "0.04"),
    ]
    transitions = await h.journal.record_reports(sequence)
    assert [t is not None for t in transitions] == [True, True, False, False, True, False]
    assert await h.position(follow_id) == D(1)
    rows = await executions(h, cid)
    assert sorted((r.filled_after, r.quantity, r.price) for r in rows) == [
        (D("0.4"), D("0.4"), D(100)),
        (D(1), D("0.6"), D(110)),
    ]
    [order] = await h.rows(client_order_id=cid)
    assert (order.state, order.status, order.filled_quantity, order.fee) == (
        OrderState.FILLED,
        CopyStatus.FILLED,
        D(1),
        D("0.1"),
    )


async def test_concurrent_writers_of_the_same_report_record_it_once(h):
    follow_id, _ = await h.add_follower()
    cid = await pending_copy(h, follow_id)
    results = await asyncio.gather(
        *(h.journal.record_reports([reported(cid, OrderState.FILLED, "1", "100")]) for _ in range(5))
    )
    assert sum(r[0] is not None for r in results) == 1
    assert await h.position(follow_id) == D(1) and len(await executions(h, cid)) == 1


async def test_sync_orders_record_their_executions_without_moving_the_ledger(h):
    follow_id, _ = await h.add_follower()
    cid = await pending_copy(h, follow_id, origin=OrderOrigin.SYNC)
    [transition] = await h.journal.record_reports([reported(cid, OrderState.FILLED, "1", "100")])
    assert transition is not None and transition.ledger_quantity == 0
    assert await h.position(follow_id) == 0
    [row] = await executions(h, cid)
    assert not row.moved_ledger


# -- the engine ----------------------------------------------------------------------------------


async def test_a_resting_limit_copy_filled_later_reaches_the_ledger_and_the_exit_closes_it(h):
    follow_id, venue = await h.add_follower()
    below = h.exchange.prices[BTC] - 100
    outcome = await h.engine.on_fill(h.fill(Side.BUY, "0.2", price=str(below), order_type=OrderType.LIMIT))
    assert outcome.results[0].status is CopyStatus.PLACED and await h.position(follow_id) == 0

    h.exchange.set_price(BTC, below)  # the copy's limit is reached on the follower's venue
    [tracked] = await h.engine.track()
    assert (tracked.status, tracked.filled_quantity) == (CopyStatus.FILLED, D("0.2"))
    assert await h.position(follow_id) == D("0.2")
    assert await h.engine.track() == []  # nothing left open: nothing recorded twice

    exit_ = await h.engine.on_fill(h.fill(Side.SELL, "0.2"))
    assert exit_.results[0].status is CopyStatus.FILLED and await h.position(follow_id) == 0
    assert [p.quantity for p in await venue.positions()] == []


async def test_an_executor_shard_tracks_only_the_open_copies_of_its_own_follower_accounts(h):
    mine, _ = await h.add_follower()
    theirs, _ = await h.add_follower()
    own_account = (await h.accounts.follow(mine)).credential_id
    below = h.exchange.prices[BTC] - 100
    await h.engine.on_fill(h.fill(Side.BUY, "0.2", price=str(below), order_type=OrderType.LIMIT))
    h.exchange.set_price(BTC, below)  # both resting copies fill on their venues
    [tracked] = await h.engine.track(lambda credential_id: credential_id == own_account)
    assert tracked.follow_id == mine and tracked.status is CopyStatus.FILLED
    assert await h.position(mine) == D("0.2") and await h.position(theirs) == 0  # the other shard's to record
    [other] = await h.engine.track()
    assert other.follow_id == theirs and await h.position(theirs) == D("0.2")


async def test_the_master_cancelling_its_order_cancels_the_resting_copies(h):
    follow_id, venue = await h.add_follower()
    below = str(h.exchange.prices[BTC] - 100)
    fill = h.fill(Side.BUY, "0.2", price=below, order_type=OrderType.LIMIT)
    await h.engine.on_fill(fill)
    cancel = MasterOrderEvent(fill.master_id, fill.order_id, fill.symbol, MasterOrderChange.CANCELED)
    results = await h.engine.on_master_order(cancel)
    assert [(r.status, r.state) for r in results] == [(CopyStatus.CANCELED, OrderState.CANCELED)]
    assert [o.state for o in venue.orders.values()] == [OrderState.CANCELED]
    assert await h.position(follow_id) == 0


async def test_a_cancel_handed_over_right_behind_its_fill_cancels_the_copy_still_being_sent(h):
    follow_id, venue = await h.add_follower()
    venue.latency = 0.2  # the copy's answer takes a while: the master's cancel arrives meanwhile
    below = str(h.exchange.prices[BTC] - 100)
    fill = h.fill(Side.BUY, "0.2", price=below, order_type=OrderType.LIMIT)
    cancel = MasterOrderEvent(fill.master_id, fill.order_id, fill.symbol, MasterOrderChange.CANCELED)
    # handed over in stream order, neither awaited before the next is (the listener supervisor's way)
    copying = asyncio.create_task(h.engine.on_event(fill))
    cancelling = asyncio.create_task(h.engine.on_master_order(cancel))
    await copying
    results = await cancelling
    assert [(r.status, r.state) for r in results] == [(CopyStatus.CANCELED, OrderState.CANCELED)]
    assert [o.state for o in venue.orders.values()] == [OrderState.CANCELED]


async def test_a_masters_expired_order_cancels_its_copies_with_that_reason(h):
    follow_id, venue = await h.add_follower()
    fill = h.fill(Side.BUY, "0.2", price=str(h.exchange.prices[BTC] - 100), order_type=OrderType.LIMIT)
    await h.engine.on_fill(fill)
    expired = MasterOrderEvent(fill.master_id, fill.order_id, fill.symbol, MasterOrderChange.EXPIRED)
    [result] = await h.engine.on_master_order(expired)
    assert result.state is OrderState.CANCELED and "expired" in (result.reason or "")


async def test_a_masters_amended_price_replaces_the_resting_copy_and_keeps_what_filled(h):
    follow_id, venue = await h.add_follower()
    price = h.exchange.prices[BTC]
    fill = h.fill(Side.BUY, "0.2", price=str(price - 100), order_type=OrderType.LIMIT)
    [placed] = (await h.engine.on_fill(fill)).results
    amended = MasterOrderEvent(fill.master_id, fill.order_id, fill.symbol, MasterOrderChange.AMENDED, price - D(50))
    [moved] = await h.engine.on_master_order(amended)
    assert moved.status is CopyStatus.PLACED and moved.client_order_id.startswith("cm")
    [old] = await h.rows(client_order_id=placed.client_order_id)
    assert old.state is OrderState.CANCELED and "moved its order to" in (old.reason or "")
    [new] = await h.rows(client_order_id=moved.client_order_id)
    assert (new.limit_price, new.requested_quantity, new.fill_id, new.attempt) == (price - 50, D("0.2"), old.fill_id, 1)
    assert await h.engine.on_master_order(amended) == []  # the same amendment again: nothing to move

    h.exchange.set_price(BTC, price - 50)  # the market reaches the new price: the replacement fills
    [filled] = await h.engine.track()
    assert filled.client_order_id == moved.client_order_id and await h.position(follow_id) == D("0.2")
    cancel = MasterOrderEvent(fill.master_id, fill.order_id, fill.symbol, MasterOrderChange.CANCELED)
    assert await h.engine.on_master_order(cancel) == []  # nothing rests any more


async def test_a_copy_of_a_masters_limit_rests_an_hour_at_most_when_the_follow_sets_nothing(h):
    follow_id, venue = await h.add_follower()
    await h.engine.on_fill(h.fill(Side.BUY, "0.2", price=str(h.exchange.prices[BTC] - 100), order_type=OrderType.LIMIT))
    h.engine_shift = timedelta(minutes=59)
    assert await h.engine.track() == []
    h.engine_shift = timedelta(minutes=61)
    [expired] = await h.engine.track()
    assert expired.state is OrderState.EXPIRED
    assert (
        expired.reason
        == "not filled within 60 min, your maximum resting time for limit copies: cancelled (what filled is kept)"
    )


async def test_a_follow_set_to_no_maximum_leaves_its_copy_resting(h):
    follow_id, venue = await h.add_follower(max_resting_minutes=None)
    await h.engine.on_fill(h.fill(Side.BUY, "0.2", price=str(h.exchange.prices[BTC] - 100), order_type=OrderType.LIMIT))
    h.engine_shift = timedelta(days=3)
    assert await h.engine.track() == []
    assert [o.state for o in venue.orders.values()] == [OrderState.ACKNOWLEDGED]


async def test_a_copy_resting_past_the_follows_maximum_is_cancelled_and_recorded_expired(h):
    follow_id, venue = await h.add_follower(max_resting_minutes=5)
    below = str(h.exchange.prices[BTC] - 100)
    await h.engine.on_fill(h.fill(Side.BUY, "0.2", price=below, order_type=OrderType.LIMIT))
    assert await h.engine.track() == []  # not yet
    h.engine_shift = timedelta(minutes=6)
    [expired] = await h.engine.track()
    assert (expired.state, expired.status) == (OrderState.EXPIRED, CopyStatus.CANCELED)
    [row] = await h.rows(follow_id=follow_id)
    assert row.state is OrderState.EXPIRED and "resting" in row.reason
    assert [o.state for o in venue.orders.values()] == [OrderState.CANCELED]


async def test_settling_while_a_send_awaits_its_answer_moves_nothing_twice_and_notifies_once(h):
    follow_id, venue = await h.add_follower()
    venue.latency = 0.2  # the answer takes a while: the settle job runs meanwhile
    copying = asyncio.create_task(h.engine.on_fill(h.fill(Side.BUY, "0.2")))
    await asyncio.sleep(0.05)
    settled = await h.engine.resume()
    track = await h.engine.track()
    outcome = await copying
    assert settled == [] and track == []
    assert outcome.results[0].status is CopyStatus.FILLED
    assert await h.position(follow_id) == D("0.2")
    assert [e.client_order_id for e in h.events] == [outcome.results[0].client_order_id]


async def test_a_lost_answer_is_looked_up_recorded_once_and_left_alone_by_the_settle_job(h):
    follow_id, venue = await h.add_follower()
    venue.fail_next(OrderStatusUnknown("lost"), after_accepting=True)
    outcome = await h.engine.on_fill(h.fill(Side.BUY, "0.2"))
    assert outcome.results[0].status is CopyStatus.FILLED and venue.place_calls == 1
    assert await h.engine.resume() == [] and await h.position(follow_id) == D("0.2")


async def test_a_temporary_error_on_placing_is_looked_up_before_any_resend(h):
    follow_id, venue = await h.add_follower()
    venue.fail_next(TemporaryError("503 from the gateway"), after_accepting=True)
    outcome = await h.engine.on_fill(h.fill(Side.BUY, "0.2"))
    assert outcome.results[0].status is CopyStatus.FILLED
    assert venue.place_calls == 1 and len(venue.orders) == 1
    assert await h.position(follow_id) == D("0.2")


async def test_a_late_exit_is_copied_while_a_late_entry_is_skipped(h):
    follow_id, _ = await h.add_follower()
    await h.engine.on_fill(h.fill(Side.BUY, "0.4"))
    late = utcnow() - timedelta(minutes=10)
    exit_ = await h.engine.on_fill(h.fill(Side.SELL, "0.1", executed_at=late))
    assert exit_.results[0].status is CopyStatus.FILLED and await h.position(follow_id) == D("0.3")
    entry = await h.engine.on_fill(h.fill(Side.BUY, "0.1", executed_at=late))
    assert entry.results[0].skip.reason.value == "stale_fill" and await h.position(follow_id) == D("0.3")


async def test_sync_orders_settled_by_resume_move_no_ledger(h):
    follow_id, venue = await h.add_follower()
    cid = await pending_copy(h, follow_id, "cx-sync-1", origin=OrderOrigin.SYNC)
    await venue.place_order(OrderIntent(follow_id, cid, BTC, Side.BUY, D("0.1")))  # sent before a crash
    [settled] = await h.engine.resume()
    assert (settled.status, settled.filled_quantity) == (CopyStatus.FILLED, D("0.1"))
    assert await h.position(follow_id) == 0
    assert await h.engine.resume() == [] and len(h.events) == 1
