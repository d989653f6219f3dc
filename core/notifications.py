"""The engine publishes events here and moves on; a consumer (the Telegram sender, the console)
drains them at its own pace. Publishing never blocks or fails trading."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from core.confirmations import CopyOffer
from core.copying.config import FollowPaused
from core.model import CopyResult, SkipReason
from core.risk_service import DriftFound, RiskNotice

log = logging.getLogger(__name__)

Event = CopyResult | FollowPaused | DriftFound | RiskNotice | CopyOffer

#: skips a follower can do nothing about (an exit of a position they hold no copy of, their own
#: filters, a fill too late to copy, a follow they stopped): grouped into a digest, not pushed one
#: by one; a skip they can act on (minimum size, maximum position, slippage, equity) still is, and
#: so is a copy offer's end (it answers their Skip button, or says the offer ran out)
DIGESTED_SKIPS = frozenset(
    {
        SkipReason.NO_POSITION_TO_EXIT,
        SkipReason.SYMBOL_NOT_ALLOWED,
        SkipReason.SYMBOL_BLOCKED,
        SkipReason.ORDER_TYPE_FILTERED,
        SkipReason.SIDE_FILTERED,
        SkipReason.UNKNOWN_SYMBOL,
        SkipReason.STALE_FILL,
        SkipReason.FOLLOW_STOPPED,
    }
)


def digested(event: Event) -> bool:
    """Whether ``event`` waits for the digest instead of being pushed on its own."""
    return isinstance(event, CopyResult) and event.skip is not None and event.skip.reason in DIGESTED_SKIPS


class SkipDigest:
    """The digested skips per user, until the next digest takes them."""

    def __init__(self) -> None:
        self._held: dict[int, list[CopyResult]] = {}

    def hold(self, event: CopyResult) -> None:
        self._held.setdefault(event.user_id, []).append(event)

    def take(self) -> dict[int, list[CopyResult]]:
        held, self._held = self._held, {}
        return held


class NotificationQueue:
    def __init__(self, maxsize: int = 100_000) -> None:
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self._delivering = 0
        self.dropped = 0

    def publish(self, event: Event) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            # The result is in the journal (/history shows it); only the push message is lost.
            self.dropped += 1
            log.warning("notification queue full: %d notifications dropped so far", self.dropped)

    def pending(self) -> int:
        """The events not delivered yet: queued, or in a consumer's hands right now (a stop that
        waits for none pending does not cancel a delivery half-way, in the middle of its reads)."""
        return self._queue.qsize() + self._delivering

    def take_all(self) -> list[Event]:
        """Everything queued now, without waiting (a consumer that delivers in batches)."""
        events = []
        while not self._queue.empty():
            events.append(self._queue.get_nowait())
        return events

    async def get(self) -> Event:
        return await self._queue.get()

    async def consume(self, handler: Callable[[Event], Awaitable[None]]) -> None:
        """Deliver events forever; a failing delivery is logged and the next one goes on."""
        while True:
            event = await self._queue.get()
            self._delivering += 1
            try:
                await handler(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivering a notification failed")
            finally:
                self._delivering -= 1
