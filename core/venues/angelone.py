"""Angel One (SmartAPI) accounts: sessions, order placement and account reads.

smartapi-python 1.5.5 is synchronous and has two hazards this module contains:

* importing it calls a public IP-lookup service with no timeout, so ``import_smartapi`` refuses
  network access for the duration of the import;
* its logger writes request bodies and headers (PIN, TOTP, API key, JWT) to ``./logs`` on any
  error, so the SDK's own constructors (which set that file up) are never run and its module
  loggers are replaced by a muted one. Every message this module produces is built from the
  answer's code and text with the account's secrets redacted, never from an SDK exception.

Every SDK call runs in a worker thread. One ``AngelOneAccounts`` object per process holds what the
accounts share: the endpoints, the login limiter (Angel One allows one login per second), the
instrument master and the sessions that the scheduler refreshes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import enum
import functools
import hashlib
import importlib
import itertools
import json
import logging
import re
import socket
import sys
import threading
import time as time_module
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from types import ModuleType
from typing import Any, NamedTuple, NoReturn

import pyotp
import requests
import websocket

from core.errors import (
    AuthenticationError,
    InsufficientFunds,
    InvalidOrder,
    OrderStatusUnknown,
    PermissionDenied,
    RateLimited,
    TemporaryError,
    UnknownSymbol,
    UserError,
    VenueError,
)
from core.model import CopyStatus, MarketRules, OrderAck, OrderIntent, OrderType, utcnow
from core.venues.angelone_instruments import IST, SCRIP_MASTER_URL, Instrument, InstrumentMaster
from core.venues.base import Position, Venue

log = logging.getLogger(__name__)

# -- constants ---------------------------------------------------------------------------------

REST_ROOT = "https://apiconnect.angelone.in"
ORDER_UPDATES_URL = "wss://tns.angelone.in/smart-order-update"
LOGIN_SPACING_SECONDS = 1.1  # Angel One: 1 login per second; a little margin for clock jitter
#: placeOrder limits per account (requests, window in seconds)
PLACE_ORDER_LIMITS: tuple[tuple[int, float], ...] = ((20, 1.0), (500, 60.0), (1000, 3600.0))
ORDERTAG_MAX_LENGTH = 20
#: answers meaning "this session is no longer valid": log in again, then retry once
SESSION_ERROR_CODES = frozenset({"AG8001", "AG8002", "AG8003", "AB8050", "AB8051", "AB1010", "AB1011"})
TEMPORARY_ERROR_CODES = frozenset({"AB1004", "AB1007", "AB2000", "AB2001"})
PERMISSION_ERROR_CODES = frozenset({"AB1005", "AB1006", "AB2002"})
INVALID_ORDER_ERROR_CODES = frozenset({"AB1008", "AB1012", "AB4008"})
UNKNOWN_SYMBOL_ERROR_CODES = frozenset({"AB1009", "AB1018"})
RATE_LIMIT_TEXT = "exceeding access rate"


# -- the guarded SDK import --------------------------------------------------------------------


class SmartApiSdk(NamedTuple):
    SmartConnect: type
    SmartWebSocketOrderUpdate: type
    exceptions: ModuleType


_SDK_IMPORT_LOCK = threading.Lock()
_MUTED_SDK_LOGGER_NAME = "copytrade.smartapi.muted"


def _refuse_network(*args: Any, **kwargs: Any) -> Any:
    raise requests.ConnectionError("network access is refused while smartapi-python is imported")


@contextlib.contextmanager
def _network_refused() -> Iterator[None]:
    """Refuse HTTP and name lookups for the import only (smartConnect.py runs an IP lookup at class
    definition; it falls back to fixed addresses when the lookup fails)."""
    patched = [(requests, "get"), (socket, "gethostbyname"), (socket, "getaddrinfo"), (socket, "create_connection")]
    originals = [getattr(module, name) for module, name in patched]
    for module, name in patched:
        setattr(module, name, _refuse_network)
    try:
        yield
    finally:
        for (module, name), original in zip(patched, originals, strict=True):
            setattr(module, name, original)


def _muted_logger() -> logging.Logger:
    muted = logging.getLogger(_MUTED_SDK_LOGGER_NAME)
    muted.propagate = False
    muted.disabled = True
    if not muted.handlers:
        muted.addHandler(logging.NullHandler())
    return muted


def import_smartapi() -> SmartApiSdk:
    """Import smartapi-python without network access and with its loggers muted.

    The SDK logs full requests (credentials included) through logzero; its modules' ``logger`` is
    swapped for a disabled logger, so nothing of it reaches a handler or a file.
    """
    with _SDK_IMPORT_LOCK:
        if "SmartApi.smartConnect" not in sys.modules:
            import logzero

            was_disabled = logzero.logger.disabled
            logzero.logger.disabled = True  # the failed lookup is logged at import; nothing to say
            try:
                with _network_refused():
                    importlib.import_module("SmartApi.smartConnect")
            finally:
                logzero.logger.disabled = was_disabled
        connect_module = sys.modules["SmartApi.smartConnect"]
        order_update_module = importlib.import_module("SmartApi.smartWebSocketOrderUpdate")
        exceptions = importlib.import_module("SmartApi.smartExceptions")
        muted = _muted_logger()
        for module in (connect_module, order_update_module):
            module.logger = muted
        logging.getLogger(connect_module.__name__).setLevel(logging.CRITICAL)  # its debug request log
    return SmartApiSdk(connect_module.SmartConnect, order_update_module.SmartWebSocketOrderUpdate, exceptions)


_SDK = import_smartapi()


class _QuietSmartConnect(_SDK.SmartConnect):  # type: ignore[misc,name-defined]
    """SmartConnect without its constructor's side effects (a ``./logs`` folder and a logzero file
    handler that records credentials) and with a configurable REST root and public IP header."""

    def __init__(self, api_key: str, *, root: str, timeout: float, public_ip: str | None) -> None:
        self.debug = False
        self.api_key = api_key
        self.privateKey = api_key
        self.session_expiry_hook = None
        self.disable_ssl = False
        self.access_token = None
        self.refresh_token = None
        self.feed_token = None
        self.userId = None
        self.proxies: dict[str, str] = {}
        self.root = root
        self.timeout = timeout
        self.Authorization = None
        self.reqsession = requests
        if public_ip:
            self.clientPublicIp = public_ip

    def getProfile(self, refreshToken: str | None = None) -> Any:  # noqa: N802 (SDK name)
        """The API identifies the user by the Authorization header. The SDK also sends the refresh
        token as a query string, which would put it in URLs and urllib3's debug log."""
        return self._getRequest("api.user.profile")


class OrderUpdateSocket(_SDK.SmartWebSocketOrderUpdate):  # type: ignore[misc,name-defined]
    """SmartAPI's order-update websocket with callbacks instead of logging, no ``./logs`` folder,
    verified TLS (the SDK turns certificate checks off) and no built-in retry: the listener owns
    reconnection and its backoff. ``connect()`` blocks until the socket closes: run it in a thread."""

    def __init__(
        self,
        url: str,
        *,
        auth_token: str,
        api_key: str,
        client_code: str,
        feed_token: str,
        on_open: Callable[[], None],
        on_message: Callable[[str], None],
        on_close: Callable[[], None],
    ) -> None:
        self.WEBSOCKET_URI = url
        self.auth_token = auth_token
        self.api_key = api_key
        self.client_code = client_code
        self.feed_token = feed_token
        self.wsapp = None
        self._notify_open = on_open
        self._notify_message = on_message
        self._notify_close = on_close
        self._closing = threading.Event()

    def connect(self) -> None:
        if self._closing.is_set():
            return
        headers = {
            "Authorization": self.auth_token,
            "x-api-key": self.api_key,
            "x-client-code": self.client_code,
            "x-feed-token": self.feed_token,
        }
        self.wsapp = websocket.WebSocketApp(
            self.WEBSOCKET_URI,
            header=headers,
            on_open=self.on_open,
            on_message=self.on_message,
            on_error=self.on_error,
            on_close=self.on_close,
        )
        self.wsapp.run_forever(ping_interval=self.HEARTBEAT_INTERVAL_SECONDS)

    def on_open(self, wsapp: Any) -> None:
        if self._closing.is_set():
            wsapp.close()
            return
        self._notify_open()

    def on_message(self, wsapp: Any, message: Any) -> None:
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        self._notify_message(message)

    def on_error(self, wsapp: Any, error: Exception) -> None:
        # the error text may echo the handshake; only its type is kept
        log.info("Angel One order-update socket error: %s", type(error).__name__)

    def on_close(self, wsapp: Any, close_status_code: Any, close_msg: Any) -> None:
        self._notify_close()

    def retry_connect(self) -> None:
        """Disabled: the SDK's version sleeps 10 s in the socket thread and recurses."""

    def close_connection(self) -> None:
        self._closing.set()
        if self.wsapp is not None:
            self.wsapp.close()


# -- credentials and configuration ---------------------------------------------------------------


@dataclass(frozen=True)
class AngelOneCredentials:
    """What one Angel One account logs in with. ``repr`` shows the client code only."""

    api_key: str = field(repr=False)
    client_code: str
    pin: str = field(repr=False)
    totp_secret: str = field(repr=False)

    REQUIRED = ("api_key", "client_code", "pin", "totp_secret")

    @classmethod
    def from_mapping(cls, values: Mapping[str, str]) -> AngelOneCredentials:
        """Build from a stored credential dict; ``UserError`` names what is missing or malformed."""
        missing = [key for key in cls.REQUIRED if not str(values.get(key) or "").strip()]
        if missing:
            raise UserError(f"Angel One credentials need {', '.join(cls.REQUIRED)}; missing: {', '.join(missing)}")
        secret = str(values["totp_secret"]).strip().replace(" ", "").upper()
        try:
            pyotp.TOTP(secret).now()
        except (binascii.Error, ValueError):
            raise UserError(
                "the Angel One TOTP secret is not valid: paste the base32 key shown under the QR code"
            ) from None
        return cls(
            str(values["api_key"]).strip(),
            str(values["client_code"]).strip().upper(),
            str(values["pin"]).strip(),
            secret,
        )

    def current_totp(self) -> str:
        return pyotp.TOTP(self.totp_secret).now()


@dataclass(frozen=True)
class AngelOneEndpoints:
    """Where the SDK connects (tests point these at a local fake)."""

    rest_root: str = REST_ROOT
    order_updates_url: str = ORDER_UPDATES_URL
    scrip_master_url: str = SCRIP_MASTER_URL
    request_timeout: float = 7.0
    #: the static IP registered with Angel One (sent as X-ClientPublicIP); the SDK sends a fixed one
    public_ip: str | None = None


# -- rate limiting -----------------------------------------------------------------------------


class SpacingLimiter:
    """Lets callers through at least ``interval`` seconds apart, in arrival order.

    One instance is shared by every account that must respect the same limit (logins: one per
    second). Each caller reserves the next free slot and sleeps outside the lock, so N logins take
    about N x interval instead of queueing behind each other's network time.
    """

    def __init__(
        self,
        interval: float,
        *,
        clock: Callable[[], float] = time_module.monotonic,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._sleep = sleep
        self._next_slot = float("-inf")
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval
        if slot > now:
            await self._sleep(slot - now)


class MultiWindowRateLimiter:
    """Sliding-window limits over several windows at once (Angel One's 20/s, 500/min, 1000/h).

    Waiters are served in arrival order; the lock is held while waiting so that a burst cannot
    overtake an earlier caller.
    """

    def __init__(
        self,
        limits: Sequence[tuple[int, float]] = PLACE_ORDER_LIMITS,
        *,
        clock: Callable[[], float] = time_module.monotonic,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self._limits = tuple(limits)
        self._horizon = max(window for _, window in self._limits)
        self._clock = clock
        self._sleep = sleep
        self._stamps: deque[float] = deque()
        self._lock = asyncio.Lock()

    def _wait_needed(self, now: float) -> float:
        while self._stamps and self._stamps[0] <= now - self._horizon:
            self._stamps.popleft()
        wait = 0.0
        for count, window in self._limits:
            in_window = [stamp for stamp in itertools.islice(reversed(self._stamps), count) if stamp > now - window]
            if len(in_window) >= count:
                wait = max(wait, in_window[-1] + window - now)
        return wait

    async def acquire(self) -> None:
        async with self._lock:
            while (wait := self._wait_needed(self._clock())) > 0:
                await self._sleep(wait)
            self._stamps.append(self._clock())


# -- answers and errors ------------------------------------------------------------------------


class _SessionRejected(Exception):
    """The API refused the session's token: log in again (once) and retry."""


class _RateLimitAnswer(Exception):
    """The API refused the request for rate: surely not executed, retry after a backoff."""


def _jwt_expiry(jwt: str) -> datetime | None:
    """The ``exp`` claim of a JWT, read without verification (only to schedule a refresh)."""
    try:
        payload = jwt.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return datetime.fromtimestamp(int(claims["exp"]), UTC)
    except (IndexError, ValueError, KeyError, TypeError, binascii.Error):
        return None


class _Secrets:
    """Redacts one account's secrets from any text that may reach a log or an exception."""

    def __init__(self, credentials: AngelOneCredentials) -> None:
        self._credentials = credentials
        self.tokens: list[str] = []

    def redact(self, text: str) -> str:
        credentials = self._credentials
        candidates = [credentials.api_key, credentials.pin, credentials.totp_secret, *self.tokens]
        now = int(time_module.time())
        totp = pyotp.TOTP(credentials.totp_secret)
        candidates += [totp.at(now + offset) for offset in (-30, 0, 30)]
        for secret in sorted({c for c in candidates if c and len(c) >= 4}, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


# -- sessions ----------------------------------------------------------------------------------


class AngelOneSession:
    """One account's SmartAPI client, logged in lazily and again when due.

    Calls go through ``call``, which runs the SDK in a worker thread, logs in again once (not in a
    loop) when the token is refused, backs off on rate-limit answers and maps every failure to
    ``core.errors`` with a message free of secrets.
    """

    def __init__(
        self,
        credentials: AngelOneCredentials,
        *,
        endpoints: AngelOneEndpoints,
        login_limiter: SpacingLimiter,
        executor: Executor | None = None,
        clock: Callable[[], datetime] = utcnow,
        daily_logout_ist: time = time(5, 0),
        refresh_margin: timedelta = timedelta(minutes=30),
        rate_limit_retries: int = 3,
        backoff_base: float = 0.5,
    ) -> None:
        self._credentials = credentials
        self._endpoints = endpoints
        self._login_limiter = login_limiter
        self._executor = executor
        self._clock = clock
        self._daily_logout_ist = daily_logout_ist
        self._refresh_margin = refresh_margin
        self._rate_limit_retries = rate_limit_retries
        self._backoff_base = backoff_base
        self._secrets = _Secrets(credentials)
        self._client: _QuietSmartConnect | None = None
        self._generation = 0  # bumped by every successful login
        self._logged_in_at: datetime | None = None
        self._expires_at: datetime | None = None
        self._login_lock = asyncio.Lock()

    @property
    def client_code(self) -> str:
        return self._credentials.client_code

    @property
    def endpoints(self) -> AngelOneEndpoints:
        return self._endpoints

    @property
    def logged_in(self) -> bool:
        return self._client is not None

    def redact(self, text: str) -> str:
        return self._secrets.redact(text)

    # -- login ----------------------------------------------------------------------------------

    async def ensure_logged_in(self) -> None:
        if self._client is None:
            async with self._login_lock:
                if self._client is None:
                    await self._login()

    async def login(self) -> None:
        """Log in now (validation, scheduled refresh), replacing any current session."""
        async with self._login_lock:
            await self._login()

    async def _login(self) -> None:
        await self._login_limiter.wait()
        endpoints = self._endpoints
        client = _QuietSmartConnect(
            self._credentials.api_key,
            root=endpoints.rest_root,
            timeout=endpoints.request_timeout,
            public_ip=endpoints.public_ip,
        )
        operation = f"logging in client {self.client_code}"
        try:
            try:
                answer = await self._run(
                    client.generateSession, self.client_code, self._credentials.pin, self._credentials.current_totp()
                )
            except Exception as exc:
                raise self._map_exception(exc, operation, placing=False) from None
            if not isinstance(answer, Mapping) or answer.get("status") is not True or not client.access_token:
                self._raise_for_refusal(answer, operation, placing=False, login=True)
        except _RateLimitAnswer:
            raise RateLimited(f"Angel One rate limit hit while {operation}", retry_after=self._backoff_base) from None
        except _SessionRejected:
            raise AuthenticationError(f"Angel One refused the login of client {self.client_code}") from None
        self._client = client
        self._generation += 1
        self._secrets.tokens = [t for t in (client.access_token, client.refresh_token, client.feed_token) if t]
        self._logged_in_at = self._clock()
        self._expires_at = _jwt_expiry(client.access_token) or self._logged_in_at + timedelta(hours=24)
        log.info("Angel One client %s logged in", self.client_code)

    async def _login_after_rejection(self, rejected_generation: int) -> None:
        """Log in again unless a concurrent call already did since the rejected token was used."""
        async with self._login_lock:
            if self._generation == rejected_generation:
                log.info("Angel One refused the session of client %s; logging in again", self.client_code)
                await self._login()

    def refresh_due(self, now: datetime | None = None) -> bool:
        """True when the session nears its expiry or predates the latest daily logout."""
        if self._logged_in_at is None or self._expires_at is None:
            return False
        now = now or self._clock()
        if now >= self._expires_at - self._refresh_margin:
            return True
        now_ist = now.astimezone(IST)
        last_logout = datetime.combine(now_ist.date(), self._daily_logout_ist, IST)
        if last_logout > now_ist:
            last_logout -= timedelta(days=1)
        return self._logged_in_at < last_logout

    async def logout(self) -> None:
        """End the session at Angel One (best effort: called on shutdown)."""
        client = self._client
        if client is None:
            return
        self._client = None
        try:
            await self._run(client.terminateSession, self.client_code)
        except Exception as exc:  # shutting down: nothing to retry
            log.info("Angel One logout of client %s failed: %s", self.client_code, type(exc).__name__)

    # -- calls ----------------------------------------------------------------------------------

    async def call(self, operation: str, method: str, *args: Any, placing: bool = False) -> Mapping[str, Any]:
        """Run SDK ``method`` and return its successful answer.

        ``operation`` words the error messages ("placing an order"). With ``placing``, a failure
        after the request may have reached Angel One raises ``OrderStatusUnknown``.
        """
        logged_in_again = False
        rate_limited = 0
        while True:
            await self.ensure_logged_in()
            generation, client = self._generation, self._client
            assert client is not None  # set by ensure_logged_in, with no await in between
            try:
                return await self._call_once(client, operation, method, args, placing)
            except _SessionRejected:
                if logged_in_again:
                    raise AuthenticationError(
                        f"Angel One refused a fresh session of client {self.client_code} while {operation}"
                    ) from None
                logged_in_again = True
                await self._login_after_rejection(generation)
            except _RateLimitAnswer:
                delay = self._backoff_base * 2**rate_limited
                if rate_limited >= self._rate_limit_retries:
                    raise RateLimited(f"Angel One rate limit hit while {operation}", retry_after=delay) from None
                rate_limited += 1
                log.info("Angel One rate limit while %s; retrying in %.2f s", operation, delay)
                await asyncio.sleep(delay)

    async def _call_once(
        self, client: _QuietSmartConnect, operation: str, method: str, args: tuple[Any, ...], placing: bool
    ) -> Mapping[str, Any]:
        try:
            answer = await self._run(getattr(client, method), *args)
        except Exception as exc:
            raise self._map_exception(exc, operation, placing) from None
        if isinstance(answer, Mapping) and answer.get("status") is True:
            return answer
        self._raise_for_refusal(answer, operation, placing)

    async def _run(self, function: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(function, *args))

    def _map_exception(self, exc: Exception, operation: str, placing: bool) -> Exception:
        """Map a transport or SDK exception, never quoting it (URLs and bodies may hold tokens)."""
        kind = type(exc).__name__
        if isinstance(exc, _SDK.exceptions.DataException) and RATE_LIMIT_TEXT in str(exc).lower():
            return _RateLimitAnswer()
        if isinstance(exc, _SDK.exceptions.TokenException):
            return _SessionRejected()
        not_sent = isinstance(exc, requests.ConnectTimeout) or (
            isinstance(exc, requests.ConnectionError) and "NewConnectionError" in repr(exc.args)
        )
        if placing and not not_sent:
            return OrderStatusUnknown(f"Angel One did not answer while {operation} ({kind}); the order may exist")
        return TemporaryError(f"Angel One could not be reached while {operation} ({kind})")

    def _raise_for_refusal(self, answer: Any, operation: str, placing: bool, login: bool = False) -> NoReturn:
        if not isinstance(answer, Mapping):
            if placing:
                raise OrderStatusUnknown(f"Angel One gave no readable answer while {operation}")
            raise TemporaryError(f"Angel One gave no readable answer while {operation}")
        code = str(answer.get("errorcode") or answer.get("errorCode") or "").upper()
        message = self.redact(str(answer.get("message") or "no message"))
        text = f"Angel One refused {operation}: {message}" + (f" ({code})" if code else "")
        lowered = message.lower()
        if RATE_LIMIT_TEXT in lowered:
            raise _RateLimitAnswer()
        if code in SESSION_ERROR_CODES and not login:
            raise _SessionRejected()
        if code in TEMPORARY_ERROR_CODES:
            raise (OrderStatusUnknown(text + "; the order may exist") if placing else TemporaryError(text))
        if code in PERMISSION_ERROR_CODES or "whitelist" in lowered or "static ip" in lowered:
            raise PermissionDenied(text)
        if login:
            raise AuthenticationError(text)
        if code in UNKNOWN_SYMBOL_ERROR_CODES:
            raise UnknownSymbol(text)
        if "insufficient" in lowered or "margin" in lowered:
            raise InsufficientFunds(text)
        if placing or code in INVALID_ORDER_ERROR_CODES:
            raise InvalidOrder(text)
        raise TemporaryError(text)

    # -- order updates ----------------------------------------------------------------------------

    def order_update_socket(
        self, *, on_open: Callable[[], None], on_message: Callable[[str], None], on_close: Callable[[], None]
    ) -> OrderUpdateSocket:
        """A socket for this account's order updates, carrying the current session's tokens."""
        client = self._client
        if client is None:
            raise AuthenticationError(f"Angel One client {self.client_code} is not logged in")
        return OrderUpdateSocket(
            self._endpoints.order_updates_url,
            auth_token=f"Bearer {client.access_token}",
            api_key=self._credentials.api_key,
            client_code=self.client_code,
            feed_token=client.feed_token or "",
            on_open=on_open,
            on_message=on_message,
            on_close=on_close,
        )


# -- shared per-process resources ----------------------------------------------------------------


class AngelOneAccounts:
    """What every Angel One account of the process shares; create one, close it on shutdown.

    ``session`` returns one session per account (a master that is also a follower logs in once);
    ``refresh_due_sessions`` is the scheduler's job.
    """

    def __init__(
        self,
        endpoints: AngelOneEndpoints | None = None,
        *,
        instruments: InstrumentMaster | None = None,
        login_limiter: SpacingLimiter | None = None,
        executor: Executor | None = None,
        session_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.endpoints = endpoints or AngelOneEndpoints()
        self.instruments = instruments or InstrumentMaster(self.endpoints.scrip_master_url)
        self.login_limiter = login_limiter or SpacingLimiter(LOGIN_SPACING_SECONDS)
        self._executor = executor
        self._session_options = dict(session_options or {})
        self._sessions: dict[tuple[str, str], AngelOneSession] = {}

    def session(self, credentials: AngelOneCredentials | Mapping[str, str]) -> AngelOneSession:
        if not isinstance(credentials, AngelOneCredentials):
            credentials = AngelOneCredentials.from_mapping(credentials)
        key = (credentials.client_code, credentials.api_key)
        if key not in self._sessions:
            self._sessions[key] = AngelOneSession(
                credentials,
                endpoints=self.endpoints,
                login_limiter=self.login_limiter,
                executor=self._executor,
                **self._session_options,
            )
        return self._sessions[key]

    def venue(self, credentials: AngelOneCredentials | Mapping[str, str], **options: Any) -> AngelOneVenue:
        """The venue factory: one ``AngelOneVenue`` for a stored credential dict
        ``{api_key, client_code, pin, totp_secret}``; ``options`` as ``AngelOneVenue``'s."""
        return AngelOneVenue(self.session(credentials), self.instruments, **options)

    async def refresh_due_sessions(self) -> list[str]:
        """Log in again every session that nears expiry or predates the daily logout.

        Logins are spaced by the shared limiter. Returns the client codes refreshed; failures are
        logged and retried at the next run.
        """
        due = [session for session in self._sessions.values() if session.refresh_due()]
        results = await asyncio.gather(*(session.login() for session in due), return_exceptions=True)
        refreshed = []
        for session, result in zip(due, results, strict=True):
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                log.warning(
                    "Angel One session refresh for client %s failed: %s",
                    session.client_code,
                    result if isinstance(result, VenueError) else type(result).__name__,
                )
            else:
                refreshed.append(session.client_code)
        return refreshed

    async def close(self) -> None:
        await asyncio.gather(*(session.logout() for session in self._sessions.values()))


def register_jobs(
    scheduler: Any,
    accounts: AngelOneAccounts,
    *,
    refresh_every: timedelta = timedelta(minutes=5),
    instruments_reload_at_ist: time = time(8, 30),
) -> None:
    """Add the session refresh job and the daily instrument-list reload to an ``AsyncIOScheduler``.

    The refresh job is cheap when nothing is due (no request is made), hence the short interval: it
    catches the daily logout within minutes. The scrip master is republished early each morning.
    """
    scheduler.add_job(
        accounts.refresh_due_sessions,
        "interval",
        seconds=refresh_every.total_seconds(),
        id="angelone.refresh_sessions",
        replace_existing=True,
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        accounts.instruments.refresh,
        "cron",
        hour=instruments_reload_at_ist.hour,
        minute=instruments_reload_at_ist.minute,
        timezone=IST,
        id="angelone.reload_instruments",
        replace_existing=True,
        max_instances=1,
        coalesce=True,
    )


# -- the venue ---------------------------------------------------------------------------------


class ProductType(str, enum.Enum):
    INTRADAY = "INTRADAY"
    DELIVERY = "DELIVERY"
    CARRYFORWARD = "CARRYFORWARD"
    MARGIN = "MARGIN"


ORDER_TYPES = {
    OrderType.MARKET: ("NORMAL", "MARKET"),
    OrderType.LIMIT: ("NORMAL", "LIMIT"),
    OrderType.STOP_LIMIT: ("STOPLOSS", "STOPLOSS_LIMIT"),
    OrderType.STOP_MARKET: ("STOPLOSS", "STOPLOSS_MARKET"),
}


def ordertag_for(client_order_id: str) -> str:
    """The order tag Angel One stores with the order (max 20 characters, SEBI algo identification).

    A short alphanumeric client order id is used as is; anything else becomes ``ct`` plus 18 base32
    characters of its SHA-256, so the same id always gives the same tag (``fetch_order`` relies on it).
    """
    if len(client_order_id) <= ORDERTAG_MAX_LENGTH and re.fullmatch(r"[A-Za-z0-9]+", client_order_id):
        return client_order_id
    digest = base64.b32encode(hashlib.sha256(client_order_id.encode()).digest()).decode().lower()
    return "ct" + digest[: ORDERTAG_MAX_LENGTH - 2]


def whole_lots(quantity: Decimal, lot_size: Decimal, symbol: str) -> Decimal:
    """``quantity`` truncated to whole lots; ``InvalidOrder`` when that is less than one lot."""
    lots = (quantity / lot_size).to_integral_value(rounding=ROUND_DOWN)
    if lots < 1:
        raise InvalidOrder(f"quantity {quantity} of {symbol} is below one lot of {lot_size}")
    return lots * lot_size


def round_to_tick(price: Decimal, tick: Decimal) -> Decimal:
    return (price / tick).to_integral_value(rounding=ROUND_HALF_UP) * tick


def _decimal(value: Any) -> Decimal:
    """A JSON number or string as Decimal (via ``str``: the SDK decodes numbers as float)."""
    if value in (None, ""):
        return Decimal(0)
    return Decimal(str(value))


class AngelOneVenue(Venue):
    """One Angel One follower account.

    Orders carry an ``ordertag`` derived from the client order id; ``fetch_order`` finds them by
    it in the order book. The product type comes from ``follow_products[follow_id]`` or
    ``product``; the variety follows from the order type (stop orders need ``STOPLOSS``).
    """

    name = "angelone"

    def __init__(
        self,
        session: AngelOneSession,
        instruments: InstrumentMaster,
        *,
        product: ProductType = ProductType.INTRADAY,
        follow_products: Mapping[int, ProductType] | None = None,
        order_limiter: MultiWindowRateLimiter | None = None,
    ) -> None:
        self._session = session
        self._instruments = instruments
        self._product = ProductType(product)
        self._follow_products = {follow_id: ProductType(p) for follow_id, p in (follow_products or {}).items()}
        self._order_limiter = order_limiter or MultiWindowRateLimiter()

    @property
    def session(self) -> AngelOneSession:
        return self._session

    def _product_for(self, intent: OrderIntent) -> ProductType:
        """The master's product when the fill carried one, else the follow's, else the default."""
        if intent.product:
            try:
                return ProductType(intent.product.upper())
            except ValueError:
                log.warning("unknown Angel One product %r on a copy; using the configured one", intent.product)
        return self._follow_products.get(intent.follow_id, self._product)

    async def market(self, symbol: str) -> MarketRules:
        return (await self._instruments.instrument(symbol)).market_rules()

    async def symbols(self) -> frozenset[str]:
        return await self._instruments.symbols()

    async def equity(self) -> Decimal:
        answer = await self._session.call("reading the account's funds", "rmsLimit")
        data = answer.get("data") or {}
        if data.get("net") in (None, ""):
            raise TemporaryError("Angel One's funds answer had no net value")
        return _decimal(data["net"])

    async def positions(self) -> list[Position]:
        answer = await self._session.call("reading the positions", "position")
        positions = []
        for row in answer.get("data") or []:
            quantity = _decimal(row.get("netqty"))
            if quantity != 0:
                entry = _decimal(row.get("avgnetprice") or row.get("netprice"))
                positions.append(Position(f"{row['exchange']}:{row['tradingsymbol']}", quantity, entry or None))
        return positions

    async def validate(self) -> None:
        """Log in now, then read the profile and the funds: a key that works for both can trade."""
        await self._session.login()
        await self._session.call("reading the profile", "getProfile")
        await self.equity()

    async def place_order(self, intent: OrderIntent) -> OrderAck:
        instrument = await self._instruments.instrument(intent.symbol)
        params = self._order_params(intent, instrument)
        await self._order_limiter.acquire()
        answer = await self._session.call(
            f"placing an order for {intent.symbol}", "placeOrderFullResponse", params, placing=True
        )
        order_id = (answer.get("data") or {}).get("orderid")
        if not order_id:
            raise OrderStatusUnknown(f"Angel One accepted the order for {intent.symbol} without an order id")
        return OrderAck(str(order_id), intent.client_order_id, CopyStatus.PLACED)

    def _order_params(self, intent: OrderIntent, instrument: Instrument) -> dict[str, str]:
        if intent.order_type not in ORDER_TYPES:
            raise InvalidOrder(f"Angel One has no {intent.order_type.value} order type")
        variety, order_type = ORDER_TYPES[intent.order_type]
        quantity = whole_lots(intent.quantity, instrument.lot_size, intent.symbol)
        price = Decimal(0)
        trigger = Decimal(0)
        if intent.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            if intent.price is None:
                raise InvalidOrder(f"a {intent.order_type.value} order needs a price")
            price = round_to_tick(intent.price, instrument.tick_size)
        if intent.order_type in (OrderType.STOP_LIMIT, OrderType.STOP_MARKET):
            if intent.stop_price is None:
                raise InvalidOrder(f"a {intent.order_type.value} order needs a stop price")
            trigger = round_to_tick(intent.stop_price, instrument.tick_size)
        if intent.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) and price <= 0:
            raise InvalidOrder(
                f"price {intent.price} of {intent.symbol} is not positive on tick {instrument.tick_size}"
            )
        if intent.order_type in (OrderType.STOP_LIMIT, OrderType.STOP_MARKET) and trigger <= 0:
            raise InvalidOrder(
                f"stop price {intent.stop_price} of {intent.symbol} is not positive on tick {instrument.tick_size}"
            )
        return {
            "variety": variety,
            "tradingsymbol": instrument.trading_symbol,
            "symboltoken": instrument.token,
            "transactiontype": intent.side.value.upper(),
            "exchange": instrument.exchange,
            "ordertype": order_type,
            "producttype": self._product_for(intent).value,
            "duration": "IOC" if intent.time_in_force == "IOC" else "DAY",
            "price": str(price),
            "triggerprice": str(trigger),
            "squareoff": "0",
            "stoploss": "0",
            "quantity": str(int(quantity)),
            "ordertag": ordertag_for(intent.client_order_id),
        }

    async def price(self, symbol: str) -> Decimal:
        instrument = await self._instruments.instrument(symbol)
        answer = await self._session.call(
            "reading a price", "ltpData", instrument.exchange, instrument.trading_symbol, instrument.token
        )
        return _decimal((answer.get("data") or {}).get("ltp"))

    async def cancel_order(self, client_order_id: str, symbol: str) -> bool:
        tag = ordertag_for(client_order_id)
        answer = await self._session.call("looking an order up", "orderBook")
        resting = [
            row
            for row in answer.get("data") or []
            if row.get("ordertag") == tag
            and str(row.get("status") or "").lower() in ("open", "trigger pending", "open pending")
        ]
        if not resting:
            return False
        row = resting[-1]
        await self._session.call(
            "cancelling an order", "cancelOrder", str(row["orderid"]), str(row.get("variety") or "NORMAL")
        )
        return True

    async def fetch_order(self, client_order_id: str, symbol: str) -> OrderAck | None:
        tag = ordertag_for(client_order_id)
        answer = await self._session.call("looking an order up", "orderBook")
        matches = [row for row in answer.get("data") or [] if row.get("ordertag") == tag]
        if not matches:
            return None
        row = matches[-1]
        filled = _decimal(row.get("filledshares"))
        average = _decimal(row.get("averageprice"))
        status = str(row.get("status") or row.get("orderstatus") or "").lower()
        if status == "complete":
            copy_status = CopyStatus.FILLED
        elif status in ("rejected", "cancelled"):
            copy_status = CopyStatus.FILLED if filled > 0 else CopyStatus.FAILED
        else:
            copy_status = CopyStatus.PLACED
        return OrderAck(str(row["orderid"]), client_order_id, copy_status, filled, average if average > 0 else None)
