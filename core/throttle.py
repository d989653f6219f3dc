"""One throttle for every outgoing rate limit, fed by a venue's limit table (after hummingbot's
``RateLimit`` / ``AsyncThrottler``): Angel One's logins and order placement, the master order
book poll, Telegram's flood limit.

A ``Throttle`` admits callers one at a time in arrival order, each once every limit of its
table holds over a sliding window. A caller is counted from when it was actually let through,
not from when it was due: an event loop that wakes one caller late cannot let the next one go
early, so no window ever holds more than its limit (the reason a planned-slot limiter draws
429s under load). A ``pause`` (a venue's ``retry_after``) holds every caller back until it ends,
including one already waiting for its slot.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``limit`` calls in any ``interval`` seconds."""

    limit: int
    interval: float


class Throttle:
    """Admits callers so that every ``RateLimit`` of ``limits`` holds (see the module docstring).

    ``clock`` and ``sleep`` are injectable for tests; they must be the same clock (the default is
    the monotonic clock asyncio's loop uses).
    """

    def __init__(
        self,
        limits: Sequence[RateLimit],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._limits = tuple(limits)
        self._horizon = max((limit.interval for limit in self._limits), default=0.0)
        self._longest = max((limit.limit for limit in self._limits), default=0)
        self._clock = clock
        self._sleep = sleep
        self._admitted: deque[float] = deque()  # admission times within the longest window
        self._paused_until = float("-inf")
        self._turn = asyncio.Lock()  # first come, first served

    def pause(self, seconds: float) -> None:
        """Hold every caller back for ``seconds`` from now (a longer pause already running wins)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    async def acquire(self) -> None:
        """Wait for this caller's turn; it counts against every limit from the moment it returns."""
        async with self._turn:
            due = self._earliest()
            while (wait := due - self._clock()) > 0:
                await self._sleep(wait)
                later = self._earliest()  # a pause may have begun while this caller waited
                if later <= due:
                    break
                due = later
            admitted = max(self._clock(), due)
            self._admitted.append(admitted)
            while len(self._admitted) > self._longest or (
                self._admitted and self._admitted[0] <= admitted - self._horizon
            ):
                self._admitted.popleft()

    def _earliest(self) -> float:
        """The earliest time at which one more call keeps every limit and any pause."""
        earliest = max(self._paused_until, self._admitted[-1] if self._admitted else float("-inf"))
        for limit in self._limits:
            if len(self._admitted) >= limit.limit:
                # the limit-th most recent admission must have left the window
                oldest = next(itertools.islice(reversed(self._admitted), limit.limit - 1, None))
                earliest = max(earliest, oldest + limit.interval)
        return earliest
