"""/stop → "close positions": ``Services.stop_follow`` over ``RiskService.close_positions``
(journaled, reduce-only, never sent twice) against the paper venue and a real database."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D

import pytest

from bot.formatting import format_copy_result
from copytrade.app import build_app
from copytrade.config import load_settings
from copytrade.paper_setup import add_paper_follower, create_paper_master
from core.copying.config import EngineConfig
from core.errors import OrderStatusUnknown, UserError
from core.model import CopyResult, CopyStatus, FollowStatus, OrderIntent, Side
from core.vault import generate_key
from storage.models import FollowPosition


@pytest.fixture
async def app(tmp_path, migrated_sqlite):
    settings = load_settings(
        database_url=migrated_sqlite(tmp_path / "c.db"),
        secret_key=generate_key(),
        mode="paper",
        data_dir=tmp_path,
        telegram_bot_token=None,
    )
    application = await build_app(settings, engine_config=EngineConfig(retry_delays=(0.01, 0.01)))
    yield application
    await application.close()


async def copied(app, quantity: str, symbol: str = "BTC/USDT:USDT"):
    """A follower whose copier opened ``quantity`` of ``symbol`` (a master fill, really copied)."""
    master, master_key = await create_paper_master(app.services, f"M{quantity}{symbol[:3]}", "100000")
    follow, key = await add_paper_follower(
        app.services, master.id, f"F{quantity}{symbol[:3]}", "20000", {"sizing_value": "1"}
    )
    await app.start_listener(master.id)
    master_venue = await app.venues.venue_for(master_key.id)
    await master_venue.place_order(OrderIntent(0, "m1", symbol, Side.BUY, D(quantity)))
    for _ in range(200):
        if await app.accounts.follow_positions_of(follow.id):
            break
        await asyncio.sleep(0.02)
    await app.engine.drain()
    return follow, await app.venues.venue_for(key.id)


def published(app) -> list[object]:
    events = []
    while app.notifications.pending():
        events.append(app.notifications._queue.get_nowait())
    return events


async def test_close_sells_only_what_the_copier_opened_never_the_manual_position(app):
    follow, venue = await copied(app, "0.02")
    await venue.place_order(OrderIntent(0, "manual-1", "BTC/USDT:USDT", Side.BUY, D("0.05")))  # the user's own trade
    published(app)
    stopped, [result] = await app.services.stop_follow(follow.user_id, follow.id, close_positions=True)
    assert (
        stopped.status is FollowStatus.STOPPED and (await app.accounts.follow(follow.id)).status is FollowStatus.STOPPED
    )
    assert (result.status, result.side, result.filled_quantity, result.origin) == (
        CopyStatus.FILLED,
        Side.SELL,
        D("0.02"),
        "close",
    )
    assert result.client_order_id.startswith("cx")
    assert [(p.symbol, p.quantity) for p in await venue.positions()] == [("BTC/USDT:USDT", D("0.05"))]
    assert await app.accounts.follow_positions_of(follow.id) == []
    row = await app.journal.copy_order(result.client_order_id)  # journaled like a copy
    assert row.status is CopyStatus.FILLED and row.reduce_only
    [notice] = [e for e in published(app) if isinstance(e, CopyResult)]
    assert format_copy_result(notice).startswith("🔒 Closing your copied position: sold 0.02 BTC/USDT:USDT")


async def test_keep_positions_leaves_them_open(app):
    follow, venue = await copied(app, "0.02")
    stopped, results = await app.services.stop_follow(follow.user_id, follow.id, close_positions=False)
    assert stopped.status is FollowStatus.STOPPED
    assert results == [] and [p.quantity for p in await venue.positions()] == [D("0.02")]


async def test_another_users_follow_is_not_found_and_nothing_is_sent(app):
    follow, venue = await copied(app, "0.02")
    calls = venue.place_calls
    with pytest.raises(UserError, match="no such follow"):
        await app.services.stop_follow(follow.user_id + 1000, follow.id, close_positions=True)
    assert venue.place_calls == calls and (await app.accounts.follow(follow.id)).status is FollowStatus.ACTIVE


async def test_a_close_whose_answer_was_lost_is_found_by_client_id_not_sent_twice(app):
    follow, venue = await copied(app, "0.02")
    real_fetch = venue.fetch_order

    async def unreachable(client_order_id, symbol):
        raise OrderStatusUnknown("connection reset")

    venue.fail_next(OrderStatusUnknown("timed out after sending"), after_accepting=True)
    venue.fetch_order = unreachable  # the lookup fails too: the close stays pending
    _, [first] = await app.services.stop_follow(follow.user_id, follow.id, close_positions=True)
    assert first.status is CopyStatus.PENDING
    calls = venue.place_calls
    venue.fetch_order = real_fetch
    _, again = await app.services.stop_follow(follow.user_id, follow.id, close_positions=True)  # "Close" again
    assert again == []  # the pending close was settled first (looked up: filled), so nothing is left to close
    row = await app.journal.copy_order(first.client_order_id)
    assert row is not None and row.status is CopyStatus.FILLED
    assert venue.place_calls == calls  # looked up, not re-sent
    assert await venue.positions() == [] and await app.accounts.follow_positions_of(follow.id) == []
    _, third = await app.services.stop_follow(follow.user_id, follow.id, close_positions=True)
    assert third == [] and venue.place_calls == calls  # nothing left to close


async def test_a_remainder_below_the_minimum_is_reported_and_the_rest_closed(app):
    follow, venue = await copied(app, "0.02")
    async with app.db.session() as session:  # 0.4 SOL: below the paper exchange's step and minimum of 1
        session.add(FollowPosition(follow_id=follow.id, symbol="SOL/USDT:USDT", quantity=D("0.4"), entry_price=D(150)))
    _, results = await app.services.stop_follow(follow.user_id, follow.id, close_positions=True)
    outcomes = {r.fill.symbol: r for r in results}
    sol = outcomes["SOL/USDT:USDT"]
    assert (
        sol.status is CopyStatus.SKIPPED and "0.4 SOL is below the step or minimum 1" in sol.reason
    )  # never sent unrounded
    text = format_copy_result(sol)
    assert "not sent for SOL/USDT:USDT" in text and "close it on your exchange" in text
    assert outcomes["BTC/USDT:USDT"].status is CopyStatus.FILLED
    assert await venue.positions() == []


@pytest.mark.parametrize("pressed_after", [0.0, 0.005, 0.02, 0.05, 0.1, 0.2])
async def test_stop_and_close_pressed_at_any_moment_of_a_fan_out_leaves_nothing_open(app, pressed_after):
    """The master's fill arrives and the follower presses "Close" somewhere in its copy's journey
    (being planned, journaled, on the wire, answered): the stop fences the follow first, its copy in
    flight is waited for, and what it holds then is closed — never a copy sent after the close."""
    follow, venue = await copied(app, "0.02")
    venue.latency = 0.03  # the copy's send is on the wire for a while
    master = await app.accounts.master(follow.master_id)
    master_venue = await app.venues.venue_for(master.credential_id)
    await master_venue.place_order(OrderIntent(0, "m2", "BTC/USDT:USDT", Side.BUY, D("0.03")))
    await asyncio.sleep(pressed_after)
    await app.services.stop_follow(follow.user_id, follow.id, close_positions=True)
    await asyncio.sleep(0.3)  # bounded: the listener's delivery of the fill, if it had not come yet
    await app.engine.drain()
    await app.engine.resume()
    assert await venue.positions() == []  # nothing the copier opened is left open
    assert await app.accounts.follow_positions_of(follow.id) == []  # and the ledger says so
