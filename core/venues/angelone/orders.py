"""A follower account's order updates over SmartAPI's order-update websocket
(``SmartWebSocketOrderUpdate``, the socket the master's listener uses too).

Each update carries the order's ``ordertag``, a hash of copytrade's client order id
(``ordertag_for``): the venue maps it back through the tags of the orders it placed, looked up or
cancelled (``AngelOneVenue.client_order_id_of``). Updates of other orders (the follower's own) are
ignored. An update only names the order; ``AngelOneVenue.fetch_order`` reads what it became from
the order book and the trade book, the one place quantities come from. When the socket closes the
stream ends with ``TemporaryError``: polling covers the account until ``OrderStreams`` reopens it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

from core.errors import TemporaryError
from core.venues.angelone.listener import order_of_message
from core.venues.angelone.sdk import OrderUpdateSocket
from core.venues.angelone.session import AngelOneSession
from core.venues.base import OrderChange, OrderEventSource

log = logging.getLogger(__name__)

#: a socket-thread end marker on the queue (the socket closed)
_CLOSED = None


class AngelOneOrderEvents(OrderEventSource):
    def __init__(self, session: AngelOneSession, client_order_id_of: Callable[[str], str | None]) -> None:
        self._session = session
        self._client_order_id_of = client_order_id_of
        self._socket: OrderUpdateSocket | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"angelone-updates-{session.client_code}")

    async def changes(self) -> AsyncIterator[OrderChange]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        await self._session.ensure_logged_in()
        socket = self._socket = self._session.order_update_socket(
            on_open=lambda: None,
            on_message=lambda text: loop.call_soon_threadsafe(queue.put_nowait, text),
            on_close=lambda: loop.call_soon_threadsafe(queue.put_nowait, _CLOSED),
        )
        running = loop.run_in_executor(self._thread, socket.connect)

        def ended(future: asyncio.Future[None]) -> None:  # also when it never opened
            if not future.cancelled() and future.exception() is not None:
                log.info("Angel One order-update socket failed: %s", type(future.exception()).__name__)
            queue.put_nowait(_CLOSED)

        running.add_done_callback(ended)
        try:
            while (text := await queue.get()) is not _CLOSED:
                order = order_of_message(text)
                if order is None:
                    continue
                client_order_id = self._client_order_id_of(str(order.get("ordertag") or ""))
                if client_order_id is not None:
                    symbol = f"{str(order.get('exchange') or '').upper()}:{order.get('tradingsymbol') or ''}"
                    yield OrderChange(client_order_id, symbol)
        finally:
            socket.close_connection()
        raise TemporaryError(f"the order-update socket of Angel One client {self._session.client_code} closed")

    async def close(self) -> None:
        if self._socket is not None:
            self._socket.close_connection()
        self._thread.shutdown(wait=False, cancel_futures=True)
