"""What the paper venue offers and the bounds of a simulated account."""

from __future__ import annotations

from decimal import Decimal

from core.venues.driver import VenueSpec

PAPER_VENUE = VenueSpec("paper", "Paper trading (simulated)", ("api_key",), optional_fields=("balance",))
#: a paper account's cash when its credential names none, in the quote currency
DEFAULT_BALANCE = Decimal(10_000)
#: the largest starting balance a user may give
MAX_BALANCE = Decimal(1_000_000_000)
