"""core.throttle and core.retry: the one throttle and the one backoff helper of the project."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from core.errors import InvalidOrder, TemporaryError
from core.retry import ExponentialBackoff, Retries, StepBackoff, retry
from core.throttle import RateLimit, Throttle


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
