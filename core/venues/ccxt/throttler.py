"""The request pacing of ccxt accounts.

- Binance (``binanceusdm``, ``binance``) counts request weight per IP, not per key, and bans the
  IP (418) for every account on it once a 429 is not honoured. So a Binance account's requests
  are weighed (ccxt's per-endpoint costs converted to Binance's weights, ``constants.py``) into one
  ``core.throttle.WeightBudget`` per egress IP (``WeightBudgets``), shared by every account leaving
  from it; the venue's ``X-MBX-USED-WEIGHT-*`` answers correct it, a 429 pauses and a 418 stops the
  whole IP for its ``Retry-After``. New orders weigh 0 there and are counted on the account's own
  ORDERS limits instead (``AccountRequests.order_slot``).
- Every other exchange keeps ccxt's own pacing, per account: a token bucket fed by the exchange's
  rate limit and per-endpoint costs, in a subclass of ccxt's throttler (``LeakyBucketThrottler``)
  with two of its faults fixed (ccxt's tables were tuned for its bucket, not for sliding windows).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ccxt.async_support.base.throttler import Throttler

from core.throttle import RateLimit, Throttle, WeightBudget
from core.venues.ccxt.constants import (
    BINANCE_LIMIT_SHARE,
    BINANCE_ORDER_LIMITS,
    BINANCE_URGENT,
    BINANCE_URGENT_RESERVE,
    BINANCE_WEIGHED_SECTIONS,
    BINANCE_WEIGHT_LIMITS,
    BINANCE_WEIGHTS,
    CCXT_COST_PER_WEIGHT,
    DEFAULT_RETRY_AFTER_SECONDS,
    RATE_LIMIT_INTERVALS,
    TOO_MANY_ORDERS,
)

log = logging.getLogger(__name__)


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


# -- Binance: one request-weight budget per egress IP ---------------------------------------------


@dataclass
class PublishedLimits:
    """One Binance host's limits as it publishes them (``exchangeInfo.rateLimits``), shared by every
    budget and account of that host; the defaults of ``constants.py`` until they are read."""

    weight: RateLimit
    orders: tuple[RateLimit, ...]
    header: str = "x-mbx-used-weight-1m"  # the weight header of ``weight``'s interval, lower case
    budgets: list[WeightBudget] = field(default_factory=list)

    def learn(self, rate_limits: Any) -> None:
        """Take the venue's published REQUEST_WEIGHT and ORDERS limits."""
        weight, orders = None, []
        for entry in rate_limits if isinstance(rate_limits, list) else []:
            seconds = RATE_LIMIT_INTERVALS.get(str(entry.get("interval")))
            number, limit = entry.get("intervalNum"), entry.get("limit")
            if seconds is None or not isinstance(number, int) or not isinstance(limit, int) or limit <= 0:
                continue
            if entry.get("rateLimitType") == "REQUEST_WEIGHT":
                weight = RateLimit(limit, seconds * number)
                self.header = f"x-mbx-used-weight-{number}{str(entry['interval'])[0]}".lower()
            elif entry.get("rateLimitType") == "ORDERS":
                orders.append(RateLimit(limit, seconds * number))
        if weight is not None:
            self.weight = weight
            for budget in self.budgets:
                budget.set_limit(_spendable(weight), reserve=_reserve(weight))
        if orders:
            self.orders = tuple(orders)


def _spendable(limit: RateLimit) -> RateLimit:
    return RateLimit(int(limit.limit * BINANCE_LIMIT_SHARE), limit.interval)


def _reserve(limit: RateLimit) -> int:
    return int(limit.limit * BINANCE_LIMIT_SHARE * BINANCE_URGENT_RESERVE)


class WeightBudgets:
    """Binance's request-weight budgets, one per (exchange, sandbox, egress IP): every account that
    leaves from one IP — all those without an egress proxy share the host's; each distinct proxy is
    an IP of its own — spends one budget, as Binance counts it. One object per driver, passed in."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._limits: dict[tuple[str, bool], PublishedLimits] = {}
        self._budgets: dict[tuple[str, bool, str | None], WeightBudget] = {}

    def limits(self, exchange_id: str, *, sandbox: bool) -> PublishedLimits:
        key = (exchange_id, sandbox)
        limits = self._limits.get(key)
        if limits is None:
            limits = self._limits[key] = PublishedLimits(
                BINANCE_WEIGHT_LIMITS[exchange_id], BINANCE_ORDER_LIMITS[exchange_id]
            )
        return limits

    def budget(self, exchange_id: str, *, sandbox: bool, egress: str | None) -> WeightBudget:
        key = (exchange_id, sandbox, egress or None)
        budget = self._budgets.get(key)
        if budget is None:
            limits = self.limits(exchange_id, sandbox=sandbox)
            budget = self._budgets[key] = WeightBudget(
                _spendable(limits.weight), reserve=_reserve(limits.weight), clock=self._clock, sleep=self._sleep
            )
            limits.budgets.append(budget)
        return budget

    def spent(self) -> dict[str, float]:
        """The weight each budget admitted so far, by ``exchange[ via egress]`` (no secrets: a proxy
        is named by its host only)."""
        out: dict[str, float] = {}
        for (exchange_id, sandbox, egress), budget in self._budgets.items():
            name = exchange_id + (" sandbox" if sandbox else "") + (f" via {_host(egress)}" if egress else "")
            out[name] = out.get(name, 0.0) + budget.spent
        return out


def _host(url: str) -> str:
    return urlsplit(url).hostname or "proxy"


class AccountRequests:
    """One Binance account's side of the limits: its requests weighed into its IP's budget, its new
    orders counted on its own ORDERS limits, and what the venue answered taken back into both."""

    def __init__(
        self,
        exchange_id: str,
        budget: WeightBudget,
        limits: PublishedLimits,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sections = BINANCE_WEIGHED_SECTIONS[exchange_id]
        self.budget = budget
        self.limits = limits
        self._clock = clock
        self._orders: Throttle | None = None  # built at the first order, from the limits read by then

    def weight(self, section: str, method: str, path: str, cost: float) -> float:
        """Binance's weight of one request from ccxt's cost for it (``constants.py``)."""
        if section not in self._sections:
            return 0.0
        known = BINANCE_WEIGHTS.get((section, method, path))
        if known is not None:
            return known
        return cost / CCXT_COST_PER_WEIGHT.get(section, 1.0)

    async def before(self, section: str, method: str, path: str, cost: float) -> float:
        """Wait until the request may leave: its weight fits the IP's budget (reads wait behind the
        order path) and no pause holds the IP back. The weight is in flight until ``after``."""
        weight = self.weight(section, method, path, cost)
        urgent = (section, method, path) in BINANCE_URGENT
        await self.budget.acquire(weight, urgent=urgent)
        return weight

    def after(self, weight: float) -> None:
        self.budget.answered(weight)

    async def order_slot(self) -> None:
        """Wait until one more new order keeps the account's ORDERS limits and the IP's pause."""
        if self._orders is None:
            self._orders = Throttle([_spendable(limit) for limit in self.limits.orders], clock=self._clock)
        await self._orders.acquire()
        await self.budget.acquire(0, urgent=True)  # weight 0: only a pause holds it back

    def answered(self, status: int, headers: Mapping[str, str], body: str) -> None:
        """The venue's answer: its weight count is the truth; a 429 pauses the IP (or, for -1015, this
        account's orders) for its ``Retry-After``; a 418 stops the IP until its ban ends."""
        lowered = {key.lower(): value for key, value in headers.items()}
        used = _number(lowered.get(self.limits.header))
        if used is not None:
            self.budget.observe(used)
        if status not in (418, 429):
            return
        retry_after = _number(lowered.get("retry-after"))
        seconds = retry_after if retry_after is not None else DEFAULT_RETRY_AFTER_SECONDS[status]
        if status == 429 and f'"code":{TOO_MANY_ORDERS}' in body.replace(" ", ""):
            if self._orders is not None:
                self._orders.pause(seconds)
            log.warning("binance: too many new orders on one account: its orders wait %.0f s", seconds)
            return
        self.budget.pause(seconds)
        what = "banned (418)" if status == 418 else "rate limited (429)"
        log.warning("binance: this IP is %s: every account on it waits %.0f s", what, seconds)


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare on exchanges


class WeighedRequests:
    """Mixed into a Binance ccxt exchange class (``weighed``): every REST request is weighed into its
    IP's budget before it leaves, in place of ccxt's per-account bucket (which let each account spend
    the IP's whole limit and held an account's next order behind its last read), and every answer is
    taken back into the budget. The published limits are learnt from ``exchangeInfo`` as ccxt loads
    the markets."""

    weighed_requests: AccountRequests | None = None

    async def fetch2(
        self,
        path: str,
        api: Any = "public",
        method: str = "GET",
        params: Any = None,
        config: Any = None,
    ) -> Any:
        params = {} if params is None else params
        config = {} if config is None else config
        requests = self.weighed_requests
        section = api[0] if isinstance(api, list) else str(api)
        if requests is None:
            return await super().fetch2(path, api, method, params, config)  # type: ignore[misc]
        cost = self.calculate_rate_limiter_cost(api, method, path, params, config)  # type: ignore[attr-defined]
        weight = await requests.before(section, method, path, cost)
        try:
            response = await super().fetch2(path, api, method, params, config)  # type: ignore[misc]
        finally:
            requests.after(weight)
        if path == "exchangeInfo" and isinstance(response, dict):
            requests.limits.learn(response.get("rateLimits"))
        return response

    def on_rest_response(
        self,
        code: int,
        reason: str,
        url: str,
        method: str,
        response_headers: Mapping[str, str],
        response_body: str,
        request_headers: Any,
        request_body: Any,
    ) -> str:
        if self.weighed_requests is not None:
            self.weighed_requests.answered(code, response_headers or {}, response_body or "")
        return super().on_rest_response(  # type: ignore[misc, no-any-return]
            code, reason, url, method, response_headers, response_body, request_headers, request_body
        )


@functools.cache
def weighed(exchange_class: type) -> type:
    """``exchange_class`` with ``WeighedRequests`` mixed in (one class per ccxt class)."""
    return type(exchange_class.__name__, (WeighedRequests, exchange_class), {})
