"""Closing what the copier opened for one follow (``/stop`` → "close positions").

Only the follow's own copied positions (``follow_positions``) are closed, never the follower's
manual positions in the same symbols: one reduce-only market order per symbol, rounded down to
the venue's step, with a deterministic client order id derived from the position's state, so a
retried close is never sent twice (the venue is asked by that id first).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from copytrade.core.errors import UserError, VenueError
from copytrade.core.model import CopyStatus, FollowStatus, OrderAck, OrderIntent, OrderType, Side
from copytrade.core.sizing import round_down
from copytrade.core.venues.registry import VenueRegistry
from copytrade.storage.accounts import AccountStore
from copytrade.storage.models import Follow, FollowPosition

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CloseOutcome:
    symbol: str
    side: Side
    quantity: Decimal  # what was asked to close
    status: CopyStatus  # FILLED, PLACED, SKIPPED or FAILED
    filled_quantity: Decimal = Decimal(0)
    average_price: Decimal | None = None
    reason: str | None = None
    client_order_id: str | None = None


def close_order_id(follow_id: int, position: FollowPosition) -> str:
    """Same position state → same id: a repeated close finds the first order instead of sending another."""
    seed = f"close|{follow_id}|{position.symbol}|{position.quantity}|{position.updated_at.isoformat()}"
    return "cx" + hashlib.sha256(seed.encode()).hexdigest()[:30]


class PositionCloser:
    def __init__(self, accounts: AccountStore, venues: VenueRegistry, forget_positions: Callable[[int], None]) -> None:
        self.accounts = accounts
        self.venues = venues
        self._forget_positions = forget_positions

    async def close_follow(self, follow: Follow) -> list[CloseOutcome]:
        """Close every copied position of a follow that no longer copies (paused or stopped)."""
        assert follow.id is not None
        if follow.status is FollowStatus.ACTIVE:
            raise UserError("pause or stop the follow before closing its positions")
        positions = await self.accounts.follow_positions_of(follow.id)
        if not positions:
            return []
        if follow.dry_run:
            for position in positions:  # simulated positions: nothing to send
                await self.accounts.reduce_follow_position(follow.id, position.symbol, -position.quantity, None)
            self._forget_positions(follow.id)
            return [CloseOutcome(p.symbol, Side.SELL if p.quantity > 0 else Side.BUY, abs(p.quantity), CopyStatus.SKIPPED,
                                 reason="dry run: the simulated position was cleared") for p in positions]
        venue = await self.venues.venue_for(follow.credential_id)
        outcomes = await asyncio.gather(*(self._close_one(venue, follow.id, p) for p in positions))
        self._forget_positions(follow.id)
        summary = "; ".join(_describe(o) for o in outcomes)
        await self.accounts.set_follow_reason(follow.id, f"positions closed on stop: {summary}")
        return list(outcomes)

    async def _close_one(self, venue, follow_id: int, position: FollowPosition) -> CloseOutcome:  # type: ignore[no-untyped-def]
        side = Side.SELL if position.quantity > 0 else Side.BUY
        cid = close_order_id(follow_id, position)
        try:
            rules = await venue.market(position.symbol)
            quantity = round_down(abs(position.quantity), rules.quantity_step)
            if quantity <= 0 or quantity < rules.min_quantity:
                return CloseOutcome(position.symbol, side, abs(position.quantity), CopyStatus.SKIPPED,
                                    reason=f"{abs(position.quantity)} is below the exchange's minimum {rules.min_quantity}; close it on the exchange",
                                    client_order_id=cid)
            intent = OrderIntent(follow_id, cid, position.symbol, side, quantity, OrderType.MARKET, reduce_only=True)
            ack = await venue.fetch_order(cid, position.symbol) or await venue.place_order(intent)
        except asyncio.CancelledError:
            raise
        except VenueError as exc:
            log.warning("closing %s for follow %s failed: %s", position.symbol, follow_id, exc)
            return CloseOutcome(position.symbol, side, abs(position.quantity), CopyStatus.FAILED, reason=str(exc), client_order_id=cid)
        await self._record(follow_id, position, side, ack)
        return CloseOutcome(position.symbol, side, quantity, ack.status, ack.filled_quantity, ack.average_price, client_order_id=cid)

    async def _record(self, follow_id: int, position: FollowPosition, side: Side, ack: OrderAck) -> None:
        if ack.filled_quantity > 0:
            await self.accounts.reduce_follow_position(follow_id, position.symbol, ack.filled_quantity * side.sign, ack.average_price)


def _describe(outcome: CloseOutcome) -> str:
    if outcome.status is CopyStatus.FILLED:
        return f"{outcome.side.value} {outcome.filled_quantity} {outcome.symbol} @ {outcome.average_price}"
    return f"{outcome.symbol} {outcome.status.value}" + (f" ({outcome.reason})" if outcome.reason else "")


async def stop_follow(services, closer: PositionCloser, user_id: int, follow_id: int, *, close_positions: bool) -> tuple[Follow, list[CloseOutcome]]:  # type: ignore[no-untyped-def]
    """Stop copying (ownership checked by the service), then optionally close what was copied."""
    follow = await services.set_status(user_id, follow_id, FollowStatus.STOPPED)
    outcomes = await closer.close_follow(follow) if close_positions else []
    return follow, outcomes
