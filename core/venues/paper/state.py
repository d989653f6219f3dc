"""What of the paper world outlives the process, and the interface that keeps it.

``PaperExchange`` hands snapshots of its accounts (balance, positions, orders) and prices to a
``PaperWorldStore`` after every change, and restores them when an account is first opened, so a
restart continues where it stopped. ``storage.paper.PaperWorldStore`` implements it on the
database; core never imports storage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from core.ledger import Holding
from core.model import OrderState, OrderType, Side


@dataclass(frozen=True, slots=True)
class PaperOrderState:
    """One order of a paper account as the exchange books it (what matching needs of its intent)."""

    client_order_id: str
    venue_order_id: str
    symbol: str
    side: Side
    quantity: Decimal
    order_type: OrderType
    price: Decimal | None
    stop_price: Decimal | None
    reduce_only: bool
    time_in_force: str | None
    state: OrderState
    filled: Decimal
    average_price: Decimal | None
    fee: Decimal


@dataclass(frozen=True, slots=True)
class PaperAccountState:
    """One paper account: cash, leverage, totals and its positions by symbol."""

    account_id: str
    balance: Decimal
    leverage: int
    realized_pnl: Decimal
    fees_paid: Decimal
    holdings: Mapping[str, Holding]


class PaperWorldStore(Protocol):
    """Where the paper world is kept between runs."""

    async def load_prices(self) -> dict[str, Decimal]: ...
    async def last_venue_order_id(self) -> int: ...
    async def load_account(self, account_id: str) -> tuple[PaperAccountState, list[PaperOrderState]] | None: ...
    async def save(
        self,
        prices: Mapping[str, Decimal],
        accounts: Sequence[PaperAccountState],
        orders: Sequence[tuple[str, PaperOrderState]],
    ) -> None:
        """In one transaction: the prices given (none when they did not move), each account with
        all its holdings (a position closed since is removed) and the orders given (by account id)
        inserted or updated."""
        ...
