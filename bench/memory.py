"""Benchmark 5 — memory: RSS per idle follower account, markets shared.

Accounts are opened the way the venue registry opens them for the engine: one ``CcxtVenue``
(ccxt ``binanceusdm``, rate limiter on) per account, markets attached from one
``CcxtMarketsCache``. Measured twice, as RSS growth divided by the account count:

- ``opened``: instance built and markets attached, no request made yet;
- ``connected``: after one signed request each (the position-mode query every account makes
  before its first order), so each holds what an account that has traded holds: its HTTP
  session, connection pool and keep-alive socket.

``connected`` is what a follower costs in a running service and is the headline number.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.common import settled_rss_mb
from bench.fake_exchange import account_key, fake_exchange
from core.venues.ccxt.markets import CcxtMarketsCache
from core.venues.ccxt.venue import CcxtVenue


async def _measure(n: int, fake: Any, prefix: str) -> dict[str, Any]:
    cache = CcxtMarketsCache()
    urls = fake.url_overrides()
    first = CcxtVenue.create(
        "binanceusdm", *account_key(prefix, 0), markets_cache=cache, sandbox=True, url_overrides=urls
    )
    await first.ensure_markets()  # the one markets load every other account shares
    await first._is_hedge_mode()
    before = settled_rss_mb()
    venues = [first]
    for index in range(1, n + 1):
        venue = CcxtVenue.create(
            "binanceusdm", *account_key(prefix, index), markets_cache=cache, sandbox=True, url_overrides=urls
        )
        await venue.ensure_markets()
        venues.append(venue)
    opened = settled_rss_mb()
    semaphore = asyncio.Semaphore(200)

    async def connect(venue: CcxtVenue) -> None:
        async with semaphore:
            await venue._is_hedge_mode()

    await asyncio.gather(*(connect(venue) for venue in venues[1:]))
    connected = settled_rss_mb()
    shared = all(v.exchange.markets is first.exchange.markets for v in venues)
    await asyncio.gather(*(venue.close() for venue in venues))  # ccxt waits 250 ms in each close
    return {
        "accounts": n,
        "markets_shared": shared,
        "opened_mb_per_account": round((opened - before) / n, 4),
        "connected_mb_per_account": round((connected - before) / n, 4),
        "rss_before_mb": round(before, 1),
        "rss_connected_mb": round(connected, 1),
    }


async def run_memory(ns: list[int]) -> dict[str, Any]:
    runs = []
    async with fake_exchange(0.0) as fake:
        for number, n in enumerate(ns):
            prefix = f"mem{number}"
            await fake.add_accounts(prefix, n + 1)
            runs.append(await _measure(n, fake, prefix))
    return {"runs": runs}
