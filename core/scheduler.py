"""Periodic work on the service's own event loop (APScheduler ``AsyncIOScheduler``)."""

from __future__ import annotations

import logging

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from copytrade.core.engine import CopyEngine

log = logging.getLogger(__name__)


def build_scheduler(engine: CopyEngine, *, settle_every_seconds: int = 60) -> AsyncIOScheduler:
    """Jobs: settle copies left pending by a lost exchange answer (asks the venue by client id)."""
    scheduler = AsyncIOScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30})

    async def settle_pending() -> None:
        settled = await engine.resume()
        if settled:
            log.info("settled %d pending copies", len(settled))

    scheduler.add_job(settle_pending, "interval", seconds=settle_every_seconds, id="settle-pending")
    return scheduler
