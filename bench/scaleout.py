"""Benchmark 6 — scaling out: the same fill copied by 1 executor shard, then by 2, each its own
``copytrade run --role executor`` process, with the real ccxt client path against the fake
Binance in a process of its own and a real ``--role listener`` process watching the master.

Per fill: the master's execution pushed on its user-data socket → the last follower's answer
recorded (``copy_orders.completed_at``). Fills are measured once each shard's accounts are warm
(one unmeasured fill first: leverage and margin settings, cold ccxt clients). In the 2-shard
run, shard 0 has a standby replica, and the replica holding the lease is SIGKILLed in the middle
of one more fill's fan-out: the standby takes the lease over and resumes through the journal.
Then every follower account's orders are read from the exchange: ``duplicates`` counts client
order ids placed more than once (or unknown to the journal), ``missing`` the (fill, follow) pairs
with no order on the venue.

``ScaleoutRig`` is also what the process-level tests drive (tests/test_scaleout_e2e.py).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from redis.asyncio import Redis

from bench.common import add_master, seed_accounts, summary
from bench.fake_exchange import FakeExchangeProcess, account_key
from copytrade.config import Mode, Settings
from core.copying.ids import client_order_id
from core.model import Fill, Side
from core.vault import generate_key

ROOT = Path(__file__).resolve().parents[1]
SYMBOL = "BTCUSDT"
QUANTITY = "0.01"
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MASTER = "master"
FOLLOWER = "follower"


@dataclass
class ScaleoutRig:
    """A fake exchange process, a fresh PostgreSQL schema, a Redis key prefix, a master and
    ``followers`` follows; starts, kills and stops role processes; counts what reached the venue."""

    followers: int
    latency: float = 0.0
    lease_seconds: float = 5.0
    extra_env: dict[str, str] = field(default_factory=dict)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="copytrade-scaleout-")))
    processes: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    follows: dict[int, str] = field(default_factory=dict)  # follow id -> follower api key
    credentials: dict[int, str] = field(default_factory=dict)  # follow id -> its stored credential
    trades: int = 0
    redis_url: str = field(default_factory=lambda: os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))

    def __post_init__(self) -> None:
        self.schema = f"scaleout_{uuid.uuid4().hex[:10]}"
        self.prefix = f"ct-test-{uuid.uuid4().hex[:10]}"
        self.database_url = f"{POSTGRES_URL}?options=-csearch_path%3D{self.schema}"
        self.secret_key = generate_key()
        self.exchange = FakeExchangeProcess(self.latency)
        self.redis = Redis.from_url(self.redis_url, decode_responses=True)
        self._side = itertools.cycle(["BUY", "SELL"])

    # -- set-up and tear-down ---------------------------------------------------------------

    async def __aenter__(self) -> ScaleoutRig:
        try:
            await self.redis.ping()  # before anything is created
        except Exception:
            await self.redis.aclose()
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f'CREATE SCHEMA "{self.schema}"')
        try:
            await self.exchange.start()
            await self.exchange.add_accounts(MASTER, 1)
            await self.exchange.add_accounts(FOLLOWER, self.followers)
            await self._seed()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Everything stopped and deleted; the processes' logs are kept when the run failed."""
        for process in self.processes.values():
            if process.returncode is None:
                process.kill()
                await process.wait()
        await self.exchange.stop()
        keys = [key async for key in self.redis.scan_iter(f"{self.prefix}:*")]
        if keys:
            await self.redis.delete(*keys)
        await self.redis.aclose()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{self.schema}" CASCADE')
        if not exc_info or exc_info[0] is None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def settings(self) -> Settings:
        return Settings(
            database_url=self.database_url,
            secret_key=self.secret_key,
            mode=Mode.TESTNET,
            venue_urls={"binanceusdm": self.exchange.url_overrides()},
            data_dir=self.workdir,
        )

    async def _seed(self) -> None:
        from copytrade.app import build_app

        app = await build_app(self.settings())
        try:
            key, secret = account_key(MASTER, 0)
            master_id, _ = await add_master(app, "binanceusdm", {"api_key": key, "secret": secret}, "testnet")
            accounts = [account_key(FOLLOWER, i) for i in range(self.followers)]
            follows = await seed_accounts(
                app,
                "binanceusdm",
                ({"api_key": k, "secret": s} for k, s in accounts),
                "testnet",
                master_id=master_id,
            )
            self.follows = {follow_id: api_key for (follow_id, _), (api_key, _) in zip(follows, accounts, strict=True)}
            self.credentials = dict(follows)
        finally:
            await app.close()

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("COPYTRADE_", "TELEGRAM_", "DATABASE_URL"))}
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        return {
            **keep,
            "PYTHONPATH": path,
            "DATABASE_URL": self.database_url,
            "COPYTRADE_SECRET_KEY": self.secret_key,
            "COPYTRADE_MODE": "testnet",
            "COPYTRADE_VENUE_URLS": json.dumps({"binanceusdm": self.exchange.url_overrides()}),
            "COPYTRADE_DATA_DIR": str(self.workdir),
            "REDIS_URL": self.redis_url,
            "REDIS_PREFIX": self.prefix,
            "SHARD_LEASE_SECONDS": str(self.lease_seconds),
            "MAX_FILL_AGE_SECONDS": "3600",  # fills resumed after a kill are copied, not stale
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }

    # -- processes ----------------------------------------------------------------------------

    async def start(self, name: str, *arguments: str) -> asyncio.subprocess.Process:
        """``copytrade run <arguments>`` as process ``name`` (its output in ``<workdir>/<name>.log``)."""
        log = await asyncio.to_thread(open, self.workdir / f"{name}.log", "ab")
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "copytrade",
                "run",
                *arguments,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=str(self.workdir),
                env=self.env(),
            )
        finally:
            log.close()
        self.processes[name] = process
        return process

    async def kill(self, name: str) -> None:
        process = self.processes[name]
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
        await process.wait()

    async def stop(self, name: str, within: float = 30.0) -> int:
        process = self.processes[name]
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), timeout=within)
        assert process.returncode is not None
        return process.returncode

    def cpu_seconds(self, *names: str) -> float:
        """User + system CPU the named processes have used so far (Linux /proc)."""
        total = 0.0
        for name in names:
            fields = Path(f"/proc/{self.processes[name].pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def start_listener(self, name: str = "listener") -> None:
        before = (await self.exchange.stats())["open_websockets"]
        await self.start(name, "--role", "listener")
        await self.wait_for(lambda: self._sockets_above(before), 90, f"{name}'s user-data stream", watch=name)

    async def _sockets_above(self, before: int) -> bool:
        return int((await self.exchange.stats())["open_websockets"]) > before

    async def lease_holder_pid(self, shard: str) -> int | None:
        """The pid of the replica holding ``I/N``'s lease (replica names are host-pid-token)."""
        index, count = shard.split("/")
        value = await self.redis.hget(f"{self.prefix}:leases", f"{count}:{index}")
        if value is None:
            return None
        holder = value.split("|", 1)[0]
        return int(holder.rsplit("-", 2)[1])

    async def wait_active(self, shard: str, within: float = 60.0) -> int:
        """Until some replica holds the shard's lease; its pid."""
        pid: list[int] = []

        async def held() -> bool:
            holder = await self.lease_holder_pid(shard)
            if holder is not None:
                pid.append(holder)
            return holder is not None

        await self.wait_for(held, within, f"shard {shard}'s lease")
        return pid[-1]

    def name_of(self, pid: int) -> str:
        return next(name for name, process in self.processes.items() if process.pid == pid)

    async def wait_for(self, ready: Any, within: float, what: str, *, watch: str | Sequence[str] | None = None) -> None:
        """Until ``ready()``; a process in ``watch`` that exits meanwhile fails the wait at once."""
        watched = [watch] if isinstance(watch, str) else list(watch or ())
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if await ready():
                return
            for name in watched:
                process = self.processes[name]
                if process.returncode is not None:
                    last = (self.log(name).strip().splitlines() or ["(no output)"])[-1]
                    raise RuntimeError(
                        f"{name} exited ({process.returncode}) while waiting for {what}; its last line: {last} "
                        f"(logs kept in {self.workdir})\n{self.log(name)[-3000:]}"
                    )
            await asyncio.sleep(0.05)
        logs = "\n".join(f"--- {name}\n{self.log(name)[-2000:]}" for name in self.processes)
        raise RuntimeError(f"timed out after {within} s waiting for {what}\n{logs}")

    # -- the master and what reached the venue ------------------------------------------------

    async def trade(self, side: str | None = None) -> float:
        """One master execution (buys and sells in turn unless ``side``); the wall-clock second it
        was pushed to the listener. An entry, not an exit, is what a resend would double: an exit is
        reduce-only, and the exchange refuses a second one once the position is closed."""
        sent = await self.exchange.trade(account_key(MASTER, 0)[0], SYMBOL, side or next(self._side), QUANTITY)
        self.trades += 1
        return sent[0] / 1e9

    def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as connection:
            return list(connection.execute(sql).fetchall())

    def recorded(self, follow_ids: list[int] | None = None) -> int:
        """Copies whose venue answer is recorded (placed or filled), of ``follow_ids`` or all."""
        among = f" AND follow_id IN ({','.join(map(str, follow_ids))})" if follow_ids else ""
        return int(self._rows(f"SELECT count(*) FROM copy_orders WHERE status IN ('placed', 'filled'){among}")[0][0])

    def last_recorded_at(self) -> float:
        return float(self._rows("SELECT extract(epoch FROM max(completed_at)) FROM copy_orders")[0][0])

    async def wait_copied(self, within: float, watch: Sequence[str] = ()) -> None:
        """Until every trade so far is journaled and copied to every follow."""
        expected = self.trades * len(self.follows)

        async def done() -> bool:
            return await asyncio.to_thread(self.recorded) >= expected

        await self.wait_for(done, within, f"{expected} copies recorded", watch=watch)

    async def venue_counts(self) -> dict[str, int]:
        """``duplicates`` and ``missing`` over every trade so far, from the exchange's own orders."""
        fills = await asyncio.to_thread(self._rows, "SELECT venue, trade_id FROM master_fills")
        orders = await self.exchange.orders(FOLLOWER)
        duplicates = missing = 0
        for follow_id, api_key in self.follows.items():
            placed = collections.Counter(orders.get(api_key, []))
            expected = {_client_id(venue, trade_id, follow_id) for venue, trade_id in fills}
            duplicates += sum(n - 1 if cid in expected else n for cid, n in placed.items())
            missing += len(expected - placed.keys())
        missing += (self.trades - len(fills)) * len(self.follows)  # never journaled
        return {"duplicates": duplicates, "missing": missing}


def _client_id(venue: str, trade_id: str, follow_id: int) -> str:
    stand_in = Fill(0, venue, trade_id, "", "", Side.BUY, Decimal(1), Decimal(1))
    return client_order_id(stand_in, follow_id, 0)


async def _measured_fills(
    rig: ScaleoutRig, fills: int, within: float, watch: Sequence[str], executors: Sequence[str]
) -> tuple[list[float], dict[str, float]]:
    """One unmeasured fill (cold clients, leverage and margin settings), then ``fills`` measured;
    with the CPU seconds per measured fill of the executors and of the exchange process."""
    await rig.trade()
    await rig.wait_copied(within, watch)
    measured = []
    executors_cpu, server_cpu = rig.cpu_seconds(*executors), (await rig.exchange.stats())["cpu_s"]
    for _ in range(fills):
        await asyncio.sleep(0.3)
        sent = await rig.trade()
        await rig.wait_copied(within, watch)
        measured.append((await asyncio.to_thread(rig.last_recorded_at) - sent) * 1000)
    cpu = {
        "executors_cpu_s_per_fill": round((rig.cpu_seconds(*executors) - executors_cpu) / fills, 2),
        "exchange_cpu_s_per_fill": round(((await rig.exchange.stats())["cpu_s"] - server_cpu) / fills, 2),
    }
    return measured, cpu


async def run_scaleout(
    followers: int, fills: int = 3, rtt: float = 0.02, within: float = 600.0, lease_seconds: float = 15.0
) -> dict[str, Any]:
    """``lease_seconds``: at 10,000 followers on 2 shared cores a process can be starved for
    seconds (garbage collections of a large heap hold the interpreter): a lease that short would
    hand the shard over without anyone having died."""
    async with ScaleoutRig(followers, latency=rtt, lease_seconds=lease_seconds) as rig:
        await rig.start_listener()
        await rig.start("one", "--role", "executor", "--shard", "0/1")
        await rig.wait_active("0/1")
        one, one_cpu = await _measured_fills(rig, fills, within, ["listener", "one"], ["one"])
        await rig.stop("one")
        for name, shard in (("a0", "0/2"), ("a1", "1/2"), ("b0", "0/2")):
            await rig.start(name, "--role", "executor", "--shard", shard)
        active = rig.name_of(await rig.wait_active("0/2"))
        await rig.wait_active("1/2")
        two, two_cpu = await _measured_fills(rig, fills, within, ["listener", "a0", "a1", "b0"], ["a0", "a1", "b0"])
        # one more fill, with shard 0's active replica killed in the middle of its fan-out
        before = await asyncio.to_thread(rig.recorded)
        await rig.trade("BUY")
        share = followers // 4  # about half of shard 0's copies
        await rig.wait_for(lambda: _at_least(rig, before + share), within, "the fan-out under way", watch=active)
        await rig.kill(active)
        killed_after = await asyncio.to_thread(rig.recorded) - before
        await rig.wait_copied(within, ["listener", "a1", "b0" if active == "a0" else "a0"])
        counts = await rig.venue_counts()
        one_p50, two_p50 = summary(one, 1)["p50"], summary(two, 1)["p50"]
        return {
            "followers": followers,
            "rtt_ms": rtt * 1000,
            "one_shard_ms": summary(one, 1),
            "one_shard_cpu": one_cpu,
            "two_shards_ms": summary(two, 1),
            "two_shards_cpu": two_cpu,
            "speedup_p50": round(one_p50 / two_p50, 2),
            "lease_seconds": lease_seconds,
            "killed_replica": {"copies_recorded_when_killed": killed_after, "of": followers},
            **counts,
        }


async def _at_least(rig: ScaleoutRig, count: int) -> bool:
    return await asyncio.to_thread(rig.recorded) >= count
