"""Copies whose outcome is unknown — a lost answer, a crash mid-send, another process's send —
settled by asking their venue under this process's claim: recorded as the venue has them, sent
as planned once the venue is proven not to have them, never sent twice."""

from __future__ import annotations

import time
from dataclasses import replace

from core.copying.path import OnPath, OrderPath
from core.copying.recorder import TrackedReports
from core.copying.results import Subject, journaled_intent
from core.copying.sender import Absent, Placed
from core.errors import VaultError, VenueError
from core.journal import Claim, ReportedOrder
from core.model import CopyResult, CopyStatus, Fill, OrderState, Skip, SkipReason
from core.records import CopyOrderRecord
from core.venues.base import Venue


class Settler(OnPath):
    def __init__(self, path: OrderPath, tracked: TrackedReports) -> None:
        super().__init__(path)
        self._tracked = tracked

    async def settle_owned(self, credential_id: str | None, cid: str) -> CopyResult | None:
        """Settle one pending copy unless this process is working on it or another process's claim
        on it is current; ``None`` when it was not ours to settle or is no longer pending."""
        sender = self._dispatcher.sender
        with sender.holding(cid) as held:
            if not held:
                return None
            claim = await sender.claim(cid)
            if claim is None:  # another process sends or settles it
                return None
            row = await self._journal.copy_order(cid)  # read under the claim: the last send's fence is in it
            if row is None or row.status is not CopyStatus.PENDING:
                return None
            return await self._settle(credential_id, row, claim)

    async def _settle(self, credential_id: str | None, row: CopyOrderRecord, claim: Claim) -> CopyResult:
        fill = await self._recorder.fill_of(row.follow_id, row.fill_id, row)
        subject = Subject(row.follow_id, row.user_id, fill.master_id, fill, row.client_order_id, row.origin)
        base = _pending_result(subject, row)
        if credential_id is None:  # the follow's key was removed: its venue cannot be asked
            failed = subject.failed(
                "your exchange key was removed before this order's outcome was known: it may have been "
                "placed, check your exchange account (copytrade can no longer follow it)",
                "key_removed",
                state=OrderState.REJECTED,
            )
            return await self._recorder.closed_unsent(subject, _sized(failed, row))
        try:
            venue = await self._venues.venue_for(credential_id)
        except (VenueError, VaultError) as exc:
            return _with_error(base, f"still pending: {exc}")
        settled = await self._dispatcher.sender.settle(venue, row)
        if isinstance(settled, Placed):
            return await self._tracked.record(ReportedOrder(settled.report), fill) or base
        if not isinstance(settled, Absent):
            return _with_error(base, f"still pending: {settled.message}")
        if not settled.proven:
            follow = await self._follows.follow(row.follow_id)
            if follow is None:
                result = subject.failed("not shown by the exchange long after it was sent; not re-sent", "not_received")
                return await self._recorder.closed_unsent(subject, _sized(result, row))
            return await self._dispatcher.not_received(follow, subject, None, venue, time.monotonic())
        return await self._send_interrupted(venue, fill, row, claim, subject)

    async def _send_interrupted(
        self, venue: Venue, fill: Fill, row: CopyOrderRecord, claim: Claim, subject: Subject
    ) -> CopyResult:
        """A journaled order the venue is proven not to have, its sender gone: a copy of a master
        fill is sent now, as planned — the follow's later fills waited behind it, so the position
        it was sized against has not moved — unless the follow has stopped since or it is an entry
        gone stale (recorded with the reason). An order the copier decided itself is not re-sent:
        the job that decided it decides again."""
        follow = await self._follows.follow(row.follow_id)
        age = (self._clock() - fill.executed_at).total_seconds()
        if row.fill_id is None or follow is None or row.side is None or not row.requested_quantity:
            why = "the follow is no longer active" if follow is None else "the job that decided it decides again"
            result = subject.failed(
                f"interrupted before the exchange received it; not sent since {why}",
                "interrupted",
                state=OrderState.REJECTED,
            )
            return await self._recorder.closed_unsent(subject, _sized(result, row))
        if not row.reduce_only and age > self._config.max_fill_age.total_seconds():
            skip = Skip(SkipReason.STALE_FILL, f"{age:.0f}s old when the interrupted copy could be sent again")
            return await self._recorder.closed_unsent(subject, _sized(subject.skipped(skip), row))
        try:
            derivative = (await venue.market(row.symbol)).derivative
        except VenueError as exc:
            return _with_error(_pending_result(subject, row), f"still pending: {exc}")
        intent = journaled_intent(follow, fill, row, row.side, row.requested_quantity, derivative=derivative)
        not_after = None if row.reduce_only else fill.executed_at + self._config.max_fill_age
        return await self._dispatcher.send(
            follow, subject, venue, intent, claim, time.monotonic(), not_after=not_after, held=True
        )


def _pending_result(subject: Subject, row: CopyOrderRecord) -> CopyResult:
    return _sized(subject.pending(), row)


def _sized(result: CopyResult, row: CopyOrderRecord) -> CopyResult:
    return replace(result, side=row.side, requested_quantity=row.requested_quantity, origin=row.origin)


def _with_error(result: CopyResult, error: str) -> CopyResult:
    return replace(result, error=error)
