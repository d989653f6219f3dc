"""What the paper venue offers and the bounds of a simulated account."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from core.venues.base import SendWindow
from core.venues.driver import VenueSpec

PAPER_VENUE = VenueSpec("paper", "Paper trading (simulated)", ("api_key",), optional_fields=("balance",))
#: a paper account's cash when its credential names none, in the quote currency
DEFAULT_BALANCE = Decimal(10_000)
#: the largest starting balance a user may give
MAX_BALANCE = Decimal(1_000_000_000)
#: a paper account queues nothing: a request is on its book once it reaches it (after the account's
#: simulated latency), so no settle time, and a window just longer than any latency it simulates
#: (an order injected to be accepted late, ``PaperVenue.fail_next(booked_after=...)``, arrives
#: within it or is refused). The sender runs the rule it runs for a real venue, unchanged, and a
#: lost answer costs it half a second.
PAPER_SEND_WINDOW = SendWindow(length=timedelta(milliseconds=500), settle=timedelta(0))
