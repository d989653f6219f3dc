"""Updates processed concurrently, each user's in the order they arrived.

python-telegram-bot handles one update at a time unless ``concurrent_updates`` is set; then any
two updates may overlap, so a user's quick "/follow" and the answer after it could be handled
out of order (and a conversation's state read before the previous step wrote it). This processor
runs different users' updates side by side and one user's strictly one after the other.

python-telegram-bot warns that ``ConversationHandler`` needs updates one by one: it needs them one
by one *per conversation*, and a conversation here is keyed by chat and user (the default), so
serialising each user's updates keeps every conversation's steps in order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

#: updates handled at once (across users): enough that one slow handler (a venue round trip, a
#: chart) never holds up the others, few enough to bound the database connections in use
MAX_RUNNING_UPDATES = 64
#: updates accepted at once, waiting for their user's previous ones included; beyond it the
#: application holds the next update back
MAX_ACCEPTED_UPDATES = 1024


def update_key(update: object) -> object:
    """Whose update it is: the user, else the chat (channel posts), else none (polls...)."""
    if isinstance(update, Update):
        if update.effective_user is not None:
            return ("user", update.effective_user.id)
        if update.effective_chat is not None:
            return ("chat", update.effective_chat.id)
    return None


class PerUserUpdateProcessor(BaseUpdateProcessor):
    """Concurrent across users, in order within one user's updates. The application hands
    updates over in arrival order, and ``asyncio.Lock`` wakes its waiters first come, first
    served, so a user's updates start in arrival order and never overlap. A slot to run is taken
    only once the user's turn has come: one user's queue of updates never blocks the others."""

    def __init__(self, running: int = MAX_RUNNING_UPDATES, accepted: int = MAX_ACCEPTED_UPDATES) -> None:
        super().__init__(accepted)
        self._running = asyncio.Semaphore(running)
        #: key -> (lock, updates of that key waiting or running); removed when the count is 0
        self._lanes: dict[object, tuple[asyncio.Lock, int]] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = update_key(update)
        if key is None:
            async with self._running:
                await coroutine
            return
        lock, count = self._lanes.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._lanes[key] = (lock, count + 1)
        try:
            async with lock, self._running:
                await coroutine
        finally:
            lock, count = self._lanes[key]
            if count == 1:
                del self._lanes[key]
            else:
                self._lanes[key] = (lock, count - 1)

    async def initialize(self) -> None:
        """Nothing to open: the lanes are made as updates arrive."""

    async def shutdown(self) -> None:
        """Nothing to close."""
