"""What every Angel One account of the process shares: endpoints, the login throttle, the
instrument master and one session per account (which the scheduler refreshes)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from datetime import datetime
from typing import Any

from core.errors import VenueError
from core.model import utcnow
from core.throttle import RateLimit, Throttle
from core.venues.angelone.constants import (
    LOGIN_LIMITS,
    ORDERS_PER_SECOND_THRESHOLD,
    READ_LIMITS,
    SEGMENT_ORDER_WINDOW_SECONDS,
)
from core.venues.angelone.credentials import AngelOneCredentials, AngelOneEndpoints
from core.venues.angelone.gates import RequestGate
from core.venues.angelone.instruments import InstrumentMaster
from core.venues.angelone.session import AngelOneSession
from core.venues.angelone.sessions import TradingCalendar
from core.venues.angelone.venue import AngelOneVenue

log = logging.getLogger(__name__)


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
        login_limiter: Throttle | None = None,
        executor: Executor | None = None,
        session_options: Mapping[str, Any] | None = None,
        clock: Callable[[], datetime] = utcnow,
        calendar: TradingCalendar | None = None,
    ) -> None:
        self.endpoints = endpoints or AngelOneEndpoints()
        self.instruments = instruments or InstrumentMaster(self.endpoints.scrip_master_url)
        self.login_limiter = login_limiter or Throttle(LOGIN_LIMITS)
        self._executor = executor
        self._session_options = dict(session_options or {})
        self._sessions: dict[tuple[str, str], AngelOneSession] = {}
        self._segment_gates: dict[tuple[str, str], RequestGate] = {}
        self._read_gates: dict[tuple[str, str], RequestGate] = {}
        #: the market's clock: sessions, after-market windows and the close are judged by it
        self.clock = clock
        self.calendar = calendar or TradingCalendar.packaged()

    def segment_gate(self, credentials: AngelOneCredentials, exchange: str) -> RequestGate:
        """The one throttle of a client's order requests in one exchange segment, shared by every
        venue and session of that client: 10 a second (the exchanges' threshold since April 2026),
        or the rate of the client's registered algo."""
        key = (credentials.client_code, exchange)
        if key not in self._segment_gates:
            rate = credentials.algo_orders_per_second or ORDERS_PER_SECOND_THRESHOLD
            self._segment_gates[key] = RequestGate([RateLimit(rate, SEGMENT_ORDER_WINDOW_SECONDS)])
        return self._segment_gates[key]

    def read_gate(self, client_code: str, method: str) -> RequestGate | None:
        """The one gate of a client's reads through SDK ``method`` (order book, trade book,
        positions, quotes: SmartAPI's limits table), shared by every venue, listener and session of
        the client; ``None`` for a method SmartAPI does not limit apart."""
        limits = READ_LIMITS.get(method)
        if limits is None:
            return None
        key = (client_code, method)
        if key not in self._read_gates:
            self._read_gates[key] = RequestGate(limits)
        return self._read_gates[key]

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
                read_gate=functools.partial(self.read_gate, credentials.client_code),
                **self._session_options,
            )
        return self._sessions[key]

    def venue(self, credentials: AngelOneCredentials | Mapping[str, str], **options: Any) -> AngelOneVenue:
        """The venue factory: one ``AngelOneVenue`` for a stored credential dict
        ``{api_key, client_code, pin, totp_secret}``; ``options`` as ``AngelOneVenue``'s."""
        if not isinstance(credentials, AngelOneCredentials):
            credentials = AngelOneCredentials.from_mapping(credentials)
        return AngelOneVenue(
            self.session(credentials),
            self.instruments,
            segment_gate=functools.partial(self.segment_gate, credentials),
            calendar=self.calendar,
            clock=self.clock,
            **options,
        )

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
