"""Per-follow filters and limits applied before an order is sized and sent."""

from __future__ import annotations

import re
from decimal import Decimal

from core.model import Fill, FollowSettings, OrderType, Skip, SkipReason
from core.sizing import round_down

_LEADING_NAME = re.compile(r"^[A-Z&]+")


def symbol_aliases(symbol: str) -> frozenset[str]:
    """The names a user may type for a symbol in an allow or block list.

    ccxt unified "BTC/USDT:USDT" answers to BTC, BTCUSDT and BTC/USDT; Angel One's
    "NFO:NIFTY24DEC24000CE" answers to NIFTY24DEC24000CE and its underlying, NIFTY.
    """
    upper = symbol.upper()
    aliases = {upper}
    if "/" in upper:
        pair = upper.split(":", 1)[0]
        base, _, quote = pair.partition("/")
        aliases |= {pair, base, base + quote}
    elif ":" in upper:
        trading_symbol = upper.split(":", 1)[1]
        aliases.add(trading_symbol)
        name = _LEADING_NAME.match(trading_symbol)
        if name:
            aliases.add(name.group(0))
    return frozenset(aliases)


def normalise_symbol_list(symbols: list[str] | tuple[str, ...] | frozenset[str]) -> frozenset[str]:
    return frozenset(s.strip().upper() for s in symbols if s.strip())


def check_filters(settings: FollowSettings, fill: Fill) -> Skip | None:
    """The follow's symbol and order-type choices; ``None`` when the fill may be copied."""
    aliases = symbol_aliases(fill.symbol)
    if settings.blocked_symbols and aliases & settings.blocked_symbols:
        return Skip(SkipReason.SYMBOL_BLOCKED, fill.symbol)
    if settings.allowed_symbols and not aliases & settings.allowed_symbols:
        return Skip(SkipReason.SYMBOL_NOT_ALLOWED, fill.symbol)
    if settings.order_types and _type_family(fill.order_type) not in settings.order_types:
        return Skip(SkipReason.ORDER_TYPE_FILTERED, f"{fill.order_type.value} orders are off")
    return None


def _type_family(order_type: OrderType) -> OrderType:
    """Stop and take-profit variants are filtered together with their base type."""
    if order_type in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_MARKET):
        return OrderType.STOP_MARKET
    return order_type


def cap_to_max_position(
    quantity: Decimal,
    current_position: Decimal,
    price: Decimal,
    max_notional: Decimal | None,
    *,
    step: Decimal,
    contract_size: Decimal = Decimal(1),
) -> tuple[Decimal, Skip | None]:
    """Reduce an entry so the copied position's notional stays within ``max_notional``.

    Returns the (possibly reduced) quantity, or zero and a ``Skip`` when nothing fits.
    """
    if max_notional is None:
        return quantity, None
    unit_value = contract_size * price
    room = max_notional - abs(current_position) * unit_value
    if room <= 0:
        return Decimal(0), Skip(
            SkipReason.MAX_POSITION,
            f"position is already {abs(current_position) * unit_value:.2f}, limit {max_notional}",
        )
    if quantity * unit_value <= room:
        return quantity, None
    reduced = round_down(room / unit_value, step)
    if reduced <= 0:
        return Decimal(0), Skip(SkipReason.MAX_POSITION, f"only {room:.2f} of room left under the limit {max_notional}")
    return reduced, None
