"""``copytrade demo``: the real engine and storage, a paper master and N paper followers.

Followers get mixed settings, some designed to be skipped or to fail, so every path a user
can meet shows up: copies, proportional exits, reversals, filters, dry run, minimums, a flaky
connection recovered without a duplicate, an underfunded account, a rejected key. Each fill is
delivered twice (as a websocket and a REST recovery would) to show it is copied once.
"""

from __future__ import annotations

import random
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.formatting import format_copy_result, format_follow_paused
from copytrade.config import Mode, Settings
from copytrade.paper_setup import add_paper_follower, create_paper_master
from core.copying.config import EngineConfig, FollowPaused
from core.errors import AuthenticationError, OrderStatusUnknown, TemporaryError, VenueError
from core.model import CopyStatus
from core.vault import generate_key
from core.venues.paper.listener import PaperFillSource
from core.venues.paper.trader import PaperTrader
from core.venues.paper.venue import PaperVenue
from storage.models import CopyOrder


@dataclass(frozen=True)
class Profile:
    name: str
    balance: str
    settings: dict[str, Any]
    failures: tuple[tuple[VenueError, int, bool], ...] = ()  # (error, times, after_accepting)


PROFILES: tuple[Profile, ...] = (
    Profile("steady x1", "20000", {"sizing_value": "1"}),
    Profile("half size", "10000", {"sizing_value": "0.5"}),
    Profile("double, reversed", "60000", {"sizing_value": "2", "reverse": True}),
    Profile("equity ratio", "5000", {"sizing_mode": "equity_ratio", "sizing_value": "1"}),
    Profile("fixed 500 USDT", "10000", {"sizing_mode": "fixed_notional", "sizing_value": "500"}),
    Profile("BTC only", "20000", {"sizing_value": "1", "allowed_symbols": "BTC"}),
    Profile("no ETH", "20000", {"sizing_value": "1", "blocked_symbols": "ETH"}),
    Profile("dry run", "20000", {"sizing_value": "1", "dry_run": True}),
    Profile("tiny", "300", {"sizing_value": "0.01"}),
    Profile("limit orders only", "20000", {"sizing_value": "1", "order_types": "limit"}),
    Profile(
        "flaky link",
        "20000",
        {"sizing_value": "1"},
        ((TemporaryError("HTTP 503 from the exchange"), 1, False), (OrderStatusUnknown("request timed out"), 1, True)),
    ),
    Profile("capped at 3000", "20000", {"sizing_value": "1", "max_position_notional": "3000"}),
    Profile("underfunded", "40", {"sizing_value": "1"}),
    Profile(
        "revoked key", "20000", {"sizing_value": "1"}, ((AuthenticationError("API key rejected (-2015)"), 1, False),)
    ),
)


async def run_demo(
    followers: int = 14,
    fills: int = 20,
    seed: int = 7,
    *,
    database_url: str | None = None,
    echo: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the demo and return the summary; ``echo`` receives the human-readable lines."""
    from copytrade.app import build_app  # local: keeps `copytrade --help` fast

    say = echo or (lambda _line: None)
    with tempfile.TemporaryDirectory(prefix="copytrade-demo-") as tmp:
        settings = Settings(
            database_url=database_url or f"sqlite:///{Path(tmp) / 'demo.db'}",
            secret_key=generate_key(),
            mode=Mode.PAPER,
            data_dir=Path(tmp),
        )
        engine_config = EngineConfig(max_fill_age=timedelta(seconds=60), retry_delays=(0.01, 0.02, 0.05))
        app = await build_app(settings, engine_config=engine_config)
        try:
            return await _run(app, followers, fills, seed, say)
        finally:
            await app.close()


async def _run(app, followers: int, fills: int, seed: int, say: Callable[[str], None]) -> dict[str, Any]:
    master, master_key = await create_paper_master(app.services, "Demo Trend", "100000")
    names: dict[int, str] = {}
    for index in range(followers):
        profile = PROFILES[index % len(PROFILES)]
        name = f"{profile.name} #{index + 1}"
        follow, key = await add_paper_follower(app.services, master.id, name, profile.balance, profile.settings)
        assert follow.id is not None
        names[follow.id] = name
        venue = await app.venues.venue_for(key.id)
        assert isinstance(venue, PaperVenue)
        for error, times, after_accepting in profile.failures:
            venue.fail_next(error, times=times, after_accepting=after_accepting)

    master_venue = await app.venues.venue_for(master_key.id)
    assert isinstance(master_venue, PaperVenue)
    stream = PaperFillSource(master_venue, master.id).fills()
    trader = PaperTrader(app.paper, master_venue, random.Random(seed))
    redelivered = 0
    for number in range(1, fills + 1):
        action = await trader.step()
        fill = await anext(stream)
        say(f"\n▶ Fill {number}/{fills}: master {action} @ {fill.price}")
        await app.engine.on_fill(fill)
        if (await app.engine.on_fill(fill)).duplicate:
            redelivered += 1
        while app.notifications.pending():
            event = await app.notifications.get()
            if isinstance(event, FollowPaused):
                say(f"  [{names[event.follow_id]}] {format_follow_paused(event)}")
            else:
                say(f"  [{names[event.follow_id]}] " + format_copy_result(event).splitlines()[0])
    return await _summary(app, fills, redelivered)


async def _summary(app, fills: int, redelivered: int) -> dict[str, Any]:
    async with app.db.session() as session:
        rows = list((await session.execute(select(CopyOrder))).scalars())
    statuses = Counter(row.status for row in rows)
    reasons = Counter(row.reason_code for row in rows if row.status in (CopyStatus.SKIPPED, CopyStatus.FAILED))
    accepted = sum(len(venue.orders) for venue in app.paper.accounts() if venue.master_id == 0)
    sent = sum(1 for row in rows if row.status in (CopyStatus.PLACED, CopyStatus.FILLED))
    return {
        "fills": fills,
        "placed": sent,
        "skipped": statuses[CopyStatus.SKIPPED],
        "failed": statuses[CopyStatus.FAILED],
        "pending": statuses[CopyStatus.PENDING],
        "duplicates": accepted - sent,
        "redelivered_fills_ignored": redelivered,
        "by_reason": dict(sorted(reasons.items())),
    }
