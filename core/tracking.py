"""Follower order streams: the push half of following every copy order to its end.

``CopyEngine.track`` polls every open copy by client order id (the fallback that always runs).
Where a venue pushes order updates (``Venue.order_events``: Binance's user-data stream through
ccxt.pro), ``OrderStreams`` keeps one stream open for each account that has an open copy,
oldest open order first, up to ``cap`` accounts: each update makes the engine read that order at
once instead of at the next poll. Accounts beyond the cap, and any whose stream fails, are
polled only; an account with no open copy left has its stream closed (a stream costs a
websocket and, on Binance USD-M, a listen key kept alive every 30 minutes — 1,000 idle followers
would hold 1,000 sockets for nothing).

Every update goes through the same look-up and the same journal path as polling, so a stream,
a poll and a settle pass can never count a fill twice.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from core.copying.config import VenueProvider
from core.engine import CopyEngine
from core.errors import VaultError, VenueError
from core.journal import CopyJournal
from core.venues.base import OrderEventSource

log = logging.getLogger(__name__)


@dataclass
class OrderStreams:
    engine: CopyEngine
    journal: CopyJournal
    venues: VenueProvider
    cap: int = 200
    _streams: dict[str, tuple[OrderEventSource, asyncio.Task[None]]] = field(default_factory=dict)
    _unsupported: set[str] = field(default_factory=set)  # accounts whose venue pushes nothing

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    async def refresh(self) -> None:
        """Open streams for the accounts with open copies (up to the cap), close the others."""
        wanted: list[str] = []
        for open_copy in await self.journal.open_copies():  # oldest first
            credential_id = open_copy.credential_id
            if credential_id is None or credential_id in self._unsupported or credential_id in wanted:
                continue
            if len(wanted) == self.cap:
                break
            wanted.append(credential_id)
        for credential_id in [c for c in self._streams if c not in wanted or self._streams[c][1].done()]:
            await self._close(credential_id)
        for credential_id in wanted:
            if credential_id not in self._streams:
                await self._open(credential_id)

    async def close(self) -> None:
        for credential_id in list(self._streams):
            await self._close(credential_id)

    async def _open(self, credential_id: str) -> None:
        try:
            source = (await self.venues.venue_for(credential_id)).order_events()
        except (VenueError, VaultError) as exc:
            log.warning("order stream of account %s not opened: %s", credential_id, exc)
            return
        if source is None:
            self._unsupported.add(credential_id)
            return
        task = asyncio.create_task(self._run(credential_id, source), name=f"order-stream-{credential_id}")
        self._streams[credential_id] = (source, task)

    async def _run(self, credential_id: str, source: OrderEventSource) -> None:
        try:
            async for change in source.changes():
                try:
                    await self.engine.on_order_change(credential_id, change)
                except asyncio.CancelledError:
                    raise
                except Exception:  # one order's trouble never stops the account's stream
                    log.exception("order update %s of account %s", change.client_order_id, credential_id)
        except VenueError as exc:  # polled meanwhile; reopened by the next refresh
            log.warning("order stream of account %s ended: %s", credential_id, exc)

    async def _close(self, credential_id: str) -> None:
        source, task = self._streams.pop(credential_id)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        try:
            await source.close()
        except Exception as exc:  # closing is best effort
            log.warning("closing the order stream of account %s: %s", credential_id, exc)
