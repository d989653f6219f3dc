"""Column types that keep money exact and time zone-aware on every backend."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import DateTime, Numeric, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from core.numbers import EXACT, plain_decimal

#: decimal places every backend stores; more than any venue's precision, and identical everywhere
STORED_PLACES = Decimal(10) ** -18


class ExactDecimal(TypeDecorator[Decimal]):
    """NUMERIC(38, 18) where the database has it; text on SQLite, whose NUMERIC is a float.

    Both store exactly 18 decimal places: a longer value (an average price such as 1/3) is
    rounded half-even here, explicitly, so that no backend rounds it differently on its own.
    """

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(Numeric(38, 18, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> object:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"expected Decimal for a money column, got {type(value).__name__}")
        stored = value.quantize(STORED_PLACES, rounding=ROUND_HALF_EVEN, context=EXACT)
        if stored.adjusted() >= 20:
            raise ValueError(f"{value} does not fit NUMERIC(38, 18)")
        return str(stored) if dialect.name == "sqlite" else stored

    def process_result_value(self, value: object, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return plain_decimal(Decimal(str(value)) if not isinstance(value, Decimal) else value)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC; always returns an aware datetime (SQLite drops the offset otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> object:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
