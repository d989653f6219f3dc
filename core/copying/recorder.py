"""Outcomes journaled and told once. Whoever records an outcome notifies it: a skip or a failure
when its row is new, a venue report when it won the journal's compare-and-set
(``CopyJournal.record_reports``)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from core.copying.config import FollowPaused, Notify
from core.copying.follows import FollowBook
from core.copying.queues import Unknowns
from core.copying.results import Subject, direct_fill, draft, from_transition, journaled_fill, unsent_draft
from core.errors import AuthenticationError, InvalidOrder, PermissionDenied, VaultError, VenueError, error_code
from core.journal import CopyJournal, PositionChange, ReportedOrder, Transition
from core.model import (
    CopyResult,
    CopyStatus,
    Fill,
    FollowSettings,
    MarketRules,
    OrderIntent,
    OrderReport,
    OrderState,
    Skip,
    SkipReason,
)
from core.observe import EngineObserver
from core.records import CopyOrderRecord

#: told after a follow's real position moved (take-profit / stop-loss upkeep, the loss limit)
PositionChanged = Callable[[FollowSettings, str], Awaitable[None]]


class Recorder:
    def __init__(
        self,
        journal: CopyJournal,
        notify: Notify,
        observer: EngineObserver,
        follows: FollowBook,
        unknowns: Unknowns,
    ) -> None:
        self._journal = journal
        self._notify = notify
        self._observer = observer
        self._follows = follows
        self._unknowns = unknowns

    def notify(self, event: CopyResult | FollowPaused) -> None:
        self._notify(event)

    async def skipped(
        self,
        follow: FollowSettings,
        subject: Subject,
        fill_id: int | None,
        skip: Skip,
        intent: OrderIntent | None = None,
    ) -> CopyResult:
        """A copy (or, with ``intent``, a decided order: its side and size kept) recorded as not sent."""
        row = unsent_draft(
            follow,
            subject.fill,
            fill_id,
            subject.client_order_id,
            CopyStatus.SKIPPED,
            skip.reason.value,
            str(skip),
            origin=subject.origin,
            side=intent.side if intent is not None else None,
            quantity=intent.quantity if intent is not None else None,
        )
        existing = await self._journal.begin_copies([row])
        result = subject.skipped(skip, intent)
        if subject.client_order_id not in existing:
            self._notify(result)
        return result

    async def dry_run(
        self, follow: FollowSettings, subject: Subject, fill_id: int, intent: OrderIntent, rules: MarketRules
    ) -> CopyResult:
        """Sized and recorded, never sent; the simulated position moves as if filled at the master's
        price so that later exits are sized the same way they would be live."""
        skip = Skip(SkipReason.DRY_RUN, f"would {intent.side.value} {intent.quantity} {rules.base}")
        fill = subject.fill
        existing = await self._journal.begin_copies([draft(follow, fill, fill_id, intent, CopyStatus.SKIPPED, skip)])
        result = subject.skipped(skip, intent)
        if intent.client_order_id not in existing:
            signed = intent.quantity * intent.side.sign
            change = PositionChange(
                follow.follow_id, fill.symbol, signed, fill.price, simulated=True, position_side=intent.position_side
            )
            await self._journal.finish_copies([result], [change])
            self._notify(result)
        return result

    async def failed_unsent(
        self,
        follow: FollowSettings,
        subject: Subject,
        fill_id: int | None,
        message: str,
        received: float,
        exc: Exception | None = None,
    ) -> CopyResult:
        """A copy that failed before anything was sent (no venue, no market, an internal error)."""
        code = error_code(exc) if exc is not None else "internal_error"
        row = unsent_draft(
            follow,
            subject.fill,
            fill_id,
            subject.client_order_id,
            CopyStatus.FAILED,
            code,
            message,
            origin=subject.origin,
        )
        existing = await self._journal.begin_copies([row])
        result = subject.failed(message, code, latency_ms=(time.monotonic() - received) * 1000)
        if subject.client_order_id in existing:  # an earlier attempt recorded this order: its row is the truth
            return result
        await self._journal.finish_copies([result], [])
        self._notify(result)
        await self.pause_if_key_rejected(follow, exc)
        return result

    async def failed(
        self,
        follow: FollowSettings,
        subject: Subject,
        intent: OrderIntent,
        error: VenueError,
        received: float,
        *,
        code: str | None = None,
    ) -> CopyResult:
        """A journaled order the venue refused (or that is proven never placed)."""
        result = subject.failed(
            str(error),
            code or error_code(error),
            intent,
            latency_ms=(time.monotonic() - received) * 1000,
            state=OrderState.REJECTED,
        )
        await self._journal.finish_copies([result], [])
        self._notify(result)
        await self.pause_if_key_rejected(follow, error)
        return result

    async def closed_unsent(self, subject: Subject, result: CopyResult) -> CopyResult:
        """A pending row ended without a send (stopped, stale, interrupted): stored and told."""
        await self._journal.finish_copies([result], [])
        self._notify(result)
        return result

    def unknown(self, subject: Subject, intent: OrderIntent | None, message: str | None, *, tell: bool) -> CopyResult:
        """Sent, outcome unknown here: the row stays pending, and the follow's later fills in its
        symbol wait until it is settled."""
        self._unknowns.add((subject.follow_id, subject.fill.symbol), subject.client_order_id)
        result = subject.pending(intent, error=message)
        if tell:
            self._notify(result)
        return result

    async def acknowledged(
        self, follow: FollowSettings, subject: Subject, intent: OrderIntent, report: OrderReport, received: float
    ) -> CopyResult:
        """Record the first answer to a send (or to the look-up that found the order)."""
        nothing_filled = report.state.is_terminal and report.filled_quantity == 0
        if nothing_filled and report.state is not OrderState.REJECTED and intent.time_in_force == "IOC":
            skip = Skip(SkipReason.SLIPPAGE, f"nothing filled at or better than the guard price {intent.price} (IOC)")
            reported = ReportedOrder(report, (time.monotonic() - received) * 1000, reason=str(skip))
            transition = (await self._journal.record_reports([reported]))[0]
            result = replace(subject.skipped(skip, intent, state=report.state), venue_order_id=report.venue_order_id)
            if transition is not None:
                self._notify(result)
            return result
        if nothing_filled and report.state is OrderState.REJECTED:
            rejected = InvalidOrder(
                report.reason or f"the exchange rejected or cancelled order {report.venue_order_id}"
            )
            return await self.failed(follow, subject, intent, rejected, received)
        reported = ReportedOrder(report, (time.monotonic() - received) * 1000)
        started = time.monotonic()
        transition = (await self._journal.record_reports([reported]))[0]
        self._observer.journal_committed("report", time.monotonic() - started)
        if transition is None:  # recorded before by a report that won: the row is the truth
            row = await self._journal.copy_order(intent.client_order_id)
            assert row is not None
            return subject.from_row(row)
        result = from_transition(transition, subject.fill, latency_ms=reported.latency_ms)
        if notable(transition):
            self._notify(result)
        return result

    async def tracked(self, reported: ReportedOrder, fill: Fill | None = None) -> tuple[CopyResult, Transition] | None:
        """Record a report found by settling or tracking (not by the sender): told when it won the
        compare-and-set; ``None`` when it changed nothing (then nothing else is read: a tracking
        pass over unchanged orders costs one write attempt)."""
        transition = (await self._journal.record_reports([reported]))[0]
        if transition is None:
            return None
        if fill is None:
            row = await self._journal.copy_order(transition.client_order_id)
            assert row is not None  # it was just recorded
            fill = await self.fill_of(transition.follow_id, transition.fill_id, row)
        result = from_transition(transition, fill)
        if notable(transition):
            self._notify(result)
        return result, transition

    async def fill_of(self, follow_id: int, fill_id: int | None, row: CopyOrderRecord) -> Fill:
        """The master fill a copy order copies, or the stand-in of an order the copier placed."""
        fill_row = await self._journal.fill(fill_id) if fill_id is not None else None
        if fill_row is not None:
            return journaled_fill(fill_row)
        master_id = await self._journal.master_id_of_follow(follow_id)
        return direct_fill(
            master_id if master_id is not None else 0,
            row.client_order_id,
            row.origin,
            row.symbol,
            row.side,
            row.requested_quantity,
            row.master_price,
        )

    async def pause_if_key_rejected(self, follow: FollowSettings, exc: Exception | None) -> None:
        if isinstance(exc, (AuthenticationError, PermissionDenied, VaultError)):
            reason = f"the exchange refused your key ({exc})"
            if await self._journal.pause_follow(follow.follow_id, reason):
                self._follows.invalidate(follow.master_id)
                self._notify(FollowPaused(follow.follow_id, follow.user_id, reason))


def notable(transition: Transition) -> bool:
    """Followers hear of an order's first answer and of its end; fills in between, and a
    commission that came after the end, are recorded (and move the ledger) silently."""
    if transition.state_before is OrderState.PENDING:
        return True
    return transition.state.is_terminal and not (transition.state_before and transition.state_before.is_terminal)


class TrackedReports:
    """Reports found by settling or tracking, recorded, told, and followed by the position upkeep
    when they moved the ledger."""

    def __init__(self, recorder: Recorder, follows: FollowBook, position_changed: PositionChanged) -> None:
        self._recorder = recorder
        self._follows = follows
        self._position_changed = position_changed

    async def record(self, reported: ReportedOrder, fill: Fill | None = None) -> CopyResult | None:
        recorded = await self._recorder.tracked(reported, fill)
        if recorded is None:
            return None
        result, transition = recorded
        if transition.ledger_quantity:
            follow = await self._follows.follow(transition.follow_id)
            if follow is not None:
                await self._position_changed(follow, transition.symbol)
        return result
