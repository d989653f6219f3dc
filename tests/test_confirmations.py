"""Manual confirmation: each copy of a follow with ``confirm_seconds`` is offered, and only a
"Copy" sends it — once, through the journaled path."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest

from copytrade.app import build_app
from copytrade.config import Settings
from copytrade.paper_setup import add_paper_follower, create_paper_master
from core.confirmations import CopyOffer
from core.errors import UserError
from core.follow_settings import parse_confirm_seconds
from core.model import CopyStatus, FollowStatus, OrderIntent, Side, SkipReason, utcnow
from core.vault import generate_key
from core.venues.paper.listener import PaperFillSource
from core.venues.paper.venue import PaperVenue

BTC = "BTC/USDT:USDT"


@pytest.fixture
async def app(tmp_path, migrated_sqlite):
    application = await build_app(
        Settings(database_url=migrated_sqlite(tmp_path / "app.db"), secret_key=generate_key(), data_dir=tmp_path)
    )
    yield application
    await application.close()


async def _offered(app, confirm: str = "60"):
    """A follow with manual confirmation, the master's buy of 0.1 BTC, and what it produced."""
    master, master_key = await create_paper_master(app.services, "Trend", "100000")
    follow, key = await add_paper_follower(
        app.services, master.id, "f", "20000", {"sizing_value": "0.5", "confirm_seconds": confirm}
    )
    master_venue = await app.venues.venue_for(master_key.id)
    follower = await app.venues.venue_for(key.id)
    assert isinstance(master_venue, PaperVenue) and isinstance(follower, PaperVenue)
    stream = PaperFillSource(master_venue, master.id).fills()
    await master_venue.place_order(OrderIntent(0, "m1", BTC, Side.BUY, D("0.1")))
    outcome = await app.engine.on_fill(await anext(stream))
    return follow, follower, outcome


def _published(app) -> list:
    return app.notifications.take_all()


async def test_a_copy_is_offered_not_sent_until_confirmed_and_pressing_twice_places_once(app):
    follow, follower, outcome = await _offered(app)
    [offered] = outcome.results
    assert offered.status is CopyStatus.OFFERED and follower.place_calls == 0
    [offer] = _published(app)
    assert isinstance(offer, CopyOffer)
    assert (offer.side, offer.quantity, offer.fill.quantity, offer.seconds) == (Side.BUY, D("0.05"), D("0.1"), 60)
    assert await app.journal.copy_order(offer.offer_id) is None  # nothing journaled before the answer

    copied = await app.services.answer_copy_offer(follow.user_id, offer.offer_id, copy=True)
    assert copied.status is CopyStatus.FILLED and copied.filled_quantity == D("0.05")
    with pytest.raises(UserError, match="already confirmed; it is sent once"):
        await app.services.answer_copy_offer(follow.user_id, offer.offer_id, copy=True)
    assert follower.place_calls == 1
    assert [(p.symbol, p.quantity) for p in await follower.positions()] == [(BTC, D("0.05"))]
    # the engine sent it the usual way: journaled under the offer's client order id, notified once
    row = await app.journal.copy_order(offer.offer_id)
    assert row is not None and row.status is CopyStatus.FILLED
    assert [e.status for e in _published(app) if getattr(e, "client_order_id", None) == offer.offer_id] == [
        CopyStatus.FILLED
    ]


async def test_an_unanswered_offer_expires_recorded_as_not_confirmed(app):
    follow, follower, _ = await _offered(app, confirm="30")
    [offer] = _published(app)
    assert await app.confirmations.expire_due() == []  # not yet
    app.confirmations.offers.clock = lambda: utcnow() + timedelta(seconds=31)
    [expired] = await app.confirmations.expire_due()
    assert expired.status is CopyStatus.SKIPPED and expired.skip.reason is SkipReason.NOT_CONFIRMED
    row = await app.journal.copy_order(offer.offer_id)
    assert row is not None and row.reason == "not confirmed (no answer within 30 s)"
    with pytest.raises(UserError, match="recorded as not confirmed"):
        await app.services.answer_copy_offer(follow.user_id, offer.offer_id, copy=True)
    assert follower.place_calls == 0


async def test_copy_pressed_after_the_time_is_up_says_so_and_sends_nothing(app):
    follow, follower, _ = await _offered(app, confirm="30")
    [offer] = _published(app)
    app.confirmations.offers.clock = lambda: utcnow() + timedelta(seconds=31)  # the expiry job has not run yet
    with pytest.raises(UserError, match="expired after 30 s; nothing was sent"):
        await app.services.answer_copy_offer(follow.user_id, offer.offer_id, copy=True)
    assert follower.place_calls == 0
    row = await app.journal.copy_order(offer.offer_id)
    assert row is not None and row.status is CopyStatus.SKIPPED


async def test_skip_records_the_copy_as_not_confirmed(app):
    follow, follower, _ = await _offered(app)
    [offer] = _published(app)
    skipped = await app.services.answer_copy_offer(follow.user_id, offer.offer_id, copy=False)
    assert skipped.status is CopyStatus.SKIPPED and str(skipped.skip) == "not confirmed (you chose Skip)"
    assert follower.place_calls == 0 and app.confirmations.pending() == []


async def test_copy_pressed_after_the_follow_was_paused_sends_nothing(app):
    follow, follower, _ = await _offered(app)
    [offer] = _published(app)
    await app.services.set_status(follow.user_id, follow.id, FollowStatus.PAUSED)
    with pytest.raises(UserError, match="no longer active"):
        await app.services.answer_copy_offer(follow.user_id, offer.offer_id, copy=True)
    assert follower.place_calls == 0
    row = await app.journal.copy_order(offer.offer_id)
    assert row is not None and row.reason == "not confirmed (the follow is not active)"


async def test_a_confirmed_copy_uses_the_follows_settings_as_they_are_now(app):
    follow, follower, _ = await _offered(app)
    [offer] = _published(app)
    await app.services.update_follow(follow.user_id, follow.id, {"sizing_value": "0.2"})
    copied = await app.services.answer_copy_offer(follow.user_id, offer.offer_id, copy=True)
    assert copied.filled_quantity == D("0.02")


async def test_another_users_answer_changes_nothing(app):
    follow, follower, _ = await _offered(app)
    [offer] = _published(app)
    with pytest.raises(UserError, match="no longer valid"):
        await app.services.answer_copy_offer(follow.user_id + 1000, offer.offer_id, copy=True)
    assert follower.place_calls == 0 and len(app.confirmations.pending()) == 1


@pytest.mark.parametrize(("value", "stored"), [("60", 60), ("off", None), ("3600", 3600), (None, None)])
def test_confirm_seconds_accepts_whole_seconds_or_off(value, stored):
    assert parse_confirm_seconds(value) == stored


@pytest.mark.parametrize(
    ("value", "message"),
    [("5", "at least 10"), ("12.5", "whole number"), ("7200", "at most 3600"), ("soon", "must be a number")],
)
def test_confirm_seconds_rejects_bad_values_naming_the_setting(value, message):
    with pytest.raises(UserError, match=f"manual confirmation \\(seconds\\).*{message}"):
        parse_confirm_seconds(value)
