"""The master's executions on Angel One: order-update websocket first, order-book polling behind it.

The websocket (``SmartWebSocketOrderUpdate``) pushes every order change. When it is down the order
book is polled (default every second, never faster than one request per second), and every
(re)connect triggers one recovery poll for what happened in the gap. Both feeds go through one
``FillTracker`` that remembers each order's cumulative filled quantity, so an execution is emitted
once however many times, and by whichever feed, it is seen. A fill's quantity is the newly filled
increment and its trade id is ``"{orderid}:{cumulative filled}"``. The tracker also remembers each
order's status and limit price: an order that executed something and then shows "cancelled", or
is still working at another limit price (the master's modifyOrder; whether the update then says
"modified" or "open" is not documented, so the price decides), becomes a ``MasterOrderEvent``
after its fill, so that its resting copies follow it.

At start the order book is read once. Without a journaled history (no ``checkpoint``) every
order in it is the baseline and is not copied. With one, an order the journal has fills of is
resumed from the journaled quantity (``order_progress``) and one it has none of is replayed when
it changed at or after the checkpoint: executions made while copytrade was down are emitted once,
with the trade ids the live feed would have given them, so the journal takes each only once. The
order book is Angel One's of the day: a gap across a day is not recoverable.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from core.errors import RateLimited, TemporaryError, VenueError
from core.model import Fill, FillStatus, MasterEvent, MasterOrderChange, MasterOrderEvent, OrderType, Side, utcnow
from core.retry import ExponentialBackoff, Retries
from core.throttle import RateLimit, Throttle
from core.venues.angelone.constants import (
    ANGEL_ONE_VENUE,
    ANGEL_TIME_FORMAT,
    IST,
    MASTER_ORDER_TYPES,
    ORDER_BOOK_POLL_SECONDS,
    PRICE_PLACES,
)
from core.venues.angelone.sdk import OrderUpdateSocket
from core.venues.angelone.session import AngelOneSession
from core.venues.base import FillSource

log = logging.getLogger(__name__)


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value)) if value not in (None, "") else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def _updated_at(order: Mapping[str, Any]) -> datetime | None:
    """When the order last changed (the exchange's time, to the second), if the book says."""
    for key in ("exchorderupdatetime", "updatetime", "exchtime"):
        text = str(order.get(key) or "")
        try:
            return datetime.strptime(text, ANGEL_TIME_FORMAT).replace(tzinfo=IST).astimezone(UTC)
        except ValueError:
            continue
    return None


def _executed_at(order: Mapping[str, Any]) -> datetime:
    return _updated_at(order) or utcnow()


@dataclass
class _OrderProgress:
    filled: Decimal
    average_price: Decimal


#: order-book statuses of an order still working on the exchange (docs/research/angelone.md §2)
_WORKING = frozenset({"open", "modified", "open pending", "trigger pending", "validation pending"})


def _status(order: Mapping[str, Any]) -> str:
    return str(order.get("status") or order.get("orderstatus") or "").lower()


class FillTracker:
    """Turns order snapshots (from the socket or the book, in any order, any number of times) into
    fills of the newly filled increments. Snapshots that are not newer than what was seen are ignored."""

    def __init__(self, master_id: int) -> None:
        self._master_id = master_id
        self._orders: dict[str, _OrderProgress] = {}
        #: order id -> (status, limit price, update time) last seen
        self._states: dict[str, tuple[str, Decimal, datetime | None]] = {}

    def remember(self, order: Mapping[str, Any]) -> None:
        """Record an order's progress without emitting it (the start-up baseline)."""
        order_id = str(order.get("orderid") or "")
        if order_id:
            self.seed(order_id, _decimal(order.get("filledshares")), _decimal(order.get("averageprice")))
            self._states[order_id] = (_status(order), _decimal(order.get("price")), _updated_at(order))

    def observe_all(self, order: Mapping[str, Any]) -> list[MasterEvent]:
        """What ``order`` tells that was not told before: its new execution, then what became of
        the order (``change``)."""
        fill = self.observe(order)
        change = self.change(order)
        return [event for event in (fill, change) if event is not None]

    def change(self, order: Mapping[str, Any]) -> MasterOrderEvent | None:
        """The master's order, having executed something, now shows "cancelled", or works at
        another limit price than last seen (first seen: when its status says "modified"). A
        snapshot older than the last one seen (by the book's update time) changes nothing."""
        order_id = str(order.get("orderid") or "")
        if not order_id:
            return None
        state = (_status(order), _decimal(order.get("price")), _updated_at(order))
        before = self._states.get(order_id)
        if before is not None and before[2] is not None and state[2] is not None and state[2] < before[2]:
            return None  # an older snapshot (a poll read before the socket's update): nothing new
        self._states[order_id] = state
        if _decimal(order.get("filledshares")) <= 0 or before is not None and state[:2] == before[:2]:
            return None  # copies exist only of executions
        symbol = f"{str(order.get('exchange', '')).upper()}:{order.get('tradingsymbol', '')}"
        status, price, _ = state
        at = _executed_at(order)
        if status == "cancelled" and (before is None or before[0] != status):
            return MasterOrderEvent(self._master_id, order_id, symbol, MasterOrderChange.CANCELED, at=at)
        moved = before[1] != price if before is not None else status == "modified"
        if status in _WORKING and price > 0 and moved:
            return MasterOrderEvent(self._master_id, order_id, symbol, MasterOrderChange.AMENDED, price, at)
        return None

    def seed(self, order_id: str, filled: Decimal, average_price: Decimal) -> None:
        """What of an order was emitted before (journaled by an earlier run): only what the order
        filled beyond ``filled`` is emitted from now on."""
        self._orders[order_id] = _OrderProgress(filled, average_price)

    def observe(self, order: Mapping[str, Any]) -> Fill | None:
        """The fill for what ``order`` adds to its order's filled quantity, or None if nothing new."""
        order_id = str(order.get("orderid") or "")
        filled = _decimal(order.get("filledshares"))
        if not order_id or filled <= 0:
            return None
        seen = self._orders.get(order_id, _OrderProgress(Decimal(0), Decimal(0)))
        if filled <= seen.filled:
            return None
        average = _decimal(order.get("averageprice"))
        side = {"BUY": Side.BUY, "SELL": Side.SELL}.get(str(order.get("transactiontype", "")).upper())
        if side is None or average <= 0:
            return None  # an unreadable snapshot: wait for a better one rather than guess
        increment = filled - seen.filled
        price = ((average * filled - seen.average_price * seen.filled) / increment).quantize(PRICE_PLACES)
        if price <= 0:
            price = average
        self._orders[order_id] = _OrderProgress(filled, average)
        order_type = MASTER_ORDER_TYPES.get(str(order.get("ordertype", "")).upper(), OrderType.MARKET)
        quantity = _decimal(order.get("quantity"))
        complete = _status(order) == "complete"
        limit_price = _decimal(order.get("price"))
        stop_price = _decimal(order.get("triggerprice"))
        return Fill(
            master_id=self._master_id,
            venue=f"{ANGEL_ONE_VENUE.name}:{self._master_id}",  # order ids are per account: the master keys them
            trade_id=f"{order_id}:{filled.normalize():f}",
            order_id=order_id,
            symbol=f"{str(order.get('exchange', '')).upper()}:{order.get('tradingsymbol', '')}",
            side=side,
            quantity=increment,
            price=price,
            order_type=order_type,
            status=FillStatus.FILLED if complete or filled >= quantity else FillStatus.PARTIALLY_FILLED,
            limit_price=limit_price
            if order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) and limit_price > 0
            else None,
            stop_price=stop_price
            if order_type in (OrderType.STOP_LIMIT, OrderType.STOP_MARKET) and stop_price > 0
            else None,
            executed_at=_executed_at(order),
            product=str(order.get("producttype") or "").upper() or None,  # copied unless the follow overrides it
        )


@dataclass(frozen=True, slots=True)
class ListenerHealth:
    connected: bool
    mode: str  # "socket" or "polling"
    last_event_at: datetime | None
    reconnects: int
    last_error: str | None = None


class AngelOneFillSource(FillSource):
    """One Angel One master account's executions as a ``Fill`` stream, with a ``MasterOrderEvent``
    when an order that executed something is cancelled or modified.

    ``poll_interval`` applies while the socket is down, ``connected_poll_interval`` is a slow safety
    net while it is up (a message can be lost without the socket dropping), ``min_poll_spacing``
    caps order-book reads (Angel One allows one per second).
    """

    def __init__(
        self,
        session: AngelOneSession,
        master_id: int,
        *,
        poll_interval: float = 1.0,
        connected_poll_interval: float = 30.0,
        min_poll_spacing: float = ORDER_BOOK_POLL_SECONDS,
        reconnect_delay: float = 1.0,
        max_reconnect_delay: float = 30.0,
        clock: Callable[[], datetime] = utcnow,
        checkpoint: Callable[[], Awaitable[datetime | None]] | None = None,
        order_progress: Callable[[Sequence[str]], Awaitable[Mapping[str, tuple[Decimal, Decimal]]]] | None = None,
    ) -> None:
        self._session = session
        self._master_id = master_id
        self._checkpoint = checkpoint
        self._order_progress = order_progress
        self._tracker = FillTracker(master_id)
        self._poll_interval = poll_interval
        self._connected_poll_interval = connected_poll_interval
        self._poll_spacing = Throttle([RateLimit(1, min_poll_spacing)])
        self._reconnect_delay = reconnect_delay
        self._max_reconnect_delay = max_reconnect_delay
        self._clock = clock
        self._queue: asyncio.Queue[MasterEvent] = asyncio.Queue()
        self._poll_requested = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._socket: OrderUpdateSocket | None = None
        self._socket_thread = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"angelone-orders-{session.client_code}"
        )
        self._connected = False
        self._ever_connected = False
        self._last_event_at: datetime | None = None
        self._reconnects = 0
        self._last_error: str | None = None
        self._closed = False

    def health(self) -> ListenerHealth:
        return ListenerHealth(
            connected=self._connected,
            mode="socket" if self._connected else "polling",
            last_event_at=self._last_event_at,
            reconnects=self._reconnects,
            last_error=self._last_error,
        )

    async def fills(self) -> AsyncIterator[MasterEvent]:
        if not self._tasks:
            await self._start()
        while True:
            yield await self._queue.get()

    async def close(self) -> None:
        self._closed = True
        if self._socket is not None:
            self._socket.close_connection()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._socket_thread.shutdown(wait=False, cancel_futures=True)

    # -- start-up -------------------------------------------------------------------------------

    async def _start(self) -> None:
        """Take the order book as the baseline, replay what the journal lacks, then start the
        socket and the poller."""
        while True:
            try:
                baseline = await self._read_order_book()
                break
            except (TemporaryError, RateLimited) as exc:
                self._last_error = str(exc)
                log.warning("Angel One master %s: baseline order book read failed, retrying: %s", self._master_id, exc)
                await asyncio.sleep(self._poll_interval)
        missed = await self._not_journaled(baseline)
        for order in missed:
            self._ingest(order)
        if missed:
            log.info("Angel One master %s: replaying %d orders changed while down", self._master_id, len(missed))
        self._tasks = [
            asyncio.create_task(self._run_socket(), name=f"angelone-socket-{self._session.client_code}"),
            asyncio.create_task(self._run_poller(), name=f"angelone-poller-{self._session.client_code}"),
        ]

    async def _not_journaled(self, book: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """Remember the book as the baseline, except the orders whose executions the journal may
        lack: those are returned (oldest change first) to be emitted beyond what it has."""
        checkpoint = await self._checkpoint() if self._checkpoint is not None else None
        if checkpoint is None:  # no journaled history: nothing in the book is copytrade's to copy
            for order in book:
                self._tracker.remember(order)
            return []
        filled = [str(o.get("orderid")) for o in book if o.get("orderid") and _decimal(o.get("filledshares")) > 0]
        progress = await self._order_progress(filled) if self._order_progress is not None and filled else {}
        missed = []
        for order in book:
            order_id = str(order.get("orderid") or "")
            updated = _updated_at(order)
            if order_id in progress:
                self._tracker.seed(order_id, *progress[order_id])
                missed.append(order)
            elif updated is not None and updated >= checkpoint:
                missed.append(order)
            else:
                self._tracker.remember(order)
        return sorted(missed, key=lambda order: _updated_at(order) or checkpoint)

    # -- feeds -------------------------------------------------------------------------------------

    def _ingest(self, order: Mapping[str, Any]) -> None:
        for event in self._tracker.observe_all(order):
            self._queue.put_nowait(event)

    async def _read_order_book(self) -> list[Mapping[str, Any]]:
        await self._poll_spacing.acquire()
        answer = await self._session.call("reading the master's order book", "orderBook")
        return list(answer.get("data") or [])

    async def _run_poller(self) -> None:
        while True:
            interval = self._connected_poll_interval if self._connected else self._poll_interval
            try:
                await asyncio.wait_for(self._poll_requested.wait(), timeout=interval)
            except TimeoutError:
                pass
            self._poll_requested.clear()
            try:
                for order in await self._read_order_book():
                    self._ingest(order)
                self._last_event_at = self._clock()
            except VenueError as exc:
                self._last_error = str(exc)
                log.warning("Angel One master %s: order book poll failed: %s", self._master_id, exc)

    async def _run_socket(self) -> None:
        loop = asyncio.get_running_loop()
        # a socket that never opened waits twice the delay, then doubles up to the maximum
        failed_opens = Retries(ExponentialBackoff(self._reconnect_delay * 2, ceiling=self._max_reconnect_delay))
        while not self._closed:
            opened = asyncio.Event()
            try:
                socket = self._session.order_update_socket(
                    on_open=functools.partial(loop.call_soon_threadsafe, self._on_socket_open, opened),
                    on_message=lambda text: loop.call_soon_threadsafe(self._on_socket_message, text),
                    on_close=lambda: loop.call_soon_threadsafe(self._on_socket_closed),
                )
            except VenueError as exc:
                self._last_error = str(exc)
            else:
                self._socket = socket
                try:
                    await loop.run_in_executor(self._socket_thread, socket.connect)
                except asyncio.CancelledError:
                    socket.close_connection()
                    raise
                except Exception as exc:  # a socket library failure: the poller covers, retry later
                    self._last_error = f"order-update socket failed ({type(exc).__name__})"
                    log.warning("Angel One master %s: %s", self._master_id, self._last_error)
                self._on_socket_closed()
            if opened.is_set():
                failed_opens.reset()
                await asyncio.sleep(self._reconnect_delay)
            else:
                await failed_opens.wait()

    def _on_socket_open(self, opened: asyncio.Event) -> None:
        opened.set()
        if self._ever_connected:
            self._reconnects += 1
        self._ever_connected = True
        self._connected = True
        self._last_event_at = self._clock()
        self._poll_requested.set()  # recover whatever happened while the socket was down
        log.info("Angel One master %s: order-update socket connected", self._master_id)

    def _on_socket_closed(self) -> None:
        if self._connected:
            self._connected = False
            self._poll_requested.set()
            log.warning("Angel One master %s: order-update socket closed; polling the order book", self._master_id)

    def _on_socket_message(self, text: str) -> None:
        self._last_event_at = self._clock()
        order = order_of_message(text)
        if order is not None:
            self._ingest(order)


def order_of_message(text: str) -> Mapping[str, Any] | None:
    """The order an order-update socket message carries (its ``orderData``), or ``None`` for
    heartbeats ("pong"), the connect acknowledgement (an empty order) and unreadable frames."""
    try:
        message = json.loads(text)
    except ValueError:
        return None
    order = message.get("orderData") if isinstance(message, dict) else None
    return order if isinstance(order, dict) and order.get("orderid") else None
