"""Pacing of the bot's requests under Telegram's flood limit.

Telegram allows a bot about 30 messages a second in all and answers more with 429 and a
``retry_after``. python-telegram-bot's ``AIORateLimiter`` is a bucket of 30: a burst of 30 goes
at once and 30 a second follow, up to 59 in the first second; and requests admitted while a
``retry_after`` pause runs all go together when it ends. Both draw 429s. This limiter spaces
requests that target a chat evenly, each one interval after the previous one actually
started, and a pause holds back every request until it ends."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

from core.throttle import RateLimit, Throttle

log = logging.getLogger(__name__)

#: Slightly under Telegram's 30 so that network jitter cannot put 31 in one second.
MESSAGES_PER_SECOND = 29
#: retries of a request answered 429 (after waiting its retry_after)
RATE_LIMIT_RETRIES = 3
#: added to every retry_after: Telegram's own clock and ours are not the same clock
PAUSE_MARGIN = 0.1


class TelegramPacer(BaseRateLimiter[int]):
    """Requests with a ``chat_id`` (sending, editing, deleting messages) start at least
    ``1 / messages_per_second`` apart; others (getUpdates, getMe) are not held. A 429 pauses
    every paced request for its ``retry_after`` and the request is retried up to
    ``max_retries`` times (a per-call ``rate_limit_args`` overrides that)."""

    def __init__(
        self,
        messages_per_second: float = MESSAGES_PER_SECOND,
        max_retries: int = RATE_LIMIT_RETRIES,
        on_rate_limited: Callable[[], None] | None = None,
    ) -> None:
        """``on_rate_limited`` is told of every 429 (the service's metrics)."""
        self._max_retries = max_retries
        self._on_rate_limited = on_rate_limited
        # one message per interval, counted from when the previous one actually started
        self._throttle = Throttle([RateLimit(1, 1 / messages_per_second)])

    async def initialize(self) -> None:
        """Nothing to set up: the pacing state lives in the throttle."""

    async def shutdown(self) -> None:
        """Nothing to release."""

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        retries = self._max_retries if rate_limit_args is None else rate_limit_args
        paced = data.get("chat_id") is not None
        for attempt in itertools.count():
            if paced:
                await self._throttle.acquire()
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                if self._on_rate_limited is not None:
                    self._on_rate_limited()
                if attempt >= retries:
                    raise
                pause = _seconds(exc.retry_after) + PAUSE_MARGIN
                self._throttle.pause(pause)
                log.warning(
                    "Telegram flood control on %s: pausing %.1fs (retry %d of %d)",
                    endpoint,
                    pause,
                    attempt + 1,
                    retries,
                )
                if not paced:
                    await asyncio.sleep(pause)
        raise AssertionError("unreachable")  # itertools.count() never ends


def _seconds(retry_after: int | timedelta) -> float:
    return retry_after.total_seconds() if isinstance(retry_after, timedelta) else float(retry_after)
