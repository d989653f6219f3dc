"""Benchmark 4 — detection: the fake Binance sends a master's execution on the user-data
websocket → the fill reaches the engine.

The app is wired as ``copytrade run`` wires it (testnet mode): the listener supervisor opens the
master's stream (``CcxtFillListener`` on ccxt.pro ``watch_my_trades``); the engine's entry point
is wrapped to note the arrival time. Both times are ``time.time_ns()`` on the same machine (the
fake runs in its own process). Trades are spaced by ``gap`` seconds.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.common import add_master, summary, temp_app
from bench.fake_exchange import account_key, fake_exchange
from copytrade.config import Mode


async def run_detection(repetitions: int = 50, gap: float = 0.05) -> dict[str, Any]:
    latencies_ms: list[float] = []
    async with fake_exchange(0.0) as fake:
        await fake.add_accounts("master", 1)
        key, secret = account_key("master", 0)
        async with temp_app(mode=Mode.TESTNET, venue_urls={"binanceusdm": fake.url_overrides()}) as app:
            master_id, _ = await add_master(app, "binanceusdm", {"api_key": key, "secret": secret}, "testnet")
            arrived: asyncio.Queue[int] = asyncio.Queue()
            engine_on_fill = app.listeners.on_fill

            async def on_fill(fill: Any) -> Any:
                arrived.put_nowait(time.time_ns())
                return await engine_on_fill(fill)

            app.listeners.on_fill = on_fill
            # An open position gives the listener's REST gap recovery a symbol: Binance's
            # fetchMyTrades needs one, and a master with no position and no symbols configured
            # drops its stream on every connect (reported; not a latency matter).
            await fake.trade(key, "BTCUSDT", "BUY", "0.01")
            await app.start_listener(master_id)
            for _ in range(400):  # until the master's user-data socket is open
                if (await fake.stats())["open_websockets"]:
                    break
                await asyncio.sleep(0.025)
            else:
                raise RuntimeError(f"the master's user-data stream did not open: {app.listeners.health.get(master_id)}")
            await asyncio.sleep(0.2)  # let the REST gap recovery of the fresh connection finish
            for number in range(repetitions + 1):
                side = "SELL" if number % 2 == 0 else "BUY"
                sent = await fake.trade(key, "BTCUSDT", side, "0.01")
                received = await asyncio.wait_for(arrived.get(), timeout=10)
                if number:  # the first is a warm-up (first event parsed on this socket)
                    latencies_ms.append((received - sent[0]) / 1e6)
                await asyncio.sleep(gap)
            await app.listeners.stop()
    return {"events": repetitions, "ws_sent_to_engine_ms": summary(latencies_ms, 3)}
