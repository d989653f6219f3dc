"""How much each follower trades for one master fill.

Entries are sized by the follow's mode (coefficient, equity ratio, fixed notional, fixed
quantity). Exits are sized against the follower's *own* copied position: when the master
closes a fraction of its position the follower closes the same fraction of theirs, so partial
exits stay proportional and a full exit leaves nothing behind. A fill that reverses the
master's position is split into an exit leg and an entry leg.

Everything rounds *down* to the venue's step, then checks the minimum quantity and minimum
notional: an order too small becomes a recorded ``Skip`` with the numbers, never a crash. An
order larger than the venue takes at once is split into parts within its maximum
(``split_quantity``; or capped, the follow's choice), and an exit never asks for more than the
venue shows held (``cap_exit``).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from fractions import Fraction

from core.model import Fill, MarketRules, PositionSide, Side, SizingMode, Skip, SkipReason

ZERO = Decimal(0)


class Leg(enum.StrEnum):
    ENTRY = "entry"  # opens or adds to the follower's position
    EXIT = "exit"  # reduces the follower's copied position (reduce-only)


@dataclass(frozen=True, slots=True)
class LegPlan:
    """One leg of the master's fill as seen from the master's position."""

    leg: Leg
    master_quantity: Decimal  # the part of the master's fill this leg covers
    #: EXIT: share of the master's position closed, 0 < f <= 1. A ``Fraction``, exact: in Decimal,
    #: 0.001/0.003 times 0.003 is 0.000999…, one lot step short of the exit it stands for.
    exit_fraction: Fraction | None = None


@dataclass(frozen=True, slots=True)
class Sized:
    side: Side
    quantity: Decimal  # in the venue's order units, on the step


def split_legs(fill: Fill, master_position_before: Decimal) -> list[LegPlan]:
    """Split a master fill into exit and entry legs against the master's prior net position.

    A reduce-only fill the journal cannot match to a tracked position (the master opened it
    before we watched) is still an exit, sized by the follow's mode and capped by the
    follower's copied position: it must never open anything.
    """
    delta = fill.signed_quantity
    if master_position_before == 0 or (master_position_before > 0) == (delta > 0):
        if fill.reduce_only:
            return [LegPlan(Leg.EXIT, fill.quantity, None)]
        return [LegPlan(Leg.ENTRY, fill.quantity)]
    held = abs(master_position_before)
    closed = min(fill.quantity, held)
    legs = [LegPlan(Leg.EXIT, closed, Fraction(closed) / Fraction(held))]
    opened = fill.quantity - closed
    if opened > 0 and not fill.reduce_only:
        legs.append(LegPlan(Leg.ENTRY, opened))
    return legs


def one_way_note(leg: Leg, position_side: PositionSide, net_before: Decimal, signed: Decimal) -> str | None:
    """Why a one-way account's order for a hedge-mode master's leg does something else than the
    leg (``None`` when it does the same): the account holds one net position, so the leg's
    effect on it is the net one. ``net_before`` is the account's copied position, every side
    together; ``signed`` the order. An exit that does not reduce the net is sent without
    reduce-only (the venue would refuse it)."""
    held = "long" if net_before > 0 else "short" if net_before < 0 else "flat"
    master = f"the master {'opened' if leg is Leg.ENTRY else 'reduced'} its {position_side.value} (hedge mode)"
    if net_before != 0 and (signed > 0) != (net_before > 0):
        if leg is Leg.EXIT and abs(signed) <= abs(net_before):
            return None  # reduces the net, as the exit does
        after = net_before + signed
        if after == 0:
            effect = f"closes its {held}"
        elif (after > 0) == (net_before > 0):
            effect = f"reduces its {held}"
        else:
            effect = f"closes its {held} and goes {'long' if after > 0 else 'short'}"
        return f"{master} while your copy is {held}: your one-way account {effect}"
    if leg is Leg.ENTRY:
        return None  # opens or adds, as the entry does
    direction = "long" if signed > 0 else "short"
    effect = f"adds to its {direction}" if net_before != 0 else f"goes {direction}"
    return f"{master} while your copy is {held}: your one-way account {effect}"


def round_down(value: Decimal, step: Decimal) -> Decimal:
    if step <= 0:
        return value
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def _steps_down(value: Fraction, step: Decimal) -> Decimal:
    """An exact quantity rounded down onto the step, with no Decimal division on the way."""
    if step <= 0:
        return Decimal(value.numerator) / Decimal(value.denominator)
    return math.floor(value / Fraction(step)) * step


def round_price(price: Decimal, tick: Decimal, side: Side) -> Decimal:
    """Round a limit price onto the tick in the follower's favour: buys down, sells up."""
    if tick <= 0:
        return price
    rounding = ROUND_FLOOR if side is Side.BUY else ROUND_CEILING
    return (price / tick).to_integral_value(rounding=rounding) * tick


def raw_entry_quantity(
    mode: SizingMode,
    value: Decimal,
    master_quantity: Decimal,
    price: Decimal,
    *,
    follower_equity: Decimal | None = None,
    master_equity: Decimal | None = None,
) -> Decimal | Skip:
    """The unrounded base quantity a follow trades for ``master_quantity`` of the master's entry."""
    if mode is SizingMode.COEFFICIENT:
        return master_quantity * value
    if mode is SizingMode.EQUITY_RATIO:
        if not follower_equity or follower_equity <= 0:
            return Skip(SkipReason.NO_EQUITY, f"your equity is {follower_equity or 0}")
        if not master_equity or master_equity <= 0:
            return Skip(SkipReason.NO_EQUITY, "the master's equity is unknown")
        return master_quantity * follower_equity / master_equity * value
    if mode is SizingMode.FIXED_NOTIONAL:
        return value / price
    if mode is SizingMode.FIXED_QUANTITY:
        return value
    raise ValueError(f"unknown sizing mode {mode!r}")


def fit_to_market(
    base_quantity: Decimal, rules: MarketRules, price: Decimal, *, reduce_only: bool = False
) -> Decimal | Skip:
    """Convert base units to the venue's order units, round down, and check the minimums.

    Reduce-only orders on derivatives are exempt from the minimum notional (venues accept a
    small close so that a position can always be flattened).
    """
    units = base_quantity / rules.contract_size
    return _fit_units(units, round_down(units, rules.quantity_step), rules, price, reduce_only=reduce_only)


def _fit_units(
    units: Decimal, quantity: Decimal, rules: MarketRules, price: Decimal, *, reduce_only: bool
) -> Decimal | Skip:
    """Check ``quantity`` (``units`` rounded down to the step) against the venue's limits."""
    minimum = max(rules.min_quantity, rules.quantity_step)
    if quantity <= 0 or quantity < minimum:
        return Skip(
            SkipReason.BELOW_MIN_QUANTITY,
            f"{_shown(units, rules.quantity_step)} {rules.base} rounds to {_fmt(quantity)}, minimum is {_fmt(minimum)}",
        )
    notional = quantity * rules.contract_size * price
    if notional < rules.min_notional and not (reduce_only and rules.derivative):
        return Skip(
            SkipReason.BELOW_MIN_NOTIONAL,
            f"{_fmt(quantity)} {rules.base} is {_fmt(notional.quantize(Decimal('0.01'), rounding=ROUND_FLOOR))} "
            f"{rules.quote}, minimum is {_fmt(rules.min_notional)} {rules.quote}",
        )
    return quantity


def size_exit(
    plan: LegPlan,
    follower_position: Decimal,
    rules: MarketRules,
    price: Decimal,
    *,
    fallback_quantity: Decimal | None = None,
) -> Sized | Skip:
    """Reduce the follower's copied position by the master's exit fraction.

    ``follower_position`` is signed, in venue units. A full exit (fraction 1) closes all of it.
    Without a fraction (an untracked reduce-only fill) ``fallback_quantity`` — the follow's
    mode applied to the master's quantity, in base units — is used, capped at the position.
    """
    held = abs(follower_position)
    if held == 0:
        return Skip(SkipReason.NO_POSITION_TO_EXIT, f"no copied {rules.symbol} position")
    side = Side.SELL if follower_position > 0 else Side.BUY
    if plan.exit_fraction is not None and plan.exit_fraction >= 1:
        return Sized(side, held)
    if plan.exit_fraction is not None:
        exact = Fraction(held) * plan.exit_fraction
        wanted = _steps_down(exact, rules.quantity_step)
        fitted = _fit_units(
            Decimal(exact.numerator) / Decimal(exact.denominator), wanted, rules, price, reduce_only=True
        )
    elif fallback_quantity is not None:
        fitted = fit_to_market(min(held * rules.contract_size, fallback_quantity), rules, price, reduce_only=True)
    else:
        return Skip(SkipReason.NO_POSITION_TO_EXIT, "the master's exit size is unknown")
    if isinstance(fitted, Skip):
        return fitted
    return Sized(side, min(fitted, held))


def _shown(value: Decimal, step: Decimal) -> str:
    """An unrounded quantity in a message: two digits finer than the venue's step and at least
    four significant digits (0.0009895 BTC, not the 31 digits of the exact share)."""
    exponent = step.normalize().as_tuple().exponent
    places = -exponent + 2 if isinstance(exponent, int) else 8
    if value:
        places = max(places, 3 - value.adjusted())
    return _fmt(value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN))


def _fmt(value: Decimal) -> str:
    return format(value.normalize(), "f")


def split_quantity(quantity: Decimal, maximum: Decimal, step: Decimal) -> list[Decimal]:
    """``quantity`` as the fewest parts of at most ``maximum`` each, on the step, as equal as the
    step allows (the first parts one step larger): 150 within 120 is 75 + 75, never 120 + a
    remainder that may fall below the venue's minimum. Their sum is ``quantity`` exactly."""
    if maximum <= 0 or quantity <= maximum:
        return [quantity]
    count = math.ceil(Fraction(quantity) / Fraction(maximum))
    if step <= 0:
        share = quantity / count
        return [share] * (count - 1) + [quantity - share * (count - 1)]
    steps = int(quantity / step)
    base, larger = divmod(steps, count)
    parts = [(base + 1) * step] * larger + [base * step] * (count - larger)
    parts[-1] += quantity - sum(parts, ZERO)  # a quantity off the step keeps its residue in the last part
    return parts


def cap_exit(sized: Sized, held: Decimal, rules: MarketRules) -> Sized | Skip:
    """An exit bounded by ``held``, what the venue shows of the position it closes (≥ 0, in order
    units): the venue refuses a reduce-only order above it (Binance -2022), and where there is no
    reduce-only flag (Angel One) the excess would open the other way. A full exit then closes
    what is actually there."""
    if sized.quantity <= held:
        return sized
    quantity = round_down(held, rules.quantity_step)
    minimum = max(rules.min_quantity, rules.quantity_step)
    if quantity <= 0 or quantity < minimum:
        return Skip(
            SkipReason.NO_POSITION_TO_EXIT,
            f"your exchange shows {_fmt(held)} {rules.base} of the {_fmt(sized.quantity)} {rules.base} this exit "
            "would close: closed outside the copier",
        )
    return Sized(sized.side, quantity)
