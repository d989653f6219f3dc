"""An in-process simulated venue: the demo, dry runs, tests and benchmarks run on it.

``PaperExchange`` is the shared world (markets with real-looking rules, a price feed);
``PaperVenue`` is one account in it with its own balance, positions and orders. Accounts
behave like a strict exchange: quantities must sit on the step, minimums are enforced,
a client order id is accepted once, margin and spot holdings are checked. Latency and
failures can be injected per account, and every execution can be watched as a ``Fill``
stream, which is how a paper master feeds the engine.

Given a ``PaperWorldStore`` (``core/venues/paper/state.py``), the exchange keeps its prices and
every account opened through ``open_account`` there, saved after each change: a restarted
process continues with the same balances, positions and orders.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from core.errors import DuplicateOrder, InsufficientFunds, InvalidOrder, NotSent, UnknownSymbol, VenueError
from core.ledger import Holding, apply_execution
from core.model import (
    CopyStatus,
    Fill,
    FillStatus,
    MarketRules,
    OrderIntent,
    OrderReport,
    OrderState,
    OrderType,
    Side,
    utcnow,
)
from core.sizing import round_down
from core.venues.base import Position, Venue
from core.venues.paper.constants import PAPER_SEND_WINDOW
from core.venues.paper.state import PaperAccountState, PaperOrderState, PaperWorldStore

log = logging.getLogger(__name__)

ZERO = Decimal(0)


def default_markets() -> dict[str, MarketRules]:
    """Rules modelled on Binance USD-M futures and spot."""
    rules = [
        MarketRules(
            "BTC/USDT:USDT",
            "BTC",
            "USDT",
            Decimal("0.001"),
            Decimal("0.1"),
            Decimal("0.001"),
            Decimal("100"),
            max_quantity=Decimal("1000"),  # Binance's LOT_SIZE and MARKET_LOT_SIZE maximums
            derivative=True,
            max_market_quantity=Decimal("120"),
        ),
        MarketRules(
            "ETH/USDT:USDT",
            "ETH",
            "USDT",
            Decimal("0.001"),
            Decimal("0.01"),
            Decimal("0.001"),
            Decimal("20"),
            derivative=True,
        ),
        MarketRules(
            "SOL/USDT:USDT", "SOL", "USDT", Decimal("1"), Decimal("0.001"), Decimal("1"), Decimal("5"), derivative=True
        ),
        MarketRules("BTC/USDT", "BTC", "USDT", Decimal("0.00001"), Decimal("0.01"), Decimal("0.00001"), Decimal("5")),
        MarketRules("ETH/USDT", "ETH", "USDT", Decimal("0.0001"), Decimal("0.01"), Decimal("0.0001"), Decimal("5")),
    ]
    return {r.symbol: r for r in rules}


def default_prices() -> dict[str, Decimal]:
    return {
        "BTC/USDT:USDT": Decimal("60000"),
        "ETH/USDT:USDT": Decimal("3000"),
        "SOL/USDT:USDT": Decimal("150"),
        "BTC/USDT": Decimal("60000"),
        "ETH/USDT": Decimal("3000"),
    }


class PaperExchange:
    """The shared simulated market. Markets are held once, whatever the number of accounts."""

    name = "paper"

    def __init__(
        self,
        markets: dict[str, MarketRules] | None = None,
        prices: dict[str, Decimal] | None = None,
        *,
        fee_rate: Decimal = Decimal("0.0004"),
        depth: Decimal | None = None,
        store: PaperWorldStore | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.markets = markets if markets is not None else default_markets()
        #: the simulated venue's own clock (UTC): its send deadlines and its executions' times
        self.clock = clock
        self.prices = prices if prices is not None else default_prices()
        self.fee_rate = fee_rate
        #: what one price move can fill of each resting order (None: all of it), so resting
        #: orders fill in parts as real books do; market orders always fill at once
        self.depth = depth
        self.store = store
        self._accounts: dict[str, PaperVenue] = {}
        self._ids = itertools.count(1)
        self._restored = store is None
        self._open_lock = asyncio.Lock()
        self._save_lock = asyncio.Lock()
        self._changed: dict[str, set[str]] = {}  # account id -> client order ids changed since the last save
        self._prices_changed = False

    def rules(self, symbol: str) -> MarketRules:
        try:
            return self.markets[symbol]
        except KeyError:
            raise UnknownSymbol(f"{symbol} is not listed on the paper exchange") from None

    def price(self, symbol: str) -> Decimal:
        self.rules(symbol)
        return self.prices[symbol]

    def set_price(self, symbol: str, price: Decimal) -> None:
        """Move the market; resting orders whose price is crossed execute."""
        self.rules(symbol)
        self.prices[symbol] = price
        self._prices_changed = True
        for account in self._accounts.values():
            account.on_price(symbol, price)

    def next_id(self) -> str:
        return str(next(self._ids))

    def account(
        self, account_id: str, *, balance: Decimal = Decimal(10_000), leverage: int = 10, latency: float = 0.0
    ) -> PaperVenue:
        """The account ``account_id``, created on first use (the same object afterwards)."""
        if account_id not in self._accounts:
            self._accounts[account_id] = PaperVenue(
                self, account_id, balance=balance, leverage=leverage, latency=latency
            )
        return self._accounts[account_id]

    def accounts(self) -> list[PaperVenue]:
        return list(self._accounts.values())

    # -- persistence ----------------------------------------------------------------------------

    async def open_account(self, account_id: str, *, balance: Decimal = Decimal(10_000)) -> PaperVenue:
        """The account ``account_id`` as the store kept it, else created with ``balance``."""
        if account_id in self._accounts:
            return self._accounts[account_id]
        async with self._open_lock:
            if account_id in self._accounts:
                return self._accounts[account_id]
            if self.store is None:
                return self.account(account_id, balance=balance)
            if not self._restored:
                stored_prices = await self.store.load_prices()
                self.prices.update({s: p for s, p in stored_prices.items() if s in self.markets})
                self._ids = itertools.count(await self.store.last_venue_order_id() + 1)
                self._restored = True
            stored = await self.store.load_account(account_id)
            if stored is None:
                venue = self.account(account_id, balance=balance)
                self._changed.setdefault(account_id, set())
            else:
                venue = self._restore(*stored)
        await self.flush()
        return venue

    def _restore(self, state: PaperAccountState, orders: list[PaperOrderState]) -> PaperVenue:
        venue = PaperVenue(self, state.account_id, balance=state.balance, leverage=state.leverage)
        venue.realized_pnl = state.realized_pnl
        venue.fees_paid = state.fees_paid
        venue.holdings = dict(state.holdings)
        for o in orders:
            intent = OrderIntent(
                follow_id=0,
                client_order_id=o.client_order_id,
                symbol=o.symbol,
                side=o.side,
                quantity=o.quantity,
                order_type=o.order_type,
                price=o.price,
                stop_price=o.stop_price,
                reduce_only=o.reduce_only,
                time_in_force=o.time_in_force,
            )
            venue.orders[o.client_order_id] = PaperOrder(
                o.venue_order_id, o.client_order_id, intent, o.state, o.filled, o.average_price, o.fee
            )
        self._accounts[state.account_id] = venue
        return venue

    def changed(self, account_id: str, client_order_id: str | None = None) -> None:
        """Account ``account_id`` (and one of its orders) changed: saved by the next ``flush``."""
        orders = self._changed.setdefault(account_id, set())
        if client_order_id is not None:
            orders.add(client_order_id)

    async def flush(self) -> None:
        """Save what changed since the last flush (nothing without a store). Saves run one at a
        time, each taking the state as it is when it starts, so a later state is never
        overwritten by an earlier one. A save that fails is logged and its changes kept for the
        next flush: the simulated exchange keeps trading (an order it booked is booked)."""
        if self.store is None:
            return
        async with self._save_lock:
            changed, self._changed = self._changed, {}
            prices_changed, self._prices_changed = self._prices_changed, False
            if not changed and not prices_changed:
                return
            accounts = [self._accounts[a].snapshot() for a in changed if a in self._accounts]
            orders = [
                (a, self._accounts[a].orders[c].snapshot())
                for a, ids in changed.items()
                if a in self._accounts
                for c in ids
            ]
            try:
                await self.store.save(dict(self.prices) if prices_changed else {}, accounts, orders)
            except BaseException as exc:
                for account_id, ids in changed.items():  # kept for the next flush
                    self._changed.setdefault(account_id, set()).update(ids)
                self._prices_changed = self._prices_changed or prices_changed
                if not isinstance(exc, Exception):  # cancelled: the caller stops
                    raise
                log.warning("the paper world was not saved (kept for the next save): %s", exc)


@dataclass
class PaperOrder:
    venue_order_id: str
    client_order_id: str
    intent: OrderIntent
    state: OrderState
    filled: Decimal = ZERO
    average_price: Decimal | None = None
    fee: Decimal = ZERO

    @property
    def status(self) -> CopyStatus:
        return self.state.copy_status(self.filled)

    @property
    def resting(self) -> bool:
        return not self.state.is_terminal

    def ack(self) -> OrderReport:
        return OrderReport(
            self.venue_order_id, self.client_order_id, self.state, self.filled, self.average_price, self.fee
        )

    def snapshot(self) -> PaperOrderState:
        intent = self.intent
        return PaperOrderState(
            client_order_id=self.client_order_id,
            venue_order_id=self.venue_order_id,
            symbol=intent.symbol,
            side=intent.side,
            quantity=intent.quantity,
            order_type=intent.order_type,
            price=intent.price,
            stop_price=intent.stop_price,
            reduce_only=intent.reduce_only,
            time_in_force=intent.time_in_force,
            state=self.state,
            filled=self.filled,
            average_price=self.average_price,
            fee=self.fee,
        )


@dataclass
class _InjectedFailure:
    error: VenueError
    times: int
    after_accepting: bool  # the order is booked, then the error raised (a lost response)
    booked_after: float | None = None  # the error raised at once, the order booked this much later


@dataclass
class PaperVenue(Venue):
    exchange: PaperExchange
    account_id: str
    balance: Decimal = Decimal(10_000)  # cash in the quote currency
    leverage: int = 10
    latency: float = 0.0
    orders: dict[str, PaperOrder] = field(default_factory=dict)  # by client order id
    holdings: dict[str, Holding] = field(default_factory=dict)
    realized_pnl: Decimal = ZERO
    fees_paid: Decimal = ZERO
    place_calls: int = 0
    _failures: deque[_InjectedFailure] = field(default_factory=deque)
    _late: set[asyncio.Task[None]] = field(default_factory=set)  # orders on their way to being booked late
    _watchers: list[asyncio.Queue[Fill]] = field(default_factory=list)
    _trade_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    #: trade ids must never repeat, even across restarts, since the journal keys fills on them
    _trade_prefix: str = field(default_factory=lambda: secrets.token_hex(6))
    master_id: int = 0  # set when this account is a master whose fills are watched
    name: str = "paper"

    # -- test and demo controls -------------------------------------------------------------

    def fail_next(
        self, error: VenueError, *, times: int = 1, after_accepting: bool = False, booked_after: float | None = None
    ) -> None:
        """Make the next ``times`` order placements raise ``error``.

        With ``after_accepting`` the order is booked before the error is raised, as when a
        response is lost after the venue executed the request. With ``booked_after`` the error is
        raised at once and the order reaches the matching engine that many seconds later — or
        never, when that is past its send deadline (Binance's "execution status unknown": an
        order may still be processed after its answer was lost, never after its recvWindow).
        """
        self._failures.append(_InjectedFailure(error, times, after_accepting, booked_after))

    def _take_failure(self) -> _InjectedFailure | None:
        if not self._failures:
            return None
        failure = self._failures[0]
        failure.times -= 1
        if failure.times <= 0:
            self._failures.popleft()
        return failure

    def snapshot(self) -> PaperAccountState:
        return PaperAccountState(
            self.account_id, self.balance, self.leverage, self.realized_pnl, self.fees_paid, dict(self.holdings)
        )

    # -- Venue --------------------------------------------------------------------------------

    async def market(self, symbol: str) -> MarketRules:
        return self.exchange.rules(symbol)

    async def symbols(self) -> frozenset[str]:
        return frozenset(self.exchange.markets)

    supports_conditional_orders = True  # stop and take-profit orders rest here and trigger on price
    send_window = PAPER_SEND_WINDOW  # a class attribute, not a dataclass field (no annotation)

    def estimated_venue_time(self) -> datetime:
        return self.exchange.clock()

    async def venue_time(self) -> datetime:
        return self.exchange.clock()

    async def price(self, symbol: str) -> Decimal:
        return self.exchange.price(symbol)

    async def cancel_order(self, client_order_id: str, symbol: str) -> bool:
        await self._wait()
        order = self.orders.get(client_order_id)
        if order is None or not order.resting:
            return False
        order.state = OrderState.CANCELED
        self.exchange.changed(self.account_id, client_order_id)
        await self.exchange.flush()
        return True

    async def equity(self) -> Decimal:
        equity = self.balance
        for symbol, holding in self.holdings.items():
            if holding.quantity == 0:
                continue
            rules = self.exchange.rules(symbol)
            price = self.exchange.prices[symbol]
            if rules.derivative:
                equity += (price - (holding.entry_price or price)) * holding.quantity * rules.contract_size
            else:
                equity += holding.quantity * price
        return equity

    async def positions(self) -> list[Position]:
        return [Position(s, h.quantity, h.entry_price) for s, h in self.holdings.items() if h.quantity != 0]

    def bounds_exits(self, rules: MarketRules) -> bool:
        return rules.derivative  # a reduce-only order above the position is refused (``_execute``)

    async def fetch_order(self, client_order_id: str, symbol: str) -> OrderReport | None:
        await self._wait()
        order = self.orders.get(client_order_id)
        return order.ack() if order is not None else None

    async def place_order(self, intent: OrderIntent) -> OrderReport:
        self.place_calls += 1
        self._check_deadline(intent, "not sent")
        await self._wait()
        self._check_deadline(intent, "refused on arrival")  # the latency ate the rest of it
        failure = self._take_failure()
        if failure is not None and failure.booked_after is not None:
            late = asyncio.create_task(self._book_late(intent, failure.booked_after))
            self._late.add(late)
            late.add_done_callback(self._late.discard)
            raise failure.error
        if failure is not None and not failure.after_accepting:
            raise failure.error
        order = self._book(intent)
        await self.exchange.flush()
        if failure is not None:
            raise failure.error
        return order.ack()

    async def _book_late(self, intent: OrderIntent, delay: float) -> None:
        await asyncio.sleep(delay)
        deadline = intent.send_deadline
        if deadline is not None and self.exchange.clock() >= deadline:
            return  # it reached the matching engine past its deadline: refused
        try:
            self._book(intent)
        except VenueError:  # refused as any order would be (a duplicate id, the rules)
            return
        await self.exchange.flush()

    def _check_deadline(self, intent: OrderIntent, what: str) -> None:
        """``NotSent`` when the request's send deadline has passed on this venue's clock: before
        the (simulated) network, the adapter does not send it; after it, the venue refuses it.
        Either way nothing is booked, so sending it again is safe."""
        deadline = intent.send_deadline
        if deadline is not None and self.exchange.clock() >= deadline:
            raise NotSent(f"the order {intent.client_order_id} was {what}: its send deadline {deadline} has passed")

    async def _wait(self) -> None:
        if self.latency:
            await asyncio.sleep(self.latency)

    # -- matching -----------------------------------------------------------------------------

    def _book(self, intent: OrderIntent) -> PaperOrder:
        if intent.client_order_id in self.orders:
            raise DuplicateOrder(f"duplicate client order id {intent.client_order_id}")
        rules = self.exchange.rules(intent.symbol)
        self._check_rules(intent, rules)
        order = PaperOrder(self.exchange.next_id(), intent.client_order_id, intent, OrderState.ACKNOWLEDGED)
        price = self.exchange.prices[intent.symbol]
        if self._executes_now(intent, price):
            self._execute(
                order, rules, intent.price if intent.order_type is OrderType.LIMIT and intent.price else price
            )
        elif intent.time_in_force == "IOC":
            order.state = OrderState.EXPIRED  # immediate-or-cancel: nothing could fill, so nothing rests
        self.orders[intent.client_order_id] = order
        self.exchange.changed(self.account_id, intent.client_order_id)
        return order

    def _check_rules(self, intent: OrderIntent, rules: MarketRules) -> None:
        if intent.quantity % rules.quantity_step != 0:
            raise InvalidOrder(f"quantity {intent.quantity} is not a multiple of the step {rules.quantity_step}")
        if intent.quantity < rules.min_quantity:
            raise InvalidOrder(f"quantity {intent.quantity} is below the minimum {rules.min_quantity}")
        if intent.price is not None and intent.price % rules.price_tick != 0:
            raise InvalidOrder(f"price {intent.price} is not on the tick {rules.price_tick}")
        maximum = rules.max_order_quantity(intent.order_type)
        if maximum is not None and intent.quantity > maximum:
            raise InvalidOrder(f"quantity {intent.quantity} is above the maximum {maximum} of one order")
        reference = intent.price or self.exchange.prices[intent.symbol]
        notional = intent.quantity * rules.contract_size * reference
        if notional < rules.min_notional and not (intent.reduce_only and rules.derivative):
            raise InvalidOrder(f"order value {notional} is below the minimum {rules.min_notional}")
        if intent.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) and intent.price is None:
            raise InvalidOrder("a limit order needs a price")
        if (
            intent.order_type in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_MARKET)
            and intent.stop_price is None
        ):
            raise InvalidOrder("a stop order needs a stop price")

    @staticmethod
    def _executes_now(intent: OrderIntent, price: Decimal) -> bool:
        if intent.order_type is OrderType.MARKET:
            return True
        if intent.order_type is OrderType.LIMIT:
            assert intent.price is not None
            return price <= intent.price if intent.side is Side.BUY else price >= intent.price
        assert intent.stop_price is not None
        if intent.order_type is OrderType.TAKE_PROFIT_MARKET:
            return price <= intent.stop_price if intent.side is Side.BUY else price >= intent.stop_price
        return price >= intent.stop_price if intent.side is Side.BUY else price <= intent.stop_price

    def on_price(self, symbol: str, price: Decimal) -> None:
        for order in list(self.orders.values()):
            if order.intent.symbol == symbol and order.resting and self._executes_now(order.intent, price):
                fill_price = (
                    order.intent.price if order.intent.order_type is OrderType.LIMIT and order.intent.price else price
                )
                rules = self.exchange.rules(symbol)
                part = order.intent.quantity - order.filled
                if self.exchange.depth is not None and order.intent.order_type is OrderType.LIMIT:
                    part = min(part, max(round_down(self.exchange.depth, rules.quantity_step), rules.quantity_step))
                try:
                    self._execute(order, rules, fill_price, part)
                except VenueError:
                    order.state = OrderState.EXPIRED  # refused on trigger: the venue expires it (what filled stays)
                self.exchange.changed(self.account_id, order.client_order_id)

    def _execute(self, order: PaperOrder, rules: MarketRules, price: Decimal, part: Decimal | None = None) -> None:
        """Execute ``part`` of the order (all that is left by default) at ``price``."""
        intent = order.intent
        quantity = part if part is not None else intent.quantity - order.filled
        holding = self.holdings.get(intent.symbol, Holding())
        signed = quantity * intent.side.sign
        if intent.reduce_only and (
            holding.quantity == 0 or (holding.quantity > 0) == (signed > 0) or abs(signed) > abs(holding.quantity)
        ):
            raise InvalidOrder("reduce-only order would increase or reverse the position")
        notional = quantity * rules.contract_size * price
        fee = (notional * self.exchange.fee_rate).quantize(Decimal("0.00000001"))
        if rules.derivative:
            holding = self._execute_derivative(holding, signed, price, fee, rules)
        else:
            holding = self._execute_spot(holding, signed, price, notional, fee, rules)
        self.holdings[intent.symbol] = holding
        self.fees_paid += fee
        filled = order.filled + quantity
        order.average_price = (order.filled * (order.average_price or price) + quantity * price) / filled
        order.filled = filled
        order.state = OrderState.FILLED if filled == intent.quantity else OrderState.PARTIALLY_FILLED
        order.fee += fee
        self._publish(order, price, quantity)

    def _execute_derivative(
        self, holding: Holding, signed: Decimal, price: Decimal, fee: Decimal, rules: MarketRules
    ) -> Holding:
        opening = holding.quantity == 0 or (holding.quantity > 0) == (signed > 0)
        opened_part = abs(signed) if opening else max(ZERO, abs(signed) - abs(holding.quantity))
        if opened_part > 0:
            margin_needed = opened_part * rules.contract_size * price / self.leverage + fee
            if margin_needed > self._available_margin():
                raise InsufficientFunds(
                    f"margin is insufficient: needs {margin_needed:.2f} {rules.quote},"
                    f" available {self._available_margin():.2f}"
                )
        after, realized = apply_execution(holding, signed, price, fee)
        pnl = realized * rules.contract_size
        self.realized_pnl += pnl
        self.balance += pnl - fee
        return after

    def _execute_spot(
        self, holding: Holding, signed: Decimal, price: Decimal, notional: Decimal, fee: Decimal, rules: MarketRules
    ) -> Holding:
        if signed > 0 and notional + fee > self.balance:
            raise InsufficientFunds(
                f"balance is insufficient: needs {notional + fee:.2f} {rules.quote}, have {self.balance:.2f}"
            )
        if signed < 0 and -signed > holding.quantity:
            raise InsufficientFunds(f"only {holding.quantity} {rules.base} held, cannot sell {-signed}")
        after, realized = apply_execution(holding, signed, price, fee)
        self.realized_pnl += realized
        self.balance += -notional - fee if signed > 0 else notional - fee
        return after

    def _available_margin(self) -> Decimal:
        used = ZERO
        unrealized = ZERO
        for symbol, holding in self.holdings.items():
            rules = self.exchange.rules(symbol)
            if rules.derivative and holding.quantity:
                price = self.exchange.prices[symbol]
                used += abs(holding.quantity) * rules.contract_size * price / self.leverage
                unrealized += (price - (holding.entry_price or price)) * holding.quantity * rules.contract_size
        return self.balance + unrealized - used

    # -- fills as a stream (a paper master) -----------------------------------------------------

    def _publish(self, order: PaperOrder, price: Decimal, quantity: Decimal) -> None:
        if not self._watchers:
            return
        intent = order.intent
        fill = Fill(
            master_id=self.master_id,
            venue=f"paper:{self.account_id}",
            trade_id=f"{self._trade_prefix}-{next(self._trade_ids)}",
            order_id=order.venue_order_id,
            symbol=intent.symbol,
            side=intent.side,
            quantity=quantity,
            price=price,
            order_type=intent.order_type,
            status=FillStatus.FILLED if order.state is OrderState.FILLED else FillStatus.PARTIALLY_FILLED,
            reduce_only=intent.reduce_only,
            limit_price=intent.price,
            stop_price=intent.stop_price,
            executed_at=self.exchange.clock(),
        )
        for queue in self._watchers:
            queue.put_nowait(fill)
