"""Signals between the roles: settings changes (pub/sub, to every executor and the listener) and
notifications (a stream, from the executors to the bot role).

A settings message that an executor misses while disconnected from Redis costs at most the
engine's follows cache lifetime (``EngineConfig.follows_ttl``, 30 s); a notification is only the
push message, the outcome itself is in the journal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from copytrade.scaleout.events import EventDecodeError, decode_event, encode_event
from copytrade.scaleout.keys import Keys
from core.notifications import NotificationQueue

log = logging.getLogger(__name__)

FOLLOWS, MASTER = "follows", "master"
BOT_GROUP = "bot"


@dataclass
class SettingsSignals:
    """Tell every other process that something they cache changed."""

    redis: Redis
    keys: Keys
    _sending: set[asyncio.Task[int]] = field(default_factory=set)

    def follows_changed(self, master_id: int) -> None:
        self._send(FOLLOWS, master_id)

    async def master_added(self, master_id: int) -> None:
        await self.redis.publish(self.keys.settings, f"{MASTER}:{master_id}")

    def _send(self, kind: str, value: int) -> None:
        # Services' callbacks are plain functions: the message goes out on the loop, in order
        task = asyncio.create_task(self._publish(f"{kind}:{value}"))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _publish(self, message: str) -> int:
        return int(await self.redis.publish(self.keys.settings, message))

    async def flush(self) -> None:
        await asyncio.gather(*list(self._sending), return_exceptions=True)


async def follow_settings(
    redis: Redis,
    keys: Keys,
    *,
    follows_changed: Callable[[int], None] | None = None,
    master_added: Callable[[int], Awaitable[None]] | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Apply every settings message until cancelled. A subscription that ends or breaks is made
    again (a message sent meanwhile is missed: the follows cache expires on its own)."""
    while True:
        pubsub = redis.pubsub()
        try:
            await pubsub.subscribe(keys.settings)
            if ready is not None:
                ready.set()
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                kind, _, value = str(message["data"]).partition(":")
                if not value.isdigit():
                    log.warning("settings signal %r ignored: not <kind>:<id>", message["data"])
                    continue
                if kind == FOLLOWS and follows_changed is not None:
                    follows_changed(int(value))
                elif kind == MASTER and master_added is not None:
                    await master_added(int(value))
            log.warning("settings channel: the subscription ended; subscribing again")
        except (RedisConnectionError, RedisTimeoutError) as exc:
            log.warning("settings channel: %s; subscribing again", exc)
            await asyncio.sleep(1)
        finally:
            await pubsub.aclose()


async def forward_notifications(redis: Redis, keys: Keys, queue: NotificationQueue, *, cap: int = 100_000) -> None:
    """Executor side: every event the engine publishes goes to the notifications stream (kept to
    about ``cap`` entries: an undelivered push message is the only thing a trim can lose)."""
    while True:
        events = [await queue.get(), *queue.take_all()]
        async with redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.xadd(keys.notifications, {"event": encode_event(event)}, maxlen=cap, approximate=True)
            await pipe.execute()


async def deliver_notifications(
    redis: Redis, keys: Keys, queue: NotificationQueue, consumer: str, *, block: float = 1.0
) -> None:
    """Bot side: the notifications stream into the bot's own queue (its sender respects
    Telegram's limits), acknowledged once queued. Several bot replicas share the group."""
    try:
        await redis.xgroup_create(keys.notifications, BOT_GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    start = "0"  # first what this consumer was given before a restart, then new entries
    while True:
        answer = await redis.xreadgroup(
            BOT_GROUP, consumer, {keys.notifications: start}, count=500, block=int(block * 1000)
        )
        entries = [entry for _, batch in answer or [] for entry in batch]
        if start == "0" and not entries:
            start = ">"
            continue
        for entry_id, fields in entries:
            try:
                queue.publish(decode_event(fields["event"]))
            except (EventDecodeError, KeyError) as exc:
                log.error("notification %s dropped: %s", entry_id, exc)
            await redis.xack(keys.notifications, BOT_GROUP, entry_id)
