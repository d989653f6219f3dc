"""Exact decimal arithmetic shared by storage (what it loads) and the copy log (what it writes)."""

from __future__ import annotations

from decimal import Context, Decimal

#: wide enough for NUMERIC(38, 18): the default context (28 digits) would round such values
EXACT = Context(prec=80)


def plain_decimal(value: Decimal) -> Decimal:
    """Drop trailing zeros without switching to exponent notation (10, not 1E+1), exactly."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1), context=EXACT)
    return value.normalize(EXACT)
