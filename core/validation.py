"""Parsing and range checks for everything a user types. Each failure is a ``UserError`` whose
message says what was wrong and what is accepted; nothing is changed when one is raised."""

from __future__ import annotations

import enum
import re
from decimal import Decimal
from typing import TypeVar

from core.errors import UserError
from core.model import OrderType, SizingMode

_Choice = TypeVar("_Choice", bound=enum.StrEnum)

#: accepted range of ``sizing_value`` per mode (exclusive low, inclusive high)
SIZING_LIMITS: dict[SizingMode, tuple[Decimal, Decimal, str]] = {
    SizingMode.COEFFICIENT: (Decimal(0), Decimal(100), "a multiplier of the master's quantity"),
    SizingMode.EQUITY_RATIO: (Decimal(0), Decimal(100), "a multiplier of your equity / the master's equity"),
    SizingMode.FIXED_NOTIONAL: (Decimal(0), Decimal(10_000_000), "an order value in the quote currency"),
    SizingMode.FIXED_QUANTITY: (Decimal(0), Decimal(1_000_000_000), "a quantity in base units or shares"),
}
MAX_DECIMAL_PLACES = 18  # what storage keeps (storage/types.py)
TAKE_PROFIT_MAX = Decimal(100)
SLIPPAGE_MAX = Decimal(50)
STOP_LOSS_MAX = Decimal(100)
MONEY_LIMIT_MAX = Decimal(1_000_000_000)
LEVERAGE_MAX = 125
SYMBOL_LIST_MAX = 100
#: a plain decimal as typed: ASCII digits, an optional sign and one dot; no thousands separators
#: ("1,000"), no underscores ("1_0"), no exponent ("1e3") and no other scripts' digits ("５", "٣")
PLAIN_NUMBER_HINT = (
    "written plainly, like 1000 or 0.5: digits 0-9 and a dot, no thousands separators, comma or exponent"
)
_PLAIN_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9/:_.&-]{0,39}$")
CLEAR_WORDS = {"", "none", "off", "no", "-", "0"}
_TRUE = {"on", "yes", "true", "1", "y"}
_FALSE = {"off", "no", "false", "0", "n"}


def parse_decimal(value: object, field: str, *, low: Decimal, high: Decimal, low_inclusive: bool = False) -> Decimal:
    if isinstance(value, float):
        raise UserError(f"{field} must be given as text or Decimal, not a float")
    if isinstance(value, Decimal):
        number = value
    else:
        number = _plain_decimal(value, field)
    if not number.is_finite():
        raise UserError(f"{field} must be a finite number")
    if number.as_tuple().exponent < -MAX_DECIMAL_PLACES:  # type: ignore[operator]
        raise UserError(f"{field} may have at most {MAX_DECIMAL_PLACES} decimal places")
    too_low = number < low if low_inclusive else number <= low
    if too_low or number > high:
        bound = "at least" if low_inclusive else "more than"
        raise UserError(f"{field} must be {bound} {low} and at most {high}, got {number}")
    return number


def _plain_decimal(value: object, field: str) -> Decimal:
    text = str(value).strip()
    if not _PLAIN_DECIMAL.fullmatch(text):
        raise UserError(f"{field} must be a number, got {text[:20]!r} ({PLAIN_NUMBER_HINT})")
    return Decimal(text)


def parse_sizing(mode: object, value: object) -> tuple[SizingMode, Decimal]:
    sizing_mode = parse_choice(mode, SizingMode, "sizing mode")
    low, high, meaning = SIZING_LIMITS[sizing_mode]
    name = "coefficient" if sizing_mode is SizingMode.COEFFICIENT else sizing_mode.value.replace("_", " ")
    try:
        return sizing_mode, parse_decimal(value, name, low=low, high=high)
    except UserError as exc:
        raise UserError(f"{exc} ({meaning})") from None


def parse_optional_decimal(value: object, field: str, *, high: Decimal) -> Decimal | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in CLEAR_WORDS):
        return None
    return parse_decimal(value, field, low=Decimal(0), high=high)


def parse_bool(value: object, field: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise UserError(f"{field} must be on or off")


def parse_symbols(value: object, field: str) -> list[str]:
    items = value if isinstance(value, (list, tuple, set, frozenset)) else re.split(r"[\s,;]+", str(value))
    symbols = sorted(
        {str(s).strip().upper() for s in items if str(s).strip() and str(s).strip().lower() not in CLEAR_WORDS}
    )
    if len(symbols) > SYMBOL_LIST_MAX:
        raise UserError(f"{field} may hold at most {SYMBOL_LIST_MAX} symbols")
    bad = [s for s in symbols if not _SYMBOL.match(s)]
    if bad:
        raise UserError(f"{bad[0][:40]!r} is not a symbol name")
    return symbols


def parse_order_types(value: object) -> list[str]:
    families = {"market": OrderType.MARKET, "limit": OrderType.LIMIT, "stop": OrderType.STOP_MARKET}
    items = value if isinstance(value, (list, tuple, set, frozenset)) else re.split(r"[\s,;]+", str(value))
    chosen = set()
    for item in items:
        text = str(item.value if isinstance(item, OrderType) else item).strip().lower()
        if not text or text in ("all", "any"):
            continue
        if text in ("stop_market", "stop_limit", "take_profit_market"):
            text = "stop"
        if text not in families:
            raise UserError(f"order type must be market, limit or stop, got {text[:20]!r}")
        chosen.add(families[text].value)
    return sorted(chosen)


def parse_stop_loss(value: object) -> Decimal | None:
    stop = parse_optional_decimal(value, "stop-loss %", high=STOP_LOSS_MAX)
    if stop is not None and stop >= STOP_LOSS_MAX:
        raise UserError("stop-loss % must be below 100 (100 % means the price reached zero)")
    return stop


def parse_leverage(value: object) -> int | None:
    """A whole leverage; "0" is not "off" here but an error (leverage must be at least 1)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in CLEAR_WORDS - {"0"}):
        return None
    leverage = parse_decimal(value, "leverage", low=Decimal(1), high=Decimal(LEVERAGE_MAX), low_inclusive=True)
    if leverage != leverage.to_integral_value():
        raise UserError("leverage must be a whole number")
    return int(leverage)


def parse_choice(value: object, choices: type[_Choice], field: str) -> _Choice:
    text = "" if value is None else str(value).strip().lower()
    names = [choice.value for choice in choices]
    if text not in names:
        raise UserError(f"{field} must be one of {', '.join(names)}")
    return choices(text)


def parse_optional_choice(value: object, choices: type[_Choice], field: str) -> _Choice | None:
    """Like ``parse_choice``; "none", "off", "0" and the like clear the setting."""
    if value is None or str(value).strip().lower() in CLEAR_WORDS:
        return None
    return parse_choice(value, choices, field)
