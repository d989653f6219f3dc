"""The bot's pacer under Telegram's flood limit: even spacing, pauses after a 429, retries."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from telegram.error import RetryAfter

from bot.ratelimit import PAUSE_MARGIN, TelegramPacer


class Recorder:
    """A Bot API call stand-in for ``process_request``: notes when each call started."""

    def __init__(self, fail_first: dict[int, int] | None = None) -> None:
        self.started: list[tuple[int, float]] = []
        self.fail_first = dict(fail_first or {})  # call number -> retry_after of its first attempt

    async def call(self, number: int) -> Any:  # a Bot API answer; its shape does not matter here
        self.started.append((number, asyncio.get_running_loop().time()))
        retry_after = self.fail_first.pop(number, None)
        if retry_after is not None:
            raise RetryAfter(retry_after)
        return number


def send(pacer: TelegramPacer, recorder: Recorder, number: int, *, chat: bool = True, retries: int | None = None):
    data = {"chat_id": 1000 + number, "text": "x"} if chat else {}
    return pacer.process_request(recorder.call, (number,), {}, "sendMessage" if chat else "getUpdates", data, retries)


async def test_messages_start_one_interval_apart_never_in_a_burst():
    pacer, recorder = TelegramPacer(messages_per_second=200), Recorder()
    assert await asyncio.gather(*(send(pacer, recorder, n) for n in range(25))) == list(range(25))
    times = sorted(t for _, t in recorder.started)
    assert all(later - earlier >= 1 / 200 - 1e-6 for earlier, later in zip(times, times[1:], strict=False))


async def test_a_429_pauses_every_message_for_its_retry_after_then_the_refused_one_is_retried():
    pacer, recorder = TelegramPacer(messages_per_second=100), Recorder(fail_first={0: 1})
    assert await asyncio.gather(*(send(pacer, recorder, n) for n in range(10))) == list(range(10))
    refused_at = recorder.started[0][1]
    after = [(n, t) for n, t in recorder.started[1:]]
    assert [n for n, _ in after].count(0) == 1  # retried once
    assert all(t >= refused_at + 1 + PAUSE_MARGIN - 1e-6 for _, t in after)  # nothing went out during the pause
    times = sorted(t for _, t in after)
    assert all(
        later - earlier >= 1 / 100 - 1e-6 for earlier, later in zip(times, times[1:], strict=False)
    )  # and no burst after it


async def test_requests_without_a_chat_are_not_held_behind_messages():
    pacer, recorder = TelegramPacer(messages_per_second=0.5), Recorder()
    first = asyncio.create_task(send(pacer, recorder, 1))
    second = asyncio.create_task(send(pacer, recorder, 2))  # its slot is two seconds away
    await asyncio.sleep(0)
    assert await send(pacer, recorder, 99, chat=False) == 99
    assert await first == 1
    assert not second.done()
    second.cancel()
    assert [n for n, _ in recorder.started] == [1, 99]


async def test_a_429_after_the_last_retry_reaches_the_caller():
    pacer, recorder = TelegramPacer(messages_per_second=100, max_retries=0), Recorder(fail_first={7: 1})
    with pytest.raises(RetryAfter):
        await send(pacer, recorder, 7)
    assert [n for n, _ in recorder.started] == [7]


async def test_every_429_is_told_to_the_observer_the_last_one_too():
    seen: list[str] = []
    pacer = TelegramPacer(messages_per_second=100, max_retries=0, on_rate_limited=lambda: seen.append("429"))
    ok = TelegramPacer(messages_per_second=100, on_rate_limited=lambda: seen.append("retried 429"))
    assert await send(ok, Recorder(fail_first={1: 0}), 1) == 1
    with pytest.raises(RetryAfter):
        await send(pacer, Recorder(fail_first={7: 0}), 7)
    assert seen == ["retried 429", "429"]
