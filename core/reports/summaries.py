"""The daily summary: each user who turned it on gets yesterday's copies, realized PnL and skips
and failures with reasons, once a day at the UTC minute they chose."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal

from core.errors import UserError
from core.model import CopyStatus, utcnow
from core.records import DailySummarySettingRecord
from core.reports.collaborators import Clock
from core.stats import ZERO, replay, utc_day
from core.stores import StatsRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DayActivity:
    """One user's copies on one UTC day: the numbers of the daily summary."""

    day: date
    copies: int
    statuses: dict[str, int]  # status value → copies
    per_master: dict[str, int]  # master name → copies
    realized: Decimal  # net of fees
    fees: Decimal
    skipped: dict[str, int]  # reason code → copies, in the order first seen
    failed: dict[str, int]


@dataclass(frozen=True, slots=True)
class DailySummary:
    """A summary due for delivery: yesterday's activity of one user who has a chat."""

    user_id: int
    telegram_id: int
    day: date  # the UTC day summarized (yesterday)
    activity: DayActivity


@dataclass
class DailySummaryService:
    store: StatsRepository
    clock: Clock = utcnow

    async def daily_summary_setting(self, user_id: int) -> DailySummarySettingRecord:
        return await self.store.summary_setting(user_id)

    async def set_daily_summary(
        self, user_id: int, *, enabled: bool, at: str | dtime | None = None
    ) -> DailySummarySettingRecord:
        """Turn the user's daily summary on or off; ``at`` is the UTC time ("HH:MM" or a ``time``)."""
        minute = None
        if at is not None:
            if isinstance(at, str):
                try:
                    hours, minutes = at.strip().split(":")
                    at = dtime(int(hours), int(minutes))
                except ValueError:
                    raise UserError("the time is HH:MM in UTC, e.g. 08:30") from None
            minute = at.hour * 60 + at.minute
        return await self.store.set_summary(user_id, enabled=enabled, minute_of_day=minute)

    async def day_activity(self, user_id: int, day: date) -> DayActivity:
        """The day's copies, realized PnL (net of fees) and skips and failures with reasons."""
        start = datetime.combine(day, dtime(0), tzinfo=UTC)
        rows = await self.store.user_copy_events(user_id, start, start + timedelta(days=1))
        realized = ZERO
        fees = ZERO
        for follow in await self.store.follows_of(user_id):
            assert follow.id is not None
            ledger = replay(await self.store.follow_executions(follow.id, simulated=False))
            realized += ledger.realized_by_day.get(day, ZERO)
            fees += ledger.fees_by_day.get(day, ZERO)
        counts: dict[str, int] = {}
        skips: dict[str, int] = {}
        failures: dict[str, int] = {}
        per_master: dict[str, int] = {}
        for copy, master_name in rows:
            counts[copy.status.value] = counts.get(copy.status.value, 0) + 1
            per_master[master_name] = per_master.get(master_name, 0) + 1
            target = (
                skips if copy.status is CopyStatus.SKIPPED else failures if copy.status is CopyStatus.FAILED else None
            )
            if target is not None:
                key = copy.reason_code or "unspecified"
                target[key] = target.get(key, 0) + 1
        return DayActivity(day, len(rows), counts, per_master, realized - fees, fees, skips, failures)

    async def due_daily_summaries(self, now: datetime | None = None) -> list[DailySummary]:
        """Summaries of yesterday for every user whose time has come today, each claimed so that
        it is produced once per day (at most once: a summary the bot then fails to deliver is not
        retried). The bot sends them; call it every minute."""
        now = now or self.clock()
        today = utc_day(now)
        out = []
        for user_id, telegram_id in await self.store.summaries_due(today, now.hour * 60 + now.minute):
            if not await self.store.claim_summary(user_id, today):
                continue
            yesterday = today - timedelta(days=1)
            try:
                activity = await self.day_activity(user_id, yesterday)
            except Exception:
                log.exception("daily summary of user %s failed", user_id)
                continue
            out.append(DailySummary(user_id, telegram_id, yesterday, activity))
        return out
