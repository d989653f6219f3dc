"""Updates run concurrently across users and in order within one user's: the processor on its
own with real python-telegram-bot ``Update`` objects, then the real bot with 100 users sending at
once through the Bot API emulator."""

from __future__ import annotations

import asyncio
import itertools

import aiohttp
import pytest
from telegram import Update

from bot.updates import PerUserUpdateProcessor
from tests.fakes.telegram import BotHarness, ChatUser, Emulator, emulator_mark

_ids = itertools.count(1)


def _update(user_id: int, text: str) -> Update:
    update_id = next(_ids)
    sender = {"id": user_id, "is_bot": False, "first_name": f"u{user_id}"}
    message = {
        "message_id": update_id,
        "date": 1,
        "text": text,
        "chat": {"id": user_id, "type": "private"},
        "from": sender,
    }
    update = Update.de_json({"update_id": update_id, "message": message}, None)
    assert update is not None
    return update


async def test_a_slow_update_holds_back_only_its_own_users_next_update():
    processor = PerUserUpdateProcessor(running=4)
    log: list[str] = []
    gate = asyncio.Event()

    async def handle(name: str, wait: bool = False) -> None:
        log.append(f"{name} start")
        if wait:
            await gate.wait()
        log.append(f"{name} end")

    async with processor:
        tasks = [
            asyncio.create_task(processor.process_update(_update(1, "a1"), handle("a1", wait=True))),
            asyncio.create_task(processor.process_update(_update(1, "a2"), handle("a2"))),
            asyncio.create_task(processor.process_update(_update(2, "b1"), handle("b1"))),
        ]
        for _ in range(20):  # let every task run as far as it can
            await asyncio.sleep(0)
        assert log == ["a1 start", "b1 start", "b1 end"]  # b1 went past a1; a2 waits for a1
        gate.set()
        await asyncio.gather(*tasks)
    assert log == ["a1 start", "b1 start", "b1 end", "a1 end", "a2 start", "a2 end"]


async def test_updates_beyond_the_running_bound_wait_for_a_slot():
    processor = PerUserUpdateProcessor(running=2)
    running = 0
    most = 0
    gate = asyncio.Event()

    async def handle() -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await gate.wait()
        running -= 1

    async with processor:
        tasks = [asyncio.create_task(processor.process_update(_update(user, "x"), handle())) for user in range(10, 15)]
        for _ in range(20):
            await asyncio.sleep(0)
        assert running == 2
        gate.set()
        await asyncio.gather(*tasks)
    assert most == 2


@pytest.fixture(scope="module")
def emulator():
    server = Emulator()
    server.start()
    yield server
    server.stop()


STEPS = (("/start", "Welcome to copytrade"), ("/help", "Commands:"), ("/keys", "No exchange accounts connected yet"))


@emulator_mark()
@pytest.mark.e2e
@pytest.mark.slow
async def test_hundred_users_sending_at_once_each_get_their_answers_in_order(emulator, tmp_path):
    """/keys before /start has been handled would answer "Send /start first": each chat must
    show the three answers in the order the commands were sent."""
    users_count = 100
    async with BotHarness(emulator, tmp_path) as bot, aiohttp.ClientSession() as session:
        users = [ChatUser(session, emulator.url, bot.token, name=f"User {n}") for n in range(users_count)]

        async def converse(user: ChatUser) -> None:
            for command, _ in STEPS:
                await user.send(command)

        await asyncio.gather(*(converse(user) for user in users))
        # the emulator drops idle keep-alive connections: read the chats on fresh ones
        reader_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
        reader = ChatUser(reader_session, emulator.url, bot.token)
        by_chat: dict[str, list[tuple[int, str]]] = {}
        for _ in range(1200):
            by_chat = {}
            for item in await reader._history():
                message = item.get("message") or {}
                if "chat_id" in message:
                    by_chat.setdefault(str(message["chat_id"]), []).append((int(item["messageId"]), message["text"]))
            if sum(len(texts) for texts in by_chat.values()) >= users_count * len(STEPS):
                break
            await asyncio.sleep(0.1)
        await reader_session.close()
        for user in users:
            texts = [text for _, text in sorted(by_chat.get(str(user.id), []))]
            assert not any("Send /start first" in text for text in texts), (user.id, texts)
            answered = [
                [needle in text for _, needle in STEPS].index(True)
                for text in texts
                if any(needle in text for _, needle in STEPS)
            ]
            assert answered == list(range(len(STEPS))), (user.id, texts)  # each answer once, in order
        assert len(await bot.app.services.broadcast_recipients()) == users_count
