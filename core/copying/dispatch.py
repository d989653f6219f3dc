"""A journaled order handed to the sender, and what the sender came to recorded: the one path
from "decided and journaled" to "recorded and told" for copies, re-sends, re-prices and direct
orders alike."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime

from core.copying.recorder import Recorder
from core.copying.results import Subject
from core.copying.sender import (
    Absent,
    NotOurs,
    OrderSender,
    Placed,
    Refused,
    SendRequest,
    Stopped,
    TooLate,
    Unknown,
)
from core.errors import NotAdmitted, VenueError
from core.journal import Claim, CopyJournal
from core.model import CopyResult, CopyStatus, FollowSettings, OrderIntent, OrderOrigin, Skip, SkipReason
from core.observe import EngineObserver
from core.records import CopyOrderRecord
from core.venues.base import Venue


class NotReceived(VenueError):
    """A copy whose answer was lost, on a venue where nothing proves a lost request dead, that the
    venue still does not show long after: recorded failed, never re-sent automatically."""


class Dispatcher:
    def __init__(self, journal: CopyJournal, sender: OrderSender, recorder: Recorder, observer: EngineObserver) -> None:
        self._journal = journal
        self.sender = sender
        self._recorder = recorder
        self._observer = observer

    async def send(
        self,
        follow: FollowSettings,
        subject: Subject,
        venue: Venue,
        intent: OrderIntent,
        claim: Claim,
        received: float,
        *,
        not_after: datetime | None = None,
        held: bool = False,
    ) -> CopyResult:
        """Send under ``claim`` and record the outcome (``held``: the caller holds the order
        already, ``OrderSender.holding``)."""
        if not held:
            with self.sender.holding(intent.client_order_id) as holding:
                if not holding:
                    return self._recorder.unknown(subject, intent, None, tell=False)
                return await self.send(follow, subject, venue, intent, claim, received, not_after=not_after, held=True)
        request = SendRequest(
            venue,
            follow.credential_id,
            intent,
            claim,
            copy=subject.origin is OrderOrigin.COPY,
            not_after=not_after,
        )
        outcome = await self.sender.send(request)
        if isinstance(outcome, Placed):
            self._observer.copy_acknowledged(venue.name, time.monotonic() - received)
            return await self._recorder.acknowledged(follow, subject, intent, outcome.report, received)
        if isinstance(outcome, Refused) and isinstance(outcome.error, NotAdmitted):  # the venue's rules: nothing sent
            skip = Skip(outcome.error.reason, str(outcome.error))
            return await self._recorder.closed_unsent(subject, subject.skipped(skip, intent))
        if isinstance(outcome, Refused):
            return await self._recorder.failed(follow, subject, intent, outcome.error, received)
        if isinstance(outcome, Unknown):
            return self._recorder.unknown(subject, intent, outcome.message, tell=True)
        if isinstance(outcome, NotOurs):
            return self._recorder.unknown(subject, intent, None, tell=False)
        if isinstance(outcome, Stopped):
            skip = Skip(SkipReason.FOLLOW_STOPPED, "not sent: the follow is no longer active")
            return await self._recorder.closed_unsent(subject, subject.skipped(skip, intent))
        assert isinstance(outcome, TooLate)
        skip = Skip(SkipReason.STALE_FILL, outcome.detail)
        return await self._recorder.closed_unsent(subject, subject.skipped(skip, intent))

    async def resume(
        self,
        follow: FollowSettings,
        subject: Subject,
        venue: Venue,
        intent: OrderIntent,
        row: CopyOrderRecord,
        received: float,
        *,
        not_after: datetime | None = None,
    ) -> CopyResult:
        """A pending row journaled by an earlier run (or another process) for the order about to be
        sent: claimed, looked up, and sent only when the venue is proven not to have it."""
        with self.sender.holding(row.client_order_id) as held:
            if row.status is not CopyStatus.PENDING or not held:
                return replace(subject.from_row(row), origin=subject.origin)
            claim = await self.sender.claim(row.client_order_id)
            if claim is None:  # another process's send may be in flight
                return self._recorder.unknown(subject, intent, None, tell=False)
            claimed = await self._journal.copy_order(row.client_order_id)  # as the last sender left it
            assert claimed is not None
            settled = await self.sender.settle(venue, claimed)
            if isinstance(settled, Placed):
                return await self._recorder.acknowledged(follow, subject, intent, settled.report, received)
            if isinstance(settled, Absent) and settled.proven:
                return await self.send(follow, subject, venue, intent, claim, received, not_after=not_after, held=True)
            if isinstance(settled, Absent):
                return await self.not_received(follow, subject, intent, venue, received)
            return self._recorder.unknown(subject, intent, settled.message, tell=False)

    async def not_received(
        self, follow: FollowSettings, subject: Subject, intent: OrderIntent | None, venue: Venue, received: float
    ) -> CopyResult:
        error = NotReceived(
            f"{venue.name} never showed this order after its answer was lost; it was not re-sent automatically "
            "(a second order could double it): check your order book"
        )
        if intent is None:
            result = subject.failed(str(error), "not_received")
            return await self._recorder.closed_unsent(subject, result)
        return await self._recorder.failed(follow, subject, intent, error, received, code="not_received")
