"""What every Angel One account of the process shares: endpoints, the login throttle, the
instrument master and one session per account (which the scheduler refreshes)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Mapping
from concurrent.futures import Executor
from typing import Any

from core.errors import VenueError
from core.throttle import RateLimit, Throttle
from core.venues.angelone.constants import LOGIN_LIMITS, ORDERS_PER_SECOND_THRESHOLD, SEGMENT_ORDER_WINDOW_SECONDS
from core.venues.angelone.credentials import AngelOneCredentials, AngelOneEndpoints
from core.venues.angelone.instruments import InstrumentMaster
from core.venues.angelone.session import AngelOneSession
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
    ) -> None:
        self.endpoints = endpoints or AngelOneEndpoints()
        self.instruments = instruments or InstrumentMaster(self.endpoints.scrip_master_url)
        self.login_limiter = login_limiter or Throttle(LOGIN_LIMITS)
        self._executor = executor
        self._session_options = dict(session_options or {})
        self._sessions: dict[tuple[str, str], AngelOneSession] = {}
        self._segment_throttles: dict[tuple[str, str], Throttle] = {}

    def segment_throttle(self, credentials: AngelOneCredentials, exchange: str) -> Throttle:
        """The one throttle of a client's order requests in one exchange segment, shared by every
        venue and session of that client: 10 a second (the exchanges' threshold since April 2026),
        or the rate of the client's registered algo."""
        key = (credentials.client_code, exchange)
        if key not in self._segment_throttles:
            rate = credentials.algo_orders_per_second or ORDERS_PER_SECOND_THRESHOLD
            self._segment_throttles[key] = Throttle([RateLimit(rate, SEGMENT_ORDER_WINDOW_SECONDS)])
        return self._segment_throttles[key]

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
        if not isinstance(credentials, AngelOneCredentials):
            credentials = AngelOneCredentials.from_mapping(credentials)
        return AngelOneVenue(
            self.session(credentials),
            self.instruments,
            segment_throttle=functools.partial(self.segment_throttle, credentials),
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
