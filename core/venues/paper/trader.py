"""Simulated master traders on the paper exchange: the offline demo, ``copytrade run`` in paper
mode and the bot in paper mode (``SimulatedMasters`` on a schedule) use them to produce a
realistic stream of fills (entries, adds, partial and full exits, reversals, both sides, market
and limit orders) while prices move."""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from decimal import ROUND_FLOOR, Decimal

from core.errors import VenueError
from core.model import OrderIntent, OrderType, Side
from core.sizing import round_down
from core.venues.base import Venue
from core.venues.paper.venue import PaperExchange, PaperVenue

log = logging.getLogger(__name__)

#: the scheduler job that runs ``SimulatedMasters.step``
SIMULATED_MASTERS_JOB = "paper-masters"

#: typical master order size per symbol, in base units (low, high)
SIZES = {
    "BTC/USDT:USDT": (Decimal("0.02"), Decimal("0.2")),
    "ETH/USDT:USDT": (Decimal("0.3"), Decimal("3")),
    "SOL/USDT:USDT": (Decimal("5"), Decimal("60")),
}


class PaperTrader:
    def __init__(
        self, exchange: PaperExchange, account: PaperVenue, rng: random.Random, symbols: tuple[str, ...] = tuple(SIZES)
    ) -> None:
        self.exchange = exchange
        self.account = account
        self.rng = rng
        self.symbols = symbols

    def _random_size(self, symbol: str) -> Decimal:
        low, high = SIZES.get(symbol, (Decimal(1), Decimal(10)))
        step = self.exchange.rules(symbol).quantity_step
        raw = low + (high - low) * Decimal(self.rng.random())
        return max(round_down(raw, step), max(step, self.exchange.rules(symbol).min_quantity))

    def move_prices(self) -> None:
        for symbol in self.symbols:
            rules = self.exchange.rules(symbol)
            change = Decimal(self.rng.uniform(-0.01, 0.01)).quantize(Decimal("0.0001"))
            price = self.exchange.prices[symbol] * (1 + change)
            self.exchange.set_price(
                symbol, (price / rules.price_tick).to_integral_value(ROUND_FLOOR) * rules.price_tick
            )

    async def step(self) -> str:
        """Move prices, then make one trade; returns what was done, in words."""
        self.move_prices()
        await self.exchange.flush()  # resting orders the move executed are kept before anything else
        symbol = self.rng.choice(self.symbols)
        holdings = {p.symbol: p.quantity for p in await self.account.positions()}
        held = holdings.get(symbol, Decimal(0))
        step = self.exchange.rules(symbol).quantity_step
        if held == 0:
            side = self.rng.choice([Side.BUY, Side.SELL])
            quantity, action, reduce_only = self._random_size(symbol), "open", False
        else:
            roll = self.rng.random()
            closing = Side.SELL if held > 0 else Side.BUY
            if roll < 0.3:
                side, quantity, action, reduce_only = closing.opposite, self._random_size(symbol), "add", False
            elif roll < 0.6:
                half = round_down(abs(held) / 2, step)
                if half < step:
                    half = abs(held)
                side, quantity, action, reduce_only = closing, half, "partial exit", True
            elif roll < 0.85:
                side, quantity, action, reduce_only = closing, abs(held), "full exit", True
            else:
                side, quantity, action, reduce_only = closing, abs(held) + self._random_size(symbol), "reverse", False
        limit = self.rng.random() < 0.2 and not reduce_only
        price = self.exchange.prices[symbol]
        await self.account.place_order(
            OrderIntent(
                follow_id=0,
                # numbered after the account's orders, which a restarted paper world keeps
                client_order_id=f"master-{len(self.account.orders) + 1}",
                symbol=symbol,
                side=side,
                quantity=quantity,
                order_type=OrderType.LIMIT if limit else OrderType.MARKET,
                price=price if limit else None,
                reduce_only=reduce_only,
            )
        )
        return f"{action} {side.value} {quantity} {symbol}"


class SimulatedMasters:
    """Every paper master trades: one ``PaperTrader`` per master account, one step each per
    ``step()``. The bot's paper mode runs ``step`` on a schedule, so a new follower sees copies
    without anyone trading by hand."""

    def __init__(
        self,
        exchange: PaperExchange,
        masters: Callable[[], Awaitable[Sequence[tuple[int, Venue]]]],
        rng: random.Random,
    ) -> None:
        self.exchange = exchange
        self._masters = masters
        self.rng = rng
        self._traders: dict[int, PaperTrader] = {}

    async def step(self) -> list[str]:
        """One trade per paper master; a trade the simulated venue refuses is logged and skipped."""
        done = []
        for master_id, venue in await self._masters():
            if not isinstance(venue, PaperVenue):
                continue
            trader = self._traders.get(master_id)
            if trader is None or trader.account is not venue:
                trader = self._traders[master_id] = PaperTrader(self.exchange, venue, self.rng)
            try:
                done.append(f"master #{master_id}: {await trader.step()}")
            except VenueError as exc:
                log.warning("simulated master #%s did not trade: %s", master_id, exc)
        return done
