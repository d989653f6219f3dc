"""The HTTP surface under a flood while a paper master trades: copying never waits for HTTP.

The service (core loop: storage, listeners, the copier) runs in this test's loop with its real HTTP
server; another process floods that server with 2,000 requests (made-up, well-formed unknown,
valid and missing tokens, and 10 MB bodies). The master trades the same number of times in a quiet
phase and during the flood; each trade's copy latency is master trade → every follower's copy
result. The figures are compared with each other, never with a clock figure: p50 and p99 under the
flood within 1.2× of the quiet run's, and the server's memory bounded (a 10 MB body is never read)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import statistics
import sys
import time

import httpx
import pytest

from copytrade.app import build_app
from copytrade.config import Settings
from copytrade.http.api import PREFIX
from copytrade.http.server import start_http_server
from copytrade.paper_setup import add_paper_follower, create_paper_master
from core.api_tokens import new_token
from core.model import CopyResult
from core.vault import generate_key
from core.venues.paper.trader import PaperTrader
from core.venues.paper.venue import PaperVenue

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

REQUESTS = 2_000
MAX_TRADES = 200
MIN_TRADES = 20
FOLLOWERS = 3
BIG_BODY = 10 * 1024 * 1024

#: the flood, from another process: raw HTTP/1.1 over asyncio streams, 4 connections at a time
FLOODER = r"""
import asyncio, json, sys

port, plan = int(sys.argv[1]), json.loads(sys.stdin.read())
BIG = 10 * 1024 * 1024
counts = {}

async def one(kind, token):
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        counts["refused"] = counts.get("refused", 0) + 1
        return
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    try:
        if kind == "big":
            head = (f"POST /api/v1/copytrading/follow HTTP/1.1\r\nHost: x\r\n{auth}"
                    f"Content-Type: application/json\r\nContent-Length: {BIG}\r\nConnection: close\r\n\r\n")
            writer.write(head.encode())
            chunk = b"x" * (1024 * 1024)
            for _ in range(10):
                writer.write(chunk)
                await writer.drain()
        else:
            head = (f"GET /api/v1/copytrading/follows HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n")
            writer.write(head.encode())
            await writer.drain()
        status = (await reader.readline()).split(b" ")[1].decode()
    except (OSError, IndexError):
        status = "closed"
    finally:
        writer.close()
    counts[status] = counts.get(status, 0) + 1

async def main():
    queue = list(plan)
    async def worker():
        while queue:
            await one(*queue.pop())
    await asyncio.gather(*(worker() for _ in range(4)))
    print(json.dumps(counts))

asyncio.run(main())
"""


def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _pin(cores: set[int]) -> None:
    """Every thread of this process on ``cores`` (sched_setaffinity sets one thread)."""
    for thread in os.listdir("/proc/self/task"):
        os.sched_setaffinity(int(thread), cores)


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def test_a_flood_of_requests_does_not_slow_copying_and_never_grows_the_server(tmp_path, migrated_sqlite):
    app = await build_app(
        Settings(database_url=migrated_sqlite(tmp_path / "flood.db"), secret_key=generate_key(), data_dir=tmp_path)
    )
    copies: asyncio.Queue[CopyResult] = asyncio.Queue()

    async def collect(event: object) -> None:
        if isinstance(event, CopyResult):
            copies.put_nowait(event)

    consumer = asyncio.create_task(app.notifications.consume(collect))
    server = await start_http_server(app, host="127.0.0.1", port=0)
    try:
        master, key = await create_paper_master(app.services, "Ace", "1000000")
        users = []
        for n in range(FOLLOWERS):
            follow, _ = await add_paper_follower(app.services, master.id, f"F{n}", "100000", {"sizing_value": "1"})
            users.append(follow.user_id)
        valid, _ = await app.api_tokens.create(users[0], "read")
        venue = await app.venues.venue_for(key.id)
        assert isinstance(venue, PaperVenue)
        await app.start_listeners()
        trader = PaperTrader(app.paper, venue, random.Random(5))

        async def trade_and_wait() -> float:
            started = time.monotonic()
            await trader.step()
            for _ in range(FOLLOWERS):
                await asyncio.wait_for(copies.get(), 30)
            return time.monotonic() - started

        for _ in range(3):  # warm up: markets, caches, first connections
            await trade_and_wait()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            answer = await client.get(f"{PREFIX}/follows", headers={"Authorization": f"Bearer {valid}"})
            assert answer.status_code == 200  # the valid token works before the flood

        kinds = ["made-up", "unknown", "valid", "none", "big"]
        plan = []
        for n in range(REQUESTS):
            kind = kinds[n % len(kinds)]
            token = {"made-up": "ctk_" + "x" * 49, "unknown": new_token(), "valid": valid, "none": ""}.get(kind, "")
            plan.append(("big" if kind == "big" else "get", token if kind != "big" else new_token()))
        rss_before = _rss_bytes()
        # the attacker's CPU is not the server's: the flooder on one core, this process (the service,
        # its HTTP thread and the copier) on the other
        cores = sorted(os.sched_getaffinity(0))
        _pin({cores[0]})
        flooder = await asyncio.create_subprocess_exec(
            "taskset",
            "-c",
            str(cores[-1]),
            sys.executable,
            "-c",
            FLOODER,
            str(server.port),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert flooder.stdin is not None
        flooder.stdin.write(json.dumps(plan).encode())
        flooder.stdin.close()
        # Quiet and flooded trades alternate (the flooder paused, then running), so that whatever else
        # the machine does weighs on both alike: the two sets are comparable within one run.
        quiet: list[float] = []
        flooded: list[float] = []
        while len(flooded) < MAX_TRADES:
            try:
                flooder.send_signal(signal.SIGSTOP)
                await asyncio.sleep(0.05)  # the requests in flight answered
                quiet.append(await trade_and_wait())
                flooder.send_signal(signal.SIGCONT)
            except ProcessLookupError:  # the flood is over
                break
            flooded.append(await trade_and_wait())
        output, _ = await asyncio.wait_for(flooder.communicate(), 120)
        rss_after = _rss_bytes()
        _pin(set(cores))
        counts = json.loads(output)
    finally:
        await server.stop()
        consumer.cancel()
        await app.close()

    assert sum(counts.values()) == REQUESTS, counts
    assert counts.get("413", 0) + counts.get("closed", 0) >= REQUESTS // 5, counts  # no 10 MB body was taken
    assert counts.get("429", 0) > 0 and counts.get("401", 0) > 0 and not any(s.startswith("5") for s in counts)
    assert counts.get("200", 0) <= REQUESTS // 5, counts  # only the valid token's, within its rate
    ratio_p50 = statistics.median(flooded) / statistics.median(quiet)
    ratio_p99 = _p(flooded, 0.99) / _p(quiet, 0.99)
    print(
        f"\n{len(flooded)} trades under the flood; copy latency under the flood / quiet: p50 {ratio_p50:.2f}x, "
        f"p99 {ratio_p99:.2f}x (quiet p50 {statistics.median(quiet) * 1000:.1f} ms); server memory "
        f"+{(rss_after - rss_before) / 2**20:.1f} MiB; answers {counts}"
    )
    assert len(flooded) >= MIN_TRADES, "the flood ended before the master had traded through it"
    assert ratio_p50 <= 1.2 and ratio_p99 <= 1.2, (ratio_p50, ratio_p99, counts)
    assert rss_after - rss_before < 64 * 1024 * 1024, (rss_before, rss_after)  # 200 bodies of 10 MB were sent
