"""Statistics, PnL, charts, copy-log exports, daily summaries and the admin's numbers: one
service per use case, each handed only what it needs.

- ``refresh.MasterStatsRefresher``: keeps the master statistics current (the scheduler's job, and
  on demand before a ranking, a master page or a PnL report).
- ``masters.MasterStatsService``: ``/masters`` (ranking) and a master's page and chart.
- ``snapshots.EquitySnapshotService``: daily equity of masters and follow accounts.
- ``pnl.PnlService``: ``/pnl``, the follower's PnL and its chart.
- ``exports.ExportService``: ``/export`` and the admin's export of the copy log.
- ``admin.AdminStatsService``: the admin's ``/stats``.
- ``summaries.DailySummaryService``: the daily summary's setting and content.

``build_reports`` wires them around one refresher and one clock; ``core.services.Services``
exposes them to the bot and ``core.scheduler`` runs their periodic jobs.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.model import utcnow
from core.reports.admin import AdminStatsService
from core.reports.collaborators import Clock, VenueProvider
from core.reports.exports import ExportService
from core.reports.masters import MasterStatsService
from core.reports.pnl import PnlService
from core.reports.refresh import SETTLE_SECONDS, MasterStatsRefresher
from core.reports.snapshots import EquitySnapshotService
from core.reports.summaries import DailySummaryService
from core.stores import AccountRepository, StatsRepository


@dataclass(frozen=True, slots=True)
class Reports:
    """The report services of one process, sharing one refresher (its locks and its record of
    when each master was last brought up to date)."""

    refresher: MasterStatsRefresher
    masters: MasterStatsService
    snapshots: EquitySnapshotService
    pnl: PnlService
    exports: ExportService
    admin: AdminStatsService
    summaries: DailySummaryService


def build_reports(
    store: StatsRepository,
    accounts: AccountRepository,
    venues: VenueProvider | None = None,
    *,
    clock: Clock = utcnow,
    settle_seconds: float = SETTLE_SECONDS,
) -> Reports:
    """``settle_seconds``: fills younger than this wait for the next statistics pass (0 in tests,
    to count fills at once)."""
    refresher = MasterStatsRefresher(store, clock, settle_seconds=settle_seconds)
    return Reports(
        refresher=refresher,
        masters=MasterStatsService(store, accounts, refresher, clock),
        snapshots=EquitySnapshotService(store, venues, clock),
        pnl=PnlService(store, venues, refresher, clock),
        exports=ExportService(store, accounts, clock),
        admin=AdminStatsService(store, clock),
        summaries=DailySummaryService(store, clock),
    )
