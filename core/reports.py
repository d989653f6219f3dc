"""Statistics, PnL, charts, copy-log exports, daily summaries and the admin's numbers: the use
cases behind ``/masters`` (ranking and detail), ``/pnl``, ``/export``, the daily summary and the
admin's ``/stats``. ``Services`` exposes them to the bot; the scheduler keeps the master
statistics and the equity snapshots current.

Decisions (see also ``core/stats.py``):
- **Master statistics are incremental**: ``update_master_stats`` folds the journal's fills with
  an id above the last one counted into the stored state (``master_stats``, ``master_stats_lots``,
  ``master_daily_pnl``) — a scheduler job every minute, and on demand before a ranking or a
  detail page (at most every few seconds per master). Fills younger than ``settle_seconds`` wait
  for the next pass, so a fill whose transaction commits late (two processes) is not jumped over.
- **Master figures are gross**: master fills carry no fee.
- **Percentages** (PnL %, drawdown %) need the master's equity, so they come from equity
  snapshots and are ``None`` until a snapshot exists; they are fractions (0.05 = 5 %).
- **Sharpe ratio** (annualized with √365, zero risk-free rate) from daily returns of the equity
  snapshots when there are at least three snapshots; otherwise from the daily realized PnL
  between the first and the last trading day (days without a close count as zero), which equals
  the Sharpe ratio of returns on a constant capital. ``sharpe_source`` says which.
- **Follower PnL** is replayed from the follow's executed copy orders (fees included) with the
  same average-cost rule as ``follow_positions``; unrealized PnL is the follow's open copied
  positions (``follow_positions``) at a mark price: the follow's venue's current price
  (``Venue.price``; the paper exchange's price table), else the last journaled master fill
  price of the symbol (``mark_source`` says which).
  ``ledger_realized`` is ``follow_positions.realized_pnl`` (all time, gross), which also includes
  positions closed by ``/stop`` (those closes are not copy orders, so the replay misses them).
- **Tracking difference** = the follower's realized PnL (net of fees) − the master's realized
  PnL over the same days (from the later of the period's start and the follow's creation) ×
  the follow's scale: the coefficient for coefficient sizing, otherwise the ratio of follower to
  master quantity over the follow's filled copies; negative when the follow copies in reverse.
  It shows what rounding, skips, slippage and fees cost (or gained) the follower.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from typing import Any, Protocol

from core.charts import Series, render_line_chart
from core.errors import NotFound, UserError
from core.export import ExportFile, build_export
from core.model import CopyStatus, FollowStatus, MasterStatus, SizingMode, utcnow
from core.records import DailyPnlRecord, DailySummarySettingRecord, FollowRecord, MasterStatsRecord, MasterView
from core.stats import (
    ZERO,
    Period,
    StatsState,
    apply_fills,
    cumulative,
    daily_returns,
    dense_daily,
    max_drawdown_pct,
    parse_period,
    percentile,
    profit_factor,
    replay,
    sharpe_ratio,
    unrealized,
    utc_day,
    win_rate,
)
from core.stores import AccountRepository, StatsRepository
from core.venues.base import Venue

log = logging.getLogger(__name__)


class VenueProvider(Protocol):
    async def venue_for(self, credential_id: str) -> Venue: ...


# -- what the bot receives ----------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class OpenPositionView:
    symbol: str
    quantity: Decimal  # signed
    entry_price: Decimal | None
    mark_price: Decimal | None
    mark_source: str | None  # "venue" or "last_fill"
    unrealized: Decimal | None
    simulated: bool = False


@dataclass(frozen=True, slots=True)
class FollowPnl:
    follow_id: int
    master_id: int
    master_name: str
    account_label: str
    status: FollowStatus
    dry_run: bool
    period: Period
    realized: Decimal  # in the period, net of fees
    realized_gross: Decimal
    fees: Decimal
    unrealized: Decimal  # open copied positions now (the known part)
    unrealized_complete: bool  # False when some position had no mark price
    total: Decimal  # realized + unrealized
    positions: tuple[OpenPositionView, ...]
    ledger_realized: Decimal  # all time, gross, from follow_positions (includes /stop closes)
    simulated_realized: Decimal | None  # dry-run copies in the period (None: never in dry run)
    master_realized: Decimal  # the master's realized PnL over the same days, gross
    scale: Decimal | None
    expected: Decimal | None  # master_realized × scale
    tracking_difference: Decimal | None  # realized − expected
    copies: Mapping[str, int]  # copy orders in the period by status
    series: tuple[tuple[date, Decimal], ...]  # cumulative realized (net) per day
    master_series: tuple[tuple[date, Decimal], ...]  # cumulative master realized × scale per day


@dataclass(frozen=True, slots=True)
class PnlReport:
    user_id: int
    period: Period
    follows: tuple[FollowPnl, ...]
    realized: Decimal
    fees: Decimal
    unrealized: Decimal
    total: Decimal
    expected: Decimal | None  # None when no follow has a scale
    tracking_difference: Decimal | None


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


@dataclass(frozen=True, slots=True)
class SnapshotReport:
    masters: int
    follows: int
    failed: tuple[str, ...]  # "master 3: ..." / "follow 7: ..."


# -- the service ---------------------------------------------------------------------------------


@dataclass
class StatsService:
    store: StatsRepository
    accounts: AccountRepository
    venues: VenueProvider | None = None
    clock: Callable[[], datetime] = utcnow
    settle_seconds: float = 2.0  # fills younger than this wait for the next pass
    refresh_interval: float = 5.0  # on-demand refreshes of one master at most this often
    snapshot_concurrency: int = 8
    _locks: dict[int, asyncio.Lock] = field(default_factory=dict, repr=False)
    _refreshed: dict[int, datetime] = field(default_factory=dict, repr=False)

    # -- master statistics: incremental update ---------------------------------------------------

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

    async def _refresh(self, master_ids: Sequence[int]) -> None:
        now = self.clock()
        for master_id in master_ids:
            last = self._refreshed.get(master_id)
            if last is None or (now - last).total_seconds() >= self.refresh_interval:
                try:
                    await self.update_master_stats(master_id)
                except Exception:  # stale figures beat no page
                    log.exception("statistics of master %s could not be refreshed", master_id)

    # -- master statistics: reading -----------------------------------------------------------------

    async def master_statistics(self, views: Sequence[MasterView], *, refresh: bool = True) -> list[MasterStatistics]:
        ids = [v.id for v in views]
        if refresh:
            await self._refresh(ids)
        stats = await self.store.master_stats(ids)
        daily = await self.store.master_daily(ids)
        snapshots = await self.store.snapshots("master", ids)
        positions = await self.store.master_open_positions(ids)
        today = utc_day(self.clock())
        return [
            self._statistics(v, stats.get(v.id), daily[v.id], snapshots[v.id], positions[v.id], today) for v in views
        ]

    def _statistics(
        self,
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

    # -- equity snapshots ------------------------------------------------------------------------

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
        limit = asyncio.Semaphore(self.snapshot_concurrency)
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

    # -- follower PnL --------------------------------------------------------------------------------

    async def follow_pnl(self, user_id: int, *, period: str | None = None, follow_id: int | None = None) -> PnlReport:
        """The user's PnL over ``period`` (``parse_period``: 7d, 30d, 3m, 1y, today, all; default
        30d), per follow (only ``follow_id`` when given, which must be the user's) and in total."""
        now = self.clock()
        span = parse_period(period, now)
        follows = await self.store.follows_of(user_id)
        if follow_id is not None:
            follows = [f for f in follows if f.id == follow_id]
            if not follows:
                raise NotFound("no such follow")
        await self._refresh(sorted({f.master_id for f in follows}))
        names = await self.store.master_names(sorted({f.master_id for f in follows}))
        labels = await self.store.labels([f.credential_id for f in follows if f.credential_id])
        items = [await self._follow_pnl(f, span, names, labels, now) for f in follows]
        scaled = [i.expected for i in items if i.expected is not None]
        realized = sum((i.realized for i in items), ZERO)
        expected = sum(scaled, ZERO) if scaled else None
        tracked = [i.realized for i in items if i.expected is not None]
        return PnlReport(
            user_id=user_id,
            period=span,
            follows=tuple(items),
            realized=realized,
            fees=sum((i.fees for i in items), ZERO),
            unrealized=sum((i.unrealized for i in items), ZERO),
            total=sum((i.total for i in items), ZERO),
            expected=expected,
            tracking_difference=(sum(tracked, ZERO) - expected) if expected is not None else None,
        )

    async def _follow_pnl(
        self, follow: FollowRecord, span: Period, names: dict[int, str], labels: dict[str, str], now: datetime
    ) -> FollowPnl:
        assert follow.id is not None
        live = replay(await self.store.follow_executions(follow.id, simulated=False))
        simulated_rows = await self.store.follow_executions(follow.id, simulated=True)
        simulated = replay(simulated_rows) if simulated_rows else None
        gross = live.realized(span)
        fees = live.fees(span)
        ledger = await self.store.follow_positions(follow.id)
        marks = await self._marks(follow.credential_id, sorted({p.symbol for p in ledger if p.quantity != 0}))
        positions = []
        for row in ledger:
            if row.quantity == 0:
                continue
            mark, source = marks.get(row.symbol, (None, None))
            positions.append(
                OpenPositionView(
                    row.symbol,
                    row.quantity,
                    row.entry_price,
                    mark,
                    source,
                    unrealized(row.quantity, row.entry_price, mark),
                    row.simulated,
                )
            )
        real_positions = [p for p in positions if not p.simulated]
        open_pnl = sum((p.unrealized for p in real_positions if p.unrealized is not None), ZERO)
        # the master over the same days, from when this follow existed
        created_day = utc_day(follow.created_at)
        first_day = max(span.first_day, created_day) if span.first_day else created_day
        master_days = (await self.store.master_daily([follow.master_id], first_day))[follow.master_id]
        master_realized = sum((d.realized_pnl for d in master_days), ZERO)
        scale = await self._scale(follow, span)
        expected = master_realized * scale if scale is not None else None
        net_by_day = {d: v for d, v in live.net_by_day().items() if d >= first_day}
        today = utc_day(now)
        series = cumulative(dense_daily(net_by_day, first_day, today)) if first_day <= today else []
        master_series = (
            cumulative(dense_daily({d.day: d.realized_pnl * scale for d in master_days}, first_day, today))
            if scale is not None and first_day <= today
            else []
        )
        return FollowPnl(
            follow_id=follow.id,
            master_id=follow.master_id,
            master_name=names.get(follow.master_id, f"master #{follow.master_id}"),
            account_label=labels.get(follow.credential_id or "", "removed account"),
            status=follow.status,
            dry_run=follow.dry_run,
            period=span,
            realized=gross - fees,
            realized_gross=gross,
            fees=fees,
            unrealized=open_pnl,
            unrealized_complete=all(p.unrealized is not None for p in real_positions),
            total=gross - fees + open_pnl,
            positions=tuple(positions),
            ledger_realized=sum((p.realized_pnl for p in ledger if not p.simulated), ZERO),
            simulated_realized=simulated.realized(span) if simulated is not None else None,
            master_realized=master_realized,
            scale=scale,
            expected=expected,
            tracking_difference=(gross - fees - expected) if expected is not None else None,
            copies=await self.store.follow_copy_counts(follow.id, span.start),
            series=tuple(series),
            master_series=tuple(master_series),
        )

    async def _scale(self, follow: FollowRecord, span: Period) -> Decimal | None:
        if follow.sizing_mode is SizingMode.COEFFICIENT:
            scale: Decimal | None = follow.sizing_value
        else:
            scale = await self.store.entry_ratio(follow.id or 0, None)
        if scale is not None and follow.reverse:
            scale = -scale
        return scale

    async def _marks(self, credential_id: str | None, symbols: Sequence[str]) -> dict[str, tuple[Decimal, str]]:
        out: dict[str, tuple[Decimal, str]] = {}
        if not symbols:
            return out
        if credential_id is not None and self.venues is not None:
            try:
                venue = await self.venues.venue_for(credential_id)
            except Exception:
                venue = None
            for symbol in symbols:
                price = await _venue_mark(venue, symbol) if venue is not None else None
                if price is not None:
                    out[symbol] = (price, "venue")
        missing = [s for s in symbols if s not in out]
        for symbol, price in (await self.store.last_prices(missing)).items():
            out[symbol] = (price, "last_fill")
        return out

    async def pnl_chart(
        self, user_id: int, *, period: str | None = None, follow_id: int | None = None
    ) -> tuple[PnlReport, bytes]:
        """The report and a PNG (800×450) of the follower's cumulative realized PnL (net of fees)
        against the master's over the same days, scaled to the follow. Rendered off the event loop."""
        report = await self.follow_pnl(user_id, period=period, follow_id=follow_id)
        if len(report.follows) == 1:
            item = report.follows[0]
            series = [Series(f"you ({item.account_label})", item.series)]
            if item.master_series:
                series.append(Series(f"{item.master_name} (scaled to you)", item.master_series, dashed=True))
            title = f"PnL {report.period.label}: {item.master_name}"
        else:
            series = [Series("you, all follows", _sum_series([i.series for i in report.follows]))]
            scaled = [i.master_series for i in report.follows if i.master_series]
            if scaled:
                series.append(Series("masters (scaled to you)", _sum_series(scaled), dashed=True))
            title = f"PnL {report.period.label}: all follows"
        return report, await render_line_chart(title, series, y_label="realized PnL (quote currency)")

    # -- copy log export -------------------------------------------------------------------------

    async def export_user_log(
        self,
        user_id: int,
        *,
        follow_id: int | None = None,
        fmt: str = "csv",
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> ExportFile:
        """The copy log of the user's own follows (only ``follow_id`` when given; another user's
        follow id is "not found"). Every master fill since each follow began, with what was done."""
        _check_format(fmt)
        follows = await self.store.follows_of(user_id)
        if follow_id is not None:
            follows = [f for f in follows if f.id == follow_id]
            if not follows:
                raise NotFound("no such follow")
        ids = [f.id for f in follows if f.id is not None]
        now = self.clock()
        name = f"copylog-follow{follow_id}" if follow_id is not None else "copylog"
        return await build_export(
            self.store.export_rows(follow_ids=ids, since=since, until=until),
            fmt=fmt,
            scope=f"user {user_id}" + (f", follow {follow_id}" if follow_id else ""),
            basename=f"{name}-{now:%Y%m%d-%H%M}",
            generated_at=now,
        )

    async def export_admin_log(
        self,
        *,
        master_id: int | None = None,
        fmt: str = "csv",
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> ExportFile:
        """Admins only (the caller checks the role): one master's log, or every master's."""
        _check_format(fmt)
        if master_id is not None and await self.accounts.master(master_id) is None:
            raise NotFound(f"no master with id {master_id}")
        now = self.clock()
        name = f"copylog-master{master_id}" if master_id is not None else "copylog-all"
        return await build_export(
            self.store.export_rows(master_id=master_id, since=since, until=until),
            fmt=fmt,
            scope=f"master {master_id}" if master_id is not None else "all",
            basename=f"{name}-{now:%Y%m%d-%H%M}",
            generated_at=now,
        )

    # -- admin statistics ------------------------------------------------------------------------

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

    # -- daily summaries ---------------------------------------------------------------------------

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


# -- helpers -------------------------------------------------------------------------------------


async def _venue_mark(venue: Venue, symbol: str) -> Decimal | None:
    """The venue's current price: ``Venue.price(symbol)`` (or an older adapter's
    ``mark_price``), else the paper exchange's price table; ``None`` when none answers."""
    for name in ("price", "mark_price"):
        method = getattr(venue, name, None)
        if callable(method):
            try:
                value = await asyncio.wait_for(method(symbol), 10)
            except Exception:  # no price now: the caller falls back to the last fill price
                value = None
            if isinstance(value, Decimal) and value > 0:
                return value
    prices = getattr(getattr(venue, "exchange", None), "prices", None)  # the paper exchange
    price = prices.get(symbol) if isinstance(prices, dict) else None
    return price if isinstance(price, Decimal) else None


def _check_format(fmt: str) -> None:
    if fmt not in ("csv", "json"):
        raise UserError("the export format is csv or json")


def _sum_series(many: Sequence[Sequence[tuple[date, Decimal]]]) -> list[tuple[date, Decimal]]:
    """Add cumulative series day by day (a series before its first day counts as zero, after its
    last day as its last value)."""
    days = sorted({d for series in many for d, _ in series})
    out = []
    for day in days:
        total = ZERO
        for series in many:
            value = ZERO
            for d, v in series:
                if d > day:
                    break
                value = v
            total += value
        out.append((day, total))
    return out
