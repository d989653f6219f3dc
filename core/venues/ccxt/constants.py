"""What the ccxt adapter knows of its exchanges, apart from its logic: the exchanges offered by
name, per-exchange options, Binance's error codes and order types, the listener's limits.

Request rates are not tabled here: ccxt carries each exchange's rate limit and per-endpoint
costs itself, and ``throttler.py`` paces requests by them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from core import errors as core_errors
from core.model import OrderType
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
INCOME_PAGE = 1000
#: USD-M userTrades: "The time between startTime and endTime cannot be longer than 7 days"
#: (docs/research/binance.md §4); income history is walked in the same windows.
HISTORY_WINDOW_MS = 7 * 86_400_000
#: userTrades: "Only support querying trade in the past 6 months" (§4): older is not recoverable.
HISTORY_DEPTH_MS = 180 * 86_400_000
#: A checkpoint the listener saves lies this far before its socket opened: fills streamed but
#: not yet journaled when the process died are replayed (the journal is idempotent).
CHECKPOINT_MARGIN_MS = 60_000
#: Binance's user-data event after which "no more user data event will be updated" (§3).
LISTEN_KEY_EXPIRED = "listenKeyExpired"
