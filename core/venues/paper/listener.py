"""A paper account's executions as a master's fill stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from core.model import Fill
from core.venues.base import FillSource
from core.venues.paper.venue import PaperVenue


class PaperFillSource(FillSource):
    """The executions of one paper account, as a master's fill stream."""

    def __init__(self, venue: PaperVenue, master_id: int) -> None:
        self._venue = venue
        venue.master_id = master_id
        self._queue: asyncio.Queue[Fill] = asyncio.Queue()
        venue._watchers.append(self._queue)

    async def fills(self) -> AsyncIterator[Fill]:
        while True:
            yield await self._queue.get()
