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
#: a paper account never loses an answer (an injected lost answer books the order first), so a
#: request is on its book the moment it is answered: no settle time. The window only lets the
#: order sender run the rule it runs for a real venue with one, unchanged.
PAPER_SEND_WINDOW = SendWindow(length=timedelta(seconds=5), settle=timedelta(0))
