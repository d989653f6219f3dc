"""The follower's PnL behind ``/pnl``: per follow and in total, with a chart against the master.

- **Realized PnL** is replayed from the follow's executed copy orders (fees included) with the
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
  It shows what rounding, skips, slippage and fees cost (or gained) the follower. The master's
  statistics are brought up to date first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from core.charts import Series, render_line_chart
from core.errors import NotFound
from core.model import FollowStatus, SizingMode, utcnow
from core.records import FollowRecord
from core.reports.collaborators import Clock, VenueProvider
from core.reports.refresh import MasterStatsRefresher
from core.stats import ZERO, Period, cumulative, dense_daily, parse_period, replay, sum_cumulative, unrealized, utc_day
from core.stores import StatsRepository
from core.venues.base import Venue


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


@dataclass
class PnlService:
    store: StatsRepository
    venues: VenueProvider | None
    refresher: MasterStatsRefresher
    clock: Clock = utcnow

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
        await self.refresher.refresh(sorted({f.master_id for f in follows}))
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
            series = [Series("you, all follows", sum_cumulative([i.series for i in report.follows]))]
            scaled = [i.master_series for i in report.follows if i.master_series]
            if scaled:
                series.append(Series("masters (scaled to you)", sum_cumulative(scaled), dashed=True))
            title = f"PnL {report.period.label}: all follows"
        return report, await render_line_chart(title, series, y_label="realized PnL (quote currency)")


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
