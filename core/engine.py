"""``CopyEngine``: the front of the copier (``core.copying``): journal → plan per follow → send
concurrently → record → notify.

Guarantees:
- **At most once.** The fill is journaled (unique per venue trade id) before anything is sent;
  each copy order has a deterministic client order id and a journal row written before it is
  sent. A duplicate delivery places nothing; an order whose answer was lost is sent again only
  once the venue is proven not to have it and never to take it (``core.copying.sender``).
- **Never silently dropped.** Every follow gets a recorded result for every leg: placed,
  filled, skipped with a reason, or failed with the venue's answer.
- **Isolation.** Each follow is planned and sent in its own task, bounded per account; a slow
  or failing follower delays only its own next order in the same symbol (orders of one follow
  and symbol stay in fill order so that an exit is sized after the entry it closes).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.copying.copier import Copier, MasterEquity, OfferCopy
from core.copying.path import OrderPath
from core.copying.recorder import PositionChanged, TrackedReports
from core.copying.results import WAITING, journaled_fill
from core.copying.settler import Settler
from core.copying.tracker import Tracker
from core.journal import JournalEntry, PendingCopy
from core.model import CopyResult, CopyStatus, Fill, FollowSettings, MasterEvent, MasterOrderEvent
from core.venues.base import OrderChange

#: how often a stop looks again at its follow's copies another process holds (each look asks the venue)
QUIESCE_POLL_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class FillOutcome:
    fill: Fill
    duplicate: bool = False
    ignored: bool = False  # not an execution (NEW, CANCELED, ...)
    results: tuple[CopyResult, ...] = ()


async def _no_upkeep(follow: FollowSettings, symbol: str) -> None:
    """No position upkeep: the copier runs without risk controls."""


class CopyEngine:
    def __init__(
        self,
        path: OrderPath,
        *,
        master_equity: MasterEquity | None = None,
        after_position_change: PositionChanged | None = None,
        offer_copy: OfferCopy | None = None,
    ) -> None:
        """``path``: the order path the risk controls share; ``after_position_change``: told after a
        follow's real position moved (take-profit / stop-loss upkeep, the loss limit);
        ``offer_copy``: manual confirmation — a copy of a follow with ``confirm_seconds`` is handed
        there, sized, instead of being sent."""
        self.path = path
        self.journal = path.journal
        self.config = path.config
        upkeep = after_position_change or _no_upkeep
        tracked = TrackedReports(path.recorder, path.follows, upkeep)
        self._settler = Settler(path, tracked)
        self._tracker = Tracker(path, tracked)
        self._copier = Copier(
            path, self._settler, position_changed=upkeep, master_equity=master_equity, offer_copy=offer_copy
        )
        self._master_locks: dict[int, asyncio.Lock] = {}

    # -- master fills -------------------------------------------------------------------------

    async def on_event(self, event: MasterEvent) -> FillOutcome | list[CopyResult]:
        """What a master's stream yields: an execution is copied, an order change followed."""
        if isinstance(event, MasterOrderEvent):
            return await self.on_master_order(event)
        return await self.on_fill(event)

    async def on_master_order(
        self, event: MasterOrderEvent, accept: Callable[[str], bool] | None = None
    ) -> list[CopyResult]:
        """The master's order was cancelled, expired or amended: its copies still resting follow it
        (``Tracker.follow_master_order``; with ``accept``, only on the follower accounts it takes).
        Fills of the master the stream yielded before it are planned first: their copies are
        followed too."""
        async with self._master_locks.setdefault(event.master_id, asyncio.Lock()):
            pass  # a fill handed over before this event holds the lock until its copies are queued
        return await self._tracker.follow_master_order(event, accept)

    async def on_fill(self, fill: Fill) -> FillOutcome:
        """Copy one master execution to every active follow of that master."""
        if not fill.status.is_execution:
            return FillOutcome(fill, ignored=True)
        received = time.monotonic()
        planning = self._copier.planning
        async with self._master_locks.setdefault(fill.master_id, asyncio.Lock()):
            started = time.monotonic()
            entry = await self.journal.journal_fill(fill)
            self.path.observer.journal_committed("fill", time.monotonic() - started)
            if entry is None:
                return FillOutcome(fill, duplicate=True)
            planning.add(entry.fill_id)
            try:
                tasks = await self._copier.start_copies(fill, entry, received, fresh=True)
            except BaseException:
                planning.discard(entry.fill_id)
                raise
        try:
            results = [result for batch in await asyncio.gather(*tasks) for result in batch]
            if not any(r.error_code == WAITING for r in results):
                await self.journal.mark_planned(entry.fill_id)
            for result in results:
                if result.error_code != WAITING:
                    self.path.observer.copy_outcome(result.status.value, result.reason_code)
        finally:
            planning.discard(entry.fill_id)
        return FillOutcome(fill, results=tuple(results))

    def invalidate_follows(self, master_id: int | None = None) -> None:
        """Settings changed: the next fill reloads follows (all masters when ``None``)."""
        self.path.follows.invalidate(master_id)

    async def resume(self) -> list[CopyResult]:
        """After a restart, and periodically: copy the fills not fully planned (a crash mid
        fan-out; fills that waited), in fill order — a pending copy of such a fill is looked up and
        sent only when the venue is proven not to have it — then settle every other copy left
        pending. Copies another live process holds are left to it, and a follow's later fills wait
        behind outcomes still unknown. Nothing is sent twice."""
        sender, unknowns = self.path.sender, self.path.unknowns
        pending = [p for p in await self.journal.pending_copies() if not sender.in_flight(p.client_order_id)]
        for copy in pending:  # until settled, they make the follow's later fills wait
            unknowns.add((copy.follow_id, copy.symbol), copy.client_order_id)
        results: list[CopyResult] = []
        replans: list[tuple[int, list[asyncio.Task[list[CopyResult]]]]] = []
        for journaled in await self.journal.unplanned_fills():
            assert journaled.id is not None
            if journaled.id in self._copier.planning:  # on_fill is planning it right now
                continue
            entry = JournalEntry(journaled.id, journaled.master_position_before)
            # every fill's copies queued now, in fill order: each follow's queue keeps that order
            tasks = await self._copier.start_copies(journaled_fill(journaled), entry, time.monotonic())
            replans.append((journaled.id, tasks))
        for fill_id, tasks in replans:
            replanned = [r for batch in await asyncio.gather(*tasks) for r in batch]
            results += [r for r in replanned if r.error_code != WAITING]
            if not any(r.error_code == WAITING for r in replanned):
                await self.journal.mark_planned(fill_id)
        done = {r.client_order_id for r in results}
        by_follow: dict[int, list[PendingCopy]] = {}
        for copy in pending:
            if copy.client_order_id not in done:
                by_follow.setdefault(copy.follow_id, []).append(copy)

        async def settle_follow(copies: list[PendingCopy]) -> list[CopyResult]:
            settled_here = []
            for copy in copies:  # one follow's in order; the follows side by side
                settled = await self._settler.settle_owned(copy.credential_id, copy.client_order_id)
                if settled is not None:
                    if settled.status is not CopyStatus.PENDING:
                        unknowns.settled((copy.follow_id, copy.symbol), copy.client_order_id)
                    settled_here.append(settled)
            return settled_here

        for batch in await asyncio.gather(*(settle_follow(copies) for copies in by_follow.values())):
            results += batch
        return results

    async def copy_journaled(self, fill_id: int, accept: Callable[[str], bool]) -> list[CopyResult] | None:
        """Copy a fill another process journaled (an executor shard of a scaled-out deployment) to
        the follows whose follower account ``accept`` takes; ``None`` when the journal has no such
        fill. Safe to run again for the same fill after a crash anywhere: a copy already recorded
        is not sent again, one journaled as pending is settled before any send."""
        row = await self.journal.fill(fill_id)
        if row is None:
            return None
        entry = JournalEntry(fill_id, row.master_position_before)
        tasks = await self._copier.start_copies(journaled_fill(row), entry, time.monotonic(), accept)
        results = [r for batch in await asyncio.gather(*tasks) for r in batch]
        for pending in await self.journal.pending_copies():
            if pending.fill_id != fill_id or pending.credential_id is None or not accept(pending.credential_id):
                continue
            settled = await self._settler.settle_owned(pending.credential_id, pending.client_order_id)
            if settled is not None:
                results.append(settled)
        return results

    async def warm_up(self, accept: Callable[[str], bool] | None = None) -> None:
        """At start: open and warm every active follow's venue before the first fill needs it;
        with ``accept``, only the follower accounts it takes (an executor shard's)."""
        credential_ids = await self.journal.active_follow_credentials()
        if accept is not None:
            credential_ids = [c for c in credential_ids if accept(c)]
        await self.path.venues.open_many(credential_ids, warm_up=True)

    async def drain(self) -> None:
        """Wait for every copy in flight (shutdown)."""
        await self.path.queues.drain()

    async def quiesce(self, follow_id: int) -> list[str]:
        """After a follow was stopped (the fence lets no new copy of it out, in any process): wait
        for its work in flight here, then settle its copies still pending — waiting, for at most
        ``stop_settle_timeout``, for those another process holds — so that what it holds is known
        before anything closes it. Returns the client order ids still unknown."""
        await self.path.queues.drain(follow_id)
        give_up = time.monotonic() + self.config.stop_settle_timeout.total_seconds()
        while True:
            pending = [p for p in await self.journal.pending_copies() if p.follow_id == follow_id]
            for copy in pending:
                await self._settler.settle_owned(copy.credential_id, copy.client_order_id)
            unknown = []
            for copy in pending:
                row = await self.journal.copy_order(copy.client_order_id)
                if row is not None and row.status is CopyStatus.PENDING:
                    unknown.append(copy.client_order_id)
            if not unknown or time.monotonic() >= give_up:
                return unknown
            await asyncio.sleep(QUIESCE_POLL_SECONDS)

    # -- manual confirmation ------------------------------------------------------------------

    async def copy_confirmed(self, follow: FollowSettings, fill_id: int, cid: str) -> CopyResult:
        return await self._copier.copy_confirmed(follow, fill_id, cid)

    async def record_unconfirmed(self, follow: FollowSettings, fill_id: int, cid: str, detail: str) -> CopyResult:
        return await self._copier.record_unconfirmed(follow, fill_id, cid, detail)

    # -- following orders to their end ----------------------------------------------------------

    async def track(self, accept: Callable[[str], bool] | None = None) -> list[CopyResult]:
        return await self._tracker.track(accept)

    async def on_order_change(self, credential_id: str, change: OrderChange) -> CopyResult | None:
        return await self._tracker.on_order_change(credential_id, change)
