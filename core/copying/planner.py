"""Planning a copy, pure: a master fill, a follow, the follower's market and position (and, where
the follow's settings need them, balances and the current price, read beforehand) become the
order to send or a skip with its reason. No I/O here: the live copier and a replay of the past
plan with the same functions."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from core.copying.ids import split_order_id
from core.model import (
    DEFAULT_PRICE_PROTECTION_PCT,
    ClosedMarketAction,
    EntrySides,
    Fill,
    FollowSettings,
    MarketRules,
    OrderIntent,
    OrderType,
    OversizeAction,
    PositionSide,
    Side,
    SizingMode,
    Skip,
    SkipReason,
    SlippageAction,
    plain,
)
from core.risk import cap_to_max_position, check_filters
from core.sizing import (
    Leg,
    LegPlan,
    Sized,
    cap_exit,
    fit_to_market,
    raw_entry_quantity,
    round_price,
    size_exit,
    split_quantity,
)

ZERO = Decimal(0)


def copied_order_type(fill: Fill) -> tuple[OrderType, Decimal | None]:
    """The order type and limit price a follower uses for a master *execution*.

    A stop or take-profit that executed has already triggered: re-placing it as a stop would
    trigger at once or be refused, so its market variant is copied (a stop-limit keeps its limit).
    """
    if fill.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        return OrderType.LIMIT, fill.limit_price or fill.price
    return OrderType.MARKET, None


def copied_side(follow: FollowSettings, fill: Fill) -> PositionSide:
    """The follower's copied position a copy of ``fill`` moves: the master's side (reversed for a
    reversed follow), so each of a hedge-mode master's legs is sized against its own copy."""
    return fill.position_side.reversed if follow.reverse else fill.position_side


def protected_limit(intent: OrderIntent, reference: Decimal, protection_pct: Decimal, tick: Decimal) -> OrderIntent:
    """A market order as a LIMIT with DAY validity, for a venue that takes no market or IOC order
    (``Venue.takes_market_orders``): at the reference price (the master's fill price, or the last
    price) moved by ``protection_pct`` in the direction that lets the order execute at once, rounded
    onto the tick in the follower's favour. It rests for ``EngineConfig.protected_window``, then its
    unfilled remainder is re-priced or cancelled (``core.copying.tracker``)."""
    move = reference * protection_pct / 100
    price = reference + move if intent.side is Side.BUY else reference - move
    return replace(
        intent,
        order_type=OrderType.LIMIT,
        price=round_price(price, tick, intent.side),
        time_in_force=None,
        protected=True,
    )


def within_limit(price: Decimal, master_price: Decimal, limit_pct: Decimal, side: Side) -> bool:
    """Whether a buy at ``price`` pays at most ``limit_pct`` % more than the master's price (a sell:
    receives at most that much less)."""
    move = master_price * limit_pct / 100
    return price <= master_price + move if side is Side.BUY else price >= master_price - move


def order_for_venue(
    follow: FollowSettings, takes_market_orders: bool, intent: OrderIntent, reference: Decimal, rules: MarketRules
) -> OrderIntent:
    """The order as the follower's venue takes it: a market order becomes a protected limit
    where the venue takes no market orders (Angel One since April 2026)."""
    if takes_market_orders or intent.order_type is not OrderType.MARKET:
        return intent
    protection = follow.price_protection_pct or DEFAULT_PRICE_PROTECTION_PCT
    return protected_limit(intent, reference, protection, rules.price_tick)


def entry_refused(follow: FollowSettings, fill: Fill, leg: LegPlan, age_seconds: float, stale: bool) -> Skip | None:
    """Why an entry is not copied at all (exits of copied positions always are)."""
    if leg.leg is not Leg.ENTRY:
        return None
    if stale:
        return Skip(SkipReason.STALE_FILL, f"{age_seconds:.0f}s old")
    return check_filters(follow, fill)


@dataclass(frozen=True, slots=True)
class Needs:
    """What a plan must read before it can be made (each read only where a setting asks for it)."""

    follower_equity: bool
    master_equity: bool
    copied_notional: bool
    price: bool  # the slippage guard's current price


def needs(follow: FollowSettings, leg: LegPlan, order_type: OrderType) -> Needs:
    sized_by_equity = follow.sizing_mode is SizingMode.EQUITY_RATIO and (
        leg.leg is Leg.ENTRY or leg.exit_fraction is None
    )
    entry = leg.leg is Leg.ENTRY
    return Needs(
        follower_equity=sized_by_equity,
        master_equity=sized_by_equity,
        copied_notional=entry and follow.max_total_notional is not None,
        price=entry and follow.slippage_pct is not None and order_type is OrderType.MARKET,
    )


def raw_quantity(
    follow: FollowSettings,
    fill: Fill,
    master_quantity: Decimal,
    follower_equity: Decimal | Skip | None,
    master_equity: Decimal | None,
) -> Decimal | Skip:
    """The follower's quantity before the market's rules, by the follow's sizing mode."""
    if isinstance(follower_equity, Skip):
        return follower_equity
    return raw_entry_quantity(
        follow.sizing_mode,
        follow.sizing_value,
        master_quantity,
        fill.price,
        follower_equity=follower_equity,
        master_equity=master_equity,
    )


def size(
    follow: FollowSettings,
    fill: Fill,
    leg: LegPlan,
    rules: MarketRules,
    position: Decimal,
    raw: Decimal | Skip | None,
    copied_notional: Decimal | None,
) -> Sized | Skip:
    """The copy's side and quantity: an exit sized against the copied ``position`` (``raw``: the
    fallback of an exit the master's history does not explain), an entry by the sizing mode,
    fitted to the market and capped by the follow's maximum positions."""
    if leg.leg is Leg.EXIT:
        if isinstance(raw, Skip):
            return raw
        return size_exit(leg, position, rules, fill.price, fallback_quantity=raw)
    if raw is None or isinstance(raw, Skip):
        return raw if isinstance(raw, Skip) else Skip(SkipReason.NO_EQUITY, "nothing to size the copy by")
    quantity = fit_to_market(raw, rules, fill.price)
    if isinstance(quantity, Skip):
        return quantity
    side = fill.side.opposite if follow.reverse else fill.side
    if follow.max_position_notional is not None:
        same_direction = position if (position > 0) == (side is Side.BUY) else ZERO
        quantity, capped = cap_to_max_position(
            quantity,
            same_direction,
            fill.price,
            follow.max_position_notional,
            step=rules.quantity_step,
            contract_size=rules.contract_size,
        )
        if capped is not None:
            return capped
        refit = fit_to_market(quantity * rules.contract_size, rules, fill.price)
        if isinstance(refit, Skip):
            return Skip(SkipReason.MAX_POSITION, f"what fits under the limit is too small: {refit.detail}")
        quantity = refit
    if follow.max_total_notional is not None:
        used = copied_notional or ZERO
        quantity, capped = cap_to_max_position(
            quantity,
            used / fill.price,
            fill.price,
            follow.max_total_notional,
            step=rules.quantity_step,
            contract_size=Decimal(1),
        )
        if capped is not None:
            return Skip(SkipReason.MAX_POSITION, f"all copied positions together: {capped.detail}")
        refit = fit_to_market(quantity * rules.contract_size, rules, fill.price)
        if isinstance(refit, Skip):
            return Skip(SkipReason.MAX_POSITION, f"what fits under the total limit is too small: {refit.detail}")
        quantity = refit
    return Sized(side, quantity)


def intent_for(
    follow: FollowSettings,
    fill: Fill,
    leg: LegPlan,
    cid: str,
    sized: Sized,
    rules: MarketRules,
    position_side: PositionSide,
    note: str | None,
) -> OrderIntent | Skip:
    """The order for a sized copy, or the entry-side filter's skip. ``note``: why a one-way
    account's order for a hedge-mode master's leg does something else than the leg (then an exit
    is not reduce-only, and the minimum notional, waived for reduce-only orders only, applies)."""
    if (
        leg.leg is Leg.ENTRY
        and follow.entry_sides is not EntrySides.BOTH
        and (sized.side is Side.BUY) != (follow.entry_sides is EntrySides.LONG)
    ):
        return Skip(SkipReason.SIDE_FILTERED, f"{follow.entry_sides} entries only")
    if leg.leg is Leg.EXIT and rules.derivative and note is not None:
        fitted = fit_to_market(sized.quantity * rules.contract_size, rules, fill.price)
        if isinstance(fitted, Skip):
            return fitted
    order_type, limit = copied_order_type(fill)
    return OrderIntent(
        follow_id=follow.follow_id,
        client_order_id=cid,
        symbol=fill.symbol,
        side=sized.side,
        quantity=sized.quantity,
        order_type=order_type,
        price=round_price(limit, rules.price_tick, sized.side) if limit is not None else None,
        reduce_only=leg.leg is Leg.EXIT and rules.derivative and note is None,
        reference_price=fill.price,
        leverage=follow.leverage if rules.derivative else None,
        margin_mode=follow.margin_mode if rules.derivative else None,
        product=follow.product or fill.product,
        position_side=position_side,
        after_market=follow.closed_market_action is ClosedMarketAction.AFTER_MARKET,
    )


def guard_slippage(
    follow: FollowSettings,
    fill: Fill,
    intent: OrderIntent,
    now: Decimal | Skip,
    rules: MarketRules,
    takes_market_orders: bool,
) -> OrderIntent | Skip:
    """Skip a market copy (or send it as a limit at the guard price: IOC, or a protected limit
    where the venue takes no IOC) when the follower's price has moved against them by more than
    the follow's limit since the master's fill."""
    assert follow.slippage_pct is not None
    if isinstance(now, Skip):
        return now
    adverse = (now - fill.price) / fill.price * 100 * (1 if intent.side is Side.BUY else -1)
    if adverse <= follow.slippage_pct:
        return intent
    if follow.slippage_action is not SlippageAction.LIMIT:
        return Skip(
            SkipReason.SLIPPAGE,
            f"{adverse:.2f}% from the master's {fill.price} (now {now}), your limit is {follow.slippage_pct}%",
        )
    move = fill.price * follow.slippage_pct / 100
    guard = fill.price + move if intent.side is Side.BUY else fill.price - move
    return replace(
        intent,
        order_type=OrderType.LIMIT,
        price=round_price(guard, rules.price_tick, intent.side),
        time_in_force="IOC" if takes_market_orders else None,  # else it rests, like a protected limit
        protected=not takes_market_orders,
    )


# -- an exit bounded by the venue's position; an order within the venue's maximum -----------------


def held_for_exit(side: Side, venue_quantity: Decimal) -> Decimal:
    """What an exit sent as ``side`` may close of the venue's signed position on its side: all of
    it when the position is the one the exit closes (a sell closes a long), else nothing."""
    closes_long = side is Side.SELL
    return abs(venue_quantity) if venue_quantity != 0 and (venue_quantity > 0) == closes_long else ZERO


@dataclass(frozen=True, slots=True)
class BoundExit:
    """An exit bounded by the venue's position: the order to send (or why none is), the note it
    records, and what the ledger holds beyond what the venue shows (in order units, >= 0) — written
    off the ledger, so that it equals the venue; where the write-off must wait, the drift (the
    ledger's position and the venue's, each as it will be once the order has filled)."""

    order: Sized | Skip
    note: str | None
    written_off: Decimal
    expected_after: Decimal
    actual_after: Decimal


def bound_exit(sized: Sized, copied: Decimal, venue_quantity: Decimal, rules: MarketRules) -> BoundExit:
    """An exit of the copied position ``copied`` (the ledger's, signed) bounded by the venue's
    signed ``venue_quantity`` on the same side. When the exit asks for more than the venue shows,
    what the ledger holds beyond it (closed by hand, a liquidation) is never sent: it is written
    off — all of it, so a partial exit that finds less than it closes leaves the ledger at the
    venue's position too. An exit within what the venue shows writes nothing off."""
    held = held_for_exit(sized.side, venue_quantity)
    if sized.quantity <= held:
        return BoundExit(sized, None, ZERO, copied, venue_quantity)
    beyond = max(abs(copied) - held, ZERO)
    capped = cap_exit(sized, held, rules)
    if isinstance(capped, Skip):
        return BoundExit(capped, None, beyond, copied, venue_quantity)
    moved = capped.quantity * capped.side.sign
    missing = sized.quantity - capped.quantity
    note = (
        f"your exchange holds {plain(held)} {rules.base} of the {plain(abs(copied))} {rules.base} copied: this exit "
        f"closes {plain(capped.quantity)}, and the {plain(missing)} {rules.base} closed outside the copier is not "
        "sent"
    )
    return BoundExit(capped, note, beyond, copied + moved, venue_quantity + moved)


def venue_parts(
    follow: FollowSettings, entry: bool, intent: OrderIntent, rules: MarketRules, venue: str
) -> list[tuple[OrderIntent, str | None]] | Skip:
    """The order as the venue takes it at once: itself within the venue's maximum for its type,
    else several parts within it, each under its own id derived from the order's (anything but an
    entry is always split: a capped exit or close would leave the position open, a capped sync the
    drift), or — an ``entry`` of a follow that asks for it — capped at the maximum with the reason.
    Each part with the note it records."""
    maximum = rules.max_order_quantity(intent.order_type)
    if maximum is None or intent.quantity <= maximum:
        return [(intent, None)]
    kind = "market" if intent.order_type is OrderType.MARKET else "limit"
    over = f"{plain(intent.quantity)} {rules.base} is above the {plain(maximum)} {venue} takes in one {kind} order"
    if entry and follow.oversize_action is OversizeAction.CAP:
        rest = intent.quantity - maximum
        note = f"{over}: capped at {plain(maximum)}, {plain(rest)} not copied (your setting: cap large orders)"
        return [(replace(intent, quantity=maximum), note)]
    parts = split_quantity(intent.quantity, maximum, rules.quantity_step)
    minimum = max(rules.min_quantity, rules.quantity_step)
    if any(part < minimum for part in parts):
        return Skip(SkipReason.BELOW_MIN_QUANTITY, f"{over}, and its parts would be below the minimum {minimum}")
    return [
        (
            replace(intent, client_order_id=split_order_id(intent.client_order_id, index), quantity=part),
            f"part {index + 1} of {len(parts)}: {over}",
        )
        for index, part in enumerate(parts)
    ]
