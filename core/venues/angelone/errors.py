"""SmartAPI's answers and exceptions mapped to the project's ``VenueError`` family at the edge.

Messages are built from the answer's code and text with the account's secrets redacted, never
from an SDK exception (its text may quote URLs and bodies holding tokens).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import requests

from core.errors import (
    AuthenticationError,
    InsufficientFunds,
    InvalidOrder,
    OrderStatusUnknown,
    PermissionDenied,
    TemporaryError,
    UnknownSymbol,
)
from core.venues.angelone.constants import (
    INVALID_ORDER_ERROR_CODES,
    NOT_FOUND_ERROR_CODES,
    PERMISSION_ERROR_CODES,
    RATE_LIMIT_TEXT,
    SESSION_ERROR_CODES,
    TEMPORARY_ERROR_CODES,
    UNKNOWN_SYMBOL_ERROR_CODES,
)
from core.venues.angelone.sdk import SDK
from core.venues.egress import EgressRefused


class SessionRejected(Exception):
    """The API refused the session's token: log in again (once) and retry."""


class OrderNotFound(InvalidOrder):
    """Angel One has no such order (AB1013) or it is no longer open: an answer, not a failure."""


class RateLimitAnswer(Exception):
    """The API refused the request for rate: surely not executed, retry after a backoff."""


def map_exception(exc: Exception, operation: str, placing: bool) -> Exception:
    """Map a transport or SDK exception, never quoting it (URLs and bodies may hold tokens)."""
    kind = type(exc).__name__
    if isinstance(exc, EgressRefused):
        return exc  # refused before anything was sent
    if isinstance(exc, SDK.exceptions.DataException) and RATE_LIMIT_TEXT in str(exc).lower():
        return RateLimitAnswer()
    if isinstance(exc, SDK.exceptions.TokenException):
        return SessionRejected()
    not_sent = isinstance(exc, requests.ConnectTimeout) or (
        isinstance(exc, requests.ConnectionError) and "NewConnectionError" in repr(exc.args)
    )
    if placing and not not_sent:
        return OrderStatusUnknown(f"Angel One did not answer while {operation} ({kind}); the order may exist")
    return TemporaryError(f"Angel One could not be reached while {operation} ({kind})")


def raise_for_refusal(
    answer: Any, operation: str, *, placing: bool, redact: Callable[[str], str], login: bool = False
) -> NoReturn:
    """Raise what a refused (or unreadable) answer means; ``redact`` cleans the venue's text."""
    if not isinstance(answer, Mapping):
        if placing:
            raise OrderStatusUnknown(f"Angel One gave no readable answer while {operation}")
        raise TemporaryError(f"Angel One gave no readable answer while {operation}")
    code = str(answer.get("errorcode") or answer.get("errorCode") or "").upper()
    message = redact(str(answer.get("message") or "no message"))
    text = f"Angel One refused {operation}: {message}" + (f" ({code})" if code else "")
    lowered = message.lower()
    if RATE_LIMIT_TEXT in lowered:
        raise RateLimitAnswer()
    if code in SESSION_ERROR_CODES and not login:
        raise SessionRejected()
    if code in TEMPORARY_ERROR_CODES:
        raise (OrderStatusUnknown(text + "; the order may exist") if placing else TemporaryError(text))
    if code in PERMISSION_ERROR_CODES or "whitelist" in lowered or "static ip" in lowered:
        raise PermissionDenied(text)
    if login:
        raise AuthenticationError(text)
    if code in NOT_FOUND_ERROR_CODES:
        raise OrderNotFound(text)
    if code in UNKNOWN_SYMBOL_ERROR_CODES:
        raise UnknownSymbol(text)
    if "insufficient" in lowered or "margin" in lowered:
        raise InsufficientFunds(text)
    if placing or code in INVALID_ORDER_ERROR_CODES:
        raise InvalidOrder(text)
    raise TemporaryError(text)
