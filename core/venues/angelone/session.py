"""One Angel One account's SmartAPI session: login (spaced by the shared login throttle),
refresh before expiry and after the daily logout, and every call run in a worker thread."""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import json
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from datetime import UTC, datetime, time, timedelta
from typing import Any

from core.errors import AuthenticationError, RateLimited
from core.model import utcnow
from core.retry import ExponentialBackoff, retry
from core.throttle import Throttle
from core.venues.angelone.constants import (
    DAILY_LOGOUT_IST,
    IST,
    RATE_LIMIT_BACKOFF_SECONDS,
    RATE_LIMIT_RETRIES,
    SESSION_REFRESH_MARGIN,
)
from core.venues.angelone.credentials import AngelOneCredentials, AngelOneEndpoints, SecretRedactor
from core.venues.angelone.errors import RateLimitAnswer, SessionRejected, map_exception, raise_for_refusal
from core.venues.angelone.gates import RequestGate
from core.venues.angelone.sdk import OrderUpdateSocket, QuietSmartConnect

log = logging.getLogger(__name__)


def _jwt_expiry(jwt: str) -> datetime | None:
    """The ``exp`` claim of a JWT, read without verification (only to schedule a refresh)."""
    try:
        payload = jwt.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return datetime.fromtimestamp(int(claims["exp"]), UTC)
    except (IndexError, ValueError, KeyError, TypeError, binascii.Error):
        return None


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
        login_limiter: Throttle,
        executor: Executor | None = None,
        clock: Callable[[], datetime] = utcnow,
        daily_logout_ist: time = DAILY_LOGOUT_IST,
        refresh_margin: timedelta = SESSION_REFRESH_MARGIN,
        rate_limit_retries: int = RATE_LIMIT_RETRIES,
        backoff_base: float = RATE_LIMIT_BACKOFF_SECONDS,
        read_gate: Callable[[str], RequestGate | None] = lambda method: None,
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
        self._read_gate = read_gate
        self._rate_limit_backoff = ExponentialBackoff(backoff_base)
        self._secrets = SecretRedactor(credentials)
        self._client: QuietSmartConnect | None = None
        self._generation = 0  # bumped by every successful login
        self._logged_in_at: datetime | None = None
        self._expires_at: datetime | None = None
        self._login_lock = asyncio.Lock()

    @property
    def client_code(self) -> str:
        return self._credentials.client_code

    @property
    def has_egress(self) -> bool:
        """True when the account's requests leave through its own egress (its registered static IP)."""
        return self._credentials.egress_proxy is not None

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
        await self._login_limiter.acquire()
        endpoints = self._endpoints
        client = QuietSmartConnect(
            self._credentials.api_key,
            root=endpoints.rest_root,
            timeout=endpoints.request_timeout,
            public_ip=self._credentials.static_ip or endpoints.public_ip,
            proxy=self._credentials.egress_proxy,
            egress=endpoints.egress,
        )
        operation = f"logging in client {self.client_code}"
        try:
            try:
                answer = await self._run(
                    client.generateSession, self.client_code, self._credentials.pin, self._credentials.current_totp()
                )
            except Exception as exc:
                raise map_exception(exc, operation, placing=False) from None
            if not isinstance(answer, Mapping) or answer.get("status") is not True or not client.access_token:
                raise_for_refusal(answer, operation, placing=False, redact=self.redact, login=True)
        except RateLimitAnswer:
            raise RateLimited(f"Angel One rate limit hit while {operation}", retry_after=self._backoff_base) from None
        except SessionRejected:
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
        """Run SDK ``method`` and return its successful answer. A read limited by SmartAPI (the
        books, positions, quotes) waits for the client's read gate first.

        ``operation`` words the error messages ("placing an order"). With ``placing``, a failure
        after the request may have reached Angel One raises ``OrderStatusUnknown``.
        """
        logged_in_again = False

        async def call_logged_in() -> Mapping[str, Any]:
            nonlocal logged_in_again
            while True:
                await self.ensure_logged_in()
                generation, client = self._generation, self._client
                assert client is not None  # set by ensure_logged_in, with no await in between
                try:
                    gate = self._read_gate(method)
                    if gate is None:
                        return await self._call_once(client, operation, method, args, placing)
                    async with gate.slot():  # SmartAPI's per-client read limits (every attempt counts)
                        return await self._call_once(self._client or client, operation, method, args, placing)
                except SessionRejected:
                    if logged_in_again:
                        raise AuthenticationError(
                            f"Angel One refused a fresh session of client {self.client_code} while {operation}"
                        ) from None
                    logged_in_again = True
                    await self._login_after_rejection(generation)

        def log_retry(error: Exception, delay: float) -> None:
            log.info("Angel One rate limit while %s; retrying in %.2f s", operation, delay)

        try:
            return await retry(
                call_logged_in,
                attempts=1 + self._rate_limit_retries,
                backoff=self._rate_limit_backoff,
                retryable=lambda error: isinstance(error, RateLimitAnswer),
                on_retry=log_retry,
            )
        except RateLimitAnswer:
            retry_after = self._rate_limit_backoff.delay(self._rate_limit_retries)
            raise RateLimited(f"Angel One rate limit hit while {operation}", retry_after=retry_after) from None

    async def _call_once(
        self, client: QuietSmartConnect, operation: str, method: str, args: tuple[Any, ...], placing: bool
    ) -> Mapping[str, Any]:
        try:
            answer = await self._run(getattr(client, method), *args)
        except Exception as exc:
            raise map_exception(exc, operation, placing) from None
        if isinstance(answer, Mapping) and answer.get("status") is True:
            return answer
        raise_for_refusal(answer, operation, placing=placing, redact=self.redact)

    async def _run(self, function: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(function, *args))

    # -- order updates ----------------------------------------------------------------------------

    def order_update_socket(
        self, *, on_open: Callable[[], object], on_message: Callable[[str], object], on_close: Callable[[], object]
    ) -> OrderUpdateSocket:
        """A socket for this account's order updates, carrying the current session's tokens, through
        the account's egress like its REST requests: Angel One documents the static-IP check for
        order execution only, NSE's standard for all API access (docs/research/angelone.md §1), and
        a socket leaving from another client's registered address could look like a shared IP."""
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
            proxy=self._credentials.egress_proxy,
        )
