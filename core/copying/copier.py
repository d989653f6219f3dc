"""A master fill fanned out to its follows: each follow planned and sent in its own task, in fill
order per follow and symbol (an exit is sized after the entry it closes), a follow's later fills
waiting behind a copy whose outcome is unknown."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal

from core.copying import planner
from core.copying.ids import client_order_id, split_order_id, write_off_id
from core.copying.path import OnPath, OrderPath
from core.copying.queues import Key
from core.copying.recorder import PositionChanged
from core.copying.results import Subject, draft, joined, journaled_fill, journaled_intent, waiting
from core.copying.sender import not_after
from core.copying.settler import Settler
from core.errors import NotFound, UnknownSymbol, VaultError, VenueError
from core.journal import FIRST_EPOCH, Claim, JournalEntry
from core.model import (
    CopyResult,
    CopyStatus,
    Fill,
    FollowSettings,
    MarketRules,
    OrderIntent,
    OrderOrigin,
    PositionSide,
    SizingMode,
    Skip,
    SkipReason,
)
from core.records import CopyOrderRecord
from core.sizing import Leg, LegPlan, one_way_note, split_legs
from core.venues.base import Venue

log = logging.getLogger(__name__)

#: manual confirmation: a sized copy handed to the follower instead of being sent
OfferCopy = Callable[[FollowSettings, Fill, int, OrderIntent], Awaitable[CopyResult]]
MasterEquity = Callable[[int], Awaitable[Decimal | None]]


class Copier(OnPath):
    def __init__(
        self,
        path: OrderPath,
        settler: Settler,
        *,
        position_changed: PositionChanged,
        master_equity: MasterEquity | None,
        offer_copy: OfferCopy | None,
    ) -> None:
        super().__init__(path)
        self._unknowns = path.unknowns
        self._positions = path.positions
        self._settler = settler
        self._position_changed = position_changed
        self._master_equity = master_equity
        self._offer_copy = offer_copy
        self.planning: set[int] = set()  # journaled fills whose copies are being planned now

    # -- fan-out ------------------------------------------------------------------------------

    async def start_copies(
        self,
        fill: Fill,
        entry: JournalEntry,
        received: float,
        accept: Callable[[str], bool] | None = None,
        *,
        fresh: bool = False,
    ) -> list[asyncio.Task[list[CopyResult]]]:
        """Queue one task per active follow (with ``accept``, of the follower accounts it takes).
        ``fresh``: the fill was journaled just now, so no copy of it can have been journaled before
        (a re-plan looks for the parts of an order an earlier plan split)."""
        follows = await self._follows.active(fill.master_id)
        if accept is not None:
            follows = [f for f in follows if accept(f.credential_id)]
        master_equity = await self._fill_master_equity(fill, follows)
        legs = split_legs(fill, entry.master_position_before)
        tasks = []
        for follow in follows:

            async def work(follow: FollowSettings = follow) -> list[CopyResult]:
                return await self._copy_for_follow(follow, fill, entry.fill_id, legs, master_equity, received, fresh)

            tasks.append(self._queues.enqueue((follow.follow_id, fill.symbol), work))
        return tasks

    async def _fill_master_equity(self, fill: Fill, follows: list[FollowSettings]) -> Decimal | None:
        if fill.master_equity is not None or self._master_equity is None:
            return fill.master_equity
        if any(f.sizing_mode is SizingMode.EQUITY_RATIO for f in follows):
            return await self._master_equity(fill.master_id)
        return None

    async def _copy_for_follow(
        self,
        follow: FollowSettings,
        fill: Fill,
        fill_id: int,
        legs: list[LegPlan],
        master_equity: Decimal | None,
        received: float,
        fresh: bool,
    ) -> list[CopyResult]:
        key = (follow.follow_id, fill.symbol)
        if await self._must_wait(follow, key, fill_id):
            self._unknowns.wait_with(key, fill_id)
            return [waiting(follow, fill)]
        if self._unknowns.waiting.get(key) == fill_id:
            del self._unknowns.waiting[key]
        results = []
        for index, leg in enumerate(legs):
            cid = client_order_id(fill, follow.follow_id, index)
            try:
                leg_results = await self.copy_leg(follow, fill, fill_id, leg, cid, master_equity, received, fresh=fresh)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must cost one follower one order, never the others
                log.exception("copy for follow %s failed unexpectedly", follow.follow_id)
                failed = await self._recorder.failed_unsent(
                    follow, Subject.of(follow, fill, cid), fill_id, f"internal error: {type(exc).__name__}", received
                )
                leg_results = [failed]
            results += leg_results
            if any(r.filled_quantity > 0 for r in leg_results) and not follow.dry_run:
                await self._position_changed(follow, fill.symbol)
        return results

    async def _must_wait(self, follow: FollowSettings, key: Key, fill_id: int) -> bool:
        """Whether this follow's copy of fill ``fill_id`` must wait: an earlier fill of it waits,
        or one of its copies in this symbol has an outcome still unknown (settled here first when
        it can be: the venue is asked)."""
        first = self._unknowns.waiting.get(key)
        if first is not None and first < fill_id:
            waiting_fill = await self._journal.fill(first)
            if waiting_fill is not None and not waiting_fill.planned:
                return True
            del self._unknowns.waiting[key]  # copied meanwhile (by another process's settle job)
        for cid in list(self._unknowns.unknown.get(key, ())):
            row = await self._journal.copy_order(cid)
            if row is not None and row.fill_id == fill_id:
                continue  # a copy of this very fill: planning it looks it up before any send
            if row is not None and row.status is CopyStatus.PENDING:
                await self._settler.settle_owned(follow.credential_id, cid)
                row = await self._journal.copy_order(cid)
            if row is None or row.status is not CopyStatus.PENDING:
                self._unknowns.settled(key, cid)
        for cid in self._unknowns.unknown.get(key, set()):
            row = await self._journal.copy_order(cid)
            if row is None or row.fill_id != fill_id:
                return True
        return False

    # -- one leg ------------------------------------------------------------------------------

    async def copy_leg(
        self,
        follow: FollowSettings,
        fill: Fill,
        fill_id: int,
        leg: LegPlan,
        cid: str,
        master_equity: Decimal | None,
        received: float,
        *,
        confirmed: bool = False,
        fresh: bool = False,
    ) -> list[CopyResult]:
        """The copy of one leg: one order, or the parts of one larger than the venue takes at once
        (each journaled under its own derived id, fenced and sent in turn; a re-plan follows the
        parts an earlier plan journaled, never splitting differently)."""
        subject = Subject.of(follow, fill, cid)
        deadline = None  # an exit is sent however late
        if leg.leg is Leg.ENTRY:  # a confirmed entry's time runs from the confirmation
            deadline = not_after(self._clock() if confirmed else fill.executed_at, self._config.max_fill_age)
        if not fresh:
            earlier = await self._journaled_parts(cid)
            if earlier:  # split by an earlier plan: its parts are followed as journaled, never planned again
                return await self._resume_parts(follow, fill, earlier, received, deadline)
        age = (self._clock() - fill.executed_at).total_seconds()
        stale = self._clock() - fill.executed_at > self._config.max_fill_age
        refused = planner.entry_refused(follow, fill, leg, age, stale and not confirmed)
        if refused is not None:
            return [await self._recorder.skipped(follow, subject, fill_id, refused)]
        try:
            venue = await self._venues.venue_for(follow.credential_id)
            rules = await venue.market(fill.symbol)
        except UnknownSymbol as exc:
            return [await self._recorder.skipped(follow, subject, fill_id, Skip(SkipReason.UNKNOWN_SYMBOL, str(exc)))]
        except (VenueError, VaultError) as exc:
            return [await self._recorder.failed_unsent(follow, subject, fill_id, str(exc), received, exc)]
        planned = await self._plan(follow, fill, fill_id, leg, cid, venue, rules, master_equity)
        if isinstance(planned, Skip):
            return [await self._recorder.skipped(follow, subject, fill_id, planned)]
        intent, note = planned
        if follow.confirm_seconds is not None and not confirmed and self._offer_copy is not None:
            return [await self._offer_copy(follow, fill, fill_id, intent)]
        if follow.dry_run:
            return [await self._recorder.dry_run(follow, subject, fill_id, intent, rules)]
        parts = planner.venue_parts(follow, leg.leg is Leg.ENTRY, intent, rules, venue.name)
        if isinstance(parts, Skip):
            return [await self._recorder.skipped(follow, subject, fill_id, parts)]
        if len(parts) > 1 and not fresh and await self._journal.copy_order(cid) is not None:
            parts = [(intent, None)]  # journaled whole by an earlier plan: followed as it was
        drafts = [
            draft(follow, fill, fill_id, part, CopyStatus.PENDING, reason=joined(note, part_note))
            for part, part_note in parts
        ]
        existing = await self._journal.begin_copies(drafts)  # every part journaled before the first is sent
        results = []
        for part, _ in parts:
            part_subject = Subject.of(follow, fill, part.client_order_id)
            if part.client_order_id in existing:  # planned by an earlier run: never sent before asking the venue
                row = await self._journal.copy_order(part.client_order_id)
                assert row is not None
                result = await self._dispatcher.resume(
                    follow, part_subject, venue, part, row, received, not_after=deadline
                )
            else:
                claim = Claim(part.client_order_id, FIRST_EPOCH)
                result = await self._dispatcher.send(
                    follow, part_subject, venue, part, claim, received, not_after=deadline
                )
            results.append(result)
        return results

    async def _journaled_parts(self, cid: str) -> list[CopyOrderRecord]:
        """The parts of order ``cid`` an earlier plan journaled (none when it was not split)."""
        parts: list[CopyOrderRecord] = []
        while (row := await self._journal.copy_order(split_order_id(cid, len(parts)))) is not None:
            parts.append(row)
        return parts

    async def _resume_parts(
        self,
        follow: FollowSettings,
        fill: Fill,
        parts: list[CopyOrderRecord],
        received: float,
        deadline: datetime | None,
    ) -> list[CopyResult]:
        """The parts an earlier plan journaled, each as journaled: a part still pending is looked up
        and sent only once proven absent; the others are as recorded."""
        try:
            venue = await self._venues.venue_for(follow.credential_id)
            derivative = (await venue.market(fill.symbol)).derivative
        except (VenueError, VaultError) as exc:  # left pending: the settle job comes back to them
            log.warning("follow %s: the parts of a split copy wait for the venue: %s", follow.follow_id, exc)
            return [Subject.of(follow, fill, row.client_order_id).from_row(row) for row in parts]
        results = []
        for row in parts:
            subject = Subject.of(follow, fill, row.client_order_id)
            if row.side is None or row.requested_quantity is None:
                results.append(subject.from_row(row))
                continue
            part = journaled_intent(follow, fill, row, row.side, row.requested_quantity, derivative=derivative)
            results.append(
                await self._dispatcher.resume(follow, subject, venue, part, row, received, not_after=deadline)
            )
        return results

    async def _plan(
        self,
        follow: FollowSettings,
        fill: Fill,
        fill_id: int,
        leg: LegPlan,
        cid: str,
        venue: Venue,
        rules: MarketRules,
        master_equity: Decimal | None,
    ) -> tuple[OrderIntent, str | None] | Skip:
        """Read what the follow's settings need, then plan with the pure planner."""
        order_type, _ = planner.copied_order_type(fill)
        needs = planner.needs(follow, leg, order_type)
        position_side = planner.copied_side(follow, fill)
        position = await self._positions.position(
            follow.follow_id, fill.symbol, position_side, simulated=follow.dry_run
        )
        follower_equity: Decimal | Skip | None = None
        if needs.follower_equity:
            try:
                follower_equity = await venue.equity()
            except VenueError as exc:
                follower_equity = Skip(SkipReason.NO_EQUITY, f"balance unavailable: {exc}")
        raw: Decimal | Skip | None = None
        if leg.leg is Leg.ENTRY or leg.exit_fraction is None:
            raw = planner.raw_quantity(follow, fill, leg.master_quantity, follower_equity, master_equity)
        copied = await self._journal.copied_notional(follow.follow_id) if needs.copied_notional else None
        sized = planner.size(follow, fill, leg, rules, position, raw, copied)
        if isinstance(sized, Skip):
            return sized
        note = None
        if position_side is not PositionSide.BOTH and not await venue.hedge_mode():
            net = await self._positions.net(follow.follow_id, fill.symbol, simulated=follow.dry_run)
            note = one_way_note(leg.leg, position_side, net, sized.quantity * sized.side.sign)
        drift = None
        if leg.leg is Leg.EXIT and note is None and not follow.dry_run and venue.bounds_exits(rules):
            write_off = Subject.of(follow, fill, write_off_id(cid), OrderOrigin.WRITE_OFF)
            bounded = await self._bounds.bound(
                follow, write_off, fill_id, venue, rules, sized, position, position_side, follow.product or fill.product
            )
            if isinstance(bounded, Skip):
                return bounded
            sized, drift = bounded
        intent = planner.intent_for(follow, fill, leg, cid, sized, rules, position_side, note)
        if isinstance(intent, Skip):
            return intent
        if needs.price:
            try:
                now: Decimal | Skip = await venue.price(fill.symbol)
            except VenueError as exc:
                now = Skip(SkipReason.SLIPPAGE, f"the price could not be read to check it ({exc})")
            guarded = planner.guard_slippage(follow, fill, intent, now, rules, venue.takes_market_orders)
            if isinstance(guarded, Skip):
                return guarded
            intent = guarded
        intent = planner.order_for_venue(follow, venue.takes_market_orders, intent, fill.price, rules)
        return intent, joined(note, drift)

    # -- manual confirmation ------------------------------------------------------------------

    async def copy_confirmed(self, follow: FollowSettings, fill_id: int, cid: str) -> CopyResult:
        """The follower confirmed the offered copy ``cid`` of the journaled fill ``fill_id``: sized
        now and journaled under the same client order id before it is sent; a second confirmation,
        or one after the offer was recorded as not confirmed, finds the row and sends nothing."""
        fill, leg = await self._offered_leg(follow, fill_id, cid)
        master_equity = await self._fill_master_equity(fill, [follow])

        async def work() -> CopyResult | None:
            results = await self.copy_leg(
                follow, fill, fill_id, leg, cid, master_equity, time.monotonic(), confirmed=True
            )
            if any(r.filled_quantity > 0 for r in results) and not follow.dry_run:
                await self._position_changed(follow, fill.symbol)
            return results[0]  # the order, or its first part (each part is notified as it goes)

        result = await self._queues.chained((follow.follow_id, fill.symbol), work)
        assert result is not None
        return result

    async def record_unconfirmed(self, follow: FollowSettings, fill_id: int, cid: str, detail: str) -> CopyResult:
        """The offered copy ``cid`` was declined or not answered in time: recorded skipped (not
        confirmed), unless a confirmation journaled it first (then nothing changes)."""
        fill, _ = await self._offered_leg(follow, fill_id, cid)
        skip = Skip(SkipReason.NOT_CONFIRMED, detail)
        return await self._recorder.skipped(follow, Subject.of(follow, fill, cid), fill_id, skip)

    async def _offered_leg(self, follow: FollowSettings, fill_id: int, cid: str) -> tuple[Fill, LegPlan]:
        journaled = await self._journal.fill(fill_id)
        if journaled is None:
            raise NotFound(f"no journaled fill {fill_id}")
        fill = journaled_fill(journaled)
        for index, leg in enumerate(split_legs(fill, journaled.master_position_before)):
            if client_order_id(fill, follow.follow_id, index) == cid:
                return fill, leg
        raise NotFound(f"no copy {cid} of fill {fill_id} for follow {follow.follow_id}")
