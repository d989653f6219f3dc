"""One throttle for every outgoing rate limit, fed by a venue's limit table (after hummingbot's
``RateLimit`` / ``AsyncThrottler``): Angel One's logins and order placement, the master order
book poll, Telegram's flood limit, Binance's orders per account; and ``WeightBudget``, one
weighted limit shared by every account leaving from one IP (hummingbot's linked limits: Binance's
request weight).

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


#: seconds a caller waits before it looks again when only requests in flight could make room
IN_FLIGHT_RECHECK = 0.05


class WeightBudget:
    """A weight limit over a sliding window, shared by every caller that counts against it: Binance's
    request weight, which the venue counts per IP, whatever account sends.

    - ``acquire(weight)`` returns once ``weight`` more keeps the window's total within the limit,
      in arrival order. The weight is in flight until ``answered(weight)``: the venue counts a
      request when it arrives, somewhere between the two, so the budget counts it from the answer
      (the latest it can have arrived) and it leaves the window no earlier than it leaves the
      venue's. Reads admit up to the limit less ``reserve``; ``urgent`` callers (the order path:
      its look-ups, cancels and the venue's clock) wait in a lane of their own and may use the
      reserve, so reads queued by the hundred never hold them back. A weight of 0 (Binance's order
      placement on the IP limit) only waits out a pause.
    - ``observe(used)``: the venue's own count of the window (Binance's ``X-MBX-USED-WEIGHT-1M``) is
      the truth when it is higher than our answered weight — another process or user of the IP
      spent weight — and the budget takes the difference as spent now (our requests in flight that
      the venue counted already are then counted twice for a while: the safe side). A lower count
      is not trusted: requests admitted here may not have reached the venue yet.
    - ``pause(seconds)`` (a 429's or a 418's ``Retry-After``) holds every caller back until it ends,
      urgent ones and weight 0 included.
    - ``spent`` is the weight admitted since the budget was made (what a run used).
    """

    def __init__(
        self,
        limit: RateLimit,
        *,
        reserve: int = 0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._limit = limit
        self._reserve = reserve
        self._clock = clock
        self._sleep = sleep
        self._admitted: deque[tuple[float, float]] = deque()  # (admitted at, weight) within the window
        self._total = 0.0  # the weights in ``_admitted``
        self._in_flight = 0.0  # admitted, not answered yet
        self._paused_until = float("-inf")
        self._lanes = (asyncio.Lock(), asyncio.Lock())  # reads, urgent: first come, first served in each
        self.spent = 0.0

    @property
    def limit(self) -> RateLimit:
        return self._limit

    def set_limit(self, limit: RateLimit, *, reserve: int) -> None:
        """A new limit (the venue published its own); what was admitted still counts."""
        self._limit, self._reserve = limit, reserve

    def used(self) -> float:
        """The weight admitted within the current window, answered or not."""
        self._expire(self._clock())
        return self._total + self._in_flight

    def paused_for(self) -> float:
        """Seconds left of the current pause (0 when none)."""
        return max(0.0, self._paused_until - self._clock())

    def pause(self, seconds: float) -> None:
        """Hold every caller back for ``seconds`` from now (a longer pause already running wins)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def observe(self, used: float) -> None:
        """The venue says ``used`` of the window is spent: take any excess over ours as spent now."""
        now = self._clock()
        self._expire(now)
        if used > self._total:
            self._admit(now, used - self._total)

    async def acquire(self, weight: float, *, urgent: bool = False) -> None:
        """Wait until ``weight`` fits (see the class docstring); it counts from the moment this returns."""
        if not weight:  # only a pause holds it back: no queue to join (a thousand orders would hand a lock on
            while (wait := self._paused_until - self._clock()) > 0:  # one loop turn at a time)
                await self._sleep(wait)
            return
        ceiling = self._limit.limit if urgent else self._limit.limit - self._reserve
        lane = self._lanes[urgent]
        if lane.locked() or self._earliest(weight, ceiling) > self._clock():  # else: nobody waits, it fits now
            async with lane:
                while (wait := self._earliest(weight, ceiling) - self._clock()) > 0:
                    await self._sleep(wait)
                self._take(weight)
            return
        self._take(weight)

    def _take(self, weight: float) -> None:
        self._in_flight += weight
        self.spent += weight

    def answered(self, weight: float) -> None:
        """A request admitted with ``weight`` was answered (or failed): it counts in the window from now."""
        self._in_flight -= weight
        if weight:
            self._admit(self._clock(), weight)

    def _earliest(self, weight: float, ceiling: float) -> float:
        """The earliest time ``weight`` more keeps the window within ``ceiling`` and any pause."""
        now = self._clock()
        self._expire(now)
        earliest = max(now, self._paused_until)
        if not weight:
            return earliest
        # a weight above the ceiling waits for an empty window; what is in flight leaves it only once answered
        excess = self._total + self._in_flight + weight - max(ceiling, weight)
        for admitted, spent in self._admitted:
            if excess <= 0:
                break
            excess -= spent
            earliest = max(earliest, admitted + self._limit.interval)
        if excess > 0:  # only answers still to come can make room: look again shortly
            earliest = max(earliest, now + IN_FLIGHT_RECHECK)
        return earliest

    def _admit(self, at: float, weight: float) -> None:
        self._admitted.append((at, weight))
        self._total += weight

    def _expire(self, now: float) -> None:
        while self._admitted and self._admitted[0][0] <= now - self._limit.interval:
            self._total -= self._admitted.popleft()[1]
        if not self._admitted:
            self._total = 0.0  # no float drift left behind
