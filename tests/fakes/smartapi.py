"""A local fake of Angel One's SmartAPI, as strict as the broker is under the 2026 retail-algo rules.

It serves the REST routes the SDK calls (paths, headers and JSON shapes as SmartAPI uses them),
the scrip master JSON and the order-update websocket, on 127.0.0.1 and an ephemeral port, from
its own thread and event loop (the SDK is synchronous and runs in worker threads of the test's
loop). Logins check the PIN and the TOTP with pyotp; secure routes check the Bearer JWT and the
SDK's client headers. Tests script failures (Angel One's error shapes) and the master's orders.

Each broker rule below cites docs/research/angelone.md (``research §n``) or says "unconfirmed —
chosen so" with the reason. In short:

* ``placeOrder`` answers with the order id only; the order rests ("open", or "trigger pending" for
  stop-loss orders) until a test fills it with ``fill`` (fully or partly) or the RMS rejects it
  after acceptance (``reject_next_order``, ``reject_order``). Every change reaches the order book,
  the trade book, the positions and the order-update socket.
* MARKET, STOPLOSS_MARKET and IOC orders are refused (algo orders since 1 April 2026).
* Order requests (place, modify, cancel) are accepted only from the client's registered static
  IP, judged by the TCP source address, never by the ``X-ClientPublicIP`` header (the SDK
  hard-codes it). ``start_egress_proxy(ip)`` gives a local HTTP proxy whose upstream connections
  leave from ``ip`` (any 127.0.0.x address on Linux): pass its ``url`` as the SDK's ``proxies``.
* Order requests above the orders-per-second threshold (10 per client and exchange segment, more
  for a client with a registered algo id) are refused.
* Product types are carried on orders, trades, positions and order updates. Positions are net per
  instrument and product and may go short: a SELL of nothing held makes a negative ``netqty`` (NSE
  allows intraday short selling; nothing here refuses it). ``square_off_intraday`` is the broker's
  auto square-off of INTRADAY positions before the close; ``hold`` puts shares in demat (getHolding).
* Freeze quantities: an NFO order above NSE's freeze quantity of its underlying
  (``FREEZE_QUANTITIES``) is accepted, then rejected by the exchange with the reason in the book.
* Sessions: an order is accepted only while its exchange segment trades (``market_time``, India
  time, a fixed Tuesday morning by default); outside, only an after-market order (variety AMO) in
  the segment's AMO window, which waits "after market order req received" until ``open_market``.
* Price bands: a price outside the instrument's day band (``price_bands``; by default 20 % around
  the last price) is refused; the band is served by the quote API (``getMarketData`` FULL).
* Reads: order book, trade book and positions answer at most once a second per client, the quote
  API ten times; above that, Angel One's 403 "exceeding access rate".
* An order that is not there (cancel, modify) is answered AB1013 "Order not found", never AB1010
  (an expired session).

* A lost answer (``fail_next(route, "timeout")``) does not mean the order exists: the request is
  recorded a delay later (seeded, 0.5–3 s by default) or never, after the client gave up.
  Unconfirmed — chosen so, the conservative assumption (no document bounds it).
* ``ordertag`` is not a duplicate guard: the same tag twice makes two orders. Unconfirmed — chosen
  so, the conservative assumption (no document says Angel One refuses a repeated tag).

``order_requests`` records every order request that reached the fake (refused ones included), so
a test can assert what was ever sent.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import random
import threading
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from datetime import time as day_time
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlsplit

import pyotp
from aiohttp import WSMsgType, web

ROUTES = {
    "login": "/rest/auth/angelbroking/user/v1/loginByPassword",
    "logout": "/rest/secure/angelbroking/user/v1/logout",
    "profile": "/rest/secure/angelbroking/user/v1/getProfile",
    "rms": "/rest/secure/angelbroking/user/v1/getRMS",
    "place_order": "/rest/secure/angelbroking/order/v1/placeOrder",
    "modify_order": "/rest/secure/angelbroking/order/v1/modifyOrder",
    "cancel_order": "/rest/secure/angelbroking/order/v1/cancelOrder",
    "order_book": "/rest/secure/angelbroking/order/v1/getOrderBook",
    "trade_book": "/rest/secure/angelbroking/order/v1/getTradeBook",
    "position": "/rest/secure/angelbroking/order/v1/getPosition",
    "holding": "/rest/secure/angelbroking/portfolio/v1/getHolding",
    "ltp": "/rest/secure/angelbroking/order/v1/getLtpData",
    "quote": "/rest/secure/angelbroking/market/v1/quote",
}
#: the routes that are "API order execution" in Angel One's notice (research §1): the static IP and
#: the orders-per-second threshold apply to these. NSE's summary says "Static IP is mandatory for all
#: API access" (research §1); reads are not checked here — unconfirmed for Angel One, chosen so
#: because the broker's own notice speaks of order execution only.
ORDER_ROUTES = frozenset({"place_order", "modify_order", "cancel_order"})
ORDER_UPDATES_PATH = "/smart-order-update"
SCRIP_MASTER_PATH = "/OpenAPIScripMaster.json"
CLIENT_HEADERS = ("X-ClientLocalIP", "X-ClientPublicIP", "X-MACAddress", "X-UserType", "X-SourceID")

INVALID_TOKEN = {"status": False, "message": "Invalid Token", "errorcode": "AG8001", "data": None}
#: SmartAPI's error table (docs/Exceptions, as client libraries reproduce it; research §2): AB1013
#: "Order not found" — not AB1010 "AMX Session Expired", which means log in again
ORDER_NOT_FOUND = {"status": False, "message": "Order not found", "errorcode": "AB1013", "data": None}
#: SmartAPI forum "Changes in API Rate Limit" (research §2): getOrderBook, getTradeBook,
#: getPosition and getHolding 1 a second; quote (getMarketData) and getLtpData 10 a second. Counted
#: per client, sliding over the last second (unconfirmed whether Angel One counts per client or per
#: API key: one key per client here, so the same).
READ_LIMITS_PER_SECOND = {"order_book": 1, "trade_book": 1, "position": 1, "holding": 1, "quote": 10, "ltp": 10}
RATE_LIMIT_TEXT = "Access denied because of exceeding access rate"

#: research §1: "A standard Threshold Order Per Second (TOPS) has been set at 10 OPS per
#: exchange/segment"; NSE's summary: "Orders exceeding 10 OPS must be rejected".
ORDERS_PER_SECOND_THRESHOLD = 10
#: research §1: the notice prohibits "Market orders and IOC orders" for algos. STOPLOSS_MARKET is
#: refused too — unconfirmed, chosen so: once triggered it is a market order, the kind prohibited.
PROHIBITED_ORDER_TYPES = frozenset({"MARKET", "STOPLOSS_MARKET"})
PROHIBITED_DURATIONS = frozenset({"IOC"})
PRODUCT_TYPES = frozenset({"DELIVERY", "CARRYFORWARD", "MARGIN", "INTRADAY"})  # research §3

#: Angel One's answers to the 2026 rules. research §1: the error codes and texts are unconfirmed
#: ("Make the rejection shape configurable"), so every one is chosen so — codes no other answer of
#: this fake uses, texts that say what was refused — and a test may replace them
#: (``FakeSmartApi(refusals=...)``).
REFUSALS: dict[str, dict[str, str]] = {
    "static_ip": {
        "errorcode": "AB4041",
        "message": "Order request rejected: it does not originate from the client's registered static IP",
    },
    "market_or_ioc": {
        "errorcode": "AB4042",
        "message": "Market and IOC orders are not allowed for algo orders; place a LIMIT order with DAY validity",
    },
    "orders_per_second": {
        "errorcode": "AB4043",
        "message": "Order rejected: orders per second above the threshold for this exchange segment; "
        "register the algo with the exchange",
    },
    "market_closed": {
        # the segment is not trading: unconfirmed text — chosen so
        "errorcode": "AB4045",
        "message": "Market is closed for this exchange segment; place an after-market order (variety AMO)",
    },
    "amo_window": {
        "errorcode": "AB4046",
        "message": "After-market orders are not accepted at this time for this exchange segment",
    },
    "price_band": {
        # research §4: prices outside the band are rejected; the text is unconfirmed
        "errorcode": "AB4047",
        "message": "Price is outside the day's price band (circuit limits) of the instrument",
    },
    "off_tick": {
        # research §4: exchanges require prices on the tick grid; the text is unconfirmed
        "errorcode": "AB4044",
        "message": "Price is not a multiple of the tick size",
    },
}
#: research §2: rejections reach the order book's ``text``; the wording of an RMS margin rejection
#: is unconfirmed — chosen so, in the shape of Angel One's app messages.
#: NSE's quantity freeze limits per underlying, in units (NSE's circular under Chapter 1.8 "Quantity
#: Freeze for Futures & Options Contracts" of consolidated circular NSE/FAOP/67775, as ICICI Direct
#: reproduces the revision w.e.f. 1 February 2026: NIFTY 1,800, BANKNIFTY 600, FINNIFTY 1,800,
#: MIDCPNIFTY 2,800, NIFTYNXT50 600). The exchange rejects an order "with quantity more than the
#: respective freeze quantity limit" (NSE's circular as 5paisa reproduces it): the freeze quantity
#: itself is accepted (Angel One's announcement of 3 April 2023: "Maximum units you can buy or sell
#: per order").
FREEZE_QUANTITIES = {"NIFTY": 1800, "BANKNIFTY": 600, "FINNIFTY": 1800, "MIDCPNIFTY": 2800, "NIFTYNXT50": 600}
#: the text of an exchange's freeze-quantity rejection in the order book: the broker accepts the
#: order and the exchange rejects it ("frozen and automatically rejected by the Exchange"). Angel
#: One's own wording is unconfirmed — chosen so, in the shape of its RMS texts.
FREEZE_REJECTION_TEXT = "Order quantity {quantity} is above the freeze quantity {freeze} of the contract"
RMS_REJECTION_TEXT = (
    "Your order has been rejected due to Insufficient Funds. Available funds - Rs. 0.00 . "
    "You require Rs. {required} funds to execute this order."
)
#: ``order-status`` codes on the order-update socket. research §2: AB00 is the connect ack, and a
#: third-party mapping reads AB07 as "cancelled" and AB10 as "trigger pending"; the other codes
#: are unconfirmed — chosen so (copytrade reads ``orderData``, not the code).
ORDER_UPDATE_CODES = {
    "open": "AB01",
    "rejected": "AB03",
    "modified": "AB04",
    "complete": "AB05",
    "cancelled": "AB07",
    "trigger pending": "AB10",
}
IST = timezone(timedelta(hours=5, minutes=30), "IST")
#: the fake's market clock by default: Tuesday 8 December 2026, 11:00 India time, a trading day
MARKET_OPEN_AT = datetime(2026, 12, 8, 11, 0, tzinfo=IST)
#: the regular sessions per exchange segment, India time. NSE "Regular trading session … Open
#: 09:15 hrs … Close 15:30 hrs" for equities (NSE's market timings, as reproduced with its 2026
#: holiday list, stocktrack.co.in); BSE and NSE F&O keep the same hours; MCX trades 09:00–23:30
#: (23:55 while the US is on standard time: the shorter, stricter close is kept — MCX's circulars
#: as reported by goldsilverreports.com). The pre-open call auction (09:00–09:08) is not modelled.
SESSIONS = {
    "NSE": (day_time(9, 15), day_time(15, 30)),
    "BSE": (day_time(9, 15), day_time(15, 30)),
    "NFO": (day_time(9, 15), day_time(15, 30)),
    "MCX": (day_time(9, 0), day_time(23, 30)),
    "CDS": (day_time(9, 0), day_time(17, 0)),
}
#: when an after-market order is taken. Angel One's own AMO hours are unconfirmed; brokers publish
#: different windows (Zerodha: NSE/BSE 15:45–08:57, F&O 15:45–09:10, MCX any time; Upstox: equity
#: 16:01–24:00 and 05:00–08:58, F&O 15:31–24:00 and 05:00–09:13, MCX 05:00–08:58). Chosen so: the
#: narrowest of them, on every calendar day.
AMO_WINDOWS = {
    "NSE": ((day_time(16, 1), day_time(23, 59, 59)), (day_time(5, 0), day_time(8, 57))),
    "BSE": ((day_time(16, 1), day_time(23, 59, 59)), (day_time(5, 0), day_time(8, 57))),
    "NFO": ((day_time(16, 1), day_time(23, 59, 59)), (day_time(5, 0), day_time(9, 10))),
    "MCX": ((day_time(5, 0), day_time(8, 58)),),
    "CDS": ((day_time(17, 1), day_time(23, 59, 59)), (day_time(5, 0), day_time(8, 58))),
}
#: the trading holidays the fake knows (NSE's 2026 list, every segment; MCX: closed all day on
#: 25 December 2026, rupeezy.in's reproduction of MCX's list). Saturdays and Sundays never trade.
HOLIDAYS = frozenset({date(2026, 12, 25)})
#: the status of an after-market order waiting for the open (research §2 lists it)
AMO_STATUS = "after market order req received"
#: the day's price band when a test sets none: 20 % either side of the last price (NSE's widest
#: equity band; F&O operating ranges differ — chosen so)
DEFAULT_BAND_PCT = Decimal(20)
DEFAULT_LTP = "612.35"
ANGEL_TIME_FORMAT = "%d-%b-%Y %H:%M:%S"  # research §2: "09-Oct-2023 17:39:28"

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
        # NIFTY's lot is 65 units for contracts expiring after December 2025 (ICICI Direct: "with the
        # revised lot size of 65, the effective freeze quantity becomes 1,755")
        "token": "61250",
        "symbol": "NIFTY29DEC2626000CE",
        "name": "NIFTY",
        "expiry": "29DEC2026",
        "strike": "2600000.000000",
        "lotsize": "65",
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
    """One Angel One client. ``static_ip`` is the registered primary static IP (research §1: "API
    order execution will only be accepted if it originates from your registered primary static
    IP"); without one, every order request is refused. ``algo_id`` with ``algo_orders_per_second``
    is an exchange-registered algo, allowed above the 10 OPS threshold (research §1: "Above 10 OPS:
    These algorithms must be registered with the respective exchange to obtain a unique registration
    ID"). The broker stamps the id (research §1: no SmartAPI field carries it — unconfirmed), so it
    is configured here per client, not sent with the order."""

    api_key: str
    client_code: str
    pin: str
    totp_secret: str
    net_funds: str = "250000.00"
    static_ip: str | None = None
    algo_id: str | None = None
    algo_orders_per_second: int | None = None
    positions: list[dict[str, Any]] = field(default_factory=list)
    #: demat holdings (getHolding rows): shares bought on earlier days, held DELIVERY
    holdings: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if (self.algo_id is None) != (self.algo_orders_per_second is None):
            raise ValueError("an algo id and its registered orders per second go together")


@dataclass(frozen=True)
class OrderRequest:
    """An order request (place, modify, cancel) as it reached the fake, refused or not."""

    route: str
    client_code: str
    source_ip: str
    public_ip_header: str
    body: dict[str, Any]
    errorcode: str  # "" when accepted; LOST when the request was never recorded (a lost answer)


#: ``OrderRequest.errorcode`` of an order request that reached the fake but was never recorded
LOST = "lost"
#: research §2 gives the SDK's default timeout (7 s) and nothing on when, or whether, a request
#: whose answer was lost is recorded by the broker; no document says. Unconfirmed — chosen so, the
#: conservative assumption: it may be recorded later than the client gives up (after 0.5–3 s by
#: default, seeded), or never.
LOST_REQUEST_DELAY_SECONDS = (0.5, 3.0)
LostRequests = Literal["late", "never"]


@dataclass(frozen=True)
class Fault:
    """One scripted failure of a route (``fail_next``). For ``"timeout"`` on an order route:
    ``recorded`` says whether the request is recorded late or never (None: the fake's
    ``lost_requests``), ``record_after`` how long after it arrived (None: drawn from the fake's
    seeded RNG within ``lost_request_delay``)."""

    kind: str
    recorded: LostRequests | None = None
    record_after: float | None = None


def _jwt(client_code: str, lifetime: int = 24 * 3600) -> str:
    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    claims = {"username": client_code, "exp": int(time.time()) + lifetime, "jti": uuid.uuid4().hex}
    return f"{b64({'alg': 'HS512', 'typ': 'JWT'})}.{b64(claims)}.{uuid.uuid4().hex}"


def _money(value: Decimal) -> str:
    """A price as SmartAPI's books write it: a string (research §2: "All quantities and prices are
    strings"), two places unless the tick needs more."""
    value = value.quantize(Decimal("0.0001"))
    two_places = value.quantize(Decimal("0.01"))
    return str(two_places) if two_places == value else str(value.normalize())


def _now_ist() -> str:
    return datetime.now(IST).strftime(ANGEL_TIME_FORMAT)


def _refusal(shape: Mapping[str, str]) -> dict[str, Any]:
    return {"status": False, "message": shape["message"], "errorcode": shape["errorcode"], "data": None}


class EgressProxy:
    """A local HTTP proxy whose upstream connections leave from ``egress_ip``: a client's static
    egress, as an operator runs one per client (research §1, "What an operator must do"). Plain
    requests are forwarded (absolute URI, as ``requests`` sends them to an ``http://`` proxy) and
    ``CONNECT`` is tunnelled (websocket-client's way through a proxy). With ``username`` and
    ``password``, a request without the matching ``Proxy-Authorization`` gets 407."""

    def __init__(self, egress_ip: str, *, username: str | None = None, password: str | None = None) -> None:
        self.egress_ip = egress_ip
        self._credentials = (
            "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode() if username is not None else None
        )
        self._userinfo = f"{username}:{password}@" if username is not None else ""
        self.forwarded = 0
        self.refused = 0
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self._userinfo}127.0.0.1:{self.port}"

    @property
    def proxies(self) -> dict[str, str]:
        """The SDK's ``proxies`` argument (research §2: passed to ``requests.request``)."""
        return {"http": self.url, "https": self.url}

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, version = request_line.split(" ", 2)
        headers = [line for line in header_lines if line]
        authorization = next(
            (line.split(":", 1)[1].strip() for line in headers if line.lower().startswith("proxy-authorization:")), None
        )
        if self._credentials is not None and authorization != self._credentials:
            self.refused += 1
            writer.write(
                b'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="egress"\r\n'
                b"Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
            await writer.drain()
            writer.close()
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream_reader, upstream_writer = await asyncio.open_connection(
                host, int(port), local_addr=(self.egress_ip, 0)
            )
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            url = urlsplit(target)
            upstream_reader, upstream_writer = await asyncio.open_connection(
                url.hostname, url.port or 80, local_addr=(self.egress_ip, 0)
            )
            path = url.path + (f"?{url.query}" if url.query else "")
            kept = [line for line in headers if not line.lower().startswith(("proxy-", "connection:", "keep-alive:"))]
            upstream_writer.write(
                "\r\n".join([f"{method} {path} {version}", *kept, "Connection: close", "", ""]).encode("latin-1")
            )
        self.forwarded += 1
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer), return_exceptions=True
        )

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()


class FakeSmartApi:
    """Start with ``start()``, stop with ``stop()``; point the SDK at ``rest_root``/``ws_url``.

    Counters: ``calls[route]`` per REST route, ``logins[client_code]`` per successful login,
    ``failed_logins``; ``order_requests`` lists every order request. ``fail_next(route, kind)``
    scripts one failure: ``"invalid_token"``, ``"rate_limit"`` (403 plain text, as Angel One
    answers), ``"invalid_variety"``, ``"timeout"`` or ``"bad_gateway"``. A ``"timeout"`` answers
    only after ``slow_answer_seconds`` (the client has given up); on an order route the request is
    not processed before that: it is recorded ``record_after`` seconds after it arrived (default:
    drawn from ``lost_request_delay`` with the RNG seeded by ``seed``), or never
    (``recorded="never"``, or ``lost_requests="never"`` for every lost answer).

    Order lifecycle helpers: ``fill`` (a resting order, fully or partly, at a price),
    ``trigger`` (a stop-loss order becomes open), ``reject_next_order`` / ``reject_order`` (the RMS
    rejects after acceptance). ``master_order`` writes a (manual) order of the master directly.
    """

    def __init__(
        self,
        accounts: list[FakeAccount],
        *,
        scrip_master: list[dict[str, str]] | None = None,
        slow_answer_seconds: float = 1.5,
        orders_per_second: int = ORDERS_PER_SECOND_THRESHOLD,
        refusals: Mapping[str, Mapping[str, str]] | None = None,
        rms_delay_seconds: float = 0.05,
        unique_static_ips: bool = True,
        lost_requests: LostRequests = "late",
        lost_request_delay: tuple[float, float] = LOST_REQUEST_DELAY_SECONDS,
        seed: int = 0,
        read_limits: Mapping[str, int] = READ_LIMITS_PER_SECOND,
        freeze_quantities: Mapping[str, int] = FREEZE_QUANTITIES,
    ) -> None:
        self.accounts = {account.client_code: account for account in accounts}
        if unique_static_ips:
            # research §1: "A Static IP can be linked to only one customer" (Upstox; NSE's summary
            # allows sharing "only among family accounts"); unconfirmed for Angel One — chosen so,
            # the stricter reading. ``unique_static_ips=False`` models family accounts.
            registered = Counter(a.static_ip for a in accounts if a.static_ip)
            shared = sorted(ip for ip, count in registered.items() if count > 1)
            if shared:
                raise ValueError(f"a static IP can be registered for one client only: {shared}")
        self.scrip_master = scrip_master if scrip_master is not None else SCRIP_MASTER_ROWS
        self.slow_answer_seconds = slow_answer_seconds
        self.orders_per_second = orders_per_second
        self.refusals = {**REFUSALS, **{k: dict(v) for k, v in (refusals or {}).items()}}
        self.rms_delay_seconds = rms_delay_seconds
        self.lost_requests: LostRequests = lost_requests
        self.lost_request_delay = lost_request_delay
        self.read_limits = dict(read_limits)
        #: underlying -> NSE's freeze quantity, for the NFO contracts of that underlying
        self.freeze_quantities = dict(freeze_quantities)
        self._rng = random.Random(seed)
        #: how long an accepted cancellation takes to show in the books (0: at once). Unconfirmed —
        #: chosen so: a broker forwards the cancellation to the exchange and its books change on the
        #: exchange's confirmation, so a client may read the order "open" just after cancelOrder's SUCCESS.
        self.cancel_delay_seconds = 0.0
        self.last_prices: dict[str, str] = {}  # trading symbol -> last traded price (getLtpData)
        #: the market's clock (India time): sessions and AMO windows are judged by it
        self.market_time = MARKET_OPEN_AT
        #: trading symbol -> the day's (lower, upper) band; others: DEFAULT_BAND_PCT around the last price
        self.price_bands: dict[str, tuple[Decimal, Decimal]] = {}
        #: reads answered and refused for rate, per route
        self.reads: Counter[str] = Counter()
        self.read_refusals: Counter[str] = Counter()
        #: the source address of every order-update socket (who connected from where)
        self.order_update_sources: list[str] = []
        self.calls: Counter[str] = Counter()
        self.logins: Counter[str] = Counter()
        self.failed_logins = 0
        self.scrip_master_downloads = 0
        self.refuse_order_update_sockets = False
        self.order_update_connections = 0
        self.issued_tokens: list[str] = []  # every JWT, refresh and feed token handed out
        self.order_requests: list[OrderRequest] = []
        self._sessions: dict[str, str] = {}  # jwt -> client code
        self._feed_tokens: dict[str, str] = {}  # client code -> feed token
        self._failures: dict[str, deque[Fault]] = defaultdict(deque)
        self._rms_rejections: dict[str, deque[str | None]] = defaultdict(deque)
        self._order_times: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._read_times: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._sockets: dict[str, set[web.WebSocketResponse]] = defaultdict(set)
        self._proxies: list[EgressProxy] = []
        self._order_ids = itertools.count(250_000_000_000_001)
        self._fill_ids = itertools.count(50_000_001)
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
        for proxy in self._proxies:
            await proxy.close()
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

    def start_egress_proxy(
        self, egress_ip: str, *, username: str | None = None, password: str | None = None
    ) -> EgressProxy:
        """A local proxy leaving from ``egress_ip`` (e.g. ``127.0.0.5``), stopped with the fake."""
        assert self._loop is not None
        proxy = EgressProxy(egress_ip, username=username, password=password)
        asyncio.run_coroutine_threadsafe(proxy.start(), self._loop).result(5)
        self._proxies.append(proxy)
        return proxy

    # -- test controls ------------------------------------------------------------------------------

    def fail_next(
        self,
        route: str,
        kind: str,
        times: int = 1,
        *,
        recorded: LostRequests | None = None,
        record_after: float | None = None,
    ) -> None:
        """Fail the next ``times`` requests of ``route`` with ``kind``; ``recorded`` and
        ``record_after`` shape a ``"timeout"`` of an order route (``Fault``)."""
        with self._lock:
            self._failures[route].extend([Fault(kind, recorded, record_after)] * times)

    def clock(self) -> datetime:
        """The market's time now (``market_time``) as an aware UTC datetime, for the venue's clock."""
        return self.market_time.astimezone(UTC)

    def open_market(self, client_code: str) -> list[dict[str, Any]]:
        """The session opened: ``client_code``'s after-market orders go to the exchange and rest
        "open" (research §2 status list; Zerodha: AMOs are sent to the exchange at the open)."""
        snapshots = []
        with self._lock:
            for order in self.accounts[client_code].orders:
                if order["status"] == AMO_STATUS:
                    self._set_status(order, "open")
                    snapshots.append(dict(order))
        for snapshot in snapshots:
            self._notify(client_code, snapshot)
        return snapshots

    def band(self, tradingsymbol: str) -> tuple[Decimal, Decimal]:
        """The day's price band of an instrument: ``price_bands``, else 20 % around the last price a
        test set (``last_prices``); a test that sets neither gets a band wide enough for any price
        it sends (its subject is not the band)."""
        if tradingsymbol in self.price_bands:
            return self.price_bands[tradingsymbol]
        if tradingsymbol not in self.last_prices:
            return Decimal("0.01"), Decimal(10**9)
        ltp = Decimal(self.last_prices[tradingsymbol])
        move = ltp * DEFAULT_BAND_PCT / 100
        return (ltp - move).quantize(Decimal("0.05")), (ltp + move).quantize(Decimal("0.05"))

    def trading(self, exchange: str) -> bool:
        """Whether ``exchange``'s regular session is on at ``market_time``."""
        now = self.market_time.astimezone(IST)
        opens, closes = SESSIONS[exchange]
        return now.weekday() < 5 and now.date() not in HOLIDAYS and opens <= now.time() < closes

    def takes_amo(self, exchange: str) -> bool:
        """Whether an after-market order for ``exchange`` is taken at ``market_time``."""
        now = self.market_time.astimezone(IST).time()
        return not self.trading(exchange) and any(start <= now <= end for start, end in AMO_WINDOWS[exchange])

    def expire_sessions(self) -> None:
        """Invalidate every JWT, as Angel One's daily logout does."""
        with self._lock:
            self._sessions.clear()

    def register_static_ip(self, client_code: str, ip: str | None) -> None:
        """Register (or, with ``None``, remove) ``client_code``'s static IP, one client per IP."""
        with self._lock:
            others = {a.static_ip for a in self.accounts.values() if a.client_code != client_code}
            if ip is not None and ip in others:
                raise ValueError(f"static IP {ip} is registered for another client")
            self.accounts[client_code].static_ip = ip

    def orders_of(self, client_code: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(order) for order in self.accounts[client_code].orders]

    def trades_of(self, client_code: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(trade) for trade in self.accounts[client_code].trades]

    def positions_of(self, client_code: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(position) for position in self.accounts[client_code].positions]

    def reject_next_order(self, client_code: str, text: str | None = None, times: int = 1) -> None:
        """The next ``times`` orders of ``client_code`` are accepted (the id is returned), then the RMS
        rejects them with ``text`` (default: an insufficient-funds text). research §2 and the SmartAPI
        forum (https://smartapi.angelbroking.com/smartapi/forum/post/5685, "How to get if Order is
        rejected": placeOrder answers SUCCESS with an order id for an order rejected afterwards; the
        reason is in the order book's ``text``)."""
        with self._lock:
            self._rms_rejections[client_code].extend([text] * times)

    def reject_order(self, client_code: str, order_id: str, text: str) -> dict[str, Any]:
        """A resting, unfilled order of ``client_code`` becomes "rejected" with ``text``."""
        with self._lock:
            order = self._find_order(client_code, order_id)
            assert order["status"] in ("open", "trigger pending") and order["filledshares"] == "0", order["status"]
            self._set_status(order, "rejected", text=text)
            snapshot = dict(order)
        self._notify(client_code, snapshot)
        return snapshot

    def trigger(self, client_code: str, order_id: str) -> dict[str, Any]:
        """A stop-loss order's trigger price is reached: "trigger pending" becomes "open"."""
        with self._lock:
            order = self._find_order(client_code, order_id)
            assert order["status"] == "trigger pending", order["status"]
            self._set_status(order, "open")
            snapshot = dict(order)
        self._notify(client_code, snapshot)
        return snapshot

    def fill(
        self, client_code: str, order_id: str, quantity: int | None = None, price: str | Decimal | None = None
    ) -> dict[str, Any]:
        """Execute ``quantity`` (default: all that is unfilled) of a resting order at ``price``
        (default: its limit price; never through the limit). The order book, the trade book, the
        positions and the order-update socket all show it; the order stays "open" until nothing is
        unfilled, then it is "complete" (research §2: ``filledshares``/``unfilledshares``, statuses
        "open" and "complete"; a marketable LIMIT "leave[s] the remainder open (DAY)", research §4).
        Returns the order as the book now shows it."""
        with self._lock:
            order = self._find_order(client_code, order_id)
            assert order["status"] == "open", f"order {order_id} is {order['status']}, not open"
            unfilled = int(order["unfilledshares"])
            quantity = unfilled if quantity is None else quantity
            lot = int(order["lotsize"])
            assert 0 < quantity <= unfilled and quantity % lot == 0, f"cannot fill {quantity} of {unfilled}"
            limit = Decimal(order["price"])
            fill_price = limit if price is None else Decimal(str(price))
            buying = order["transactiontype"] == "BUY"
            assert (fill_price <= limit) if buying else (fill_price >= limit), "a fill through the limit price"
            self._execute(self.accounts[client_code], order, quantity, fill_price)
            snapshot = dict(order)
        self._notify(client_code, snapshot)
        return snapshot

    def square_off_intraday(self, client_code: str, price: str | Decimal | None = None) -> list[dict[str, Any]]:
        """The broker's auto square-off of ``client_code``'s INTRADAY positions before the close, which
        a test triggers (the time is the broker's: Zerodha 15:20 for equities and 15:25 for F&O,
        Geojit 15:15, "at the discretion of our risk management team"; Angel One's own times are
        unconfirmed, research §3). As research §3 asks, and as Geojit describes it: the pending
        INTRADAY orders are cancelled first, then each open INTRADAY position is closed by an order
        the broker places — no ordertag, at ``price`` (default: the last price) — filled at once,
        so the order book, the trade book and the positions show it. DELIVERY and CARRYFORWARD
        positions are left as they are. Returns the square-off orders."""
        account = self.accounts[client_code]
        snapshots = []
        with self._lock:
            for order in account.orders:
                if order["producttype"] == "INTRADAY" and order["status"] in ("open", "trigger pending", AMO_STATUS):
                    order["cancelsize"] = order["unfilledshares"]
                    self._set_status(order, "cancelled", text="Cancelled by the broker's intraday square-off")
                    snapshots.append(dict(order))
            for position in list(account.positions):
                net = int(position["netqty"])
                if position["producttype"] != "INTRADAY" or net == 0:
                    continue
                fill_price = Decimal(str(price or self.last_prices.get(position["tradingsymbol"], DEFAULT_LTP)))
                order = {
                    **self._order_fields(
                        symbol=position["tradingsymbol"],
                        exchange=position["exchange"],
                        side="SELL" if net > 0 else "BUY",
                        quantity=abs(net),
                        order_type="LIMIT",
                        price=fill_price,
                        trigger_price=Decimal(0),
                        product="INTRADAY",
                        duration="DAY",
                        order_id=str(next(self._order_ids)),
                        tag="",
                    ),
                    "averageprice": "0.00",
                    "filledshares": "0",
                    "unfilledshares": str(abs(net)),
                }
                account.orders.append(order)
                self._execute(account, order, abs(net), fill_price)
                snapshots.append(dict(order))
        for snapshot in snapshots:
            self._notify(client_code, snapshot)
        return [s for s in snapshots if s["status"] == "complete"]

    def hold(self, client_code: str, symbol: str, quantity: int, average_price: str, *, t1: int = 0) -> None:
        """``client_code`` holds ``quantity`` shares of ``symbol`` (NSE) in demat, bought on earlier
        days, and ``t1`` more bought on the previous trading day (getHolding's ``quantity`` and
        ``t1quantity``; the fields as SmartAPI clients type a holding, e.g. norenapigo's
        ``Holding``: tradingsymbol, exchange, isin, t1quantity, realisedquantity, quantity,
        authorisedquantity, product, collateralquantity, collateraltype, haircut — plus
        averageprice and symboltoken). Unconfirmed whether ``quantity`` already counts ``t1quantity``
        — chosen so: apart, as Kite's holdings keep them."""
        row = next(r for r in self.scrip_master if r["exch_seg"] == "NSE" and r["symbol"] == symbol)
        with self._lock:
            self.accounts[client_code].holdings.append(
                {
                    "tradingsymbol": symbol,
                    "exchange": "NSE",
                    "isin": "INE062A01020",
                    "t1quantity": str(t1),
                    "realisedquantity": str(quantity),
                    "quantity": str(quantity),
                    "authorisedquantity": "0",
                    "product": "DELIVERY",
                    "collateralquantity": None,
                    "collateraltype": None,
                    "haircut": "0",
                    "averageprice": _money(Decimal(average_price)),
                    "symboltoken": row["token"],
                }
            )

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
        product: str = "INTRADAY",
        order_id: str | None = None,
        push: bool = True,
        updated: datetime | None = None,
    ) -> dict[str, Any]:
        """Add or update an order in ``client_code``'s book as the master's own (manual) trading
        writes it — no API rule applies; ``push`` sends it on the order-update socket. What filled
        since the previous snapshot of the same order is added to the trade book and positions.
        Its update time (to the second, India time, as the book writes it) is ``updated``, else a
        fixed day in 2024."""
        order_id = order_id or str(next(self._order_ids))
        order = {
            **self._order_fields(
                symbol=symbol,
                exchange=exchange,
                side=side,
                quantity=quantity,
                order_type=order_type,
                price=Decimal(price),
                trigger_price=Decimal(trigger_price),
                product=product,
                duration="DAY",
                order_id=order_id,
                tag="",
            ),
            "averageprice": _money(Decimal(average_price)),
            "filledshares": str(filled),
            "unfilledshares": str(quantity - filled),
            "status": status,
            "orderstatus": status,
            "updatetime": updated.astimezone(IST).strftime(ANGEL_TIME_FORMAT) if updated else "20-Dec-2024 10:35:49",
            "exchorderupdatetime": (
                updated.astimezone(IST).strftime(ANGEL_TIME_FORMAT) if updated else "20-Dec-2024 10:35:49"
            ),
        }
        with self._lock:
            account = self.accounts[client_code]
            previous = next((o for o in account.orders if o["orderid"] == order_id), None)
            before = int(previous["filledshares"]) if previous else 0
            before_value = Decimal(previous["averageprice"]) * before if previous else Decimal(0)
            if filled > before:
                increment_price = (Decimal(average_price) * filled - before_value) / (filled - before)
                self._record_trade(account, order, filled - before, increment_price)
            account.orders[:] = [o for o in account.orders if o["orderid"] != order_id] + [order]
        if push:
            self.push_order_update(client_code, order)
        return order

    def push_order_update(self, client_code: str, order: Mapping[str, Any]) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(
            self._send_all(client_code, self._update_text(client_code, order)), self._loop
        ).result(5)

    def drop_order_update_sockets(self) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._close_sockets(), self._loop).result(5)

    # -- REST ---------------------------------------------------------------------------------------

    def _handler(self, route: str):
        async def handle(request: web.Request) -> web.StreamResponse:
            with self._lock:
                self.calls[route] += 1
                fault = self._failures[route].popleft() if self._failures[route] else None
            failure = fault.kind if fault else None
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
            source_ip, public_ip = request.remote or "", request.headers.get("X-ClientPublicIP", "")
            if route in self.read_limits and not self._within_read_rate(route, account):
                return web.Response(status=403, text=RATE_LIMIT_TEXT)
            if route in ORDER_ROUTES and fault is not None and failure == "timeout":
                return await self._lost_answer(fault, route, account, body, source_ip, public_ip)
            if route in ORDER_ROUTES:
                answer = self._order_request(route, account, body, source_ip, public_ip)
            else:
                answer = self._secure(route, account, body)
            if failure == "timeout":  # a read: answered late, nothing recorded by it
                await asyncio.sleep(self.slow_answer_seconds)
            return web.json_response(answer)

        return handle

    async def _lost_answer(
        self,
        fault: Fault,
        route: str,
        account: FakeAccount,
        body: Mapping[str, Any],
        source_ip: str,
        public_ip: str,
    ) -> web.StreamResponse:
        """An order request whose answer is lost: it is not processed now. No document says when,
        or whether, Angel One records such a request (research §2 has only the SDK's 7 s timeout;
        docs/angelone.md: copytrade looks the order up by its tag instead of sending it again).
        Unconfirmed — chosen so, the conservative assumption: it is recorded after the client gave
        up, or never. The answer, if anyone still waits for it, comes after ``slow_answer_seconds``:
        the request's own answer if it was recorded by then, else a gateway timeout."""
        assert self._loop is not None
        answers: list[dict[str, Any]] = []
        if (fault.recorded or self.lost_requests) == "never":
            with self._lock:
                self.order_requests.append(
                    OrderRequest(route, account.client_code, source_ip, public_ip, dict(body), LOST)
                )
        else:
            with self._lock:
                delay = fault.record_after
                if delay is None:
                    delay = self._rng.uniform(*self.lost_request_delay)

            def record() -> None:
                answers.append(self._order_request(route, account, body, source_ip, public_ip))

            self._loop.call_later(delay, record)
        await asyncio.sleep(self.slow_answer_seconds)
        if answers:
            return web.json_response(answers[0])
        return web.Response(status=504, text="<html>504 Gateway Time-out</html>", content_type="text/html")

    def _within_read_rate(self, route: str, account: FakeAccount) -> bool:
        """Whether this read keeps the client within the route's limit (``read_limits``, by default
        READ_LIMITS_PER_SECOND); counted either way."""
        now = time.monotonic()
        with self._lock:
            times = self._read_times[(account.client_code, route)]
            while times and times[0] <= now - 1.0:
                times.popleft()
            if len(times) >= self.read_limits[route]:
                self.read_refusals[route] += 1
                return False
            times.append(now)
            self.reads[route] += 1
            return True

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
        with self._lock:
            if route == "position":
                return {**ok, "data": [dict(p) for p in account.positions] or None}
            if route == "holding":
                return {**ok, "data": [dict(h) for h in account.holdings] or None}
            if route == "order_book":
                return {**ok, "data": [dict(order) for order in account.orders] or None}
            if route == "trade_book":
                return {**ok, "data": [dict(trade) for trade in account.trades] or None}
        if route == "logout":
            return {**ok, "data": ""}
        if route == "ltp":
            return self._ltp(body)
        if route == "quote":
            return self._quote(body)
        raise AssertionError(route)

    def _quote(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``getMarketData(mode, exchangeTokens)``: smartapi-python POSTs ``{"mode": ..., "exchangeTokens":
        {"NSE": ["3045"], ...}}`` to route ``api.market.data`` = /rest/secure/angelbroking/market/v1/quote
        (smartConnect.py l.53, l.476-482). The FULL answer's ``data`` holds ``fetched`` (per instrument:
        exchange, tradingSymbol, symbolToken, ltp, open/high/low/close, lowerCircuit, upperCircuit, …, as
        JSON numbers) and ``unfetched`` (SmartAPI's Market Data docs; a client's recorded answer,
        yajneshkulalmanjeshwar-source/Vectra_AI_Automated_Trade_System example/test.js). Only FULL is served."""
        tokens = body.get("exchangeTokens")
        if body.get("mode") != "FULL" or not isinstance(tokens, dict):
            return {"status": False, "message": "Invalid request", "errorcode": "AB4000", "data": None}
        fetched, unfetched = [], []
        for exchange, listed in tokens.items():
            for token in listed:
                row = next((r for r in self.scrip_master if r["exch_seg"] == exchange and r["token"] == token), None)
                if row is None:
                    unfetched.append({"exchange": exchange, "symbolToken": token})
                    continue
                ltp = Decimal(self.last_prices.get(row["symbol"], DEFAULT_LTP))
                lower, upper = self.band(row["symbol"])
                fetched.append(
                    {
                        "exchange": exchange,
                        "tradingSymbol": row["symbol"],
                        "symbolToken": token,
                        "ltp": float(ltp),
                        "open": float(ltp),
                        "high": float(ltp),
                        "low": float(ltp),
                        "close": float(ltp),
                        "lowerCircuit": float(lower),
                        "upperCircuit": float(upper),
                    }
                )
        return {
            "status": True,
            "message": "SUCCESS",
            "errorcode": "",
            "data": {"fetched": fetched, "unfetched": unfetched},
        }

    def _ltp(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``ltpData(exchange, tradingsymbol, symboltoken)``: smartapi-python (angel-one/smartapi-python
        SmartApi/smartConnect.py l.372-379) POSTs exactly these three fields as JSON to route
        ``api.ltp.data`` = /rest/secure/angelbroking/order/v1/getLtpData (l.38). All three must name one
        instrument of the scrip master (the token is the instrument's key; unconfirmed that Angel One
        refuses a token that does not match the symbol — chosen so, the stricter reading). The answer's
        data carries the request's three fields and open/high/low/close/ltp as JSON numbers (Angel
        One's LTP documentation; the SDK returns the decoded body unchanged, l.230-247). ``ltp`` is
        ``last_prices[tradingsymbol]`` (default 612.35)."""
        fields = ("exchange", "tradingsymbol", "symboltoken")
        if any(not isinstance(body.get(key), str) or not body.get(key) for key in fields):
            return {"status": False, "message": "Invalid request", "errorcode": "AB4000", "data": None}
        row = self._instrument(body)
        if row is None or row["token"] != body["symboltoken"]:
            return {"status": False, "message": "Symbol not found", "errorcode": "AB1009", "data": None}
        ltp = Decimal(self.last_prices.get(body["tradingsymbol"], DEFAULT_LTP))
        return {
            "status": True,
            "message": "SUCCESS",
            "errorcode": "",
            "data": {
                **{key: body[key] for key in fields},
                "open": float(ltp),
                "high": float(ltp),
                "low": float(ltp),
                "close": float(ltp),
                "ltp": float(ltp),
            },
        }

    # -- order requests: static IP, orders per second, then the order itself ----------------------

    def _order_request(
        self, route: str, account: FakeAccount, body: Mapping[str, Any], source_ip: str, public_ip: str
    ) -> dict[str, Any]:
        # research §2: the SDK always sends X-ClientPublicIP "106.193.147.98" (smartConnect.py
        # l.71-81), so only the TCP source address (the egress the request came through) is judged.
        if account.static_ip is None or source_ip != account.static_ip:
            answer = _refusal(self.refusals["static_ip"])
        else:
            answer = self._within_order_rate(route, account, body) or self._order_route(route, account, body)
        with self._lock:
            self.order_requests.append(
                OrderRequest(
                    route,
                    account.client_code,
                    source_ip,
                    public_ip,
                    dict(body),
                    str(answer.get("errorcode") or ""),
                )
            )
        return answer

    def _within_order_rate(self, route: str, account: FakeAccount, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """The refusal when this order request would exceed the client's orders per second in its
        exchange segment, else ``None`` (and the request is counted).

        research §1: 10 OPS "per exchange/segment", more only for a registered algo. The segment is
        the ``exchange`` field (NSE cash, NFO, BSE, MCX…). Counted: every place, modify and cancel
        that passed the static-IP check, refused or not afterwards — unconfirmed, chosen so:
        exchanges count order messages, and modifications and cancellations are order messages.
        The window is the last second, sliding."""
        if route == "cancel_order":
            with self._lock:
                order = next((o for o in account.orders if o["orderid"] == body.get("orderid")), None)
            exchange = order["exchange"] if order else None
        else:
            exchange = body.get("exchange")
        if not exchange:
            return None
        limit = account.algo_orders_per_second or self.orders_per_second
        now = time.monotonic()
        with self._lock:
            times = self._order_times[(account.client_code, str(exchange))]
            while times and times[0] <= now - 1.0:
                times.popleft()
            if len(times) >= limit:
                return _refusal(self.refusals["orders_per_second"])
            times.append(now)
        return None

    def _order_route(self, route: str, account: FakeAccount, body: Mapping[str, Any]) -> dict[str, Any]:
        if route == "place_order":
            return self._place_order(account, body)
        if route == "modify_order":
            return self._modify_order(account, body)
        return self._cancel_order(account, body)

    def _instrument(self, body: Mapping[str, Any]) -> dict[str, str] | None:
        return next(
            (
                r
                for r in self.scrip_master
                if r["exch_seg"] == body.get("exchange") and r["symbol"] == body.get("tradingsymbol")
            ),
            None,
        )

    def _terms_refusal(self, body: Mapping[str, Any], row: Mapping[str, str]) -> dict[str, Any] | None:
        """What placeOrder and modifyOrder both check: order type, duration, product, prices."""

        def refuse(message: str, code: str) -> dict[str, Any]:
            return {"status": False, "message": message, "errorcode": code, "data": None}

        order_type, duration = body.get("ordertype"), body.get("duration")
        if order_type in PROHIBITED_ORDER_TYPES or duration in PROHIBITED_DURATIONS:
            return _refusal(self.refusals["market_or_ioc"])
        if order_type not in ("LIMIT", "STOPLOSS_LIMIT") or duration != "DAY":
            return refuse("Invalid order type or duration", "AB4000")
        stop = order_type == "STOPLOSS_LIMIT"
        # an after-market order is a LIMIT only: Upstox "In AMO orders, SL Limit order is not allowed"
        # (unconfirmed for Angel One — chosen so, the stricter broker)
        if stop != (body.get("variety") == "STOPLOSS") or body.get("variety") not in ("NORMAL", "STOPLOSS", "AMO"):
            return refuse("Invalid Order Variety", "AB1008")
        if body.get("producttype") not in PRODUCT_TYPES:
            return refuse("Invalid Product Type", "AB1012")
        quantity = int(body.get("quantity") or 0)
        if quantity <= 0 or quantity % int(row["lotsize"]):
            return refuse("Quantity should be multiple of lot size", "AB4011")
        price = Decimal(str(body.get("price") or 0))
        trigger = Decimal(str(body.get("triggerprice") or 0))
        if price <= 0:
            return refuse("Invalid price", "AB4000")
        if stop and trigger <= 0:
            return refuse("Invalid trigger price", "AB4000")
        tick = Decimal(row["tick_size"]) / 100  # the scrip master gives the tick in paise
        if price % tick or (stop and trigger % tick):
            return _refusal(self.refusals["off_tick"])
        lower, upper = self.band(row["symbol"])
        if not lower <= price <= upper:  # research §4: "reject … prices outside a configurable band"
            return _refusal(self.refusals["price_band"])
        return None

    def freeze_quantity(self, row: Mapping[str, str]) -> int | None:
        """The most one order of the contract ``row`` may ask for: NSE's freeze quantity of its
        underlying for an NFO contract (``freeze_quantities``), else no limit."""
        return self.freeze_quantities.get(row["name"]) if row["exch_seg"] == "NFO" else None

    def _session_refusal(self, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """An order outside its segment's session is refused; an after-market order (variety AMO,
        research §2's variety list) only inside the segment's AMO window (``AMO_WINDOWS``)."""
        exchange = str(body["exchange"])
        if body.get("variety") == "AMO":
            return None if self.takes_amo(exchange) else _refusal(self.refusals["amo_window"])
        return None if self.trading(exchange) else _refusal(self.refusals["market_closed"])

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
        row = self._instrument(body)
        if row is None or row["token"] != body["symboltoken"]:
            return refuse("Symbol not found", "AB1009")
        if len(str(body.get("ordertag", ""))) > 20:
            return refuse("ordertag length should be less than 20 characters", "AB4008")
        # No duplicate guard on ``ordertag``: an order with a tag already in the book is placed as
        # another order. Nothing in research §2 (an optional field, max 20 characters) or
        # docs/angelone.md says Angel One refuses a repeated tag; unconfirmed — chosen so, the
        # conservative assumption (a resend after a lost answer would make a second order).
        refusal = self._terms_refusal(body, row) or self._session_refusal(body)
        if refusal is not None:
            return refusal
        order_id = str(next(self._order_ids))
        quantity = int(body["quantity"])
        stop = body["ordertype"] == "STOPLOSS_LIMIT"
        order = {
            **self._order_fields(
                symbol=body["tradingsymbol"],
                exchange=body["exchange"],
                side=body["transactiontype"],
                quantity=quantity,
                order_type=body["ordertype"],
                price=Decimal(str(body["price"])),
                trigger_price=Decimal(str(body.get("triggerprice") or 0)),
                product=body["producttype"],
                duration=body["duration"],
                order_id=order_id,
                tag=str(body.get("ordertag", "")),
            ),
            "averageprice": "0.00",
            "filledshares": "0",
            "unfilledshares": str(quantity),
        }
        # research §2 (order-book statuses): a stop-loss order waits as "trigger pending"; a LIMIT
        # order rests "open" until it fills (the intermediate "open pending"/"validation pending"
        # states are not modelled).
        if body["variety"] == "AMO":  # waits for the open (``open_market``)
            order["variety"] = "AMO"
            self._set_status(order, AMO_STATUS)
        else:
            self._set_status(order, "trigger pending" if stop else "open")
        freeze = self.freeze_quantity(row)
        with self._lock:
            account.orders.append(order)
            rejections = self._rms_rejections[account.client_code]
            rejected = bool(rejections)
            text = rejections.popleft() if rejected else None
            if freeze is not None and quantity > freeze:
                rejected, text = True, FREEZE_REJECTION_TEXT.format(quantity=quantity, freeze=freeze)
            snapshot = dict(order)
        self._notify(account.client_code, snapshot)
        if rejected:
            text = text or RMS_REJECTION_TEXT.format(required=_money(order_value(order)))
            assert self._loop is not None
            self._loop.call_later(self.rms_delay_seconds, self._reject_after_acceptance, account, order_id, text)
        # research §2: placeOrder's data holds script, orderid and uniqueorderid; the SDK's
        # placeOrder returns only the order id — nothing about fills.
        return {
            "status": True,
            "message": "SUCCESS",
            "errorcode": "",
            "data": {"script": body["tradingsymbol"], "orderid": order_id, "uniqueorderid": order["uniqueorderid"]},
        }

    def _reject_after_acceptance(self, account: FakeAccount, order_id: str, text: str) -> None:
        with self._lock:
            order = self._find_order(account.client_code, order_id)
            if order["status"] not in ("open", "trigger pending") or order["filledshares"] != "0":
                return  # filled or cancelled first
            self._set_status(order, "rejected", text=text)
            snapshot = dict(order)
        self._notify(account.client_code, snapshot)

    def _modify_order(self, account: FakeAccount, body: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            order = next((o for o in account.orders if o["orderid"] == body.get("orderid")), None)
        if order is None or order["status"] not in ("open", "trigger pending", AMO_STATUS):
            return ORDER_NOT_FOUND
        row = self._instrument(order)
        assert row is not None
        terms = {**body, "exchange": order["exchange"], "tradingsymbol": order["tradingsymbol"]}
        refusal = self._terms_refusal(terms, row)
        if refusal is not None:
            return refusal
        quantity = int(body["quantity"])
        with self._lock:
            filled = int(order["filledshares"])
            if quantity <= filled:
                return {
                    "status": False,
                    "message": "Quantity below the filled quantity",
                    "errorcode": "AB4011",
                    "data": None,
                }
            order.update(
                ordertype=body["ordertype"],
                price=_money(Decimal(str(body["price"]))),
                triggerprice=_money(Decimal(str(body.get("triggerprice") or 0))),
                quantity=str(quantity),
                unfilledshares=str(quantity - filled),
                updatetime=_now_ist(),
            )
            snapshot = dict(order)
        self._notify(account.client_code, snapshot)
        return {
            "status": True,
            "message": "SUCCESS",
            "errorcode": "",
            "data": {"orderid": order["orderid"], "uniqueorderid": order["uniqueorderid"]},
        }

    def _cancel_order(self, account: FakeAccount, body: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            order = next(
                (
                    o
                    for o in account.orders
                    if o["orderid"] == body.get("orderid") and o["status"] in ("open", "trigger pending", AMO_STATUS)
                ),
                None,
            )
            if order is None:
                return ORDER_NOT_FOUND
            order_id = order["orderid"]
        if self.cancel_delay_seconds:
            assert self._loop is not None
            self._loop.call_later(self.cancel_delay_seconds, self._cancelled, account, order_id)
        else:
            self._cancelled(account, order_id)
        return {"status": True, "message": "SUCCESS", "errorcode": "", "data": {"orderid": order_id}}

    def _cancelled(self, account: FakeAccount, order_id: str) -> None:
        with self._lock:
            order = self._find_order(account.client_code, order_id)
            if order["status"] not in ("open", "trigger pending", AMO_STATUS):
                return  # filled (or cancelled) before the cancellation took effect
            # what filled stays filled; the remainder is the cancelled size (research §2: cancelsize)
            order["cancelsize"] = order["unfilledshares"]
            self._set_status(order, "cancelled")
            snapshot = dict(order)
        self._notify(account.client_code, snapshot)

    # -- the books --------------------------------------------------------------------------------

    def _order_fields(
        self,
        *,
        symbol: str,
        exchange: str,
        side: str,
        quantity: int,
        order_type: str,
        price: Decimal,
        trigger_price: Decimal,
        product: str,
        duration: str,
        order_id: str,
        tag: str,
    ) -> dict[str, Any]:
        """An order-book row (research §2 lists the fields; all values strings)."""
        row = next((r for r in self.scrip_master if r["exch_seg"] == exchange and r["symbol"] == symbol), None)
        return {
            "variety": "STOPLOSS" if order_type.startswith("STOPLOSS") else "NORMAL",
            "ordertype": order_type,
            "producttype": product,
            "duration": duration,
            "price": _money(price),
            "triggerprice": _money(trigger_price),
            "quantity": str(quantity),
            "disclosedquantity": "0",
            "squareoff": "0",
            "stoploss": "0",
            "trailingstoploss": "0",
            "tradingsymbol": symbol,
            "transactiontype": side,
            "exchange": exchange,
            "symboltoken": row["token"] if row else "3045",
            "instrumenttype": row["instrumenttype"] if row else "",
            "expirydate": row["expiry"] if row else "",
            "lotsize": row["lotsize"] if row else "1",
            "cancelsize": "0",
            "orderid": order_id,
            "uniqueorderid": str(uuid.uuid4()),
            "ordertag": tag,
            "text": "",
            "fillid": "",
            "filltime": "",
            "parentorderid": "",
        }

    @staticmethod
    def _set_status(order: dict[str, Any], status: str, *, text: str = "") -> None:
        order["status"] = order["orderstatus"] = status
        order["text"] = text
        order["updatetime"] = order["exchorderupdatetime"] = _now_ist()

    def _find_order(self, client_code: str, order_id: str) -> dict[str, Any]:
        return next(o for o in self.accounts[client_code].orders if o["orderid"] == order_id)

    def _execute(self, account: FakeAccount, order: dict[str, Any], quantity: int, price: Decimal) -> None:
        before = int(order["filledshares"])
        filled = before + quantity
        average = (Decimal(order["averageprice"]) * before + price * quantity) / filled
        trade = self._record_trade(account, order, quantity, price)
        order.update(
            filledshares=str(filled),
            unfilledshares=str(int(order["quantity"]) - filled),
            averageprice=_money(average),
            fillid=trade["fillid"],
            filltime=trade["filltime"],
        )
        self._set_status(order, "complete" if filled == int(order["quantity"]) else "open")

    def _record_trade(
        self, account: FakeAccount, order: Mapping[str, Any], quantity: int, price: Decimal
    ) -> dict[str, Any]:
        """A trade-book row (getTradeBook's fields as third-party typings of the API give them,
        https://github.com/ankit-kumar-jat/alogstream app/types/angleone.d.ts ``AngleoneTrade``) and
        the position it changes. The position's averaging is unconfirmed — chosen so: the average
        of the side that makes the net quantity."""
        trade = {
            "exchange": order["exchange"],
            "producttype": order["producttype"],
            "tradingsymbol": order["tradingsymbol"],
            "instrumenttype": order.get("instrumenttype", ""),
            "symbolgroup": "EQ",
            "strikeprice": "-1",
            "optiontype": "",
            "expirydate": order.get("expirydate", ""),
            "marketlot": order.get("lotsize", "1"),
            "precision": "2",
            "multiplier": "-1",
            "tradevalue": _money(price * quantity),
            "transactiontype": order["transactiontype"],
            "fillprice": _money(price),
            "fillsize": str(quantity),
            "orderid": order["orderid"],
            "fillid": str(next(self._fill_ids)),
            "filltime": datetime.now(IST).strftime("%H:%M:%S"),
        }
        account.trades.append(trade)
        key = (order["exchange"], order["tradingsymbol"], order["producttype"])
        position = next(
            (p for p in account.positions if (p["exchange"], p["tradingsymbol"], p.get("producttype")) == key), None
        )
        if position is None:
            position = {
                "exchange": order["exchange"],
                "tradingsymbol": order["tradingsymbol"],
                "symboltoken": order.get("symboltoken", ""),
                "producttype": order["producttype"],
                "lotsize": order.get("lotsize", "1"),
                "buyqty": "0",
                "sellqty": "0",
                "buyamount": "0.00",
                "sellamount": "0.00",
            }
            account.positions.append(position)
        side = "buy" if order["transactiontype"] == "BUY" else "sell"
        position[f"{side}qty"] = str(int(position[f"{side}qty"]) + quantity)
        position[f"{side}amount"] = _money(Decimal(position[f"{side}amount"]) + price * quantity)
        bought, sold = int(position["buyqty"]), int(position["sellqty"])
        buy_average = Decimal(position["buyamount"]) / bought if bought else Decimal(0)
        sell_average = Decimal(position["sellamount"]) / sold if sold else Decimal(0)
        net = bought - sold
        position.update(
            buyavgprice=_money(buy_average),
            sellavgprice=_money(sell_average),
            netqty=str(net),
            avgnetprice=_money(buy_average if net > 0 else sell_average if net < 0 else Decimal(0)),
        )
        return trade

    async def _scrip_master_handler(self, request: web.Request) -> web.Response:
        self.scrip_master_downloads += 1
        return web.json_response(self.scrip_master)

    # -- order-update websocket ------------------------------------------------------------------

    def _update_text(self, client_code: str, order: Mapping[str, Any]) -> str:
        status = str(order.get("status", ""))
        return json.dumps(
            {
                "user-id": client_code,
                "status-code": "200",
                "order-status": ORDER_UPDATE_CODES.get(status, "AB05"),
                "error-message": "",
                "orderData": dict(order),
            }
        )

    def _notify(self, client_code: str, order: Mapping[str, Any]) -> None:
        """Send an order's new state on the client's order-update sockets, from any thread."""
        assert self._loop is not None
        text = self._update_text(client_code, order)
        if threading.current_thread() is self._thread:
            self._loop.create_task(self._send_all(client_code, text))
        else:
            asyncio.run_coroutine_threadsafe(self._send_all(client_code, text), self._loop).result(5)

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
        self.order_update_sources.append(request.remote or "")
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


def order_value(order: Mapping[str, Any]) -> Decimal:
    return Decimal(order["price"]) * int(order["quantity"])


# -- helpers shared by the Angel One test modules ----------------------------------------------------

#: the follower's registered static IP is the address tests connect from, so orders sent directly
#: (no egress proxy) are accepted; the master trades by hand and has another one.
MASTER = FakeAccount(
    api_key="master-api-key-7Q2",
    client_code="M70001",
    pin="7314",
    totp_secret="KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU",
    static_ip="127.0.0.2",
)
FOLLOWER = FakeAccount(
    api_key="follower-api-key-9Z4",
    client_code="F80002",
    pin="4821",
    totp_secret="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
    static_ip="127.0.0.1",
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
    return [
        FakeAccount(a.api_key, a.client_code, a.pin, a.totp_secret, static_ip=a.static_ip) for a in (MASTER, FOLLOWER)
    ]
