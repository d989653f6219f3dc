"""Orders the copier decides itself for one follow — take-profit, stop-loss, sync, opening the
master's positions, closing (/stop, the loss limit) — through the same path as a copy: journaled
pending first under a deterministic id, sent by the sender, recorded and told once. Each waits for
the follow's work in flight in the same symbol, so that it acts on the position that work leaves.

Like a copy, a close never asks for more than the venue shows held (``ExitBounds``: the rest is
written off the ledger), and an order above what the venue takes at once is split into parts
(``planner.venue_parts``), each under an id derived from the order's, all journaled before the
first is sent; only an opening follows the follow's "large orders" setting (a close or a sync
capped would leave the position or the drift)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from decimal import Decimal

from core.copying import planner
from core.copying.bounds import ExitBounds
from core.copying.config import VenueProvider
from core.copying.dispatch import Dispatcher
from core.copying.ids import write_off_id
from core.copying.queues import FollowQueues
from core.copying.recorder import Recorder, notable
from core.copying.results import Subject, direct_fill, draft, from_transition, joined
from core.errors import VaultError, VenueError
from core.journal import FIRST_EPOCH, Claim, CopyJournal, ReportedOrder
from core.model import (
    CopyResult,
    CopyStatus,
    FollowSettings,
    OrderIntent,
    OrderOrigin,
    OrderReport,
    PositionSide,
    Side,
    Skip,
)
from core.sizing import Sized


@dataclass(frozen=True, slots=True)
class DirectOrder:
    """An order the copier places on its own for one follow (see ``DirectOrders.place``)."""

    symbol: str
    side: Side
    quantity: Decimal
    origin: OrderOrigin  # never COPY: that is a copy of a master fill
    client_order_id: str
    reference_price: Decimal
    reduce_only: bool = False
    position_side: PositionSide = PositionSide.BOTH  # the copied position it moves (closing a hedge leg)
    note: str | None = None  # why it does something else than asked (a one-way account's net effect)
    #: a close that moves the ledger: the copied position (signed) it closes. Bounded by what the
    #: venue shows held, what the ledger holds beyond it written off (``ExitBounds``)
    closes: Decimal | None = None

    def subject(self, follow: FollowSettings) -> Subject:
        fill = direct_fill(
            follow.master_id,
            self.client_order_id,
            self.origin,
            self.symbol,
            self.side,
            self.quantity,
            self.reference_price,
        )
        return Subject.of(follow, fill, self.client_order_id, self.origin)

    def intent(self, follow: FollowSettings, *, derivative: bool = True) -> OrderIntent:
        return OrderIntent(
            follow_id=follow.follow_id,
            client_order_id=self.client_order_id,
            symbol=self.symbol,
            side=self.side,
            quantity=self.quantity,
            reduce_only=self.reduce_only and derivative,
            reference_price=self.reference_price,
            leverage=follow.leverage if derivative else None,
            margin_mode=follow.margin_mode if derivative else None,
            position_side=self.position_side,
            product=follow.product,
        )


class DirectOrders:
    def __init__(
        self,
        *,
        journal: CopyJournal,
        venues: VenueProvider,
        queues: FollowQueues,
        recorder: Recorder,
        dispatcher: Dispatcher,
        bounds: ExitBounds,
    ) -> None:
        self._journal = journal
        self._venues = venues
        self._queues = queues
        self._recorder = recorder
        self._dispatcher = dispatcher
        self._bounds = bounds

    async def place(self, follow: FollowSettings, order: DirectOrder) -> list[CopyResult]:
        """Send ``order`` after the follow's work in flight in its symbol; never sent twice. One
        result, or one per part of an order split within the venue's maximum."""
        return await self._queues.run((follow.follow_id, order.symbol), lambda: self._place(follow, order))

    async def record_venue_fill(self, follow: FollowSettings, order: DirectOrder, report: OrderReport) -> CopyResult:
        """An order resting on the venue for this follow (a take-profit or stop-loss) executed, as
        ``report`` says: journal it as filled, move the copied position and notify — once, however
        often seen."""
        result = await self._queues.chained(
            (follow.follow_id, order.symbol), lambda: self._venue_fill(follow, order, report)
        )
        assert result is not None
        return result

    async def record_skip(self, follow: FollowSettings, order: DirectOrder, skip: Skip) -> CopyResult:
        """An order the copier decided but cannot send (e.g. a remainder below the venue's
        minimum): recorded with its reason and notified, like any skipped copy."""
        return await self._recorder.skipped(follow, order.subject(follow), None, skip, order.intent(follow))

    async def _venue_fill(self, follow: FollowSettings, order: DirectOrder, report: OrderReport) -> CopyResult:
        subject = order.subject(follow)
        row = draft(follow, subject.fill, None, order.intent(follow), CopyStatus.PENDING, origin=order.origin)
        if order.client_order_id in await self._journal.begin_copies([row]):
            journaled = await self._journal.copy_order(order.client_order_id)
            assert journaled is not None
            if journaled.status is not CopyStatus.PENDING:
                return subject.from_row(journaled)
        transition = (await self._journal.record_reports([ReportedOrder(report)]))[0]
        if transition is None:  # recorded before: the row is the truth
            journaled = await self._journal.copy_order(order.client_order_id)
            assert journaled is not None
            return subject.from_row(journaled)
        result = from_transition(transition, subject.fill)
        if notable(transition):
            self._recorder.notify(result)
        return result

    async def _place(self, follow: FollowSettings, order: DirectOrder) -> list[CopyResult]:
        received = time.monotonic()
        subject = order.subject(follow)
        try:
            venue = await self._venues.venue_for(follow.credential_id)
            rules = await venue.market(order.symbol)
        except (VenueError, VaultError) as exc:
            return [await self._recorder.failed_unsent(follow, subject, None, str(exc), received, exc)]
        intent = order.intent(follow, derivative=rules.derivative)
        note = order.note
        if order.closes is not None and venue.bounds_exits(rules):
            write_off = Subject.of(follow, subject.fill, write_off_id(order.client_order_id), OrderOrigin.WRITE_OFF)
            sized = Sized(order.side, order.quantity)
            bounded = await self._bounds.bound(
                follow, write_off, None, venue, rules, sized, order.closes, order.position_side, intent.product
            )
            if isinstance(bounded, Skip):
                return [await self._recorder.skipped(follow, subject, None, bounded, intent)]
            intent = replace(intent, quantity=bounded[0].quantity)
            note = joined(note, bounded[1])
        intent = planner.order_for_venue(follow, venue.takes_market_orders, intent, order.reference_price, rules)
        parts = planner.venue_parts(follow, order.origin is OrderOrigin.OPEN, intent, rules, venue.name)
        if isinstance(parts, Skip):
            return [await self._recorder.skipped(follow, subject, None, parts, intent)]
        drafts = [
            draft(follow, subject.fill, None, part, CopyStatus.PENDING, origin=order.origin, reason=joined(note, why))
            for part, why in parts
        ]
        existing = await self._journal.begin_copies(drafts)  # every part journaled before the first is sent
        results = []
        for part, _ in parts:
            part_subject = Subject.of(follow, subject.fill, part.client_order_id, order.origin)
            if part.client_order_id in existing:  # decided before: never sent twice
                journaled = await self._journal.copy_order(part.client_order_id)
                assert journaled is not None
                resumed = await self._dispatcher.resume(follow, part_subject, venue, part, journaled, received)
                results.append(replace(resumed, origin=order.origin))
                continue
            claim = Claim(part.client_order_id, FIRST_EPOCH)
            results.append(await self._dispatcher.send(follow, part_subject, venue, part, claim, received))
        return results
