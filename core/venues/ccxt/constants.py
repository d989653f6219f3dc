"""What the ccxt adapter knows of its exchanges, apart from its logic: the exchanges offered by
name, per-exchange options, Binance's error codes, order types and request-weight limits, the
listener's limits.

Request costs per endpoint are ccxt's own tables; ``throttler.py`` paces requests by them (for
Binance, converted to Binance's request weight and shared per egress IP).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from core import errors as core_errors
from core.model import OrderType
from core.throttle import RateLimit
from core.venues.base import SendWindow
from core.venues.driver import VenueSpec

#: the exchanges offered by name, with their curated titles; any other ccxt exchange id works too
#: (an account may carry its own egress: an HTTP(S) proxy every request of the account goes through,
#: for keys restricted to one IP)
CURATED_VENUES: tuple[VenueSpec, ...] = (
    VenueSpec("binanceusdm", "Binance USD-M futures", ("api_key", "secret"), optional_fields=("egress_proxy",)),
    VenueSpec("binance", "Binance spot", ("api_key", "secret"), optional_fields=("egress_proxy",)),
    VenueSpec("bybit", "Bybit", ("api_key", "secret"), optional_fields=("egress_proxy",)),
    VenueSpec("okx", "OKX", ("api_key", "secret", "password"), optional_fields=("egress_proxy",)),
)
#: the exchanges a deployment enables when it names none: the first-class ones, those with a
#: wire-level fake the tests drive real ccxt against and whose key permissions ``validate`` checks
#: (withdrawals refused, trading required). Bybit and OKX have neither yet: a deployment that
#: names them in COPYTRADE_CCXT_EXCHANGES gets keys checked only for authentication and balance.
DEFAULT_EXCHANGES: tuple[str, ...] = ("binanceusdm", "binance")
#: ccxt's names for the credentials an exchange requires, mapped to the fields asked for
CREDENTIAL_FIELDS = (("apiKey", "api_key"), ("secret", "secret"), ("password", "password"), ("uid", "uid"))
#: asked for when ccxt names no required credential
DEFAULT_FIELDS = ("api_key", "secret")

BINANCE_FAMILY = frozenset({"binance", "binanceusdm"})
#: Binance refuses a signed request that reaches it after ``timestamp + recvWindow`` (-1021), and
#: forwards one to its matching engine only while that has not passed — checked again just before
#: (docs/research/binance.md §9; its matching engine refuses one "outside of the ME recvWindow",
#: -5028). So each order request is signed with the sender's deadline; 5 s is Binance's default
#: recvWindow (§9). The settle margin covers the venue clock's own granularity and a request the
#: engine took at the very end of its window, before a look-up's -2013 is taken as final.
#: Other ccxt exchanges have no send window here: we have not verified for any of them that a
#: request can be bounded by a deadline the venue enforces up to its matching engine, so a lost
#: order there is never proven dead (``Venue.send_window`` None).
BINANCE_SEND_WINDOW = SendWindow(length=timedelta(seconds=5), settle=timedelta(seconds=2))
#: less than this left of a deadline and the request is not sent at all (``NotSent``): it would
#: mostly die on the way, and a window this short is no use to a request still to be throttled
MIN_RECV_WINDOW_MS = 1000
#: "Maximum recvWindow is 60000 milliseconds" (§9): longer is refused with -1131
MAX_RECV_WINDOW_MS = 60_000
#: how long the price of a coin a commission was paid in (Binance's BNB) is reused: one ticker read
#: per coin per burst of fills, close enough to the trade time without a read per order
FEE_COIN_PRICE_SECONDS = 10.0
#: orders whose streamed executions (and their commissions) an account keeps for its look-ups:
#: far more than its copies in flight at once
STREAMED_ORDERS = 5000
#: venues whose resting stop-market / take-profit-market orders carry the follower's TP/SL
CONDITIONAL_ORDER_VENUES = frozenset({"binanceusdm"})

#: Options for every instance: the copier never needs the currency list (a signed call per load).
COMMON_OPTIONS: Mapping[str, Any] = {"fetchCurrencies": False}
#: Per-exchange options: load only the market type the account trades, no margin pair lists.
EXCHANGE_OPTIONS: Mapping[str, Mapping[str, Any]] = {
    "binance": {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}, "fetchMargins": False},
    "binanceusdm": {"fetchMarkets": {"types": ["linear"]}},
}
#: ccxt.pro would otherwise fetch a positions snapshot (and leverage brackets) on connect.
STREAMING_OPTIONS: Mapping[str, Any] = {
    "watchPositions": {"fetchPositionsSnapshot": False},
    "watchBalance": {"fetchBalanceSnapshot": False},
}

#: Binance error codes mapped directly: ccxt picks its per-market error table by the request's
#: host name, so behind overridden URLs (proxy, tests) several codes would fall to generic types.
BINANCE_CODES: Mapping[int, type[core_errors.VenueError]] = {
    -1003: core_errors.RateLimited,  # too much request weight
    -1008: core_errors.TemporaryError,  # throttled by system-level protection: not processed
    -1015: core_errors.RateLimited,  # too many new orders
    -1021: core_errors.TemporaryError,  # timestamp outside recvWindow: clock drift, resynced below
    -1022: core_errors.AuthenticationError,  # signature not valid (wrong secret)
    -2014: core_errors.AuthenticationError,  # API-key format invalid
    -2015: core_errors.AuthenticationError,  # invalid API-key, IP, or permissions
    -1013: core_errors.InvalidOrder,  # filter failure (LOT_SIZE, PRICE_FILTER, NOTIONAL)
    -1106: core_errors.InvalidOrder,  # parameter sent when not required
    -1111: core_errors.InvalidOrder,  # precision over the maximum
    -1121: core_errors.UnknownSymbol,  # invalid symbol
    -2010: core_errors.InvalidOrder,  # new order rejected (balance and duplicate are matched by message first)
    -2013: core_errors.InvalidOrder,  # order does not exist
    -2022: core_errors.InvalidOrder,  # reduce-only order rejected
    -4015: core_errors.InvalidOrder,  # client order id not valid
    -4061: core_errors.InvalidOrder,  # position side does not match the account's mode (re-read, below)
    -4116: core_errors.DuplicateOrder,  # "clientOrderId is duplicated": an order with this id exists (§2)
    -4131: core_errors.InvalidOrder,  # PERCENT_PRICE: the book's best price is outside the band
    -4164: core_errors.InvalidOrder,  # notional below minimum
    -2018: core_errors.InsufficientFunds,  # balance insufficient
    -2019: core_errors.InsufficientFunds,  # margin insufficient
}
#: "Execution status unknown" (docs/research/binance.md §1): the request may have reached the
#: matching engine. Temporary on a read; on the order path the order must be looked up first.
STATUS_UNKNOWN_CODES = frozenset({-1000, -1001, -1006, -1007})
#: Plain words for codes whose documented text does not say what to do.
BINANCE_EXPLANATIONS: Mapping[int, str] = {
    -4131: "the order's price would be too far from the mark price (Binance's PERCENT_PRICE band); "
    "the book is too thin for a market order now",
}
#: spot's duplicate client id: -2010 with this message (docs/research/binance.md §2)
DUPLICATE_ORDER_MESSAGE = "Duplicate order sent."
INVALID_TIMESTAMP = -1021
POSITION_SIDE_MISMATCH = -4061
REJECTED_API_KEY = -2015
ORDER_DOES_NOT_EXIST = -2013
UNKNOWN_ORDER_SENT = -2011  # cancelling an order that is no longer open
BINANCE_CODE_PATTERN = re.compile(r'"code"\s*:\s*(-?\d+)')
URL_QUERY_PATTERN = re.compile(r"(https?|wss?)://([^\s?]+)\?\S*")

#: Binance order types (futures ``ot``/``origType``, spot ``o``/``type``) as the project's types.
BINANCE_ORDER_TYPES: Mapping[str, OrderType] = {
    "MARKET": OrderType.MARKET,
    "LIMIT": OrderType.LIMIT,
    "LIMIT_MAKER": OrderType.LIMIT,
    "STOP_MARKET": OrderType.STOP_MARKET,
    "STOP_LOSS": OrderType.STOP_MARKET,
    "STOP": OrderType.STOP_LIMIT,
    "STOP_LOSS_LIMIT": OrderType.STOP_LIMIT,
    "TAKE_PROFIT": OrderType.STOP_LIMIT,
    "TAKE_PROFIT_LIMIT": OrderType.STOP_LIMIT,
    "TAKE_PROFIT_MARKET": OrderType.TAKE_PROFIT_MARKET,
}
TRADES_PAGE = 1000
SEEN_TRADE_IDS = 20_000
#: the master's orders whose last state the listener remembers (cancellations and amendments are told apart by it)
SEEN_ORDERS = 5_000
INCOME_PAGE = 1000
DAY_MS = 86_400_000
#: How far apart one trade-history read's startTime and endTime may be, by ccxt market type: USD-M
#: userTrades "The time between startTime and endTime cannot be longer than 7 days"; spot myTrades
#: "can't be longer than 24 hours", -1127 otherwise (docs/research/binance.md §4). Any other type
#: gets ``HISTORY_WINDOW_MS``, which income history is walked in too.
HISTORY_WINDOWS_MS: Mapping[str, int] = {"spot": DAY_MS}
HISTORY_WINDOW_MS = 7 * DAY_MS
#: userTrades: "Only support querying trade in the past 6 months" (§4): older is not recoverable.
HISTORY_DEPTH_MS = 180 * DAY_MS
#: A checkpoint the listener saves lies this far before its socket opened: fills streamed but
#: not yet journaled when the process died are replayed (the journal is idempotent).
CHECKPOINT_MARGIN_MS = 60_000
#: How often a USD-M listen key is kept alive (a PUT): Binance expires one 60 minutes after its
#: creation or last keep-alive (§3), and ccxt 4.5.90 schedules its own keep-alive once only.
LISTEN_KEY_KEEPALIVE_SECONDS = 30 * 60.0
#: Binance's user-data event after which "no more user data event will be updated" (§3).
LISTEN_KEY_EXPIRED = "listenKeyExpired"


# -- Binance's request weight and order counts (docs/research/binance.md §7) --------------------------
#: "The limits on the API are based on the IPs, not the API keys": REQUEST_WEIGHT per IP, until the
#: venue's own ``exchangeInfo.rateLimits`` says otherwise (USD-M 2,400 a minute, spot 6,000). USD-M
#: and spot are separate hosts with separate counts.
BINANCE_WEIGHT_LIMITS: Mapping[str, RateLimit] = {
    "binanceusdm": RateLimit(2400, 60.0),
    "binance": RateLimit(6000, 60.0),
}
#: ORDERS, counted per account: USD-M 300 per 10 s and 1,200 a minute; spot 50 per 10 s and
#: 160,000 a day (the published ``rateLimits`` replace them once read)
BINANCE_ORDER_LIMITS: Mapping[str, tuple[RateLimit, ...]] = {
    "binanceusdm": (RateLimit(300, 10.0), RateLimit(1200, 60.0)),
    "binance": (RateLimit(50, 10.0), RateLimit(160_000, 86_400.0)),
}
#: the share of a published limit the budget spends: the rest is for what it cannot see in time
#: (another process or program leaving from the same IP; answers still on their way)
BINANCE_LIMIT_SHARE = 0.9
#: the share of the weight budget only the order path may use (its look-ups, cancels, the clock)
BINANCE_URGENT_RESERVE = 0.1
#: ``rateLimits`` interval names in seconds, and the letters of their ``X-MBX-USED-WEIGHT-<n><letter>``
RATE_LIMIT_INTERVALS: Mapping[str, float] = {"SECOND": 1.0, "MINUTE": 60.0, "HOUR": 3600.0, "DAY": 86_400.0}
#: when a 429 or a 418 carries no ``Retry-After``: a 429 says wait and a 418 ban lasts "from 2 minutes"
DEFAULT_RETRY_AFTER_SECONDS = {429: 1.0, 418: 120.0}
#: the ccxt API sections each exchange's IP weight covers (``sapi`` and the others keep limits of their own)
BINANCE_WEIGHED_SECTIONS: Mapping[str, frozenset[str]] = {
    "binanceusdm": frozenset(
        {"fapiPublic", "fapiPrivate", "fapiPublicV2", "fapiPrivateV2", "fapiPublicV3", "fapiPrivateV3"}
    ),
    "binance": frozenset({"public", "private", "v1"}),
}
#: ccxt cost units per Binance weight unit: ccxt tables spot costs at 0.2 a weight ("1 IP (api) =>
#: cost = 0.2", binance.py's ``public`` section) and USD-M costs as the weights themselves
CCXT_COST_PER_WEIGHT: Mapping[str, float] = {
    "public": 0.2,
    "private": 0.2,
    "v1": 0.2,
}
#: endpoints whose weight in ccxt's table differs from the endpoint's Binance page: USD-M New Order
#: "0 on IP rate limit(x-mbx-used-weight-1m)" (ccxt: 4, for its per-account pacing); Account
#: Information V2/V3, Futures Account Balance V2/V3 and Position Information V2/V3 weigh 5 (ccxt: 1)
BINANCE_WEIGHTS: Mapping[tuple[str, str, str], float] = {
    ("fapiPrivate", "POST", "order"): 0,
    ("fapiPrivateV2", "GET", "account"): 5,
    ("fapiPrivateV3", "GET", "account"): 5,
    ("fapiPrivateV2", "GET", "balance"): 5,
    ("fapiPrivateV3", "GET", "balance"): 5,
    ("fapiPrivateV2", "GET", "positionRisk"): 5,
    ("fapiPrivateV3", "GET", "positionRisk"): 5,
}
#: new orders: counted on the account's ORDERS limits (``CcxtVenue.ready_to_send`` waits for them)
BINANCE_NEW_ORDERS = frozenset(
    {("fapiPrivate", "POST", "order"), ("fapiPrivate", "POST", "algoOrder"), ("private", "POST", "order")}
)
#: the order path's requests: never queued behind reads (``WeightBudget`` urgent lane)
BINANCE_URGENT = BINANCE_NEW_ORDERS | frozenset(
    {
        ("fapiPrivate", "GET", "order"),
        ("fapiPrivate", "DELETE", "order"),
        ("fapiPrivate", "GET", "algoOrder"),
        ("fapiPrivate", "DELETE", "algoOrder"),
        ("fapiPublic", "GET", "time"),
        ("private", "GET", "order"),
        ("private", "DELETE", "order"),
        ("public", "GET", "time"),
    }
)
#: -1015 "Too many new orders": the account's own order count, not the IP's weight
TOO_MANY_ORDERS = -1015
