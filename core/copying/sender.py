"""The one door to a venue: the only code in core that sends, resends or cancels an order.

It owns, for every order of the process: the row's claim and the fence before each send, the
in-flight set (what this process is sending now), the concurrency slots, the look-ups after a
lost answer, the retries and their backoff. Its rule, once (docs/architecture.md, "The resend
rule"):

- **A resend only with proof that the first request can no longer execute.** Each request is
  signed with a deadline on the venue's clock (``Venue.send_window``: Binance's ``timestamp +
  recvWindow``), journaled by the fence before the request leaves. "No such order" is proof only
  from a look-up made once the venue's own clock (asked, never estimated) is past that deadline
  plus the venue's settle margin. Before that the copy stays unknown. A venue without a send
  window (Angel One: no duplicate guard, no deadline) never has such proof: its lost copies are
  looked up, never re-sent, and recorded failed once they stay absent (``unproven_after``).
- **"Already exists" is not a failure**: the order is looked up and followed.
- **A wait is not a licence**: an entry that gets too old while rate limits hold it back is not
  sent (the caller records it stale); exits are sent however late.
- **Fenced by the database**: every send, first or not, happens only after one conditional write
  confirms this process's claim on the row is still the current one (and, for a copy of a master
  fill, that its follow is still active). A sender whose claim was superseded stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from core.copying.config import EngineConfig
from core.errors import (
    DuplicateOrder,
    NotSent,
    OrderStatusUnknown,
    RateLimited,
    TemporaryError,
    VenueError,
)
from core.journal import Claim, CopyJournal, SendFence
from core.model import CopyStatus, OrderIntent, OrderReport
from core.observe import EngineObserver
from core.records import CopyOrderRecord
from core.venues.base import Venue

log = logging.getLogger(__name__)

#: a request the adapter refused to send (its deadline ran out before it could be signed) is
#: fenced and sent again at once this many times before the ordinary backoff applies
NOT_SENT_RETRIES = 3


# -- what a send or a settle comes to -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Placed:
    """The venue has the order: its first answer, or what a look-up found."""

    report: OrderReport


@dataclass(frozen=True, slots=True)
class Refused:
    """The venue refused it, or it is proven absent: nothing was placed."""

    error: VenueError


@dataclass(frozen=True, slots=True)
class Unknown:
    """It may have been placed and nothing proves otherwise yet: the row stays pending."""

    message: str


@dataclass(frozen=True, slots=True)
class NotOurs:
    """Not sent: another claim holds the row (another process settles it), it is no longer
    pending, or this process is sending it already."""

    why: str


@dataclass(frozen=True, slots=True)
class Stopped:
    """Not sent: the follow was stopped or paused before the send (the fence refused it)."""


@dataclass(frozen=True, slots=True)
class TooLate:
    """Not sent: an entry whose time ran out while it waited (rate limits, a lost answer)."""

    detail: str


SendOutcome = Placed | Refused | Unknown | NotOurs | Stopped | TooLate


@dataclass(frozen=True, slots=True)
class Absent:
    """A settle look-up's verdict: the venue does not have the order and never will (proven), or
    — on a venue without a send window — still does not, long after its send (``proven`` False)."""

    proven: bool
    never_sent: bool = False


SettleOutcome = Placed | Absent | Unknown


@dataclass(frozen=True, slots=True)
class SendRequest:
    venue: Venue
    credential_id: str
    intent: OrderIntent
    claim: Claim
    #: a copy of a master fill: fenced by its follow being active (a direct order is not: the
    #: close of a stopped follow must go out)
    copy: bool
    #: an entry: never sent after this moment (the engine's clock); ``None`` for exits
    not_after: datetime | None = None


class OrderSender:
    def __init__(
        self,
        journal: CopyJournal,
        config: EngineConfig,
        observer: EngineObserver,
        clock: Callable[[], datetime],
    ) -> None:
        self._journal = journal
        self._config = config
        self._observer = observer
        self._clock = clock
        self._order_slots = asyncio.Semaphore(config.max_concurrent_orders)
        self._account_slots: dict[str, asyncio.Semaphore] = {}
        #: client order ids this process is sending or settling now: nothing else of the process
        #: touches them meanwhile (other processes are kept out by the claim)
        self._in_flight: set[str] = set()

    def in_flight(self, client_order_id: str) -> bool:
        return client_order_id in self._in_flight

    def _slots(self, credential_id: str) -> asyncio.Semaphore:
        slots = self._account_slots.get(credential_id)
        if slots is None:
            slots = self._account_slots[credential_id] = asyncio.Semaphore(self._config.per_account_concurrency)
        return slots

    # -- claims -------------------------------------------------------------------------------

    async def claim(self, client_order_id: str) -> Claim | None:
        """Claim a pending row (``None``: another process's claim on it is current)."""
        return await self._journal.claim_pending(client_order_id)

    # -- sending ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def holding(self, client_order_id: str) -> Iterator[bool]:
        """Hold an order for one piece of work of this process (its send, its settling): yields
        ``False`` when another task of the process holds it already. Nothing else of the process
        touches a held order; other processes are kept out by the claim."""
        if client_order_id in self._in_flight:
            yield False
            return
        self._in_flight.add(client_order_id)
        try:
            yield True
        finally:
            self._in_flight.discard(client_order_id)

    async def send(self, request: SendRequest) -> SendOutcome:
        """Send a journaled order the caller holds (``holding``) under ``request.claim``, and
        follow any lost answer until the venue's answer or a proof; see the module's rule."""
        return await self._send(request)

    async def _send(self, request: SendRequest) -> SendOutcome:
        backoff = _Backoff(self._config.retry_delays)
        while True:
            if request.not_after is not None and self._clock() > request.not_after:
                return _too_late(self._clock() - request.not_after)
            outcome = await self._attempt(request, backoff)
            if not isinstance(outcome, float):
                return outcome
            await asyncio.sleep(outcome)

    async def _attempt(self, request: SendRequest, backoff: _Backoff) -> SendOutcome | float:
        """One fenced send: its outcome, or how long to wait before the next attempt."""
        venue, intent = request.venue, request.intent
        # the venue's order limits, a 429's pause or a 418's ban: waited for outside the slots (a ban
        # on one IP must not hold the slots the orders of other IPs need), the entry's age checked after
        await venue.ready_to_send()
        if request.not_after is not None and self._clock() > request.not_after:
            return _too_late(self._clock() - request.not_after, "while the exchange's rate limits held it back")
        async with self._order_slots, self._slots(request.credential_id):
            try:  # before the deadline is stamped: a slow preparation must not eat the window
                prepared = await venue.prepare_order(intent)
            except (RateLimited, NotSent, TemporaryError) as exc:  # nothing was sent
                return backoff.after(exc, venue.name, self._observer)
            except VenueError as exc:
                return Refused(exc)
            if request.not_after is not None and self._clock() > request.not_after:  # its reads waited
                return _too_late(self._clock() - request.not_after, "while the exchange's rate limits held it back")
            deadline = venue.send_deadline()
            fenced = await self._fence(request, deadline)
            if fenced is not None:
                return fenced
            try:
                return Placed(await venue.place_order(replace(prepared, send_deadline=deadline)))
            except DuplicateOrder:  # an open order with this id exists: it is ours
                found = await self._found(venue, intent)
                if isinstance(found, Placed):
                    return found
                return Unknown(f"the exchange holds an order with this id but did not show it: {found.message}")
            except (RateLimited, NotSent) as exc:  # refused before it reached the matching engine
                return backoff.after(exc, venue.name, self._observer)
            except (OrderStatusUnknown, TemporaryError) as exc:
                lost: VenueError = exc
            except VenueError as exc:
                return Refused(exc)
        proof = await self._prove_absent(venue, intent, deadline)  # outside the slots: it may take the window
        if not isinstance(proof, Absent):
            return proof
        return backoff.after(lost, venue.name, self._observer)  # proven never placed: may be sent again

    async def _fence(self, request: SendRequest, deadline: datetime | None) -> SendOutcome | None:
        """``None`` when the send may go out; else why not."""
        fence = SendFence(request.claim, deadline, follow_active=request.copy)
        if await self._journal.fence_send(fence):
            return None
        row = await self._journal.copy_order(request.claim.client_order_id)
        if row is not None and row.status is CopyStatus.PENDING and row.claim_epoch == request.claim.epoch:
            return Stopped()
        log.warning("copy %s is claimed by another process now: not sent here", request.claim.client_order_id)
        return NotOurs("claimed by another process")

    async def _prove_absent(self, venue: Venue, intent: OrderIntent, deadline: datetime | None) -> SendOutcome | Absent:
        """After a lost answer: the order as the venue has it, ``Absent`` once proven, or why not."""
        found = await self._found(venue, intent)
        if isinstance(found, Placed):
            return found
        window = venue.send_window
        if window is None or deadline is None:
            return Unknown(
                f"{venue.name} did not answer and does not show the order yet; it is never re-sent automatically "
                "there (nothing proves a lost request dead): it stays pending and is looked up again"
            )
        wait = (deadline + window.settle - venue.estimated_venue_time()).total_seconds()
        if wait > 0:
            await asyncio.sleep(min(wait, (window.length + window.settle).total_seconds()))
        verdict = await self._past_deadline(venue, deadline)
        if verdict is not None:
            return verdict
        found = await self._found(venue, intent)
        return found if isinstance(found, Placed) else Absent(proven=True)

    async def _past_deadline(self, venue: Venue, deadline: datetime) -> Unknown | None:
        """``None`` once the venue's own clock is past ``deadline`` and its settle margin."""
        window = venue.send_window
        assert window is not None
        try:
            now = await venue.venue_time()
        except VenueError as exc:
            return Unknown(f"the exchange's clock could not be read to prove the order absent: {exc}")
        if now <= deadline + window.settle:
            return Unknown("the exchange's clock is not past the request's deadline yet")
        return None

    async def _found(self, venue: Venue, intent: OrderIntent) -> Placed | Unknown:
        """The order by client order id; ``Unknown`` when the venue does not show it or cannot be asked."""
        try:
            report = await self.lookup(venue, intent.client_order_id, intent.symbol)
        except OrderStatusUnknown as exc:
            return Unknown(str(exc))
        return Unknown("not shown by the exchange") if report is None else Placed(report)

    async def lookup(self, venue: Venue, client_order_id: str, symbol: str) -> OrderReport | None:
        """The order by client order id, asked again on a read error; raises ``OrderStatusUnknown``
        when the venue cannot be asked."""
        for delay in (0, *self._config.retry_delays):
            if delay:
                assert delay is not None  # every path that reaches here set it
            await asyncio.sleep(delay)
            try:
                return await venue.fetch_order(client_order_id, symbol)
            except (TemporaryError, RateLimited, OrderStatusUnknown):
                continue
        raise OrderStatusUnknown(
            f"order {client_order_id} may have been placed and could not be looked up; it stays pending"
        )

    # -- settling -----------------------------------------------------------------------------

    async def settle(self, venue: Venue, row: CopyOrderRecord) -> SettleOutcome:
        """A pending copy this process holds and has claimed, whose sender is gone (a crash,
        another process, a lost answer): what the venue has, or whether its absence is proven."""
        found = await self._found_row(venue, row)
        if found is not None:
            return found
        if row.send_started_at is None:  # the fence never let a send out: nothing can exist
            return Absent(proven=True, never_sent=True)
        window = venue.send_window
        if window is None or row.send_deadline is None:
            if self._clock() - row.send_started_at >= self._config.unproven_after:
                return Absent(proven=False)
            return Unknown("sent, and not shown by the exchange yet")
        if venue.estimated_venue_time() <= row.send_deadline + window.settle:  # the next settle pass comes back
            return Unknown("its request may still reach the exchange: asked again after its deadline")
        verdict = await self._past_deadline(venue, row.send_deadline)
        if verdict is not None:
            return verdict
        found = await self._found_row(venue, row)
        return found if found is not None else Absent(proven=True)

    async def _found_row(self, venue: Venue, row: CopyOrderRecord) -> Placed | Unknown | None:
        try:
            report = await self.lookup(venue, row.client_order_id, row.symbol)
        except OrderStatusUnknown as exc:
            return Unknown(str(exc))
        return None if report is None else Placed(report)

    # -- orders that rest: reading, cancelling, protective orders -----------------------------

    async def cancel_and_read(
        self, venue: Venue, credential_id: str, client_order_id: str, symbol: str, *, cancel: bool
    ) -> tuple[OrderReport | None, bool]:
        """Cancel (with ``cancel``) and read an open order: its report and whether this call
        cancelled it. Raises ``VenueError``."""
        async with self._slots(credential_id):
            cancelled = cancel and await venue.cancel_order(client_order_id, symbol)
            return await venue.fetch_order(client_order_id, symbol), cancelled

    async def cancel(self, venue: Venue, credential_id: str, client_order_id: str, symbol: str) -> bool:
        """Cancel an order resting on the venue; ``False`` when it no longer rests."""
        async with self._slots(credential_id):
            return await venue.cancel_order(client_order_id, symbol)

    async def place_resting(self, venue: Venue, credential_id: str, intent: OrderIntent) -> OrderReport:
        """Place an order that rests on the venue under its own journal (a take-profit or
        stop-loss): sent once, never re-sent; a lost answer or "already exists" is looked up.
        Raises ``VenueError`` (``OrderStatusUnknown`` when it may rest there unseen)."""
        await venue.ready_to_send()
        async with self._order_slots, self._slots(credential_id):
            try:
                return await venue.place_order(intent)
            except (DuplicateOrder, OrderStatusUnknown, TemporaryError) as exc:
                lost = exc
        found = await self.lookup(venue, intent.client_order_id, intent.symbol)
        if found is None:
            if isinstance(lost, TemporaryError) and not isinstance(lost, OrderStatusUnknown):
                raise lost
            raise OrderStatusUnknown(f"{lost}; the order is not shown by the exchange yet")
        return found


class _Backoff:
    """The waits between attempts of one send. A request the adapter did not send at all (its
    deadline ran out before it could be signed) is tried again at once a few times first."""

    def __init__(self, delays: tuple[float, ...]) -> None:
        self._delays = iter(delays)
        self._unsent = NOT_SENT_RETRIES

    def after(self, error: VenueError, venue: str, observer: EngineObserver) -> Refused | float:
        """How long to wait after ``error`` (nothing of it executed), or ``Refused`` when no attempt is left."""
        if isinstance(error, NotSent) and self._unsent > 0:
            self._unsent -= 1
            return 0.0
        delay = next(self._delays, None)
        if delay is None:
            return Refused(error)
        if isinstance(error, RateLimited):
            observer.order_retried(venue, "rate_limited")
            return max(delay, error.retry_after or 0)
        observer.order_retried(
            venue, "unknown_outcome" if isinstance(error, (OrderStatusUnknown, TemporaryError)) else "not_sent"
        )
        return delay


def _too_late(late: timedelta, why: str = "") -> TooLate:
    detail = f"its time to be sent ran out {late.total_seconds():.0f} s before it could be sent"
    return TooLate(f"{detail} {why}" if why else detail)


def not_after(executed_at: datetime, max_age: timedelta) -> datetime:
    """The last moment an entry copying a fill executed at ``executed_at`` may be sent."""
    return executed_at + max_age
