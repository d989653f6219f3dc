"""``copytrade run --role listener | executor --shard I/N | bot``: the processes of a scaled-out
deployment (REDIS_URL and a PostgreSQL DATABASE_URL). ``copytrade run`` without ``--role`` stays
the single all-in-one process and never touches Redis.

- listener: watches every master, journals each fill, publishes it once to the fills stream;
- executor: copies the fills to the follower accounts of its shard (replicas of one shard stand
  by for its lease); forwards its notifications to the bot role;
- bot: Telegram, and the notifications the executors produced; settings changes made there are
  signalled to every executor (and a new master to the listener).

Not sharded yet, so not run in this mode: the periodic settle of copies whose answer was lost
(an executor retries its own unacknowledged fills instead), the open-order tracking and the risk
jobs (take-profit / stop-loss upkeep, loss limit, reconciliation).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
from collections.abc import Awaitable
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from copytrade.config import Settings
from copytrade.logs import SecretRedactor
from copytrade.scaleout.executor import ShardExecutor
from copytrade.scaleout.fills import FillPublisher
from copytrade.scaleout.keys import Keys
from copytrade.scaleout.signals import SettingsSignals, deliver_notifications, follow_settings, forward_notifications
from core.engine import CopyEngine
from core.errors import ConfigError
from core.listeners.supervisor import ListenerSupervisor
from core.sharding import Shard

log = logging.getLogger(__name__)

ROLES = ("listener", "executor", "bot")
#: exit status of an executor that lost its shard's lease (its supervisor restarts it as a standby)
LEASE_LOST_EXIT = 75
TRIM_EVERY_SECONDS = 10.0
TRACK_EVERY_SECONDS = 10.0  # as the all-in-one process's track-orders job


def check_role_settings(settings: Settings, role: str, shard: str | None) -> Shard | None:
    """One clear message for a role that cannot run with these settings."""
    parsed = None
    if role == "executor":
        if shard is None:
            raise ConfigError("--shard: required with --role executor (e.g. --shard 0/2)")
        parsed = Shard.parse(shard)
    elif shard is not None:
        raise ConfigError(f"--shard: only with --role executor, not --role {role}")
    if role == "bot" and not settings.telegram_bot_token:
        raise ConfigError("TELEGRAM_BOT_TOKEN: required for --role bot")
    if not settings.redis_url:
        raise ConfigError(f"REDIS_URL: required for --role {role} (the roles meet in Redis)")
    if make_url(settings.database_url).get_backend_name() == "sqlite":
        raise ConfigError(f"DATABASE_URL: --role {role} needs PostgreSQL (every role shares one journal)")
    return parsed


def replica_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on this platform / thread
            loop.add_signal_handler(signum, stop.set)
    return stop


def _exit_at_once(why: str) -> None:
    """Fail-stop: a replica that may no longer send must not finish what it was sending."""
    log.critical("shard lease lost (%s): exiting", why)
    logging.shutdown()
    os._exit(LEASE_LOST_EXIT)


async def run_role(settings: Settings, role: str, shard_text: str | None, redactor: SecretRedactor) -> int:
    shard = check_role_settings(settings, role, shard_text)
    assert settings.redis_url is not None
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    keys = Keys(settings.redis_prefix)
    try:
        await redis.ping()
        if role == "listener":
            return await run_listener(settings, redis, keys, redactor)
        if role == "executor":
            assert shard is not None
            return await run_executor(settings, redis, keys, shard, redactor)
        return await run_bot(settings, redis, keys, redactor)
    finally:
        await redis.aclose()


async def _with_tasks(
    stop: asyncio.Event | None, tasks: list[asyncio.Task[Any]], main: Awaitable[Any] | None = None
) -> None:
    """Run until ``stop`` is set or ``main`` ends (``main`` sees ``stop`` itself and finishes what
    it is doing); a background task that dies stops the process."""
    waiters: list[asyncio.Future[Any]] = [*tasks]
    if stop is not None:
        waiters.append(asyncio.ensure_future(stop.wait()))
    if main is not None:
        waiters.append(asyncio.ensure_future(main))
    try:
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
            if task in tasks:  # they run until cancelled: one that returned is a fault, not a stop
                raise RuntimeError(f"background task {task.get_name()} ended on its own")
    finally:
        for task in waiters:
            task.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


async def run_listener(settings: Settings, redis: Redis, keys: Keys, redactor: SecretRedactor) -> int:
    from copytrade.app import build_app

    app = await build_app(settings, on_secrets=redactor.add)
    publisher = FillPublisher(redis, keys, app.journal)
    app.listeners = ListenerSupervisor(publisher.on_fill)
    stop = _stop_event()
    try:
        await publisher.recover()
        await app.start_listeners()
        log.info("listener role: watching every master, publishing fills to %s", keys.fills)

        async def trim_forever() -> None:
            while True:
                await asyncio.sleep(TRIM_EVERY_SECONDS)
                await publisher.trim()

        tasks = [
            asyncio.create_task(trim_forever(), name="fills-trim"),
            asyncio.create_task(follow_settings(redis, keys, master_added=app.start_listener), name="settings"),
        ]
        await _with_tasks(stop, tasks)
        return 0
    finally:
        await app.close()


async def run_executor(settings: Settings, redis: Redis, keys: Keys, shard: Shard, redactor: SecretRedactor) -> int:
    from copytrade.app import build_app, tune_garbage_collector

    app = await build_app(settings, on_secrets=redactor.add)
    tune_garbage_collector()
    stop = _stop_event()
    assert settings.redis_url is not None
    executor = ShardExecutor(
        redis,
        settings.redis_url,
        keys,
        shard,
        app.engine,
        replica_name(),
        lease_ttl=settings.shard_lease_seconds,
        claim_idle=settings.shard_lease_seconds / 2,
        on_lost=_exit_at_once,
    )
    tasks = [
        asyncio.create_task(forward_notifications(redis, keys, app.notifications), name="notifications"),
        asyncio.create_task(
            follow_settings(
                redis,
                keys,
                follows_changed=app.engine.invalidate_follows,
            ),
            name="settings",
        ),
    ]

    async def warm_up() -> None:  # once active: a standby keeps no venue open, follows no order
        tasks.append(asyncio.create_task(app.engine.warm_up(shard.owns), name="venue-warm-up"))
        tasks.append(asyncio.create_task(_track_orders(app.engine, shard, stop), name="track-orders"))

    log.info("executor role: shard %s, replica %s (standing by for the lease)", shard, executor.consumer)
    try:
        await _with_tasks(None, tasks[:2], executor.run(stop, on_active=warm_up))
        return 0
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await app.close()


async def _track_orders(engine: CopyEngine, shard: Shard, stop: asyncio.Event) -> None:
    """The all-in-one ``track-orders`` job for this shard's follower accounts: every sent copy
    still open is followed to its end (fills after the first answer, max resting time, protected
    limits' re-pricing)."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):  # the pause between passes, cut short by a stop
            await asyncio.wait_for(stop.wait(), TRACK_EVERY_SECONDS)
        if stop.is_set():
            return
        try:
            changed = await engine.track(shard.owns)
        except Exception:  # one failed pass must not end the tracking; the next one retries
            log.exception("tracking the open copies of shard %s failed", shard)
            continue
        if changed:
            log.info("%d open copy orders of shard %s changed on their venues", len(changed), shard)


async def run_bot(settings: Settings, redis: Redis, keys: Keys, redactor: SecretRedactor) -> int:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bot.app import serve
    from copytrade.app import build_app
    from core.scheduler import add_stats_jobs

    signals = SettingsSignals(redis, keys)
    app = await build_app(
        settings,
        on_secrets=redactor.add,
        follows_changed=signals.follows_changed,
    )
    app.listener_starter = signals.master_added
    scheduler = AsyncIOScheduler(timezone="UTC")
    add_stats_jobs(scheduler, app.services.reports.refresher, app.services.reports.snapshots)
    stop = _stop_event()
    delivering = asyncio.create_task(
        deliver_notifications(redis, keys, app.notifications, replica_name()), name="notifications"
    )
    scheduler.start()
    try:
        await _with_tasks(None, [delivering], serve(app, stop, scheduler=scheduler))
        await signals.flush()
        return 0
    finally:
        scheduler.shutdown(wait=False)
        await app.close()
