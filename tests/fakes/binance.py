"""A local fake Binance (USD-M futures and spot) that the real ccxt talks to over HTTP and websocket.

It speaks the wire protocol ccxt uses: the REST paths ``binanceusdm`` and ``binance`` call,
HMAC-SHA256 signatures checked over the raw query string plus body exactly as Binance does,
``X-MBX-APIKEY``, Binance's own error codes and JSON bodies, the futures user-data websocket
(``ORDER_TRADE_UPDATE`` and ``ACCOUNT_UPDATE`` on ``/private/ws?listenKey=…``) and the spot user
data stream over the WebSocket API (``userDataStream.subscribe.signature`` on ``/ws-api/v3``,
``executionReport`` events).

It is meant to be at least as strict as Binance, so that a client's wrong assumptions fail here
rather than with real money. Every behaviour cites its source: ``docs/research/binance.md §n``
(which quotes Binance's documentation and the installed ccxt 4.5.90 with line numbers).

- Market orders fill at the mark price. A marketable LIMIT fills at once at the mark price (the
  better one); a non-marketable GTC LIMIT rests until ``trade_through`` trades through its price,
  fully or partially (each fill a trade with its own id and its own ``x=TRADE`` event); IOC
  expires what it cannot fill; USD-M FOK / GTX are refused with -5021 / -5022.
- ``newClientOrderId`` is unique among *open* orders only; the id of a finished order may be used
  again (so a blind resend is a second order), and a query by client id returns the newest.
- Hedge mode: ``positionSide`` LONG/SHORT required and checked, ``reduceOnly`` refused, one
  position per side.
- Order sizes: LOT_SIZE ``maxQty`` bounds a LIMIT, MARKET_LOT_SIZE ``maxQty`` a MARKET order
  (USD-M -4005, spot -1013); a reduce-only order larger than the position is refused (-2022),
  and a reduce-only order never flips a position; the minimum notional is waived for reduce-only
  orders only (-4164 otherwise, even for an order that closes).
- Spot: the buy commission is taken from the bought base asset; sells above the free balance are
  refused; balances of open orders are locked.
- Fees paid with BNB (``pay_fees_in_bnb``, spot and USD-M): while the account holds enough BNB,
  every commission is charged in BNB (``commissionAsset`` / ``N`` "BNB") and the trade's own
  assets are received whole; otherwise the standard commission as above.
- userTrades / myTrades windows and limits, income history, order-count limits; listen keys expire
  60 minutes after their creation or last keep-alive, user-data sockets close after 24 hours;
  USD-M orders created more than 90 days ago are no longer found (-2013).
- Request weight per client IP (``RequestWeights``): each endpoint's documented weight over a rolling
  window, ``X-MBX-USED-WEIGHT-1M`` on every answer, 429 (-1003, ``Retry-After``) over the limit and a
  418 IP ban for a client that sends again before that Retry-After.
- A master's own orders end or move as Binance pushes it: a cancel is ``x=CANCELED``, an IOC's
  unfilled rest ``x=EXPIRED`` (futures ``ORDER_TRADE_UPDATE``, spot ``executionReport``); USD-M
  "Modify Order" (``PUT /fapi/v1/order``, LIMIT only) is ``x=AMENDMENT`` with the new ``p``/``q``,
  or a cancellation when the new quantity is not above what executed (§3).

Failure injection for tests: ``fail_next`` (answer the next matching request with an error, the
request is *not* processed), ``fail_after_processing_next`` (process it, then answer an error:
Binance's "execution status unknown"), ``accept_late_next`` / ``accept_late`` (answer "status
unknown" at once and let the order reach the matching engine a little later, never after the
request's ``timestamp + recvWindow``), ``delay_next`` (process, then hold the response, e.g. past
ccxt's timeout), ``skew_clock``, ``drop_websockets`` / ``accept_websockets``,
``silence_websockets`` and ``expire_listen_key``.

Signed requests: ``timestamp`` and ``recvWindow`` (default 5000 ms, at most 60000) are checked as
Binance documents it (§9); every order request's parameters are kept in ``order_requests``.

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
import math
import random
import re
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

ZERO = Decimal(0)
FUTURES = "futures"
SPOT = "spot"
# "If recvWindow is not sent, it defaults to 5000 milliseconds. Maximum recvWindow is 60000
# milliseconds." (docs/research/binance.md §9)
DEFAULT_RECV_WINDOW_MS = 5000
MAX_RECV_WINDOW_MS = 60_000
# "timestamp < (serverTime + 1 second)" (§9): a request signed further ahead is refused
MAX_TIMESTAMP_AHEAD_MS = 1000
#: how long an accepted-late order waits before it reaches the matching engine, in seconds
DEFAULT_LATE_DELAY = (0.5, 3.0)
OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")
DAY_MS = 86_400_000
# USD-M Account-Trade-List: "The time between startTime and endTime cannot be longer than 7 days";
# spot rest-api.md (myTrades): "can't be longer than 24 hours" (docs/research/binance.md §4).
TRADE_WINDOW_MS = {FUTURES: 7 * DAY_MS, SPOT: DAY_MS}
# USD-M Query Order: no order created more than 90 days ago is found, nor a cancelled or expired
# one without fills created more than 3 days ago (§2)
ORDER_KEPT_MS = 90 * DAY_MS
UNFILLED_ORDER_KEPT_MS = 3 * DAY_MS
MAX_TRADES_LIMIT = 1000  # USD-M and spot: "limit … Default 500; max 1000" (§4)
MAX_INCOME_LIMIT = 1000  # Get-Income-History: "limit … Default 100; max 1000"

# Documented messages (docs/research/binance.md §1; spot errors.md).
MSG_UNKNOWN = "An unknown error occured while processing the request."  # -1000, Binance's spelling
MSG_DISCONNECTED = "Internal error; unable to process your request. Please try again."  # -1001
MSG_UNEXPECTED_RESP = "An unexpected response was received from the message bus. Execution status unknown."  # -1006
MSG_TIMEOUT = "Timeout waiting for response from backend server. Send status unknown; execution status unknown."
# USD-M general-info: HTTP 503 with this message means "the execution status is UNKNOWN" (§1).
MSG_UNKNOWN_ERROR_503 = "Unknown error, please check your request or try again later."
MSG_INSUFFICIENT_BALANCE = "Account has insufficient balance for requested action."  # spot -2010 (§6)
MSG_NOT_EXIST = "Order does not exist."  # -2013 (§2)
MSG_LISTEN_KEY = "This listenKey does not exist."  # -1125 (§3)
# USD-M user-data streams: a listen key is "valid for 60 minutes after creation", "Doing a PUT on a
# listenKey will extend its validity for 60 minutes"; "A single connection is only valid for 24
# hours; expect to be disconnected at the 24 hour mark" (the spot WebSocket API: "only valid for 24
# hours") (docs/research/binance.md §3)
LISTEN_KEY_SECONDS = 60 * 60.0
SOCKET_SECONDS = 24 * 60 * 60.0


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
    #: LOT_SIZE ``maxQty``: the most one order may ask for (USD-M: LIMIT and other non-market orders)
    max_qty: Decimal = Decimal("1000")
    #: MARKET_LOT_SIZE ``maxQty``: the most one MARKET order may ask for
    market_max_qty: Decimal = Decimal("120")


FUTURES_INSTRUMENTS = (
    Instrument("BTCUSDT", "BTC", "USDT", Decimal("0.10"), Decimal("0.001"), Decimal("0.001"), Decimal("100"), FUTURES),
    Instrument("ETHUSDT", "ETH", "USDT", Decimal("0.01"), Decimal("0.001"), Decimal("0.001"), Decimal("20"), FUTURES),
    Instrument("SOLUSDT", "SOL", "USDT", Decimal("0.0010"), Decimal("1"), Decimal("1"), Decimal("5"), FUTURES),
    Instrument("BNBUSDT", "BNB", "USDT", Decimal("0.010"), Decimal("0.01"), Decimal("0.01"), Decimal("5"), FUTURES),
)
SPOT_INSTRUMENTS = (
    Instrument(
        "BTCUSDT",
        "BTC",
        "USDT",
        Decimal("0.01"),
        Decimal("0.00001"),
        Decimal("0.00001"),
        Decimal("5"),
        SPOT,
        Decimal("9000"),
        Decimal("100"),
    ),
    Instrument(
        "ETHUSDT",
        "ETH",
        "USDT",
        Decimal("0.01"),
        Decimal("0.0001"),
        Decimal("0.0001"),
        Decimal("5"),
        SPOT,
        Decimal("9000"),
        Decimal("100"),
    ),
    Instrument(
        "BNBUSDT",
        "BNB",
        "USDT",
        Decimal("0.01"),
        Decimal("0.001"),
        Decimal("0.001"),
        Decimal("5"),
        SPOT,
        Decimal("9000"),
        Decimal("100"),
    ),
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


def mandatory(name: str) -> BinanceError:
    """-1102, the wording of spot errors.md / the USD-M error-code page (§1)."""
    return BinanceError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


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

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.executed


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
    commission_asset: str = "USDT"
    maker: bool = False


@dataclass
class FakeIncome:
    """One row of ``/fapi/v1/income`` (Get-Income-History, §4)."""

    tran_id: int
    symbol: str
    income_type: str  # REALIZED_PNL or COMMISSION
    income: Decimal
    time_ms: int
    trade_id: int
    asset: str = "USDT"  # a commission paid with BNB is a BNB row


@dataclass
class FakePosition:
    amount: Decimal = ZERO  # signed in one-way mode; positive size per side in hedge mode
    entry_price: Decimal = ZERO
    realized: Decimal = ZERO  # ACCOUNT_UPDATE "cr": accumulated realized


@dataclass
class FakeAccount:
    api_key: str
    secret: str
    futures_wallet: Decimal = Decimal("10000")
    spot_balances: dict[str, Decimal] = field(default_factory=lambda: {"USDT": Decimal("10000")})  # free + locked
    hedge_mode: bool = False
    # "Pay fees with BNB" (spot ``spotBNBBurn``, USD-M ``feeBurn``); the USD-M wallet's BNB pays futures fees
    pay_fees_in_bnb: bool = False
    futures_bnb: Decimal = ZERO
    enable_withdrawals: bool = False
    enable_spot_trading: bool = True
    enable_futures: bool = True
    leverage: dict[str, int] = field(default_factory=dict)
    margin_type: dict[str, str] = field(default_factory=dict)
    positions: dict[tuple[str, str], FakePosition] = field(default_factory=dict)
    orders: dict[int, FakeOrder] = field(default_factory=dict)
    trades: list[FakeTrade] = field(default_factory=list)
    income: list[FakeIncome] = field(default_factory=list)
    listen_keys: dict[str, str] = field(default_factory=dict)  # valid listen key -> FUTURES or SPOT
    listen_key_renewed: dict[str, float] = field(default_factory=dict)  # listen key -> monotonic creation/PUT
    order_times: deque[float] = field(default_factory=deque)  # monotonic times of new orders (rate limit)

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

    def listen_key(self, market: str) -> str | None:
        """The active listen key of ``market``, the newest if several."""
        keys = [key for key, key_market in self.listen_keys.items() if key_market == market]
        return keys[-1] if keys else None

    def spot_locked(self) -> dict[str, Decimal]:
        """Balances held by open spot orders: a SELL locks base, a BUY quote (spot account ``locked``)."""
        locked: dict[str, Decimal] = {}
        for order in self.orders.values():
            if order.market != SPOT or not order.is_open:
                continue
            instrument = next(i for i in SPOT_INSTRUMENTS if i.symbol == order.symbol)
            if order.side == "SELL":
                locked[instrument.base] = locked.get(instrument.base, ZERO) + order.remaining
            else:
                locked[instrument.quote] = locked.get(instrument.quote, ZERO) + order.remaining * order.price
        return locked

    def spot_free(self, asset: str) -> Decimal:
        return self.spot_balances.get(asset, ZERO) - self.spot_locked().get(asset, ZERO)


@dataclass(frozen=True)
class Injection:
    method: str
    path: str
    status: int = 0
    code: int = 0
    msg: str = ""
    headers: dict[str, str] | None = None
    delay: float = 0.0
    after_processing: bool = False  # process the request, then answer the error (status unknown)
    # answer the error at once and hand the order to the matching engine this many seconds later
    # (a (low, high) range drawn from the fake's seeded generator)
    late: tuple[float, float] | None = None


@dataclass
class LateOrder:
    """An order request answered "status unknown" before it reached the matching engine (§1): it is
    placed at ``due_ms`` unless that is past the request's ``timestamp + recvWindow`` (§9)."""

    api_key: str
    market: str
    client_order_id: str
    deadline_ms: int  # the request's timestamp + recvWindow, on the fake's clock
    due_ms: int  # when it reaches the matching engine, on the fake's clock
    #: "queued", then "placed", "expired" (its window passed first: never placed) or "rejected: <msg>"
    outcome: str = "queued"
    order_id: int | None = None


@dataclass(frozen=True)
class ReceivedRequest:
    """An order request as it reached the fake: its parameters and the fake's clock on arrival."""

    method: str
    path: str
    params: dict[str, str]
    server_ms: int


@dataclass
class StreamSession:
    """One user-data socket: whose events it carries and whether they still flow."""

    market: str
    api_key: str | None  # a WebSocket-API socket names its account only when it subscribes
    listen_key: str | None = None
    subscription_id: int | None = None  # WebSocket API: events are wrapped {"subscriptionId", "event"}
    expired: bool = False  # after listenKeyExpired: "No more user data event will be updated" (§3)


# ----------------------------------------------------------------- request weight per IP
#
# Binance counts request weight per IP, not per key: "The limits on the API are based on the IPs, not
# the API keys"; "Every request will contain X-MBX-USED-WEIGHT-(intervalNum)(intervalLetter) in the
# response headers which has the current used weight for the IP"; "When a 429 is received, it's your
# obligation as an API to back off and not spam the API. Repeatedly violating rate limits and/or
# failing to back off after receiving 429s will result in an automated IP ban (HTTP status 418). IP
# bans are tracked and scale in duration for repeat offenders, from 2 minutes to 3 days."; "A
# Retry-After header is sent with a 418 or 429 responses and will give the number of seconds
# required to wait, in the case of a 429, to prevent a ban, or, in the case of a 418, until the ban
# is over." (spot rest-api.md "LIMITS" and USD-M general-info "LIMITS", docs/research/binance.md §7).
# USD-M (fapi.binance.com) and spot (api.binance.com) are separate hosts with separate limits.
#
# Endpoint weights as each endpoint's page documents them. USD-M (developers.binance.com
# …/usds-margined-futures/…): Test Connectivity 1, Check Server Time 1, Exchange Information 1, 24hr Ticker 1 with a
# symbol / 40 without, Account Information V2 and V3 5, Futures Account Balance V2 and V3 5,
# Position Information V2 and V3 5, Notional and Leverage Brackets 1, Change Initial Leverage 1,
# Change Margin Type 1, Get Current Position Mode 30, Change Position Mode 1, New Order "0 on IP
# rate limit(x-mbx-used-weight-1m)" (1 on each order-count limit, below), Query / Cancel Order 1,
# New / Query / Cancel Algo Order 1, Account Trade List 5, Get Income History 30, Start / Keepalive
# User Data Stream 1. Spot (binance-spot-api-docs rest-api.md at a5e0bc3): Check server time 1,
# Exchange information 20, 24hr ticker 2 with a symbol / 80 without, Account information 20, New
# order 1, Query order 4, Cancel order 1, Account trade list 20 without orderId / 5 with it, user
# data stream 2, Test connectivity 1. Any other route weighs 1.
ENDPOINT_WEIGHTS: dict[tuple[str, str], int | Callable[[Mapping[str, str]], int]] = {
    ("GET", "/fapi/v1/ping"): 1,
    ("GET", "/fapi/v1/time"): 1,
    ("GET", "/fapi/v1/exchangeInfo"): 1,
    ("GET", "/fapi/v1/ticker/24hr"): lambda query: 1 if "symbol" in query else 40,
    ("GET", "/fapi/v2/account"): 5,
    ("GET", "/fapi/v3/account"): 5,
    ("GET", "/fapi/v2/balance"): 5,
    ("GET", "/fapi/v3/balance"): 5,
    ("GET", "/fapi/v2/positionRisk"): 5,
    ("GET", "/fapi/v3/positionRisk"): 5,
    ("GET", "/fapi/v1/leverageBracket"): 1,
    ("POST", "/fapi/v1/leverage"): 1,
    ("POST", "/fapi/v1/marginType"): 1,
    ("GET", "/fapi/v1/positionSide/dual"): 30,
    ("POST", "/fapi/v1/positionSide/dual"): 1,
    ("POST", "/fapi/v1/order"): 0,
    ("GET", "/fapi/v1/order"): 1,
    ("DELETE", "/fapi/v1/order"): 1,
    ("POST", "/fapi/v1/algoOrder"): 1,
    ("GET", "/fapi/v1/algoOrder"): 1,
    ("DELETE", "/fapi/v1/algoOrder"): 1,
    ("GET", "/fapi/v1/userTrades"): 5,
    ("GET", "/fapi/v1/income"): 30,
    ("POST", "/fapi/v1/listenKey"): 1,
    ("PUT", "/fapi/v1/listenKey"): 1,
    ("GET", "/api/v3/ping"): 1,
    ("GET", "/api/v3/time"): 1,
    ("GET", "/api/v3/exchangeInfo"): 20,
    ("GET", "/api/v3/ticker/24hr"): lambda query: 2 if "symbol" in query else 80,
    ("GET", "/api/v3/account"): 20,
    ("POST", "/api/v3/order"): 1,
    ("GET", "/api/v3/order"): 4,
    ("DELETE", "/api/v3/order"): 1,
    ("GET", "/api/v3/myTrades"): lambda query: 5 if "orderId" in query else 20,
    ("POST", "/api/v3/userDataStream"): 2,
    ("PUT", "/api/v3/userDataStream"): 2,
}
#: the longest IP ban: "from 2 minutes to 3 days"
MAX_BAN_SECONDS = 3 * 86_400.0
#: requests that reach the fake this soon after a 429 were on their way before the client could know
#: of it: refused 429 like it, not banned ("failing to back off after receiving 429s"; the length is
#: this fake's choice, a generous network round trip)
IN_FLIGHT_GRACE = 0.5


def endpoint_weight(method: str, path: str, query: Mapping[str, str]) -> int:
    weight = ENDPOINT_WEIGHTS.get((method, path), 1)
    return weight(query) if callable(weight) else weight


@dataclass
class IpState:
    """One client IP on one host: the weight it used (rolling window), its back-off and its bans."""

    used: deque[tuple[float, int]] = field(default_factory=deque)  # (monotonic time, weight) within the window
    back_off_until: float = float("-inf")  # the Retry-After of its last 429
    refused_at: float = float("-inf")  # when that 429 was answered
    banned_until: float = float("-inf")
    bans: int = 0


class RequestWeights:
    """Request weight per client IP and host, over a rolling ``interval``; the 429 and 418 answers.

    - Each request is charged its endpoint's weight (``ENDPOINT_WEIGHTS``); an answer carries the
      IP's weight in the window as ``X-MBX-USED-WEIGHT-<n><letter>`` (``-1M`` for a minute).
    - A request that would take the IP over its limit is refused (not charged): HTTP 429, -1003 "Too
      much request weight used; current limit is … request weight per … . Please use WebSocket
      Streams for live updates to avoid polling the API." with ``Retry-After`` (whole seconds until
      enough weight has left the window).
    - A request that reaches the fake within ``grace`` of that 429 was on its way already: refused
      429 the same. Any later request from that IP before the Retry-After has passed — it failed to
      back off — bans the IP: HTTP 418, -1003 "Way too much request weight used; IP banned until <ms>. Please use
      WebSocket Streams for live updates to avoid bans." with ``Retry-After`` until the ban ends;
      every request during the ban gets the same. Bans double for a repeat offender, from
      ``ban_seconds`` up to 3 days (how they scale is not documented beyond "from 2 minutes to 3
      days": doubling is this fake's choice).

    The client IP is the connection's address: accounts sent through an egress proxy leaving from
    another loopback address (``EgressProxy``) count apart."""

    def __init__(
        self, limits: Mapping[str, int], *, interval: float, ban_seconds: float, grace: float = IN_FLIGHT_GRACE
    ) -> None:
        self.limits = dict(limits)  # per market (FUTURES, SPOT)
        self.interval = interval
        self.ban_seconds = ban_seconds
        self.grace = grace
        self._ips: dict[tuple[str, str], IpState] = {}
        #: what each answered request cost: (ip, market) -> total weight charged
        self.charged: Counter[tuple[str, str]] = Counter()
        #: refusals: (ip, status) -> count of 429 and 418 answers
        self.refused: Counter[tuple[str, int]] = Counter()
        self._forced: deque[tuple[int, float]] = deque()  # (status, Retry-After seconds) for the next requests

    def refuse_next(self, status: int, retry_after: float) -> None:
        """The next weighted request, from any IP, is refused as if the IP's weight were used up (by
        another user of that IP): 429 with ``retry_after`` as the IP's back-off, or a 418 ban that
        long. The rules above then hold as for any refusal (a request within the back-off is banned)."""
        self._forced.append((status, retry_after))

    @property
    def header(self) -> str:
        number, letter = self._interval_name()
        return f"X-MBX-USED-WEIGHT-{number}{letter[0]}"

    def _interval_name(self) -> tuple[int, str]:
        if self.interval >= 60 and self.interval % 60 == 0:
            return int(self.interval // 60), "MINUTE"
        return max(1, int(self.interval)), "SECOND"

    def rate_limit(self, market: str) -> dict[str, Any]:
        """The ``exchangeInfo.rateLimits`` entry of ``market``'s limit."""
        number, interval = self._interval_name()
        return {
            "rateLimitType": "REQUEST_WEIGHT",
            "interval": interval,
            "intervalNum": number,
            "limit": self.limits[market],
        }

    def used(self, ip: str, market: str = FUTURES) -> int:
        state = self._ips.get((ip, market))
        if state is None:
            return 0
        self._expire(state, time.monotonic())
        return sum(weight for _, weight in state.used)

    def admit(self, ip: str, method: str, path: str, query: Mapping[str, str]) -> dict[str, str]:
        """Charge one request; its weight headers, or ``BinanceError`` 429 / 418."""
        market = FUTURES if path.startswith("/fapi/") else SPOT if path.startswith("/api/") else None
        if market is None:
            return {}  # other hosts (sapi) keep limits of their own
        now = time.monotonic()
        state = self._ips.setdefault((ip, market), IpState())
        self._expire(state, now)
        if now < state.banned_until:
            raise self._banned(ip, state, now)
        if now < state.back_off_until and now < state.refused_at + self.grace:  # in flight when it was refused
            raise self._too_much(ip, state, now, limit=self.limits[market], used=sum(w for _, w in state.used))
        if now < state.back_off_until:  # sent again within a 429's Retry-After
            state.bans += 1
            state.banned_until = now + min(self.ban_seconds * 2 ** (state.bans - 1), MAX_BAN_SECONDS)
            raise self._banned(ip, state, now)
        weight = endpoint_weight(method, path, query)
        used = sum(w for _, w in state.used)
        limit = self.limits[market]
        forced = self._forced.popleft() if self._forced and weight else None
        if forced is not None and forced[0] == 418:
            state.bans += 1
            state.banned_until = now + forced[1]
            raise self._banned(ip, state, now)
        if forced is not None or (weight and used + weight > limit):
            retry_after = self._seconds_until_room(state, now, limit - weight) if forced is None else forced[1]
            state.back_off_until, state.refused_at = now + retry_after, now
            raise self._too_much(ip, state, now, limit=limit, used=used)
        if weight:
            state.used.append((now, weight))
            self.charged[(ip, market)] += weight
        return {self.header: str(used + weight)}

    def _too_much(self, ip: str, state: IpState, now: float, *, limit: int, used: int) -> BinanceError:
        self.refused[(ip, 429)] += 1
        number, interval = self._interval_name()
        return BinanceError(
            429,
            -1003,
            f"Too much request weight used; current limit is {limit} request weight per {number} {interval}."
            " Please use WebSocket Streams for live updates to avoid polling the API.",
            {"Retry-After": f"{max(1, math.ceil(state.back_off_until - now))}", self.header: str(used)},
        )

    def _expire(self, state: IpState, now: float) -> None:
        while state.used and state.used[0][0] <= now - self.interval:
            state.used.popleft()

    def _seconds_until_room(self, state: IpState, now: float, allowed: int) -> int:
        """Whole seconds until the window holds at most ``allowed``."""
        total, due = sum(w for _, w in state.used), now + self.interval  # a weight above the limit: a whole window
        for at, weight in state.used:
            total -= weight
            if total <= max(allowed, 0):
                due = at + self.interval
                break
        return max(1, math.ceil(due - now))

    def _banned(self, ip: str, state: IpState, now: float) -> BinanceError:
        self.refused[(ip, 418)] += 1
        until_ms = int(time.time() * 1000 + (state.banned_until - now) * 1000)
        return BinanceError(
            418,
            -1003,
            f"Way too much request weight used; IP banned until {until_ms}."
            " Please use WebSocket Streams for live updates to avoid bans.",
            {"Retry-After": str(max(1, math.ceil(state.banned_until - now)))},
        )


class FakeBinance:
    """The fake exchange server. Start and stop with ``async with`` (or ``start()``/``stop()``)."""

    def __init__(
        self,
        *,
        fee_rate: Decimal = Decimal("0.0004"),
        latency: float = 0.0,
        order_limit_10s: int = 300,
        order_limit_1m: int = 1200,
        weight_limit: int = 2400,
        spot_weight_limit: int = 6000,
        weight_interval: float = 60.0,
        ban_seconds: float = 120.0,
        seed: int = 0,
        listen_key_seconds: float = LISTEN_KEY_SECONDS,
        socket_seconds: float = SOCKET_SECONDS,
    ) -> None:
        """``latency``: seconds every REST request waits before it is handled (a network round
        trip to a distant exchange; the benchmarks use it). Websocket frames are not delayed.

        ``order_limit_10s`` / ``order_limit_1m``: new orders an account may send per 10 s / per
        minute before -1015. The real numbers come from ``exchangeInfo.rateLimits`` and are
        unconfirmed (commonly 300 / 1200 on USD-M, docs/research/binance.md §7), hence settings.

        ``weight_limit`` / ``spot_weight_limit`` / ``weight_interval`` / ``ban_seconds``: the request
        weight each client IP may use per rolling ``weight_interval`` seconds on USD-M / spot (Binance:
        2,400 and 6,000 a minute) and the first IP ban's length (Binance: "from 2 minutes to 3 days");
        see ``RequestWeights``. Tests shrink them to stay fast; they are published in
        ``exchangeInfo.rateLimits``.

        ``seed``: the generator every random choice of the fake draws from (accepted-late delays
        and which orders are accepted late), so a run can be replayed.

        ``listen_key_seconds``: a listen key expires this long after its creation or last keep-alive
        (60 min, §3); ``socket_seconds``: a user-data socket is closed this long after it opened (24 h,
        §3). Tests shorten both."""
        self.random = random.Random(seed)
        self.listen_key_seconds = listen_key_seconds
        self.socket_seconds = socket_seconds
        self.fee_rate = fee_rate
        self.latency = latency
        self.order_limits = ((10.0, "10S", order_limit_10s), (60.0, "1M", order_limit_1m))
        self.accounts: dict[str, FakeAccount] = {}
        self.mark_prices: dict[str, Decimal] = {
            "BTCUSDT": Decimal("60000"),
            "ETHUSDT": Decimal("3000"),
            "SOLUSDT": Decimal("150"),
            "BNBUSDT": Decimal("600"),
        }
        self.requests: Counter[tuple[str, str]] = Counter()
        self.request_log: list[tuple[str, str]] = []
        self.unknown_requests: list[tuple[str, str]] = []
        self.clock_skew_ms = 0
        self._skew_until: float | None = None
        self._injections: list[Injection] = []
        self.order_requests: list[ReceivedRequest] = []
        self.late_orders: list[LateOrder] = []
        self.late_share = 0.0
        self.late_delay = DEFAULT_LATE_DELAY
        self._late_tasks: set[asyncio.Task[None]] = set()
        self._order_ids = itertools.count(1000)
        self._trade_ids = itertools.count(5000)
        self._tran_ids = itertools.count(90000)
        self._listen_keys = itertools.count(1)
        self.weights = RequestWeights(
            {FUTURES: weight_limit, SPOT: spot_weight_limit}, interval=weight_interval, ban_seconds=ban_seconds
        )
        self._sockets: dict[web.WebSocketResponse, StreamSession] = {}
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
        self.port = self._runner.addresses[0][1]  # ephemeral port chosen by the OS

    async def stop(self) -> None:
        for task in list(self._late_tasks):
            task.cancel()
        await asyncio.gather(*self._late_tasks, return_exceptions=True)
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
        """The next ``method path`` request is answered with this error instead of being processed
        (a plain rejection: nothing was placed)."""
        self._injections.append(Injection(method, path, status=status, code=code, msg=msg, headers=headers))

    def fail_after_processing_next(
        self,
        method: str,
        path: str,
        *,
        status: int,
        code: int = 0,
        msg: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        """The next ``method path`` request is processed (an order is accepted, may fill and is
        pushed on the user-data stream), and then answered with this error.

        This is Binance's "execution status unknown": -1006 "…Execution status unknown.", -1007
        "…Send status unknown; execution status unknown.", and HTTP 503 "Unknown error, please
        check your request or try again later." — "It is important to NOT treat this as a failure
        operation; the execution status is UNKNOWN and could have been a success" (USD-M
        general-info, spot rest-api.md l.102–118; docs/research/binance.md §1). -1000 and -1001
        may be injected too, to test the worst case (the USD-M page calls -1001 a failure)."""
        self._injections.append(
            Injection(method, path, status=status, code=code, msg=msg, headers=headers, after_processing=True)
        )

    def accept_late_next(
        self,
        method: str = "POST",
        path: str = "/fapi/v1/order",
        *,
        delay: float | tuple[float, float] = DEFAULT_LATE_DELAY,
        status: int = 503,
        code: int = -1007,
        msg: str = MSG_TIMEOUT,
    ) -> None:
        """The next new-order request at ``method path`` that passes the gateway's checks (signature,
        ``timestamp``/``recvWindow``, order-count limit) is answered with this error at once, *without*
        being placed; the order reaches the matching engine ``delay`` seconds later (a range: drawn
        uniformly from the fake's seeded generator) and is then placed, fills and is pushed as any
        other — unless the fake's clock is then past the request's ``timestamp + recvWindow``: then it
        is never placed. Until it reaches the engine its client id counts as taken (-4116 / -2010).

        This is -1007 "Timeout waiting for response from backend server. Send status unknown;
        execution status unknown." (USD-M error-code page and general-info, §1): the answer was lost
        while the request was still on its way to the matching engine, which forwards a request only
        while "(serverTime - timestamp) <= recvWindow" (spot "Timing security", §9) and refuses one
        "outside of the ME recvWindow" (-5028, §9)."""
        window = (delay, delay) if isinstance(delay, (int, float)) else (float(delay[0]), float(delay[1]))
        self._injections.append(Injection(method, path, status=status, code=code, msg=msg, late=window))

    def accept_late(self, share: float, delay: tuple[float, float] = DEFAULT_LATE_DELAY) -> None:
        """From now on each new order request (USD-M and spot) is accepted late, as in
        ``accept_late_next``, with probability ``share`` drawn from the fake's seeded generator."""
        self.late_share, self.late_delay = share, delay

    def delay_next(self, method: str, path: str, seconds: float) -> None:
        """The next ``method path`` request is processed, then its response is held ``seconds``."""
        self._injections.append(Injection(method, path, delay=seconds))

    def skew_clock(self, offset_ms: int, seconds: float | None = None) -> None:
        """The server clock runs ``offset_ms`` ahead (negative: behind) for ``seconds`` (None: until
        changed). Signed requests then fail with -1021 "Timestamp for this request is outside of the
        recvWindow." (§1) until the client resynchronises with ``/time``."""
        self.clock_skew_ms = offset_ms
        self._skew_until = None if seconds is None else time.monotonic() + seconds

    def set_mark_price(self, symbol: str, price: Decimal) -> None:
        """Move the mark price (new market orders fill there; unrealized PnL follows it). Resting
        limit orders are not touched: they fill on trades, see ``trade_through``."""
        self.mark_prices[symbol] = price

    async def trade_through(self, symbol: str, price: Decimal, quantity: Decimal | None = None) -> list[FakeTrade]:
        """The market trades at ``price``: the mark moves there and resting LIMIT orders of every
        account whose price is crossed (a BUY at or above ``price``, a SELL at or below) fill at their
        own limit price as makers — best price first, then oldest — until ``quantity`` (None: no
        limit) is used up, so the last one may fill partially (PARTIALLY_FILLED, §3/§8)."""
        self.mark_prices[symbol] = price
        crossing = [
            (account, order)
            for account in self.accounts.values()
            for order in account.orders.values()
            if order.symbol == symbol
            and order.is_open
            and order.type == "LIMIT"
            and (order.price >= price if order.side == "BUY" else order.price <= price)
        ]
        crossing.sort(key=lambda pair: (-pair[1].price if pair[1].side == "BUY" else pair[1].price, pair[1].time_ms))
        trades: list[FakeTrade] = []
        left = quantity
        for account, order in crossing:
            piece = order.remaining if left is None else min(order.remaining, left)
            if piece <= 0:
                break
            trades += await self._execute(account, order, [piece], order.price, maker=True)
            if left is not None:
                left -= piece
        return trades

    async def fill_resting(
        self, api_key: str, order_id: int, quantity: Decimal | None = None, price: Decimal | None = None
    ) -> None:
        """Execute (part of) a resting limit order, as if the market traded through it."""
        account = self.accounts[api_key]
        order = account.orders[order_id]
        await self._execute(account, order, [quantity or order.remaining], price or order.price, maker=True)

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
            order.status, order.actual_order_id, order.update_ms = "FINISHED", child.order_id, now
            await self._open(account, child)
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
        await self._open(account, order)
        await self._execute(account, order, fills or [quantity], price or self.mark_prices[symbol])
        return order

    async def master_limit(
        self, api_key: str, symbol: str, side: str, quantity: Decimal, price: Decimal, *, market: str = FUTURES
    ) -> FakeOrder:
        """A GTC LIMIT of ``api_key``'s own (the master trading by hand) resting on the book: pushed
        as ``x=NEW``; ``fill_resting`` executes it, ``master_cancel`` / ``master_modify`` change it."""
        account = self.accounts[api_key]
        now = self.now_ms()
        order_id = next(self._order_ids)
        order = FakeOrder(
            order_id,
            f"web_{order_id}",
            market,
            symbol,
            side,
            "LIMIT",
            quantity,
            price=price,
            time_ms=now,
            update_ms=now,
        )
        await self._open(account, order)
        return order

    async def master_cancel(self, api_key: str, order_id: int) -> FakeOrder:
        """The account cancels its open order, as ``DELETE /fapi/v1/order`` does (``x=CANCELED``)."""
        account = self.accounts[api_key]
        order = account.orders[order_id]
        assert order.is_open, order.status
        await self._finish(account, order, "CANCELED")
        return order

    async def master_modify(self, api_key: str, order_id: int, quantity: Decimal, price: Decimal) -> FakeOrder:
        """The account modifies its open LIMIT, as ``PUT /fapi/v1/order`` does (``_modify``)."""
        account = self.accounts[api_key]
        await self._modify(account, account.orders[order_id], quantity, price)
        return account.orders[order_id]

    async def expire_listen_key(self, api_key: str, market: str = FUTURES) -> str:
        """Expire the account's active ``market`` listen key, as Binance does 60 minutes after the
        last keep-alive: the sockets on it get ``{"e": "listenKeyExpired", "E": …, "listenKey": …}``
        and then no more events — "No more user data event will be updated after this event received
        until a new valid listenKey used" (USD-M Event-User-Data-Stream-Expired, §3). A keep-alive
        of the key then answers -1125. ccxt 4.5.90 has no handler for this event (pro/binance.py
        5358–5380): the client only notices through silence. Returns the expired key."""
        account = self.accounts[api_key]
        key = account.listen_key(market)
        if key is None:
            raise ValueError(f"{api_key} has no active {market} listen key")
        await self._expire(account, key)
        return key

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

    def server_time_ms(self) -> int:
        """The server's clock: real time plus the skew of ``skew_clock`` while it lasts."""
        if self._skew_until is not None and time.monotonic() >= self._skew_until:
            self.clock_skew_ms, self._skew_until = 0, None
        return self.now_ms() + self.clock_skew_ms

    # ----------------------------------------------------------------- dispatch

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        method = request.method
        if path in ("/ws", "/private/ws", "/ws-api/v3") or path.startswith("/ws/"):
            return await self._websocket(request)
        if self.latency:
            await asyncio.sleep(self.latency)
        self.requests[(method, path)] += 1
        self.request_log.append((method, path))
        try:  # the IP's request weight, before anything else (RequestWeights)
            headers = self.weights.admit(request.remote or "", method, path, request.query)
        except BinanceError as error:
            return error.response()
        injection = self._take_injection(method, path)
        if injection is not None and injection.status and not injection.after_processing and injection.late is None:
            return self._injected_error(injection, headers)
        route = ROUTES.get((method, path))
        if route is None:
            self.unknown_requests.append((method, path))
            return web.json_response({"code": -1000, "msg": f"fake binance: no route {method} {path}"}, status=404)
        handler, security = route
        try:
            body = await request.text()
            params = dict(parse_qsl(request.query_string, keep_blank_values=True))
            params.update(parse_qsl(body, keep_blank_values=True))
            if (method, path) in ORDER_ROUTES:
                self.order_requests.append(ReceivedRequest(method, path, dict(params), self.server_time_ms()))
            account = self._authenticate(request, body, params, security)
            if (method, path) in ORDER_ROUTES and account is not None:
                headers.update(self._count_order(account))
            if (method, path) in NEW_ORDER_ROUTES and account is not None:
                late = injection.late if injection is not None else None
                if injection is None and self.late_share and self.random.random() < self.late_share:
                    late = self.late_delay
                    injection = Injection(method, path, status=503, code=-1007, msg=MSG_TIMEOUT, late=late)
                if late is not None and injection is not None:
                    self._queue_late(account, path, params, late)
                    return self._injected_error(injection, headers)
            result = await handler(self, account, params)
        except BinanceError as error:
            if injection is not None and injection.late is not None:
                self._injections.insert(0, injection)  # refused at the gateway: the next one is late
                injection = None
            if injection is not None and injection.after_processing:
                return self._injected_error(injection, headers)
            error.headers = {**headers, **error.headers}
            return error.response()
        if injection is not None and injection.after_processing:
            return self._injected_error(injection, headers)
        if injection is not None and injection.delay:
            await asyncio.sleep(injection.delay)
        return web.json_response(result, headers=headers)

    def _queue_late(self, account: FakeAccount, path: str, params: dict[str, str], delay: tuple[float, float]) -> None:
        """Hand an accepted request to the matching engine later (``accept_late_next``)."""
        market = FUTURES if path.startswith("/fapi/") else SPOT
        params.setdefault("newClientOrderId", f"fake_{next(self._order_ids)}")
        deadline = int(params["timestamp"]) + self._recv_window(params)
        seconds = self.random.uniform(*delay)
        late = LateOrder(
            account.api_key,
            market,
            params["newClientOrderId"],
            deadline,
            self.server_time_ms() + int(seconds * 1000),
        )
        self.late_orders.append(late)
        handler = ROUTES[("POST", path)][0]
        task = asyncio.create_task(self._place_late(account, late, dict(params), handler, seconds))
        self._late_tasks.add(task)
        task.add_done_callback(self._late_tasks.discard)

    async def _place_late(
        self,
        account: FakeAccount,
        late: LateOrder,
        params: dict[str, str],
        handler: Callable[..., Awaitable[Any]],
        seconds: float,
    ) -> None:
        """The matching engine takes the order ``seconds`` after it arrived: "if (serverTime -
        timestamp) <= recvWindow { forward request to Matching Engine } else { reject request }" (§9)."""
        await asyncio.sleep(seconds)
        if self.server_time_ms() > late.deadline_ms:
            late.outcome = "expired"
            return
        late.outcome = "placed"  # no longer queued: its own duplicate check must not find itself
        try:
            answer = await handler(self, account, params)
        except BinanceError as error:
            late.outcome = f"rejected: {error.code} {error.msg}"
            return
        late.order_id = int(answer["orderId"])

    def _injected_error(self, injection: Injection, headers: dict[str, str]) -> web.Response:
        merged = {**headers, **(injection.headers or {})}
        if injection.code:
            return BinanceError(injection.status, injection.code, injection.msg, merged).response()
        return web.Response(status=injection.status, text=injection.msg or "error", headers=merged)

    def _take_injection(self, method: str, path: str) -> Injection | None:
        for injection in self._injections:
            if injection.method == method and injection.path == path:
                self._injections.remove(injection)
                return injection
        return None

    def _count_order(self, account: FakeAccount) -> dict[str, str]:
        """The order-count limit (spot rest-api.md l.153–167, USD-M order-weight notes, §7): over the
        limit → HTTP 429 -1015 "Too many new orders; current limit is %s orders per %s." with
        ``Retry-After`` (seconds); otherwise the ``X-MBX-ORDER-COUNT-10S``/``-1M`` headers. Every
        attempt counts, also one the matching engine then rejects."""
        now = time.monotonic()
        times = account.order_times
        while times and times[0] < now - 60:
            times.popleft()
        for window, name, limit in self.order_limits:
            recent = [t for t in times if t >= now - window]
            if len(recent) >= limit:
                retry_after = max(1, int(recent[0] + window - now) + 1)
                interval = "10 SECOND" if name == "10S" else "1 MINUTE"
                raise BinanceError(
                    429,
                    -1015,
                    f"Too many new orders; current limit is {limit} orders per {interval}.",
                    {"Retry-After": str(retry_after)},
                )
        times.append(now)
        return {
            f"X-MBX-ORDER-COUNT-{name}": str(sum(1 for t in times if t >= now - window))
            for window, name, _limit in self.order_limits
        }

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
            raise mandatory("signature")
        payload = total[: match.start()] + total[match.end() :]
        self._check_signature(account, payload, match.group(1), params)
        return account

    def _check_signature(self, account: FakeAccount, payload: str, signature: str, params: dict[str, str]) -> None:
        expected = hmac.new(account.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise BinanceError(400, -1022, "Signature for this request is not valid.")
        recv_window = self._recv_window(params)
        try:
            timestamp = int(params.get("timestamp", ""))
        except ValueError:
            raise mandatory("timestamp") from None
        # "if (timestamp < (serverTime + 1 second) && (serverTime - timestamp) <= recvWindow)
        # { process } else { reject }" (spot "Timing security", §9; -1021, §1)
        server_now = self.server_time_ms()
        if timestamp >= server_now + MAX_TIMESTAMP_AHEAD_MS or server_now - timestamp > recv_window:
            raise BinanceError(400, -1021, "Timestamp for this request is outside of the recvWindow.")

    @staticmethod
    def _recv_window(params: dict[str, str]) -> int:
        """``recvWindow`` in whole ms: 5000 when absent, above 60000 refused with -1131 (§9). Spot's
        fractional milliseconds (§9) are cut to whole ones, the stricter reading."""
        raw = params.get("recvWindow")
        if raw is None:
            return DEFAULT_RECV_WINDOW_MS
        try:
            value = Decimal(raw)
        except ArithmeticError:
            raise mandatory("recvWindow") from None
        if not value.is_finite() or value <= 0:
            raise mandatory("recvWindow")
        if value > MAX_RECV_WINDOW_MS:
            raise BinanceError(400, -1131, "recvWindow must be less than 60000")
        return int(value)

    # ----------------------------------------------------------------- public endpoints

    async def _ping(self, account: None, params: dict[str, str]) -> dict[str, Any]:
        return {}  # Test Connectivity: "{}"

    async def _time(self, account: None, params: dict[str, str]) -> dict[str, Any]:
        return {"serverTime": self.server_time_ms()}

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

    def _rate_limits(self) -> list[dict[str, Any]]:
        """The limits in force, published where Binance publishes them: ``exchangeInfo.rateLimits`` (§7)."""
        orders = [
            {"rateLimitType": "ORDERS", "interval": interval, "intervalNum": num, "limit": limit}
            for (_window, _name, limit), (interval, num) in zip(
                self.order_limits, (("SECOND", 10), ("MINUTE", 1)), strict=True
            )
        ]
        return [self.weights.rate_limit(FUTURES), *orders]

    async def _futures_exchange_info(self, account: None, params: dict[str, str]) -> dict[str, Any]:
        return {
            "timezone": "UTC",
            "serverTime": self.server_time_ms(),
            "rateLimits": self._rate_limits(),
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": [futures_symbol_info(i) for i in FUTURES_INSTRUMENTS],
        }

    async def _spot_exchange_info(self, account: None, params: dict[str, str]) -> dict[str, Any]:
        return {
            "timezone": "UTC",
            "serverTime": self.server_time_ms(),
            "rateLimits": [self.weights.rate_limit(SPOT), *self._rate_limits()[1:]],
            "exchangeFilters": [],
            "symbols": [spot_symbol_info(i) for i in SPOT_INSTRUMENTS],
        }

    # ----------------------------------------------------------------- futures account

    async def _futures_account(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        unrealized = sum((self._unrealized(key, pos) for key, pos in account.positions.items()), ZERO)
        wallet = account.futures_wallet
        available = text(self._available_margin(account))
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
            "availableBalance": available,
            "maxWithdrawAmount": available,
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
            "availableBalance": available,
            "maxWithdrawAmount": available,
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
        """One row per (symbol, positionSide) held: BOTH in one-way mode, LONG and SHORT in hedge
        mode (§5); a SHORT row's ``positionAmt`` is negative."""
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
                    "unRealizedProfit": text(self._unrealized((symbol, position_side), pos)),
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
        """POST positionSide/dual: refused with -4059 (no change), -4067 (open orders) or -4068 (open
        position), docs/research/binance.md §5."""
        hedge = params.get("dualSidePosition", "").lower() == "true"
        if hedge == account.hedge_mode:
            raise BinanceError(400, -4059, "No need to change position side.")
        if any(o.market == FUTURES and o.is_open for o in account.orders.values()):
            raise BinanceError(400, -4067, "Position side cannot be changed if there exists open orders.")
        if any(pos.amount for pos in account.positions.values()):
            raise BinanceError(400, -4068, "Position side cannot be changed if there exists position.")
        account.hedge_mode = hedge
        return {"code": 200, "msg": "success"}

    async def _listen_key(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        """ "POST on an account with an active listenKey will return the currently active listenKey
        and extend its validity for 60 minutes" (USD-M user-data-streams/Connect, §3); otherwise a new one."""
        await self._expire_stale_listen_keys(account)
        key = account.listen_key(FUTURES) or self._new_listen_key(account, FUTURES)
        account.listen_key_renewed[key] = time.monotonic()
        return {"listenKey": key}

    def _new_listen_key(self, account: FakeAccount, market: str) -> str:
        key = f"lk{next(self._listen_keys)}x{account.api_key}"
        account.listen_keys[key] = market
        account.listen_key_renewed[key] = time.monotonic()
        return key

    async def _keepalive_listen_key(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        """PUT extends the key 60 minutes; -1125 "This listenKey does not exist." once it expired (§3)."""
        await self._expire_stale_listen_keys(account)
        key = account.listen_key(FUTURES)
        if key is None or params.get("listenKey", key) != key:
            raise BinanceError(400, -1125, MSG_LISTEN_KEY)
        account.listen_key_renewed[key] = time.monotonic()
        return {"listenKey": key}

    async def _expire_stale_listen_keys(self, account: FakeAccount) -> None:
        """Every key of the account not kept alive for ``listen_key_seconds`` expires, as
        ``expire_listen_key`` does (its sockets are told ``listenKeyExpired``, then nothing)."""
        now = time.monotonic()
        for key in list(account.listen_keys):
            if now - account.listen_key_renewed.get(key, now) >= self.listen_key_seconds:
                await self._expire(account, key)

    async def _expire(self, account: FakeAccount, key: str) -> None:
        del account.listen_keys[key]
        account.listen_key_renewed.pop(key, None)
        event = {"e": "listenKeyExpired", "E": self.now_ms(), "listenKey": key}
        for ws, session in list(self._sockets.items()):
            if session.listen_key == key and not ws.closed:
                await ws.send_str(json.dumps(event))
                session.expired = True

    async def _spot_user_data_stream(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        return {"listenKey": account.listen_key(SPOT) or self._new_listen_key(account, SPOT)}

    async def _spot_keepalive_listen_key(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        await self._expire_stale_listen_keys(account)
        key = params.get("listenKey", "")
        if key not in account.listen_keys:
            raise BinanceError(400, -1125, MSG_LISTEN_KEY)
        account.listen_key_renewed[key] = time.monotonic()
        return {}

    # ----------------------------------------------------------------- orders

    async def _futures_new_order(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        order = self._new_order(
            account, FUTURES, params, client_id_key="newClientOrderId", type_key="type", stop_key="stopPrice"
        )
        await self._open(account, order)
        await self._match(account, order)
        return futures_order_json(order)

    async def _futures_new_algo_order(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        if params.get("algoType") != "CONDITIONAL":
            raise mandatory("algoType")
        order = self._new_order(
            account, FUTURES, params, client_id_key="clientAlgoId", type_key="type", stop_key="triggerPrice"
        )
        order.algo = True
        await self._open(account, order)
        return algo_order_json(order)

    async def _futures_get_order(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        """Query Order: "These orders will not be found: order status is CANCELED or EXPIRED AND
        order has NO filled trade AND created time + 3 days < current time; order create time + 90
        days < current time" (-2013, docs/research/binance.md §2)."""
        order = self._find_order(account, FUTURES, params, "origClientOrderId", algo=False)
        now = self.now_ms()
        unfilled_and_ended = order.status in ("CANCELED", "EXPIRED") and order.executed == 0
        if order.time_ms + ORDER_KEPT_MS < now or (unfilled_and_ended and order.time_ms + UNFILLED_ORDER_KEPT_MS < now):
            raise BinanceError(400, -2013, MSG_NOT_EXIST)
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
        if not order.is_open:
            raise BinanceError(400, -2011, "Unknown order sent.")
        await self._finish(account, order, "CANCELED")
        return futures_order_json(order)

    async def _futures_modify_order(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        """USD-M Modify Order (TRADE), ``PUT /fapi/v1/order`` (docs/research/binance.md §3): "Either
        orderId or origClientOrderId must be sent"; "Both quantity and price must be sent"."""
        order = self._find_order(account, FUTURES, params, "origClientOrderId", algo=False)
        for name in ("side", "quantity", "price"):
            if not params.get(name):
                raise mandatory(name)
        if params["side"] != order.side:
            raise BinanceError(400, -1102, "Param 'side' is not valid.")  # the exact answer is unconfirmed
        await self._modify(account, order, Decimal(params["quantity"]), Decimal(params["price"]))
        return futures_order_json(order)

    async def _modify(self, account: FakeAccount, order: FakeOrder, quantity: Decimal, price: Decimal) -> None:
        """Modify Order's rules (§3): "currently only LIMIT order modification is supported"; a new
        quantity or price failing LOT_SIZE / PRICE_FILTER is rejected "and the order will stay as it
        is"; "the order will be cancelled by the amendment" when it is partially filled and the new
        quantity <= executedQty, or when it is GTX and the new price would execute at once;
        otherwise it is pushed as ``x=AMENDMENT`` with its new ``q``/``p`` and "reordered in the
        match queue" (a new price that crosses the mark executes at once, as a new LIMIT would).
        The codes for a non-LIMIT or finished order are unconfirmed: -2011 as for a cancel."""
        if order.type != "LIMIT" or not order.is_open or order.algo:
            raise BinanceError(400, -2011, "Unknown order sent.")
        self._check_filters(self._instrument(order.market, order.symbol), quantity, price, order.type)
        mark = self.mark_prices[order.symbol]
        marketable = mark <= price if order.side == "BUY" else mark >= price
        if (order.executed and quantity <= order.executed) or (order.time_in_force == "GTX" and marketable):
            await self._finish(account, order, "CANCELED")
            return
        order.quantity, order.price, order.update_ms = quantity, price, self.now_ms()
        order.time_ms = order.update_ms  # re-queued: behind the orders already at its price
        await self._push_order_update(account, order, "AMENDMENT")
        await self._match(account, order)

    async def _futures_user_trades(self, account: FakeAccount, params: dict[str, str]) -> list[dict[str, Any]]:
        return [futures_trade_json(t) for t in self._select_trades(account, FUTURES, params)]

    async def _income(self, account: FakeAccount, params: dict[str, str]) -> list[dict[str, Any]]:
        """GET /fapi/v1/income (Get-Income-History): ``symbol`` and ``incomeType`` optional filters; "If
        neither startTime nor endTime is sent, the recent 7-day data will be returned"; "limit …
        Default 100; max 1000". Rows name the symbol, so a client can find the symbols an account
        traded (§4)."""
        limit = self._limit(params, default=100, maximum=MAX_INCOME_LIMIT)
        start, end = params.get("startTime"), params.get("endTime")
        lo = int(start) if start else (0 if end else self.now_ms() - 7 * DAY_MS)
        hi = int(end) if end else self.now_ms()
        rows = [
            row
            for row in account.income
            if lo <= row.time_ms <= hi
            and params.get("symbol", row.symbol) == row.symbol
            and params.get("incomeType", row.income_type) == row.income_type
        ]
        return [income_json(row) for row in (rows[:limit] if start else rows[-limit:])]

    async def _spot_account(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        locked = account.spot_locked()
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
                {
                    "asset": asset,
                    "free": text(amount - locked.get(asset, ZERO)),
                    "locked": text(locked.get(asset, ZERO)),
                }
                for asset, amount in account.spot_balances.items()
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
        await self._open(account, order)
        fills = await self._match(account, order)
        return spot_order_json(order, fills)

    async def _spot_get_order(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        return spot_order_json(self._find_order(account, SPOT, params, "origClientOrderId", algo=False), None)

    async def _spot_cancel_order(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        order = self._find_order(account, SPOT, params, "origClientOrderId", algo=False)
        if not order.is_open:
            raise BinanceError(400, -2011, "Unknown order sent.")
        await self._finish(account, order, "CANCELED")
        return spot_order_json(order, None)

    async def _spot_my_trades(self, account: FakeAccount, params: dict[str, str]) -> list[dict[str, Any]]:
        return [spot_trade_json(t) for t in self._select_trades(account, SPOT, params)]

    # ----------------------------------------------------------------- order checks

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
        """Check a new order as Binance does and build it; nothing is stored if a check fails."""
        instrument = self._instrument(market, params.get("symbol", ""))
        side = params.get("side", "")
        order_type = params.get(type_key, "")
        if side not in ("BUY", "SELL"):
            raise mandatory("side")
        if not order_type:
            raise mandatory(type_key)
        client_order_id = params.get(client_id_key) or f"fake_{next(self._order_ids)}"
        # "Can only be string following the rule: ^[\.A-Z\:/a-z0-9_-]{1,36}$" (§2)
        if not re.fullmatch(r"[.A-Z:/a-z0-9_-]{1,36}", client_order_id):
            raise BinanceError(400, -4015, "Client order id is not valid.")
        # "A unique id among open orders" (USD-M New Order; spot rest-api.md l.2153: "can be accepted
        # only when the previous one is filled"): a finished order's id may be used again (§2).
        # An order accepted but still on its way to the matching engine holds its id too: the engine
        # will place it, so a second order under that id is a duplicate (accept_late_next).
        queued = any(
            late.outcome == "queued" and late.market == market and late.client_order_id == client_order_id
            for late in self.late_orders
            if late.api_key == account.api_key
        )
        if queued or any(o.is_open for o in account.orders_with_client_id(market, client_order_id)):
            if market == FUTURES:
                raise BinanceError(400, -4116, "clientOrderId is duplicated.")  # USD-M error-code page
            raise BinanceError(400, -2010, "Duplicate order sent.")  # spot errors.md
        quantity = Decimal(params.get("quantity", "0"))
        price = Decimal(params.get("price", "0"))
        stop_price = Decimal(params.get(stop_key, "0"))
        time_in_force = params.get("timeInForce", "GTC")
        if order_type in ("LIMIT", "LIMIT_MAKER") and not price:
            raise mandatory("price")
        self._check_filters(instrument, quantity, price, order_type)
        mark = self.mark_prices[instrument.symbol]
        marketable = (mark <= price if side == "BUY" else mark >= price) if price else True
        reference = price or stop_price or mark
        reduce_only = params.get("reduceOnly", "false").lower() == "true"
        position_side = params.get("positionSide", "BOTH")
        if market == FUTURES:
            self._check_position_side(account, position_side, "reduceOnly" in params)
            closing = self._is_closing(account, instrument.symbol, side, position_side)
            # "When you select the "reduce only" option, your order may be rejected due to two reasons: The
            # order is in the same direction as the open position; or The order is in the opposite direction
            # and the position size exceeds the open position." (Binance FAQ "Summary of Failed Orders in
            # Binance Futures", item 4; -2022 REDUCE_ONLY_REJECT on the USD-M error-code page). Never a flip.
            # Conditional orders are checked when they trigger (``_execute`` never lets one flip).
            if reduce_only and not closing:
                raise BinanceError(400, -2022, "ReduceOnly Order is rejected.")
            held = abs(account.signed_position(instrument.symbol))
            if reduce_only and order_type in ("MARKET", "LIMIT") and quantity > held:
                raise BinanceError(400, -2022, "ReduceOnly Order is rejected.")
            if position_side != "BOTH" and closing:
                # Hedge mode: a close larger than the side's position is refused like a reduce-only
                # order (-2022 for this case is unconfirmed; ccxt's linear table, binance.py 2152).
                if quantity > account.position(instrument.symbol, position_side).amount:
                    raise BinanceError(400, -2022, "ReduceOnly Order is rejected.")
            # -4164 "Order's notional must be no smaller than %s (unless you choose reduce only)" (USD-M
            # error-code page, §1): the waiver is for reduce-only orders, not for any order that happens
            # to close. A hedge-mode close (``positionSide`` against its side) cannot carry ``reduceOnly``
            # and only reduces: it is waived like one (unconfirmed).
            if not (reduce_only or (position_side != "BOTH" and closing)) and quantity * reference < (
                instrument.min_notional
            ):
                raise BinanceError(
                    400,
                    -4164,
                    f"Order's notional must be no smaller than {text(instrument.min_notional)}"
                    " (unless you choose reduce only).",
                )
            if not closing:
                leverage = Decimal(account.leverage.get(instrument.symbol, 20))
                if quantity * reference / leverage > self._available_margin(account):
                    raise BinanceError(400, -2019, "Margin is insufficient.")
            if order_type == "LIMIT" and time_in_force == "FOK" and not marketable:
                # USD-M rejects, it does not expire (§8)
                raise BinanceError(
                    400, -5021, "Due to the order could not be filled immediately, the FOK order has been rejected."
                )
            if order_type == "LIMIT" and time_in_force == "GTX" and marketable:
                raise BinanceError(
                    400,
                    -5022,
                    "Due to the order could not be executed as maker, the Post Only order will be rejected.",
                )
        else:
            if quantity * reference < instrument.min_notional:
                raise BinanceError(400, -1013, "Filter failure: NOTIONAL")
            # The buy commission comes out of the bought asset (§6), so a buy needs quote for the
            # notional only; a sell needs the *free* base (open sells lock theirs).
            if side == "BUY" and quantity * reference > account.spot_free(instrument.quote):
                raise BinanceError(400, -2010, MSG_INSUFFICIENT_BALANCE)
            if side == "SELL" and quantity > account.spot_free(instrument.base):
                raise BinanceError(400, -2010, MSG_INSUFFICIENT_BALANCE)
            if order_type == "LIMIT_MAKER" and marketable:
                raise BinanceError(400, -2010, "Order would immediately match and take.")  # spot errors.md
        now = self.now_ms()
        return FakeOrder(
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
            time_in_force=time_in_force,
        )

    def _check_filters(self, instrument: Instrument, quantity: Decimal, price: Decimal, order_type: str) -> None:
        """LOT_SIZE and PRICE_FILTER; the maximum quantity per order: MARKET_LOT_SIZE ``maxQty`` for a
        MARKET order, LOT_SIZE ``maxQty`` for the others. USD-M answers -4005 QTY_GREATER_THAN_MAX_QTY
        "Quantity greater than max quantity." (USD-M error-code page); spot -1013 "Filter failure:
        MARKET_LOT_SIZE" / "Filter failure: LOT_SIZE" (spot filters.md: MARKET_LOT_SIZE "defines the
        quantity rules for MARKET orders")."""
        if quantity < instrument.min_qty or quantity % instrument.step_size != 0:
            raise BinanceError(400, -1013, "Filter failure: LOT_SIZE")
        market_order = order_type == "MARKET"
        if instrument.market == FUTURES:
            if quantity > (instrument.market_max_qty if market_order else instrument.max_qty):
                raise BinanceError(400, -4005, "Quantity greater than max quantity.")
        elif market_order and quantity > instrument.market_max_qty:
            raise BinanceError(400, -1013, "Filter failure: MARKET_LOT_SIZE")
        elif quantity > instrument.max_qty:  # spot's LOT_SIZE applies to every order
            raise BinanceError(400, -1013, "Filter failure: LOT_SIZE")
        if price and price % instrument.tick_size != 0:
            raise BinanceError(400, -1013, "Filter failure: PRICE_FILTER")

    def _check_position_side(self, account: FakeAccount, position_side: str, reduce_only_sent: bool) -> None:
        """USD-M New Order ``positionSide``: "Default BOTH for One-way Mode; LONG or SHORT for Hedge
        Mode. It must be sent in Hedge Mode"; -4061 for each mismatch (§5). ``reduceOnly``: "Cannot
        be sent in Hedge Mode" — also ``false``. The -1106 answer below is what Binance returns in
        practice (many client repositories quote it: "Parameter 'reduceonly' sent when not
        required."); the research doc marks the code unconfirmed (§5)."""
        if account.hedge_mode and position_side not in ("LONG", "SHORT"):
            raise BinanceError(400, -4061, "Order's position side does not match user's setting.")
        if not account.hedge_mode and position_side != "BOTH":
            raise BinanceError(400, -4061, "Order's position side does not match user's setting.")
        if account.hedge_mode and reduce_only_sent:
            raise BinanceError(400, -1106, "Parameter 'reduceonly' sent when not required.")

    def _is_closing(self, account: FakeAccount, symbol: str, side: str, position_side: str) -> bool:
        if position_side == "LONG":
            return side == "SELL"
        if position_side == "SHORT":
            return side == "BUY"
        net = account.signed_position(symbol)
        return (net > 0 and side == "SELL") or (net < 0 and side == "BUY")

    def _available_margin(self, account: FakeAccount) -> Decimal:
        """Wallet minus the initial margin of positions and of open orders that open exposure."""
        used = ZERO
        for (symbol, _side), pos in account.positions.items():
            leverage = Decimal(account.leverage.get(symbol, 20))
            used += abs(pos.amount) * pos.entry_price / leverage
        for order in account.orders.values():
            if order.market == FUTURES and order.is_open and order.type == "LIMIT" and not order.reduce_only:
                if not self._is_closing(account, order.symbol, order.side, order.position_side):
                    used += order.remaining * order.price / Decimal(account.leverage.get(order.symbol, 20))
        return account.futures_wallet - used

    def _unrealized(self, key: tuple[str, str], pos: FakePosition) -> Decimal:
        symbol, position_side = key
        amount = -pos.amount if position_side == "SHORT" else pos.amount
        return (self.mark_prices[symbol] - pos.entry_price) * amount

    def _find_order(
        self, account: FakeAccount, market: str, params: dict[str, str], client_key: str, *, algo: bool
    ) -> FakeOrder:
        """By id or by client id; a client id used again finds the newest order (§2). "Either
        `orderId` or `origClientOrderId` must be sent"; unknown → -2013 "Order does not exist."."""
        client_order_id = params.get(client_key)
        order_id = params.get("algoId" if algo else "orderId")
        if not client_order_id and not order_id:
            raise mandatory("orderId")
        for order in reversed(list(account.orders.values())):
            if order.market != market or order.algo != algo:
                continue
            if (client_order_id and order.client_order_id == client_order_id) or (
                order_id and str(order.order_id) == order_id
            ):
                return order
        raise BinanceError(400, -2013, MSG_NOT_EXIST)

    def _limit(self, params: dict[str, str], *, default: int, maximum: int) -> int:
        """``limit``: above the documented maximum is refused with -1130 (the code is unconfirmed;
        ccxt's common table, binance.py 2716)."""
        limit = int(params.get("limit", default))
        if not 1 <= limit <= maximum:
            raise BinanceError(400, -1130, "Data sent for parameter 'limit' is not valid.")
        return limit

    def _select_trades(self, account: FakeAccount, market: str, params: dict[str, str]) -> list[FakeTrade]:
        """userTrades / myTrades as documented (§4): ``symbol`` mandatory (-1102); ``fromId`` not with
        ``startTime``/``endTime`` (-1128); start to end at most 7 days on USD-M, 24 hours on spot
        (-1127 "More than %s hours between startTime and endTime.", the code per ccxt binance.py 2714,
        unconfirmed for this endpoint); ``limit`` ≤ 1000; rows ordered by trade id. Without times
        USD-M returns "the last 7 days' data", spot "most recent trades"; with ``startTime`` only,
        USD-M's window ends 7 days later (unconfirmed)."""
        symbol = params.get("symbol")
        if not symbol:
            raise mandatory("symbol")
        limit = self._limit(params, default=500, maximum=MAX_TRADES_LIMIT)
        start, end, from_id = params.get("startTime"), params.get("endTime"), params.get("fromId")
        if from_id and (start or end):
            raise BinanceError(400, -1128, "Combination of optional parameters invalid.")
        window = TRADE_WINDOW_MS[market]
        if start and end and int(end) - int(start) > window:
            raise BinanceError(400, -1127, f"More than {window // 3_600_000} hours between startTime and endTime.")
        rows = [
            t
            for t in account.trades
            if t.market == market
            and t.symbol == symbol
            and (not params.get("orderId") or str(t.order_id) == params["orderId"])
        ]
        rows.sort(key=lambda t: t.trade_id)
        if from_id:
            return [t for t in rows if t.trade_id >= int(from_id)][:limit]
        if market == FUTURES:
            now = self.now_ms()
            lo = int(start) if start else (int(end) - window if end else now - window)
            hi = int(end) if end else (int(start) + window if start else now)
        else:
            lo = int(start) if start else 0
            hi = int(end) if end else self.now_ms()
        rows = [t for t in rows if lo <= t.time_ms <= hi]
        return rows[:limit] if start else rows[-limit:]

    # ----------------------------------------------------------------- matching

    async def _open(self, account: FakeAccount, order: FakeOrder) -> None:
        """Store an accepted order and push its NEW event (x=NEW, X=NEW) (§3)."""
        account.orders[order.order_id] = order
        if not order.algo:
            await self._push_order_update(account, order, "NEW")

    async def _match(self, account: FakeAccount, order: FakeOrder) -> list[FakeTrade]:
        """What the matching engine does with a new order (§8): MARKET fills at the mark; a
        marketable LIMIT fills at once at the mark (the better price); otherwise GTC rests (until
        ``trade_through``) and IOC — and spot FOK, "will expire if the full order cannot be filled"
        (spot enums.md l.128–130) — expire. Conditional orders rest until triggered."""
        mark = self.mark_prices[order.symbol]
        if order.type == "MARKET":
            return await self._execute(account, order, [order.quantity], mark)
        if order.type not in ("LIMIT", "LIMIT_MAKER"):
            return []
        if mark <= order.price if order.side == "BUY" else mark >= order.price:
            return await self._execute(account, order, [order.remaining], mark)
        if order.time_in_force in ("IOC", "FOK"):
            await self._finish(account, order, "EXPIRED")
        return []

    async def _finish(self, account: FakeAccount, order: FakeOrder, status: str) -> None:
        """The order ends unfilled (or with the fills it has): CANCELED or EXPIRED, pushed as such."""
        order.status, order.update_ms = status, self.now_ms()
        await self._push_order_update(account, order, status)

    async def _execute(
        self, account: FakeAccount, order: FakeOrder, pieces: list[Decimal], price: Decimal, *, maker: bool = False
    ) -> list[FakeTrade]:
        """Fill ``order`` in ``pieces`` at ``price``: one trade (own id, own x=TRADE event) per piece,
        ``executedQty`` cumulative, PARTIALLY_FILLED until the last piece (§3)."""
        instrument = self._instrument(order.market, order.symbol)
        trades = []
        for piece in pieces:
            if order.market == FUTURES and order.reduce_only:
                # a reduce-only order only ever reduces (FAQ "Summary of Failed Orders in Binance
                # Futures", item 4): one that triggered after the position shrank fills what is there,
                # the rest expires; it never flips the position
                held = account.signed_position(order.symbol)
                closable = abs(held) if (held > 0) == (order.side == "SELL") else ZERO
                piece = min(piece, closable)
                if piece <= 0:
                    await self._finish(account, order, "EXPIRED")
                    break
            now = self.now_ms()
            in_bnb = self._commission_in_bnb(account, order.market, piece * price * self.fee_rate)
            if in_bnb is not None:
                commission, commission_asset = in_bnb, "BNB"
            elif order.market == SPOT and order.side == "BUY":
                # "If not paying in BNB, the total commission are summed up and deducted from your
                # received amount" (spot faqs/commission_faq.md l.168, §6): paid in the base asset.
                commission, commission_asset = piece * self.fee_rate, instrument.base
            else:
                commission, commission_asset = piece * price * self.fee_rate, instrument.quote
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
                commission_asset=commission_asset,
                maker=maker,
            )
            order.executed += piece
            order.cum_quote += piece * price
            order.commission += commission
            order.status = "FILLED" if order.executed >= order.quantity else "PARTIALLY_FILLED"
            order.update_ms = now
            if order.market == FUTURES:
                trade.realized_pnl = self._apply_futures_fill(account, order, piece, price)
                if commission_asset == "BNB":
                    account.futures_bnb -= commission
                else:
                    account.futures_wallet -= commission
                self._record_income(account, trade)
            else:
                self._apply_spot_fill(account, instrument, trade)
            account.trades.append(trade)
            trades.append(trade)
            await self._push_execution(account, order, trade)
            await self._push_account_update(account, order)
        if order.type == "MARKET" and order.is_open:  # a reduce-only market order cut to the position
            await self._finish(account, order, "EXPIRED")
        return trades

    def _commission_in_bnb(self, account: FakeAccount, market: str, quote_commission: Decimal) -> Decimal | None:
        """The commission in BNB when the account pays fees with BNB and holds enough of it, else
        None. Spot faqs/commission_faq.md: "the standard commission and tax commission will be
        converted into BNB based on the exchange rate"; "If you do not have enough BNB to pay the
        discounted commission, the full commission will be taken out of your received amount
        instead". The BNB discount is left out: ``fee_rate`` stands for the rate paid. USD-M
        charges the futures wallet's BNB the same way (``GET /fapi/v1/feeBurn``, "BNB Fee
        Discount")."""
        if not account.pay_fees_in_bnb:
            return None
        commission = (quote_commission / self.mark_prices["BNBUSDT"]).quantize(Decimal("1e-8"))  # as Binance shows it
        held = account.spot_free("BNB") if market == SPOT else account.futures_bnb
        return commission if commission <= held else None

    def _record_income(self, account: FakeAccount, trade: FakeTrade) -> None:
        rows = [("COMMISSION", -trade.commission, trade.commission_asset)]
        if trade.realized_pnl:
            rows.append(("REALIZED_PNL", trade.realized_pnl, "USDT"))
        for income_type, amount, asset in rows:
            account.income.append(
                FakeIncome(
                    next(self._tran_ids), trade.symbol, income_type, amount, trade.time_ms, trade.trade_id, asset
                )
            )

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
            pos.realized += realized
            pos.amount += delta
            if pos.amount == 0:
                pos.entry_price = ZERO
            elif abs(delta) > closed:
                pos.entry_price = price
        return realized

    def _apply_spot_fill(self, account: FakeAccount, instrument: Instrument, trade: FakeTrade) -> None:
        """A buy receives ``qty − commission`` of the base; a sell receives the quote less its
        commission (§6); a commission paid with BNB comes out of the BNB balance instead."""
        balances = account.spot_balances
        base, quote = instrument.base, instrument.quote
        notional = trade.quantity * trade.price
        if trade.side == "BUY":
            balances[base] = balances.get(base, ZERO) + trade.quantity
            balances[quote] = balances.get(quote, ZERO) - notional
        else:
            balances[base] = balances.get(base, ZERO) - trade.quantity
            balances[quote] = balances.get(quote, ZERO) + notional
        balances[trade.commission_asset] = balances.get(trade.commission_asset, ZERO) - trade.commission

    # ----------------------------------------------------------------- websocket

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if not self._accept_websockets:
            return web.Response(status=503, text="websocket refused by test")
        ws_api = request.path == "/ws-api/v3"
        if ws_api:
            session = StreamSession(SPOT, None)
        else:
            listen_key = request.query.get("listenKey") or request.path.rsplit("/", 1)[-1]
            account = next((a for a in self.accounts.values() if listen_key in a.listen_keys), None)
            if account is None:
                return web.json_response({"code": -1125, "msg": MSG_LISTEN_KEY}, status=400)
            session = StreamSession(account.listen_keys[listen_key], account.api_key, listen_key)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets[ws] = session
        closes_at = time.monotonic() + self.socket_seconds  # "disconnected at the 24 hour mark" (§3)
        try:
            while not ws.closed:
                if time.monotonic() >= closes_at:
                    await ws.close()
                    break
                if ws in self._silent:
                    await asyncio.sleep(0.05)  # read nothing: pings go unanswered, like a dead peer
                    continue
                try:
                    message = await ws.receive(timeout=0.05)  # short, so silence takes effect promptly
                except TimeoutError:
                    continue
                if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
                if ws_api and message.type == WSMsgType.TEXT:
                    await ws.send_str(json.dumps(self._ws_api_request(session, message.data)))
        finally:
            self._sockets.pop(ws, None)
            self._silent.discard(ws)
        return ws

    def _ws_api_request(self, session: StreamSession, data: str) -> dict[str, Any]:
        """One WebSocket-API request → ``{"id", "status", "result" | "error"}`` (spot web-socket-api.md)."""
        request = json.loads(data)
        request_id = request.get("id")
        params = {key: str(value) for key, value in (request.get("params") or {}).items()}
        try:
            if request.get("method") != "userDataStream.subscribe.signature":
                raise BinanceError(400, -1000, f"fake binance: unsupported method {request.get('method')}")
            result = self._subscribe_signature(session, params)
        except BinanceError as error:
            return {"id": request_id, "status": error.status, "error": {"code": error.code, "msg": error.msg}}
        return {"id": request_id, "status": 200, "result": result}

    def _subscribe_signature(self, session: StreamSession, params: dict[str, str]) -> dict[str, Any]:
        """``userDataStream.subscribe.signature`` (params ``apiKey``, ``timestamp``, ``signature``,
        optional ``recvWindow``; web-socket-api.md l.8320–8360): the signature covers the other params
        "sorted in alphabetical order by parameter name" (l.761), as ccxt signs them (pro/binance.py
        2609–2632, sent at 2660–2665). Answers ``{"subscriptionId": n}``; "You can have only one
        active subscription for a given account on a given connection" (l.8182)."""
        account = self.accounts.get(params.get("apiKey", ""))
        if account is None:
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        signature = params.get("signature")
        if not signature:
            raise mandatory("signature")
        payload = "&".join(f"{key}={value}" for key, value in sorted(params.items()) if key != "signature")
        self._check_signature(account, payload, signature, params)
        if session.api_key != account.api_key or session.subscription_id is None:
            session.api_key = account.api_key
            session.subscription_id = 0 if session.subscription_id is None else session.subscription_id + 1
        return {"subscriptionId": session.subscription_id}

    async def _send_event(self, account: FakeAccount, market: str, event: dict[str, Any]) -> None:
        await self._expire_stale_listen_keys(account)  # a key not kept alive carries nothing more
        plain = json.dumps(event)
        for ws, session in list(self._sockets.items()):
            if session.api_key != account.api_key or session.market != market:
                continue
            if session.expired or ws in self._silent or ws.closed:
                continue
            if session.subscription_id is None:
                await ws.send_str(plain)
            else:  # the WebSocket API wraps user-data events (§3)
                await ws.send_str(json.dumps({"subscriptionId": session.subscription_id, "event": event}))

    async def _push_execution(self, account: FakeAccount, order: FakeOrder, trade: FakeTrade) -> None:
        """One fill's event (the benchmarks hook this to time each execution)."""
        await self._push_order_update(account, order, "TRADE", trade)

    async def _push_order_update(
        self, account: FakeAccount, order: FakeOrder, execution_type: str, trade: FakeTrade | None = None
    ) -> None:
        now = trade.time_ms if trade else self.now_ms()
        if order.market == FUTURES:
            event = {
                "e": "ORDER_TRADE_UPDATE",
                "E": now,
                "T": now,
                "o": futures_order_update(order, execution_type, trade),
            }
        else:
            event = spot_execution_report(order, execution_type, trade, now)
        await self._send_event(account, order.market, event)

    async def _push_account_update(self, account: FakeAccount, order: FakeOrder) -> None:
        """After a fill: USD-M ``ACCOUNT_UPDATE`` (reason ORDER, the USDT balance and the position side
        that changed; shape per ccxt pro/binance.py 3316–3340 and 4721–4748), spot
        ``outboundAccountPosition`` with the assets the fill changed (spot user-data-stream.md l.31–50)."""
        now = self.now_ms()
        if order.market == FUTURES:
            position_side = order.position_side
            pos = account.position(order.symbol, position_side)
            amount = -pos.amount if position_side == "SHORT" else pos.amount
            wallet = text(account.futures_wallet)
            update = {
                "m": "ORDER",
                "B": [{"a": "USDT", "wb": wallet, "cw": wallet, "bc": "0"}],
                "P": [
                    {
                        "s": order.symbol,
                        "pa": text(amount),
                        "ep": text(pos.entry_price),
                        "bep": text(pos.entry_price),
                        "cr": text(pos.realized),
                        "up": text(self._unrealized((order.symbol, position_side), pos)),
                        "mt": account.margin_type.get(order.symbol, "cross").lower(),
                        "iw": "0",
                        "ps": position_side,
                        "ma": "USDT",
                    }
                ],
            }
            event: dict[str, Any] = {"e": "ACCOUNT_UPDATE", "E": now, "T": now, "a": update}
        else:
            instrument = self._instrument(SPOT, order.symbol)
            locked = account.spot_locked()
            event = {
                "e": "outboundAccountPosition",
                "E": now,
                "u": now,
                "B": [
                    {
                        "a": asset,
                        "f": text(account.spot_balances.get(asset, ZERO) - locked.get(asset, ZERO)),
                        "l": text(locked.get(asset, ZERO)),
                    }
                    for asset in (instrument.base, instrument.quote)
                ],
            }
        await self._send_event(account, order.market, event)


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
            {
                "filterType": "LOT_SIZE",
                "minQty": text(i.min_qty),
                "maxQty": text(i.max_qty),
                "stepSize": text(i.step_size),
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": text(i.min_qty),
                "maxQty": text(i.market_max_qty),
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
            {
                "filterType": "LOT_SIZE",
                "minQty": text(i.min_qty),
                "maxQty": text(i.max_qty),
                "stepSize": text(i.step_size),
            },
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0", "maxQty": text(i.market_max_qty), "stepSize": "0"},
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
    exponent = step.normalize().as_tuple().exponent
    assert isinstance(exponent, int), step  # a finite step
    return max(0, -exponent)


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
        "timeInForce": o.time_in_force,
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


def futures_order_update(o: FakeOrder, execution_type: str, trade: FakeTrade | None) -> dict[str, Any]:
    """The ``o`` of an ``ORDER_TRADE_UPDATE`` (USD-M Event-Order-Update, example in ccxt
    pro/binance.py 4124–4160; §3): ``x`` the execution type, ``X`` the order status, ``l``/``L``/``t``
    the last fill, ``z`` cumulative, ``ap`` average; ``N``/``n`` "will not push if no commission"."""
    update: dict[str, Any] = {
        "s": o.symbol,
        "c": o.client_order_id,
        "S": o.side,
        "o": "MARKET" if o.stop_price else o.type,
        "f": o.time_in_force,
        "q": text(o.quantity),
        "p": text(o.price),
        "ap": text(o.average),
        "sp": text(o.stop_price),
        "x": execution_type,
        "X": o.status,
        "i": o.order_id,
        "l": text(trade.quantity) if trade else "0",
        "z": text(o.executed),
        "L": text(trade.price) if trade else "0",
        "T": trade.time_ms if trade else o.update_ms,
        "t": trade.trade_id if trade else 0,
        "b": "0",
        "a": "0",
        "m": trade.maker if trade else False,
        "R": o.reduce_only,
        "wt": "CONTRACT_PRICE",
        "ot": o.type,
        "ps": o.position_side,
        "cp": False,
        "rp": text(trade.realized_pnl) if trade else "0",
        "pP": False,
        "si": 0,
        "ss": 0,
        "V": "EXPIRE_TAKER",
        "pm": "NONE",
        "gtd": 0,
    }
    if trade is not None:
        update["N"], update["n"] = trade.commission_asset, text(trade.commission)
    return update


def spot_execution_report(o: FakeOrder, execution_type: str, trade: FakeTrade | None, now: int) -> dict[str, Any]:
    """A spot ``executionReport`` (spot user-data-stream.md l.80–117, ccxt pro/binance.py 4090–4120;
    §3): ``n``/``N`` the commission and its asset (``N`` null without a trade), ``t`` −1 without a
    trade, ``Z`` cumulative quote ("Average price can be found by doing Z divided by z"), ``Y`` the
    last fill's quote; a cancel carries the cancelled order's client id in ``C``."""
    cancel = execution_type == "CANCELED"
    return {
        "e": "executionReport",
        "E": now,
        "s": o.symbol,
        "c": f"cancel_{o.order_id}" if cancel else o.client_order_id,
        "S": o.side,
        "o": o.type,
        "f": o.time_in_force,
        "q": text(o.quantity),
        "p": text(o.price),
        "P": text(o.stop_price),
        "F": "0",
        "g": -1,
        "C": o.client_order_id if cancel else "",
        "x": execution_type,
        "X": o.status,
        "r": "NONE",
        "i": o.order_id,
        "l": text(trade.quantity) if trade else "0",
        "z": text(o.executed),
        "L": text(trade.price) if trade else "0",
        "n": text(trade.commission) if trade else "0",
        "N": trade.commission_asset if trade else None,
        "T": trade.time_ms if trade else now,
        "t": trade.trade_id if trade else -1,
        "I": 0,
        "w": o.is_open and o.type in ("LIMIT", "LIMIT_MAKER"),
        "m": trade.maker if trade else False,
        "M": False,
        "O": o.time_ms,
        "Z": text(o.cum_quote),
        "Y": text(trade.quantity * trade.price) if trade else "0",
        "Q": "0",
        "W": o.time_ms,
        "V": "NONE",
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
        "timeInForce": o.time_in_force,
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
        "timeInForce": o.time_in_force,
        "type": o.type,
        "side": o.side,
        "stopPrice": text(o.stop_price),
        "workingTime": o.time_ms,
        "selfTradePreventionMode": "NONE",
    }
    if fills is not None:  # FULL response (spot rest-api.md l.2259–2281)
        result["fills"] = [
            {
                "price": text(t.price),
                "qty": text(t.quantity),
                "commission": text(t.commission),
                "commissionAsset": t.commission_asset,
                "tradeId": t.trade_id,
            }
            for t in fills
        ]
    return result


def futures_trade_json(t: FakeTrade) -> dict[str, Any]:
    return {
        "buyer": t.side == "BUY",
        "commission": text(t.commission),
        "commissionAsset": t.commission_asset,
        "id": t.trade_id,
        "maker": t.maker,
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
        "commissionAsset": t.commission_asset,
        "time": t.time_ms,
        "isBuyer": t.side == "BUY",
        "isMaker": t.maker,
        "isBestMatch": True,
    }


def income_json(row: FakeIncome) -> dict[str, Any]:
    return {
        "symbol": row.symbol,
        "incomeType": row.income_type,
        "income": text(row.income),
        "asset": row.asset,
        "info": row.income_type,
        "time": row.time_ms,
        "tranId": row.tran_id,
        "tradeId": str(row.trade_id),
    }


# (method, path) -> (handler, security): NONE, USER_STREAM (API key only) or SIGNED.
ROUTES: dict[tuple[str, str], tuple[Callable[..., Awaitable[Any]], str]] = {
    ("GET", "/fapi/v1/ping"): (FakeBinance._ping, "NONE"),
    ("GET", "/api/v3/ping"): (FakeBinance._ping, "NONE"),
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
    ("PUT", "/fapi/v1/order"): (FakeBinance._futures_modify_order, "SIGNED"),
    ("POST", "/fapi/v1/algoOrder"): (FakeBinance._futures_new_algo_order, "SIGNED"),
    ("GET", "/fapi/v1/algoOrder"): (FakeBinance._futures_get_algo_order, "SIGNED"),
    ("DELETE", "/fapi/v1/algoOrder"): (FakeBinance._futures_cancel_algo_order, "SIGNED"),
    ("GET", "/fapi/v1/userTrades"): (FakeBinance._futures_user_trades, "SIGNED"),
    ("GET", "/fapi/v1/income"): (FakeBinance._income, "SIGNED"),
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
    ("PUT", "/api/v3/userDataStream"): (FakeBinance._spot_keepalive_listen_key, "USER_STREAM"),
    ("GET", "/sapi/v1/account/apiRestrictions"): (FakeBinance._api_restrictions, "SIGNED"),
}
# New orders count against the order-count limit (§7).
ORDER_ROUTES = {
    ("POST", "/fapi/v1/order"),
    ("PUT", "/fapi/v1/order"),  # Modify Order: "1 on 10s order rate limit(X-MBX-ORDER-COUNT-10S)" (§3)
    ("POST", "/api/v3/order"),
    ("POST", "/fapi/v1/algoOrder"),
}
#: the routes whose requests may be accepted late (accept_late_next)
NEW_ORDER_ROUTES = {("POST", "/fapi/v1/order"), ("POST", "/api/v3/order")}
