"""The copied positions exits are sized against: the journal's ledger, the only truth (no mirror
kept beside it). Reads asked for in the same moment — a fill's fan-out asks for every follow at
once — are answered by one query per symbol and position side.

``VenuePositions``: what a follower's venue shows held, which bounds an exit before it is sent
(``Venue.bounds_exits``). Read only for exits, once per account for the exits asked for in the same
moment, and always by a read that starts after it was asked for (never an older answer, which
could predate the account's last fill)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal

from core.journal import CopyJournal
from core.model import PositionSide
from core.venues.base import Position, Venue

ZERO = Decimal(0)

#: a hedge-mode master's fill may meet copies of either of its legs (and of one-way days before)
ALL_SIDES = (PositionSide.LONG, PositionSide.SHORT, PositionSide.BOTH)


@dataclass
class _Batch:
    follow_ids: set[int] = field(default_factory=set)
    answer: asyncio.Future[dict[int, Decimal]] | None = None


class PositionBook:
    def __init__(self, journal: CopyJournal) -> None:
        self._journal = journal
        self._batches: dict[tuple[str, PositionSide, bool], _Batch] = {}

    async def position(self, follow_id: int, symbol: str, side: PositionSide, *, simulated: bool) -> Decimal:
        """The follow's copied (dry run: simulated) position in ``symbol`` on ``side``, as recorded now."""
        key = (symbol, side, simulated)
        batch = self._batches.get(key)
        if batch is None:
            batch = self._batches[key] = _Batch()
            batch.answer = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._read(key)))
        batch.follow_ids.add(follow_id)
        assert batch.answer is not None
        answer = await asyncio.shield(batch.answer)
        return answer.get(follow_id, ZERO)

    async def net(self, follow_id: int, symbol: str, *, simulated: bool) -> Decimal:
        """Every side together: what a one-way account holds of the follow's copies."""
        sides = await asyncio.gather(*(self.position(follow_id, symbol, s, simulated=simulated) for s in ALL_SIDES))
        return sum(sides, ZERO)

    async def _read(self, key: tuple[str, PositionSide, bool]) -> None:
        batch = self._batches.pop(key)
        assert batch.answer is not None
        symbol, side, simulated = key
        try:
            known = await self._journal.follow_positions(
                sorted(batch.follow_ids), symbol, simulated=simulated, position_side=side
            )
        except Exception as exc:  # every reader of this batch sees the error
            batch.answer.set_exception(exc)
            return
        batch.answer.set_result(known)


@dataclass
class _Read:
    venue: Venue
    answer: asyncio.Future[list[Position]]


class VenuePositions:
    def __init__(self) -> None:
        self._reads: dict[str, _Read] = {}

    async def held(self, credential_id: str, venue: Venue) -> list[Position]:
        """The account's positions as its venue shows them now. Raises ``VenueError``."""
        read = self._reads.get(credential_id)
        if read is None:
            loop = asyncio.get_running_loop()
            read = self._reads[credential_id] = _Read(venue, loop.create_future())
            loop.call_soon(lambda: asyncio.ensure_future(self._read(credential_id)))
        return list(await asyncio.shield(read.answer))

    async def _read(self, credential_id: str) -> None:
        read = self._reads.pop(credential_id)  # asked for from now on: a read of its own
        try:
            held = await read.venue.positions()
        except Exception as exc:  # every exit waiting on this read sees the error
            read.answer.set_exception(exc)
            read.answer.exception()  # retrieved here too: no waiter left must not warn
            return
        read.answer.set_result(held)
