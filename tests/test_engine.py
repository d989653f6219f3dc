"""CopyEngine behaviour on real storage (SQLite) and the paper venue."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import func, select

from core.copying.config import EngineConfig, FollowPaused
from core.copying.ids import client_order_id
from core.copying.path import OrderPath
from core.copying.results import WAITING
from core.engine import CopyEngine
from core.errors import (
    AuthenticationError,
    InsufficientFunds,
    NotFound,
    OrderStatusUnknown,
    RateLimited,
    TemporaryError,
)
from core.journal import CopyDraft, SendFence
from core.model import CopyStatus, Fill, FillStatus, FollowStatus, OrderIntent, OrderType, Side, SkipReason, utcnow
from core.venues.paper.venue import PaperVenue
from storage.journal import JournalStore
from storage.models import Follow, MasterFill
from tests.harness import BTC


async def test_fill_is_copied_to_every_active_follow(h):
    a, va = await h.add_follower(sizing_value=D(1))
    b, vb = await h.add_follower(sizing_value=D("0.5"))
    outcome = await h.engine.on_fill(h.fill(qty="0.2"))
    assert {r.follow_id: r.status for r in outcome.results} == {a: CopyStatus.FILLED, b: CopyStatus.FILLED}
    assert [o.intent.quantity for o in va.orders.values()] == [D("0.2")]
    assert [o.intent.quantity for o in vb.orders.values()] == [D("0.1")]
    assert await h.position(a) == D("0.2") and await h.position(b) == D("0.1")
    assert len(h.events) == 2


async def test_the_same_fill_twice_places_nothing_new(h):
    _, venue = await h.add_follower()
    fill = h.fill(qty="0.1")
    first = await h.engine.on_fill(fill)
    second = await h.engine.on_fill(fill)
    assert not first.duplicate and second.duplicate and second.results == ()
    assert venue.place_calls == 1
    assert len(await h.rows()) == 1


async def test_redelivery_from_a_fresh_engine_is_still_a_duplicate(h):
    _, venue = await h.add_follower()
    fill = h.fill(qty="0.1")
    await h.engine.on_fill(fill)
    restarted = h.build_engine()
    assert (await restarted.on_fill(fill)).duplicate
    assert venue.place_calls == 1


async def test_concurrent_deliveries_of_one_fill_copy_it_once(h):
    _, venue = await h.add_follower()
    fill = h.fill(qty="0.1")
    outcomes = await asyncio.gather(*(h.engine.on_fill(fill) for _ in range(5)))
    assert sum(not o.duplicate for o in outcomes) == 1
    assert venue.place_calls == 1


async def test_non_execution_events_are_ignored_and_not_journaled(h):
    await h.add_follower()
    for status in (FillStatus.NEW, FillStatus.CANCELED, FillStatus.REJECTED, FillStatus.EXPIRED):
        assert (await h.engine.on_fill(h.fill(status=status))).ignored
    async with h.db.session() as session:
        assert (await session.execute(select(func.count()).select_from(MasterFill))).scalar() == 0


async def test_partial_fills_are_copied_as_increments(h):
    follow_id, venue = await h.add_follower()
    await h.engine.on_fill(h.fill(qty="0.3", status=FillStatus.PARTIALLY_FILLED))
    await h.engine.on_fill(h.fill(qty="0.2", status=FillStatus.FILLED))
    assert sorted(o.intent.quantity for o in venue.orders.values()) == [D("0.2"), D("0.3")]
    assert await h.position(follow_id) == D("0.5")


async def test_fill_for_unknown_master_raises_and_writes_nothing(h):
    await h.add_follower()
    fill = Fill(999, "paper:master", "x", "o", BTC, Side.BUY, D(1), D(60000))
    with pytest.raises(NotFound):
        await h.engine.on_fill(fill)
    assert await h.rows() == []


async def test_partial_and_full_exits_stay_proportional(h):
    follow_id, venue = await h.add_follower(sizing_value=D("0.5"))
    await h.engine.on_fill(h.fill(Side.BUY, "0.4"))  # follower 0.2
    await h.engine.on_fill(h.fill(Side.SELL, "0.1"))  # master closes 25 % -> follower 0.05
    assert await h.position(follow_id) == D("0.15")
    await h.engine.on_fill(h.fill(Side.SELL, "0.3"))  # master flat -> follower flat
    assert await h.position(follow_id) == 0
    exits = [o.intent for o in venue.orders.values() if o.intent.reduce_only]
    assert [(i.side, i.quantity) for i in exits] == [(Side.SELL, D("0.05")), (Side.SELL, D("0.15"))]


async def test_exit_never_touches_a_position_the_copier_did_not_open(h):
    follow_id, venue = await h.add_follower()
    await venue.place_order(OrderIntent(0, "manual", BTC, Side.BUY, D("1")))  # the user's own trade
    await h.journal.set_master_position(h.master_id, BTC, D("0.5"))
    outcome = await h.engine.on_fill(h.fill(Side.SELL, "0.5"))
    assert outcome.results[0].skip.reason is SkipReason.NO_POSITION_TO_EXIT
    assert (await venue.positions())[0].quantity == D(1)


async def test_reversal_closes_then_opens(h):
    follow_id, venue = await h.add_follower()
    await h.engine.on_fill(h.fill(Side.BUY, "0.2"))
    outcome = await h.engine.on_fill(h.fill(Side.SELL, "0.5"))
    assert [(r.side, r.filled_quantity) for r in outcome.results] == [(Side.SELL, D("0.2")), (Side.SELL, D("0.3"))]
    assert await h.position(follow_id) == D("-0.3")
    assert len({r.client_order_id for r in outcome.results}) == 2


async def test_reverse_follow_trades_the_opposite_side_and_exits_its_own_position(h):
    follow_id, _ = await h.add_follower(reverse=True)
    await h.engine.on_fill(h.fill(Side.BUY, "0.2"))
    assert await h.position(follow_id) == D("-0.2")
    outcome = await h.engine.on_fill(h.fill(Side.SELL, "0.2"))
    assert outcome.results[0].side is Side.BUY and await h.position(follow_id) == 0


async def test_too_small_order_is_a_recorded_skip(h):
    follow_id, venue = await h.add_follower(sizing_value=D("0.01"))
    outcome = await h.engine.on_fill(h.fill(qty="0.05"))
    result = outcome.results[0]
    assert result.status is CopyStatus.SKIPPED and result.skip.reason is SkipReason.BELOW_MIN_QUANTITY
    [row] = await h.rows(follow_id=follow_id)
    assert row.status is CopyStatus.SKIPPED and row.reason_code == "below_min_quantity" and "minimum" in row.reason
    assert venue.place_calls == 0


async def test_symbol_filters_are_recorded_skips(h):
    blocked, _ = await h.add_follower(blocked_symbols=["BTC"])
    allowed, _ = await h.add_follower(allowed_symbols=["ETH"])
    outcome = await h.engine.on_fill(h.fill())
    reasons = {r.follow_id: r.skip.reason for r in outcome.results}
    assert reasons == {blocked: SkipReason.SYMBOL_BLOCKED, allowed: SkipReason.SYMBOL_NOT_ALLOWED}


async def test_exits_of_copied_positions_ignore_filters_set_later(h):
    follow_id, venue = await h.add_follower()
    await h.engine.on_fill(h.fill(Side.BUY, "0.2"))
    await h.accounts.update_follow(follow_id, {"blocked_symbols": ["BTC"], "order_types": ["limit"]})
    h.engine.invalidate_follows()
    await h.engine.on_fill(h.fill(Side.SELL, "0.2"))
    assert await h.position(follow_id) == 0


async def test_unknown_symbol_on_follower_venue_is_a_skip(h):
    follow_id, _ = await h.add_follower()
    outcome = await h.engine.on_fill(h.fill(symbol="DOGE/USDT:USDT", price="0.1"))
    assert outcome.results[0].skip.reason is SkipReason.UNKNOWN_SYMBOL


async def test_dry_run_records_the_size_and_sends_nothing(h):
    follow_id, venue = await h.add_follower(dry_run=True)
    outcome = await h.engine.on_fill(h.fill(qty="0.2"))
    result = outcome.results[0]
    assert result.skip.reason is SkipReason.DRY_RUN and result.requested_quantity == D("0.2")
    assert venue.place_calls == 0
    exit_ = await h.engine.on_fill(h.fill(Side.SELL, "0.1"))
    assert exit_.results[0].requested_quantity == D("0.1")  # sized against the simulated position
    [first, second] = sorted(await h.rows(follow_id=follow_id), key=lambda r: r.created_at)
    assert first.dry_run and second.dry_run


async def test_stale_fill_is_skipped_for_everyone(h):
    await h.add_follower()
    await h.add_follower()
    old = h.fill(executed_at=utcnow() - timedelta(minutes=5))
    outcome = await h.engine.on_fill(old)
    assert {r.skip.reason for r in outcome.results} == {SkipReason.STALE_FILL}


async def test_max_position_reduces_the_order(h):
    follow_id, venue = await h.add_follower(max_position_notional=D(6000))
    await h.engine.on_fill(h.fill(qty="0.25", price="60000"))
    assert [o.intent.quantity for o in venue.orders.values()] == [D("0.1")]


async def test_equity_ratio_uses_master_equity(h):
    follow_id, venue = await h.add_follower(balance="5000", sizing_mode="equity_ratio", sizing_value=D(1))
    outcome = await h.engine.on_fill(h.fill(qty="1", master_equity=D(50000)))
    assert outcome.results[0].filled_quantity == D("0.1")


async def test_one_failing_follower_does_not_touch_the_others(h):
    ok, _ = await h.add_follower()
    broke, venue = await h.add_follower()
    venue.fail_next(InsufficientFunds("margin is insufficient"))
    outcome = await h.engine.on_fill(h.fill(qty="0.1"))
    statuses = {r.follow_id: r for r in outcome.results}
    assert statuses[ok].status is CopyStatus.FILLED
    assert statuses[broke].status is CopyStatus.FAILED and statuses[broke].error_code == "insufficient_funds"
    [row] = await h.rows(follow_id=broke)
    assert row.status is CopyStatus.FAILED and "margin" in row.reason


class GatedVenue(PaperVenue):
    """A paper account whose orders wait until the test opens the gate."""

    gate: asyncio.Event | None = None

    async def place_order(self, intent):
        assert self.gate is not None, "the test sets the gate before sending"
        await self.gate.wait()
        return await super().place_order(intent)


async def test_a_slow_follower_never_delays_the_others(h):
    fast, _ = await h.add_follower()
    slow, slow_venue = await h.add_follower()
    slow_venue.__class__ = GatedVenue
    slow_venue.gate = asyncio.Event()
    copying = asyncio.create_task(h.engine.on_fill(h.fill(qty="0.1")))
    for _ in range(200):
        if any(e.follow_id == fast for e in h.events):
            break
        await asyncio.sleep(0.005)
    fast_rows = await h.rows(follow_id=fast)
    slow_rows = await h.rows(follow_id=slow)
    assert fast_rows[0].status is CopyStatus.FILLED  # recorded and notified while the slow one waits
    assert slow_rows[0].status is CopyStatus.PENDING
    slow_venue.gate.set()
    outcome = await copying
    assert {r.status for r in outcome.results} == {CopyStatus.FILLED}


async def test_an_exit_waits_for_the_same_followers_entry_in_flight(h):
    follow_id, venue = await h.add_follower()
    venue.__class__ = GatedVenue
    venue.gate = asyncio.Event()
    entry = asyncio.create_task(h.engine.on_fill(h.fill(Side.BUY, "0.2")))
    exit_ = asyncio.create_task(h.engine.on_fill(h.fill(Side.SELL, "0.2")))
    await asyncio.sleep(0.05)
    venue.gate.set()
    await entry
    outcome = await exit_
    assert outcome.results[0].status is CopyStatus.FILLED and outcome.results[0].filled_quantity == D("0.2")
    assert await h.position(follow_id) == 0


async def test_temporary_errors_and_rate_limits_are_retried(h):
    _, venue = await h.add_follower()
    venue.fail_next(TemporaryError("503"), times=2)
    venue.fail_next(RateLimited("429", retry_after=0.001))
    outcome = await h.engine.on_fill(h.fill(qty="0.1"))
    assert outcome.results[0].status is CopyStatus.FILLED
    assert venue.place_calls == 4 and len(venue.orders) == 1


async def test_retries_give_up_and_record_the_failure(h):
    _, venue = await h.add_follower()
    venue.fail_next(TemporaryError("exchange down"), times=10)
    outcome = await h.engine.on_fill(h.fill(qty="0.1"))
    assert outcome.results[0].status is CopyStatus.FAILED and venue.place_calls == 4


async def test_lost_answer_is_looked_up_not_resent(h):
    follow_id, venue = await h.add_follower()
    venue.fail_next(OrderStatusUnknown("timed out"), after_accepting=True)
    outcome = await h.engine.on_fill(h.fill(qty="0.1"))
    assert outcome.results[0].status is CopyStatus.FILLED
    assert venue.place_calls == 1 and len(venue.orders) == 1
    assert await h.position(follow_id) == D("0.1")


async def test_lost_request_that_never_arrived_is_sent_again_with_the_same_id(h):
    _, venue = await h.add_follower()
    venue.fail_next(OrderStatusUnknown("timed out"), after_accepting=False)
    outcome = await h.engine.on_fill(h.fill(qty="0.1"))
    assert outcome.results[0].status is CopyStatus.FILLED
    assert venue.place_calls == 2 and len(venue.orders) == 1


async def test_rejected_key_pauses_the_follow_and_tells_the_user(h):
    follow_id, venue = await h.add_follower()
    venue.fail_next(AuthenticationError("API key rejected"))
    outcome = await h.engine.on_fill(h.fill(qty="0.1"))
    assert outcome.results[0].status is CopyStatus.FAILED
    follow = await h.accounts.follow(follow_id)
    assert follow.status is FollowStatus.PAUSED and "refused your key" in follow.status_reason
    assert any(isinstance(e, FollowPaused) and e.follow_id == follow_id for e in h.events)
    next_fill = await h.engine.on_fill(h.fill(qty="0.1"))
    assert next_fill.results == ()


async def test_settings_change_takes_effect_on_the_next_fill(h):
    follow_id, venue = await h.add_follower(sizing_value=D(1))
    await h.engine.on_fill(h.fill(qty="0.1"))
    await h.accounts.update_follow(follow_id, {"sizing_value": D(2)})
    h.engine.invalidate_follows(h.master_id)
    await h.engine.on_fill(h.fill(qty="0.1"))
    assert [o.intent.quantity for o in venue.orders.values()] == [D("0.1"), D("0.2")]


async def test_limit_fill_is_copied_as_limit_and_stop_fill_as_market(h):
    _, venue = await h.add_follower()
    await h.engine.on_fill(h.fill(qty="0.1", order_type=OrderType.LIMIT, limit_price=D("60000.05")))
    await h.engine.on_fill(h.fill(qty="0.1", order_type=OrderType.STOP_MARKET, stop_price=D("59000")))
    intents = [o.intent for o in venue.orders.values()]
    assert (intents[0].order_type, intents[0].price) == (OrderType.LIMIT, D("60000.0"))
    assert (intents[1].order_type, intents[1].price) == (OrderType.MARKET, None)


def test_client_order_id_is_deterministic_and_venue_safe():
    fill = Fill(1, "binanceusdm", "123", "9", BTC, Side.BUY, D(1), D(1))
    cid = client_order_id(fill, 42, 0)
    assert cid == client_order_id(fill, 42, 0)
    assert cid != client_order_id(fill, 42, 1) != client_order_id(fill, 43, 0)
    assert len(cid) == 32 and cid.isalnum() and cid.islower()


# -- restart -------------------------------------------------------------------------------------


async def _journal_pending(h, follow_id: int, venue: PaperVenue, *, reached_venue: bool) -> str:
    fill = h.fill(qty="0.1")
    entry = await h.journal.journal_fill(fill)
    cid = client_order_id(fill, follow_id, 0)
    await h.journal.begin_copies(
        [
            CopyDraft(
                cid,
                entry.fill_id,
                follow_id,
                (await h.accounts.follow(follow_id)).user_id,
                BTC,
                Side.BUY,
                OrderType.MARKET,
                False,
                CopyStatus.PENDING,
                D("0.1"),
                fill.price,
            )
        ]
    )
    if reached_venue:
        await venue.place_order(OrderIntent(follow_id, cid, BTC, Side.BUY, D("0.1")))
    return cid


async def test_resume_settles_an_order_the_crash_left_pending_without_resending(h):
    follow_id, venue = await h.add_follower()
    cid = await _journal_pending(h, follow_id, venue, reached_venue=True)
    results = await h.build_engine().resume()
    assert [r.status for r in results] == [CopyStatus.FILLED]
    assert venue.place_calls == 1
    [row] = await h.rows(client_order_id=cid)
    assert row.status is CopyStatus.FILLED and row.venue_order_id


async def test_resume_sends_a_planned_order_that_never_reached_the_venue(h):
    follow_id, venue = await h.add_follower()
    cid = await _journal_pending(h, follow_id, venue, reached_venue=False)
    results = await h.build_engine().resume()
    assert [r.client_order_id for r in results] == [cid]
    assert venue.place_calls == 1 and cid in venue.orders


async def _planned_but_unsent(h, follow_id: int, fill: Fill) -> str:
    """The crash came after the fan-out was journaled (the fill is planned), before this send."""
    entry = await h.journal.journal_fill(fill)
    assert entry is not None
    cid = client_order_id(fill, follow_id, 0)
    user_id = (await h.accounts.follow(follow_id)).user_id
    draft = CopyDraft(
        cid,
        entry.fill_id,
        follow_id,
        user_id,
        BTC,
        fill.side,
        OrderType.MARKET,
        False,
        CopyStatus.PENDING,
        fill.quantity,
        fill.price,
    )
    await h.journal.begin_copies([draft])
    await h.journal.mark_planned(entry.fill_id)
    return cid


async def test_a_planned_copy_the_venue_never_received_is_sent_by_the_settle_job_once(h):
    follow_id, venue = await h.add_follower()
    cid = await _planned_but_unsent(h, follow_id, h.fill(qty="0.1"))
    [result] = await h.build_engine().resume()  # the venue says twice it has no such order: sent now
    assert result.status is CopyStatus.FILLED and venue.place_calls == 1 and cid in venue.orders
    assert await h.build_engine().resume() == []
    assert venue.place_calls == 1 and await h.position(follow_id) == D("0.1")


async def test_two_settle_passes_of_one_process_at_once_send_an_interrupted_copy_once(h):
    """The lease cannot tell two tasks of one process apart (same owner): the settle passes
    take the copy in process before their first await."""
    follow_id, venue = await h.add_follower()
    await _planned_but_unsent(h, follow_id, h.fill(qty="0.1"))
    engine = h.build_engine()
    await asyncio.gather(engine.resume(), engine.resume(), engine.resume())
    assert venue.place_calls == 1 and len(venue.orders) == 1


async def test_an_interrupted_entry_gone_stale_is_recorded_skipped_not_sent(h):
    follow_id, venue = await h.add_follower()
    old = h.fill(qty="0.1", executed_at=utcnow() - timedelta(hours=1))
    cid = await _planned_but_unsent(h, follow_id, old)
    [result] = await h.build_engine().resume()
    assert result.status is CopyStatus.SKIPPED and result.skip.reason is SkipReason.STALE_FILL
    assert venue.place_calls == 0
    [row] = await h.rows(client_order_id=cid)
    assert row.status is CopyStatus.SKIPPED and row.reason_code == "stale_fill"


async def test_resume_plans_follows_a_crash_left_unplanned(h):
    a, va = await h.add_follower()
    b, vb = await h.add_follower()
    await _journal_pending(h, a, va, reached_venue=True)  # b was never planned
    results = await h.build_engine().resume()
    assert {r.follow_id for r in results} == {a, b}
    assert va.place_calls == 1 and vb.place_calls == 1
    assert await h.build_engine().resume() == []  # nothing left to do


# -- several processes on one database ------------------------------------------------------------


def _second_process(h, journal: JournalStore | None = None) -> CopyEngine:
    """Another copier on the same database (its own journal writer, so its own lease owner)."""
    return CopyEngine(
        OrderPath(journal or JournalStore(h.db), h.registry, h.events.append, EngineConfig(retry_delays=(0.001,)))
    )


async def test_a_second_process_leaves_alone_a_copy_whose_send_is_in_flight_elsewhere(h):
    follow_id, venue = await h.add_follower()
    venue.latency = 0.3  # the first process's send is on the wire
    sending = asyncio.create_task(h.engine.on_fill(h.fill(qty="0.1")))
    for _ in range(200):  # bounded: until the first process journaled its pending row
        if await h.rows(status=CopyStatus.PENDING):
            break
        await asyncio.sleep(0.01)
    other = await _second_process(h).resume()  # its settle job, and its re-plan of the unplanned fill
    assert [r.status for r in other] == [CopyStatus.PENDING]
    outcome = await sending
    assert [r.status for r in outcome.results] == [CopyStatus.FILLED]
    assert venue.place_calls == 1 and len(h.events) == 1  # placed once, notified once
    [row] = await h.rows()
    assert row.status is CopyStatus.FILLED and await h.position(follow_id) == D("0.1")


async def test_a_sender_whose_claim_was_superseded_while_it_proved_the_order_absent_does_not_send_again(h):
    follow_id, venue = await h.add_follower()
    other_journal = JournalStore(h.db)

    class ClaimedElsewhereAfterTheFirstSend(JournalStore):
        fences = 0

        async def fence_send(self, fence: SendFence) -> bool:
            self.fences += 1
            if self.fences == 2:  # its lease ran out while it proved the order absent: the other process took it
                assert await other_journal.claim_pending(fence.claim.client_order_id) is not None
            return await super().fence_send(fence)

    slow = ClaimedElsewhereAfterTheFirstSend(h.db, lease_seconds=0)  # its lease runs out at once
    venue.fail_next(OrderStatusUnknown("lost answer"))  # not accepted: the look-ups find nothing
    outcome = await _second_process(h, slow).on_fill(h.fill(qty="0.1"))
    assert [r.status for r in outcome.results] == [CopyStatus.PENDING]
    assert venue.place_calls == 1 and h.events == []
    [row] = await h.rows()
    assert row.status is CopyStatus.PENDING  # the other process settles it: asked, not re-sent
    settled = await _second_process(h, other_journal).resume()  # proves it absent, then sends it: once
    assert [r.status for r in settled] == [CopyStatus.FILLED]
    assert venue.place_calls == 2 and len(venue.orders) == 1  # the refused attempt, then the one order


async def test_a_pending_copy_whose_key_was_removed_is_recorded_failed_with_the_reason(h):
    follow_id, venue = await h.add_follower()
    cid = await _journal_pending(h, follow_id, venue, reached_venue=True)
    async with h.db.session() as session:  # /stop, then the key removed (removing needs no active follow)
        follow = await session.get(Follow, follow_id)
        follow.status = FollowStatus.STOPPED
        credential_id = follow.credential_id
    await h.accounts.delete_credential(credential_id)
    [result] = await h.build_engine().resume()
    assert result.status is CopyStatus.FAILED and result.error_code == "key_removed"
    [row] = await h.rows(client_order_id=cid)
    assert row.status is CopyStatus.FAILED and "check your exchange account" in row.reason
    assert h.events == [result]


async def test_a_fill_after_a_copy_with_an_unknown_outcome_waits_and_is_copied_in_order_once_it_is_settled(h):
    """The chaos campaign's case: a copier is killed while sending a copy (its lease still runs),
    the restarted one receives the master's reversal. Sizing that exit against a ledger without
    the first copy would skip it ("no position to exit") and leave the follower short."""
    follow_id, venue = await h.add_follower()
    killed = JournalStore(h.db, lease_seconds=0.2)  # the killed copier's writer: its lease runs out
    first = h.fill(Side.SELL, "0.4")
    entry = await killed.journal_fill(first)
    assert entry is not None
    cid = client_order_id(first, follow_id, 0)
    user_id = (await h.accounts.follow(follow_id)).user_id
    draft = CopyDraft(
        cid,
        entry.fill_id,
        follow_id,
        user_id,
        BTC,
        Side.SELL,
        OrderType.MARKET,
        False,
        CopyStatus.PENDING,
        D("0.4"),
        D(1),
    )
    await killed.begin_copies([draft])
    await venue.place_order(OrderIntent(follow_id, cid, BTC, Side.SELL, D("0.4")))  # it reached the venue
    restarted = h.build_engine()
    assert [r.status for r in await restarted.resume()] == [CopyStatus.PENDING]  # not its copy to settle yet
    outcome = await restarted.on_fill(h.fill(Side.BUY, "0.6"))  # the master reverses: -0.4 -> +0.2
    assert [r.error_code for r in outcome.results] == [WAITING]
    assert venue.place_calls == 1 and len(await h.rows()) == 1  # nothing sized, nothing recorded
    await asyncio.sleep(0.25)  # the killed copier's lease runs out
    await restarted.resume()  # settles the first copy from the venue, then copies the reversal
    assert await h.position(follow_id) == D("0.2") == (await venue.positions())[0].quantity
    assert [r.status for r in await h.rows()] == [CopyStatus.FILLED] * 3 and venue.place_calls == 3
    assert not any(getattr(e, "skip", None) for e in h.events)


async def test_users_only_get_rows_of_their_own_follows(h):
    a, _ = await h.add_follower()
    b, _ = await h.add_follower()
    await h.engine.on_fill(h.fill(qty="0.1"))
    follow_a = await h.accounts.follow(a)
    history = await h.accounts.copy_history(follow_a.user_id)
    assert {row.follow_id for row in history} == {a}


async def test_follow_leverage_and_master_product_travel_with_the_order(h):
    _, venue = await h.add_follower(leverage=5)
    await h.engine.on_fill(h.fill(qty="0.1", product="CARRYFORWARD"))
    [intent] = [o.intent for o in venue.orders.values()]
    assert (intent.leverage, intent.product) == (5, "CARRYFORWARD")


async def test_dry_run_positions_never_mix_with_real_ones(h):
    follow_id, venue = await h.add_follower()
    await h.engine.on_fill(h.fill(Side.BUY, "0.2"))  # real copy
    await h.accounts.update_follow(follow_id, {"dry_run": True})
    h.engine.invalidate_follows()
    await h.engine.on_fill(h.fill(Side.BUY, "0.1"))  # simulated
    assert await h.position(follow_id) == D("0.2") and await h.position(follow_id, simulated=True) == D("0.1")
    assert venue.place_calls == 1
