"""Manual confirmation: a follow with ``confirm_seconds`` has each copy offered to the follower
("Master bought 0.5 BTC @ 60000 — copy 0.05 BTC? [Copy] [Skip]") instead of sent.

The copier hands the sized copy to ``CopyOffers.offer`` (nothing journaled yet) and the
offer is published as a ``CopyOffer`` notification. "Copy" goes back through
``CopyEngine.copy_confirmed``: the copy's own client order id, journaled before it is sent, so
pressing twice places once. "Skip", or no answer before the offer expires (``expire_due``, a
scheduler job), records the copy skipped with the reason "not confirmed". An answer to an offer
already answered or expired says so and sends nothing.

Open offers live in this process: after a restart an old offer's buttons say it is no longer
valid, and nothing is sent for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from core.engine import CopyEngine
from core.errors import UserError
from core.journal import CopyJournal
from core.model import CopyResult, CopyStatus, Fill, FollowSettings, OrderIntent, Side, SkipReason, utcnow


@dataclass(frozen=True, slots=True)
class CopyOffer:
    """A copy waiting for the follower's Copy or Skip (published as a notification)."""

    offer_id: str  # the copy's client order id
    follow_id: int
    user_id: int
    master_id: int
    fill: Fill
    side: Side
    quantity: Decimal
    symbol: str
    seconds: int  # how long the offer stands
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class _Open:
    offer: CopyOffer
    follow: FollowSettings
    fill_id: int


class CopyOffers:
    """The offers standing now. The copier hands a sized copy to ``offer`` instead of sending it;
    ``CopyConfirmations`` answers them."""

    def __init__(self, notify: Callable[[CopyOffer], None], clock: Callable[[], datetime] = utcnow) -> None:
        self.notify = notify
        self.clock = clock
        self._open: dict[str, _Open] = {}

    def pending(self) -> list[CopyOffer]:
        return [entry.offer for entry in self._open.values()]

    async def offer(self, follow: FollowSettings, fill: Fill, fill_id: int, intent: OrderIntent) -> CopyResult:
        """The copier's hook: ``intent`` is offered to the follower instead of being sent."""
        assert follow.confirm_seconds is not None
        offer = CopyOffer(
            intent.client_order_id,
            follow.follow_id,
            follow.user_id,
            fill.master_id,
            fill,
            intent.side,
            intent.quantity,
            intent.symbol,
            follow.confirm_seconds,
            self.clock() + timedelta(seconds=follow.confirm_seconds),
        )
        self._open[offer.offer_id] = _Open(offer, follow, fill_id)
        self.notify(offer)
        return CopyResult(
            follow.follow_id,
            follow.user_id,
            fill.master_id,
            offer.offer_id,
            fill,
            CopyStatus.OFFERED,
            side=intent.side,
            requested_quantity=intent.quantity,
        )

    def take(self, offer_id: str, user_id: int) -> _Open | None:
        """The open offer of ``user_id``, taken (answered once)."""
        entry = self._open.get(offer_id)
        if entry is None or entry.offer.user_id != user_id:
            return None
        return self._open.pop(offer_id)

    def take_due(self) -> list[_Open]:
        """The offers past their time, taken."""
        now = self.clock()
        return [self._open.pop(k) for k, entry in list(self._open.items()) if entry.offer.expires_at <= now]


class CopyConfirmations:
    """The follower's answers to offers: a confirmed copy is sent through the engine."""

    def __init__(self, offers: CopyOffers, engine: CopyEngine, journal: CopyJournal) -> None:
        self.offers = offers
        self.engine = engine
        self.journal = journal

    def pending(self) -> list[CopyOffer]:
        return self.offers.pending()

    async def confirm(self, user_id: int, offer_id: str) -> CopyResult:
        """The Copy button: the copy is sent through the engine's journaled path, with the
        follow's settings as they are now; a follow paused or stopped since sends nothing."""
        entry = await self._answer(user_id, offer_id)
        active = {f.follow_id: f for f in await self.journal.active_follows(entry.offer.master_id)}
        follow = active.get(entry.follow.follow_id)
        if follow is None:
            await self.engine.record_unconfirmed(entry.follow, entry.fill_id, offer_id, "the follow is not active")
            raise UserError("this follow is no longer active (paused or stopped); nothing was sent")
        return await self.engine.copy_confirmed(follow, entry.fill_id, offer_id)

    async def decline(self, user_id: int, offer_id: str) -> CopyResult:
        """The Skip button: recorded skipped, not confirmed."""
        entry = await self._answer(user_id, offer_id)
        return await self.engine.record_unconfirmed(entry.follow, entry.fill_id, offer_id, "you chose Skip")

    async def expire_due(self) -> list[CopyResult]:
        """Every offer past its time, recorded skipped (not confirmed)."""
        return [await self._expire(entry) for entry in self.offers.take_due()]

    async def _expire(self, entry: _Open) -> CopyResult:
        detail = f"no answer within {entry.offer.seconds} s"
        return await self.engine.record_unconfirmed(entry.follow, entry.fill_id, entry.offer.offer_id, detail)

    async def _answer(self, user_id: int, offer_id: str) -> _Open:
        """The open offer ``offer_id`` of ``user_id``, taken (answered once); ``UserError`` saying
        why when it is not open any more."""
        entry = self.offers.take(offer_id, user_id)
        if entry is not None:
            if entry.offer.expires_at > self.offers.clock():
                return entry
            await self._expire(entry)  # its expiry had not run yet: it is recorded now
            raise UserError(f"this copy offer expired after {entry.offer.seconds} s; nothing was sent")
        row = await self.journal.copy_order(offer_id)
        if row is None or row.user_id != user_id:
            raise UserError("this copy offer is no longer valid; nothing was sent")
        if row.status is CopyStatus.SKIPPED and row.reason_code == SkipReason.NOT_CONFIRMED.value:
            raise UserError(f"this copy offer was recorded as {row.reason}; nothing was sent")
        raise UserError("this copy offer was already confirmed; it is sent once")
