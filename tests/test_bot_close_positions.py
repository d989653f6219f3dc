"""/stop → "close positions": core/positions.py against the paper venue and a real database."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D

import pytest

from copytrade.app import build_app
from copytrade.config import load_settings
from copytrade.core.errors import OrderStatusUnknown, UserError
from copytrade.core.model import CopyStatus, FollowStatus, OrderIntent, Side
from copytrade.core.positions import stop_follow
from copytrade.core.vault import generate_key
from copytrade.paper_setup import add_paper_follower, create_paper_master
from copytrade.storage.models import FollowPosition


@pytest.fixture
async def app(tmp_path):
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'c.db'}", secret_key=generate_key(), mode="paper", data_dir=tmp_path,
                             telegram_bot_token=None)
    application = await build_app(settings)
    yield application
    await application.close()


async def copied(app, quantity: str, symbol: str = "BTC/USDT:USDT"):
    """A follower whose copier opened ``quantity`` of ``symbol`` (a master fill, really copied)."""
    master, master_key = await create_paper_master(app.services, f"M{quantity}{symbol[:3]}", "100000")
    follow, key = await add_paper_follower(app.services, master.id, f"F{quantity}{symbol[:3]}", "20000", {"sizing_value": "1"})
    await app.start_listener(master.id)
    master_venue = await app.venues.venue_for(master_key.id)
    await master_venue.place_order(OrderIntent(0, "m1", symbol, Side.BUY, D(quantity)))
    for _ in range(200):
        if await app.accounts.follow_positions_of(follow.id):
            break
        await asyncio.sleep(0.02)
    return follow, await app.venues.venue_for(key.id)


async def test_close_sells_only_what_the_copier_opened_never_the_manual_position(app):
    follow, venue = await copied(app, "0.02")
    await venue.place_order(OrderIntent(0, "manual-1", "BTC/USDT:USDT", Side.BUY, D("0.05")))  # the user's own trade
    stopped, outcomes = await stop_follow(app.services, app.positions, follow.user_id, follow.id, close_positions=True)
    assert stopped.status is FollowStatus.STOPPED
    [outcome] = outcomes
    assert (outcome.status, outcome.side, outcome.filled_quantity) == (CopyStatus.FILLED, Side.SELL, D("0.02"))
    assert outcome.client_order_id.startswith("cx")
    assert [(p.symbol, p.quantity) for p in await venue.positions()] == [("BTC/USDT:USDT", D("0.05"))]
    assert await app.accounts.follow_positions_of(follow.id) == []
    row = await app.accounts.follow(follow.id)
    assert "positions closed on stop: sell 0.02 BTC/USDT:USDT" in row.status_reason


async def test_keep_positions_leaves_them_open(app):
    follow, venue = await copied(app, "0.02")
    _, outcomes = await stop_follow(app.services, app.positions, follow.user_id, follow.id, close_positions=False)
    assert outcomes == [] and [p.quantity for p in await venue.positions()] == [D("0.02")]


async def test_an_active_follow_is_not_closed_and_another_users_follow_is_not_found(app):
    follow, _ = await copied(app, "0.02")
    with pytest.raises(UserError):
        await app.positions.close_follow(await app.accounts.follow(follow.id))
    with pytest.raises(UserError, match="no such follow"):
        await stop_follow(app.services, app.positions, follow.user_id + 1000, follow.id, close_positions=True)


async def test_a_close_whose_answer_was_lost_is_found_by_client_id_not_sent_twice(app):
    follow, venue = await copied(app, "0.02")
    await app.services.set_status(follow.user_id, follow.id, FollowStatus.PAUSED)
    paused = await app.accounts.follow(follow.id)
    venue.fail_next(OrderStatusUnknown("timed out after sending"), after_accepting=True)
    [first] = await app.positions.close_follow(paused)
    assert first.status is CopyStatus.FAILED
    calls = venue.place_calls
    [second] = await app.positions.close_follow(paused)
    assert second.status is CopyStatus.FILLED and second.client_order_id == first.client_order_id
    assert venue.place_calls == calls  # looked up, not re-sent
    assert await venue.positions() == []


async def test_a_remainder_below_the_minimum_is_reported_not_sent(app):
    follow, venue = await copied(app, "0.02")
    async with app.db.session() as session:
        session.add(FollowPosition(follow_id=follow.id, symbol="SOL/USDT:USDT", quantity=D("0.4"), entry_price=D(150)))
    await app.services.set_status(follow.user_id, follow.id, FollowStatus.PAUSED)
    outcomes = {o.symbol: o for o in await app.positions.close_follow(await app.accounts.follow(follow.id))}
    assert outcomes["SOL/USDT:USDT"].status is CopyStatus.SKIPPED and "below the exchange's minimum 1" in outcomes["SOL/USDT:USDT"].reason
    assert outcomes["BTC/USDT:USDT"].status is CopyStatus.FILLED
