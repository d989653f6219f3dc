"""An order that closes a copied position never asks for more than the follower's venue shows held,
and what the ledger holds beyond it — closed outside the copier: by hand, a liquidation — is written
off the ledger so that it equals the venue. One rule for the copies of the master's exits and for
the copier's own closes (/stop, the loss limit, a take-profit or stop-loss the price watch fired).

Where the venue says so (``Venue.bounds_exits``), the position is read before the order is sent
(``VenuePositions``: once per account for the exits of one moment, only for exits), the order is
bounded by it (``planner.bound_exit``) and, when it was, the rest is recorded as a write-off of its
own (``CopyJournal.write_off``, never sent; no PnL: its price is not the copier's to know). A
write-off waits while the ledger may be missing an execution (an order of the follow in the symbol
still working, a take-profit or stop-loss the venue does not show resting any more): then the drift
is recorded instead, as reconciliation would."""

from __future__ import annotations

from decimal import Decimal

from core.copying import planner
from core.copying.positions import VenuePositions
from core.copying.recorder import Recorder
from core.copying.results import Subject
from core.errors import VenueError
from core.journal import CopyJournal, WriteOff
from core.model import FollowSettings, MarketRules, PositionSide, Skip, SkipReason, drift_label, plain, venue_side
from core.sizing import Sized
from core.venues.base import Venue


class ExitBounds:
    def __init__(self, journal: CopyJournal, recorder: Recorder) -> None:
        self._journal = journal
        self._recorder = recorder
        self._held = VenuePositions()  # what follower venues show held, read for exits only

    async def bound(
        self,
        follow: FollowSettings,
        write_off: Subject,
        fill_id: int | None,
        venue: Venue,
        rules: MarketRules,
        sized: Sized,
        copied: Decimal,
        position_side: PositionSide,
        product: str | None,
    ) -> tuple[Sized, str | None] | Skip:
        """``sized``, an order closing the copied position ``copied`` (signed) on ``position_side``
        (under ``product`` where the venue keeps positions per product: ``Venue.exit_scope``),
        bounded by what the venue shows on the side it closes, with the note it records; or why
        nothing is sent. ``write_off``: the subject a write-off is recorded and told under (its id
        derived from the order's, ``ids.write_off_id``; the master fill ``fill_id``, if any)."""
        scope = venue.exit_scope(follow.follow_id, product)
        try:
            held = await self._held.held(follow.credential_id, venue)
            symbol = write_off.fill.symbol
            on_symbol = [p for p in held if p.symbol == symbol and (scope is None or p.product == scope.product)]
            # the positions show the account's mode (hedge mode holds LONG / SHORT, one-way BOTH),
            # sparing the mode's own read (weight 30 on Binance); asked only when nothing is held
            hedged = (
                any(p.position_side is not PositionSide.BOTH for p in on_symbol)
                if on_symbol
                else await venue.hedge_mode()
            )
        except VenueError as exc:  # unbounded, the venue refuses an exit above the position whole
            return Skip(SkipReason.NO_POSITION_TO_EXIT, f"your exchange's position could not be read: {exc}")
        side = venue_side(position_side, copied, hedged)
        shown = sum((p.quantity for p in on_symbol if p.position_side is side), Decimal(0))
        bounded = planner.bound_exit(sized, copied, shown, rules)
        note = bounded.note
        if bounded.written_off > 0:
            label = drift_label(symbol, side)
            held_there = planner.held_for_exit(sized.side, shown)
            held_as = f" {scope.product}" if scope is not None else ""
            closed_by = f" ({scope.closed_by})" if scope is not None and scope.closed_by else ""
            entry = WriteOff(
                client_order_id=write_off.client_order_id,
                fill_id=fill_id,
                follow_id=follow.follow_id,
                user_id=follow.user_id,
                symbol=symbol,
                position_side=position_side,
                side=sized.side,
                quantity=bounded.written_off,
                expected=copied,
                reference_price=write_off.fill.price,
                reason=(
                    f"closed outside the copier{closed_by}: your exchange showed {plain(held_there)} {rules.base}"
                    f"{held_as} of the {plain(abs(copied))} {rules.base} copied, so {plain(bounded.written_off)} "
                    f"{rules.base} comes off your copied position (never sent; the price it was closed at is not "
                    "known, so no PnL is counted)"
                ),
                drift_label=label,
                untriggered=await self._untriggered(follow, venue, symbol),
            )
            if await self._journal.write_off(entry):
                self._recorder.notify(write_off.written_off(sized.side, entry.quantity, entry.reason))
                done = "written off your copied position"
            else:  # recorded before, or the ledger may be missing an execution: the drift, as reconciliation would
                await self._journal.record_drift(follow.follow_id, label, bounded.expected_after, bounded.actual_after)
                done = "recorded as drift"
            note = f"{note} ({done})" if note is not None else None
        if isinstance(bounded.order, Skip):
            return bounded.order
        return bounded.order, note

    async def _untriggered(self, follow: FollowSettings, venue: Venue, symbol: str) -> tuple[str, ...]:
        """The follow's take-profit / stop-loss orders in ``symbol`` the venue shows still resting,
        read after its position was (one that triggered, or cannot be read, is left out: the risk
        watch records it, and the write-off waits for it)."""
        resting = []
        for order in await self._journal.protective_orders(follow.follow_id, symbol):
            try:
                report = await venue.fetch_order(order.client_order_id, symbol)
            except VenueError:
                continue
            if report is not None and not report.state.is_terminal:
                resting.append(order.client_order_id)
        return tuple(resting)
