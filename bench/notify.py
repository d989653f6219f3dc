"""Benchmark 6 — notification fan-out: N copy notifications through the bot's own sender.

The real bot (``bot.app.serve``: python-telegram-bot, the ``Notifier`` it starts, the
``TelegramPacer`` rate limiter) against the Bot API emulator the end-to-end tests use
(``telegram-test-api`` from npm, behind ``tests.fakes.telegram.BotApiProxy``), which admits at
most 30 messages in any one second and answers the rest 429 with ``retry_after``. N users each
get one "copied" notification, all published at once as a fill for N followers would; timed
from publishing to the N-th message Telegram accepted. The floor is N / 30 seconds.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.common import add_master
from bench.engine_overhead import master_fill
from core.model import CopyResult, CopyStatus, Side


async def run_notify(n: int) -> dict[str, Any]:
    from tests.fakes.telegram import BotHarness, Emulator, emulator_available, fresh_id

    missing = emulator_available()
    if missing is not None:
        raise RuntimeError(f"the Bot API emulator cannot run: {missing} (scripts/test installs it)")
    emulator = Emulator()
    emulator.start()
    try:
        with tempfile.TemporaryDirectory(prefix="copytrade-bench-") as tmp:
            async with BotHarness(emulator, Path(tmp)) as bot:
                app = bot.app
                master_id, _ = await add_master(app, "paper", {"api_key": "bench-master", "balance": "1000"}, "paper")
                fill = master_fill(master_id, Side.BUY)
                users = [await app.services.register_user(fresh_id(), f"bench user {i}") for i in range(n)]
                before = bot.proxy.sent_messages
                started = time.perf_counter()
                for number, user in enumerate(users):
                    app.notifications.publish(
                        CopyResult(
                            follow_id=number + 1,
                            user_id=user.id,
                            master_id=master_id,
                            client_order_id=f"bench{number}",
                            fill=fill,
                            status=CopyStatus.FILLED,
                            side=Side.BUY,
                            requested_quantity=Decimal("0.01"),
                            filled_quantity=Decimal("0.01"),
                            average_price=Decimal("60000.5"),
                            latency_ms=42.0,
                        )
                    )
                deadline = started + n / 30 * 3 + 30
                while bot.proxy.sent_messages - before < n:
                    if time.perf_counter() > deadline:
                        raise RuntimeError(
                            f"only {bot.proxy.sent_messages - before} of {n} notifications delivered in time"
                        )
                    await asyncio.sleep(0.005)
                elapsed = time.perf_counter() - started
                too_many = bot.proxy.too_many_requests
    finally:
        emulator.stop()
    floor = n / 30
    return {
        "notifications": n,
        "total_s": round(elapsed, 2),
        "floor_s": round(floor, 2),
        "ratio_to_floor": round(elapsed / floor, 3),
        "messages_per_second": round(n / elapsed, 1),
        "http_429s": too_many,
    }
