"""The executions an account's own order stream pushed, kept for the account's order look-ups.

A Binance order as its REST look-up gives it carries no commission (USD-M ``/fapi/v1/order``,
spot ``/api/v3/order``); each execution's commission is pushed on the account's user-data stream
(USD-M ``ORDER_TRADE_UPDATE`` and spot ``executionReport`` with ``x=TRADE``: ``t`` the trade id,
``l``/``L`` its quantity and price, ``n`` the commission and ``N`` its asset — "will not push if no
commission"; docs/research/binance.md §3) and is in the account's trade list (USD-M
``userTrades``, weight 5; spot ``myTrades``, weight 20). When the stream has shown every execution
of an order, the look-up takes the commissions from here and reads no trade list.

Every raw message of the stream is seen (not ccxt's parsed orders, which keep the last update of
an order and the first trade's fee), so two executions arriving between two reads are both kept.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from core.venues.ccxt.constants import STREAMED_ORDERS

#: (market id, venue order id)
OrderKey = tuple[str, str]


class StreamedExecutions:
    """Executions by order, for the most recent ``capacity`` orders (bounded memory)."""

    def __init__(self, capacity: int = STREAMED_ORDERS) -> None:
        self._capacity = capacity
        self._orders: OrderedDict[OrderKey, dict[str, dict[str, Any]]] = OrderedDict()

    def on_message(self, message: Any) -> None:
        """Keep the execution a raw Binance user-data message carries, if it carries one: USD-M
        ``{"e": "ORDER_TRADE_UPDATE", "o": {…}}``; spot over the WebSocket API
        ``{"subscriptionId": n, "event": {"e": "executionReport", …}}``."""
        if not isinstance(message, Mapping):
            return
        event = message.get("event", message)
        if not isinstance(event, Mapping):
            return
        if event.get("e") == "ORDER_TRADE_UPDATE":
            update = event.get("o")
        elif event.get("e") == "executionReport":
            update = event
        else:
            return
        if isinstance(update, Mapping) and update.get("x") == "TRADE":
            self._add(update)

    def trades(self, market_id: str, order_id: str, filled: Decimal) -> list[dict[str, Any]] | None:
        """The order's executions as ccxt trades (``id``, ``amount``, ``price``, ``fee``) when the
        ones seen add up to ``filled``; None when some were not seen (the trade list is read)."""
        executions = self._orders.get((market_id, order_id))
        if not executions or filled <= 0:
            return None
        if sum((Decimal(e["amount"]) for e in executions.values()), Decimal(0)) != filled:
            return None
        return [dict(e) for e in executions.values()]

    def _add(self, update: Mapping[str, Any]) -> None:
        try:
            quantity, price = Decimal(str(update["l"])), Decimal(str(update["L"]))
            commission = Decimal(str(update.get("n") or "0"))
        except (KeyError, InvalidOperation):
            return
        key = (str(update.get("s") or ""), str(update.get("i") or ""))
        trade_id = str(update.get("t") or "")
        if not all(key) or not trade_id or quantity <= 0:
            return
        asset = update.get("N")
        self._orders.setdefault(key, {})[trade_id] = {
            "id": trade_id,
            "amount": str(quantity),
            "price": str(price),
            "fee": {"cost": str(commission), "currency": asset} if asset else None,
        }
        self._orders.move_to_end(key)
        while len(self._orders) > self._capacity:
            self._orders.popitem(last=False)
