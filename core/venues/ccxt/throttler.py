"""The request pacing ccxt applies to each account, with two of its faults fixed.

ccxt paces every request through the object in ``exchange.throttler``, a token bucket fed by
the exchange's own rate limit and per-endpoint costs. That hook and those tables are ccxt's, so
this stays a subclass of ccxt's throttler rather than ``core.throttle`` (whose sliding windows
would change the sustained rate ccxt was tuned for).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ccxt.async_support.base.throttler import Throttler


class LeakyBucketThrottler(Throttler):  # type: ignore[misc]  # ccxt is untyped
    """ccxt's leaky bucket (same capacity, refill rate and costs), with two faults fixed.

    - ccxt refills the bucket only while its loop runs; the loop stops when the queue empties and
      restarts with a fresh clock. So an account idle for an hour still waited ``cost x rateLimit``
      before its next request: ~200 ms before every Binance futures order (cost 4 x 50 ms). Here
      the bucket refills with wall time, idle time included, capped at its capacity as before.
    - ccxt's loop polls every millisecond while it waits: a thousand throttled accounts meant a
      million wake-ups a second, starving the event loop. Here it sleeps until the tokens are due.

    The sustained rate per account is exactly ccxt's; only idle time is no longer wasted.
    """

    running: bool  # ccxt's: the loop is draining the queue

    def __init__(self, config: dict[str, Any], loop: Any = None) -> None:
        super().__init__(config, loop)
        self._refilled_ms: float | None = None

    def _refill(self) -> None:
        now = time.time() * 1000
        if self._refilled_ms is not None:
            config = self.config
            config["tokens"] = min(
                config["tokens"] + (now - self._refilled_ms) * config["refillRate"], config["capacity"]
            )
        self._refilled_ms = now

    async def leaky_bucket_loop(self) -> None:
        config = self.config
        while self.running:
            self._refill()
            future, cost = self.queue[0]
            cost = config["cost"] if cost is None else cost
            if config["tokens"] >= 0:
                config["tokens"] -= cost
                if not future.done():
                    future.set_result(None)
                self.queue.popleft()
                await asyncio.sleep(0)  # context switch, as ccxt does
                if not self.queue:
                    self.running = False
            else:
                rate = config["refillRate"]
                due_s = -config["tokens"] / rate / 1000 if rate > 0 else 0.0
                await asyncio.sleep(max(config["delay"], due_s))
