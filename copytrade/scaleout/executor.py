"""One executor shard: copies each fill of the fills stream to the follows whose follower
account maps to its shard.

Every replica of a shard is a consumer of the shard's consumer group, but only the lease holder
(``fence.ShardLease``) reads and sends; the others stand by. Entries are handled one at a time in
stream order (so a follow's orders in one symbol keep the master's order) and acknowledged only
once every copy's outcome is in the journal. A new holder first claims (``XAUTOCLAIM``, after an
idle timeout) what its predecessor left unacknowledged and runs it again through the journal:
copies already recorded are not sent again, pending ones are looked up on their venue first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from copytrade.scaleout.fence import ShardLease
from copytrade.scaleout.fills import group_positions, order_event_of, parse_id
from copytrade.scaleout.keys import Keys, group_name
from core.engine import CopyEngine
from core.model import CopyStatus
from core.sharding import Shard

log = logging.getLogger(__name__)


@dataclass
class ShardExecutor:
    redis: Redis
    url: str  # the same Redis, for the lease's renewal thread
    keys: Keys
    shard: Shard
    engine: CopyEngine
    consumer: str  # unique per replica process
    lease_ttl: float = 10.0
    claim_idle: float = 5.0  # seconds an entry of another replica must be idle before it is claimed
    block: float = 1.0  # seconds one read waits for new entries
    on_lost: Callable[[str], None] = field(default=lambda why: None)
    handled: int = 0  # entries acknowledged by this replica

    def __post_init__(self) -> None:
        self.group = group_name(self.shard)
        self.lease = ShardLease(self.redis, self.url, self.keys, self.shard, self.consumer, self.lease_ttl, self._lost)
        self._stopped_for: str | None = None

    def _lost(self, why: str) -> None:
        self._stopped_for = why
        self.on_lost(why)

    async def run(self, stop: asyncio.Event, *, on_active: Callable[[], Any] | None = None) -> None:
        """Stand by for the shard's lease, then copy until ``stop`` is set or the lease is lost."""
        if not await self.lease.acquire(stop):
            return
        try:
            await self.adopt_groups()
            if on_active is not None:
                await on_active()
            await self._take_over(stop)
            retried = time.monotonic()
            while not stop.is_set() and await self._may_send():
                await self._read_new()
                if time.monotonic() - retried >= self.claim_idle:
                    await self._retry_own()
                    retried = time.monotonic()
        finally:
            await self.lease.release()

    async def _may_send(self) -> bool:
        return self._stopped_for is None and await self.lease.confirm()

    # -- consumer groups ------------------------------------------------------------------------

    async def adopt_groups(self) -> None:
        """Create this shard count's groups where the previous count's groups stand (the first
        entry one of them has not acknowledged), then drop the previous count's groups: they have
        no live executor (the fence refuses two shard counts at once)."""
        mine = {group_name(Shard(i, self.shard.count)) for i in range(self.shard.count)}
        lock_ms = int(self.lease_ttl * 1000)
        while not await self.redis.set(self.keys.adopting, self.consumer, nx=True, px=lock_ms):  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # a lock in Redis offers nothing to await
        try:
            positions = await group_positions(self.redis, self.keys)
            others = {name: position for name, position in positions.items() if name not in mine}
            if others:
                start = min(others.values(), key=parse_id)
            else:
                start = "0"  # the first executors: whatever the listener published before them
            missing = sorted(mine - positions.keys())
            for name in missing:
                try:
                    await self.redis.xgroup_create(self.keys.fills, name, id=start, mkstream=True)
                except ResponseError as exc:
                    if "BUSYGROUP" not in str(exc):
                        raise
            for name in others:
                await self.redis.xgroup_destroy(self.keys.fills, name)
            if missing:
                log.info("shard count %d: %s created at %s, replacing %s", self.shard.count, missing, start, others)
        finally:
            await self.redis.delete(self.keys.adopting)

    # -- reading --------------------------------------------------------------------------------

    async def _take_over(self, stop: asyncio.Event) -> None:
        """Before anything new: every entry a previous holder left unacknowledged, in order."""
        while not stop.is_set() and await self._may_send():
            summary = await self.redis.xpending(self.keys.fills, self.group)
            others = [c for c in summary.get("consumers") or [] if c["name"] != self.consumer]
            if not others:
                break
            start = "0-0"
            while True:
                start, claimed, _ = await self.redis.xautoclaim(
                    self.keys.fills, self.group, self.consumer, int(self.claim_idle * 1000), start_id=start
                )
                if claimed:
                    log.info("shard %s: claimed %d unacknowledged entries", self.shard, len(claimed))
                if start == "0-0":
                    break
            await self._retry_own()
            await asyncio.sleep(min(self.claim_idle, 0.5))
        await self._retry_own()
        for consumer in await self.redis.xinfo_consumers(self.keys.fills, self.group):
            if consumer["name"] != self.consumer and not int(consumer["pending"]):  # gone, nothing left
                await self.redis.xgroup_delconsumer(self.keys.fills, self.group, consumer["name"])

    async def _retry_own(self) -> None:
        """Entries delivered to this replica and not acknowledged yet (claimed, or left with a
        copy whose outcome the venue did not tell yet), oldest first."""
        answer = await self.redis.xreadgroup(self.group, self.consumer, {self.keys.fills: "0"}, count=100)
        for _, entries in answer or []:
            for entry_id, fields in entries:
                if not await self._may_send():
                    return
                await self.handle(entry_id, fields)

    async def _read_new(self) -> None:
        answer = await self.redis.xreadgroup(
            self.group, self.consumer, {self.keys.fills: ">"}, count=1, block=int(self.block * 1000)
        )
        for _, entries in answer or []:
            for entry_id, fields in entries:
                if not await self._may_send():
                    return
                await self.handle(entry_id, fields)

    async def handle(self, entry_id: str, fields: dict[str, str]) -> bool:
        """Copy one entry for this shard; acknowledged once every outcome is recorded (a copy the
        venue has not told about yet keeps it unacknowledged: it is run again later)."""
        kind = fields.get("kind")
        if kind == "fill":
            results = await self.engine.copy_journaled(int(fields["fill_id"]), self.shard.owns)
            if results is None:
                log.error("shard %s: fill %s of entry %s is not in the journal", self.shard, fields, entry_id)
            elif any(r.status is CopyStatus.PENDING for r in results):
                return False
        elif kind == "order":
            await self.engine.on_master_order(order_event_of(fields), self.shard.owns)
        else:
            log.error("shard %s: entry %s is not a fill or a master order's change: %s", self.shard, entry_id, fields)
        await self.redis.xack(self.keys.fills, self.group, entry_id)
        self.handled += 1
        return True
