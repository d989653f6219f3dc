"""A local fake Binance (USD-M futures and spot) that the real ccxt talks to over HTTP and websocket.

It speaks the wire protocol ccxt uses: the REST paths ``binanceusdm`` and ``binance`` call,
HMAC-SHA256 signatures checked over the raw query string plus body exactly as Binance does,
``X-MBX-APIKEY``, Binance's own error codes and JSON bodies, and the futures user-data websocket
(``ORDER_TRADE_UPDATE`` events on ``/private/ws?listenKey=…``).

State is simple but honest: market orders fill at a settable mark price, limit orders and
conditional (algo) orders rest until a test helper fills or triggers them, balances, one-way and
hedge positions and trades (with ids) are tracked per account.

Failure injection for tests: ``fail_next`` (answer the next matching request with an error),
``delay_next`` (process the request, then hold the response, e.g. past ccxt's timeout),
``drop_websockets`` / ``accept_websockets`` and ``silence_websockets``.

Usage::

    async with FakeBinance() as fake:
        account = fake.add_account("key", "secret", futures_wallet=Decimal("10000"))
        exchange_urls = fake.url_overrides()
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

ZERO = Decimal(0)
FUTURES = "futures"
SPOT = "spot"
DEFAULT_RECV_WINDOW_MS = 5000


def text(value: Decimal) -> str:
    """Binance prints decimals as plain strings."""
    return format(value.normalize(), "f") if value != 0 else "0"


@dataclass(frozen=True)
class Instrument:
    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    min_notional: Decimal
    market: str  # FUTURES or SPOT


FUTURES_INSTRUMENTS = (
    Instrument("BTCUSDT", "BTC", "USDT", Decimal("0.10"), Decimal("0.001"), Decimal("0.001"), Decimal("100"), FUTURES),
    Instrument("ETHUSDT", "ETH", "USDT", Decimal("0.01"), Decimal("0.001"), Decimal("0.001"), Decimal("20"), FUTURES),
    Instrument("SOLUSDT", "SOL", "USDT", Decimal("0.0010"), Decimal("1"), Decimal("1"), Decimal("5"), FUTURES),
)
SPOT_INSTRUMENTS = (
    Instrument("BTCUSDT", "BTC", "USDT", Decimal("0.01"), Decimal("0.00001"), Decimal("0.00001"), Decimal("5"), SPOT),
    Instrument("ETHUSDT", "ETH", "USDT", Decimal("0.01"), Decimal("0.0001"), Decimal("0.0001"), Decimal("5"), SPOT),
)


class BinanceError(Exception):
    """An error answered the way Binance answers it: HTTP status plus ``{"code", "msg"}``."""

    def __init__(self, status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg
        self.headers = headers or {}

    def response(self) -> web.Response:
        return web.json_response({"code": self.code, "msg": self.msg}, status=self.status, headers=self.headers)


@dataclass
class FakeOrder:
    order_id: int
    client_order_id: str
    market: str
    symbol: str
    side: str
    type: str
    quantity: Decimal
    price: Decimal = ZERO
    stop_price: Decimal = ZERO
    reduce_only: bool = False
    position_side: str = "BOTH"
    status: str = "NEW"
    executed: Decimal = ZERO
    cum_quote: Decimal = ZERO
    commission: Decimal = ZERO
    time_ms: int = 0
    update_ms: int = 0
    algo: bool = False
    time_in_force: str = "GTC"
    actual_order_id: int | None = None  # a triggered algo order: the market order it created

    @property
    def average(self) -> Decimal:
        return (self.cum_quote / self.executed) if self.executed else ZERO


@dataclass
class FakeTrade:
    trade_id: int
    order_id: int
    market: str
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    commission: Decimal
    position_side: str
    time_ms: int
    realized_pnl: Decimal = ZERO


@dataclass
class FakePosition:
    amount: Decimal = ZERO  # signed in one-way mode; positive size per side in hedge mode
    entry_price: Decimal = ZERO


@dataclass
class FakeAccount:
    api_key: str
    secret: str
    futures_wallet: Decimal = Decimal("10000")
    spot_balances: dict[str, Decimal] = field(default_factory=lambda: {"USDT": Decimal("10000")})
    hedge_mode: bool = False
    enable_withdrawals: bool = False
    enable_spot_trading: bool = True
    enable_futures: bool = True
    leverage: dict[str, int] = field(default_factory=dict)
    margin_type: dict[str, str] = field(default_factory=dict)
    positions: dict[tuple[str, str], FakePosition] = field(default_factory=dict)
    orders: dict[int, FakeOrder] = field(default_factory=dict)
    trades: list[FakeTrade] = field(default_factory=list)
    listen_keys: set[str] = field(default_factory=set)

    def orders_with_client_id(self, market: str, client_order_id: str) -> list[FakeOrder]:
        return [o for o in self.orders.values() if o.market == market and o.client_order_id == client_order_id]

    def position(self, symbol: str, position_side: str) -> FakePosition:
        return self.positions.setdefault((symbol, position_side), FakePosition())

    def signed_position(self, symbol: str) -> Decimal:
        """Net futures position: long minus short."""
        total = ZERO
        for (pos_symbol, side), pos in self.positions.items():
            if pos_symbol == symbol:
                total += -pos.amount if side == "SHORT" else pos.amount
        return total


@dataclass(frozen=True)
class Injection:
    method: str
    path: str
    status: int = 0
    code: int = 0
    msg: str = ""
    headers: dict[str, str] | None = None
    delay: float = 0.0


class FakeBinance:
    """The fake exchange server. Start and stop with ``async with`` (or ``start()``/``stop()``)."""

    def __init__(self, *, fee_rate: Decimal = Decimal("0.0004"), latency: float = 0.0) -> None:
        """``latency``: seconds every REST request waits before it is handled (a network round
        trip to a distant exchange; the benchmarks use it). Websocket frames are not delayed."""
        self.fee_rate = fee_rate
        self.latency = latency
        self.accounts: dict[str, FakeAccount] = {}
        self.mark_prices: dict[str, Decimal] = {
            "BTCUSDT": Decimal("60000"),
            "ETHUSDT": Decimal("3000"),
            "SOLUSDT": Decimal("150"),
        }
        self.requests: Counter[tuple[str, str]] = Counter()
        self.request_log: list[tuple[str, str]] = []
        self.unknown_requests: list[tuple[str, str]] = []
        self.clock_skew_ms = 0
        self._injections: list[Injection] = []
        self._order_ids = itertools.count(1000)
        self._trade_ids = itertools.count(5000)
        self._listen_keys = itertools.count(1)
        self._sockets: dict[web.WebSocketResponse, str] = {}  # socket -> api key
        self._accept_websockets = True
        self._silent: set[web.WebSocketResponse] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.2)
        await self._runner.setup()
        # a deep accept queue: a thousand accounts connect at once in the benchmarks, and a
        # full queue drops connections that then wait seconds for a SYN retransmit
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # ephemeral port chosen by the OS

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeBinance:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_overrides(self) -> dict[str, Any]:
        """``urls['api']`` entries pointing ccxt's binance and binanceusdm at this server."""
        base, ws = self.base_url, f"ws://127.0.0.1:{self.port}"
        return {
            "public": f"{base}/api/v3",
            "private": f"{base}/api/v3",
            "v1": f"{base}/api/v1",
            "sapi": f"{base}/sapi/v1",
            "sapiV2": f"{base}/sapi/v2",
            "sapiV3": f"{base}/sapi/v3",
            "sapiV4": f"{base}/sapi/v4",
            "fapiPublic": f"{base}/fapi/v1",
            "fapiPublicV2": f"{base}/fapi/v2",
            "fapiPublicV3": f"{base}/fapi/v3",
            "fapiPrivate": f"{base}/fapi/v1",
            "fapiPrivateV2": f"{base}/fapi/v2",
            "fapiPrivateV3": f"{base}/fapi/v3",
            "fapiData": f"{base}/futures/data",
            "ws": {
                "spot": f"{ws}/ws",
                "margin": f"{ws}/ws",
                "linear": f"{ws}/ws",
                "ws-api": {"spot": f"{ws}/ws-api/v3", "linear": f"{ws}/ws-fapi/v1"},
            },
        }

    # ----------------------------------------------------------------- test helpers

    def add_account(self, api_key: str, secret: str, **settings: Any) -> FakeAccount:
        account = FakeAccount(api_key, secret, **settings)
        self.accounts[api_key] = account
        return account

    def count(self, method: str, path: str) -> int:
        return self.requests[(method, path)]

    def fail_next(
        self,
        method: str,
        path: str,
        *,
        status: int,
        code: int = 0,
        msg: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        """The next ``method path`` request is answered with this error instead of being processed."""
        self._injections.append(Injection(method, path, status=status, code=code, msg=msg, headers=headers))

    def delay_next(self, method: str, path: str, seconds: float) -> None:
        """The next ``method path`` request is processed, then its response is held ``seconds``."""
        self._injections.append(Injection(method, path, delay=seconds))

    def set_mark_price(self, symbol: str, price: Decimal) -> None:
        self.mark_prices[symbol] = price

    async def fill_resting(
        self, api_key: str, order_id: int, quantity: Decimal | None = None, price: Decimal | None = None
    ) -> None:
        """Execute (part of) a resting limit order, as if the market traded through it."""
        account = self.accounts[api_key]
        order = account.orders[order_id]
        remaining = order.quantity - order.executed
        await self._execute(account, order, [quantity or remaining], price or order.price)

    async def trigger_conditional(self, api_key: str) -> None:
        """Fire every resting conditional order whose trigger the mark price has crossed."""
        account = self.accounts[api_key]
        for order in list(account.orders.values()):
            if order.status != "NEW" or not order.stop_price:
                continue
            mark = self.mark_prices[order.symbol]
            if order.type.startswith("STOP"):
                hit = mark >= order.stop_price if order.side == "BUY" else mark <= order.stop_price
            else:
                hit = mark <= order.stop_price if order.side == "BUY" else mark >= order.stop_price
            if not hit:
                continue
            if not order.algo:
                await self._execute(account, order, [order.quantity], mark)
                continue
            # As Binance does: the triggered algo order finishes and places a market order.
            now = self.now_ms()
            child = FakeOrder(
                next(self._order_ids),
                f"algo_{order.order_id}",
                order.market,
                order.symbol,
                order.side,
                "MARKET",
                order.quantity,
                reduce_only=order.reduce_only,
                position_side=order.position_side,
                time_ms=now,
                update_ms=now,
            )
            account.orders[child.order_id] = child
            order.status, order.actual_order_id, order.update_ms = "FINISHED", child.order_id, now
            await self._execute(account, child, [child.quantity], mark)

    async def master_trade(
        self,
        api_key: str,
        symbol: str,
        side: str,
        quantity: Decimal,
        *,
        fills: list[Decimal] | None = None,
        price: Decimal | None = None,
        order_type: str = "MARKET",
        reduce_only: bool = False,
        position_side: str = "BOTH",
        market: str = FUTURES,
    ) -> FakeOrder:
        """Create an order on ``api_key``'s account that executes in ``fills`` pieces, pushing one
        execution event per piece to that account's open user-data sockets."""
        account = self.accounts[api_key]
        now = self.now_ms()
        order = FakeOrder(
            next(self._order_ids),
            f"web_{next(self._order_ids)}",
            market,
            symbol,
            side,
            order_type,
            quantity,
            price=price or ZERO,
            reduce_only=reduce_only,
            position_side=position_side,
            time_ms=now,
            update_ms=now,
        )
        account.orders[order.order_id] = order
        await self._execute(account, order, fills or [quantity], price or self.mark_prices[symbol])
        return order

    async def drop_websockets(self, *, refuse_new: bool = False) -> None:
        """Close every user-data socket; with ``refuse_new`` new connections fail until accepted."""
        self._accept_websockets = not refuse_new
        for ws in list(self._sockets):
            await ws.close()

    def accept_websockets(self) -> None:
        self._accept_websockets = True

    def silence_websockets(self) -> None:
        """Open sockets stay open but go silent: no events, no pong (a zombie connection)."""
        self._silent.update(self._sockets)

    @property
    def open_websockets(self) -> int:
        return len(self._sockets)

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    # ----------------------------------------------------------------- dispatch

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        method = request.method
        if path in ("/ws", "/private/ws") or path.startswith("/ws/"):
            return await self._websocket(request)
        if self.latency:
            await asyncio.sleep(self.latency)
        self.requests[(method, path)] += 1
        self.request_log.append((method, path))
        injection = self._take_injection(method, path)
        if injection is not None and injection.status:
            if injection.code:
                return BinanceError(injection.status, injection.code, injection.msg, injection.headers).response()
            return web.Response(status=injection.status, text=injection.msg or "error", headers=injection.headers)
        route = ROUTES.get((method, path))
        if route is None:
            self.unknown_requests.append((method, path))
            return web.json_response({"code": -1000, "msg": f"fake binance: no route {method} {path}"}, status=404)
        handler, security = route
        try:
            body = await request.text()
            params = dict(parse_qsl(request.query_string, keep_blank_values=True))
            params.update(parse_qsl(body, keep_blank_values=True))
            account = self._authenticate(request, body, params, security)
            result = await handler(self, account, params)
        except BinanceError as error:
            return error.response()
        if injection is not None and injection.delay:
            await asyncio.sleep(injection.delay)
        return web.json_response(result)

    def _take_injection(self, method: str, path: str) -> Injection | None:
        for injection in self._injections:
            if injection.method == method and injection.path == path:
                self._injections.remove(injection)
                return injection
        return None

    def _authenticate(
        self, request: web.Request, body: str, params: dict[str, str], security: str
    ) -> FakeAccount | None:
        if security == "NONE":
            return None
        api_key = request.headers.get("X-MBX-APIKEY")
        account = self.accounts.get(api_key or "")
        if account is None:
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        if security == "USER_STREAM":
            return account
        # Binance signs totalParams = query string concatenated with the request body.
        total = request.query_string + body
        match = re.search(r"&?signature=([0-9a-fA-F]+)", total)
        if match is None:
            raise BinanceError(
                400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."
            )
        payload = total[: match.start()] + total[match.end() :]
        expected = hmac.new(account.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, match.group(1).lower()):
            raise BinanceError(400, -1022, "Signature for this request is not valid.")
        timestamp = int(params.get("timestamp", "0"))
        recv_window = int(params.get("recvWindow", DEFAULT_RECV_WINDOW_MS))
        server_now = self.now_ms() + self.clock_skew_ms
        if timestamp > server_now + 1000 or server_now - timestamp > recv_window:
            raise BinanceError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        return account

    # ----------------------------------------------------------------- public endpoints

    async def _time(self, account: None, params: dict[str, str]) -> dict[str, Any]:
        return {"serverTime": self.now_ms() + self.clock_skew_ms}

    async def _ticker(self, account: None, params: dict[str, str]) -> dict[str, Any]:
        symbol = params.get("symbol", "")
        if symbol not in self.mark_prices:
            raise BinanceError(400, -1121, "Invalid symbol.")
        last = text(self.mark_prices[symbol])
        now = self.now_ms()
        return {
            "symbol": symbol,
            "lastPrice": last,
            "openPrice": last,
            "highPrice": last,
            "lowPrice": last,
            "priceChange": "0",
            "priceChangePercent": "0",
            "weightedAvgPrice": last,
            "volume": "0",
            "quoteVolume": "0",
            "openTime": now - 86_400_000,
            "closeTime": now,
            "count": 0,
        }

    async def _futures_exchange_info(self, account: None, params: dict[str, str]) -> dict[str, Any]:
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "rateLimits": [],
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": [futures_symbol_info(i) for i in FUTURES_INSTRUMENTS],
        }

    async def _spot_exchange_info(self, account: None, params: dict[str, str]) -> dict[str, Any]:
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "rateLimits": [],
            "exchangeFilters": [],
            "symbols": [spot_symbol_info(i) for i in SPOT_INSTRUMENTS],
        }

    # ----------------------------------------------------------------- futures account

    async def _futures_account(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        unrealized = sum((self._unrealized(account, key, pos) for key, pos in account.positions.items()), ZERO)
        wallet = account.futures_wallet
        asset = {
            "asset": "USDT",
            "walletBalance": text(wallet),
            "unrealizedProfit": text(unrealized),
            "marginBalance": text(wallet + unrealized),
            "maintMargin": "0",
            "initialMargin": "0",
            "positionInitialMargin": "0",
            "openOrderInitialMargin": "0",
            "crossWalletBalance": text(wallet),
            "crossUnPnl": text(unrealized),
            "availableBalance": text(self._available_margin(account)),
            "maxWithdrawAmount": text(self._available_margin(account)),
            "updateTime": self.now_ms(),
        }
        return {
            "totalInitialMargin": "0",
            "totalMaintMargin": "0",
            "totalWalletBalance": text(wallet),
            "totalUnrealizedProfit": text(unrealized),
            "totalMarginBalance": text(wallet + unrealized),
            "totalPositionInitialMargin": "0",
            "totalOpenOrderInitialMargin": "0",
            "totalCrossWalletBalance": text(wallet),
            "totalCrossUnPnl": text(unrealized),
            "availableBalance": text(self._available_margin(account)),
            "maxWithdrawAmount": text(self._available_margin(account)),
            "assets": [asset],
            "positions": [],
        }

    async def _futures_balance(self, account: FakeAccount, params: dict[str, str]) -> list[dict[str, Any]]:
        return [
            {
                "accountAlias": "fake",
                "asset": "USDT",
                "balance": text(account.futures_wallet),
                "crossWalletBalance": text(account.futures_wallet),
                "crossUnPnl": "0",
                "availableBalance": text(self._available_margin(account)),
                "maxWithdrawAmount": text(self._available_margin(account)),
                "marginAvailable": True,
                "updateTime": self.now_ms(),
            }
        ]

    async def _position_risk(self, account: FakeAccount, params: dict[str, str]) -> list[dict[str, Any]]:
        rows = []
        for (symbol, position_side), pos in account.positions.items():
            if pos.amount == 0:
                continue
            amount = -pos.amount if position_side == "SHORT" else pos.amount
            mark = self.mark_prices[symbol]
            rows.append(
                {
                    "symbol": symbol,
                    "positionSide": position_side,
                    "positionAmt": text(amount),
                    "entryPrice": text(pos.entry_price),
                    "breakEvenPrice": text(pos.entry_price),
                    "markPrice": text(mark),
                    "unRealizedProfit": text(self._unrealized(account, (symbol, position_side), pos)),
                    "liquidationPrice": "0",
                    "isolatedMargin": "0",
                    "notional": text(amount * mark),
                    "marginAsset": "USDT",
                    "isolatedWallet": "0",
                    "initialMargin": "0",
                    "maintMargin": "0",
                    "positionInitialMargin": "0",
                    "openOrderInitialMargin": "0",
                    "adl": 0,
                    "bidNotional": "0",
                    "askNotional": "0",
                    "updateTime": self.now_ms(),
                    "leverage": str(account.leverage.get(symbol, 20)),
                    "marginType": account.margin_type.get(symbol, "cross").lower(),
                }
            )
        return rows

    async def _leverage_bracket(self, account: FakeAccount, params: dict[str, str]) -> list[dict[str, Any]]:
        return [
            {
                "symbol": i.symbol,
                "notionalCoef": 1.0,
                "brackets": [
                    {
                        "bracket": 1,
                        "initialLeverage": 125,
                        "notionalCap": 50000,
                        "notionalFloor": 0,
                        "maintMarginRatio": 0.004,
                        "cum": 0.0,
                    },
                ],
            }
            for i in FUTURES_INSTRUMENTS
        ]

    async def _set_leverage(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        symbol = self._instrument(FUTURES, params.get("symbol", "")).symbol
        leverage = int(params["leverage"])
        if not 1 <= leverage <= 125:
            raise BinanceError(400, -4028, f"Leverage {leverage} is not valid")
        account.leverage[symbol] = leverage
        return {"leverage": leverage, "maxNotionalValue": "1000000", "symbol": symbol}

    async def _set_margin_type(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        symbol = self._instrument(FUTURES, params.get("symbol", "")).symbol
        margin_type = params["marginType"].upper()
        if account.margin_type.get(symbol, "CROSSED") == margin_type:
            raise BinanceError(400, -4046, "No need to change margin type.")
        account.margin_type[symbol] = margin_type
        return {"code": 200, "msg": "success"}

    async def _get_position_mode(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        return {"dualSidePosition": account.hedge_mode}

    async def _set_position_mode(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        account.hedge_mode = params["dualSidePosition"].lower() == "true"
        return {"code": 200, "msg": "success"}

    async def _listen_key(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        key = f"lk{next(self._listen_keys)}x{account.api_key}"
        account.listen_keys.add(key)
        return {"listenKey": key}

    async def _keepalive_listen_key(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        return {} if not account.listen_keys else {"listenKey": sorted(account.listen_keys)[-1]}

    # ----------------------------------------------------------------- orders

    async def _futures_new_order(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        order = self._new_order(
            account, FUTURES, params, client_id_key="newClientOrderId", type_key="type", stop_key="stopPrice"
        )
        if order.type == "MARKET":
            await self._execute(account, order, [order.quantity], self.mark_prices[order.symbol])
        elif order.type == "LIMIT" and order.time_in_force == "IOC":
            mark = self.mark_prices[order.symbol]
            if (order.side == "BUY" and mark <= order.price) or (order.side == "SELL" and mark >= order.price):
                await self._execute(account, order, [order.quantity], mark)
            else:
                order.status = "EXPIRED"  # immediate-or-cancel: nothing rests
        return futures_order_json(order)

    async def _futures_new_algo_order(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        if params.get("algoType") != "CONDITIONAL":
            raise BinanceError(400, -1102, "Mandatory parameter 'algoType' was not sent, was empty/null, or malformed.")
        order = self._new_order(
            account, FUTURES, params, client_id_key="clientAlgoId", type_key="type", stop_key="triggerPrice"
        )
        order.algo = True
        return algo_order_json(order)

    async def _futures_get_order(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        order = self._find_order(account, FUTURES, params, "origClientOrderId", algo=False)
        return futures_order_json(order)

    async def _futures_get_algo_order(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        order = self._find_order(account, FUTURES, params, "clientAlgoId", algo=True)
        return algo_order_json(order)

    async def _futures_cancel_algo_order(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        order = self._find_order(account, FUTURES, params, "clientAlgoId", algo=True)
        if order.status != "NEW":
            raise BinanceError(400, -2011, "Unknown order sent.")
        order.status = "CANCELED"
        return algo_order_json(order)

    async def _futures_cancel_order(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        order = self._find_order(account, FUTURES, params, "origClientOrderId", algo=False)
        if order.status not in ("NEW", "PARTIALLY_FILLED"):
            raise BinanceError(400, -2011, "Unknown order sent.")
        order.status = "CANCELED"
        return futures_order_json(order)

    async def _futures_user_trades(self, account: FakeAccount, params: dict[str, str]) -> list[dict[str, Any]]:
        return [futures_trade_json(t) for t in self._select_trades(account, FUTURES, params)]

    async def _spot_account(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        return {
            "makerCommission": 10,
            "takerCommission": 10,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "canTrade": account.enable_spot_trading,
            "canWithdraw": account.enable_withdrawals,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "updateTime": self.now_ms(),
            "accountType": "SPOT",
            "balances": [
                {"asset": asset, "free": text(amount), "locked": "0"} for asset, amount in account.spot_balances.items()
            ],
            "permissions": ["SPOT"],
        }

    async def _api_restrictions(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        return {
            "ipRestrict": False,
            "createTime": 1700000000000,
            "enableReading": True,
            "enableWithdrawals": account.enable_withdrawals,
            "enableInternalTransfer": False,
            "permitsUniversalTransfer": False,
            "enableVanillaOptions": False,
            "enableMargin": False,
            "enableFutures": account.enable_futures,
            "enableSpotAndMarginTrading": account.enable_spot_trading,
        }

    async def _spot_new_order(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        order = self._new_order(
            account, SPOT, params, client_id_key="newClientOrderId", type_key="type", stop_key="stopPrice"
        )
        fills: list[FakeTrade] = []
        if order.type == "MARKET":
            fills = await self._execute(account, order, [order.quantity], self.mark_prices[order.symbol])
        return spot_order_json(order, fills)

    async def _spot_get_order(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        return spot_order_json(self._find_order(account, SPOT, params, "origClientOrderId", algo=False), None)

    async def _spot_cancel_order(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        order = self._find_order(account, SPOT, params, "origClientOrderId", algo=False)
        if order.status not in ("NEW", "PARTIALLY_FILLED"):
            raise BinanceError(400, -2011, "Unknown order sent.")
        order.status = "CANCELED"
        return spot_order_json(order, None)

    async def _spot_my_trades(self, account: FakeAccount, params: dict[str, str]) -> list[dict[str, Any]]:
        return [spot_trade_json(t) for t in self._select_trades(account, SPOT, params)]

    async def _spot_user_data_stream(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        return await self._listen_key(account, params)

    # ----------------------------------------------------------------- matching

    def _instrument(self, market: str, symbol: str) -> Instrument:
        for instrument in FUTURES_INSTRUMENTS if market == FUTURES else SPOT_INSTRUMENTS:
            if instrument.symbol == symbol:
                return instrument
        raise BinanceError(400, -1121, "Invalid symbol.")

    def _new_order(
        self,
        account: FakeAccount,
        market: str,
        params: dict[str, str],
        *,
        client_id_key: str,
        type_key: str,
        stop_key: str,
    ) -> FakeOrder:
        instrument = self._instrument(market, params.get("symbol", ""))
        side = params.get("side", "")
        order_type = params.get(type_key, "")
        if side not in ("BUY", "SELL") or not order_type:
            raise BinanceError(400, -1102, "Mandatory parameter was not sent, was empty/null, or malformed.")
        client_order_id = params.get(client_id_key) or f"fake_{next(self._order_ids)}"
        if not re.fullmatch(r"[.A-Z:/a-z0-9_-]{1,36}", client_order_id):
            raise BinanceError(400, -4015, "Client order id is not valid.")
        if account.orders_with_client_id(market, client_order_id):
            if market == FUTURES:
                raise BinanceError(400, -4116, "ClientOrderId is duplicated.")
            raise BinanceError(400, -2010, "Duplicate order sent.")
        quantity = Decimal(params.get("quantity", "0"))
        price = Decimal(params.get("price", "0"))
        stop_price = Decimal(params.get(stop_key, "0"))
        self._check_filters(instrument, quantity, price)
        reference = price or stop_price or self.mark_prices[instrument.symbol]
        reduce_only = params.get("reduceOnly", "false").lower() == "true"
        position_side = params.get("positionSide", "BOTH")
        if market == FUTURES:
            self._check_position_side(account, position_side, reduce_only)
            closing = self._is_closing(account, instrument.symbol, side, position_side, reduce_only)
            if reduce_only and not closing:
                raise BinanceError(400, -2022, "ReduceOnly Order is rejected.")
            if not closing and quantity * reference < instrument.min_notional:
                raise BinanceError(
                    400,
                    -4164,
                    f"Order's notional must be no smaller than {text(instrument.min_notional)} (unless you choose reduce only).",
                )
            if not closing:
                leverage = Decimal(account.leverage.get(instrument.symbol, 20))
                if quantity * reference / leverage > self._available_margin(account):
                    raise BinanceError(400, -2019, "Margin is insufficient.")
        else:
            if quantity * reference < instrument.min_notional:
                raise BinanceError(400, -1013, "Filter failure: NOTIONAL")
            if side == "BUY" and quantity * reference * (1 + self.fee_rate) > account.spot_balances.get(
                instrument.quote, ZERO
            ):
                raise BinanceError(400, -2010, "Account has insufficient balance for requested action.")
            if side == "SELL" and quantity > account.spot_balances.get(instrument.base, ZERO):
                raise BinanceError(400, -2010, "Account has insufficient balance for requested action.")
        now = self.now_ms()
        order = FakeOrder(
            next(self._order_ids),
            client_order_id,
            market,
            instrument.symbol,
            side,
            order_type,
            quantity,
            price=price,
            stop_price=stop_price,
            reduce_only=reduce_only,
            position_side=position_side,
            time_ms=now,
            update_ms=now,
            time_in_force=params.get("timeInForce", "GTC"),
        )
        account.orders[order.order_id] = order
        return order

    def _check_filters(self, instrument: Instrument, quantity: Decimal, price: Decimal) -> None:
        if quantity < instrument.min_qty or quantity % instrument.step_size != 0:
            raise BinanceError(400, -1013, "Filter failure: LOT_SIZE")
        if price and price % instrument.tick_size != 0:
            raise BinanceError(400, -1013, "Filter failure: PRICE_FILTER")

    def _check_position_side(self, account: FakeAccount, position_side: str, reduce_only: bool) -> None:
        if account.hedge_mode and position_side not in ("LONG", "SHORT"):
            raise BinanceError(400, -4061, "Order's position side does not match user's setting.")
        if not account.hedge_mode and position_side != "BOTH":
            raise BinanceError(400, -4061, "Order's position side does not match user's setting.")
        if account.hedge_mode and reduce_only:
            raise BinanceError(400, -1106, "Parameter 'reduceonly' sent when not required.")

    def _is_closing(self, account: FakeAccount, symbol: str, side: str, position_side: str, reduce_only: bool) -> bool:
        if position_side == "LONG":
            return side == "SELL"
        if position_side == "SHORT":
            return side == "BUY"
        net = account.signed_position(symbol)
        return (net > 0 and side == "SELL") or (net < 0 and side == "BUY")

    def _available_margin(self, account: FakeAccount) -> Decimal:
        used = ZERO
        for (symbol, _side), pos in account.positions.items():
            leverage = Decimal(account.leverage.get(symbol, 20))
            used += abs(pos.amount) * pos.entry_price / leverage
        return account.futures_wallet - used

    def _unrealized(self, account: FakeAccount, key: tuple[str, str], pos: FakePosition) -> Decimal:
        symbol, position_side = key
        amount = -pos.amount if position_side == "SHORT" else pos.amount
        return (self.mark_prices[symbol] - pos.entry_price) * amount

    async def _execute(
        self, account: FakeAccount, order: FakeOrder, pieces: list[Decimal], price: Decimal
    ) -> list[FakeTrade]:
        trades = []
        for piece in pieces:
            now = self.now_ms()
            commission = piece * price * self.fee_rate
            trade = FakeTrade(
                next(self._trade_ids),
                order.order_id,
                order.market,
                order.symbol,
                order.side,
                piece,
                price,
                commission,
                order.position_side,
                now,
            )
            order.executed += piece
            order.cum_quote += piece * price
            order.commission += commission
            order.status = "FILLED" if order.executed >= order.quantity else "PARTIALLY_FILLED"
            order.update_ms = now
            if order.market == FUTURES:
                trade.realized_pnl = self._apply_futures_fill(account, order, piece, price)
                account.futures_wallet -= commission
            else:
                self._apply_spot_fill(account, order, piece, price, commission)
            account.trades.append(trade)
            trades.append(trade)
            await self._push_execution(account, order, trade)
        return trades

    def _apply_futures_fill(self, account: FakeAccount, order: FakeOrder, quantity: Decimal, price: Decimal) -> Decimal:
        if order.position_side == "BOTH":
            pos = account.position(order.symbol, "BOTH")
            delta = quantity if order.side == "BUY" else -quantity
        else:
            pos = account.position(order.symbol, order.position_side)
            opening = (order.position_side == "LONG") == (order.side == "BUY")
            delta = quantity if opening else -quantity
        realized = ZERO
        if pos.amount == 0 or (pos.amount > 0) == (delta > 0):
            new_amount = pos.amount + delta
            pos.entry_price = (pos.entry_price * abs(pos.amount) + price * abs(delta)) / abs(new_amount)
            pos.amount = new_amount
        else:
            closed = min(abs(delta), abs(pos.amount))
            direction = 1 if pos.amount > 0 else -1
            if order.position_side == "SHORT":
                direction = -1
            realized = (price - pos.entry_price) * closed * direction
            account.futures_wallet += realized
            pos.amount += delta
            if pos.amount == 0:
                pos.entry_price = ZERO
            elif abs(delta) > closed:
                pos.entry_price = price
        return realized

    def _apply_spot_fill(
        self, account: FakeAccount, order: FakeOrder, quantity: Decimal, price: Decimal, commission: Decimal
    ) -> None:
        instrument = self._instrument(SPOT, order.symbol)
        sign = 1 if order.side == "BUY" else -1
        balances = account.spot_balances
        balances[instrument.base] = balances.get(instrument.base, ZERO) + sign * quantity
        balances[instrument.quote] = balances.get(instrument.quote, ZERO) - sign * quantity * price - commission

    def _find_order(
        self, account: FakeAccount, market: str, params: dict[str, str], client_key: str, *, algo: bool
    ) -> FakeOrder:
        client_order_id = params.get(client_key)
        order_id = params.get("algoId" if algo else "orderId")
        for order in account.orders.values():
            if order.market != market or order.algo != algo:
                continue
            if (client_order_id and order.client_order_id == client_order_id) or (
                order_id and str(order.order_id) == order_id
            ):
                return order
        raise BinanceError(400, -2013, "Order does not exist.")

    def _select_trades(self, account: FakeAccount, market: str, params: dict[str, str]) -> list[FakeTrade]:
        symbol = params.get("symbol")
        if not symbol:
            raise BinanceError(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        start = int(params.get("startTime", 0))
        from_id = int(params.get("fromId", 0))
        limit = int(params.get("limit", 500))
        selected = [
            t
            for t in account.trades
            if t.market == market and t.symbol == symbol and t.time_ms >= start and t.trade_id >= from_id
        ]
        return selected[:limit]

    # ----------------------------------------------------------------- websocket

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        listen_key = request.query.get("listenKey") or request.path.rsplit("/", 1)[-1]
        account = next((a for a in self.accounts.values() if listen_key in a.listen_keys), None)
        if not self._accept_websockets:
            return web.Response(status=503, text="websocket refused by test")
        if account is None:
            return web.json_response({"code": -1125, "msg": "This listenKey does not exist."}, status=400)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets[ws] = account.api_key
        try:
            while not ws.closed:
                if ws in self._silent:
                    await asyncio.sleep(0.05)  # read nothing: pings go unanswered, like a dead peer
                    continue
                try:
                    message = await ws.receive(timeout=0.05)  # short, so silence takes effect promptly
                except TimeoutError:
                    continue
                if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
        finally:
            self._sockets.pop(ws, None)
            self._silent.discard(ws)
        return ws

    async def _push_execution(self, account: FakeAccount, order: FakeOrder, trade: FakeTrade) -> None:
        if order.market != FUTURES:
            return
        event = {
            "e": "ORDER_TRADE_UPDATE",
            "E": trade.time_ms,
            "T": trade.time_ms,
            "o": {
                "s": order.symbol,
                "c": order.client_order_id,
                "S": order.side,
                "o": "MARKET" if order.stop_price else order.type,
                "f": "GTC",
                "q": text(order.quantity),
                "p": text(order.price),
                "ap": text(order.average),
                "sp": text(order.stop_price),
                "x": "TRADE",
                "X": order.status,
                "i": order.order_id,
                "l": text(trade.quantity),
                "z": text(order.executed),
                "L": text(trade.price),
                "N": "USDT",
                "n": text(trade.commission),
                "T": trade.time_ms,
                "t": trade.trade_id,
                "b": "0",
                "a": "0",
                "m": False,
                "R": order.reduce_only,
                "wt": "CONTRACT_PRICE",
                "ot": order.type,
                "ps": order.position_side,
                "cp": False,
                "rp": text(trade.realized_pnl),
                "pP": False,
                "si": 0,
                "ss": 0,
                "V": "EXPIRE_TAKER",
                "pm": "NONE",
                "gtd": 0,
            },
        }
        for ws, api_key in list(self._sockets.items()):
            if api_key == account.api_key and ws not in self._silent and not ws.closed:
                await ws.send_str(json.dumps(event))


# --------------------------------------------------------------------- wire formats


def futures_symbol_info(i: Instrument) -> dict[str, Any]:
    return {
        "symbol": i.symbol,
        "pair": i.symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": i.base,
        "quoteAsset": i.quote,
        "marginAsset": i.quote,
        "pricePrecision": decimals(i.tick_size),
        "quantityPrecision": decimals(i.step_size),
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": ["PoW"],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.10", "maxPrice": "4529764", "tickSize": text(i.tick_size)},
            {"filterType": "LOT_SIZE", "minQty": text(i.min_qty), "maxQty": "1000", "stepSize": text(i.step_size)},
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": text(i.min_qty),
                "maxQty": "120",
                "stepSize": text(i.step_size),
            },
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {"filterType": "MIN_NOTIONAL", "notional": text(i.min_notional)},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": "1.0500",
                "multiplierDown": "0.9500",
                "multiplierDecimal": "4",
            },
        ],
        "orderTypes": [
            "LIMIT",
            "MARKET",
            "STOP",
            "STOP_MARKET",
            "TAKE_PROFIT",
            "TAKE_PROFIT_MARKET",
            "TRAILING_STOP_MARKET",
        ],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
    }


def spot_symbol_info(i: Instrument) -> dict[str, Any]:
    return {
        "symbol": i.symbol,
        "status": "TRADING",
        "baseAsset": i.base,
        "baseAssetPrecision": 8,
        "quoteAsset": i.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": [
            "LIMIT",
            "LIMIT_MAKER",
            "MARKET",
            "STOP_LOSS",
            "STOP_LOSS_LIMIT",
            "TAKE_PROFIT",
            "TAKE_PROFIT_LIMIT",
        ],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": text(i.tick_size),
                "maxPrice": "1000000.00",
                "tickSize": text(i.tick_size),
            },
            {"filterType": "LOT_SIZE", "minQty": text(i.min_qty), "maxQty": "9000.00", "stepSize": text(i.step_size)},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0", "maxQty": "100", "stepSize": "0"},
            {
                "filterType": "NOTIONAL",
                "minNotional": text(i.min_notional),
                "applyMinToMarket": True,
                "maxNotional": "9000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def decimals(step: Decimal) -> int:
    return max(0, -step.normalize().as_tuple().exponent)


def futures_order_json(o: FakeOrder) -> dict[str, Any]:
    return {
        "orderId": o.order_id,
        "symbol": o.symbol,
        "status": o.status,
        "clientOrderId": o.client_order_id,
        "price": text(o.price),
        "avgPrice": text(o.average),
        "origQty": text(o.quantity),
        "executedQty": text(o.executed),
        "cumQty": text(o.executed),
        "cumQuote": text(o.cum_quote),
        "timeInForce": "GTC",
        "type": o.type,
        "reduceOnly": o.reduce_only,
        "closePosition": False,
        "side": o.side,
        "positionSide": o.position_side,
        "stopPrice": text(o.stop_price),
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "origType": o.type,
        "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "goodTillDate": 0,
        "time": o.time_ms,
        "updateTime": o.update_ms,
    }


def algo_order_json(o: FakeOrder) -> dict[str, Any]:
    status = {"NEW": "NEW", "CANCELED": "CANCELED"}.get(o.status, "FINISHED")
    return {
        "algoId": o.order_id,
        "clientAlgoId": o.client_order_id,
        "algoType": "CONDITIONAL",
        "orderType": o.type,
        "symbol": o.symbol,
        "side": o.side,
        "positionSide": o.position_side,
        "timeInForce": "GTC",
        "quantity": text(o.quantity),
        "algoStatus": status,
        "triggerPrice": text(o.stop_price),
        "price": text(o.price),
        "icebergQuantity": None,
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "workingType": "CONTRACT_PRICE",
        "priceMatch": "NONE",
        "closePosition": False,
        "priceProtect": False,
        "reduceOnly": o.reduce_only,
        "createTime": o.time_ms,
        "updateTime": o.update_ms,
        "triggerTime": o.update_ms if o.actual_order_id else 0,
        "goodTillDate": 0,
        "actualOrderId": str(o.actual_order_id or ""),
    }


def spot_order_json(o: FakeOrder, fills: list[FakeTrade] | None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "symbol": o.symbol,
        "orderId": o.order_id,
        "orderListId": -1,
        "clientOrderId": o.client_order_id,
        "transactTime": o.update_ms,
        "time": o.time_ms,
        "updateTime": o.update_ms,
        "price": text(o.price),
        "origQty": text(o.quantity),
        "executedQty": text(o.executed),
        "cummulativeQuoteQty": text(o.cum_quote),
        "status": o.status,
        "timeInForce": "GTC",
        "type": o.type,
        "side": o.side,
        "stopPrice": text(o.stop_price),
        "workingTime": o.time_ms,
        "selfTradePreventionMode": "NONE",
    }
    if fills is not None:
        result["fills"] = [
            {
                "price": text(t.price),
                "qty": text(t.quantity),
                "commission": text(t.commission),
                "commissionAsset": "USDT",
                "tradeId": t.trade_id,
            }
            for t in fills
        ]
    return result


def futures_trade_json(t: FakeTrade) -> dict[str, Any]:
    return {
        "buyer": t.side == "BUY",
        "commission": text(t.commission),
        "commissionAsset": "USDT",
        "id": t.trade_id,
        "maker": False,
        "orderId": t.order_id,
        "price": text(t.price),
        "qty": text(t.quantity),
        "quoteQty": text(t.price * t.quantity),
        "realizedPnl": text(t.realized_pnl),
        "side": t.side,
        "positionSide": t.position_side,
        "symbol": t.symbol,
        "time": t.time_ms,
    }


def spot_trade_json(t: FakeTrade) -> dict[str, Any]:
    return {
        "symbol": t.symbol,
        "id": t.trade_id,
        "orderId": t.order_id,
        "orderListId": -1,
        "price": text(t.price),
        "qty": text(t.quantity),
        "quoteQty": text(t.price * t.quantity),
        "commission": text(t.commission),
        "commissionAsset": "USDT",
        "time": t.time_ms,
        "isBuyer": t.side == "BUY",
        "isMaker": False,
        "isBestMatch": True,
    }


# (method, path) -> (handler, security): NONE, USER_STREAM (API key only) or SIGNED.
ROUTES = {
    ("GET", "/fapi/v1/time"): (FakeBinance._time, "NONE"),
    ("GET", "/fapi/v1/ticker/24hr"): (FakeBinance._ticker, "NONE"),
    ("GET", "/api/v3/ticker/24hr"): (FakeBinance._ticker, "NONE"),
    ("GET", "/fapi/v1/exchangeInfo"): (FakeBinance._futures_exchange_info, "NONE"),
    ("GET", "/fapi/v2/account"): (FakeBinance._futures_account, "SIGNED"),
    ("GET", "/fapi/v3/account"): (FakeBinance._futures_account, "SIGNED"),
    ("GET", "/fapi/v2/balance"): (FakeBinance._futures_balance, "SIGNED"),
    ("GET", "/fapi/v3/balance"): (FakeBinance._futures_balance, "SIGNED"),
    ("GET", "/fapi/v2/positionRisk"): (FakeBinance._position_risk, "SIGNED"),
    ("GET", "/fapi/v3/positionRisk"): (FakeBinance._position_risk, "SIGNED"),
    ("GET", "/fapi/v1/leverageBracket"): (FakeBinance._leverage_bracket, "SIGNED"),
    ("POST", "/fapi/v1/leverage"): (FakeBinance._set_leverage, "SIGNED"),
    ("POST", "/fapi/v1/marginType"): (FakeBinance._set_margin_type, "SIGNED"),
    ("GET", "/fapi/v1/positionSide/dual"): (FakeBinance._get_position_mode, "SIGNED"),
    ("POST", "/fapi/v1/positionSide/dual"): (FakeBinance._set_position_mode, "SIGNED"),
    ("POST", "/fapi/v1/order"): (FakeBinance._futures_new_order, "SIGNED"),
    ("GET", "/fapi/v1/order"): (FakeBinance._futures_get_order, "SIGNED"),
    ("DELETE", "/fapi/v1/order"): (FakeBinance._futures_cancel_order, "SIGNED"),
    ("POST", "/fapi/v1/algoOrder"): (FakeBinance._futures_new_algo_order, "SIGNED"),
    ("GET", "/fapi/v1/algoOrder"): (FakeBinance._futures_get_algo_order, "SIGNED"),
    ("DELETE", "/fapi/v1/algoOrder"): (FakeBinance._futures_cancel_algo_order, "SIGNED"),
    ("GET", "/fapi/v1/userTrades"): (FakeBinance._futures_user_trades, "SIGNED"),
    ("POST", "/fapi/v1/listenKey"): (FakeBinance._listen_key, "USER_STREAM"),
    ("PUT", "/fapi/v1/listenKey"): (FakeBinance._keepalive_listen_key, "USER_STREAM"),
    ("GET", "/api/v3/time"): (FakeBinance._time, "NONE"),
    ("GET", "/api/v3/exchangeInfo"): (FakeBinance._spot_exchange_info, "NONE"),
    ("GET", "/api/v3/account"): (FakeBinance._spot_account, "SIGNED"),
    ("POST", "/api/v3/order"): (FakeBinance._spot_new_order, "SIGNED"),
    ("GET", "/api/v3/order"): (FakeBinance._spot_get_order, "SIGNED"),
    ("DELETE", "/api/v3/order"): (FakeBinance._spot_cancel_order, "SIGNED"),
    ("GET", "/api/v3/myTrades"): (FakeBinance._spot_my_trades, "SIGNED"),
    ("POST", "/api/v3/userDataStream"): (FakeBinance._spot_user_data_stream, "USER_STREAM"),
    ("PUT", "/api/v3/userDataStream"): (FakeBinance._keepalive_listen_key, "USER_STREAM"),
    ("GET", "/sapi/v1/account/apiRestrictions"): (FakeBinance._api_restrictions, "SIGNED"),
}
