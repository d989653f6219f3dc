"""Benchmark 1 — engine overhead: one master fill → every follower order handed to the venue.

The real ``CopyEngine`` with the real SQLite journal (group commit) and an in-process venue that
answers every order at once and keeps nothing (``bench.instant_venue``); so what is measured is
the engine's own work per follower: planning, sizing, client ids, the pending rows made durable
before sending, the task per follow, recording the results, the copied positions and the
notifications.

Per fill two times are taken from ``on_fill`` being called: the moment the *last* follower order
reached the venue's ``place_order`` ("handed"), and ``on_fill`` returning with every result
recorded ("done"). The first fill opens every follower's venue (decrypting its credential) and
is reported apart as ``cold``.
"""

from __future__ import annotations

import itertools
import time
from decimal import Decimal
from typing import Any

from bench.common import PlaceOrderClock, add_master, profiled, seed_accounts, summary, temp_app
from bench.instant_venue import NAME as INSTANT
from bench.instant_venue import SYMBOL, InstantVenue, open_instant_venue
from core.model import CopyStatus, Fill, OrderType, Side, utcnow

_trade_ids = itertools.count(1)


def master_fill(
    master_id: int, side: Side, quantity: Decimal = Decimal("0.01"), price: Decimal = Decimal("60000")
) -> Fill:
    trade = next(_trade_ids)
    return Fill(
        master_id=master_id,
        venue="bench",
        trade_id=f"t{time.time_ns()}-{trade}",
        order_id=f"o{trade}",
        symbol=SYMBOL,
        side=side,
        quantity=quantity,
        price=price,
        order_type=OrderType.MARKET,
        executed_at=utcnow(),
    )


async def run_engine_overhead(n: int, repetitions: int = 5) -> dict[str, Any]:
    async with temp_app() as app:
        app.venues.register(INSTANT, open_instant_venue)
        master_id, _ = await add_master(app, INSTANT, {"api_key": "bench-master"}, "live")
        await seed_accounts(
            app, INSTANT, ({"api_key": f"bench-follower-{i}"} for i in range(n)), "live", master_id=master_id
        )

        # cold: the first fill opens every follower's venue (one read of the keys, each decrypted)
        started = time.perf_counter()
        outcome = await app.engine.on_fill(master_fill(master_id, Side.BUY))
        cold_ms = (time.perf_counter() - started) * 1000
        _check(outcome, n, "cold fill")
        app.notifications.take_all()

        handed_ms: list[float] = []
        done_ms: list[float] = []
        sides = itertools.cycle([Side.SELL, Side.BUY])  # exit, entry, exit, ...: positions stay bounded
        with PlaceOrderClock(InstantVenue, "called") as clock, profiled(f"engine_{n}"):
            for _ in range(repetitions):
                clock.times.clear()
                fill = master_fill(master_id, next(sides))
                started = time.perf_counter()
                outcome = await app.engine.on_fill(fill)
                finished = time.perf_counter()
                _check(outcome, n, "fill")
                if len(clock.times) != n:
                    raise RuntimeError(f"{len(clock.times)} of {n} orders reached the venue")
                handed_ms.append((max(clock.times) - started) * 1000)
                done_ms.append((finished - started) * 1000)
                app.notifications.take_all()
    handed, done = summary(handed_ms), summary(done_ms)
    return {
        "followers": n,
        "repetitions": repetitions,
        "cold_first_fill_ms": round(cold_ms, 1),
        "handed_ms": handed,
        "done_ms": done,
        "us_per_follower_p50": round(handed["p50"] * 1000 / n, 1),
        "done_us_per_follower_p50": round(done["p50"] * 1000 / n, 1),
    }


def _check(outcome: Any, n: int, what: str) -> None:
    copied = [r for r in outcome.results if r.status in (CopyStatus.PLACED, CopyStatus.FILLED)]
    if len(copied) != n:
        others = [r for r in outcome.results if r not in copied][:3]
        raise RuntimeError(f"{what}: {len(copied)} of {n} follower orders placed; for example {others}")
