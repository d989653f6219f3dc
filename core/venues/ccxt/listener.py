"""A master's executions, and its orders' cancellations and amendments, from a ccxt.pro websocket,
with REST gap recovery on every (re)connect.

``CcxtFillListener.fills()`` never ends on its own: any drop (error, close, a socket silent
past ``heartbeat_seconds``, Binance's ``listenKeyExpired``) is recorded in ``health``, then the
listener reconnects (with exponential backoff, at once after an expired listen key). After each
connect it asks the injected ``checkpoint()`` where the master's durable history ends (its last
journaled fill, or the checkpoint saved when nothing was missing) and replays the trades since
then, so executions made while disconnected are yielded too. The journal is idempotent per
venue trade id; within one run a trade id is also yielded only once.

Recovery walks the longest windows the market's type allows (``HISTORY_WINDOWS_MS``: 7 days for
USD-M userTrades, 24 hours for spot myTrades) from the checkpoint to now, at most six months back
(all Binance keeps; what is older is recorded on ``health`` as not recoverable), over every symbol
the master may have traded: the
configured ``symbols``, ``known_symbols()`` (the journal's), the open positions, every symbol
seen on the stream in this run and, on Binance USD-M, every symbol of the account's income
history in the gap (each realized PnL or commission row names its symbol). A master with no
symbol at all is simply streamed: ``fetch_my_trades`` without a symbol is refused by Binance.
Each recovered trade's order is read for its type and flags; an order Binance no longer keeps
(created more than 90 days ago) leaves the trade a market execution, recorded on ``health``.
A recovery that found nothing new saves a checkpoint just before the socket opened
(``save_checkpoint``), so a quiet master's next recovery starts there.

The master's orders are followed too (``watch_orders`` beside ``watch_my_trades``, on the same
socket: ccxt.pro binance parses every ``ORDER_TRADE_UPDATE`` / ``executionReport`` into both its
order and, for ``x=TRADE``, its trade cache). An order that executed something and then ends
cancelled or expired, or is still open at another limit price (Binance futures ``x=AMENDMENT``),
is yielded as a ``MasterOrderEvent`` after the fills seen with it, so that its resting copies
follow it. Fills come only from the trades, exactly as before. After a reconnect, every order last
seen open with executions is read over REST once, so a cancellation or amendment made while the
socket was down is not missed; so is every order the gap's trades belong to.

Listen keys are created by ccxt.pro and kept alive here (``listen_key_refresh_seconds``), both
through the (overridable) REST URLs; on reconnect a listen key is requested again, so an expired
key cannot wedge the listener. ccxt ignores ``listenKeyExpired`` (pro/binance.py 5358-5380): the
listener watches the socket's messages for it and reconnects at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from core.errors import TemporaryError, VenueError
from core.model import (
    Fill,
    FillStatus,
    MasterEvent,
    MasterOrderChange,
    MasterOrderEvent,
    OrderType,
    PositionSide,
    Side,
    utcnow,
)
from core.retry import ExponentialBackoff, Retries
from core.venues.base import FillSource
from core.venues.ccxt.constants import (
    BINANCE_FAMILY,
    BINANCE_ORDER_TYPES,
    CHECKPOINT_MARGIN_MS,
    HISTORY_DEPTH_MS,
    HISTORY_WINDOW_MS,
    HISTORY_WINDOWS_MS,
    INCOME_PAGE,
    LISTEN_KEY_EXPIRED,
    SEEN_ORDERS,
    SEEN_TRADE_IDS,
    TRADES_PAGE,
)
from core.venues.ccxt.errors import map_ccxt_error
from core.venues.ccxt.venue import CcxtVenue, to_decimal

log = logging.getLogger(__name__)


def journal_key(exchange_id: str, master_id: int, symbol: str, trade_id: str) -> tuple[str, str]:
    """The (venue, trade id) a fill is journaled under.

    Exchange trade ids are not unique enough on their own: Binance numbers trades per symbol
    (BTCUSDT and ETHUSDT both have a trade 123), and two masters on either side of one trade
    see the same id. The master and the symbol make the key unique.
    """
    return f"{exchange_id}:{master_id}", f"{symbol}|{trade_id}"[:64]


class SilentSocket(TemporaryError):
    """The socket stayed open but nothing (not even a pong) arrived within the heartbeat window."""


class ListenKeyExpired(TemporaryError):
    """Binance said the listen key expired: no event will come on this socket any more."""


async def _no_symbols() -> set[str]:
    return set()


#: ccxt's unified statuses of an order that ended without executing all of it
_ENDED = {"canceled": MasterOrderChange.CANCELED, "expired": MasterOrderChange.EXPIRED}


@dataclass(frozen=True, slots=True)
class _OrderSeen:
    """What the listener last saw of one of the master's orders."""

    symbol: str
    status: str
    price: Decimal | None
    filled: Decimal
    updated_ms: int  # the venue's time of this state (0: not given)


@dataclass(frozen=True, slots=True)
class ListenerHealth:
    connected: bool = False
    last_event_at: datetime | None = None
    reconnects: int = 0
    last_error: str | None = None


class CcxtFillListener(FillSource):
    """Yields one ``Fill`` per execution of the master's orders on a ccxt.pro venue, and a
    ``MasterOrderEvent`` when an order that executed something is cancelled, expires or moves."""

    def __init__(
        self,
        venue: CcxtVenue,
        *,
        master_id: int,
        checkpoint: Callable[[], Awaitable[datetime | None]],
        save_checkpoint: Callable[[datetime], Awaitable[None]] | None = None,
        known_symbols: Callable[[], Awaitable[set[str]]] = _no_symbols,
        symbols: Iterable[str] = (),
        heartbeat_seconds: float = 60.0,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        listen_key_refresh_seconds: float = 30 * 60,
    ) -> None:
        if not venue.exchange.has.get("watchMyTrades"):
            raise ValueError("the master's venue must be created with streaming=True (ccxt.pro)")
        self._venue = venue
        self._exchange = venue.exchange
        self._master_id = master_id
        self._checkpoint = checkpoint
        self._save_checkpoint = save_checkpoint
        self._known_symbols = known_symbols
        self._symbols = set(symbols)
        self._heartbeat = heartbeat_seconds
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._listen_key_refresh = listen_key_refresh_seconds
        self._started_at = utcnow()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._orders: OrderedDict[str, _OrderSeen] = OrderedDict()
        self._follows_orders = bool(venue.exchange.has.get("watchOrders"))
        self._health = ListenerHealth()
        self._listen_key_expired = False
        #: set on every socket message: the session then looks at ccxt's caches at once (a message
        #: that arrives while a watch is being armed again resolves no watch)
        self._arrived = asyncio.Event()
        self._closing: set[asyncio.Task[Any]] = set()
        # ccxt pings this often, so a live socket always answers within one heartbeat window.
        self._exchange.streaming["keepAlive"] = int(heartbeat_seconds * 1000 / 3)
        # ccxt binds a new socket's message handler when it opens the socket: seen from here first
        self._exchange.handle_message = functools.partial(self._on_message, self._exchange.handle_message)

    @property
    def health(self) -> ListenerHealth:
        return self._health

    async def close(self) -> None:
        """The listener owns its streaming venue: closing one closes the other."""
        await self._venue.close()

    async def fills(self) -> AsyncIterator[MasterEvent]:
        reconnects = Retries(ExponentialBackoff(self._backoff_initial, ceiling=self._backoff_max))
        while True:
            connected_once = False
            try:
                async for fill in self._session():
                    connected_once = True
                    yield fill
            except asyncio.CancelledError:
                raise
            except ListenKeyExpired as exc:
                log.info("master %s on %s: %s, reconnecting now", self._master_id, self._venue.name, exc)
                self._health = replace(self._health, connected=False, last_error=str(exc))
                connected_once = True  # the venue ended a working stream: nothing to back off from
            except Exception as exc:
                message = str(map_ccxt_error(exc, exchange_id=self._venue.name, secrets=self._secrets()))
                log.warning("master %s listener on %s dropped: %s", self._master_id, self._venue.name, message)
                self._health = replace(self._health, connected=False, last_error=message)
            finally:
                await self._disconnect()
            if connected_once or self._health.connected:
                reconnects.reset()
            self._health = replace(self._health, connected=False, reconnects=self._health.reconnects + 1)
            if not self._listen_key_expired:
                await reconnects.wait()
            self._listen_key_expired = False

    # ------------------------------------------------------------------ one connection

    async def _session(self) -> AsyncIterator[MasterEvent]:
        """Connect, recover the gap over REST, then stream until the socket fails or goes silent."""
        await self._venue.ensure_markets()
        opened_at = time.monotonic()
        opened_ms = self._exchange.milliseconds()
        watches = {self._exchange.watch_my_trades: asyncio.ensure_future(self._exchange.watch_my_trades())}
        if self._follows_orders:
            watches[self._exchange.watch_orders] = asyncio.ensure_future(self._exchange.watch_orders())
        try:
            await self._wait_connected(set(watches.values()))
            self._health = replace(self._health, connected=True)
            for event in await self._recover_gap(opened_ms):
                yield event
            next_keepalive = time.monotonic() + self._listen_key_refresh
            while True:
                if time.monotonic() >= next_keepalive:
                    await self._keep_listen_key_alive()
                    next_keepalive = time.monotonic() + self._listen_key_refresh
                self._arrived.clear()
                woken = asyncio.ensure_future(self._arrived.wait())
                try:
                    done, _ = await asyncio.wait(
                        {*watches.values(), woken}, timeout=self._heartbeat / 4, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    woken.cancel()
                if self._listen_key_expired:
                    raise ListenKeyExpired(f"{self._venue.name} expired the listen key")
                for watch_again, watch in list(watches.items()):
                    if watch in done:
                        watch.result()  # raises when the socket failed
                        watches[watch_again] = asyncio.ensure_future(watch_again())
                for fill in self._unseen_streamed():  # an order's executions before what became of it
                    yield fill
                for change in self._order_changes(self._exchange.orders or []):
                    yield change
                if self._silent_for(opened_at) > self._heartbeat:
                    raise SilentSocket(f"no message from {self._venue.name} for {self._heartbeat:g}s")
        finally:
            for watch in watches.values():
                watch.cancel()
            await asyncio.gather(*watches.values(), return_exceptions=True)

    async def _keep_listen_key_alive(self) -> None:
        """Binance futures listen keys expire after 60 min without a PUT. ccxt 4.5.90 schedules its
        keepalive once only (its reschedule check never matches in Python), so it is done here."""
        if self._venue.name == "binanceusdm":
            await self._venue.read(lambda: self._exchange.fapiPrivatePutListenKey())

    async def _wait_connected(self, watches: set[asyncio.Future[Any]]) -> None:
        """Until a websocket is open (or a watch fails, or a heartbeat window passes)."""
        deadline = time.monotonic() + self._heartbeat
        while self._open_client() is None:
            for watch in watches:
                if watch.done():
                    watch.result()
                    return
            if time.monotonic() > deadline:
                raise SilentSocket(f"could not open the {self._venue.name} user-data stream in {self._heartbeat:g}s")
            await asyncio.sleep(0.02)

    def _on_message(self, handle: Callable[[Any, Any], Any], client: Any, message: Any) -> Any:
        """Every socket message, before ccxt's own handler (which fills its caches in the same
        call): the session is woken to look at them. On ``listenKeyExpired`` the socket is
        closed, which ends the session's wait at once (and the listener reconnects)."""
        self._arrived.set()
        event = message.get("event", message) if isinstance(message, dict) else None
        if isinstance(event, dict) and event.get("e") == LISTEN_KEY_EXPIRED:
            self._listen_key_expired = True
            closing = asyncio.ensure_future(client.close())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        return handle(client, message)

    def _open_client(self) -> Any | None:
        clients = [c for c in (self._exchange.clients or {}).values() if c.connection is not None and not c.closed()]
        return max(clients, key=lambda c: c.connectionEstablished or 0, default=None)

    def _silent_for(self, opened_at: float) -> float:
        client = self._open_client()
        if client is None:
            return time.monotonic() - opened_at
        last_ms = max(client.last_message_at or 0, client.connectionEstablished or 0)
        return float(self._exchange.milliseconds() - last_ms) / 1000

    async def _disconnect(self) -> None:
        for url, client in list((self._exchange.clients or {}).items()):
            if client.connection is not None:
                try:  # a zombie peer never answers the close handshake: do not wait for it
                    await asyncio.wait_for(client.close(), timeout=1.0)
                except TimeoutError:
                    log.info("%s: websocket close not acknowledged, abandoned", self._venue.name)
            self._exchange.clients.pop(url, None)
        if self._venue.name in BINANCE_FAMILY:
            for bucket in self._exchange.options.values():
                if isinstance(bucket, dict) and "listenKey" in bucket:
                    bucket["lastAuthenticatedTime"] = 0  # ask for a (possibly new) listen key next time

    def _secrets(self) -> tuple[str, ...]:
        return (self._exchange.apiKey or "", self._exchange.secret or "")

    # ------------------------------------------------------------------ stream

    def _unseen_streamed(self) -> list[Fill]:
        """Trades in ccxt's cache not yet yielded: covers any that arrived while we were busy."""
        fills = []
        for trade in list(self._exchange.myTrades or []):
            if str(trade.get("id")) in self._seen:
                continue
            self._symbols.add(trade["symbol"])
            fill = self._fill_from_stream(trade)
            if fill is not None and self._remember(fill.trade_id):
                fills.append(fill)
        if fills:
            self._health = replace(self._health, last_event_at=utcnow())
        return fills

    def _fill_from_stream(self, trade: Mapping[str, Any]) -> Fill | None:
        info = trade.get("info") or {}
        binance = isinstance(info, dict) and "X" in info and "l" in info
        quantity = to_decimal(info["l"]) if binance else to_decimal(trade.get("amount"))
        price = to_decimal(info["L"]) if binance else to_decimal(trade.get("price"))
        if not quantity or not price:
            return None
        raw_type = (info.get("ot") or info.get("o")) if binance else trade.get("type")
        side = Side(trade["side"])
        return self._fill(
            trade_id=str(trade["id"]),
            order_id=str(trade.get("order") or ""),
            symbol=trade["symbol"],
            side=side,
            quantity=quantity,
            price=price,
            raw_type=raw_type,
            filled=(info.get("X") == "FILLED") if binance else True,
            reduce_only=_reduce_only(info, side) if binance else bool(trade.get("reduceOnly")),
            limit_price=to_decimal(info.get("p")) if binance else None,
            stop_price=to_decimal(info.get("sp") or info.get("P")) if binance else None,
            executed_ms=trade.get("timestamp"),
            position_side=PositionSide.of(info.get("ps")) if binance else PositionSide.BOTH,
        )

    def _order_changes(self, orders: Iterable[Mapping[str, Any]]) -> list[MasterOrderEvent]:
        """The master's orders that executed something and, since the listener last saw them,
        ended unfilled (cancelled, expired) or moved to another limit price. An order first seen
        already ended or amended (its earlier states were not seen here) counts as changed; a state
        older than the one seen last (by the venue's update time) changes nothing."""
        events = []
        for order in list(orders):
            order_id, symbol = str(order.get("id") or ""), order.get("symbol")
            if not order_id or not symbol:
                continue
            info = order.get("info") or {}
            seen = _OrderSeen(
                symbol=symbol,
                status=str(order.get("status") or ""),
                price=to_decimal(order.get("price")) or None,
                filled=to_decimal(order.get("filled")) or Decimal(0),
                updated_ms=int(order.get("lastUpdateTimestamp") or order.get("timestamp") or 0),
            )
            before = self._orders.get(order_id)
            if before is not None and seen.updated_ms < before.updated_ms:
                continue  # an older state (ccxt's cache after a REST read of the gap): nothing new
            self._orders[order_id] = seen
            self._orders.move_to_end(order_id)
            if len(self._orders) > SEEN_ORDERS:
                self._orders.popitem(last=False)
            if seen.filled <= 0 or seen == before:
                continue  # copies exist only of executions
            at = datetime.fromtimestamp(seen.updated_ms / 1000, UTC) if seen.updated_ms else utcnow()
            ended = _ENDED.get(seen.status)
            if ended is not None and (before is None or before.status != seen.status):
                events.append(MasterOrderEvent(self._master_id, order_id, symbol, ended, at=at))
            elif seen.status == "open" and seen.price is not None:
                moved = before.price != seen.price if before is not None else info.get("x") == "AMENDMENT"
                if moved:
                    events.append(
                        MasterOrderEvent(self._master_id, order_id, symbol, MasterOrderChange.AMENDED, seen.price, at)
                    )
        if events:
            self._health = replace(self._health, last_event_at=utcnow())
        return events

    async def _resting_orders_now(self) -> list[Mapping[str, Any]]:
        """Each order last seen open with executions, as the venue shows it now (after a gap)."""
        orders = []
        for order_id, seen in list(self._orders.items()):
            if seen.status != "open" or seen.filled <= 0:
                continue
            try:
                orders.append(
                    await self._venue.read(functools.partial(self._exchange.fetch_order, order_id, seen.symbol))
                )
            except VenueError as exc:
                log.warning("master %s: order %s could not be read after a gap: %s", self._master_id, order_id, exc)
        return orders

    # ------------------------------------------------------------------ REST gap recovery

    async def _recover_gap(self, opened_ms: int) -> list[MasterEvent]:
        """The master's trades from the checkpoint to now, over every symbol it may have traded,
        then what became of its orders meanwhile (``_order_changes``)."""
        now_ms = self._exchange.milliseconds()
        checkpoint = await self._checkpoint()
        since_ms = int((checkpoint or self._started_at).timestamp() * 1000)
        if since_ms < now_ms - HISTORY_DEPTH_MS:
            since_ms = now_ms - HISTORY_DEPTH_MS
            kept_from = datetime.fromtimestamp(since_ms / 1000, UTC).isoformat(timespec="seconds")
            self._record_unrecoverable(
                f"trades before {kept_from} cannot be recovered: recovery reaches six months back"
                " (all Binance USD-M keeps)"
            )
        symbols = self._symbols | await self._known_symbols()
        if self._exchange.has.get("fetchPositions"):
            symbols.update(p.symbol for p in await self._venue.positions())
        symbols.update(await self._income_symbols(since_ms, now_ms))
        fills: list[Fill] = []
        orders: dict[str, Mapping[str, Any] | None] = {}
        for symbol in sorted(symbols):
            trades = await self._trades_between(symbol, since_ms, now_ms)
            fills.extend(await self._fills_from_rest(trades, orders))
        fills.sort(key=lambda f: (f.executed_at, f.trade_id))
        recovered: list[MasterEvent] = [f for f in fills if self._remember(f.trade_id)]
        changes = self._order_changes([*await self._resting_orders_now(), *(o for o in orders.values() if o)])
        if recovered:
            log.info("master %s: recovered %d fills over REST", self._master_id, len(recovered))
            self._health = replace(self._health, last_event_at=utcnow())
        elif self._save_checkpoint is not None:
            # nothing was missing up to now, and from its opening on the socket carries the rest
            await self._save_checkpoint(datetime.fromtimestamp((opened_ms - CHECKPOINT_MARGIN_MS) / 1000, UTC))
        return [*recovered, *changes]

    async def _income_symbols(self, since_ms: int, until_ms: int) -> set[str]:
        """Binance USD-M: the symbols of the account's income rows (realized PnL, commission) in
        the gap — a symbol traded and closed while we were away has no position left to show."""
        if self._venue.name != "binanceusdm":
            return set()
        symbols: set[str] = set()
        for start, end in _windows(since_ms, until_ms, HISTORY_WINDOW_MS):
            while True:
                params = {"startTime": start, "endTime": end, "limit": INCOME_PAGE}
                rows = await self._venue.read(functools.partial(self._exchange.fapiPrivateGetIncome, params))
                for row in rows:
                    if row.get("symbol"):
                        symbols.add(self._exchange.safe_symbol(row["symbol"], None, None, "swap"))
                if len(rows) < INCOME_PAGE:
                    break
                start = max(int(row.get("time") or start) for row in rows) + 1
        return {symbol for symbol in symbols if symbol in (self._exchange.markets or {})}

    async def _trades_between(self, symbol: str, since_ms: int, until_ms: int) -> list[dict[str, Any]]:
        """The master's trades in ``symbol``, walked in the longest windows its market type allows."""
        trades: dict[str, dict[str, Any]] = {}
        market_type = str((self._exchange.markets or {}).get(symbol, {}).get("type") or "")
        for start, end in _windows(since_ms, until_ms, HISTORY_WINDOWS_MS.get(market_type, HISTORY_WINDOW_MS)):
            while True:
                page = await self._venue.read(
                    functools.partial(self._exchange.fetch_my_trades, symbol, start, TRADES_PAGE, {"until": end})
                )
                fresh = [t for t in page if str(t["id"]) not in trades]
                trades.update((str(t["id"]), t) for t in fresh)
                if len(page) < TRADES_PAGE or not fresh:
                    break
                start = max(t.get("timestamp") or start for t in page)
        return sorted(trades.values(), key=lambda t: (t.get("timestamp") or 0, str(t["id"])))

    async def _fills_from_rest(
        self, trades: list[dict[str, Any]], orders: dict[str, Mapping[str, Any] | None]
    ) -> list[Fill]:
        """REST trades lack the order's type, reduce-only flag and status: one order lookup each
        (kept in ``orders``). An order the venue no longer has (Binance USD-M: created more than 90
        days ago) leaves its trades as they are — a market execution, reduce-only only when it
        closes a hedge side — and is recorded as such on ``health``."""
        last_trade_of_order: dict[str, str] = {}
        for trade in trades:
            last_trade_of_order[str(trade.get("order"))] = str(trade["id"])
        fills = []
        for trade in trades:
            if str(trade["id"]) in self._seen:
                continue
            order_id = str(trade.get("order"))
            if order_id not in orders:
                orders[order_id] = await self._venue.order_by_id(order_id, trade["symbol"])
            order = orders[order_id]
            fill = self._fill_from_rest(trade, order or {}, last_trade_of_order[order_id] == str(trade["id"]))
            if fill is not None:
                fills.append(fill)
        symbol_of = {str(trade.get("order")): str(trade["symbol"]) for trade in trades}
        gone = sorted(
            f"{symbol} order {order_id}"
            for order_id, symbol in symbol_of.items()
            if order_id in orders and orders[order_id] is None
        )
        if gone:
            self._record_unrecoverable(
                f"{self._venue.name} no longer has {', '.join(gone)} (Binance keeps no order older than 90 days):"
                " its trades were recovered as market executions, without the order's type, limit price"
                " or reduce-only flag"
            )
        return fills

    def _record_unrecoverable(self, message: str) -> None:
        """What a recovery could not bring back, logged and kept on ``health``."""
        log.warning("master %s: %s", self._master_id, message)
        self._health = replace(self._health, last_error=message)

    def _fill_from_rest(self, trade: Mapping[str, Any], order: Mapping[str, Any], last_of_order: bool) -> Fill | None:
        info = trade.get("info") or {}
        order_info = order.get("info") or {}
        quantity = to_decimal(info.get("qty")) or to_decimal(trade.get("amount"))
        price = to_decimal(info.get("price")) or to_decimal(trade.get("price"))
        if not quantity or not price:
            return None
        side = Side(trade["side"])
        raw_type = order_info.get("origType") or order_info.get("type") or order.get("type")
        return self._fill(
            trade_id=str(trade["id"]),
            order_id=str(trade.get("order") or ""),
            symbol=trade["symbol"],
            side=side,
            quantity=quantity,
            price=price,
            raw_type=raw_type,
            filled=last_of_order and order.get("status", "closed") == "closed",
            reduce_only=bool(order.get("reduceOnly"))
            or _closes_hedge_side(info.get("positionSide") or order_info.get("positionSide"), side),
            limit_price=to_decimal(order.get("price")),
            stop_price=to_decimal(order.get("triggerPrice")),
            executed_ms=trade.get("timestamp"),
            position_side=PositionSide.of(info.get("positionSide") or order_info.get("positionSide")),
        )

    # ------------------------------------------------------------------ helpers

    def _fill(
        self,
        *,
        trade_id: str,
        order_id: str,
        symbol: str,
        side: Side,
        quantity: Decimal,
        price: Decimal,
        raw_type: Any,
        filled: bool,
        reduce_only: bool,
        limit_price: Decimal | None,
        stop_price: Decimal | None,
        executed_ms: Any,
        position_side: PositionSide,
    ) -> Fill:
        order_type = BINANCE_ORDER_TYPES.get(str(raw_type or "").upper(), OrderType.MARKET)
        executed_at = datetime.fromtimestamp(executed_ms / 1000, UTC) if executed_ms else utcnow()
        venue, journal_trade_id = journal_key(self._venue.name, self._master_id, symbol, trade_id)
        return Fill(
            master_id=self._master_id,
            venue=venue,
            trade_id=journal_trade_id,
            order_id=order_id,
            symbol=symbol,
            side=side,
            quantity=quantity,
            price=price,
            order_type=order_type,
            status=FillStatus.FILLED if filled else FillStatus.PARTIALLY_FILLED,
            reduce_only=reduce_only,
            limit_price=limit_price if limit_price and order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None,
            stop_price=stop_price or None,
            executed_at=executed_at,
            position_side=position_side,
        )

    def _remember(self, trade_id: str) -> bool:
        """True the first time a trade id is seen in this run (bounded memory)."""
        if trade_id in self._seen:
            return False
        self._seen[trade_id] = None
        if len(self._seen) > SEEN_TRADE_IDS:
            self._seen.popitem(last=False)
        return True


def _windows(since_ms: int, until_ms: int, length_ms: int) -> list[tuple[int, int]]:
    """[since, until] cut into consecutive windows whose end is less than ``length_ms`` after their start."""
    windows = []
    start = since_ms
    while start <= until_ms:
        end = min(start + length_ms - 1, until_ms)
        windows.append((start, end))
        start = end + 1
    return windows


def _reduce_only(info: Mapping[str, Any], side: Side) -> bool:
    """Binance futures: the reduce-only flag, a close-position order, or a hedge-mode close."""
    return bool(info.get("R")) or bool(info.get("cp")) or _closes_hedge_side(info.get("ps"), side)


def _closes_hedge_side(position_side: Any, side: Side) -> bool:
    return (position_side == "LONG" and side is Side.SELL) or (position_side == "SHORT" and side is Side.BUY)
