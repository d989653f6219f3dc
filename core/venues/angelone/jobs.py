"""Angel One's periodic work: session refresh and the daily instrument-list reload."""

from __future__ import annotations

from datetime import time, timedelta

from core.venues.angelone.accounts import AngelOneAccounts
from core.venues.angelone.constants import INSTRUMENTS_RELOAD_AT_IST, IST, SESSION_REFRESH_EVERY
from core.venues.driver import JobScheduler


def register_jobs(
    scheduler: JobScheduler,
    accounts: AngelOneAccounts,
    *,
    refresh_every: timedelta = SESSION_REFRESH_EVERY,
    instruments_reload_at_ist: time = INSTRUMENTS_RELOAD_AT_IST,
) -> None:
    """Add the session refresh job and the daily instrument-list reload to an ``AsyncIOScheduler``.

    The refresh job is cheap when nothing is due (no request is made), hence the short interval: it
    catches the daily logout within minutes. The scrip master is republished early each morning.
    """
    scheduler.add_job(
        accounts.refresh_due_sessions,
        "interval",
        seconds=refresh_every.total_seconds(),
        id="angelone.refresh_sessions",
        replace_existing=True,
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        accounts.instruments.refresh,
        "cron",
        hour=instruments_reload_at_ist.hour,
        minute=instruments_reload_at_ist.minute,
        timezone=IST,
        id="angelone.reload_instruments",
        replace_existing=True,
        max_instances=1,
        coalesce=True,
    )
