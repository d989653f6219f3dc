"""Order within one follow and symbol: each piece of work on a follow's symbol (a copy, a
tracking read, a direct order) runs after the one before it, so that an exit is sized after the
entry it closes, while different follows run concurrently. And the copies whose outcome is not
known yet, which make that follow's later fills wait."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from core.model import CopyResult

Key = tuple[int, str]  # (follow id, symbol)


class FollowQueues:
    def __init__(self) -> None:
        self._tails: dict[Key, asyncio.Task[list[CopyResult]]] = {}
        self._running: dict[asyncio.Task[Any], Key] = {}  # a task doing a key's work -> that key

    def enqueue(self, key: Key, work: Callable[[], Awaitable[list[CopyResult]]]) -> asyncio.Task[list[CopyResult]]:
        """Start ``work`` once the follow's earlier work in this symbol is done."""
        previous = self._tails.get(key)

        async def after_previous() -> list[CopyResult]:
            if previous is not None:
                await asyncio.wait([previous])
            task = asyncio.current_task()
            assert task is not None
            self._running[task] = key
            try:
                return await work()
            finally:
                del self._running[task]

        task = asyncio.create_task(after_previous())
        self._tails[key] = task

        def forget(done: asyncio.Task[list[CopyResult]]) -> None:
            if self._tails.get(key) is done:
                del self._tails[key]

        task.add_done_callback(forget)
        return task

    async def chained(self, key: Key, work: Callable[[], Awaitable[CopyResult | None]]) -> CopyResult | None:
        """Run ``work`` in the follow's queue and return its result (see ``run``)."""

        async def one() -> list[CopyResult]:
            result = await work()
            return [] if result is None else [result]

        done = await self.run(key, one)
        return done[0] if done else None

    async def run(self, key: Key, work: Callable[[], Awaitable[list[CopyResult]]]) -> list[CopyResult]:
        """Run ``work`` in the follow's queue and return its results. Asked from work already running
        in that queue (a copy's position upkeep placing or recording an order in the same symbol), it
        runs at once, in that work's place: queued behind it, it would wait for itself."""
        task = asyncio.current_task()
        if task is not None and self._running.get(task) == key:
            return await work()
        return await self.enqueue(key, work)

    async def wait_for_queued(self, keys: Iterable[Key]) -> None:
        """Until the work queued now on ``keys`` is done (work queued after this call is not waited for)."""
        tails = [self._tails[key] for key in set(keys) if key in self._tails]
        if tails:
            await asyncio.wait(tails)

    async def drain(self, follow_id: int | None = None) -> None:
        """Wait until the work queued now is done (of one follow, or of all)."""
        while True:
            tails = [t for (f, _), t in self._tails.items() if follow_id is None or f == follow_id]
            if not tails:
                return
            await asyncio.gather(*tails, return_exceptions=True)


class Unknowns:
    """Copies journaled pending whose outcome is unknown here (a lost answer, a crashed sender,
    another process's send), by (follow, symbol): the follower's position there is uncertain until
    they are settled, so that follow's later fills wait. And the first fill each (follow, symbol)
    was made to wait with: later ones wait behind it, so copies keep the master's order."""

    def __init__(self) -> None:
        self.unknown: dict[Key, set[str]] = {}
        self.waiting: dict[Key, int] = {}

    def add(self, key: Key, client_order_id: str) -> None:
        self.unknown.setdefault(key, set()).add(client_order_id)

    def settled(self, key: Key, client_order_id: str) -> None:
        ids = self.unknown.get(key)
        if ids is not None:
            ids.discard(client_order_id)
            if not ids:
                del self.unknown[key]

    def wait_with(self, key: Key, fill_id: int) -> None:
        self.waiting[key] = min(self.waiting.get(key, fill_id), fill_id)
