"""Daily equity snapshots of every master and every follow's account: the base of the masters'
percentages and equity-based Sharpe ratio. The scheduler takes them hourly; each replaces that
day's row, so a day keeps its last value."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from decimal import Decimal

from core.model import utcnow
from core.reports.collaborators import Clock, VenueProvider
from core.stats import utc_day
from core.stores import StatsRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SnapshotReport:
    masters: int
    follows: int
    failed: tuple[str, ...]  # "master 3: ..." / "follow 7: ..."


@dataclass
class EquitySnapshotService:
    store: StatsRepository
    venues: VenueProvider | None
    clock: Clock = utcnow
    concurrency: int = 8  # accounts asked at once

    async def snapshot_equity(self) -> SnapshotReport:
        """Store today's equity of every master and every follow's account (one venue call per
        account). A later call the same day replaces that day's values."""
        venues = self.venues
        if venues is None:
            return SnapshotReport(0, 0, ("no venues configured",))
        now = self.clock()
        day = utc_day(now)
        masters, follows = await self.store.snapshot_targets()
        credentials = sorted({c for _, c in masters} | {c for _, c in follows})
        limit = asyncio.Semaphore(self.concurrency)
        equities: dict[str, Decimal | Exception] = {}

        async def fetch(credential_id: str) -> None:
            async with limit:
                try:
                    venue = await venues.venue_for(credential_id)
                    equities[credential_id] = await asyncio.wait_for(venue.equity(), 30)
                except Exception as exc:  # one account's failure never stops the others
                    equities[credential_id] = exc

        await asyncio.gather(*(fetch(c) for c in credentials))
        failed: list[str] = []
        stored = {"master": 0, "follow": 0}
        for scope, targets in (("master", masters), ("follow", follows)):
            for subject_id, credential_id in targets:
                equity = equities.get(credential_id)
                if isinstance(equity, Decimal):
                    await self.store.save_snapshot(scope, subject_id, day, equity, now)
                    stored[scope] += 1
                else:
                    failed.append(f"{scope} {subject_id}: {type(equity).__name__}: {equity}")
        if failed:
            log.warning("equity snapshots: %d failed (%s)", len(failed), "; ".join(failed[:5]))
        return SnapshotReport(stored["master"], stored["follow"], tuple(failed))
