"""One Angel One follower account as a ``Venue``: orders tagged with the client order id,
whole lots, prices on the tick, placement throttled by Angel One's per-account limits."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Any

from core.errors import InvalidOrder, NotAdmitted, OrderStatusUnknown, TemporaryError, UnknownSymbol
from core.model import Execution, MarketRules, OrderIntent, OrderReport, OrderState, OrderType, SkipReason, plain
from core.throttle import Throttle
from core.venues.angelone.constants import (
    AMO_VARIETY,
    ORDER_TYPES,
    ORDERTAG_MAX_LENGTH,
    PLACE_ORDER_LIMITS,
    ProductType,
)
from core.venues.angelone.errors import OrderNotFound
from core.venues.angelone.gates import RequestGate
from core.venues.angelone.instruments import Instrument, InstrumentMaster, split_symbol
from core.venues.angelone.orders import AngelOneOrderEvents
from core.venues.angelone.session import AngelOneSession
from core.venues.angelone.sessions import TradingCalendar
from core.venues.base import ExitScope, OrderEventSource, Position, Venue

log = logging.getLogger(__name__)


def ordertag_for(client_order_id: str) -> str:
    """The order tag Angel One stores with the order (max 20 characters, SEBI algo identification).

    A short alphanumeric client order id is used as is; anything else becomes ``ct`` plus 18 base32
    characters of its SHA-256, so the same id always gives the same tag (``fetch_order`` relies on it).
    """
    if len(client_order_id) <= ORDERTAG_MAX_LENGTH and re.fullmatch(r"[A-Za-z0-9]+", client_order_id):
        return client_order_id
    digest = base64.b32encode(hashlib.sha256(client_order_id.encode()).digest()).decode().lower()
    return "ct" + digest[: ORDERTAG_MAX_LENGTH - 2]


def whole_lots(quantity: Decimal, lot_size: Decimal, symbol: str) -> Decimal:
    """``quantity`` truncated to whole lots; ``InvalidOrder`` when that is less than one lot."""
    lots = (quantity / lot_size).to_integral_value(rounding=ROUND_DOWN)
    if lots < 1:
        raise InvalidOrder(f"quantity {quantity} of {symbol} is below one lot of {lot_size}")
    return lots * lot_size


def round_to_tick(price: Decimal, tick: Decimal) -> Decimal:
    return (price / tick).to_integral_value(rounding=ROUND_HALF_UP) * tick


def _decimal(value: Any) -> Decimal:
    """A JSON number or string as Decimal (via ``str``: the SDK decodes numbers as float)."""
    if value in (None, ""):
        return Decimal(0)
    return Decimal(str(value))


#: the order tags a venue maps back to client order ids (its orders' updates name the tag only);
#: the oldest are forgotten beyond this (an order the tracker polls is remembered again)
REMEMBERED_TAGS = 10_000

#: Angel One's order book statuses (lower case) that end an order; any other is still working
ORDER_STATES = {
    "complete": OrderState.FILLED,
    "cancelled": OrderState.CANCELED,
    "rejected": OrderState.REJECTED,
}
#: statuses of an order that still rests and may be cancelled (an AMO waits for the open)
RESTING_STATUSES = ("open", "trigger pending", "open pending", "after market order req received")


class AngelOneVenue(Venue):
    """One Angel One follower account.

    Orders carry an ``ordertag`` derived from the client order id; ``fetch_order`` finds them by
    it in the order book. The product type comes from ``follow_products[follow_id]`` or
    ``product``; the variety follows from the order type (stop orders need ``STOPLOSS``).
    """

    name = "angelone"
    takes_market_orders = False  # refused for API orders since 1 April 2026: copies are protected limits
    #: None: nothing SmartAPI documents bounds how late a request whose answer was lost may still be
    #: recorded, and nothing says ``ordertag`` refuses a duplicate (the conservative assumption: the
    #: same tag twice makes two orders). Such a copy is never re-sent automatically, and
    #: ``place_order`` ignores ``intent.send_deadline`` (docs/angelone.md, "Orders").
    send_window = None

    def __init__(
        self,
        session: AngelOneSession,
        instruments: InstrumentMaster,
        *,
        segment_gate: Callable[[str], RequestGate],
        calendar: TradingCalendar,
        clock: Callable[[], datetime],
        product: ProductType = ProductType.INTRADAY,
        follow_products: Mapping[int, ProductType] | None = None,
        order_limiter: Throttle | None = None,
        require_egress: bool = False,
    ) -> None:
        self._session = session
        self._instruments = instruments
        self._product_default = ProductType(product)
        self._follow_products = {follow_id: ProductType(p) for follow_id, p in (follow_products or {}).items()}
        self._order_limiter = order_limiter or Throttle(PLACE_ORDER_LIMITS)
        self._segment_gate = segment_gate
        self._require_egress = require_egress
        self._calendar = calendar
        self._clock = clock
        self._client_order_ids: OrderedDict[str, str] = OrderedDict()  # ordertag -> client order id

    @property
    def session(self) -> AngelOneSession:
        return self._session

    def _tag(self, client_order_id: str) -> str:
        """The order tag of ``client_order_id``, remembered so that an order update naming it
        can be mapped back (``client_order_id_of``)."""
        tag = ordertag_for(client_order_id)
        self._client_order_ids[tag] = client_order_id
        self._client_order_ids.move_to_end(tag)
        while len(self._client_order_ids) > REMEMBERED_TAGS:
            self._client_order_ids.popitem(last=False)
        return tag

    def client_order_id_of(self, ordertag: str) -> str | None:
        """The client order id of an order this venue placed, looked up or cancelled by its tag."""
        return self._client_order_ids.get(ordertag)

    def order_events(self) -> OrderEventSource:
        """The account's order-update socket (a connection of its own); the order book and trade
        book polling of ``CopyEngine.track`` stays the fallback."""
        return AngelOneOrderEvents(self._session, self.client_order_id_of)

    def _product_for(self, intent: OrderIntent) -> ProductType:
        """The master's product when the fill carried one, else the follow's, else the default."""
        return self._product(intent.product, intent.follow_id)

    def _product(self, product: str | None, follow_id: int) -> ProductType:
        if product:
            try:
                return ProductType(product.upper())
            except ValueError:
                log.warning("unknown Angel One product %r on a copy; using the configured one", product)
        return self._follow_products.get(follow_id, self._product_default)

    async def market(self, symbol: str) -> MarketRules:
        return (await self._instruments.instrument(symbol)).market_rules()

    async def symbols(self) -> frozenset[str]:
        return await self._instruments.symbols()

    async def equity(self) -> Decimal:
        answer = await self._session.call("reading the account's funds", "rmsLimit")
        data = answer.get("data") or {}
        if data.get("net") in (None, ""):
            raise TemporaryError("Angel One's funds answer had no net value")
        return _decimal(data["net"])

    async def positions(self) -> list[Position]:
        """Today's net positions per instrument and product (``position``: ``netqty`` per
        ``symboltoken`` and ``producttype``; an INTRADAY sell of nothing held is a negative one),
        and the demat holdings (``holding``: shares bought on earlier days, DELIVERY), each read
        through the client's read gate. A DELIVERY exit is bounded by both together; the holdings
        are the user's own shares too (``Position.balance``)."""
        today, held = await asyncio.gather(
            self._rows("reading the positions", "position"), self._rows("reading the holdings", "holding")
        )
        positions = []
        for row in today:
            quantity = _decimal(row.get("netqty"))
            if quantity != 0:
                entry = _decimal(row.get("avgnetprice") or row.get("netprice"))
                product = str(row.get("producttype") or "").upper() or None
                symbol = f"{row['exchange']}:{row['tradingsymbol']}"
                positions.append(Position(symbol, quantity, entry or None, product=product))
        for row in held:
            # ``t1quantity``: bought on the previous trading day, not yet delivered; sellable
            quantity = _decimal(row.get("quantity")) + _decimal(row.get("t1quantity"))
            if quantity > 0:
                symbol = f"{row['exchange']}:{row['tradingsymbol']}"
                cost = _decimal(row.get("averageprice")) or None
                positions.append(Position(symbol, quantity, cost, balance=True, product=ProductType.DELIVERY.value))
        return positions

    async def _rows(self, operation: str, method: str) -> list[Mapping[str, Any]]:
        """The rows of a book read; none where SmartAPI answers "… not found" (AB1015 holding,
        AB1016 position: nothing held)."""
        try:
            answer = await self._session.call(operation, method)
        except OrderNotFound:
            return []
        return list(answer.get("data") or [])

    def bounds_exits(self, rules: MarketRules) -> bool:
        """Always: ``placeOrder`` has no reduce-only flag, so an exit past the position opens the
        other way (an INTRADAY sell of what the broker squared off is a naked short)."""
        return True

    def exit_scope(self, follow_id: int, product: str | None) -> ExitScope:
        """An exit closes the position of the product it is sent under (``_product_for``): the
        follow's or the master's, else the configured one. An INTRADAY position may have been
        squared off by Angel One before the close (its risk policy), which the reason says."""
        chosen = self._product(product, follow_id)
        if chosen is ProductType.INTRADAY:
            return ExitScope(chosen.value, "Angel One squares INTRADAY positions off before the close")
        return ExitScope(chosen.value)

    async def validate(self) -> None:
        """Log in now, then read the profile and the funds: a key that works for both can trade."""
        await self._session.login()
        await self._session.call("reading the profile", "getProfile")
        await self.equity()

    def _check_egress(self, what: str) -> None:
        """Live orders leave only through the client's own egress: Angel One accepts API orders
        only from the client's registered static IP, and one IP serves one client."""
        if self._require_egress and not self._session.has_egress:
            raise InvalidOrder(
                f"{what} was not sent: Angel One client {self._session.client_code} has no registered egress "
                "(connect the key again with its static IP and the proxy that leaves from it)"
            )

    def trading_now(self, symbol: str) -> bool:
        try:
            exchange, _ = split_symbol(symbol)
        except UnknownSymbol:
            return True
        return self._calendar.admission(exchange, self._clock(), margin=timedelta(0)).verdict == "open"

    async def prepare_order(self, intent: OrderIntent) -> OrderIntent:
        """Refuse before anything is sent (``NotAdmitted``, recorded as a skip) an order its market
        does not take now (closed, or closing: an after-market order only where the follow allows
        it) and a protected limit outside the instrument's price band for the day."""
        instrument = await self._instruments.instrument(intent.symbol)
        self._variety(intent, instrument)
        if intent.protected and intent.price is not None:
            await self._check_band(intent, instrument)
        return intent

    def _variety(self, intent: OrderIntent, instrument: Instrument) -> str | None:
        """``AMO`` for an after-market order, ``None`` for a regular one; ``NotAdmitted`` when the
        market takes neither now (docs/angelone.md, "Market hours")."""
        admission = self._calendar.admission(instrument.exchange, self._clock())
        if admission.verdict == "open":
            return None
        if admission.verdict == "after_market" and intent.after_market:
            if intent.order_type is not OrderType.LIMIT:
                raise NotAdmitted(
                    SkipReason.MARKET_CLOSED,
                    f"{admission.why}; an after-market order can only be a LIMIT, not a {intent.order_type.value}",
                )
            return AMO_VARIETY
        if admission.verdict == "after_market":
            raise NotAdmitted(SkipReason.MARKET_CLOSED, f"{admission.why}; after-market orders are off for this follow")
        raise NotAdmitted(SkipReason.MARKET_CLOSED, admission.why)

    async def _check_band(self, intent: OrderIntent, instrument: Instrument) -> None:
        """The day's price band (circuit limits) from SmartAPI's quote (``getMarketData`` FULL:
        ``lowerCircuit``, ``upperCircuit``) bounds a protected limit: outside it the exchange refuses
        the order, so it is not sent."""
        assert intent.price is not None
        answer = await self._session.call(
            "reading the price band", "getMarketData", "FULL", {instrument.exchange: [instrument.token]}
        )
        fetched = (answer.get("data") or {}).get("fetched") or []
        quote = next((q for q in fetched if str(q.get("symbolToken")) == instrument.token), None)
        if quote is None:
            raise TemporaryError(f"Angel One's quote had no price band for {intent.symbol}")
        lower, upper = _decimal(quote.get("lowerCircuit")), _decimal(quote.get("upperCircuit"))
        price = round_to_tick(intent.price, instrument.tick_size)
        if lower <= 0 or upper <= 0 or lower <= price <= upper:
            return
        raise NotAdmitted(
            SkipReason.PRICE_BAND,
            f"the {intent.side.value} limit {plain(price)} of {intent.symbol} is outside today's band "
            f"{plain(lower)}-{plain(upper)}",
        )

    async def place_order(self, intent: OrderIntent) -> OrderReport:
        self._check_egress(f"the order for {intent.symbol}")
        instrument = await self._instruments.instrument(intent.symbol)
        params = self._order_params(intent, instrument, self._variety(intent, instrument))
        await self._order_limiter.acquire()
        async with self._segment_gate(instrument.exchange).slot():
            answer = await self._session.call(
                f"placing an order for {intent.symbol}", "placeOrderFullResponse", params, placing=True
            )
        order_id = (answer.get("data") or {}).get("orderid")
        if not order_id:
            raise OrderStatusUnknown(f"Angel One accepted the order for {intent.symbol} without an order id")
        return OrderReport(str(order_id), intent.client_order_id, OrderState.ACKNOWLEDGED)

    def _order_params(self, intent: OrderIntent, instrument: Instrument, variety_now: str | None) -> dict[str, str]:
        if intent.order_type in (OrderType.MARKET, OrderType.STOP_MARKET) or intent.time_in_force == "IOC":
            raise InvalidOrder(
                f"Angel One refuses market, stop-market and IOC API orders since 1 April 2026: the "
                f"{intent.order_type.value} order for {intent.symbol} was not sent"
            )
        if intent.order_type not in ORDER_TYPES:
            raise InvalidOrder(f"Angel One has no {intent.order_type.value} order type")
        variety, order_type = ORDER_TYPES[intent.order_type]
        quantity = whole_lots(intent.quantity, instrument.lot_size, intent.symbol)
        trigger = Decimal(0)
        if intent.price is None:
            raise InvalidOrder(f"a {intent.order_type.value} order needs a price")
        price = round_to_tick(intent.price, instrument.tick_size)
        if intent.order_type is OrderType.STOP_LIMIT:
            if intent.stop_price is None:
                raise InvalidOrder(f"a {intent.order_type.value} order needs a stop price")
            trigger = round_to_tick(intent.stop_price, instrument.tick_size)
        if price <= 0:
            raise InvalidOrder(
                f"price {intent.price} of {intent.symbol} is not positive on tick {instrument.tick_size}"
            )
        if intent.order_type is OrderType.STOP_LIMIT and trigger <= 0:
            raise InvalidOrder(
                f"stop price {intent.stop_price} of {intent.symbol} is not positive on tick {instrument.tick_size}"
            )
        return {
            "variety": variety_now or variety,
            "tradingsymbol": instrument.trading_symbol,
            "symboltoken": instrument.token,
            "transactiontype": intent.side.value.upper(),
            "exchange": instrument.exchange,
            "ordertype": order_type,
            "producttype": self._product_for(intent).value,
            "duration": "DAY",
            "price": str(price),
            "triggerprice": str(trigger),
            "squareoff": "0",
            "stoploss": "0",
            "quantity": str(int(quantity)),
            "ordertag": self._tag(intent.client_order_id),
        }

    async def price(self, symbol: str) -> Decimal:
        instrument = await self._instruments.instrument(symbol)
        answer = await self._session.call(
            "reading a price", "ltpData", instrument.exchange, instrument.trading_symbol, instrument.token
        )
        return _decimal((answer.get("data") or {}).get("ltp"))

    async def cancel_order(self, client_order_id: str, symbol: str) -> bool:
        tag = self._tag(client_order_id)
        answer = await self._session.call("looking an order up", "orderBook")
        resting = [
            row
            for row in answer.get("data") or []
            if row.get("ordertag") == tag and str(row.get("status") or "").lower() in RESTING_STATUSES
        ]
        if not resting:
            return False
        row = resting[-1]
        self._check_egress(f"the cancellation of order {row['orderid']}")
        try:
            async with self._segment_gate(str(row.get("exchange") or "")).slot():
                await self._session.call(
                    "cancelling an order", "cancelOrder", str(row["orderid"]), str(row.get("variety") or "NORMAL")
                )
        except OrderNotFound:  # it ended between the read and the cancellation
            return False
        return True

    async def fetch_order(self, client_order_id: str, symbol: str) -> OrderReport | None:
        tag = self._tag(client_order_id)
        answer = await self._session.call("looking an order up", "orderBook")
        matches = [row for row in answer.get("data") or [] if row.get("ordertag") == tag]
        if not matches:
            return None
        row = matches[-1]
        order_id = str(row["orderid"])
        status = str(row.get("status") or row.get("orderstatus") or "").lower()
        booked = _decimal(row.get("filledshares"))
        executions = await self._executions(order_id) if booked > 0 else ()
        filled = sum((e.quantity for e in executions), Decimal(0))
        average = sum((e.quantity * e.price for e in executions), Decimal(0)) / filled if filled else None
        state = ORDER_STATES.get(status, OrderState.PARTIALLY_FILLED if filled > 0 else OrderState.ACKNOWLEDGED)
        if state.is_terminal and filled < booked:  # the trade book lags the order book: asked again later
            state = OrderState.PARTIALLY_FILLED if filled > 0 else OrderState.ACKNOWLEDGED
        reason = str(row.get("text") or "") or None if state is OrderState.REJECTED else None
        return OrderReport(order_id, client_order_id, state, filled, average, reason=reason, executions=executions)

    async def _executions(self, order_id: str) -> tuple[Execution, ...]:
        """The order's executions from the trade book: the ledger moves on trades only (the order
        book's ``filledshares`` only says that some exist)."""
        answer = await self._session.call("reading the trade book", "tradeBook")
        return tuple(
            Execution(str(trade.get("fillid") or ""), _decimal(trade.get("fillsize")), _decimal(trade.get("fillprice")))
            for trade in answer.get("data") or []
            if str(trade.get("orderid")) == order_id and _decimal(trade.get("fillsize")) > 0
        )
