"""Retrying with backoff, in one place: a call retried on the errors its caller names, and the
consecutive-failure count of a loop that reconnects or restarts forever.

Only the caller knows which errors are safe to retry (a read, a rate-limit answer that surely
did nothing), so the helper never decides that itself; ``CancelledError`` is never caught.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

T = TypeVar("T")


class Backoff(Protocol):
    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures + 1`` consecutive failures (``failures`` counts from 0)."""
        ...


@dataclass(frozen=True, slots=True)
class ExponentialBackoff:
    """``first``, then ``factor`` times longer after each further failure, never above ``ceiling``."""

    first: float
    factor: float = 2.0
    ceiling: float = math.inf

    def delay(self, failures: int) -> float:
        return min(self.first * self.factor**failures, self.ceiling)


@dataclass(frozen=True, slots=True)
class StepBackoff:
    """The given delays in turn, then the last one for every further failure."""

    delays: tuple[float, ...]

    def delay(self, failures: int) -> float:
        return self.delays[min(failures, len(self.delays) - 1)]


async def retry(
    call: Callable[[], Awaitable[T]],
    *,
    attempts: int,
    backoff: Backoff,
    retryable: Callable[[Exception], bool],
    on_retry: Callable[[Exception, float], None] | None = None,
) -> T:
    """``await call()`` up to ``attempts`` times, waiting ``backoff`` between tries, while it
    raises an error ``retryable`` accepts; the last error (or a non-retryable one) propagates.
    ``on_retry(error, delay)`` is told of each retry (to log it)."""
    for attempt in itertools.count():
        try:
            return await call()
        except Exception as exc:
            if attempt + 1 >= attempts or not retryable(exc):
                raise
            delay = backoff.delay(attempt)
            if on_retry is not None:
                on_retry(exc, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # itertools.count() never ends


class Retries:
    """The consecutive failures of a loop that never gives up (a stream, a socket): ``wait``
    sleeps the backoff for the next failure, ``reset`` after a success starts over."""

    def __init__(self, backoff: Backoff) -> None:
        self._backoff = backoff
        self._failures = 0

    @property
    def failures(self) -> int:
        return self._failures

    def next_delay(self) -> float:
        """The delay for one more failure, counted."""
        delay = self._backoff.delay(self._failures)
        self._failures += 1
        return delay

    async def wait(self) -> None:
        await asyncio.sleep(self.next_delay())

    def reset(self) -> None:
        self._failures = 0
