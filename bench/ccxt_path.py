"""Benchmarks 2 and 3 — the real client path and the sequential baseline, against the fake Binance.

**2. Real client path.** ``copytrade``'s own wiring (``build_app`` in testnet mode, the vault, the
venue registry, ``CcxtVenue`` on ccxt's ``binanceusdm`` with its rate limiter on, one ccxt instance
per account, markets loaded once and shared through ``CcxtMarketsCache``) against the fake
Binance in its own process, which verifies every HMAC signature and waits ``rtt`` seconds before
handling each REST request. Per fill: ``on_fill`` called → the last follower's order acknowledged
(``CcxtVenue.place_order`` returned), and the process CPU spent per order (engine, journal, ccxt,
aiohttp; the server's CPU is not included). Before the first fill the accounts are warmed up as
``copytrade run`` does at start (decrypt each key, build its ccxt instance, attach the shared
markets, one ping per account to open its connection; the position mode is not read); that and
the first fill (the symbol's leverage and margin settings) are reported apart.
Each run also reports the request weight the fake charged the one IP every account leaves from —
for the restart's warm-up, the first fill and each later fill — and its 429 / 418 answers (the
total of the whole benchmark so far: 0 is the only good figure).

**3. Sequential baseline.** On the same warm ``CcxtVenue`` instances, the seeds' loop: one
follower after another, awaiting each ``place_order`` before the next. No journal, no engine:
the baseline is flattered, if anything.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from decimal import Decimal
from typing import Any

from bench.common import PlaceOrderClock, add_master, profiled, seed_accounts, summary, temp_app
from bench.engine_overhead import master_fill
from bench.fake_exchange import account_key, fake_exchange
from copytrade.config import Mode
from core.model import CopyStatus, OrderIntent, OrderType, Side
from core.venues.ccxt.venue import CcxtVenue

QUANTITY = Decimal("0.01")
PRICE = Decimal("60000")
_baseline_ids = itertools.count(1)


def _check(outcome: Any, n: int, what: str) -> None:
    done = [r for r in outcome.results if r.status in (CopyStatus.PLACED, CopyStatus.FILLED)]
    if len(done) != n:
        failed = [r for r in outcome.results if r not in done][:3]
        raise RuntimeError(f"{what}: {len(done)} of {n} copies placed; for example {failed}")


async def _weight(fake: Any) -> tuple[int, int]:
    """The request weight the fake charged so far (every client IP) and its 429 / 418 answers."""
    stats = await fake.stats()
    return sum(stats["weight"].values()), sum(stats["refused"].values())


async def _engine_runs(app: Any, fake: Any, master_id: int, n: int, repetitions: int, gap: float) -> dict[str, Any]:
    weight_before, _ = await _weight(fake)
    started = time.perf_counter()
    await app.engine.warm_up()  # as ``copytrade run`` does at start
    warm_up_ms = (time.perf_counter() - started) * 1000
    weight_warm, _ = await _weight(fake)
    started = time.perf_counter()
    _check(await app.engine.on_fill(master_fill(master_id, Side.BUY, QUANTITY, PRICE)), n, "first fill")
    first_ms = (time.perf_counter() - started) * 1000
    weight_first, _ = await _weight(fake)
    acked_ms: list[float] = []
    cpu_ms_per_order: list[float] = []
    done_ms: list[float] = []
    loop_cpu_ms_per_order: list[float] = []
    sides = itertools.cycle([Side.SELL, Side.BUY])
    with PlaceOrderClock(CcxtVenue, "returned") as clock, profiled(f"ccxt_{n}"):
        for _ in range(repetitions):
            await asyncio.sleep(gap)
            clock.times.clear()
            fill = master_fill(master_id, next(sides), QUANTITY, PRICE)
            cpu, main_cpu, started = time.process_time(), time.thread_time(), time.perf_counter()
            outcome = await app.engine.on_fill(fill)
            done_ms.append((time.perf_counter() - started) * 1000)
            cpu_ms_per_order.append((time.process_time() - cpu) * 1000 / n)
            loop_cpu_ms_per_order.append((time.thread_time() - main_cpu) * 1000 / n)
            _check(outcome, n, "fill")
            acked_ms.append((max(clock.times) - started) * 1000)
            while app.notifications.pending():
                app.notifications._queue.get_nowait()
    weight_after, refused = await _weight(fake)
    return {
        "followers": n,
        # Binance's request weight from the one IP every follower leaves from (USD-M: 2,400 a minute)
        "ip_weight": {
            "restart_warm_up": weight_warm - weight_before,
            "first_fill": weight_first - weight_warm,
            "per_fill_after": round((weight_after - weight_first) / repetitions, 1),
            "refused_429_418_total": refused,
        },
        "start_warm_up_ms": round(warm_up_ms, 1),
        "first_fill_ms": round(first_ms, 1),
        "fill_to_last_ack_ms": summary(acked_ms, 1),
        "fill_to_all_recorded_ms": summary(done_ms, 1),
        "client_cpu_ms_per_order": summary(cpu_ms_per_order, 3),
        "event_loop_cpu_ms_per_order": summary(loop_cpu_ms_per_order, 3),
    }


async def _sequential_baseline(app: Any, credential_ids: list[str], repetitions: int, gap: float) -> dict[str, Any]:
    venues = [await app.venues.venue_for(credential_id) for credential_id in credential_ids]
    totals: list[float] = []
    sides = itertools.cycle([Side.SELL, Side.BUY])
    for _ in range(repetitions):
        await asyncio.sleep(gap)
        side = next(sides)
        batch = next(_baseline_ids)
        started = time.perf_counter()
        for index, venue in enumerate(venues):  # the seeds' loop: one follower after another
            intent = OrderIntent(
                follow_id=index,
                client_order_id=f"seq{batch}x{index}x{time.time_ns() % 10**9}",
                symbol="BTC/USDT:USDT",
                side=side,
                quantity=QUANTITY,
                order_type=OrderType.MARKET,
                reference_price=PRICE,
            )
            await venue.place_order(intent)
        totals.append((time.perf_counter() - started) * 1000)
    return {"followers": len(venues), "total_ms": summary(totals, 1)}


async def run_ccxt_path(
    ns: list[int], repetitions: int = 5, rtt: float = 0.02, baseline_n: int | None = 100, gap: float = 0.3
) -> dict[str, Any]:
    """Fan-out through the real ccxt client for each N in ``ns``; the baseline at ``baseline_n``.

    ``gap``: seconds between fills. ccxt's limiter spaces one account's orders by cost x rateLimit
    (200 ms for a Binance futures order), so fills closer together than that measure the limiter.
    """
    out: dict[str, Any] = {
        "rtt_ms": rtt * 1000,
        "ccxt_rate_limiter": True,
        "gap_between_fills_s": gap,
        "runs": [],
        "baseline": None,
    }
    sizes = list(ns) + ([baseline_n] if baseline_n and baseline_n not in ns else [])
    async with fake_exchange(rtt) as fake:
        await fake.add_accounts("master", len(sizes))
        for number, n in enumerate(sizes):  # each master's followers on accounts of their own
            await fake.add_accounts(f"follower{number}", n)
        async with temp_app(mode=Mode.TESTNET, venue_urls={"binanceusdm": fake.url_overrides()}) as app:
            for number, n in enumerate(sizes):
                key, secret = account_key("master", number)
                master_id, _ = await add_master(
                    app, "binanceusdm", {"api_key": key, "secret": secret}, "testnet", name=f"Bench {number}"
                )
                follows = await seed_accounts(
                    app,
                    "binanceusdm",
                    ({"api_key": k, "secret": s} for k, s in (account_key(f"follower{number}", i) for i in range(n))),
                    "testnet",
                    master_id=master_id,
                )
                run = await _engine_runs(app, fake, master_id, n, repetitions, gap)
                if n in ns:
                    out["runs"].append(run)
                if n == baseline_n:
                    baseline = await _sequential_baseline(
                        app, [credential for _, credential in follows], repetitions, gap
                    )
                    baseline["engine_fill_to_last_ack_ms"] = run["fill_to_last_ack_ms"]
                    baseline["speedup_p50"] = round(baseline["total_ms"]["p50"] / run["fill_to_last_ack_ms"]["p50"], 1)
                    out["baseline"] = baseline
        stats = await fake.stats()
    out["server_requests"] = stats["requests"]
    return out
