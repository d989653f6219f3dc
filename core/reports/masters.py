"""The master statistics behind ``/masters`` (the ranking) and a master's page (every figure and
a chart). Read from the state ``MasterStatsRefresher`` keeps, brought up to date first.

- **Master figures are gross**: master fills carry no fee.
- **Percentages** (PnL %, drawdown %) need the master's equity, so they come from equity
  snapshots and are ``None`` until a snapshot exists; they are fractions (0.05 = 5 %).
- **Sharpe ratio** (annualized with √365, zero risk-free rate) from daily returns of the equity
  snapshots when there are at least three snapshots; otherwise from the daily realized PnL
  between the first and the last trading day (days without a close count as zero), which equals
  the Sharpe ratio of returns on a constant capital. ``sharpe_source`` says which.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from core.charts import Series, render_line_chart
from core.errors import NotFound, UserError
from core.model import MasterStatus, utcnow
from core.records import DailyPnlRecord, MasterStatsRecord, MasterView
from core.reports.collaborators import Clock
from core.reports.refresh import MasterStatsRefresher
from core.stats import (
    ZERO,
    StatsState,
    cumulative,
    daily_returns,
    dense_daily,
    max_drawdown_pct,
    profit_factor,
    sharpe_ratio,
    utc_day,
    win_rate,
)
from core.stores import AccountRepository, StatsRepository


@dataclass(frozen=True, slots=True)
class MasterStatistics:
    """One master's figures for ``/masters`` and its detail page. Money in the master's quote
    currency, gross; ratios as ``Decimal`` fractions except ``sharpe`` (a float)."""

    master_id: int
    name: str
    description: str
    venue: str
    status: MasterStatus
    followers: int  # active follows
    fills: int
    round_trips: int
    wins: int
    losses: int
    win_rate: Decimal | None  # wins / round trips
    profit_factor: Decimal | None  # None: no losing round trip yet
    realized_pnl: Decimal
    realized_pnl_pct: Decimal | None  # of the first equity snapshot
    pnl_30d: Decimal
    pnl_30d_pct: Decimal | None  # of the equity 30 days ago
    max_drawdown: Decimal  # on the cumulative realized PnL curve
    max_drawdown_pct: Decimal | None  # of the equity snapshots
    sharpe: float | None
    sharpe_source: str | None  # "equity_snapshots" or "daily_realized_pnl"
    avg_holding: timedelta | None
    trading_days: int  # UTC days with at least one fill
    open_positions: tuple[tuple[str, Decimal], ...]  # the journal's net positions
    equity: Decimal | None  # latest snapshot
    equity_day: date | None
    first_fill_at: datetime | None
    last_fill_at: datetime | None
    untracked_closes: int  # closes of positions opened before the journal saw them
    fees_included: bool = False  # master fills carry no fee: every master figure is gross


#: ``/masters`` sort keys: attribute, and whether a higher value ranks first
RANK_KEYS: dict[str, tuple[str, bool]] = {
    "followers": ("followers", True),
    "pnl": ("realized_pnl", True),
    "pnl_pct": ("realized_pnl_pct", True),
    "pnl_30d": ("pnl_30d", True),
    "pnl_30d_pct": ("pnl_30d_pct", True),
    "win_rate": ("win_rate", True),
    "profit_factor": ("profit_factor", True),
    "drawdown": ("max_drawdown", False),
    "drawdown_pct": ("max_drawdown_pct", False),
    "sharpe": ("sharpe", True),
    "trades": ("round_trips", True),
    "holding": ("avg_holding", True),
    "trading_days": ("trading_days", True),
}


@dataclass
class MasterStatsService:
    store: StatsRepository
    accounts: AccountRepository
    refresher: MasterStatsRefresher
    clock: Clock = utcnow

    async def master_statistics(self, views: Sequence[MasterView], *, refresh: bool = True) -> list[MasterStatistics]:
        ids = [v.id for v in views]
        if refresh:
            await self.refresher.refresh(ids)
        stats = await self.store.master_stats(ids)
        daily = await self.store.master_daily(ids)
        snapshots = await self.store.snapshots("master", ids)
        positions = await self.store.master_open_positions(ids)
        today = utc_day(self.clock())
        return [_statistics(v, stats.get(v.id), daily[v.id], snapshots[v.id], positions[v.id], today) for v in views]

    async def ranked_masters(
        self,
        sort_by: str = "followers",
        *,
        include_hidden: bool = False,
        descending: bool | None = None,
        refresh: bool = True,
    ) -> list[MasterStatistics]:
        """Listed masters with their statistics, best first by ``sort_by`` (a ``RANK_KEYS`` key;
        masters without a value for it come last)."""
        if sort_by not in RANK_KEYS:
            raise UserError(f"cannot sort by {sort_by!r}; choose one of {', '.join(RANK_KEYS)}")
        attribute, higher_first = RANK_KEYS[sort_by]
        reverse = higher_first if descending is None else descending
        items = await self.master_statistics(
            await self.accounts.masters(include_hidden=include_hidden), refresh=refresh
        )
        known = [s for s in items if getattr(s, attribute) is not None]
        unknown = [s for s in items if getattr(s, attribute) is None]
        known.sort(key=lambda s: s.master_id)
        known.sort(key=lambda s: s.followers, reverse=True)
        known.sort(key=lambda s: getattr(s, attribute), reverse=reverse)
        unknown.sort(key=lambda s: (-s.followers, s.master_id))
        return known + unknown

    async def master_detail(self, master_id: int, *, include_hidden: bool = False) -> MasterStatistics:
        for view in await self.accounts.masters(include_hidden=include_hidden):
            if view.id == master_id:
                return (await self.master_statistics([view]))[0]
        raise NotFound("no such master (it may have been retired)")

    async def master_chart(self, master_id: int, *, days: int = 90, include_hidden: bool = False) -> bytes:
        """A small PNG of the master's equity (snapshots) or, without two snapshots yet, its
        cumulative realized PnL, over the last ``days`` days."""
        detail = await self.master_detail(master_id, include_hidden=include_hidden)
        today = utc_day(self.clock())
        since = today - timedelta(days=days - 1)
        snapshots = (await self.store.snapshots("master", [master_id], since))[master_id]
        if len(snapshots) >= 2:
            return await render_line_chart(f"{detail.name}: equity", [Series("equity", snapshots)])
        daily = (await self.store.master_daily([master_id]))[master_id]
        before = sum((d.realized_pnl for d in daily if d.day < since), ZERO)
        inside = {d.day: d.realized_pnl for d in daily if d.day >= since}
        first = min(inside) if inside else today
        points = cumulative(dense_daily(inside, first, today), before) if inside else []
        return await render_line_chart(f"{detail.name}: realized PnL (gross)", [Series("realized PnL", points)])


def _statistics(
    view: MasterView,
    row: MasterStatsRecord | None,
    daily: Sequence[DailyPnlRecord],
    snapshots: list[tuple[date, Decimal]],
    positions: list[tuple[str, Decimal]],
    today: date,
) -> MasterStatistics:
    row = row or StatsState()  # nothing counted yet
    window_start = today - timedelta(days=29)
    pnl_30d = sum((d.realized_pnl for d in daily if d.day >= window_start), ZERO)
    base = snapshots[0][1] if snapshots else None
    before_window = [e for d, e in snapshots if d <= window_start]
    in_window = [e for d, e in snapshots if d >= window_start]
    base_30d = before_window[-1] if before_window else (in_window[0] if in_window else None)
    sharpe, source = None, None
    if len(snapshots) >= 3:
        sharpe, source = sharpe_ratio(daily_returns(snapshots)), "equity_snapshots"
    elif daily:
        values = dense_daily({d.day: d.realized_pnl for d in daily}, daily[0].day, daily[-1].day)
        sharpe, source = sharpe_ratio([float(v) for _, v in values]), "daily_realized_pnl"
    if sharpe is None:
        source = None
    return MasterStatistics(
        master_id=view.id,
        name=view.name,
        description=view.description,
        venue=view.venue,
        status=view.status,
        followers=view.followers,
        fills=row.fills,
        round_trips=row.round_trips,
        wins=row.wins,
        losses=row.losses,
        win_rate=win_rate(row.wins, row.round_trips),
        profit_factor=profit_factor(row.gross_profit, row.gross_loss),
        realized_pnl=row.realized_pnl,
        realized_pnl_pct=row.realized_pnl / base if base and base > 0 else None,
        pnl_30d=pnl_30d,
        pnl_30d_pct=pnl_30d / base_30d if base_30d and base_30d > 0 else None,
        max_drawdown=row.max_drawdown,
        max_drawdown_pct=max_drawdown_pct([e for _, e in snapshots]) if len(snapshots) >= 2 else None,
        sharpe=sharpe,
        sharpe_source=source,
        avg_holding=timedelta(seconds=float(row.holding_seconds / row.round_trips)) if row.round_trips else None,
        trading_days=sum(1 for d in daily if d.fills > 0),
        open_positions=tuple(positions),
        equity=snapshots[-1][1] if snapshots else None,
        equity_day=snapshots[-1][0] if snapshots else None,
        first_fill_at=row.first_fill_at,
        last_fill_at=row.last_fill_at,
        untracked_closes=row.untracked_closes,
    )
