"""Scaled out, process by process: real ``copytrade run --role listener`` and ``--role executor``
processes, the real ccxt path against the fake Binance in its own process, PostgreSQL and Redis.
Each test counts, from the exchange's own orders, copies placed twice (``duplicates``) and
(fill, follow) pairs with no order (``missing``)."""

from __future__ import annotations

import asyncio

import pytest

from bench.scaleout import ScaleoutRig
from core.sharding import Shard

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(120)]


async def test_an_executor_replica_killed_mid_fan_out_leaves_no_duplicate_and_no_missing_copy():
    # a slow exchange and two orders at a time: shard 0's fan-out lasts seconds, the kill lands inside it
    async with ScaleoutRig(30, latency=0.15, extra_env={"MAX_CONCURRENT_ORDERS": "2"}) as rig:
        await rig.start_listener()
        for name, shard in (("a0", "0/2"), ("a1", "1/2"), ("b0", "0/2")):
            await rig.start(name, "--role", "executor", "--shard", shard)
        active = rig.name_of(await rig.wait_active("0/2"))
        await rig.wait_active("1/2")
        standby = "b0" if active == "a0" else "a0"
        await rig.trade("BUY")
        await rig.wait_copied(60)
        shard0 = [f for f, credential in rig.credentials.items() if Shard(0, 2).owns(credential)]
        before = await asyncio.to_thread(rig.recorded, shard0)
        await rig.trade("BUY")  # an entry: a copy sent twice would be placed twice

        async def under_way() -> bool:
            return await asyncio.to_thread(rig.recorded, shard0) >= before + 2

        await rig.wait_for(under_way, 30, "shard 0's fan-out under way", watch=active)
        await rig.kill(active)
        at_kill = await asyncio.to_thread(rig.recorded, shard0) - before
        assert 2 <= at_kill < len(shard0), "the kill did not land in the middle of the fan-out"
        await rig.wait_copied(60)
        assert await rig.venue_counts() == {"duplicates": 0, "missing": 0}
        assert await rig.lease_holder_pid("0/2") == rig.processes[standby].pid
        assert "claimed 1 unacknowledged entries" in rig.log(standby)


async def test_a_listener_restarted_copies_the_fills_made_while_it_was_down_once():
    async with ScaleoutRig(6) as rig:
        await rig.start_listener()
        await rig.start("executor", "--role", "executor", "--shard", "0/1")
        await rig.wait_active("0/1")
        await rig.trade()
        await rig.wait_copied(60)
        await rig.kill("listener")
        await rig.trade()  # the gap: two fills nobody is listening for
        await rig.trade()
        await rig.start_listener("listener-again")
        await rig.wait_copied(60)
        await rig.trade()  # and it streams again
        await rig.wait_copied(60)
        assert await rig.venue_counts() == {"duplicates": 0, "missing": 0}
        assert rig.trades == 4 and await asyncio.to_thread(rig.recorded) == 4 * 6


async def test_changing_the_shard_count_during_traffic_hands_every_follow_over_without_two_senders():
    async with ScaleoutRig(10, latency=0.05) as rig:
        await rig.start_listener()
        await rig.start("one", "--role", "executor", "--shard", "0/1")
        await rig.wait_active("0/1")
        await rig.trade()
        await rig.wait_copied(60)
        for name, shard in (("two0", "0/2"), ("two1", "1/2")):
            await rig.start(name, "--role", "executor", "--shard", shard)
        await asyncio.sleep(rig.lease_seconds)  # up and standing by: the fence keeps them out
        assert await rig.lease_holder_pid("0/2") is None and await rig.lease_holder_pid("1/2") is None

        async def traffic() -> None:
            for _ in range(4):
                await rig.trade()
                await asyncio.sleep(0.4)

        trading = asyncio.create_task(traffic())
        await asyncio.sleep(0.5)
        assert await rig.stop("one") == 0  # finishes its entry, acknowledges, releases its lease
        await rig.wait_active("0/2")
        await rig.wait_active("1/2")
        await trading
        await rig.wait_copied(60)
        assert await rig.venue_counts() == {"duplicates": 0, "missing": 0}
        assert "replacing {'shard-0-of-1'" in rig.log("two0") + rig.log("two1")
