"""A client's request limits counted the way Angel One sees them: by when each request *arrives*.
Used for SmartAPI's read limits (order book, trade book, positions: one a second) and the
exchanges' 10 orders a second per segment.

``core.throttle.Throttle`` counts a call from when it is let through. A SmartAPI call then waits for
a worker thread (the SDK is synchronous) before its request leaves, so two reads let through 1.1 s
apart can reach Angel One within the same second when the first one waited for a thread (found by
the 200-follower fan-out test: 185 of 400 order-book reads refused). A ``RequestGate`` counts a read
that is still running as happening now and a finished one at its end, which is never before it
arrived: so no window of the broker's holds more requests than its limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence

from core.throttle import RateLimit


class RequestGate:
    def __init__(self, limits: Sequence[RateLimit], *, clock: Callable[[], float] = time.monotonic) -> None:
        self._limits = tuple(limits)
        self._horizon = max(limit.interval for limit in self._limits)
        self._clock = clock
        self._calls: list[list[float]] = []  # [end]; inf while running
        self._turn = asyncio.Lock()  # first come, first served
        self._ended = asyncio.Event()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one request: entered once every limit holds with it counted."""
        async with self._turn:
            while (wait := self._wait()) is not None and wait > 0:
                self._ended.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ended.wait(), wait)
            call = [float("inf")]
            self._calls.append(call)
        try:
            yield
        finally:
            call[0] = self._clock()
            self._ended.set()

    def _wait(self) -> float | None:
        """How long until one more read keeps every limit (0: now)."""
        now = self._clock()
        self._calls = [c for c in self._calls if c[0] > now - self._horizon]
        wait = 0.0
        for limit in self._limits:
            recent = sorted(c[0] for c in self._calls if c[0] > now - limit.interval)
            if len(recent) >= limit.limit:
                oldest = recent[len(recent) - limit.limit]  # the one that must leave the window
                # a running read (inf) frees its place only once it ended: waited for (bounded)
                wait = max(wait, limit.interval if oldest == float("inf") else oldest + limit.interval - now)
        return wait
