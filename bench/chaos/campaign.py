"""One chaos campaign: the real ``copytrade run`` against the fake Binance process, killed with
SIGKILL at random points and restarted, with faults injected on the order path, then checked.

Everything random comes from ``--seed`` (the harness's choices here, the faults in the exchange
process), so a failing campaign can be replayed; process timing still varies from run to run.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import os
import random
import re
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
SYMBOL = "BTCUSDT"
UNIFIED = "BTC/USDT:USDT"  # the same market as ccxt names it in the database
STEP = Decimal("0.001")
#: the fake's BTCUSDT futures rules and price (tests/fakes/binance.py FUTURES_INSTRUMENTS, mark_prices)
MIN_QUANTITY = Decimal("0.001")
MIN_NOTIONAL = Decimal("100")
PRICE = Decimal("60000")
MASTER_KEY = ("chaos-master-0001", "chaos-master-secret")
COEFFICIENTS = ("1", "0.5", "2", "1.5")
#: the fixed ``--json`` keys, in order
KEYS = (
    "kills",
    "fills",
    "expected",
    "placed",
    "duplicates",
    "missing",
    "ledger_mismatches",
    "implied_mismatches",
    "unreasoned",
    "double_notified",
    "faults_injected",
    "refused",
)
NOTIFICATION = re.compile(r"notification copy=(\S+) status=(\S+)")
SENT = {"placed", "filled"}
UNFINISHED = {"pending", "placed"}
REASON_NEEDED = {"skipped", "failed"}
#: the one venue answer the model takes as given: Binance refused the order (nothing executed)
REFUSED = "Margin is insufficient"


@dataclass
class Options:
    kills: int = 10
    faults: float = 0.1
    #: share of follower orders accepted late (answered -1007 at once, placed 0.5–3 s later within
    #: the request's recvWindow, or never): 0 leaves the fault mix as it was
    late_accepts: float = 0.0
    seed: int = 1
    followers: int = 3
    database: str = "sqlite"
    timeout_fault_s: float = 11.0
    skew_s: float = 3.0
    settle_timeout_s: float = 120.0
    double_one_copy: bool = False  # the checks' own test: one filled copy is placed again before checking
    workdir: Path | None = None  # kept after the campaign (the copier's log, the SQLite database)


@dataclass
class Campaign:
    options: Options
    workdir: Path
    database_url: str
    echo: Callable[[str], None]
    rng: random.Random = field(init=False)
    events: list[tuple[float, str]] = field(default_factory=list)  # the harness's timeline
    kills: int = 0
    master_position: Decimal = Decimal(0)
    follows: dict[int, str] = field(default_factory=dict)  # follow id -> follower api key
    coefficients: dict[int, Decimal] = field(default_factory=dict)  # follow id -> its sizing coefficient
    exchange: asyncio.subprocess.Process | None = None
    port: int = 0
    copier: asyncio.subprocess.Process | None = None
    twin: asyncio.subprocess.Process | None = None  # a second copier at the same time (PostgreSQL)
    starts: int = 0
    http: aiohttp.ClientSession | None = None
    secret_key: str = ""

    def __post_init__(self) -> None:
        self.rng = random.Random(self.options.seed)

    def note(self, what: str) -> None:
        at = time.time()
        self.events.append((at, what))
        self.echo(f"{_clock(at)} {what}")

    # ------------------------------------------------------------------ the exchange process

    async def start_exchange(self) -> None:
        self.exchange = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.chaos.exchange",
            "--seed",
            str(self.options.seed),
            "--timeout",
            str(self.options.timeout_fault_s),
            "--skew",
            str(self.options.skew_s),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=str(ROOT),
            env=_env_with_root({}),
        )
        assert self.exchange.stdout is not None
        line = await asyncio.wait_for(self.exchange.stdout.readline(), timeout=60)
        if not line.strip():
            raise RuntimeError("the fake exchange process did not start")
        self.port = int(line)
        self.http = aiohttp.ClientSession()

    async def stop_exchange(self) -> None:
        if self.http is not None:
            await self.http.close()
        if self.exchange is not None and self.exchange.returncode is None:
            assert self.exchange.stdin is not None
            self.exchange.stdin.close()
            try:
                await asyncio.wait_for(self.exchange.wait(), timeout=10)
            except TimeoutError:
                self.exchange.kill()
                await self.exchange.wait()

    async def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        assert self.http is not None
        url = f"http://127.0.0.1:{self.port}/__chaos/{path}"
        async with self.http.request(method, url, json=body, params={"master": MASTER_KEY[0]}) as response:
            response.raise_for_status()
            return await response.json()

    def url_overrides(self) -> dict[str, Any]:
        from tests.fakes.binance import FakeBinance

        fake = FakeBinance()
        fake.port = self.port
        return fake.url_overrides()

    # ------------------------------------------------------------------ setup through the product's services

    def settings_env(self) -> dict[str, str]:
        urls = self.url_overrides()
        return {
            "DATABASE_URL": self.database_url,
            "COPYTRADE_SECRET_KEY": self.secret_key,
            "COPYTRADE_MODE": "testnet",
            "COPYTRADE_VENUE_URLS": json.dumps({"binanceusdm": urls, "binance": urls}),
            "COPYTRADE_DATA_DIR": str(self.workdir / "data"),
            "MAX_FILL_AGE_SECONDS": "3600",  # fills replayed after a restart are copied, not stale
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",  # every log line reaches the file before a SIGKILL
        }

    async def register(self) -> None:
        """A master and N followers, as /connect, /addmaster and /follow do it."""
        from copytrade.app import build_app
        from copytrade.config import Mode, Settings
        from core.vault import generate_key

        self.secret_key = generate_key()
        followers = [(f"chaos-follower-{i:04d}", f"chaos-secret-{i:04d}") for i in range(self.options.followers)]
        await self.control("POST", "accounts", {"keys": [list(MASTER_KEY), *map(list, followers)]})
        env = self.settings_env()
        settings = Settings(
            database_url=env["DATABASE_URL"],
            secret_key=self.secret_key,
            mode=Mode.TESTNET,
            venue_urls=json.loads(env["COPYTRADE_VENUE_URLS"]),
            data_dir=self.workdir / "data",
        )
        app = await build_app(settings)
        try:
            services = app.services
            owner = await services.register_user(9_000_001, "chaos master")
            assert owner.id is not None
            key = await services.connect_account(
                owner.id, "binanceusdm", "master", {"api_key": MASTER_KEY[0], "secret": MASTER_KEY[1]}
            )
            master = await services.add_master("Chaos Master", "binanceusdm", owner_id=owner.id, credential_id=key.id)
            for index, (api_key, secret) in enumerate(followers):
                user = await services.register_user(9_100_000 + index, f"chaos follower {index}")
                assert user.id is not None
                credential = await services.connect_account(
                    user.id, "binanceusdm", "main", {"api_key": api_key, "secret": secret}
                )
                coefficient = COEFFICIENTS[index % len(COEFFICIENTS)]
                follow = await services.follow(user.id, master.id, credential.id, {"sizing_value": coefficient})
                assert follow.id is not None
                self.follows[follow.id] = api_key
                self.coefficients[follow.id] = Decimal(coefficient)
        finally:
            await app.close()

    # ------------------------------------------------------------------ the copier process

    async def start_copier(self, *, twin: bool = False) -> None:
        """Start ``copytrade run``; with ``twin`` a second one beside the running one (same
        database, same accounts: it must never place what the first one places)."""
        self.starts += 1
        log = await asyncio.to_thread(open, self.workdir / "copier.log", "ab")  # handed to the child, closed below
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "copytrade",
                "run",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=str(self.workdir),  # no .env of the checkout
                env=_env_with_root({**self.settings_env(), "PORT": str(_free_port())}),  # its HTTP server
            )
        finally:
            log.close()
        if twin:
            self.twin = process
        else:
            self.copier = process
        self.note(f"{'twin ' if twin else ''}copier start #{self.starts} (pid {process.pid})")

    async def kill_copier(self) -> None:
        for process in (self.copier, self.twin):
            if process is None:
                continue
            if process.returncode is None:
                process.send_signal(signal.SIGKILL)
            await process.wait()
            self.kills += 1
            self.note(f"SIGKILL copier pid {process.pid} (kill {self.kills})")
        self.twin = None
        await self.wait_for(lambda s: s["master_sockets"] == 0, 60, "the killed copier's socket closed")

    async def stop_copier(self) -> None:
        if self.copier is None or self.copier.returncode is not None:
            return
        self.copier.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.copier.wait(), timeout=15)
        except TimeoutError:
            self.copier.kill()
            await self.copier.wait()
        self.note("copier stopped")

    async def wait_for(self, ready: Callable[[dict[str, Any]], bool], within: float, what: str) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if ready(await self.control("GET", "state")):
                return
            if self.copier is not None and self.copier.returncode is not None and "socket closed" not in what:
                raise RuntimeError(f"the copier exited ({self.copier.returncode}) while waiting for {what}")
            await asyncio.sleep(0.1)
        raise RuntimeError(f"timed out after {within} s waiting for {what}")

    async def wait_streaming(self) -> None:
        await self.wait_for(lambda s: s["master_sockets"] >= 1, 300, "the master's user-data stream")

    # ------------------------------------------------------------------ the master

    def next_trade(self) -> tuple[str, Decimal, bool]:
        """(side, quantity, reduce_only): an entry when flat, else an add, partial or full exit,
        or a reversal."""
        position = self.master_position
        if position == 0:
            return self.rng.choice(("BUY", "SELL")), STEP * self.rng.randint(2, 10), False
        closing = "SELL" if position > 0 else "BUY"
        steps = int(abs(position) / STEP)
        kind = self.rng.choices(("add", "partial", "full", "reverse"), (25, 30, 25, 20))[0]
        if kind == "add":
            return ("BUY" if position > 0 else "SELL"), STEP * self.rng.randint(1, 6), False
        if kind == "partial" and steps > 1:
            return closing, STEP * self.rng.randint(1, steps - 1), True
        if kind == "reverse":
            return closing, abs(position) + STEP * self.rng.randint(2, 6), False
        return closing, abs(position), True

    async def master_trade(self) -> None:
        side, quantity, reduce_only = self.next_trade()
        pieces = self.rng.choice((1, 1, 2))
        fills = [quantity] if pieces == 1 or quantity == STEP else [quantity - STEP, STEP]
        answer = await self.control(
            "POST",
            "trade",
            {
                "api_key": MASTER_KEY[0],
                "symbol": SYMBOL,
                "side": side,
                "quantity": str(quantity),
                "fills": [str(f) for f in fills],
                "reduce_only": reduce_only,
            },
        )
        self.master_position += quantity if side == "BUY" else -quantity
        running = self.copier is not None and self.copier.returncode is None
        self.note(
            f"master {side} {quantity}{' reduce-only' if reduce_only else ''} in {len(fills)} fill(s) "
            f"trades {answer['trade_ids']} -> position {self.master_position}{'' if running else ' (copier down)'}"
        )

    # ------------------------------------------------------------------ the campaign

    async def run(self) -> dict[str, Any]:
        await self.start_exchange()
        try:
            await self.register()
            await self.control("POST", "faults", {"rate": self.options.faults, "late": self.options.late_accepts})
            for cycle in range(self.options.kills):
                await self.start_copier()
                if self.options.database == "postgres" and cycle in (1, self.options.kills // 2):
                    await self.wait_streaming()
                    await self.start_copier(twin=True)
                    await self.wait_for(lambda s: s["master_sockets"] >= 2, 300, "the twin copier's stream")
                    for _ in range(self.rng.randint(2, 4)):
                        await self.master_trade()
                        await asyncio.sleep(self.rng.uniform(0, 1.0))
                    await asyncio.sleep(self.rng.uniform(0, 3.0))
                    await self.kill_copier()
                elif self.rng.random() < 0.15:  # during start-up: resume, gap recovery, warm-up
                    await asyncio.sleep(self.rng.uniform(0.3, 2.5))
                    await self.kill_copier()
                else:
                    await self.wait_streaming()
                    for _ in range(self.rng.randint(1, 3)):
                        await self.stream_gap()
                        await self.master_trade()
                        await asyncio.sleep(self.rng.uniform(0, 1.0))
                    # a first copy after a start takes about 1.5 s (venue clients, markets): the kill
                    # lands before sending, mid fan-out, between placing and recording, or after
                    await asyncio.sleep(self.rng.uniform(0, 3.0))
                    await self.kill_copier()
                for _ in range(self.rng.choice((0, 0, 1, 2))):  # while the copier is down
                    await self.master_trade()
            await self.control("POST", "faults", {"rate": 0, "late": 0})
            self.note("faults off; final start")
            await self.start_copier()
            await self.wait_streaming()
            await self.settle()
            await self.stop_copier()
            if self.options.double_one_copy:
                await self.double_one_copy()
            return await self.check()
        finally:
            for process in (self.copier, self.twin):
                if process is not None and process.returncode is None:
                    process.kill()
                    await process.wait()
            await self.stop_exchange()

    async def double_one_copy(self) -> None:
        copy = next(c for c in _query(self.database_url)["copies"] if c["status"] == "filled")
        await self.control(
            "POST",
            "double",
            {
                "api_key": self.follows[copy["follow_id"]],
                "client_order_id": copy["client_order_id"],
                "symbol": SYMBOL,
                "side": copy["side"].upper(),
                "quantity": str(STEP),
            },
        )
        self.note(f"planted a second order under {copy['client_order_id']}")

    async def stream_gap(self) -> None:
        """Now and then the master's stream breaks just before a fill: the socket drops (the copier
        reconnects and recovers the gap over REST) or the listen key expires."""
        draw = self.rng.random()
        if draw < 0.2:
            await self.wait_streaming()  # a break of a live stream, not of one still reconnecting
        if draw < 0.1:
            await self.control("POST", "drop")
            self.note("user-data sockets dropped")
        elif draw < 0.2:
            expired = (await self.control("POST", "expire", {"api_key": MASTER_KEY[0]}))["listen_key"]
            self.note(f"master listen key {expired} expired")

    async def settle(self) -> None:
        """Until the journal holds every master execution and no copy is still unfinished."""
        deadline = time.monotonic() + self.options.settle_timeout_s
        stable = 0
        while time.monotonic() < deadline:
            state = await self.control("GET", "state")
            trades = {str(t["trade_id"]) for t in state["accounts"][MASTER_KEY[0]]["trades"]}
            rows = _query(self.database_url)
            journaled = {r["trade_id"] for r in rows["fills"]}
            unfinished = [r for r in rows["copies"] if r["status"] in UNFINISHED]
            unplanned = [r for r in rows["fills"] if not r["planned"]]
            if trades <= journaled and not unfinished and not unplanned:
                stable += 1
                if stable >= 3:
                    return
            else:
                stable = 0
            await asyncio.sleep(1)
        self.note("settle timed out: unfinished copies are counted missing")

    # ------------------------------------------------------------------ the checks

    async def check(self) -> dict[str, Any]:
        state = await self.control("GET", "state")
        rows = _query(self.database_url)
        notifications = _notifications(self.workdir / "copier.log")
        accounts = state["accounts"]
        master_trades = accounts[MASTER_KEY[0]]["trades"]
        fill_by_trade = {r["trade_id"]: r for r in rows["fills"]}
        copies_by_key: dict[tuple[int, int], list[dict[str, Any]]] = collections.defaultdict(list)
        for row in rows["copies"]:
            if row["fill_id"] is not None:
                copies_by_key[(row["fill_id"], row["follow_id"])].append(row)
        known_ids = {r["client_order_id"] for r in rows["copies"]}
        offenders: list[tuple[str, str | None, int | None, str]] = []  # (what, trade id, follow id, detail)
        counts: dict[str, Any] = dict.fromkeys(KEYS, 0)
        counts["kills"] = self.kills
        counts["fills"] = len(master_trades)
        counts["expected"] = len(master_trades) * len(self.follows)
        counts["faults_injected"] = len(state["faults"])
        if state["late_orders"]:
            outcomes = collections.Counter(late["outcome"].split(":")[0] for late in state["late_orders"])
            self.note(f"orders accepted late: {dict(sorted(outcomes.items()))}")
        for follow_id, api_key in self.follows.items():
            orders = [o for o in accounts[api_key]["orders"] if not o["algo"]]
            counts["placed"] += len(orders)
            by_client_id = collections.Counter(o["client_order_id"] for o in orders)
            executed: dict[str, Decimal] = collections.defaultdict(Decimal)
            for order in orders:
                executed[order["client_order_id"]] += Decimal(order["executed"])
            for client_id, n in by_client_id.items():
                if client_id not in known_ids:
                    counts["duplicates"] += n
                    offenders.append(("duplicates", None, follow_id, f"order {client_id} unknown to the database"))
                elif n > 1:
                    counts["duplicates"] += n - 1
                    offenders.append(("duplicates", _trade_of(client_id, rows), follow_id, f"{client_id} x{n}"))
            for trade in master_trades:
                trade_id = str(trade["trade_id"])
                fill = fill_by_trade.get(trade_id)
                copies = copies_by_key.get((fill["id"], follow_id), []) if fill else []
                if not copies:
                    counts["missing"] += 1
                    offenders.append(("missing", trade_id, follow_id, "no copy recorded" if fill else "not journaled"))
                for copy in copies:
                    client_id = copy["client_order_id"]
                    on_venue = by_client_id.get(client_id, 0)
                    if copy["status"] == "pending":
                        counts["missing"] += 1
                        offenders.append(("missing", trade_id, follow_id, f"{client_id} still pending"))
                    elif copy["status"] in SENT and on_venue == 0:
                        counts["missing"] += 1
                        offenders.append(("missing", trade_id, follow_id, f"{client_id} not on venue"))
                    elif copy["status"] not in SENT and copy["status"] != "canceled" and on_venue:
                        counts["ledger_mismatches"] += 1
                        offenders.append(("ledger_mismatches", trade_id, follow_id, f"{client_id} {copy['status']}"))
                    elif on_venue and Decimal(copy["filled_quantity"]) != executed[client_id]:
                        counts["ledger_mismatches"] += 1
                        offenders.append(
                            (
                                "ledger_mismatches",
                                trade_id,
                                follow_id,
                                f"{client_id} filled {copy['filled_quantity']} in the database, "
                                f"{executed[client_id]} on the venue",
                            )
                        )
            for copy in rows["copies"]:
                if copy["follow_id"] == follow_id and copy["status"] in REASON_NEEDED and not copy["reason"]:
                    counts["unreasoned"] += 1
                    offenders.append(("unreasoned", _trade_of(copy["client_order_id"], rows), follow_id, str(copy)))
            ledger = sum(
                (Decimal(r["quantity"]) for r in rows["positions"] if r["follow_id"] == follow_id),
                Decimal(0),
            )
            venue = Decimal(accounts[api_key]["positions"].get(SYMBOL, "0"))
            if ledger != venue:
                counts["ledger_mismatches"] += 1
                offenders.append(("ledger_mismatches", None, follow_id, f"ledger {ledger} != venue {venue}"))
            self.check_implied(
                follow_id, orders, master_trades, accounts, fill_by_trade, copies_by_key, counts, offenders
            )
        for (client_id, status), n in notifications.items():
            if n > 1:
                counts["double_notified"] += n - 1
                offenders.append(
                    (
                        "double_notified",
                        _trade_of(client_id, rows),
                        _follow_of(client_id, rows),
                        f"{client_id} {status}",
                    )
                )
        counts["offenders"] = offenders
        counts["timeline"] = self.timeline(offenders[0], state, rows) if offenders else []
        return counts

    def check_implied(
        self,
        follow_id: int,
        orders: list[dict[str, Any]],
        master_trades: list[dict[str, Any]],
        accounts: dict[str, Any],
        fill_by_trade: dict[str, dict[str, Any]],
        copies_by_key: dict[tuple[int, int], list[dict[str, Any]]],
        counts: dict[str, Any],
        offenders: list[tuple[str, str | None, int | None, str]],
    ) -> None:
        """Walk the master's executions in the venue's order and check that each moved this
        follower's *venue* position by what the master's trade implies (``implied_move``), so the
        follower ends where the master's trades say. The one venue answer taken as given is an
        outright refusal (-2019): that copy executed nothing and the walk goes on from the venue.
        After a counted mismatch the walk also resyncs to the venue, so one error counts once."""
        executed_by_id: dict[str, Decimal] = collections.defaultdict(Decimal)
        for order in orders:
            signed = Decimal(order["executed"]) * (1 if order["side"] == "BUY" else -1)
            executed_by_id[order["client_order_id"]] += signed
        master_orders = {o["order_id"]: o for o in accounts[MASTER_KEY[0]]["orders"]}
        master = held = Decimal(0)
        for trade in master_trades:
            trade_id = str(trade["trade_id"])
            quantity = Decimal(trade["quantity"])
            reduce_only = bool(master_orders[trade["order_id"]]["reduce_only"])
            fill = fill_by_trade.get(trade_id)
            copies = copies_by_key.get((fill["id"], follow_id), []) if fill else []
            moved = sum((executed_by_id.get(c["client_order_id"], Decimal(0)) for c in copies), Decimal(0))
            implied = implied_move(self.coefficients[follow_id], master, trade["side"], quantity, reduce_only, held)
            if any(c["status"] == "failed" and REFUSED in (c["reason"] or "") for c in copies):
                counts["refused"] += 1
            elif moved != implied:
                counts["implied_mismatches"] += 1
                offenders.append(
                    (
                        "implied_mismatches",
                        trade_id,
                        follow_id,
                        f"the master's {trade['side']} {quantity} from {master} implies {implied} for a follower "
                        f"holding {held}; the venue moved {moved}",
                    )
                )
            held += moved
            master += quantity if trade["side"] == "BUY" else -quantity

    def timeline(
        self, offender: tuple[str, str | None, int | None, str], state: dict[str, Any], rows: dict[str, Any]
    ) -> list[str]:
        """What happened to the first offending (fill, follow): the harness's steps, the journal,
        the copy rows, the venue's orders and the faults that hit them."""
        what, trade_id, follow_id, detail = offender
        lines = [f"offender: {what} trade={trade_id} follow={follow_id}: {detail}"]
        fill = next((f for f in rows["fills"] if f["trade_id"] == trade_id), None)
        lines.append(f"journal: {fill}")
        copies = [
            c
            for c in rows["copies"]
            if (fill is not None and c["fill_id"] == fill["id"] and c["follow_id"] == follow_id)
            or c["client_order_id"] in detail
        ]
        client_ids = {c["client_order_id"] for c in copies}
        for copy in copies:
            lines.append(f"copy row: {copy}")
        if follow_id is not None:
            for order in state["accounts"][self.follows[follow_id]]["orders"]:
                if order["client_order_id"] in client_ids:
                    lines.append(f"venue order: {order}")
        for fault in state["faults"]:
            if fault["client_order_id"] in client_ids:
                lines.append(f"fault {_clock(fault['at'])}: {fault['kind']} on {fault['client_order_id']}")
        for at, event in self.events:
            lines.append(f"{_clock(at)} {event}")
        return lines


def implied_move(
    coefficient: Decimal, master_before: Decimal, side: str, quantity: Decimal, reduce_only: bool, held: Decimal
) -> Decimal:
    """The signed quantity a follower holding ``held`` trades for one master execution, from the
    master's trade alone (written here from the product's promise, not from core/sizing.py): on
    the part that closes the master's position, the same fraction of the follower's position
    (all of it on a full exit); on the part that opens, ``coefficient`` times the master's
    quantity. Both round down to the step; an order under the minimum quantity is skipped, an
    opening one also under the minimum notional (a closing one is exempt on futures)."""
    sign = 1 if side == "BUY" else -1
    if master_before == 0 or (master_before > 0) == (sign > 0):
        closed, opened = Decimal(0), quantity
    else:
        closed = min(quantity, abs(master_before))
        opened = quantity - closed
    position = held
    if closed and position:
        if closed == abs(master_before):
            out = abs(position)
        else:
            share = Fraction(abs(position)) * Fraction(closed) / Fraction(abs(master_before))
            out = math.floor(share / Fraction(STEP)) * STEP
        if out >= MIN_QUANTITY:
            position -= out if position > 0 else -out
    if opened and not reduce_only:
        entry = math.floor(Fraction(coefficient) * Fraction(opened) / Fraction(STEP)) * STEP
        if entry >= MIN_QUANTITY and entry * PRICE >= MIN_NOTIONAL:
            position += sign * entry
    return position - held


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}"


def _trade_of(client_id: str, rows: dict[str, Any]) -> str | None:
    copy = next((c for c in rows["copies"] if c["client_order_id"] == client_id), None)
    fill = next((f for f in rows["fills"] if copy is not None and f["id"] == copy["fill_id"]), None)
    return fill["trade_id"] if fill else None


def _follow_of(client_id: str, rows: dict[str, Any]) -> int | None:
    return next((c["follow_id"] for c in rows["copies"] if c["client_order_id"] == client_id), None)


def _notifications(log_path: Path) -> collections.Counter[tuple[str, str]]:
    counter: collections.Counter[tuple[str, str]] = collections.Counter()
    if log_path.exists():
        for line in log_path.read_text(errors="replace").splitlines():
            match = NOTIFICATION.search(line)
            if match:
                counter[(match.group(1), match.group(2))] += 1
    return counter


def _query(database_url: str) -> dict[str, list[dict[str, Any]]]:
    """The journal, the copies and the ledger, read straight from the database."""
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as connection:

            def rows(sql: str) -> list[dict[str, Any]]:
                return [dict(r._mapping) for r in connection.execute(sa.text(sql))]

            return {
                "fills": [
                    {**r, "trade_id": r["trade_id"].rsplit("|", 1)[-1]}  # stored as "<symbol>|<venue trade id>"
                    for r in rows("SELECT id, trade_id, side, quantity, reduce_only, planned FROM master_fills")
                ],
                "copies": rows(
                    "SELECT client_order_id, fill_id, follow_id, origin, side, status, state, reason_code, reason, "
                    "requested_quantity, filled_quantity FROM copy_orders"
                ),
                "positions": rows(
                    f"SELECT follow_id, quantity FROM follow_positions WHERE symbol = '{UNIFIED}' AND NOT simulated"
                ),
            }
    finally:
        engine.dispose()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _env_with_root(extra: dict[str, str]) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("COPYTRADE_", "TELEGRAM_", "DATABASE_URL"))}
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**keep, "PYTHONPATH": path, **extra}


def postgres_schema() -> tuple[str, str, str]:
    """(url of a fresh schema, admin url, schema name) on TEST_POSTGRES_URL's server."""
    base = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    schema = f"chaos_{uuid.uuid4().hex[:10]}"
    return f"{base}?options=-csearch_path%3D{schema}", base, schema


async def run_campaign(options: Options, echo: Callable[[str], None] = print) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="copytrade-chaos-") as directory:
        workdir = options.workdir or Path(directory)
        (workdir / "data").mkdir(parents=True, exist_ok=True)
        if options.database == "postgres":
            url, admin, schema = postgres_schema()
            engine = sa.create_engine(admin.replace("postgresql://", "postgresql+psycopg://", 1))
            with engine.begin() as connection:
                connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            try:
                return await Campaign(options, workdir, url, echo).run()
            finally:
                with engine.begin() as connection:
                    connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
                engine.dispose()
        return await Campaign(options, workdir, f"sqlite:///{workdir / 'chaos.db'}", echo).run()
