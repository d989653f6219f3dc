"""A venue that answers every order at once, filled at the reference price, and keeps nothing:
what the engine-overhead benchmark times is then the engine's own work, not a venue's.

The answer comes on the event loop's next turn (one ``sleep(0)``), as from any venue behind a
socket: an adapter that answered within the call would let each copy record its result before
the next copy's order is even sent, which no real venue does.

It never loses an answer, so it takes the paper venue's send window (half a second, no settle time): the
order sender then runs the same deadline rule as for a venue with a window, and an order whose
deadline has passed on this venue's clock (this process's) is ``NotSent``."""

from __future__ import annotations

import asyncio
import itertools
from decimal import Decimal

from core.errors import NotSent, UnknownSymbol
from core.model import MarketRules, OrderIntent, OrderReport, OrderState, utcnow
from core.venues.base import Position, Venue
from core.venues.paper.constants import PAPER_SEND_WINDOW
from core.venues.registry import VenueAccount

NAME = "instant"
SYMBOL = "BTC/USDT:USDT"
RULES = MarketRules(
    symbol=SYMBOL,
    base="BTC",
    quote="USDT",
    quantity_step=Decimal("0.001"),
    price_tick=Decimal("0.1"),
    min_quantity=Decimal("0.001"),
    min_notional=Decimal(5),
    derivative=True,
)


class InstantVenue(Venue):
    name = NAME
    send_window = PAPER_SEND_WINDOW

    def __init__(self) -> None:
        self._order_ids = itertools.count(1)

    async def market(self, symbol: str) -> MarketRules:
        if symbol != SYMBOL:
            raise UnknownSymbol(f"{symbol} is not listed on the instant venue")
        return RULES

    async def symbols(self) -> frozenset[str]:
        return frozenset({SYMBOL})

    async def equity(self) -> Decimal:
        return Decimal(1_000_000)

    async def place_order(self, intent: OrderIntent) -> OrderReport:
        if intent.send_deadline is not None and utcnow() >= intent.send_deadline:
            raise NotSent(f"the order {intent.client_order_id} was not sent: its send deadline has passed")
        await asyncio.sleep(0)
        return OrderReport(
            venue_order_id=str(next(self._order_ids)),
            client_order_id=intent.client_order_id,
            state=OrderState.FILLED,
            filled_quantity=intent.quantity,
            average_price=intent.reference_price,
        )

    async def fetch_order(self, client_order_id: str, symbol: str) -> OrderReport | None:
        return None

    async def positions(self) -> list[Position]:
        return []

    async def price(self, symbol: str) -> Decimal:
        return Decimal(60_000)

    async def cancel_order(self, client_order_id: str, symbol: str) -> bool:
        return False


async def open_instant_venue(account: VenueAccount) -> Venue:
    return InstantVenue()
