"""core.throttle and core.retry: the one throttle and the one backoff helper of the project."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from core.errors import InvalidOrder, TemporaryError
from core.retry import ExponentialBackoff, Retries, StepBackoff, retry
from core.throttle import RateLimit, Throttle, WeightBudget


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_a_throttle_keeps_every_window_of_its_table():
    time = FakeTime()
    throttle = Throttle((RateLimit(2, 1.0), RateLimit(3, 10.0)), clock=time.clock, sleep=time.sleep)
    admitted = []
    for _ in range(6):
        await throttle.acquire()
        admitted.append(time.now)
    assert admitted == [0.0, 0.0, 1.0, 10.0, 10.0, 11.0]


async def test_a_pause_holds_back_a_caller_already_waiting_for_its_slot():
    throttle = Throttle([RateLimit(1, 0.05)])
    loop = asyncio.get_running_loop()
    await throttle.acquire()
    waiting = asyncio.create_task(throttle.acquire())
    await asyncio.sleep(0.01)  # the second caller now sleeps until its slot
    paused_at = loop.time()
    throttle.pause(0.2)
    await waiting
    assert loop.time() >= paused_at + 0.2 - 1e-3


async def test_retry_retries_only_what_the_caller_names_and_stops_after_its_attempts():
    calls = []

    async def flaky() -> str:
        calls.append(1)
        raise TemporaryError("503")

    with pytest.raises(TemporaryError):
        await retry(flaky, attempts=3, backoff=ExponentialBackoff(0.001), retryable=lambda e: True)
    assert len(calls) == 3

    async def refused() -> str:
        calls.append(2)
        raise InvalidOrder("bad")

    with pytest.raises(InvalidOrder):
        await retry(refused, attempts=3, backoff=ExponentialBackoff(0.001), retryable=lambda e: False)
    assert calls.count(2) == 1


async def test_retry_reports_each_retry_with_its_delay():
    answers: Iterator[Exception | str] = iter([TemporaryError("a"), TemporaryError("b"), "ok"])
    seen: list[float] = []

    async def call() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    result = await retry(
        call,
        attempts=5,
        backoff=ExponentialBackoff(0.001, factor=3),
        retryable=lambda e: isinstance(e, TemporaryError),
        on_retry=lambda error, delay: seen.append(delay),
    )
    assert result == "ok" and seen == pytest.approx([0.001, 0.003])


def test_backoffs_grow_to_their_ceiling_and_restart_after_a_success():
    assert [StepBackoff((1, 2, 5)).delay(n) for n in range(5)] == [1, 2, 5, 5, 5]
    retries = Retries(ExponentialBackoff(1, ceiling=5))
    assert [retries.next_delay() for _ in range(4)] == [1, 2, 4, 5]
    retries.reset()
    assert retries.next_delay() == 1


# -- WeightBudget: one weight limit shared by many callers ----------------------------------------


async def test_a_weight_budget_counts_a_request_from_its_answer_and_admits_within_the_limit():
    time = FakeTime()
    budget = WeightBudget(RateLimit(10, 1.0), clock=time.clock, sleep=time.sleep)
    await budget.acquire(6)
    time.now = 0.5
    budget.answered(6)  # counted from 0.5: the latest it can have reached the venue
    await budget.acquire(4)
    budget.answered(4)
    await budget.acquire(5)  # 6 must leave the window first: at 1.5
    assert time.now == 1.5 and budget.spent == 15


async def test_reads_wait_for_the_budget_while_the_order_path_uses_the_reserve():
    time = FakeTime()
    budget = WeightBudget(RateLimit(10, 1.0), reserve=2, clock=time.clock, sleep=time.sleep)
    await budget.acquire(8)
    budget.answered(8)
    await budget.acquire(2, urgent=True)  # the reserve: at once
    assert time.now == 0.0
    await budget.acquire(1)  # a read: only once the 8 have left the window
    assert time.now == 1.0


async def test_the_venues_count_corrects_a_weight_budget_upwards_only():
    time = FakeTime()
    budget = WeightBudget(RateLimit(10, 1.0), clock=time.clock, sleep=time.sleep)
    budget.observe(9)  # another user of the IP spent 9
    assert budget.used() == 9
    budget.observe(3)  # a lower count is not trusted
    assert budget.used() == 9
    await budget.acquire(2)
    assert time.now == 1.0


async def test_a_pause_holds_back_every_caller_of_a_weight_budget_weight_0_and_urgent_ones_included():
    time = FakeTime()
    budget = WeightBudget(RateLimit(10, 1.0), clock=time.clock, sleep=time.sleep)
    budget.pause(120.0)  # a 418's Retry-After
    await budget.acquire(0, urgent=True)
    assert time.now == 120.0 and budget.paused_for() == 0
