"""A follower account's order updates over ccxt.pro (``watch_orders``): Binance's user-data
stream (USD-M ``ORDER_TRADE_UPDATE`` over a listen key; spot ``executionReport`` over the
WebSocket API). Each update only names the order; ``CcxtVenue.fetch_order`` reads what it
became, so fees and cumulative quantities come from one place (ccxt's websocket orders keep the
first trade's fee, ccxt/pro/binance.py ``handle_order``). Every raw message is also handed to the
account's ``StreamedExecutions`` first, so that look-up finds each execution's commission there
instead of reading the trade list.

A USD-M stream rides on a listen key that Binance expires 60 minutes after its creation or last
keep-alive (docs/research/binance.md §3), and ccxt 4.5.90 keeps it alive once only: the key is kept
alive here every ``keepalive_seconds`` while the stream is watched (spot's WebSocket API needs no key)."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from core.venues.base import OrderChange, OrderEventSource
from core.venues.ccxt.constants import LISTEN_KEY_KEEPALIVE_SECONDS
from core.venues.ccxt.executions import StreamedExecutions

if TYPE_CHECKING:
    from core.venues.ccxt.venue import CcxtVenue


class CcxtOrderEvents(OrderEventSource):
    def __init__(
        self,
        stream: CcxtVenue,
        executions: StreamedExecutions,
        *,
        keepalive_seconds: float = LISTEN_KEY_KEEPALIVE_SECONDS,
    ) -> None:
        self._stream = stream  # a ccxt.pro instance of its own (one websocket per account)
        self._executions = executions  # shared with the account's venue, which looks orders up
        self._keepalive = keepalive_seconds
        # ccxt binds a new socket's message handler when it opens the socket: seen from here first
        exchange = stream.exchange
        exchange.handle_message = functools.partial(self._on_message, exchange.handle_message)

    def _on_message(self, handle: Callable[[Any, Any], Any], client: Any, message: Any) -> Any:
        self._executions.on_message(message)
        return handle(client, message)

    async def changes(self) -> AsyncIterator[OrderChange]:
        await self._stream.ensure_markets()
        exchange = self._stream.exchange
        next_keepalive = time.monotonic() + self._keepalive
        watch: asyncio.Future[Any] | None = None
        try:
            while True:
                watch = asyncio.ensure_future(exchange.watch_orders())
                while not watch.done():
                    await asyncio.wait({watch}, timeout=max(0.0, next_keepalive - time.monotonic()))
                    if time.monotonic() >= next_keepalive:
                        await self._keep_listen_key_alive()
                        next_keepalive = time.monotonic() + self._keepalive
                try:
                    orders = watch.result()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    raise self._stream.mapped(exc) from None
                for order in orders:
                    client_order_id = order.get("clientOrderId")
                    if client_order_id and order.get("symbol"):
                        yield OrderChange(str(client_order_id), str(order["symbol"]))
        finally:
            if watch is not None and not watch.done():
                watch.cancel()
                await asyncio.gather(watch, return_exceptions=True)

    async def _keep_listen_key_alive(self) -> None:
        """USD-M: extend the listen key 60 minutes (a PUT through the account's REST URLs);
        raises ``VenueError`` when Binance no longer has it (-1125): the stream then ends."""
        if self._stream.name == "binanceusdm":
            await self._stream.read(lambda: self._stream.exchange.fapiPrivatePutListenKey())

    async def close(self) -> None:
        await self._stream.close()
