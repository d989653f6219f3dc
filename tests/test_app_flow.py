"""Services and engine together, as the running app wires them."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from sqlalchemy import select

from copytrade.app import build_app
from copytrade.cli import main
from copytrade.config import Settings
from copytrade.paper_setup import add_paper_follower, create_paper_master
from core.model import FollowStatus, OrderIntent, Side, SkipReason
from core.vault import generate_key
from core.venues.paper.listener import PaperFillSource
from storage.models import MasterPosition

BTC = "BTC/USDT:USDT"


@pytest.fixture
async def app(tmp_path, migrated_sqlite):
    application = await build_app(
        Settings(database_url=migrated_sqlite(tmp_path / "app.db"), secret_key=generate_key(), data_dir=tmp_path)
    )
    yield application
    await application.close()


async def _master_and_stream(app):
    master, key = await create_paper_master(app.services, "Master", "100000")
    venue = await app.venues.venue_for(key.id)
    return master, venue, PaperFillSource(venue, master.id).fills()


async def _trade(app, venue, stream, side: str, qty: str):
    venue_side = Side(side)
    await venue.place_order(
        OrderIntent(0, f"m{venue.place_calls}", BTC, venue_side, D(qty), reduce_only=venue_side is Side.SELL)
    )
    return await app.engine.on_fill(await anext(stream))


async def test_switching_dry_run_off_forgets_the_simulated_position(app):
    master, venue, stream = await _master_and_stream(app)
    follow, _ = await add_paper_follower(app.services, master.id, "f", "20000", {"sizing_value": "1", "dry_run": True})
    await _trade(app, venue, stream, "buy", "0.1")
    await app.services.update_follow(follow.user_id, follow.id, {"dry_run": "off"})
    outcome = await _trade(app, venue, stream, "sell", "0.1")
    assert outcome.results[0].skip.reason is SkipReason.NO_POSITION_TO_EXIT  # no live order for a simulated position


async def test_following_again_after_stop_starts_from_a_clean_ledger(app):
    master, venue, stream = await _master_and_stream(app)
    follow, key = await add_paper_follower(app.services, master.id, "f", "20000", {"sizing_value": "1"})
    await _trade(app, venue, stream, "buy", "0.1")
    await app.services.set_status(follow.user_id, follow.id, FollowStatus.STOPPED)
    again = await app.services.follow(follow.user_id, master.id, key.id, {"sizing_value": "1"})
    assert again.id == follow.id and again.status is FollowStatus.ACTIVE
    outcome = await _trade(app, venue, stream, "sell", "0.1")
    assert outcome.results[0].skip.reason is SkipReason.NO_POSITION_TO_EXIT


async def test_paused_follow_is_not_copied_and_resumed_one_is(app):
    master, venue, stream = await _master_and_stream(app)
    follow, _ = await add_paper_follower(app.services, master.id, "f", "20000", {"sizing_value": "1"})
    await app.services.set_status(follow.user_id, follow.id, FollowStatus.PAUSED)
    assert (await _trade(app, venue, stream, "buy", "0.1")).results == ()
    await app.services.set_status(follow.user_id, follow.id, FollowStatus.ACTIVE)
    assert len((await _trade(app, venue, stream, "buy", "0.1")).results) == 1


def test_unreachable_database_is_one_line_without_the_password(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "postgresql://bob:hunter2@127.0.0.1:1/nowhere")
    assert main(["migrate"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("copytrade: error: DATABASE_URL: cannot open postgresql://bob:***@")
    assert "hunter2" not in err


async def test_opening_a_masters_stream_takes_its_positions_from_the_venue(app):
    master, key = await create_paper_master(app.services, "Restarted", "100000")
    await app.journal.set_master_position(master.id, "ETH/USDT:USDT", D("-2"))  # stale: closed while we were away
    venue = await app.venues.venue_for(key.id)
    await venue.place_order(OrderIntent(0, "m-before", BTC, Side.BUY, D("0.1")))  # opened before the stream
    await app.open_fill_source(master.id)
    async with app.db.session() as session:
        positions = {(p.symbol, p.quantity) for p in (await session.execute(select(MasterPosition))).scalars()}
    assert positions == {("ETH/USDT:USDT", 0), (BTC, D("0.1"))}


async def test_dry_run_off_keeps_the_real_positions_copied_before_it(app):
    master, venue, stream = await _master_and_stream(app)
    follow, _ = await add_paper_follower(app.services, master.id, "f", "20000", {"sizing_value": "1"})
    await _trade(app, venue, stream, "buy", "0.2")  # real: 0.2
    await app.services.update_follow(follow.user_id, follow.id, {"dry_run": "on"})
    await _trade(app, venue, stream, "buy", "0.1")  # simulated: 0.1
    await app.services.update_follow(follow.user_id, follow.id, {"dry_run": "off"})
    [real] = await app.accounts.follow_positions_of(follow.id)
    assert real.quantity == D("0.2")
    outcome = await _trade(app, venue, stream, "sell", "0.3")  # the master closes everything
    assert outcome.results[0].filled_quantity == D("0.2")  # the real copy is closed in full
