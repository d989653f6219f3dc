"""Bringing a master's statistics up to date: the one writer of ``master_stats``,
``master_stats_lots`` and ``master_daily_pnl``. The scheduler calls it every minute; the ranking,
the master pages and the follower PnL call ``refresh`` before they read.

- **Incremental**: each pass folds the journal's fills with an id above the last one counted into
  the stored state (compare-and-swap on ``master_stats.last_fill_id``), so nothing is recomputed
  from scratch and two processes never count a fill twice.
- **Settling**: fills younger than ``settle_seconds`` wait for the next pass, so a fill whose
  transaction commits late (two processes) is not jumped over.
- **On demand at most every ``refresh_interval`` seconds per master**: a busy ``/masters`` does not
  turn into one database pass per request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.model import utcnow
from core.reports.collaborators import Clock
from core.stats import apply_fills, utc_day
from core.stores import StatsRepository

log = logging.getLogger(__name__)

#: fills younger than this wait for the next pass (a late-committing transaction's fill is not jumped over)
SETTLE_SECONDS = 2.0


@dataclass
class MasterStatsRefresher:
    store: StatsRepository
    clock: Clock = utcnow
    settle_seconds: float = SETTLE_SECONDS
    refresh_interval: float = 5.0  # on-demand refreshes of one master at most this often
    _locks: dict[int, asyncio.Lock] = field(default_factory=dict, repr=False)
    _refreshed: dict[int, datetime] = field(default_factory=dict, repr=False)

    async def update_master_stats(
        self, master_id: int, *, batch_size: int = 2000, max_batches: int | None = None
    ) -> int:
        """Count the master's fills journaled since the last update; returns how many."""
        lock = self._locks.setdefault(master_id, asyncio.Lock())
        async with lock:
            cutoff = utcnow() - timedelta(seconds=self.settle_seconds)  # wall clock, like received_at
            processed = batches = conflicts = 0
            while max_batches is None or batches < max_batches:
                last = await self.store.last_fill_id(master_id)
                fetched = await self.store.fills_after(master_id, last, batch_size)
                fills = []
                for fill, received_at in fetched:
                    if received_at > cutoff:
                        break
                    fills.append(fill)
                if not fills:
                    break
                state = await self.store.load_state(master_id, {utc_day(f.executed_at) for f in fills})
                if state.last_fill_id != last or not await self.store.save_state(
                    master_id, last, apply_fills(state, fills)
                ):
                    conflicts += 1  # another updater got there first: reload and go on
                    if conflicts > 5:
                        log.warning("statistics of master %s: too many concurrent updates, will retry later", master_id)
                        break
                    continue
                processed += len(fills)
                batches += 1
                if len(fills) < len(fetched) or len(fetched) < batch_size:
                    break
            self._refreshed[master_id] = self.clock()
            return processed

    async def update_all_master_stats(self) -> int:
        """Every master (the scheduler's job); a failure of one never stops the others."""
        total = 0
        for master_id in await self.store.master_ids():
            try:
                total += await self.update_master_stats(master_id)
            except Exception:
                log.exception("statistics of master %s could not be updated", master_id)
        return total

    async def recompute_master_stats(self, master_id: int) -> int:
        """Forget the stored statistics and count every fill again (repairs; tests)."""
        lock = self._locks.setdefault(master_id, asyncio.Lock())
        async with lock:
            await self.store.reset_state(master_id)
        return await self.update_master_stats(master_id)

    async def refresh(self, master_ids: Sequence[int]) -> None:
        """Before a read: update each master not updated in the last ``refresh_interval`` seconds.
        A failure is logged and the stored figures are used (stale figures beat no page)."""
        now = self.clock()
        for master_id in master_ids:
            last = self._refreshed.get(master_id)
            if last is None or (now - last).total_seconds() >= self.refresh_interval:
                try:
                    await self.update_master_stats(master_id)
                except Exception:  # stale figures beat no page
                    log.exception("statistics of master %s could not be refreshed", master_id)
