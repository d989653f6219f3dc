"""The admin's ``/stats`` numbers: copies per day and by outcome, skip and failure reasons,
latency percentiles, follows by status and the master streams' health."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any

from core.errors import UserError
from core.model import CopyStatus, FollowStatus, utcnow
from core.reports.collaborators import Clock
from core.stats import percentile, utc_day
from core.stores import StatsRepository


@dataclass(frozen=True, slots=True)
class ListenerView:
    master_id: int
    running: bool
    fills: int
    restarts: int
    last_fill_at: datetime | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class AdminStats:
    since: datetime
    until: datetime
    copies_per_day: dict[date, dict[str, int]]  # day → status → count
    status_counts: dict[str, int]
    reason_counts: dict[str, dict[str, int]]  # status (skipped / failed) → reason code → count
    success_rate: float | None  # (filled + placed) / all copies
    skip_rate: float | None
    failure_rate: float | None
    latency_p50_ms: float | None  # nearest rank, over copies with a measured latency
    latency_p99_ms: float | None
    latency_samples: int
    follows: dict[str, int]  # by status
    active_follows: int
    listeners: tuple[ListenerView, ...]


@dataclass
class AdminStatsService:
    store: StatsRepository
    clock: Clock = utcnow

    async def admin_stats(self, *, days: int = 7, listener_health: Mapping[int, Any] | None = None) -> AdminStats:
        """Copies per day and by status over the last ``days`` UTC days (today included), skip and
        failure reasons, p50/p99 latency, follows by status and the master streams' health
        (pass ``App.listeners.health``)."""
        if not 1 <= days <= 90:
            raise UserError("the window is 1 to 90 days")
        now = self.clock()
        since = datetime.combine(utc_day(now) - timedelta(days=days - 1), dtime(0), tzinfo=UTC)
        events = await self.store.copy_events(since, now + timedelta(seconds=1))
        per_day: dict[date, dict[str, int]] = {}
        statuses: dict[str, int] = {}
        reasons: dict[str, dict[str, int]] = {}
        latencies: list[float] = []
        for event in events:
            status = event.status.value
            bucket = per_day.setdefault(utc_day(event.created_at), {})
            bucket[status] = bucket.get(status, 0) + 1
            statuses[status] = statuses.get(status, 0) + 1
            if event.status in (CopyStatus.SKIPPED, CopyStatus.FAILED):
                by_reason = reasons.setdefault(status, {})
                code = event.reason_code or "unspecified"
                by_reason[code] = by_reason.get(code, 0) + 1
            if event.latency_ms is not None and event.status in (CopyStatus.FILLED, CopyStatus.PLACED):
                latencies.append(event.latency_ms)
        latencies.sort()
        total = len(events)
        follows = await self.store.follow_status_counts()
        listeners = tuple(
            ListenerView(h.master_id, h.running, h.fills, h.restarts, h.last_fill_at, h.last_error)
            for _, h in sorted((listener_health or {}).items())
        )
        return AdminStats(
            since=since,
            until=now,
            copies_per_day=dict(sorted(per_day.items())),
            status_counts=statuses,
            reason_counts=reasons,
            success_rate=(statuses.get("filled", 0) + statuses.get("placed", 0)) / total if total else None,
            skip_rate=statuses.get("skipped", 0) / total if total else None,
            failure_rate=statuses.get("failed", 0) / total if total else None,
            latency_p50_ms=percentile(latencies, 50),
            latency_p99_ms=percentile(latencies, 99),
            latency_samples=len(latencies),
            follows=follows,
            active_follows=follows.get(FollowStatus.ACTIVE.value, 0),
            listeners=listeners,
        )
