"""The one interface every venue adapter implements (ccxt, Angel One, paper).

The engine sees only this: vendor SDK imports stay inside the adapters, and every vendor
error is mapped to ``core.errors`` at the adapter's edge.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from core.model import MarketRules, MasterEvent, OrderIntent, OrderReport, PositionSide, utcnow


@dataclass(frozen=True, slots=True)
class Position:
    symbol: str
    quantity: Decimal  # signed: long > 0, short < 0
    entry_price: Decimal | None = None
    position_side: PositionSide = PositionSide.BOTH  # LONG / SHORT: one of a hedge-mode account's two
    #: a coin balance (spot), not a position: the user's own coins are in it too
    balance: bool = False
    #: the product it is held under where the venue keeps positions apart by product (Angel One:
    #: INTRADAY, DELIVERY, CARRYFORWARD, MARGIN); ``None`` where it does not
    product: str | None = None


@dataclass(frozen=True, slots=True)
class ExitScope:
    """Which of a venue's positions an exit closes where the venue keeps them apart by product
    (``Venue.exit_scope``): the exit is bounded by the positions of ``product`` only, and what the
    ledger holds beyond them is written off with ``closed_by`` (who may have closed it) in its reason."""

    product: str
    closed_by: str | None = None


@dataclass(frozen=True, slots=True)
class SendWindow:
    """How a venue bounds the life of an order request whose answer was lost: it refuses a request
    that reaches it after the deadline the request is signed with (Binance: ``timestamp +
    recvWindow``, answered -1021). This is what lets the order sender prove a lost order can no
    longer execute before it sends it again (docs/architecture.md, "The resend rule")."""

    #: how far ahead of the venue's clock each order request's deadline is set
    length: timedelta
    #: after the deadline has passed on the venue's clock, how much longer before a look-up's
    #: "no such order" is taken as final (an accepted request still queued inside the venue)
    settle: timedelta


class Venue(abc.ABC):
    """One authenticated account on one venue. One instance per account (ccxt's rule)."""

    #: venue identifier stored with credentials and fills, e.g. "paper", "binanceusdm", "angelone"
    name: str

    @abc.abstractmethod
    async def market(self, symbol: str) -> MarketRules:
        """Trading rules for ``symbol``; raises ``UnknownSymbol`` if the venue does not list it."""

    @abc.abstractmethod
    async def symbols(self) -> frozenset[str]:
        """Every symbol the venue lists, in the form ``market`` accepts (validates allow lists)."""

    @abc.abstractmethod
    async def equity(self) -> Decimal:
        """Account equity in the quote currency used for equity-ratio sizing."""

    #: None where nothing the venue documents proves that a lost request can no longer execute
    #: (Angel One): such a copy is never re-sent automatically
    send_window: SendWindow | None = None

    @abc.abstractmethod
    async def place_order(self, intent: OrderIntent) -> OrderReport:
        """Send ``intent`` with its client order id. Raises a ``VenueError`` subclass on failure;
        ``OrderStatusUnknown`` when the request may have reached the venue; ``DuplicateOrder`` when
        the venue already holds an order with that id. With ``intent.send_deadline`` (a venue with
        a ``send_window``), the request is signed so that the venue refuses it after that moment;
        ``NotSent`` when too little of it is left to sign the request."""

    async def prepare_order(self, intent: OrderIntent) -> OrderIntent:
        """Do now what ``place_order`` would otherwise do before sending (markets, the symbol's
        leverage and position mode, a spot sell capped to the free balance), and return the order
        as it will be sent: the sender prepares before it fences and stamps the send deadline, so
        that slow preparations never eat the request's window."""
        return intent

    async def ready_to_send(self) -> None:  # noqa: B027 (an optional hook: nothing by default)
        """Wait until one more order may leave by the venue's rate limits (its order counts, a pause
        the venue imposed): the sender waits here before it prepares the order and stamps the
        deadline, then checks the entry's age again, so a wait never eats the request's window."""

    def send_deadline(self) -> datetime | None:
        """The deadline for an order request signed now: the venue's clock as this adapter
        estimates it plus the send window; ``None`` for a venue without one."""
        window = self.send_window
        return None if window is None else self.estimated_venue_time() + window.length

    def estimated_venue_time(self) -> datetime:
        """The venue's clock as this adapter estimates it without asking (its measured offset)."""
        return utcnow()

    async def venue_time(self) -> datetime:
        """The venue's clock now, as the venue answers it (the proof of a deadline having passed
        is never this process's own clock)."""
        return utcnow()

    def trading_now(self, symbol: str) -> bool:
        """Whether ``symbol``'s market trades now (always, on a venue that never closes). While it
        does not, a protected limit's window does not end: an after-market order waits for the
        open, and nothing re-priced could be sent before it."""
        return True

    @abc.abstractmethod
    async def fetch_order(self, client_order_id: str, symbol: str) -> OrderReport | None:
        """Look an order up by client order id; ``None`` when the venue has no such order."""

    async def completed_commission(self, report: OrderReport, symbol: str, *, read: bool) -> OrderReport | None:
        """``report`` (a fill recorded with ``fee_pending``) with its commission: from what this
        account's order stream pushed, else — with ``read`` — from one read of the venue's trades;
        ``None`` while it is not known. Only a venue whose reports say ``fee_pending`` is asked;
        the others give every fee with the fill, so they have nothing to complete."""
        return None

    @abc.abstractmethod
    async def positions(self) -> list[Position]:
        """Open positions (spot: non-zero base balances of listed markets)."""

    def bounds_exits(self, rules: MarketRules) -> bool:
        """Whether an exit in this market must be bounded by the position ``positions`` shows before
        it is sent: where the venue refuses a reduce-only order larger than the position (Binance
        USD-M, -2022) or has no reduce-only flag at all, so that the excess would open the other way
        (Angel One: a naked short). The engine then reads ``positions`` once per account for the
        exits of one moment, sends at most what it shows, and records the rest as drift. ``False``
        where the adapter bounds a sell itself (a spot sell capped to the free balance)."""
        return False

    def exit_scope(self, follow_id: int, product: str | None) -> ExitScope | None:
        """The product an exit of follow ``follow_id`` goes out under (``product``: the follow's or
        the master's, else the venue's default for the follow), where the venue keeps a position per
        product and an exit of one product never closes another's (Angel One: selling INTRADAY what
        is held DELIVERY opens an INTRADAY short). ``None`` where positions have no product."""
        return None

    async def hedge_mode(self) -> bool:
        """Whether the account keeps a long and a short apart per symbol (Binance USD-M hedge
        mode): then it copies a hedge-mode master's legs each on its side, else it nets them."""
        return False

    @abc.abstractmethod
    async def price(self, symbol: str) -> Decimal:
        """The current price of ``symbol`` (last trade or mark): slippage guard, TP/SL watch, PnL."""

    #: False when the venue refuses market and IOC orders (Angel One's API orders since April 2026):
    #: the engine then sends a market copy as a protected LIMIT (``core.engine.protected_limit``)
    takes_market_orders: bool = True

    #: True when the venue holds stop-market / take-profit-market orders itself (TP/SL are then
    #: placed there); False when a price watcher must close positions instead.
    supports_conditional_orders: bool = False

    @abc.abstractmethod
    async def cancel_order(self, client_order_id: str, symbol: str) -> bool:
        """Cancel an open order; False when it no longer rests (filled, cancelled, unknown)."""

    async def validate(self) -> None:
        """Check the credentials authenticate and may trade. Raises ``AuthenticationError`` or
        ``PermissionDenied`` with a plain explanation."""
        await self.equity()

    async def warm_up(self) -> None:  # noqa: B027 (an optional hook: nothing by default)
        """Fetch now what the first order would otherwise wait for (markets, account mode), so
        that it does not: called when the service starts. Failures are left for the order."""

    def order_events(self) -> OrderEventSource | None:
        """A stream of this account's own order changes (a new connection of its own), or
        ``None`` where the venue pushes none: its orders are then followed by polling only."""
        return None

    async def close(self) -> None:  # noqa: B027 (an optional hook: nothing by default)
        """Release network resources. Called once on shutdown."""


@dataclass(frozen=True, slots=True)
class OrderChange:
    """The venue pushed an update of this account's order (a fill, a cancellation, ...)."""

    client_order_id: str
    symbol: str


class OrderEventSource(abc.ABC):
    """A follower account's order updates as its venue pushes them. Only *which* order changed is
    taken from it: what it changed to is read by client order id, the look-up polling uses, so a
    stream and a poll can never disagree about quantities or fees."""

    @abc.abstractmethod
    def changes(self) -> AsyncIterator[OrderChange]:
        """Yield changed orders as they are pushed; raises ``VenueError`` when the stream fails."""

    async def close(self) -> None:  # noqa: B027 (an optional hook: nothing by default)
        """Release the stream's connection."""


class FillSource(abc.ABC):
    """A master account's stream of executions (websocket, or polling where there is no feed), and
    of its orders' cancellations, expiries and amendments where the venue reports them."""

    @abc.abstractmethod
    def fills(self) -> AsyncIterator[MasterEvent]:
        """Yield the master's executions (``Fill``) and order changes (``MasterOrderEvent``) as they
        happen, in the order the venue reported them, recovering gaps on reconnect."""

    async def close(self) -> None:  # noqa: B027 (an optional hook: nothing by default)
        """Release the stream's connections and threads. Called before a stream is reopened."""
