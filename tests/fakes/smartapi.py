"""A local fake of Angel One's SmartAPI for running the real smartapi-python against.

It serves the REST routes the SDK calls (paths, headers and JSON shapes as SmartAPI uses them),
the scrip master JSON and the order-update websocket, on 127.0.0.1 and an ephemeral port, from
its own thread and event loop (the SDK is synchronous and runs in worker threads of the test's
loop). Logins check the PIN and the TOTP with pyotp; secure routes check the Bearer JWT and the
SDK's client headers. Tests script failures (Angel One's error shapes) and the master's orders.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import threading
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyotp
from aiohttp import WSMsgType, web

ROUTES = {
    "login": "/rest/auth/angelbroking/user/v1/loginByPassword",
    "logout": "/rest/secure/angelbroking/user/v1/logout",
    "profile": "/rest/secure/angelbroking/user/v1/getProfile",
    "rms": "/rest/secure/angelbroking/user/v1/getRMS",
    "place_order": "/rest/secure/angelbroking/order/v1/placeOrder",
    "order_book": "/rest/secure/angelbroking/order/v1/getOrderBook",
    "position": "/rest/secure/angelbroking/order/v1/getPosition",
    "ltp": "/rest/secure/angelbroking/order/v1/getLtpData",
    "cancel_order": "/rest/secure/angelbroking/order/v1/cancelOrder",
}
ORDER_UPDATES_PATH = "/smart-order-update"
SCRIP_MASTER_PATH = "/OpenAPIScripMaster.json"
CLIENT_HEADERS = ("X-ClientLocalIP", "X-ClientPublicIP", "X-MACAddress", "X-UserType", "X-SourceID")

INVALID_TOKEN = {"status": False, "message": "Invalid Token", "errorcode": "AG8001", "data": None}
RATE_LIMIT_TEXT = "Access denied because of exceeding access rate"

SCRIP_MASTER_ROWS: list[dict[str, str]] = [
    {
        "token": "3045",
        "symbol": "SBIN-EQ",
        "name": "SBIN",
        "expiry": "",
        "strike": "-1.000000",
        "lotsize": "1",
        "instrumenttype": "",
        "exch_seg": "NSE",
        "tick_size": "5.000000",
    },
    {
        "token": "500112",
        "symbol": "SBIN",
        "name": "SBIN",
        "expiry": "",
        "strike": "-1.000000",
        "lotsize": "1",
        "instrumenttype": "",
        "exch_seg": "BSE",
        "tick_size": "5.000000",
    },
    {
        "token": "43650",
        "symbol": "NIFTY24DEC24000CE",
        "name": "NIFTY",
        "expiry": "26DEC2024",
        "strike": "2400000.000000",
        "lotsize": "25",
        "instrumenttype": "OPTIDX",
        "exch_seg": "NFO",
        "tick_size": "5.000000",
    },
    {
        "token": "234230",
        "symbol": "CRUDEOIL24DECFUT",
        "name": "CRUDEOIL",
        "expiry": "18DEC2024",
        "strike": "-1.000000",
        "lotsize": "100",
        "instrumenttype": "FUTCOM",
        "exch_seg": "MCX",
        "tick_size": "100.000000",
    },
    {
        "token": "1",
        "symbol": "USDINR24DECFUT",
        "name": "USDINR",
        "expiry": "27DEC2024",
        "strike": "-1.000000",
        "lotsize": "1000",
        "instrumenttype": "FUTCUR",
        "exch_seg": "CDS",
        "tick_size": "0.250000",
    },
]


@dataclass
class FakeAccount:
    api_key: str
    client_code: str
    pin: str
    totp_secret: str
    net_funds: str = "250000.00"
    positions: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)


def _jwt(client_code: str, lifetime: int = 24 * 3600) -> str:
    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    claims = {"username": client_code, "exp": int(time.time()) + lifetime, "jti": uuid.uuid4().hex}
    return f"{b64({'alg': 'HS512', 'typ': 'JWT'})}.{b64(claims)}.{uuid.uuid4().hex}"


class FakeSmartApi:
    """Start with ``start()``, stop with ``stop()``; point the SDK at ``rest_root``/``ws_url``.

    Counters: ``calls[route]`` per REST route, ``logins[client_code]`` per successful login,
    ``failed_logins``. ``fail_next(route, kind)`` scripts one failure: ``"invalid_token"``,
    ``"rate_limit"`` (403 plain text, as Angel One answers), ``"invalid_variety"``, ``"timeout"`` (the request is
    processed, the answer arrives after the client gave up) or ``"bad_gateway"``.
    """

    def __init__(
        self,
        accounts: list[FakeAccount],
        *,
        scrip_master: list[dict[str, str]] | None = None,
        slow_answer_seconds: float = 1.5,
    ) -> None:
        self.accounts = {account.client_code: account for account in accounts}
        self.scrip_master = scrip_master if scrip_master is not None else SCRIP_MASTER_ROWS
        self.slow_answer_seconds = slow_answer_seconds
        self.last_prices: dict[str, str] = {}  # trading symbol -> last traded price (getLtpData)
        self.calls: Counter[str] = Counter()
        self.logins: Counter[str] = Counter()
        self.failed_logins = 0
        self.scrip_master_downloads = 0
        self.refuse_order_update_sockets = False
        self.order_update_connections = 0
        self.issued_tokens: list[str] = []  # every JWT, refresh and feed token handed out
        self._sessions: dict[str, str] = {}  # jwt -> client code
        self._feed_tokens: dict[str, str] = {}  # client code -> feed token
        self._failures: dict[str, deque[str]] = defaultdict(deque)
        self._sockets: dict[str, set[web.WebSocketResponse]] = defaultdict(set)
        self._order_ids = itertools.count(250_000_000_000_001)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> FakeSmartApi:
        ready = threading.Event()
        loop = self._loop = asyncio.new_event_loop()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._start_site())
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=serve, name="fake-smartapi", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        assert self._loop is not None and self._thread is not None
        asyncio.run_coroutine_threadsafe(self._stop_site(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start_site(self) -> None:
        app = web.Application()
        for name, path in ROUTES.items():
            app.router.add_route("*", path, self._handler(name))
        app.router.add_get(ORDER_UPDATES_PATH, self._order_updates)
        app.router.add_get(SCRIP_MASTER_PATH, self._scrip_master_handler)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _stop_site(self) -> None:
        await self._close_sockets()
        assert self._runner is not None
        await self._runner.cleanup()

    @property
    def rest_root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{ORDER_UPDATES_PATH}"

    @property
    def scrip_master_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{SCRIP_MASTER_PATH}"

    # -- test controls ------------------------------------------------------------------------------

    def fail_next(self, route: str, kind: str, times: int = 1) -> None:
        with self._lock:
            self._failures[route].extend([kind] * times)

    def expire_sessions(self) -> None:
        """Invalidate every JWT, as Angel One's daily logout does."""
        with self._lock:
            self._sessions.clear()

    def orders_of(self, client_code: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(order) for order in self.accounts[client_code].orders]

    def master_order(
        self,
        client_code: str,
        *,
        symbol: str = "SBIN-EQ",
        exchange: str = "NSE",
        side: str = "BUY",
        quantity: int = 10,
        filled: int = 0,
        average_price: str = "0",
        order_type: str = "MARKET",
        price: str = "0",
        trigger_price: str = "0",
        status: str = "open",
        order_id: str | None = None,
        push: bool = True,
    ) -> dict[str, Any]:
        """Add or update an order in ``client_code``'s book; ``push`` sends it on the order-update socket."""
        order = {
            "variety": "STOPLOSS" if order_type.startswith("STOPLOSS") else "NORMAL",
            "ordertype": order_type,
            "producttype": "INTRADAY",
            "duration": "DAY",
            "price": float(price),
            "triggerprice": float(trigger_price),
            "quantity": str(quantity),
            "tradingsymbol": symbol,
            "transactiontype": side,
            "exchange": exchange,
            "symboltoken": "3045",
            "averageprice": float(average_price),
            "filledshares": str(filled),
            "unfilledshares": str(quantity - filled),
            "orderid": order_id or str(next(self._order_ids)),
            "status": status,
            "orderstatus": status,
            "ordertag": "",
            "updatetime": "20-Dec-2024 10:35:49",
            "exchorderupdatetime": "20-Dec-2024 10:35:49",
        }
        with self._lock:
            book = self.accounts[client_code].orders
            book[:] = [existing for existing in book if existing["orderid"] != order["orderid"]] + [order]
        if push:
            self.push_order_update(client_code, order)
        return order

    def push_order_update(self, client_code: str, order: Mapping[str, Any]) -> None:
        message = {
            "user-id": client_code,
            "status-code": "200",
            "order-status": "AB05",
            "error-message": "",
            "orderData": dict(order),
        }
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._send_all(client_code, json.dumps(message)), self._loop).result(5)

    def drop_order_update_sockets(self) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._close_sockets(), self._loop).result(5)

    # -- REST ---------------------------------------------------------------------------------------

    def _handler(self, route: str):
        async def handle(request: web.Request) -> web.StreamResponse:
            with self._lock:
                self.calls[route] += 1
                failure = self._failures[route].popleft() if self._failures[route] else None
            account = self._account_for_key(request.headers.get("X-PrivateKey", ""))
            if account is None or any(not request.headers.get(h) for h in CLIENT_HEADERS):
                return web.json_response(
                    {"status": False, "message": "Invalid API Key", "errorcode": "AG8004", "data": None}
                )
            if request.headers.get("X-UserType") != "USER" or request.headers.get("X-SourceID") != "WEB":
                return web.json_response(
                    {"status": False, "message": "Invalid source", "errorcode": "AG8004", "data": None}
                )
            if failure == "rate_limit":
                return web.Response(status=403, text=RATE_LIMIT_TEXT)
            if failure == "invalid_token":
                return web.json_response(INVALID_TOKEN)
            if failure == "invalid_variety":
                return web.json_response(
                    {"status": False, "message": "Invalid Order Variety", "errorcode": "AB1008", "data": None}
                )
            if failure == "bad_gateway":
                return web.Response(status=502, text="<html>502 Bad Gateway</html>", content_type="text/html")
            body = await request.json() if request.method == "POST" and request.can_read_body else {}
            if route == "login":
                return web.json_response(self._login(account, body))
            client_code = self._client_for_bearer(request.headers.get("Authorization", ""))
            if client_code != account.client_code:
                return web.json_response(INVALID_TOKEN)
            answer = self._secure(route, account, body)
            if failure == "timeout":
                await asyncio.sleep(self.slow_answer_seconds)
            return web.json_response(answer)

        return handle

    def _account_for_key(self, api_key: str) -> FakeAccount | None:
        return next((a for a in self.accounts.values() if a.api_key == api_key), None)

    def _client_for_bearer(self, header: str) -> str | None:
        scheme, _, token = header.partition(" ")
        with self._lock:
            return self._sessions.get(token) if scheme == "Bearer" else None

    def _login(self, account: FakeAccount, body: Mapping[str, Any]) -> dict[str, Any]:
        if body.get("clientcode") != account.client_code or body.get("password") != account.pin:
            self.failed_logins += 1
            return {"status": False, "message": "Invalid clientcode or password", "errorcode": "AB1000", "data": None}
        if not pyotp.TOTP(account.totp_secret).verify(str(body.get("totp", "")), valid_window=1):
            self.failed_logins += 1
            return {"status": False, "message": "Invalid totp", "errorcode": "AB1050", "data": None}
        jwt, refresh, feed = _jwt(account.client_code), uuid.uuid4().hex, uuid.uuid4().hex
        with self._lock:
            self.issued_tokens += [jwt, refresh, feed]
            self._sessions[jwt] = account.client_code
            self._feed_tokens[account.client_code] = feed
            self.logins[account.client_code] += 1
        return {
            "status": True,
            "message": "SUCCESS",
            "errorcode": "",
            "data": {"jwtToken": jwt, "refreshToken": refresh, "feedToken": feed},
        }

    def _secure(self, route: str, account: FakeAccount, body: Mapping[str, Any]) -> dict[str, Any]:
        ok = {"status": True, "message": "SUCCESS", "errorcode": ""}
        if route == "profile":
            return {**ok, "data": {"clientcode": account.client_code, "name": "Test", "exchanges": ["NSE", "NFO"]}}
        if route == "rms":
            return {**ok, "data": {"net": account.net_funds, "availablecash": account.net_funds}}
        if route == "position":
            return {**ok, "data": account.positions or None}
        if route == "order_book":
            with self._lock:
                return {**ok, "data": [dict(order) for order in account.orders] or None}
        if route == "logout":
            return {**ok, "data": ""}
        if route == "ltp":
            price = self.last_prices.get(body.get("tradingsymbol", ""), "612.35")
            return {
                **ok,
                "data": {
                    "exchange": body.get("exchange"),
                    "tradingsymbol": body.get("tradingsymbol"),
                    "ltp": float(price),
                },
            }
        if route == "cancel_order":
            with self._lock:
                for order in account.orders:
                    if order["orderid"] == body.get("orderid") and order["status"] in ("open", "trigger pending"):
                        order["status"] = order["orderstatus"] = "cancelled"
                        return {**ok, "data": {"orderid": order["orderid"]}}
            return {"status": False, "message": "Order not found", "errorcode": "AB1010", "data": None}
        if route == "place_order":
            return self._place_order(account, body)
        raise AssertionError(route)

    def _place_order(self, account: FakeAccount, body: Mapping[str, Any]) -> dict[str, Any]:
        def refuse(message: str, code: str) -> dict[str, Any]:
            return {"status": False, "message": message, "errorcode": code, "data": None}

        required = (
            "variety",
            "tradingsymbol",
            "symboltoken",
            "transactiontype",
            "exchange",
            "ordertype",
            "producttype",
            "duration",
            "quantity",
        )
        if any(not body.get(key) for key in required):
            return refuse("Invalid order parameters", "AB4000")
        row = next(
            (
                r
                for r in self.scrip_master
                if r["exch_seg"] == body["exchange"] and r["symbol"] == body["tradingsymbol"]
            ),
            None,
        )
        if row is None or row["token"] != body["symboltoken"]:
            return refuse("Symbol not found", "AB1009")
        if len(str(body.get("ordertag", ""))) > 20:
            return refuse("ordertag length should be less than 20 characters", "AB4008")
        quantity = int(body["quantity"])
        if quantity <= 0 or quantity % int(row["lotsize"]):
            return refuse("Quantity should be multiple of lot size", "AB4011")
        stop = body["ordertype"].startswith("STOPLOSS")
        if stop != (body["variety"] == "STOPLOSS"):
            return refuse("Invalid Order Variety", "AB1008")
        if body["producttype"] not in ("INTRADAY", "DELIVERY", "CARRYFORWARD", "MARGIN"):
            return refuse("Invalid Product Type", "AB1012")
        if body["ordertype"] in ("LIMIT", "STOPLOSS_LIMIT") and float(body.get("price", 0)) <= 0:
            return refuse("Invalid price", "AB4000")
        if stop and float(body.get("triggerprice", 0)) <= 0:
            return refuse("Invalid trigger price", "AB4000")
        order_id = str(next(self._order_ids))
        market = body["ordertype"] == "MARKET"
        order = {
            **body,
            "orderid": order_id,
            "status": "complete" if market else "open",
            "orderstatus": "complete" if market else "open",
            "filledshares": str(quantity) if market else "0",
            "averageprice": 612.35 if market else 0.0,
            "ordertag": body.get("ordertag", ""),
        }
        with self._lock:
            account.orders.append(order)
        return {
            "status": True,
            "message": "SUCCESS",
            "errorcode": "",
            "data": {"script": body["tradingsymbol"], "orderid": order_id, "uniqueorderid": str(uuid.uuid4())},
        }

    async def _scrip_master_handler(self, request: web.Request) -> web.Response:
        self.scrip_master_downloads += 1
        return web.json_response(self.scrip_master)

    # -- order-update websocket ------------------------------------------------------------------

    async def _order_updates(self, request: web.Request) -> web.StreamResponse:
        if self.refuse_order_update_sockets:
            return web.Response(status=503, text="unavailable")
        client_code = self._client_for_bearer(request.headers.get("Authorization", ""))
        account = self.accounts.get(request.headers.get("x-client-code", ""))
        if (
            client_code is None
            or account is None
            or client_code != account.client_code
            or request.headers.get("x-api-key") != account.api_key
            or request.headers.get("x-feed-token") != self._feed_tokens.get(client_code)
        ):
            return web.Response(status=401, text="Unauthorized")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.order_update_connections += 1
        self._sockets[client_code].add(ws)
        empty_order = {"orderid": "", "filledshares": "", "status": ""}
        await ws.send_str(
            json.dumps(
                {
                    "user-id": client_code,
                    "status-code": "200",
                    "order-status": "AB00",
                    "error-message": "",
                    "orderData": empty_order,
                }
            )
        )
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT and message.data == "ping":
                    await ws.send_str("pong")
        finally:
            self._sockets[client_code].discard(ws)
        return ws

    async def _send_all(self, client_code: str, text: str) -> None:
        for ws in list(self._sockets[client_code]):
            await ws.send_str(text)

    async def _close_sockets(self) -> None:
        for sockets in self._sockets.values():
            for ws in list(sockets):
                await ws.close()


# -- helpers shared by the Angel One test modules ----------------------------------------------------

MASTER = FakeAccount(
    api_key="master-api-key-7Q2", client_code="M70001", pin="7314", totp_secret="KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"
)
FOLLOWER = FakeAccount(
    api_key="follower-api-key-9Z4", client_code="F80002", pin="4821", totp_secret="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
)


def credentials_of(account: FakeAccount, **overrides: str) -> dict[str, str]:
    """The stored credential dict an operator would enter for ``account``."""
    values = {
        "api_key": account.api_key,
        "client_code": account.client_code,
        "pin": account.pin,
        "totp_secret": account.totp_secret,
    }
    return {**values, **overrides}


def fresh_accounts() -> list[FakeAccount]:
    """Copies of the master and follower accounts, so no test sees another's orders."""
    return [FakeAccount(a.api_key, a.client_code, a.pin, a.totp_secret) for a in (MASTER, FOLLOWER)]
