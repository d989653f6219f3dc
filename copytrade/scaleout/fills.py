"""The fills stream: the listener publishes each journaled fill exactly once; trimming never
drops an entry some shard has not acknowledged.

"Published" is recorded in Redis by the same script that adds the entry (a marker key set only
if absent, then ``XADD``), so a listener killed anywhere between journaling a fill and marking it
planned publishes it once on restart, never twice. In a scaled-out deployment "planned" in the
journal means "handed to the fills stream".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from copytrade.scaleout.keys import PUBLISHED_MARKER_SECONDS, Keys, is_shard_group
from core.journal import CopyJournal
from core.model import MasterEvent, MasterOrderChange, MasterOrderEvent

log = logging.getLogger(__name__)

#: KEYS: marker, stream. ARGV: marker seconds, fill id. Returns the entry id, or false when published before.
_XADD_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[2], '*', 'kind', 'fill', 'fill_id', ARGV[2])
end
return false
"""


def order_event_fields(event: MasterOrderEvent) -> dict[FieldT, EncodableT]:
    """A master order's change as a fills-stream entry (``kind`` "order")."""
    fields: dict[FieldT, EncodableT] = {
        "kind": "order",
        "master_id": str(event.master_id),
        "order_id": event.order_id,
        "symbol": event.symbol,
        "change": event.change.value,
        "at": event.at.isoformat(),
    }
    if event.price is not None:
        fields["price"] = str(event.price)
    return fields


def order_event_of(fields: Mapping[str, str]) -> MasterOrderEvent:
    """The master order's change a fills-stream entry of ``kind`` "order" carries."""
    return MasterOrderEvent(
        master_id=int(fields["master_id"]),
        order_id=fields["order_id"],
        symbol=fields["symbol"],
        change=MasterOrderChange(fields["change"]),
        price=Decimal(fields["price"]) if fields.get("price") else None,
        at=datetime.fromisoformat(fields["at"]),
    )


def parse_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def format_id(parts: tuple[int, int]) -> str:
    return f"{parts[0]}-{parts[1]}"


def previous_id(entry_id: str) -> str:
    """The id just before ``entry_id`` (a consumer group created there delivers ``entry_id`` next)."""
    ms, seq = parse_id(entry_id)
    if seq > 0:
        return format_id((ms, seq - 1))
    if ms == 0:
        return "0-0"
    return format_id((ms - 1, 2**64 - 1))


async def group_positions(redis: Redis, keys: Keys) -> dict[str, str]:
    """Per shard consumer group: the id after which it still needs every entry (the last one it
    was given, or just before the first one it has not acknowledged). A group created at that id
    carries on where it stands; the stream may be trimmed up to it."""
    try:
        groups: list[dict[str, Any]] = await redis.xinfo_groups(keys.fills)
    except Exception as exc:  # the stream does not exist yet
        if "no such key" in str(exc).lower():
            return {}
        raise
    positions = {}
    for group in groups:
        name = str(group["name"])
        if not is_shard_group(name):
            continue
        position = str(group["last-delivered-id"])
        if int(group["pending"]):
            summary = await redis.xpending(keys.fills, name)
            position = previous_id(str(summary["min"]))
        positions[name] = position
    return positions


@dataclass
class FillPublisher:
    """The listener's side: journal a fill, then add it to the fills stream once."""

    redis: Redis
    keys: Keys
    journal: CopyJournal
    trim_every: int = 100  # entries added between two trims

    def __post_init__(self) -> None:
        self._added = 0

    async def on_fill(self, event: MasterEvent) -> None:
        """The listener supervisor's callback (in place of the engine's ``on_event``). A change of a
        master's order is added as it is (the copies still resting follow it on every shard): it
        is not journaled, and a repeated one changes nothing that was changed once."""
        if isinstance(event, MasterOrderEvent):
            await self.redis.xadd(self.keys.fills, order_event_fields(event))
            return
        fill = event
        if not fill.status.is_execution:
            return
        entry = await self.journal.journal_fill(fill)
        if entry is None:  # journaled before: published then, or by ``recover`` at start
            return
        await self.publish(entry.fill_id)

    async def publish(self, fill_id: int) -> bool:
        """Add the fill to the stream unless it was added before; then it counts as planned."""
        added = await self.redis.eval(  # type: ignore[misc]
            _XADD_ONCE, 2, self.keys.published(fill_id), self.keys.fills, str(PUBLISHED_MARKER_SECONDS), str(fill_id)
        )
        await self.journal.mark_planned(fill_id)
        if added:
            self._added += 1
            if self._added % self.trim_every == 0:
                await self.trim()
        return bool(added)

    async def recover(self) -> int:
        """At start: every fill journaled but not handed on (a listener stopped in between)."""
        published = 0
        for row in await self.journal.unplanned_fills():
            assert row.id is not None
            published += await self.publish(row.id)
        if published:
            log.info("published %d fills journaled before the last stop", published)
        return published

    async def trim(self) -> int:
        """Drop entries every shard group has acknowledged (none while no group exists)."""
        positions = await group_positions(self.redis, self.keys)
        if not positions:
            return 0
        oldest = min(positions.values(), key=parse_id)
        return int(await self.redis.xtrim(self.keys.fills, minid=oldest, approximate=True))
