"""Scaling out over Redis Streams (copytrade.scaleout), against the real Redis at 127.0.0.1:6379
(``TEST_REDIS_URL``): the shard map, the lease that fences a shard, the fills stream published
once and trimmed without losing an unacknowledged entry, consumer groups handed over when the
shard count changes, executors copying only their shard, a take-over that resumes through the
journal, and the notifications' wire format. The process-level runs are in test_scaleout_e2e.py.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal as D

import pytest
from redis.asyncio import Redis

from copytrade.cli import main as copytrade_main
from copytrade.scaleout.events import EventDecodeError, decode_event, encode_event
from copytrade.scaleout.executor import ShardExecutor
from copytrade.scaleout.fence import ShardLease
from copytrade.scaleout.fills import FillPublisher, group_positions, previous_id
from copytrade.scaleout.keys import Keys, group_name
from copytrade.scaleout.signals import SettingsSignals, deliver_notifications, follow_settings, forward_notifications
from core.copying.config import FollowPaused
from core.errors import ConfigError
from core.model import (
    CopyResult,
    CopyStatus,
    MasterOrderChange,
    MasterOrderEvent,
    OrderState,
    OrderType,
    Side,
    Skip,
    SkipReason,
)
from core.notifications import NotificationQueue
from core.sharding import Shard, shard_of
from tests.harness import BTC, eventually

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def keys(redis) -> AsyncIterator[Keys]:
    """A key prefix of this test's own, every key under it deleted afterwards."""
    keys = Keys(f"ct-test-{uuid.uuid4().hex[:12]}")
    yield keys
    leftovers = [key async for key in redis.scan_iter(keys.all_keys_pattern())]
    if leftovers:
        await redis.delete(*leftovers)


# -- the shard map ---------------------------------------------------------------------------


def test_each_follower_account_maps_to_exactly_one_shard_the_same_in_every_process():
    accounts = [uuid.uuid4().hex for _ in range(2000)]
    for count in (1, 2, 3, 8):
        owners = [[i for i in range(count) if Shard(i, count).owns(a)] for a in accounts]
        assert all(len(o) == 1 for o in owners)
        assert [o[0] for o in owners] == [shard_of(a, count) for a in accounts]
    assert shard_of("c000000000000000000000000000042", 2) == shard_of("c000000000000000000000000000042", 2)
    shares = [sum(shard_of(a, 2) == i for a in accounts) for i in (0, 1)]
    assert min(shares) > 800  # spread, not all on one shard


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2", "expected I/N"),
        ("a/2", "expected I/N"),
        ("2/2", "between 0 and 1"),
        ("0/0", "between 1 and 1024"),
        ("-1/2", "expected I/N"),
    ],
)
def test_shard_refuses_text_that_is_not_an_index_of_a_count(text, message):
    with pytest.raises(ConfigError, match=message):
        Shard.parse(text)


def test_shard_parses_index_of_count():
    assert Shard.parse(" 1/3 ") == Shard(1, 3) and str(Shard(1, 3)) == "1/3"


# -- the fence ---------------------------------------------------------------------------------


def _lease(redis, keys, shard, holder, **options) -> ShardLease:
    return ShardLease(redis, REDIS_URL, keys, shard, holder, **options)


async def test_a_shard_lease_is_refused_to_a_second_replica_and_to_another_shard_count(redis, keys):
    first = _lease(redis, keys, Shard(0, 2), "replica-a", ttl=5)
    assert await first.try_acquire() is None and first.held() and first.epoch == 1
    assert await _lease(redis, keys, Shard(0, 2), "replica-b", ttl=5).try_acquire() == "held by replica-a"
    assert await _lease(redis, keys, Shard(1, 2), "replica-c", ttl=5).try_acquire() is None  # another shard
    other_count = await _lease(redis, keys, Shard(0, 3), "replica-d", ttl=5).try_acquire()
    assert other_count is not None and "another shard count" in other_count
    await first.release()
    assert not first.held()
    assert await _lease(redis, keys, Shard(0, 2), "replica-b", ttl=5).try_acquire() is None


async def test_an_expired_lease_passes_to_the_standby_with_a_new_epoch_and_the_old_holder_stops(redis, keys):
    lost: list[str] = []
    old = _lease(redis, keys, Shard(0, 1), "old", ttl=0.3, on_lost=lost.append)
    assert await old.try_acquire() is None
    await asyncio.sleep(0.35)  # the holder stalled: it neither renewed nor sent
    assert not old.held()  # its own deadline passed before Redis let the lease go
    standby = _lease(redis, keys, Shard(0, 1), "standby", ttl=5)
    assert await standby.try_acquire() is None and standby.epoch == 2
    old._deadline = 0.0
    assert await old.confirm() is False and lost in (["held by standby"], ["taken over"])
    # a new shard count waits while the standby holds shard 0 of 1
    assert "another shard count" in (await _lease(redis, keys, Shard(0, 2), "n2", ttl=5).try_acquire() or "")
    await standby.release()


async def test_a_holder_whose_loop_stalled_past_its_deadline_keeps_a_lease_redis_still_gives_it(redis, keys):
    lost: list[str] = []
    lease = _lease(redis, keys, Shard(0, 1), "a", ttl=30, on_lost=lost.append)
    assert await lease.try_acquire() is None
    lease._deadline = 0.0  # as if the event loop had stalled past the renewal
    assert not lease.held()
    assert await lease.confirm() is True and lease.held() and lease.epoch == 1 and lost == []
    await redis.hset(keys.leases, "1:0", "intruder|99999999999999")
    lease._deadline = 0.0
    assert await lease.confirm() is False and lost == ["held by intruder"]


async def test_a_holder_whose_renewal_is_refused_calls_on_lost(redis, keys):
    lost: list[str] = []
    lease = _lease(redis, keys, Shard(0, 1), "a", ttl=0.4, on_lost=lost.append)
    assert await lease.acquire(asyncio.Event())
    await redis.hset(keys.leases, "1:0", "intruder|99999999999999")  # someone else owns it now
    await eventually(lambda: bool(lost), "the lease loss noticed")
    assert lost == ["held by intruder"] and not lease.held()
    await lease.release()


# -- the fills stream --------------------------------------------------------------------------


async def test_a_fill_is_published_once_however_often_the_listener_retries_and_then_counts_as_planned(h, redis, keys):
    publisher = FillPublisher(redis, keys, h.journal)
    entry = await h.journal.journal_fill(h.fill())
    assert entry is not None
    assert await publisher.publish(entry.fill_id) is True
    assert await publisher.publish(entry.fill_id) is False  # a listener restarted between XADD and marking
    assert await publisher.recover() == 0  # planned: nothing left to hand on
    entries = await redis.xrange(keys.fills)
    assert [fields for _, fields in entries] == [{"kind": "fill", "fill_id": str(entry.fill_id)}]


async def test_a_fill_journaled_before_a_listener_stopped_is_published_at_its_restart(h, redis, keys):
    publisher = FillPublisher(redis, keys, h.journal)
    first = await h.journal.journal_fill(h.fill())
    second = await h.journal.journal_fill(h.fill(Side.SELL))
    assert first and second
    await publisher.on_fill(h.fill())  # a third one arrives normally
    assert await publisher.recover() == 2
    assert await publisher.recover() == 0
    published = [int(fields["fill_id"]) for _, fields in await redis.xrange(keys.fills)]
    assert sorted(published) == [first.fill_id, second.fill_id, first.fill_id + 2]


async def test_trimming_drops_only_entries_every_shard_group_has_acknowledged(h, redis, keys):
    ids = [await redis.xadd(keys.fills, {"kind": "fill", "fill_id": str(i)}) for i in range(6)]
    for index in (0, 1):
        await redis.xgroup_create(keys.fills, group_name(Shard(index, 2)), id="0")
    # shard 0 took and acknowledged all six; shard 1 took four and acknowledged the first two
    got = await redis.xreadgroup(group_name(Shard(0, 2)), "a", {keys.fills: ">"}, count=6)
    await redis.xack(keys.fills, group_name(Shard(0, 2)), *[i for i, _ in got[0][1]])
    got = await redis.xreadgroup(group_name(Shard(1, 2)), "b", {keys.fills: ">"}, count=4)
    await redis.xack(keys.fills, group_name(Shard(1, 2)), ids[0], ids[1])
    positions = await group_positions(redis, keys)
    assert positions == {group_name(Shard(0, 2)): ids[5], group_name(Shard(1, 2)): previous_id(ids[2])}
    await FillPublisher(redis, keys, h.journal).trim()
    left = [entry_id for entry_id, _ in await redis.xrange(keys.fills)]
    assert set(ids[2:]) <= set(left)  # the unacknowledged two and the undelivered two are kept


def test_previous_id_is_just_before_an_entry_id():
    assert previous_id("1700000000000-3") == "1700000000000-2"
    assert previous_id("1700000000000-0") == f"1699999999999-{2**64 - 1}"
    assert previous_id("0-0") == "0-0"


async def test_a_new_shard_count_starts_where_the_old_group_stands_and_replaces_it(h, redis, keys):
    ids = [await redis.xadd(keys.fills, {"kind": "fill", "fill_id": str(i)}) for i in range(4)]
    old = group_name(Shard(0, 1))
    await redis.xgroup_create(keys.fills, old, id="0")
    got = await redis.xreadgroup(old, "dead", {keys.fills: ">"}, count=3)
    await redis.xack(keys.fills, old, got[0][1][0][0])  # the second and third were never acknowledged
    executor = ShardExecutor(redis, REDIS_URL, keys, Shard(1, 2), h.engine, "new")
    await executor.adopt_groups()
    groups = {g["name"]: g for g in await redis.xinfo_groups(keys.fills)}
    assert set(groups) == {group_name(Shard(0, 2)), group_name(Shard(1, 2))}
    for name in groups:
        delivered = await redis.xreadgroup(name, "x", {keys.fills: ">"}, count=10)
        assert [i for i, _ in delivered[0][1]] == ids[1:]


# -- executors --------------------------------------------------------------------------------


async def _followers_on_both_shards(h, per_shard: int = 2) -> dict[int, list]:
    """Follows whose accounts map to shard 0 and 1 of 2: {shard: [(follow_id, venue), ...]}."""
    by_shard: dict[int, list] = {0: [], 1: []}
    while min(len(v) for v in by_shard.values()) < per_shard:
        follow_id, venue = await h.add_follower()
        by_shard[shard_of(venue.account_id, 2)].append((follow_id, venue))
    return by_shard


async def _run(executor: ShardExecutor, stop: asyncio.Event) -> asyncio.Task[None]:
    task = asyncio.create_task(executor.run(stop))
    await eventually(lambda: executor.lease.held(), "the executor active")
    return task


async def test_each_shard_copies_a_published_fill_to_its_own_follows_only_and_acknowledges_it(h, redis, keys):
    by_shard = await _followers_on_both_shards(h)
    stop = asyncio.Event()
    executors = [ShardExecutor(redis, REDIS_URL, keys, Shard(i, 2), h.engine, f"r{i}", block=0.05) for i in (0, 1)]
    tasks = [await _run(e, stop) for e in executors]
    publisher = FillPublisher(redis, keys, h.journal)
    await publisher.on_fill(h.fill(qty="0.5"))
    await eventually(lambda: all(e.handled == 1 for e in executors), "both shards done")
    stop.set()
    await asyncio.gather(*tasks)
    for follows in by_shard.values():
        for _, venue in follows:
            assert venue.place_calls == 1 and [o.intent.quantity for o in venue.orders.values()] == [D("0.5")]
    for index in (0, 1):
        assert (await redis.xpending(keys.fills, group_name(Shard(index, 2))))["pending"] == 0


async def test_a_masters_cancel_and_amendment_travel_the_fills_stream_to_every_shards_resting_copies(h, redis, keys):
    by_shard = await _followers_on_both_shards(h)
    stop = asyncio.Event()
    executors = [ShardExecutor(redis, REDIS_URL, keys, Shard(i, 2), h.engine, f"r{i}", block=0.05) for i in (0, 1)]
    tasks = [await _run(e, stop) for e in executors]
    publisher = FillPublisher(redis, keys, h.journal)
    price = h.exchange.prices[BTC]
    fill = h.fill(qty="0.5", price=str(price - 100), order_type=OrderType.LIMIT)  # the copies rest
    await publisher.on_fill(fill)
    moved = MasterOrderEvent(fill.master_id, fill.order_id, fill.symbol, MasterOrderChange.AMENDED, price - 50)
    await publisher.on_fill(moved)
    await publisher.on_fill(MasterOrderEvent(fill.master_id, fill.order_id, fill.symbol, MasterOrderChange.CANCELED))
    await eventually(lambda: all(e.handled == 3 for e in executors), "both shards done")
    stop.set()
    await asyncio.gather(*tasks)
    for follows in by_shard.values():
        for _, venue in follows:  # each copy moved once (a new order at the new price), then cancelled
            assert sorted((o.intent.price, o.state) for o in venue.orders.values()) == [
                (price - 100, OrderState.CANCELED),
                (price - 50, OrderState.CANCELED),
            ]
    entries = [fields for _, fields in await redis.xrange(keys.fills)]
    assert [(e["kind"], e.get("change"), e.get("price")) for e in entries] == [
        ("fill", None, None),
        ("order", "amended", str(price - 50)),
        ("order", "canceled", None),
    ]


async def test_a_replica_taking_over_resumes_an_unacknowledged_fill_through_the_journal_without_a_second_order(
    h, redis, keys
):
    by_shard = await _followers_on_both_shards(h, per_shard=3)
    shard = Shard(0, 1)
    publisher = FillPublisher(redis, keys, h.journal)
    dead = ShardExecutor(redis, REDIS_URL, keys, shard, h.engine, "dead", lease_ttl=0.3)
    assert await dead.lease.try_acquire() is None
    await dead.adopt_groups()
    await publisher.on_fill(h.fill(qty="0.2"))
    [[_, [(entry_id, fields)]]] = await redis.xreadgroup(dead.group, "dead", {keys.fills: ">"}, count=1)
    # it copied the fill, then died before acknowledging it (and stopped renewing its lease)
    await h.engine.copy_journaled(int(fields["fill_id"]), shard.owns)
    stop = asyncio.Event()
    standby = ShardExecutor(
        redis, REDIS_URL, keys, shard, h.engine, "standby", lease_ttl=0.3, claim_idle=0.1, block=0.05
    )
    task = asyncio.create_task(standby.run(stop))
    await eventually(lambda: standby.handled == 1, "the standby's take-over")
    stop.set()
    await task
    assert standby.lease.epoch == 0 and (await redis.xpending(keys.fills, standby.group))["pending"] == 0
    venues = [venue for follows in by_shard.values() for _, venue in follows]
    assert [v.place_calls for v in venues] == [1] * len(venues)  # looked up in the journal, not sent again
    assert entry_id not in {i for i, _ in await redis.xreadgroup(standby.group, "standby", {keys.fills: "0"})}
    assert [c["name"] for c in await redis.xinfo_consumers(keys.fills, standby.group)] == ["standby"]


async def test_settings_changes_reach_every_subscriber_and_a_new_master_reaches_the_listener(redis, keys):
    follows: list[int] = []
    masters: list[int] = []

    async def master_added(master_id: int) -> None:
        masters.append(master_id)

    ready = asyncio.Event()
    listening = asyncio.create_task(
        follow_settings(
            redis,
            keys,
            follows_changed=follows.append,
            master_added=master_added,
            ready=ready,
        )
    )
    await ready.wait()
    signals = SettingsSignals(redis, keys)
    signals.follows_changed(7)  # published from a task of its own: in order with the next only once flushed
    await signals.flush()
    await signals.master_added(3)
    await eventually(lambda: masters == [3] and follows == [7], "the signals")
    listening.cancel()
    await asyncio.gather(listening, return_exceptions=True)
    assert follows == [7]


# -- notifications -----------------------------------------------------------------------------


async def test_notifications_travel_from_an_executor_to_the_bot_role_queue(h, redis, keys):
    result = CopyResult(3, 4, 1, "ct1", h.fill(), CopyStatus.SKIPPED, skip=Skip(SkipReason.STALE_FILL, "40s old"))
    paused = FollowPaused(3, 4, "the exchange refused your key")
    executor_queue, bot_queue = NotificationQueue(), NotificationQueue()
    executor_queue.publish(result)
    executor_queue.publish(paused)
    tasks = [
        asyncio.create_task(forward_notifications(redis, keys, executor_queue)),
        asyncio.create_task(deliver_notifications(redis, keys, bot_queue, "bot-1", block=0.05)),
    ]
    try:
        await eventually(lambda: bot_queue.pending() == 2, "both notifications delivered")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert bot_queue.take_all() == [result, paused]


def test_a_notification_of_an_unknown_type_is_refused_not_built():
    with pytest.raises(EventDecodeError, match="not a notification"):
        decode_event('{"type": "os.system", "event": {"command": "rm -rf /"}}')
    paused = FollowPaused(1, 2, "why")
    assert decode_event(encode_event(paused)) == paused


# -- the command line --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "env", "message"),
    [
        (["--role", "executor"], {}, "--shard: required with --role executor"),
        (["--role", "executor", "--shard", "2/2"], {}, "--shard: the index must be between 0 and 1"),
        (["--role", "listener", "--shard", "0/2"], {}, "--shard: only with --role executor"),
        (["--role", "listener"], {}, "REDIS_URL: required for --role listener"),
        (["--role", "bot"], {}, "TELEGRAM_BOT_TOKEN: required for --role bot"),
        (
            ["--role", "bot"],
            {"REDIS_URL": REDIS_URL, "TELEGRAM_BOT_TOKEN": "123:abc"},
            "DATABASE_URL: --role bot needs PostgreSQL",
        ),
    ],
)
def test_a_role_that_cannot_run_says_which_setting_is_wrong_and_exits_2(
    arguments, env, message, monkeypatch, tmp_path, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert copytrade_main(["run", *arguments]) == 2
    err = capsys.readouterr().err
    assert err.startswith("copytrade: error: ") and message in err
    assert not (tmp_path / "x.db").exists()  # refused before anything was opened
