"""The project's own error types.

``UserError`` carries a plain-language message safe to show a user (the bot's single
error decorator turns it into a reply). ``VenueError`` and its subclasses are what every
venue adapter maps vendor errors into, so the engine decides on retries by type only.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.model import SkipReason


class CopytradeError(Exception):
    """Base of every error this project raises on purpose."""


class UserError(CopytradeError):
    """Bad input or a refused action; the message is meant for the user and holds no secret."""


class NotFound(UserError):
    pass


class UnknownMaster(NotFound):
    """The master asked for does not exist, is retired, or is not listed."""


class AlreadyFollowing(UserError):
    """The account already copies this master (a stopped follow may be started again)."""


class FollowStopped(UserError):
    """The follow is stopped: it takes no change until the master is followed again."""

    def __init__(self) -> None:
        super().__init__("this follow is stopped; follow the master again to copy it")


class InvalidFollowSettings(UserError):
    """A follow setting is unknown or out of its bounds; nothing was changed."""


class ConfigError(CopytradeError):
    """A setting is missing or malformed; the message names the variable."""


class VaultError(CopytradeError):
    """A credential cannot be encrypted or decrypted with the configured keys."""


class VenueError(CopytradeError):
    """An error answered by (or on the way to) a venue, already stripped of secrets."""

    retryable = False


class AuthenticationError(VenueError):
    """The key is wrong, expired or revoked: the follow is paused and the user told."""


class PermissionDenied(VenueError):
    """The key authenticates but may not do this (no trading permission, IP not whitelisted)."""


class InsufficientFunds(VenueError):
    pass


class InvalidOrder(VenueError):
    """The venue refused the order's parameters (filters, precision, duplicate client id)."""


class UnknownSymbol(VenueError):
    pass


class RateLimited(VenueError):
    retryable = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TemporaryError(VenueError):
    """Network trouble, 5xx, maintenance: safe to retry when the order surely was not placed."""

    retryable = True


class NotAdmitted(VenueError):
    """The venue's own rules refuse the order before anything is sent (its market is closed, its
    price is outside the day's band): recorded as a skip with ``reason`` (a ``SkipReason`` value)
    and the numbers in the message, never as a failure."""

    def __init__(self, reason: SkipReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class DuplicateOrder(VenueError):
    """The venue already holds an order with this client order id (Binance -4116 "clientOrderId is
    duplicated", spot -2010 "Duplicate order sent.", ccxt's ``DuplicateOrderId``). The order exists:
    the sender looks it up and follows it, never records it as failed."""


class NotSent(VenueError):
    """The adapter refused to send the request at all (too little of its send deadline was left to
    sign it): nothing reached the venue, so it is safe to fence and send again."""

    retryable = True


class OrderStatusUnknown(VenueError):
    """The request may or may not have reached the venue (a timeout after sending).

    Never retried blindly: the engine first looks the order up by client order id.
    """


def error_code(exc: BaseException) -> str:
    """A stable snake_case code for an error, stored with failed copies: ``InsufficientFunds``
    becomes ``insufficient_funds``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()
