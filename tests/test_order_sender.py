"""The order sender's rule, through the engine on paper venues: a lost order is sent again only
once the venue is proven not to have it and never to take it; "already exists" is followed, not
failed; a wait for a rate limit never sends a stale entry; a superseded claim sends nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal as D

from core.copying.config import EngineConfig
from core.copying.ids import client_order_id
from core.copying.path import OrderPath
from core.engine import CopyEngine
from core.errors import OrderStatusUnknown, RateLimited, TemporaryError
from core.journal import SendFence
from core.model import CopyStatus, OrderIntent, OrderState, OrderType, Side, SkipReason, utcnow
from core.venues.paper.venue import PaperVenue
from storage.journal import JournalStore
from tests.harness import BTC
from tests.test_engine import _second_process


async def _settled(venue: PaperVenue) -> None:
    """Every order the venue still has on its way to the matching engine has arrived (or never will)."""
    await asyncio.gather(*list(venue._late))


async def test_an_order_whose_lost_answer_is_accepted_a_moment_later_is_placed_once(h):
    follow_id, venue = await h.add_follower()
    venue.fail_next(OrderStatusUnknown("timeout waiting for the backend"), booked_after=0.2)
    outcome = await h.engine.on_fill(h.fill(qty="0.1"))
    await _settled(venue)
    assert [r.status for r in outcome.results] == [CopyStatus.FILLED]  # found once its deadline had passed
    assert venue.place_calls == 1 and len(venue.orders) == 1
    assert await h.position(follow_id) == D("0.1") == (await venue.positions())[0].quantity


async def test_an_order_that_never_reaches_the_venue_in_its_window_is_sent_again_once_and_only_once(h):
    follow_id, venue = await h.add_follower()
    window = venue.send_window
    assert window is not None
    late = (window.length + timedelta(milliseconds=200)).total_seconds()
    venue.fail_next(OrderStatusUnknown("timeout waiting for the backend"), booked_after=late)
    outcome = await h.engine.on_fill(h.fill(qty="0.1"))
    await _settled(venue)
    assert [r.status for r in outcome.results] == [CopyStatus.FILLED]
    assert venue.place_calls == 2 and len(venue.orders) == 1  # the late one was refused past its deadline
    assert await h.position(follow_id) == D("0.1") == (await venue.positions())[0].quantity


async def test_a_venue_without_a_send_window_never_gets_a_lost_copy_again(h, monkeypatch):
    follow_id, venue = await h.add_follower()
    monkeypatch.setattr(PaperVenue, "send_window", None)  # as Angel One: nothing proves a lost request dead
    venue.fail_next(OrderStatusUnknown("read timed out"), booked_after=0.05)
    outcome = await h.engine.on_fill(h.fill(qty="0.1"))
    assert [r.status for r in outcome.results] == [CopyStatus.PENDING]  # unknown, not re-sent
    await _settled(venue)
    [settled] = await h.engine.resume()  # the settle job finds the late order
    assert settled.status is CopyStatus.FILLED
    assert venue.place_calls == 1 and len(venue.orders) == 1
    assert await h.position(follow_id) == D("0.1")


async def test_a_lost_copy_that_never_shows_on_a_venue_without_a_window_is_recorded_not_received(h, monkeypatch):
    follow_id, venue = await h.add_follower()
    monkeypatch.setattr(PaperVenue, "send_window", None)
    venue.fail_next(OrderStatusUnknown("read timed out"))
    await h.engine.on_fill(h.fill(qty="0.1"))
    [waiting] = await h.engine.resume()
    assert waiting.status is CopyStatus.PENDING  # still unknown: its follow's later fills wait
    h.engine_shift = h.engine.config.unproven_after + timedelta(seconds=1)
    [result] = await h.engine.resume()
    assert result.status is CopyStatus.FAILED and result.error_code == "not_received"
    assert "not re-sent" in (result.error or "") and venue.place_calls == 1 and venue.orders == {}


async def test_an_order_the_venue_already_holds_is_followed_to_its_fill_never_recorded_failed(h):
    """Binance's -4116 "clientOrderId is duplicated": an open order with that id exists."""
    follow_id, venue = await h.add_follower()
    fill = h.fill(qty="0.1", price="59000", order_type=OrderType.LIMIT)
    cid = client_order_id(fill, follow_id, 0)
    resting = OrderIntent(follow_id, cid, BTC, Side.BUY, D("0.1"), OrderType.LIMIT, price=D(59000))
    await venue.place_order(resting)  # an earlier send, whose answer never reached the journal
    outcome = await h.engine.on_fill(fill)
    [placed] = outcome.results
    assert (placed.status, placed.state) == (CopyStatus.PLACED, OrderState.ACKNOWLEDGED)
    h.exchange.set_price(BTC, D(58900))
    [filled] = await h.engine.track()
    assert filled.status is CopyStatus.FILLED and len(venue.orders) == 1
    assert await h.position(follow_id) == D("0.1") == (await venue.positions())[0].quantity


async def _rate_limited_for(h, venue: PaperVenue, seconds: float) -> None:
    """The next send is refused 429 with ``Retry-After``, and that much time passes on the engine's clock."""
    place = venue.place_order
    refused: list[str] = []

    async def limited(intent: OrderIntent):
        if not refused:
            refused.append(intent.client_order_id)
            h.engine_shift += timedelta(seconds=seconds)
            raise RateLimited("429 too many requests", retry_after=0.01)
        return await place(intent)

    venue.place_order = limited  # type: ignore[method-assign]


async def test_an_entry_held_back_40_s_by_a_rate_limit_is_recorded_stale_with_the_delay(h):
    follow_id, venue = await h.add_follower()
    await _rate_limited_for(h, venue, 40)
    [result] = (await h.engine.on_fill(h.fill(qty="0.1"))).results
    assert result.status is CopyStatus.SKIPPED and result.skip is not None
    assert result.skip.reason is SkipReason.STALE_FILL and "ran out" in result.skip.detail
    assert venue.orders == {} and await h.position(follow_id) == 0
    [row] = await h.rows()
    assert row.status is CopyStatus.SKIPPED and row.reason_code == "stale_fill"


async def test_an_exit_held_back_40_s_by_a_rate_limit_is_still_sent(h):
    follow_id, venue = await h.add_follower()
    await h.engine.on_fill(h.fill(Side.BUY, "0.1"))
    await _rate_limited_for(h, venue, 40)
    [result] = (await h.engine.on_fill(h.fill(Side.SELL, "0.1"))).results
    assert result.status is CopyStatus.FILLED and result.side is Side.SELL
    assert await h.position(follow_id) == 0 and await venue.positions() == []


async def test_a_sender_whose_claim_is_superseded_before_its_first_send_sends_nothing(h):
    """A second process took the row (the first one's lease ran out while it waited for a slot):
    the fence refuses the first one's send; the second settles it and sends it once."""
    follow_id, venue = await h.add_follower()
    other = JournalStore(h.db)

    class Superseded(JournalStore):
        async def fence_send(self, fence: SendFence) -> bool:
            assert await other.claim_pending(fence.claim.client_order_id) is not None
            return await super().fence_send(fence)

    first = await _second_process(h, Superseded(h.db, lease_seconds=0)).on_fill(h.fill(qty="0.1"))
    assert [r.status for r in first.results] == [CopyStatus.PENDING] and venue.place_calls == 0
    [settled] = await _second_process(h, other).resume()  # never fenced: nothing can exist, sent now
    assert settled.status is CopyStatus.FILLED and venue.place_calls == 1
    assert await h.position(follow_id) == D("0.1")


async def test_a_5xx_refusal_proven_absent_is_retried_then_recorded_with_the_venues_answer(h):
    _, venue = await h.add_follower()
    venue.fail_next(TemporaryError("503 service unavailable"), times=5)
    [result] = (await h.engine.on_fill(h.fill(qty="0.1"))).results
    assert result.status is CopyStatus.FAILED and "503" in (result.error or "")
    assert venue.orders == {} and venue.place_calls == 1 + len(h.engine.config.retry_delays)


async def test_two_processes_ending_one_protected_limit_at_once_send_its_reprice_once(h):
    """Both copiers' tracking passes find the protected limit past its window at the same moment:
    each cancels and reads it, one journals the re-send and sends it under its claim, the other
    finds the re-send journaled and leaves it to the claim's holder."""
    follow_id, venue = await h.add_follower(price_protection_pct=D("0.5"), slippage_pct=D("2"))
    venue.takes_market_orders = False  # as Angel One: a market copy is a protected limit
    booked: list[str] = []
    book = venue._book

    def recording(intent: OrderIntent):
        booked.append(intent.client_order_id)
        return book(intent)

    venue._book = recording
    h.exchange.set_price(BTC, D(61000))  # the market ran past the master's 60000: the limit rests
    [resting] = (await h.engine.on_fill(h.fill(Side.BUY, "0.1", price="60000"))).results
    assert resting.status is CopyStatus.PLACED
    other = CopyEngine(
        OrderPath(
            JournalStore(h.db),
            h.registry,
            h.events.append,
            EngineConfig(retry_delays=(0.001,)),
            clock=lambda: utcnow() + h.engine_shift,
        )
    )
    h.exchange.set_price(BTC, D(60500))
    h.engine_shift = h.engine.config.protected_window + timedelta(seconds=1)
    await asyncio.gather(h.engine.track(), other.track())
    await h.engine.track()
    await other.track()
    assert len(booked) == len(set(booked)) == 2  # the first limit and one re-send
    assert await h.position(follow_id) == D("0.1") == (await venue.positions())[0].quantity


async def test_a_preparation_slower_than_the_send_window_does_not_eat_the_requests_deadline(h):
    """Setting a symbol's leverage and position mode first (or waiting out a rate limit there) may
    take longer than the window: the deadline is stamped after the preparation, so the order goes."""
    follow_id, venue = await h.add_follower()
    window = venue.send_window
    assert window is not None

    async def slow_preparation(intent: OrderIntent) -> OrderIntent:
        await asyncio.sleep(window.length.total_seconds() + 0.1)
        return intent

    venue.prepare_order = slow_preparation
    [result] = (await h.engine.on_fill(h.fill(Side.SELL, "0.1"))).results
    assert result.status is CopyStatus.FILLED and venue.place_calls == 1
    assert await h.position(follow_id) == D("-0.1")
