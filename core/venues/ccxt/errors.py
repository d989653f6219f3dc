"""ccxt's exceptions mapped to the project's ``VenueError`` family at the adapter's edge, their
messages scrubbed of signatures and secrets."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import aiohttp
import ccxt

from core import errors
from core.venues.ccxt.constants import (
    BINANCE_CODE_PATTERN,
    BINANCE_CODES,
    BINANCE_EXPLANATIONS,
    BINANCE_FAMILY,
    DUPLICATE_ORDER_MESSAGE,
    REJECTED_API_KEY,
    STATUS_UNKNOWN_CODES,
    URL_QUERY_PATTERN,
)


def map_ccxt_error(
    exc: BaseException,
    *,
    exchange_id: str = "",
    placing_order: bool = False,
    key_worked: bool = False,
    retry_after: float | None = None,
    secrets: Iterable[str] = (),
) -> errors.VenueError:
    """Translate a ccxt exception into the project's ``VenueError`` family.

    ``placing_order``: every answer that may mean the order reached the matching engine becomes
    ``OrderStatusUnknown`` — timeouts, dropped connections, 5xx, Binance's "execution status
    unknown" codes (-1000, -1001, -1006, -1007) and any other ``OperationFailed`` — so the
    engine looks the client order id up before anything is sent again. Only answers that surely
    placed nothing (rate limits, -1021, rejections) are temporary or final. On reads the same
    answers are temporary and retried.

    ``DuplicateOrder``: -4116, -2010 "Duplicate order sent." and ccxt's ``DuplicateOrderId`` — the
    venue already holds an order with this client id.

    ``key_worked``: a signed call of this account succeeded before. Binance also answers -2015
    ("Invalid API-key, IP, or permissions") on a temporary ban, so after a working session it
    is ``RateLimited`` (ccxt does the same for spot only: binance.py 12636-12641, 12686-12688).

    The message is scrubbed of query strings (signatures) and of every value in ``secrets``.
    """
    message = scrub(str(exc) or type(exc).__name__, secrets)
    if isinstance(exc, errors.VenueError):
        return exc
    code = binance_code(message) if exchange_id in BINANCE_FAMILY else None
    if code in STATUS_UNKNOWN_CODES:
        return errors.OrderStatusUnknown(message) if placing_order else errors.TemporaryError(message)
    if isinstance(exc, ccxt.DuplicateOrderId) or (code == -2010 and DUPLICATE_ORDER_MESSAGE in message):
        return errors.DuplicateOrder(message)  # the order exists: looked up, never recorded as failed
    if isinstance(exc, ccxt.InsufficientFunds):
        return errors.InsufficientFunds(message)
    if code == REJECTED_API_KEY and (key_worked or isinstance(exc, ccxt.DDoSProtection)):
        return errors.RateLimited(message, retry_after)
    if code is not None and code in BINANCE_CODES:
        target = BINANCE_CODES[code]
        if code in BINANCE_EXPLANATIONS:
            message = f"{BINANCE_EXPLANATIONS[code]}: {message}"
        if target is errors.RateLimited:
            return errors.RateLimited(message, retry_after)
        return target(message)
    if isinstance(exc, (ccxt.PermissionDenied, ccxt.AccountSuspended)):
        return errors.PermissionDenied(message)
    if isinstance(exc, ccxt.AuthenticationError):
        return errors.AuthenticationError(message)
    if isinstance(exc, ccxt.BadSymbol):
        return errors.UnknownSymbol(message)
    if isinstance(exc, (ccxt.InvalidOrder, ccxt.BadRequest)):
        return errors.InvalidOrder(message)
    if isinstance(exc, (ccxt.RateLimitExceeded, ccxt.DDoSProtection)):
        return errors.RateLimited(message, retry_after)
    if isinstance(exc, ccxt.NetworkError):
        if placing_order and _may_have_reached_venue(exc):
            return errors.OrderStatusUnknown(message)
        return errors.TemporaryError(message)
    if isinstance(exc, ccxt.OperationFailed):  # e.g. BadResponse: an answer we could not read
        return errors.OrderStatusUnknown(message) if placing_order else errors.TemporaryError(message)
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ClientError)):
        return errors.OrderStatusUnknown(message) if placing_order else errors.TemporaryError(message)
    return errors.VenueError(message)


def _may_have_reached_venue(exc: BaseException) -> bool:
    """False only when the connection was never opened: then the order surely was not sent."""
    return not isinstance(exc.__cause__, aiohttp.ClientConnectorError)


def retry_after_seconds(header: str | None) -> float | None:
    try:
        return float(header) if header is not None else None
    except ValueError:
        return None  # an HTTP date: rare on exchanges, the engine's own backoff applies


def binance_code(message: str) -> int | None:
    match = BINANCE_CODE_PATTERN.search(message)
    return int(match.group(1)) if match else None


def scrub(message: str, secrets: Iterable[str]) -> str:
    message = URL_QUERY_PATTERN.sub(r"\1://\2?…", message)
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return message
