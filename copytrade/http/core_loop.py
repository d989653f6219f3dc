"""The HTTP server runs in its own thread and event loop; the service (storage, the copier, the
bot) in the core loop. ``CoreLoop`` carries the work a request needs from the service over to the
core loop and its answer back: everything else a request costs (reading, parsing, limits,
serialising the answer) is spent in the HTTP loop, so copying never waits behind HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class CoreLoop:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    @classmethod
    def current(cls) -> CoreLoop:
        """The running loop as the core loop (call it from the service's loop)."""
        return cls(asyncio.get_running_loop())

    async def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` in the core loop and await its result (or error) here; cancelling the
        wait cancels the work."""
        if asyncio.get_running_loop() is self.loop:
            return await work
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self.loop))

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """Call a plain function in the core loop (one that reads or changes the service's state)."""

        async def calling() -> T:
            return function(*args)

        return await self.run(calling())
