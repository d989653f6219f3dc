"""What the Angel One adapter knows of SmartAPI, apart from its logic: hosts, the limit table,
answer codes, order and product types, the instrument master's shape."""

from __future__ import annotations

import enum
from datetime import time, timedelta, timezone
from decimal import Decimal

from core.model import OrderType
from core.throttle import RateLimit
from core.venues.driver import VenueSpec

#: the optional fields: the client's egress (an HTTP(S) proxy leaving from its registered static IP, and
#: that IP) and a registered algo allowed above 10 orders a second (its id and registered rate)
ANGEL_ONE_VENUE = VenueSpec(
    "angelone",
    "Angel One",
    ("api_key", "client_code", "pin", "totp_secret"),
    optional_fields=("egress_proxy", "static_ip", "algo_id", "algo_orders_per_second"),
)
#: the trading PIN Angel One issues
PIN_PATTERN = r"\d{4,8}"

# -- hosts -----------------------------------------------------------------------------------------

REST_ROOT = "https://apiconnect.angelone.in"
ORDER_UPDATES_URL = "wss://tns.angelone.in/smart-order-update"
SCRIP_MASTER_URL = "https://margincalculator.angelbroking.com/OpenAPI_File/files/OpenAPIScripMaster.json"
REQUEST_TIMEOUT_SECONDS = 7.0

# -- limits ----------------------------------------------------------------------------------------

#: logins, shared by every account of the process: 1 a second, a little margin for clock jitter
LOGIN_LIMITS = (RateLimit(1, 1.1),)
#: placeOrder, per account
PLACE_ORDER_LIMITS = (RateLimit(20, 1.0), RateLimit(500, 60.0), RateLimit(1000, 3600.0))
#: the exchanges' threshold since 1 April 2026: 10 orders a second per client and exchange segment
#: (places, modifications, cancellations) unless the algo is registered (docs/research/angelone.md §1);
#: the window has a margin for the time requests take to reach the broker
ORDERS_PER_SECOND_THRESHOLD = 10
SEGMENT_ORDER_WINDOW_SECONDS = 1.1
#: order-book reads of a master's listener: 1 a second
ORDER_BOOK_POLL_SECONDS = 1.0
#: reads per client, by SDK method (SmartAPI forum "Changes in API Rate Limit",
#: docs/research/angelone.md §2): getOrderBook, getTradeBook, getPosition and getHolding 1 a second; the quote
#: (getMarketData) and getLtpData 10 a second, 500 a minute, 5000 an hour. Each window has a margin
#: for the time requests take to reach the broker. Shared by every venue, listener and session of
#: the client.
_QUOTES = (RateLimit(10, 1.1), RateLimit(500, 61.0), RateLimit(5000, 3601.0))
READ_LIMITS: dict[str, tuple[RateLimit, ...]] = {
    "orderBook": (RateLimit(1, 1.1),),
    "tradeBook": (RateLimit(1, 1.1),),
    "position": (RateLimit(1, 1.1),),
    "holding": (RateLimit(1, 1.1),),
    "getMarketData": _QUOTES,
    "ltpData": _QUOTES,
}

# -- answers ---------------------------------------------------------------------------------------

#: answers meaning "this session is no longer valid": log in again, then retry once
SESSION_ERROR_CODES = frozenset({"AG8001", "AG8002", "AG8003", "AB8050", "AB8051", "AB1010", "AB1011"})
TEMPORARY_ERROR_CODES = frozenset({"AB1004", "AB1007", "AB2000", "AB2001"})
PERMISSION_ERROR_CODES = frozenset({"AB1005", "AB1006", "AB2002"})
INVALID_ORDER_ERROR_CODES = frozenset({"AB1008", "AB1012", "AB4008"})
UNKNOWN_SYMBOL_ERROR_CODES = frozenset({"AB1009", "AB1018"})
RATE_LIMIT_TEXT = "exceeding access rate"
#: SmartAPI's "… not found" answers (its error table: AB1013 order, AB1014 trade, AB1015 holding,
#: AB1016 position): an answer about the order, not the session
NOT_FOUND_ERROR_CODES = frozenset({"AB1013", "AB1014", "AB1015", "AB1016"})

# -- sessions --------------------------------------------------------------------------------------

#: Angel One ends every session once a day, early in the morning India time
DAILY_LOGOUT_IST = time(5, 0)
#: a regular order is not sent in the last seconds of a session: it would reach the exchange after
#: the close (the time a request takes, and the exchange's clock against ours)
LAST_ORDER_MARGIN = timedelta(seconds=15)
#: a session is renewed this long before its token expires
SESSION_REFRESH_MARGIN = timedelta(minutes=30)
#: retries of a request refused for rate, and the first backoff (doubled each time)
RATE_LIMIT_RETRIES = 3
RATE_LIMIT_BACKOFF_SECONDS = 0.5

# -- orders ----------------------------------------------------------------------------------------


class ProductType(enum.StrEnum):
    INTRADAY = "INTRADAY"
    DELIVERY = "DELIVERY"
    CARRYFORWARD = "CARRYFORWARD"
    MARGIN = "MARGIN"


#: our order types as Angel One's (variety, order type)
#: the variety of an after-market order (docs/research/angelone.md §2: NORMAL, STOPLOSS, AMO, ROBO)
AMO_VARIETY = "AMO"
ORDER_TYPES = {
    OrderType.LIMIT: ("NORMAL", "LIMIT"),
    OrderType.STOP_LIMIT: ("STOPLOSS", "STOPLOSS_LIMIT"),
}
#: a master's Angel One order types as ours
MASTER_ORDER_TYPES = {
    "MARKET": OrderType.MARKET,
    "LIMIT": OrderType.LIMIT,
    "STOPLOSS_LIMIT": OrderType.STOP_LIMIT,
    "STOPLOSS_MARKET": OrderType.STOP_MARKET,
}
ORDERTAG_MAX_LENGTH = 20
ANGEL_TIME_FORMAT = "%d-%b-%Y %H:%M:%S"  # "05-Jun-2024 10:35:49", India time
PRICE_PLACES = Decimal("0.0001")

# -- instruments -----------------------------------------------------------------------------------

IST = timezone(timedelta(hours=5, minutes=30), "IST")
SUPPORTED_EXCHANGES = frozenset({"NSE", "BSE", "NFO", "MCX"})
PAISE_PER_RUPEE = Decimal(100)
#: after a failed daily reload, keep serving yesterday's list and try again this much later
RELOAD_RETRY_DELAY = timedelta(minutes=5)
DOWNLOAD_TIMEOUT_SECONDS = 60
#: the scrip master is republished early each morning; reloaded then
INSTRUMENTS_RELOAD_AT_IST = time(8, 30)
#: the session refresh job is cheap when nothing is due, hence often: it catches the daily logout
SESSION_REFRESH_EVERY = timedelta(minutes=5)
