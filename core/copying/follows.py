"""The active follows of each master, cached for a short while (a fill must not read them all)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from core.copying.config import VenueProvider
from core.journal import CopyJournal
from core.model import FollowSettings

log = logging.getLogger(__name__)


@dataclass
class _Loaded:
    follows: list[FollowSettings]
    loaded_at: float


class FollowBook:
    def __init__(self, journal: CopyJournal, venues: VenueProvider, ttl: float) -> None:
        self._journal = journal
        self._venues = venues
        self._ttl = ttl
        self._loaded: dict[int, _Loaded] = {}

    async def active(self, master_id: int) -> list[FollowSettings]:
        cached = self._loaded.get(master_id)
        if cached is None or time.monotonic() - cached.loaded_at > self._ttl:
            cached = _Loaded(await self._journal.active_follows(master_id), time.monotonic())
            self._loaded[master_id] = cached
            try:  # once per load, not per fill: venues not open yet are opened in one go
                await self._venues.open_many([f.credential_id for f in cached.follows])
            except Exception:  # only a shortcut: each copy opens its venue itself and records why not
                log.exception("opening the venues of master %s's followers in one go failed", master_id)
        return cached.follows

    async def follow(self, follow_id: int) -> FollowSettings | None:
        """The follow if it is active."""
        master_id = await self._journal.master_id_of_follow(follow_id)
        if master_id is None:
            return None
        return next((f for f in await self.active(master_id) if f.follow_id == follow_id), None)

    def invalidate(self, master_id: int | None = None) -> None:
        """Settings changed: the next fill reloads follows (all masters when ``None``)."""
        if master_id is None:
            self._loaded.clear()
        else:
            self._loaded.pop(master_id, None)
