"""Open copies followed to their end: read by client order id (each pass, and at once when the
venue pushes a change), cancelled past their follow's maximum resting time or when the master
cancels the order they copy, replaced at the master's new price when the master moves it; a
protected limit past its short window cancelled and its unfilled remainder re-priced where the
follow asks for it. Fills recorded with their commission still to come (a Binance futures answer
carries none) completed here, off the send path: from the follower's order stream, else by one
read of the order's trades in a later pass (bounded per pass), recorded as a fee-only report; one
that never comes is recorded missing, with why."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal

from core.copying import planner
from core.copying.ids import moved_order_id, reprice_order_id
from core.copying.path import OnPath, OrderPath
from core.copying.recorder import TrackedReports
from core.copying.results import Subject, draft
from core.copying.sender import OrderSender
from core.errors import VaultError, VenueError
from core.journal import FIRST_EPOCH, Claim, FeeToCome, OpenCopy, ReportedOrder
from core.model import (
    DEFAULT_PRICE_PROTECTION_PCT,
    CopyResult,
    CopyStatus,
    FeeStatus,
    Fill,
    FollowSettings,
    MasterOrderChange,
    MasterOrderEvent,
    OrderIntent,
    OrderReport,
    OrderState,
    OrderType,
    RemainderAction,
    plain,
)
from core.records import CopyOrderRecord
from core.sizing import round_price
from core.venues.base import OrderChange, Venue

log = logging.getLogger(__name__)

ZERO = Decimal(0)
#: what a follower reads on a copy cancelled because the master's order ended unfilled
MASTER_ORDER_ENDED = {
    MasterOrderChange.CANCELED: "the master cancelled its order (what filled is kept)",
    MasterOrderChange.EXPIRED: "the master's order expired on its venue (what filled is kept)",
}


class Tracker(OnPath):
    def __init__(self, path: OrderPath, tracked: TrackedReports) -> None:
        super().__init__(path)
        self._tracked = tracked

    @property
    def _sender(self) -> OrderSender:
        return self._dispatcher.sender

    async def track(self, accept: Callable[[str], bool] | None = None) -> list[CopyResult]:
        """One pass over every sent order still open on its venue (not being sent here): ask the
        venue and record what changed; cancel those past their follow's maximum resting time (what
        filled is kept, the order is recorded expired); end protected limits past their window.
        With ``accept``, only the orders of the follower accounts it takes (an executor shard's)."""
        now = self._clock()
        results: list[CopyResult] = []

        async def follow_one(open_copy: OpenCopy) -> None:
            work: Callable[[], Awaitable[CopyResult | None]]
            if open_copy.protected:
                if now - open_copy.created_at >= self._config.protected_window and await self._trading(open_copy):
                    work = functools.partial(self._end_protected, open_copy)
                else:
                    work = functools.partial(self._follow_order, open_copy, cancel=False, reason=None)
            else:
                resting = open_copy.max_resting_minutes
                expired = resting is not None and now - open_copy.created_at >= timedelta(minutes=resting)
                reason = (
                    f"not filled within {resting} min, your maximum resting time for limit copies: "
                    "cancelled (what filled is kept)"
                    if expired
                    else None
                )
                work = functools.partial(self._follow_order, open_copy, cancel=expired, reason=reason, expired=expired)
            result = await self._queues.chained((open_copy.follow_id, open_copy.symbol), work)
            if result is not None:
                results.append(result)

        await asyncio.gather(
            *(
                follow_one(c)
                for c in await self._journal.open_copies()
                if not self._sender.in_flight(c.client_order_id)
                and (accept is None or (c.credential_id is not None and accept(c.credential_id)))
            )
        )
        await self.complete_commissions(accept)
        return results

    async def complete_commissions(self, accept: Callable[[str], bool] | None = None) -> None:
        """One pass over the fills whose commission is still to come (with ``accept``, of the follower
        accounts it takes): each is taken from what the account's order stream pushed; one that has
        waited ``commission_stream_wait`` is read from the venue instead, at most
        ``commission_reads_per_pass`` reads a pass, oldest first; one still unknown after
        ``commission_give_up`` is recorded missing. Reads only: nothing here sends an order."""
        now = self._clock()
        reads = self._config.commission_reads_per_pass
        work = []
        for owed in await self._journal.fees_to_come():
            if owed.credential_id is None:
                reason = "its commission was never read: the exchange key was removed; not counted in the fees"
                await self._journal.record_missing_fee(owed.client_order_id, reason)
                continue
            if accept is not None and not accept(owed.credential_id):
                continue
            waited = now - owed.since
            read = reads > 0 and waited >= self._config.commission_stream_wait
            reads -= read
            give_up = read and waited >= self._config.commission_give_up
            work.append(self._complete_commission(owed.credential_id, owed, read=read, give_up=give_up))
        await asyncio.gather(*work)

    async def _complete_commission(self, credential_id: str, owed: FeeToCome, *, read: bool, give_up: bool) -> None:
        """The commission of one fill recorded without it, recorded once it is known (a fee-only
        report: the journal counts it once, whoever else records it)."""
        why = "the exchange shows no trades for it"
        try:
            venue = await self._venues.venue_for(credential_id)
            completed = await venue.completed_commission(owed.report(), owed.symbol, read=read)
        except (VenueError, VaultError) as exc:
            log.warning("reading the commission of order %s: %s", owed.client_order_id, exc)
            completed, why = None, str(exc)
        if completed is not None:
            await self._tracked.record(ReportedOrder(completed))
        elif give_up:
            waited = self._config.commission_give_up.total_seconds() / 60
            reason = f"its commission never came ({why}; {waited:g} min after the fill): not counted in the fees"
            await self._journal.record_missing_fee(owed.client_order_id, reason)

    async def _trading(self, open_copy: OpenCopy) -> bool:
        """Whether the copy's market trades now: a protected limit's window ends only then (an
        after-market order waits for the open)."""
        if open_copy.credential_id is None:
            return True
        try:
            venue = await self._venues.venue_for(open_copy.credential_id)
        except (VenueError, VaultError):
            return True  # the read of the order will say what is wrong
        return venue.trading_now(open_copy.symbol)

    async def follow_master_order(
        self, event: MasterOrderEvent, accept: Callable[[str], bool] | None = None
    ) -> list[CopyResult]:
        """The master's order changed (with ``accept``, only the copies on the follower accounts it
        takes follow it). Cancelled or expired: its copies still resting are cancelled, what filled
        is kept. Amended to a new price: each copy still resting at another price is replaced —
        cancelled, and once the venue shows it ended, its unfilled rest sent again at the new price
        (on the follower's tick, in the follower's favour) under a client order id derived from it,
        journaled before it is sent and looked up before any resend, like every order. A replacement
        rather than the venue's own amendment: Binance re-queues a modified order anyway ("modified
        orders will be reordered in the match queue", docs/research/binance.md §3), and one path then
        serves every venue."""
        work: Callable[[OpenCopy], Awaitable[CopyResult | None]]
        if event.change is MasterOrderChange.AMENDED:
            assert event.price is not None  # an amendment carries its price
            work = functools.partial(self._move, price=event.price)
        else:
            reason = MASTER_ORDER_ENDED[event.change]
            work = functools.partial(self._follow_order, cancel=True, reason=reason)

        async def one(open_copy: OpenCopy) -> CopyResult | None:
            return await self._queues.chained(
                (open_copy.follow_id, open_copy.symbol), functools.partial(work, open_copy)
            )

        copies = await self._copies_of_master_order(event, accept)
        return [r for r in await asyncio.gather(*(one(c) for c in copies)) if r is not None]

    async def _copies_of_master_order(
        self, event: MasterOrderEvent, accept: Callable[[str], bool] | None
    ) -> list[OpenCopy]:
        """The open copies of a master's order, once the copies of its executions queued before
        this call have been sent: a cancellation right behind a fill finds that fill's copy."""
        follows = await self._follows.active(event.master_id)
        await self._queues.wait_for_queued((f.follow_id, event.symbol) for f in follows)
        return [
            open_copy
            for open_copy in await self._journal.open_copies_of_master_order(event.master_id, event.order_id)
            if not self._sender.in_flight(open_copy.client_order_id)
            and (accept is None or (open_copy.credential_id is not None and accept(open_copy.credential_id)))
        ]

    async def on_order_change(self, credential_id: str, change: OrderChange) -> CopyResult | None:
        """A follower's venue pushed an update of one of its orders: if it is an open copy (not one
        being sent here, not the follower's own order), read it and record what changed."""
        if self._sender.in_flight(change.client_order_id):
            return None
        row = await self._journal.copy_order(change.client_order_id)
        if row is None or row.state is None:
            return None
        if row.state.is_terminal:  # ended: all it may still lack is a commission the stream brings
            if row.fee_status is FeeStatus.PENDING:
                owed = FeeToCome(
                    row.client_order_id,
                    row.follow_id,
                    credential_id,
                    row.symbol,
                    row.venue_order_id,
                    row.state,
                    row.filled_quantity,
                    row.average_price,
                    row.fee,
                    row.base_fee,
                    row.completed_at or row.created_at,
                )
                await self._complete_commission(credential_id, owed, read=False, give_up=False)
            return None
        open_copy = OpenCopy(
            row.client_order_id, row.follow_id, credential_id, row.symbol, row.state, self._clock(), None
        )
        work = functools.partial(self._follow_order, open_copy, cancel=False, reason=None)
        return await self._queues.chained((row.follow_id, row.symbol), work)

    async def _follow_order(
        self, open_copy: OpenCopy, *, cancel: bool, reason: str | None, expired: bool = False
    ) -> CopyResult | None:
        read = await self._read_open(open_copy, cancel=cancel)
        if read is None:
            return None
        return await self._tracked.record(ReportedOrder(read[1], reason=reason if cancel else None, expired=expired))

    async def _read_open(self, open_copy: OpenCopy, *, cancel: bool) -> tuple[Venue, OrderReport, bool] | None:
        """Cancel (with ``cancel``) and read an open order: the venue, its report and whether this
        call cancelled it; ``None`` when the venue could not be asked or does not show it (a
        hiccup: asked again later)."""
        if open_copy.credential_id is None:
            return None
        try:
            venue = await self._venues.venue_for(open_copy.credential_id)
            report, cancelled = await self._sender.cancel_and_read(
                venue, open_copy.credential_id, open_copy.client_order_id, open_copy.symbol, cancel=cancel
            )
        except (VenueError, VaultError) as exc:
            log.warning("following order %s: %s", open_copy.client_order_id, exc)
            return None
        return None if report is None else (venue, report, cancelled)

    # -- protected limits: the unfilled remainder after the window ------------------------------

    async def _end_protected(self, open_copy: OpenCopy) -> CopyResult | None:
        """A protected limit's window ended: cancel it and read what filled. Once it is over on the
        venue (never before: two live orders for one remainder could both fill), its remainder is
        sent again at a fresh protected price (the last price moved by the price protection) when
        the follow re-prices, has attempts left and that price stays within the follow's slippage
        limit from the master's fill price (its price protection when it sets no slippage limit);
        otherwise what filled is kept and the order recorded expired. The re-send is journaled
        before the order it replaces is recorded, under a client order id derived from it, and
        goes through the sender like any order: a restart between the two never sends it twice."""
        ended = await self._cancel_until_ended(open_copy)
        if ended is None:
            return None
        venue, report, cancelled = ended
        if not report.state.is_terminal:  # the cancellation is not effective yet: the next pass ends it
            return await self._tracked.record(ReportedOrder(report))
        resend_id = reprice_order_id(open_copy.client_order_id, open_copy.attempt + 1)
        if not cancelled and not (
            report.state is OrderState.CANCELED and await self._journal.copy_order(resend_id) is not None
        ):  # it ended on its own (filled, rejected, or cancelled by the follower): recorded as it is
            return await self._tracked.record(ReportedOrder(report))
        # cancelled here, or by a run that journaled its re-send and stopped before recording it
        row = await self._journal.copy_order(open_copy.client_order_id)
        assert row is not None and row.side is not None and row.requested_quantity is not None  # a sent order
        window = f"not filled within its {self._config.protected_window.total_seconds():g} s window"
        follow = await self._follows.follow(open_copy.follow_id)
        remainder = row.requested_quantity - report.filled_quantity
        if remainder <= 0:
            return await self._tracked.record(ReportedOrder(report))
        if follow is None:
            return await self._tracked.record(
                ReportedOrder(report, reason=f"{window}; the follow is not active", expired=True)
            )
        if follow.remainder_action is not RemainderAction.REPRICE:
            reason = f"{window}; the rest was cancelled (what filled is kept)"
            return await self._tracked.record(ReportedOrder(report, reason=reason, expired=True))
        if row.attempt >= follow.reprice_attempts:
            reason = f"{window}; the rest was cancelled after {row.attempt} re-prices, the follow's maximum"
            return await self._tracked.record(ReportedOrder(report, reason=reason, expired=True))
        fill = await self._recorder.fill_of(follow.follow_id, row.fill_id, row)
        resend = await self._repriced(follow, venue, row, fill, remainder, resend_id)
        if isinstance(resend, str):
            return await self._tracked.record(ReportedOrder(report, reason=f"{window}; {resend}", expired=True))
        reason = (
            f"{window}; the rest ({plain(remainder)}) was sent again at {plain(resend.price or ZERO)} "
            f"(re-price {row.attempt + 1} of {follow.reprice_attempts})"
        )
        return await self._send_in_place_of(follow, venue, row, fill, report, resend, reason, expired=True)

    async def _move(self, open_copy: OpenCopy, *, price: Decimal) -> CopyResult | None:
        """Replace a resting copy of the master's limit at the master's new price (see
        ``follow_master_order``). A copy already at that price, or not a copy of a limit, stays."""
        row = await self._journal.copy_order(open_copy.client_order_id)
        if row is None or row.order_type is not OrderType.LIMIT or row.protected or row.side is None:
            return None
        if open_copy.credential_id is None or row.requested_quantity is None:
            return None
        try:
            venue = await self._venues.venue_for(open_copy.credential_id)
            rules = await venue.market(row.symbol)
        except (VenueError, VaultError) as exc:
            log.warning("moving order %s: %s", open_copy.client_order_id, exc)
            return None
        new_price = round_price(price, rules.price_tick, row.side)
        if new_price == row.limit_price:
            return None
        ended = await self._cancel_until_ended(open_copy)
        if ended is None:
            return None
        venue, report, cancelled = ended
        if not cancelled or not report.state.is_terminal:
            # it ended on its own (filled, or cancelled by the follower), or the cancellation is not
            # effective yet (the next pass records its end): nothing is sent beside a live order
            return await self._tracked.record(ReportedOrder(report))
        moved = f"the master moved its order to {plain(new_price)}"
        remainder = row.requested_quantity - report.filled_quantity
        follow = await self._follows.follow(open_copy.follow_id)
        if remainder <= 0:
            return await self._tracked.record(ReportedOrder(report))
        if follow is None:
            reason = f"{moved}; the follow is not active, so the rest was not placed again (what filled is kept)"
            return await self._tracked.record(ReportedOrder(report, reason=reason))
        fill = await self._recorder.fill_of(follow.follow_id, row.fill_id, row)
        intent = OrderIntent(
            follow_id=follow.follow_id,
            client_order_id=moved_order_id(open_copy.client_order_id, row.attempt + 1),
            symbol=row.symbol,
            side=row.side,
            quantity=remainder,
            order_type=OrderType.LIMIT,
            price=new_price,
            reduce_only=row.reduce_only,
            reference_price=row.master_price,
            leverage=follow.leverage if rules.derivative else None,
            margin_mode=follow.margin_mode if rules.derivative else None,
            product=follow.product or fill.product,
            position_side=row.position_side,
        )
        reason = f"{moved}: the rest ({plain(remainder)}) was placed again there (what filled is kept)"
        return await self._send_in_place_of(follow, venue, row, fill, report, intent, reason, expired=False)

    async def _cancel_until_ended(self, open_copy: OpenCopy) -> tuple[Venue, OrderReport, bool] | None:
        """Cancel an open order and read it until the venue shows it ended (a venue may take a
        moment to show an accepted cancellation): the venue, its last report and whether this call
        cancelled it; ``None`` when the venue could not be asked."""
        read = await self._read_open(open_copy, cancel=True)
        if read is None:
            return None
        venue, report, cancelled = read
        for delay in self._config.retry_delays if cancelled else ():
            if report.state.is_terminal:
                break
            await asyncio.sleep(delay)
            try:
                report = await venue.fetch_order(open_copy.client_order_id, open_copy.symbol) or report
            except VenueError as exc:
                log.warning("reading cancelled order %s: %s", open_copy.client_order_id, exc)
        return venue, report, cancelled

    async def _send_in_place_of(
        self,
        follow: FollowSettings,
        venue: Venue,
        row: CopyOrderRecord,
        fill: Fill,
        report: OrderReport,
        resend: OrderIntent,
        reason: str,
        *,
        expired: bool,
    ) -> CopyResult | None:
        """Send ``resend`` for the rest of the ended order ``row``: journaled (its re-send number
        the next) before the ended order is recorded, then through the dispatcher like any order —
        or, journaled by a run that stopped before sending it, looked up before any send."""
        existing = await self._journal.begin_copies(
            [draft(follow, fill, row.fill_id, resend, CopyStatus.PENDING, origin=row.origin, attempt=row.attempt + 1)]
        )
        await self._tracked.record(ReportedOrder(report, reason=reason, expired=expired))
        subject = Subject.of(follow, fill, resend.client_order_id, row.origin)
        received = time.monotonic()
        if resend.client_order_id in existing:
            resend_row = await self._journal.copy_order(resend.client_order_id)
            assert resend_row is not None
            return await self._dispatcher.resume(follow, subject, venue, resend, resend_row, received)
        claim = Claim(resend.client_order_id, FIRST_EPOCH)
        return await self._dispatcher.send(follow, subject, venue, resend, claim, received)

    async def _repriced(
        self,
        follow: FollowSettings,
        venue: Venue,
        row: CopyOrderRecord,
        fill: Fill,
        remainder: Decimal,
        client_order_id: str,
    ) -> OrderIntent | str:
        """The re-send of a protected limit's remainder at a fresh protected price, or why not."""
        assert row.side is not None
        try:
            rules = await venue.market(row.symbol)
            last = await venue.price(row.symbol)
        except VenueError as exc:
            return f"the rest was cancelled: the price could not be read to re-price it ({exc})"
        protection = follow.price_protection_pct or DEFAULT_PRICE_PROTECTION_PCT
        limit = follow.slippage_pct if follow.slippage_pct is not None else protection
        intent = OrderIntent(
            follow_id=follow.follow_id,
            client_order_id=client_order_id,
            symbol=row.symbol,
            side=row.side,
            quantity=remainder,
            reduce_only=row.reduce_only,
            reference_price=row.master_price,
            leverage=follow.leverage if rules.derivative else None,
            margin_mode=follow.margin_mode if rules.derivative else None,
            product=follow.product or fill.product,
            position_side=row.position_side,
        )
        intent = planner.protected_limit(intent, last, protection, rules.price_tick)
        assert intent.price is not None
        if not planner.within_limit(intent.price, row.master_price, limit, row.side):
            return (
                f"the rest was cancelled: a fresh price of {plain(intent.price)} (last {plain(last)}) is more "
                f"than {plain(limit)} % from the master's {plain(row.master_price)}"
            )
        return intent
