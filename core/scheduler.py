"""Periodic work on the service's own event loop (APScheduler ``AsyncIOScheduler``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from core.engine import CopyEngine
from core.reports import Reports
from core.reports.refresh import MasterStatsRefresher
from core.reports.snapshots import EquitySnapshotService
from core.reports.summaries import DailySummary, DailySummaryService
from core.tracking import OrderStreams

log = logging.getLogger(__name__)


def build_scheduler(
    engine: CopyEngine,
    reports: Reports,
    *,
    settle_every_seconds: int = 15,
    track_every_seconds: int = 10,
    stats_every_seconds: int = 60,
    streams: OrderStreams | None = None,
) -> AsyncIOScheduler:
    """Jobs: settle copies left pending by a lost exchange answer (asks the venue by client id);
    follow every open copy order to its end (``CopyEngine.track``: fills after the first answer,
    cancellations, the follows' maximum resting time) and keep ``streams`` open for the accounts
    with open copies; the statistics jobs of ``add_stats_jobs``. Neither touches an order whose
    send is still awaiting its answer."""
    scheduler = AsyncIOScheduler(
        timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}
    )

    async def settle_pending() -> None:
        settled = await engine.resume()
        if settled:
            log.info("settled %d pending copies", len(settled))

    async def track_orders() -> None:
        changed = await engine.track()
        if changed:
            log.info("%d open copy orders changed on their venues", len(changed))
        if streams is not None:
            await streams.refresh()

    scheduler.add_job(settle_pending, "interval", seconds=settle_every_seconds, id="settle-pending")
    scheduler.add_job(track_orders, "interval", seconds=track_every_seconds, id="track-orders")
    add_stats_jobs(scheduler, reports.refresher, reports.snapshots, every_seconds=stats_every_seconds)
    return scheduler


def add_stats_jobs(
    scheduler: AsyncIOScheduler,
    refresher: MasterStatsRefresher,
    snapshots: EquitySnapshotService,
    *,
    every_seconds: int = 60,
) -> None:
    """Master statistics brought up to date every ``every_seconds``; equity of every master and
    follow account snapshotted hourly at :55 (each replaces that day's row, so the day keeps its
    last value and a restart never loses a day)."""

    async def update_statistics() -> None:
        counted = await refresher.update_all_master_stats()
        if counted:
            log.debug("statistics: %d new master fills counted", counted)

    async def snapshot_equity() -> None:
        report = await snapshots.snapshot_equity()
        log.info(
            "equity snapshots: %d masters, %d follows, %d failed", report.masters, report.follows, len(report.failed)
        )

    scheduler.add_job(update_statistics, "interval", seconds=every_seconds, id="stats-update")
    scheduler.add_job(snapshot_equity, "cron", minute=55, id="equity-snapshots", misfire_grace_time=1800)


def add_daily_summary_job(
    scheduler: AsyncIOScheduler, summaries: DailySummaryService, deliver: Callable[[DailySummary], Awaitable[object]]
) -> None:
    """For the bot: every minute, each daily summary that is due is handed to ``deliver``
    (a failure to deliver one never stops the others)."""

    async def send_summaries() -> None:
        for summary in await summaries.due_daily_summaries():
            try:
                await deliver(summary)
            except Exception:
                log.exception("daily summary for user %s not delivered", summary.user_id)

    scheduler.add_job(send_summaries, "cron", minute="*", id="daily-summaries")
