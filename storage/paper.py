"""The paper world on the database: implements ``core.venues.paper.state.PaperWorldStore``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from sqlalchemy import delete, func, select
from sqlmodel import col

from core.ledger import Holding
from core.model import utcnow
from core.venues.paper.state import PaperAccountState, PaperOrderState
from storage.db import Database
from storage.models import PaperAccount, PaperHolding, PaperOrder, PaperPrice


def _order_state(row: PaperOrder) -> PaperOrderState:
    return PaperOrderState(
        client_order_id=row.client_order_id,
        venue_order_id=str(row.venue_order_id),
        symbol=row.symbol,
        side=row.side,
        quantity=row.quantity,
        order_type=row.order_type,
        price=row.price,
        stop_price=row.stop_price,
        reduce_only=row.reduce_only,
        time_in_force=row.time_in_force,
        state=row.state,
        filled=row.filled,
        average_price=row.average_price,
        fee=row.fee,
    )


class PaperWorldStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def load_prices(self) -> dict[str, Decimal]:
        async with self.db.session() as session:
            rows = (await session.execute(select(PaperPrice))).scalars().all()
        return {row.symbol: row.price for row in rows}

    async def last_venue_order_id(self) -> int:
        async with self.db.session() as session:
            last = (await session.execute(select(func.max(PaperOrder.venue_order_id)))).scalar_one()
        return int(last or 0)

    async def load_account(self, account_id: str) -> tuple[PaperAccountState, list[PaperOrderState]] | None:
        async with self.db.session() as session:
            account = await session.get(PaperAccount, account_id)
            if account is None:
                return None
            holdings = (
                (await session.execute(select(PaperHolding).where(col(PaperHolding.account_id) == account_id)))
                .scalars()
                .all()
            )
            orders = (
                (
                    await session.execute(
                        select(PaperOrder)
                        .where(col(PaperOrder.account_id) == account_id)
                        .order_by(col(PaperOrder.venue_order_id))
                    )
                )
                .scalars()
                .all()
            )
        state = PaperAccountState(
            account_id,
            account.balance,
            account.leverage,
            account.realized_pnl,
            account.fees_paid,
            {h.symbol: Holding(h.quantity, h.entry_price, h.realized_pnl, h.fees) for h in holdings},
        )
        return state, [_order_state(row) for row in orders]

    async def save(
        self,
        prices: Mapping[str, Decimal],
        accounts: Sequence[PaperAccountState],
        orders: Sequence[tuple[str, PaperOrderState]],
    ) -> None:
        now = utcnow()
        async with self.db.session() as session:
            stored_prices = (
                {row.symbol: row for row in (await session.execute(select(PaperPrice))).scalars()} if prices else {}
            )
            for symbol, price in prices.items():
                price_row = stored_prices.get(symbol)
                if price_row is None:
                    session.add(PaperPrice(symbol=symbol, price=price))
                elif price_row.price != price:
                    price_row.price = price
            for state in accounts:
                account = await session.get(PaperAccount, state.account_id)
                if account is None:
                    account = PaperAccount(account_id=state.account_id, balance=state.balance)
                    session.add(account)
                account.balance = state.balance
                account.leverage = state.leverage
                account.realized_pnl = state.realized_pnl
                account.fees_paid = state.fees_paid
                account.updated_at = now
                await session.flush()
                await session.execute(delete(PaperHolding).where(col(PaperHolding.account_id) == state.account_id))
                session.add_all(
                    PaperHolding(
                        account_id=state.account_id,
                        symbol=symbol,
                        quantity=h.quantity,
                        entry_price=h.entry_price,
                        realized_pnl=h.realized_pnl,
                        fees=h.fees,
                    )
                    for symbol, h in state.holdings.items()
                )
            for account_id, o in orders:
                order_row = await session.get(PaperOrder, (account_id, o.client_order_id))
                if order_row is None:
                    order_row = PaperOrder(
                        account_id=account_id,
                        client_order_id=o.client_order_id,
                        venue_order_id=int(o.venue_order_id),
                        symbol=o.symbol,
                        side=o.side,
                        quantity=o.quantity,
                        order_type=o.order_type,
                        price=o.price,
                        stop_price=o.stop_price,
                        reduce_only=o.reduce_only,
                        time_in_force=o.time_in_force,
                        state=o.state,
                    )
                    session.add(order_row)
                order_row.state = o.state
                order_row.filled = o.filled
                order_row.average_price = o.average_price
                order_row.fee = o.fee
