"""Trading statistics, computed without I/O: a master's round trips from its journaled fills,
the metrics shown in ``/masters``, and the follower's PnL replayed from its copy orders.

Money is ``Decimal`` throughout. Floats appear only for ratios that are not money and are
inexact by nature (Sharpe ratio, rates, latency percentiles) and inside chart rendering.

Round trips (per master and symbol, average-cost accounting):
- a round trip opens when a fill takes the position away from flat and closes when a fill brings
  it back to flat or through it (a reversal closes one round trip and opens the next at the fill
  price with the remainder);
- partial closes realize PnL on the day they happen; the round trip's result is the sum;
- master fills carry no fee, so every master figure is **gross** (fees are not deducted);
- linear instruments are assumed (PnL = price difference × quantity, contract size 1), the same
  rule the copied-position ledger (``follow_positions``) uses;
- a position the journal did not see open (seeded from the venue when the stream started, or
  changed outside the journal) has no known cost: its closing realizes nothing and is counted in
  ``untracked_closes``, not as a round trip.

Incremental by construction: ``apply_fills`` folds fills (in journal id order) into a
``StatsState``; every value it stores is rounded to the 18 decimal places the database keeps,
so a state saved and loaded between two batches continues exactly as if it had never left
memory — any chunking of the journal gives the result of one full recompute.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from core.errors import UserError
from core.ledger import Holding, apply_execution, write_off
from core.model import PositionSide, Side

ZERO = Decimal(0)
PLACES = Decimal(10) ** -18  # what ExactDecimal stores on every backend
TRADING_DAYS_PER_YEAR = 365  # crypto trades every day; used to annualize the Sharpe ratio


def q(value: Decimal) -> Decimal:
    """Round to the stored precision (half-even, like ``ExactDecimal``)."""
    with localcontext() as ctx:
        ctx.prec = 80
        return value.quantize(PLACES, rounding=ROUND_HALF_EVEN)


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


# -- master round trips --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatFill:
    """The part of a journaled master fill the statistics use."""

    id: int
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    executed_at: datetime
    position_before: Decimal  # the master's journaled net position before this fill


@dataclass(slots=True)
class Lot:
    """The open round trip in one symbol."""

    quantity: Decimal = ZERO  # signed
    entry_price: Decimal | None = None  # None: cost unknown
    opened_at: datetime | None = None
    trip_pnl: Decimal = ZERO


@dataclass(slots=True)
class DayStats:
    realized_pnl: Decimal = ZERO
    fills: int = 0
    round_trips: int = 0


@dataclass(frozen=True, slots=True)
class RoundTrip:
    symbol: str
    opened_at: datetime
    closed_at: datetime
    pnl: Decimal


@dataclass(slots=True)
class StatsState:
    """Everything needed to continue counting after fill ``last_fill_id``.

    ``days`` may hold only the days a batch touches (storage loads those); ``lots`` holds every
    open symbol (a flat symbol has no entry).
    """

    last_fill_id: int = 0
    fills: int = 0
    round_trips: int = 0
    wins: int = 0
    losses: int = 0
    untracked_closes: int = 0
    realized_pnl: Decimal = ZERO
    gross_profit: Decimal = ZERO
    gross_loss: Decimal = ZERO
    peak_pnl: Decimal = ZERO
    max_drawdown: Decimal = ZERO
    holding_seconds: Decimal = ZERO
    first_fill_at: datetime | None = None
    last_fill_at: datetime | None = None
    lots: dict[str, Lot] = field(default_factory=dict)
    days: dict[date, DayStats] = field(default_factory=dict)


def _realize(state: StatsState, day: DayStats, pnl: Decimal) -> None:
    state.realized_pnl = q(state.realized_pnl + pnl)
    day.realized_pnl = q(day.realized_pnl + pnl)
    state.peak_pnl = max(state.peak_pnl, state.realized_pnl)
    state.max_drawdown = max(state.max_drawdown, q(state.peak_pnl - state.realized_pnl))


def _close_trip(
    state: StatsState, day: DayStats, symbol: str, lot: Lot, closed_at: datetime, trips: list[RoundTrip] | None
) -> None:
    if lot.entry_price is None or lot.opened_at is None:
        state.untracked_closes += 1
        return
    pnl = lot.trip_pnl
    state.round_trips += 1
    day.round_trips += 1
    if pnl > 0:
        state.wins += 1
        state.gross_profit = q(state.gross_profit + pnl)
    elif pnl < 0:
        state.losses += 1
        state.gross_loss = q(state.gross_loss - pnl)
    held = closed_at - lot.opened_at
    state.holding_seconds = q(
        state.holding_seconds + Decimal(held.days * 86400 + held.seconds) + Decimal(held.microseconds) / 1_000_000
    )
    if trips is not None:
        trips.append(RoundTrip(symbol, lot.opened_at, closed_at, pnl))


def apply_fill(state: StatsState, fill: StatFill, trips: list[RoundTrip] | None = None) -> None:
    """Fold one master fill into ``state`` (fills must come in journal id order)."""
    if fill.id <= state.last_fill_id:
        return  # already counted
    day = state.days.setdefault(utc_day(fill.executed_at), DayStats())
    day.fills += 1
    state.fills += 1
    state.last_fill_id = fill.id
    if state.first_fill_at is None:
        state.first_fill_at = fill.executed_at
    state.last_fill_at = fill.executed_at if state.last_fill_at is None else max(state.last_fill_at, fill.executed_at)

    lot = state.lots.get(fill.symbol) or Lot()
    if lot.quantity != fill.position_before:
        # exposure the journal did not see opening (seeded from the venue, or moved outside
        # the journal): its cost is unknown, so it realizes nothing until flat again
        lot = Lot() if fill.position_before == 0 else Lot(quantity=fill.position_before)
    signed = fill.quantity * fill.side.sign
    before = lot.quantity
    after = before + signed
    if before == 0 or (before > 0) == (signed > 0):  # opening or adding
        if before == 0:
            lot = Lot(quantity=ZERO, entry_price=fill.price, opened_at=fill.executed_at)
        elif lot.entry_price is not None:
            with localcontext() as ctx:
                ctx.prec = 80
                lot.entry_price = q((lot.entry_price * abs(before) + fill.price * abs(signed)) / abs(after))
    else:  # reducing, closing or reversing
        closed = min(abs(signed), abs(before))
        if lot.entry_price is not None:
            direction = 1 if before > 0 else -1
            pnl = q((fill.price - lot.entry_price) * closed * direction)
            lot.trip_pnl = q(lot.trip_pnl + pnl)
            _realize(state, day, pnl)
        if abs(signed) >= abs(before):
            _close_trip(state, day, fill.symbol, lot, fill.executed_at, trips)
            lot = Lot(quantity=ZERO, entry_price=fill.price, opened_at=fill.executed_at) if after != 0 else Lot()
    lot.quantity = after
    if after == 0:
        state.lots.pop(fill.symbol, None)
    else:
        state.lots[fill.symbol] = lot


def apply_fills(state: StatsState, fills: Iterable[StatFill], trips: list[RoundTrip] | None = None) -> StatsState:
    for fill in fills:
        apply_fill(state, fill, trips)
    return state


# -- metrics ---------------------------------------------------------------------------------------


def win_rate(wins: int, round_trips: int) -> Decimal | None:
    """Winning round trips / closed round trips (a round trip at exactly zero is not a win)."""
    return Decimal(wins) / Decimal(round_trips) if round_trips else None


def profit_factor(gross_profit: Decimal, gross_loss: Decimal) -> Decimal | None:
    """Gross profit / gross loss; ``None`` when there is no losing round trip (undefined)."""
    return gross_profit / gross_loss if gross_loss > 0 else None


def max_drawdown(curve: Sequence[Decimal], *, start: Decimal | None = ZERO) -> Decimal:
    """Largest fall from a running peak, in the curve's unit (``start`` is the initial peak)."""
    peak = start
    worst = ZERO
    for value in curve:
        peak = value if peak is None else max(peak, value)
        worst = max(worst, peak - value)
    return worst


def max_drawdown_pct(equity: Sequence[Decimal]) -> Decimal | None:
    """Largest peak-to-trough fall of an equity curve as a fraction of the peak."""
    peak: Decimal | None = None
    worst: Decimal | None = None
    for value in equity:
        peak = value if peak is None else max(peak, value)
        if peak > 0:
            fall = (peak - value) / peak
            worst = fall if worst is None else max(worst, fall)
    return worst


def sharpe_ratio(daily: Sequence[float], *, periods_per_year: int = TRADING_DAYS_PER_YEAR) -> float | None:
    """Annualized Sharpe ratio of daily observations: mean / sample standard deviation ×
    √periods_per_year, with a zero risk-free rate. ``None`` with fewer than two observations or
    no variation."""
    if len(daily) < 2:
        return None
    deviation = statistics.stdev(daily)
    if deviation == 0 or math.isnan(deviation):
        return None
    return statistics.fmean(daily) / deviation * math.sqrt(periods_per_year)


def daily_returns(equity_by_day: Sequence[tuple[date, Decimal]]) -> list[float]:
    """Returns between consecutive snapshots (a float: a ratio, not money)."""
    out = []
    for (_, previous), (_, current) in zip(equity_by_day, equity_by_day[1:], strict=False):
        if previous > 0:
            out.append(float(current / previous - 1))
    return out


def dense_daily(values: dict[date, Decimal], first: date, last: date) -> list[tuple[date, Decimal]]:
    """One value per day from ``first`` to ``last`` (days without an entry are zero)."""
    out = []
    day = first
    while day <= last:
        out.append((day, values.get(day, ZERO)))
        day += timedelta(days=1)
    return out


def cumulative(values: Sequence[tuple[date, Decimal]], start: Decimal = ZERO) -> list[tuple[date, Decimal]]:
    total = start
    out = []
    for day, value in values:
        total += value
        out.append((day, total))
    return out


def sum_cumulative(many: Sequence[Sequence[tuple[date, Decimal]]]) -> list[tuple[date, Decimal]]:
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


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (``p`` in 0..100) of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


# -- periods -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    """Whole UTC days: ``start`` is midnight of the first day (``None``: since the beginning)."""

    label: str
    start: datetime | None
    end: datetime

    @property
    def first_day(self) -> date | None:
        return self.start.date() if self.start else None

    def contains(self, moment: datetime) -> bool:
        return (self.start is None or moment >= self.start) and moment <= self.end


_UNITS = {"d": 1, "w": 7, "m": 30, "y": 365}


def parse_period(text: str | None, now: datetime) -> Period:
    """``today``, ``7d``, ``4w``, ``3m``, ``1y`` or ``all`` (default ``30d``): the last N UTC days,
    today included."""
    raw = (text or "30d").strip().lower()
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC)
    if raw in ("all", "max", "ever"):
        return Period("all", None, now)
    if raw in ("today", "day", "1d"):
        return Period("today", midnight, now)
    number, unit = raw[:-1], raw[-1:]
    if unit not in _UNITS or not number.isdigit() or not 1 <= int(number) * _UNITS[unit] <= 3650:
        raise UserError("the period is a number of days, weeks, months or years (7d, 4w, 3m, 1y), today or all")
    days = int(number) * _UNITS[unit]
    return Period(raw, midnight - timedelta(days=days - 1), now)


# -- follower PnL ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CopyExecution:
    """One execution of a follow's copy order as the venue reported it (or, for a dry run, one
    simulated copy), in the order it moved the ledger. ``quantity`` is what the holding changed
    by (net of a fee taken in the base asset): zero for a fee-only report."""

    at: datetime
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal = ZERO
    position_side: PositionSide = PositionSide.BOTH  # a hedge-mode copy's leg is its own position
    written_off: bool = False  # closed outside the copier (``core.ledger.write_off``): no PnL, no fee


@dataclass(slots=True)
class LedgerReplay:
    """The follow's copied positions rebuilt from its executions (``core.ledger``, the function
    that moves ``follow_positions``), with realized PnL and fees per UTC day."""

    positions: dict[tuple[str, PositionSide], Holding] = field(default_factory=dict)
    realized_by_day: dict[date, Decimal] = field(default_factory=dict)  # gross
    fees_by_day: dict[date, Decimal] = field(default_factory=dict)

    def apply(self, execution: CopyExecution) -> None:
        key = (execution.symbol, execution.position_side)
        if execution.written_off:
            self.positions[key] = write_off(
                self.positions.get(key, Holding()), execution.quantity * execution.side.sign
            )
            return
        day = utc_day(execution.at)
        if execution.fee:
            self.fees_by_day[day] = self.fees_by_day.get(day, ZERO) + execution.fee
        holding, realized = apply_execution(
            self.positions.get(key, Holding()), execution.quantity * execution.side.sign, execution.price, execution.fee
        )
        self.positions[key] = holding
        if realized:
            self.realized_by_day[day] = self.realized_by_day.get(day, ZERO) + realized

    def realized(self, period: Period) -> Decimal:
        first = period.first_day
        return sum((v for d, v in self.realized_by_day.items() if first is None or d >= first), ZERO)

    def fees(self, period: Period) -> Decimal:
        first = period.first_day
        return sum((v for d, v in self.fees_by_day.items() if first is None or d >= first), ZERO)

    def net_by_day(self) -> dict[date, Decimal]:
        out = dict(self.realized_by_day)
        for day, fee in self.fees_by_day.items():
            out[day] = out.get(day, ZERO) - fee
        return out


def replay(executions: Iterable[CopyExecution]) -> LedgerReplay:
    ledger = LedgerReplay()
    for execution in executions:
        ledger.apply(execution)
    return ledger


def unrealized(quantity: Decimal, entry_price: Decimal | None, mark: Decimal | None) -> Decimal | None:
    if entry_price is None or mark is None:
        return None
    return (mark - entry_price) * quantity
