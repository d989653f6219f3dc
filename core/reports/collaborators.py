"""What the report services are handed besides the repositories of ``core.stores``: the venues
(for equity snapshots and mark prices) and a clock (one for all services, so that tests can move
time)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from core.venues.base import Venue

#: the current time, timezone-aware UTC (``core.model.utcnow`` outside tests)
Clock = Callable[[], datetime]


class VenueProvider(Protocol):
    async def venue_for(self, credential_id: str) -> Venue: ...
