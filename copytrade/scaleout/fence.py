"""The fence: at most one replica sends for a shard, and never two shard counts at once.

A lease per shard lives in one Redis hash (field ``count:index`` -> ``holder|expiry``), taken and
renewed by one Lua script that Redis runs atomically against its own clock. It is refused while
another replica holds that shard, and while any live lease of a *different* shard count exists:
when N changes, the new count's executors wait until every executor of the old count has stopped
(or its lease has expired), so a follow that moves between shards is never sent for by two
processes at once. Each hand-over increments the shard's epoch.

The holder treats its lease as lost a margin *before* Redis lets it expire (its deadline is
counted from before the renewal was sent), and a replica that loses its lease stops sending at
once (``on_lost``; the CLI exits the process): the next holder resumes through the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis import Redis as SyncRedis
from redis.asyncio import Redis

from copytrade.scaleout.keys import Keys, lease_field
from core.sharding import Shard

log = logging.getLogger(__name__)

#: KEYS: leases, epochs. ARGV: field, holder, ttl ms, shard count, expected epoch ("" to acquire).
#: Returns {epoch, "ok"} or {0, why}.
_LEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local f, v = entries[i], entries[i + 1]
  local sep = string.find(v, '|', 1, true)
  local holder = string.sub(v, 1, sep - 1)
  if tonumber(string.sub(v, sep + 1)) <= now then
    redis.call('HDEL', KEYS[1], f)
  elseif string.sub(f, 1, string.find(f, ':', 1, true) - 1) ~= ARGV[4] then
    return {0, 'shard ' .. f .. ' of another shard count is held by ' .. holder}
  elseif f == ARGV[1] and holder ~= ARGV[2] then
    return {0, 'held by ' .. holder}
  end
end
local current = redis.call('HGET', KEYS[1], ARGV[1])
local epoch
if current then
  epoch = tonumber(redis.call('HGET', KEYS[2], ARGV[1]))
else
  if ARGV[5] ~= '' then
    return {0, 'expired'}
  end
  epoch = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
end
if ARGV[5] ~= '' and tostring(epoch) ~= ARGV[5] then
  return {0, 'taken over'}
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. (now + tonumber(ARGV[3])))
return {epoch, 'ok'}
"""

#: KEYS: leases. ARGV: field, holder.
_RELEASE = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and string.sub(v, 1, string.find(v, '|', 1, true) - 1) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""

#: the share of the lease's time the holder relies on it (the rest covers clock rate and latency)
SAFETY = 0.8


@dataclass
class ShardLease:
    """``redis`` serves the event loop; the renewals run in a thread of their own on a client of
    their own (``url``), so that a fan-out keeping the event loop busy for seconds (thousands of
    orders) does not cost the lease: the lease says the process is alive, and a process that is
    not (killed, frozen) stops renewing it."""

    redis: Redis
    url: str
    keys: Keys
    shard: Shard
    holder: str
    ttl: float = 10.0  # seconds
    on_lost: Callable[[str], None] = field(default=lambda why: None)
    epoch: int = 0
    _deadline: float = 0.0
    _renewing: threading.Thread | None = None
    _stop_renewing: threading.Event = field(default_factory=threading.Event)

    def held(self) -> bool:
        """Whether this replica may still send for the shard (no I/O: checked before each entry)."""
        return self.epoch > 0 and time.monotonic() < self._deadline

    async def confirm(self) -> bool:
        """Whether this replica may still send, asking Redis when the local deadline has passed
        (a renewal that was merely late has not lost the lease); a lease found lost is reported
        to ``on_lost``."""
        if self.held():
            return True
        if self.epoch == 0:
            return False
        try:
            why = self._answer(await self.redis.eval(_LEASE, 2, *self._arguments(str(self.epoch))), time.monotonic())  # type: ignore[misc]
        except Exception as exc:  # Redis unreachable and the deadline passed: assume the worst
            why = f"renewal failed: {type(exc).__name__}: {exc}"
        if why is None:
            return True
        self._lose(why)
        return False

    async def try_acquire(self) -> str | None:
        """Take the lease if it is free; ``None`` when taken, else why not."""
        sent = time.monotonic()
        return self._answer(await self.redis.eval(_LEASE, 2, *self._arguments("")), sent)  # type: ignore[misc]

    async def acquire(self, stop: asyncio.Event, *, every: float | None = None) -> bool:
        """Wait (a standby replica) until the lease is ours or ``stop`` is set; then keep it renewed."""
        wait = every if every is not None else self.ttl / 4
        while not stop.is_set():
            why = await self.try_acquire()
            if why is None:
                log.info("shard %s: lease taken by %s (epoch %d)", self.shard, self.holder, self.epoch)
                self._stop_renewing.clear()
                self._renewing = threading.Thread(target=self._renew_forever, name=f"lease-{self.shard}", daemon=True)
                self._renewing.start()
                return True
            log.debug("shard %s: standing by (%s)", self.shard, why)
            with contextlib.suppress(TimeoutError):  # the wait before trying again, cut short by a stop
                await asyncio.wait_for(stop.wait(), timeout=wait)
        return False

    async def release(self) -> None:
        self._stop_renewing.set()
        if self._renewing is not None:
            await asyncio.to_thread(self._renewing.join)
            self._renewing = None
        if self.epoch:
            await self.redis.eval(_RELEASE, 1, self.keys.leases, lease_field(self.shard), self.holder)  # type: ignore[misc]
        self.epoch = 0

    def _arguments(self, expected: str) -> list[str]:
        return [
            self.keys.leases,
            self.keys.epochs,
            lease_field(self.shard),
            self.holder,
            str(int(self.ttl * 1000)),
            str(self.shard.count),
            expected,
        ]

    def _answer(self, answer: list[Any], sent: float) -> str | None:
        epoch, why = answer
        if not epoch:
            return str(why)
        self.epoch = int(epoch)
        self._deadline = sent + self.ttl * SAFETY
        return None

    def _lose(self, why: str) -> None:
        log.critical("shard %s: lease lost (%s); this replica stops sending", self.shard, why)
        self.epoch = 0
        self.on_lost(why)

    def _renew_forever(self) -> None:
        client = SyncRedis.from_url(self.url, decode_responses=True)
        try:
            last = time.monotonic()
            while not self._stop_renewing.wait(self.ttl / 4):
                epoch = self.epoch
                if not epoch:
                    return
                sent = time.monotonic()
                if sent - last > self.ttl / 2:  # this thread itself did not run: the whole process was starved
                    log.warning(
                        "shard %s: lease renewal %.1f s late (SHARD_LEASE_SECONDS=%s)",
                        self.shard,
                        sent - last - self.ttl / 4,
                        self.ttl,
                    )
                last = sent
                try:
                    why = self._answer(client.eval(_LEASE, 2, *self._arguments(str(epoch))), sent)  # type: ignore[arg-type]
                except Exception as exc:  # Redis unreachable: the lease still counts until its deadline
                    why = f"renewal failed: {type(exc).__name__}: {exc}"
                    if self.held():
                        log.warning("shard %s: %s", self.shard, why)
                        continue
                if why is not None and not self._stop_renewing.is_set():
                    self._lose(why)
                    return
        finally:
            client.close()
