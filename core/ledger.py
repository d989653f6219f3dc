"""The ledger's arithmetic, once: how an execution moves a holding, and how a venue's cumulative
report of an order becomes the executions that move it.

Every ledger of the copier goes through ``apply_execution``: the journal's copied positions
(``follow_positions``), the statistics' replay of a follow's executions and the paper venue's
own accounts. Average-cost accounting: adding to a position moves its average entry price,
reducing it realizes ``(price - entry) x closed x direction`` and leaves the entry price alone,
crossing zero opens the remainder at the execution's price. Fees are kept apart from the
realized PnL (which is gross), so a round trip nets ``realized - fees``.

``write_off`` is the only other way a holding moves: what was closed outside the copier (by hand,
a liquidation), found when an exit is bounded by the position the venue shows. The copier does not
know the price it was closed at, so a write-off realizes nothing and pays no fee: it is not the
copier's PnL (the follower's exchange has the real one), and the entry price of what is left stays.

``advance`` is the compare-and-set rule of an order's life: a report changes nothing unless its
cumulative filled quantity is above the one recorded or it moves the order to a later state, and
a terminal state never changes. What a report adds (the new executions) is the difference of
cumulative quantities, so a stream event, a poll and a settle pass reporting the same fill can
never count it twice. One exception to "a terminal state never changes": a fill recorded with
its commission still to come (``OrderReport.fee_pending``) takes, once, a report of the same fill
that carries it — a fee-only advance (no quantity, the fee added).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal, localcontext

from core.model import OrderReport, OrderState, Side

ZERO = Decimal(0)

#: digits kept while dividing (an average price): well past NUMERIC(38, 18)
_PRECISION = 60


@dataclass(frozen=True, slots=True)
class Holding:
    """A position in one symbol: signed quantity, average entry price, realized PnL (gross) and fees."""

    quantity: Decimal = ZERO
    entry_price: Decimal | None = None
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO


def apply_execution(
    holding: Holding, signed_quantity: Decimal, price: Decimal, fee: Decimal = ZERO
) -> tuple[Holding, Decimal]:
    """``holding`` after an execution of ``signed_quantity`` (buy > 0) at ``price`` paying ``fee``
    (quote); returns it with the PnL this execution realized (zero when it only opened or added)."""
    before = holding.quantity
    after = before + signed_quantity
    entry = holding.entry_price
    realized = ZERO
    if signed_quantity == 0:  # a fee-only change: the position and its entry stay
        return Holding(before, entry, holding.realized_pnl, holding.fees + fee), realized
    if before == 0 or (before > 0) == (signed_quantity > 0):  # opening or adding
        with localcontext() as context:
            context.prec = _PRECISION
            entry = ((entry or ZERO) * abs(before) + price * abs(signed_quantity)) / abs(after)
    else:
        closed = min(abs(signed_quantity), abs(before))
        direction = 1 if before > 0 else -1
        realized = (price - (entry if entry is not None else price)) * closed * direction
        if after == 0:
            entry = None
        elif (after > 0) != (before > 0):  # reversed: the remainder opened at this price
            entry = price
    return Holding(after, entry, holding.realized_pnl + realized, holding.fees + fee), realized


def write_off(holding: Holding, signed_quantity: Decimal) -> Holding:
    """``holding`` less ``signed_quantity`` closed outside the copier (its sign against the holding,
    never more than it holds: a write-off closes, it never opens or reverses). No PnL, no fee; the
    entry price stays, and goes with the last of the holding."""
    before = holding.quantity
    if (
        signed_quantity == 0
        or before == 0
        or (signed_quantity > 0) == (before > 0)
        or abs(signed_quantity) > abs(before)
    ):
        raise ValueError(f"a write-off of {signed_quantity} cannot close a holding of {before}")
    after = before + signed_quantity
    return Holding(after, holding.entry_price if after != 0 else None, holding.realized_pnl, holding.fees)


def ledger_quantity(side: Side, quantity: Decimal, base_fee: Decimal = ZERO) -> Decimal:
    """The signed change of the holding for an execution of ``quantity`` on ``side`` whose fee
    was partly taken in the base asset: a buy receives ``quantity - base_fee``, a sell gives
    up ``quantity`` and the base fee on top."""
    return quantity * side.sign - base_fee


def fee_in_quote(
    amount: Decimal,
    asset: str | None,
    *,
    base: str,
    quote: str,
    price: Decimal,
    coin_price: Decimal | None = None,
) -> Decimal | None:
    """A fee in the quote currency: as is when paid in the quote, at the execution price when
    paid in the base asset, at ``coin_price`` (the venue's price of ``asset`` in the quote) when
    paid in a third coin (Binance's BNB); ``None`` when that price is not known."""
    if asset is None or asset == quote:
        return amount
    if asset == base:
        return amount * price
    return amount * coin_price if coin_price is not None else None


# -- an order's life -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderProgress:
    """What the journal recorded of one order so far (all cumulative)."""

    state: OrderState
    filled_quantity: Decimal = ZERO
    average_price: Decimal | None = None
    fee: Decimal = ZERO
    base_fee: Decimal = ZERO
    fee_pending: bool = False  # a fill is recorded whose commission has not come yet


@dataclass(frozen=True, slots=True)
class Increment:
    """What a report added to an order: the executed quantity (gross), its average price and the
    fees paid for it (in the quote, and the part taken in the base asset)."""

    quantity: Decimal
    price: Decimal
    fee: Decimal
    base_fee: Decimal


@dataclass(frozen=True, slots=True)
class Advance:
    """A report that changed the order: its new progress and what it executed (if anything)."""

    progress: OrderProgress
    increment: Increment | None


_RANK = {
    OrderState.PENDING: 0,
    OrderState.ACKNOWLEDGED: 1,
    OrderState.PARTIALLY_FILLED: 2,
}


def _rank(state: OrderState) -> int:
    return _RANK.get(state, 3)


def advance(progress: OrderProgress, report: OrderReport) -> Advance | None:
    """Apply ``report`` to an order recorded as ``progress``; ``None`` when it changes nothing
    (a terminal order, a filled quantity not above the recorded one without a later state,
    or a report older than what is recorded) — unless it brings the commission of a fill recorded
    without it (``_fee_only``)."""
    if report.filled_quantity < progress.filled_quantity:
        return None
    completes_fee = (
        progress.fee_pending and not report.fee_pending and report.filled_quantity == progress.filled_quantity
    )
    if progress.state.is_terminal:
        return _fee_only(progress, report) if completes_fee else None
    state = report.state
    if report.filled_quantity > 0 and _rank(state) < _rank(OrderState.PARTIALLY_FILLED):
        state = OrderState.PARTIALLY_FILLED  # a fill was seen: the order was at least partially filled
    added = report.filled_quantity - progress.filled_quantity
    if added == 0 and _rank(state) <= _rank(progress.state):
        return _fee_only(progress, report) if completes_fee else None
    fee = max(progress.fee, report.fee)  # a report without fee information never takes fees back
    base_fee = max(progress.base_fee, report.base_fee)
    average = report.average_price if report.average_price is not None else progress.average_price
    pending = report.fee_pending and report.filled_quantity > 0
    new = OrderProgress(
        state, report.filled_quantity, average if report.filled_quantity > 0 else None, fee, base_fee, pending
    )
    if added == 0:
        if completes_fee:
            return Advance(new, _fee_only_increment(progress, new))
        kept = replace(new, fee=progress.fee, base_fee=progress.base_fee, fee_pending=progress.fee_pending)
        return Advance(kept, None)
    return Advance(
        new,
        Increment(added, _increment_price(progress, report, added), fee - progress.fee, base_fee - progress.base_fee),
    )


def _fee_only(progress: OrderProgress, report: OrderReport) -> Advance:
    """The commission of the fill ``progress`` recorded without it: the state and fill stay, the
    fee is added (never taken back), and the order is no longer waiting for it. Only a futures
    commission comes this way (never paid in the base asset: the holding's quantity stays)."""
    new = replace(
        progress,
        fee=max(progress.fee, report.fee),
        base_fee=max(progress.base_fee, report.base_fee),
        fee_pending=False,
    )
    return Advance(new, _fee_only_increment(progress, new))


def _fee_only_increment(before: OrderProgress, after: OrderProgress) -> Increment:
    return Increment(ZERO, after.average_price or ZERO, after.fee - before.fee, after.base_fee - before.base_fee)


def _increment_price(progress: OrderProgress, report: OrderReport, added: Decimal) -> Decimal:
    """The average price of what a report added, from the cumulative averages before and after."""
    if report.average_price is None:
        if progress.average_price is None:
            raise ValueError(f"order {report.client_order_id} reports a fill without a price")
        return progress.average_price
    if progress.filled_quantity == 0 or progress.average_price is None:
        return report.average_price
    with localcontext() as context:
        context.prec = _PRECISION
        price = (
            report.average_price * report.filled_quantity - progress.average_price * progress.filled_quantity
        ) / added
    return price if price > 0 else report.average_price
