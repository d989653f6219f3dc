"""The use cases behind every bot command: validation with a clear message and nothing changed,
ownership ("not found" for other users' rows), and the good paths."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from copytrade.app import App, build_app
from copytrade.config import Mode, Settings
from core.errors import NotFound, UserError
from core.journal import PositionChange
from core.model import CopyStatus, Fill, FollowStatus, OrderIntent, Side, SizingMode, SkipReason
from core.records import FollowRecord
from core.vault import generate_key
from core.venues.paper.venue import PaperVenue
from storage.models import Credential, Follow, FollowPosition, MasterStatus

_names = itertools.count(1)
_trades = itertools.count(1)


@pytest.fixture
async def app(migrated_sqlite_url, tmp_path, monkeypatch) -> AsyncIterator[App]:
    monkeypatch.chdir(tmp_path)  # no .env
    application = await build_app(
        Settings(database_url=migrated_sqlite_url, secret_key=generate_key(), data_dir=tmp_path, mode=Mode.PAPER)
    )
    try:
        yield application
    finally:
        await application.close()


# -- helpers --------------------------------------------------------------------------------------


async def new_user(app: App, name: str | None = None) -> int:
    user = await app.services.register_user(None, name or f"user {next(_names)}")
    assert user.id is not None
    return user.id


async def paper_account(app: App, user_id: int, label: str = "main", balance: str = "10000") -> str:
    view = await app.services.connect_account(
        user_id, "paper", label, {"api_key": f"paper-key-{next(_names)}", "balance": balance}, environment="paper"
    )
    return view.id


async def new_master(app: App, name: str | None = None) -> int:
    owner = await new_user(app, "master owner")
    key = await paper_account(app, owner, "master key", "100000")
    master = await app.services.add_master(name or f"Master {next(_names)}", "paper", owner_id=owner, credential_id=key)
    return master.id


async def follower(
    app: App, master_id: int, settings: dict | None = None, balance: str = "10000"
) -> tuple[int, str, FollowRecord]:
    """A new user with a paper key following ``master_id``: (user id, credential id, follow)."""
    user_id = await new_user(app)
    credential_id = await paper_account(app, user_id, balance=balance)
    follow = await app.services.follow(user_id, master_id, credential_id, settings)
    return user_id, credential_id, follow


async def count(app: App, model) -> int:
    async with app.db.session() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def snapshot(app: App, follow_id: int | None) -> dict:
    assert follow_id is not None
    row = await app.accounts.follow(follow_id)
    assert row is not None
    return row.model_dump()


def master_fill(master_id: int, side: Side, quantity: str, symbol: str = "BTC/USDT", price: str = "60000") -> Fill:
    trade = next(_trades)
    return Fill(
        master_id=master_id,
        venue="paper:test-master",
        trade_id=f"t{trade}",
        order_id=f"o{trade}",
        symbol=symbol,
        side=side,
        quantity=Decimal(quantity),
        price=Decimal(price),
    )


# -- follow: bad settings, each refused with a message and nothing stored ------------------------


BAD_FOLLOW_SETTINGS = [
    pytest.param({"sizing_value": "-1"}, "coefficient must be more than 0", id="coefficient-negative"),
    pytest.param({"sizing_value": "0"}, "coefficient must be more than 0", id="coefficient-zero"),
    pytest.param({"sizing_value": "abc"}, "coefficient must be a number", id="coefficient-text"),
    pytest.param({"sizing_value": "1000"}, "at most 100", id="coefficient-huge"),
    pytest.param({"sizing_value": "NaN"}, "coefficient must be a number, got .NaN.", id="coefficient-nan"),
    pytest.param(
        {"sizing_value": "Infinity"}, "coefficient must be a number, got .Infinity.", id="coefficient-infinity"
    ),
    pytest.param({"sizing_value": 1.5}, "not a float", id="coefficient-float"),
    pytest.param({"sizing_mode": "martingale", "sizing_value": "1"}, "sizing mode must be one of", id="mode-unknown"),
    pytest.param(
        {"sizing_mode": "fixed_notional"}, "give a value together with the sizing mode", id="mode-without-value"
    ),
    pytest.param({"take_profit_pct": "500"}, "take-profit % must be more than 0 and at most 100", id="take-profit-500"),
    pytest.param({"stop_loss_pct": "100"}, "stop-loss % must be below 100", id="stop-loss-100"),
    pytest.param({"stop_loss_pct": "-5"}, "stop-loss %", id="stop-loss-negative"),
    pytest.param({"leverage": "0"}, "leverage must be at least 1", id="leverage-zero"),
    pytest.param({"leverage": "-1"}, "leverage must be at least 1", id="leverage-negative"),
    pytest.param({"leverage": "2.5"}, "leverage must be a whole number", id="leverage-fraction"),
    pytest.param({"leverage": "126"}, "leverage must be at least 1 and at most 125", id="leverage-too-high"),
    pytest.param({"allowed_symbols": "BTC, DOGE"}, "DOGE is not traded on paper", id="allow-unknown-symbol"),
    pytest.param({"blocked_symbols": "DOGE"}, "DOGE", id="block-unknown-symbol"),
    pytest.param({"allowed_symbols": "BTC$"}, "is not a symbol name", id="allow-bad-name"),
    pytest.param(
        {"order_types": "iceberg"}, "order type must be market, limit or stop, got 'iceberg'", id="order-type"
    ),
    pytest.param({"reverse": "maybe"}, "reverse must be on or off", id="reverse-garbage"),
    pytest.param({"max_position_notional": "-1"}, "max position", id="max-position-negative"),
    pytest.param({"status": "active"}, "unknown setting 'status'", id="not-a-setting"),
    pytest.param({"user_id": 1}, "unknown setting 'user_id'", id="no-mass-assignment"),
]


@pytest.mark.parametrize(("settings", "message"), BAD_FOLLOW_SETTINGS)
async def test_follow_with_bad_settings_is_refused_and_stores_nothing(app, settings, message):
    master_id = await new_master(app)
    user_id = await new_user(app)
    credential_id = await paper_account(app, user_id)
    with pytest.raises(UserError, match=message.replace("%", "%").replace("$", r"\$")):
        await app.services.follow(user_id, master_id, credential_id, settings)
    assert await count(app, Follow) == 0


@pytest.mark.parametrize(("settings", "message"), BAD_FOLLOW_SETTINGS)
async def test_update_follow_with_bad_settings_is_refused_and_changes_nothing(app, settings, message):
    master_id = await new_master(app)
    user_id, _, follow = await follower(app, master_id, {"sizing_value": "2", "take_profit_pct": "10", "leverage": "3"})
    before = await snapshot(app, follow.id)
    with pytest.raises(UserError, match=message.replace("$", r"\$")):
        await app.services.update_follow(user_id, follow.id, settings)
    assert await snapshot(app, follow.id) == before


async def test_a_coefficient_too_small_to_store_is_refused(app):
    master_id = await new_master(app)
    user_id, _, follow = await follower(app, master_id)
    with pytest.raises(UserError, match="decimal places"):
        await app.services.update_follow(user_id, follow.id, {"sizing_value": "0.0000000000000000001"})
    assert (await app.accounts.follow(follow.id)).sizing_value == 1


async def test_update_follow_checks_the_value_against_the_current_sizing_mode(app):
    master_id = await new_master(app)
    user_id, _, follow = await follower(app, master_id, {"sizing_mode": "fixed_notional", "sizing_value": "500"})
    updated = await app.services.update_follow(user_id, follow.id, {"sizing_value": "1000"})  # > 100: fine for notional
    assert updated.sizing_mode is SizingMode.FIXED_NOTIONAL and updated.sizing_value == Decimal(1000)
    with pytest.raises(UserError, match="at most 100"):
        await app.services.update_follow(user_id, follow.id, {"sizing_mode": "coefficient", "sizing_value": "1000"})
    assert (await app.accounts.follow(follow.id)).sizing_mode is SizingMode.FIXED_NOTIONAL


# -- follow: who may follow what ------------------------------------------------------------------


async def test_following_the_same_master_twice_with_the_same_account_is_refused(app):
    master_id = await new_master(app)
    user_id, credential_id, _ = await follower(app, master_id)
    with pytest.raises(UserError, match="already following") as info:
        await app.services.follow(user_id, master_id, credential_id, {"sizing_value": "3"})
    assert "80005" in str(info.value)
    assert await count(app, Follow) == 1


async def test_following_the_same_master_with_a_second_account_is_allowed(app):
    master_id = await new_master(app)
    user_id, _, first = await follower(app, master_id)
    second_key = await paper_account(app, user_id, label="second")
    second = await app.services.follow(user_id, master_id, second_key)
    assert second.id != first.id
    assert [f.id for f in await app.services.follows_of(user_id)] == [first.id, second.id]


async def test_following_with_another_users_account_is_not_found(app):
    master_id = await new_master(app)
    _, victim_key, _ = await follower(app, master_id)
    intruder = await new_user(app)
    other_master = await new_master(app)
    with pytest.raises(NotFound):
        await app.services.follow(intruder, other_master, victim_key)
    assert await count(app, Follow) == 1


async def test_following_an_unknown_or_retired_master_is_not_found(app):
    user_id = await new_user(app)
    key = await paper_account(app, user_id)
    with pytest.raises(NotFound):
        await app.services.follow(user_id, 999_999, key)
    master_id = await new_master(app)
    await app.services.set_master_status(master_id, MasterStatus.RETIRED)
    with pytest.raises(NotFound):
        await app.services.follow(user_id, master_id, key)
    assert await count(app, Follow) == 0


async def test_a_master_cannot_copy_itself(app):
    owner = await new_user(app)
    key = await paper_account(app, owner)
    master = await app.services.add_master("Self Copier", "paper", owner_id=owner, credential_id=key)
    with pytest.raises(UserError, match="cannot copy itself"):
        await app.services.follow(owner, master.id, key)
    assert await count(app, Follow) == 0


async def test_updating_another_users_follow_is_not_found_and_changes_nothing(app):
    master_id = await new_master(app)
    _, _, follow = await follower(app, master_id)
    intruder = await new_user(app)
    before = await snapshot(app, follow.id)
    with pytest.raises(NotFound):
        await app.services.update_follow(intruder, follow.id, {"sizing_value": "50"})
    with pytest.raises(NotFound):
        await app.services.set_status(intruder, follow.id, FollowStatus.PAUSED)
    with pytest.raises(NotFound):
        await app.services.set_status(intruder, follow.id, FollowStatus.STOPPED)
    with pytest.raises(NotFound):
        await app.services.update_follow(intruder, 999_999, {"sizing_value": "2"})
    assert await snapshot(app, follow.id) == before


# -- exchange accounts ----------------------------------------------------------------------------


async def test_remove_account_while_a_follow_uses_it_is_refused(app):
    master_id = await new_master(app)
    user_id, credential_id, _ = await follower(app, master_id)
    with pytest.raises(UserError, match="still copies 1 master"):
        await app.services.remove_account(user_id, credential_id)
    assert await app.accounts.credential(credential_id) is not None


async def test_remove_another_users_account_is_not_found(app):
    owner = await new_user(app)
    key = await paper_account(app, owner)
    intruder = await new_user(app)
    with pytest.raises(NotFound):
        await app.services.remove_account(intruder, key)
    assert await app.accounts.credential(key) is not None


async def test_remove_an_unused_account_deletes_it(app):
    user_id = await new_user(app)
    key = await paper_account(app, user_id)
    view = await app.services.remove_account(user_id, key)
    assert view.id == key
    assert await app.accounts.credential(key) is None
    assert await app.services.accounts_of(user_id) == []


async def test_remove_account_after_its_follows_were_stopped_keeps_their_history(app):
    master_id = await new_master(app)
    user_id, credential_id, follow = await follower(app, master_id)
    await app.services.set_status(user_id, follow.id, FollowStatus.STOPPED)
    await app.services.remove_account(user_id, credential_id)
    assert await app.accounts.credential(credential_id) is None
    assert await app.accounts.sealed_credential(credential_id) is None
    kept = await app.accounts.follow(follow.id)
    assert kept is not None and kept.status is FollowStatus.STOPPED and kept.credential_id is None


async def test_remove_an_account_a_master_uses_is_refused_with_a_user_error(app):
    owner = await new_user(app)
    key = await paper_account(app, owner)
    await app.services.add_master("Watched", "paper", owner_id=owner, credential_id=key)
    with pytest.raises(UserError):
        await app.services.remove_account(owner, key)
    assert await app.accounts.credential(key) is not None


BAD_KEYS = [
    pytest.param("paper", {"api_key": "has a space"}, "api key does not look right", id="space-in-key"),
    pytest.param("paper", {"api_key": "x" * 513}, "api key does not look right", id="key-too-long"),
    pytest.param("paper", {"api_key": "   "}, "api key is missing", id="blank-key"),
    pytest.param("paper", {}, "api key is missing", id="missing-key"),
    pytest.param(
        "paper", {"api_key": "ok-key", "balance": "abc"}, "starting balance must be a number", id="bad-balance"
    ),
    pytest.param(
        "paper", {"api_key": "ok-key", "balance": "-5"}, "starting balance must be more than 0", id="negative-balance"
    ),
    pytest.param(
        "not-an-exchange", {"api_key": "ok-key"}, "'not-an-exchange' is not a supported venue", id="unknown-venue"
    ),
    pytest.param("binance", {"api_key": "ok-key"}, "secret is missing", id="binance-without-secret"),
    pytest.param(
        "angelone",
        {"api_key": "ak", "client_code": "C123", "pin": "1234", "totp_secret": "0189"},
        "TOTP secret is not a valid base32 seed",
        id="angelone-bad-totp",
    ),
    pytest.param(
        "angelone",
        {"api_key": "ak", "client_code": "C123", "pin": "12ab", "totp_secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"},
        "PIN must be 4 to 8 digits",
        id="angelone-bad-pin",
    ),
    pytest.param(
        "angelone",
        {"api_key": "ak", "client_code": "C123", "pin": "1234", "totp_secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"},
        "angelone is not available",
        id="angelone-valid-looking-but-not-in-paper-mode",
    ),
    pytest.param(
        "binanceusdm",
        {"api_key": "ak", "secret": "sk"},
        "binanceusdm is not available",
        id="binance-not-in-paper-mode",
    ),
]


@pytest.mark.parametrize(("venue", "secrets", "message"), BAD_KEYS)
async def test_connect_account_with_a_bad_key_is_refused_and_stores_nothing(app, venue, secrets, message):
    user_id = await new_user(app)
    with pytest.raises(UserError, match=message):
        await app.services.connect_account(user_id, venue, "main", secrets)
    assert await app.services.accounts_of(user_id) == []
    assert await count(app, Credential) == 0


@pytest.mark.parametrize("label", ["", "   ", "bad/label", "x" * 65, "semi;colon"])
async def test_connect_account_with_a_bad_label_is_refused(app, label):
    user_id = await new_user(app)
    with pytest.raises(UserError, match="label"):
        await app.services.connect_account(user_id, "paper", label, {"api_key": "ok-key"})
    assert await count(app, Credential) == 0


async def test_connect_account_twice_with_the_same_label_is_refused(app):
    user_id = await new_user(app)
    await paper_account(app, user_id, label="main")
    with pytest.raises(UserError, match="already have an account labelled 'main'"):
        await paper_account(app, user_id, label="main")
    assert len(await app.services.accounts_of(user_id)) == 1


async def test_connect_account_stores_a_sealed_validated_key(app):
    user_id = await new_user(app)
    view = await app.services.connect_account(
        user_id, "paper", " main ", {"api_key": "  my-paper-key  "}, environment="paper"
    )
    assert view.label == "main" and view.venue == "paper" and view.environment == "paper"
    assert "my-paper-key" not in view.key_fingerprint
    stored = await app.accounts.credential(view.id)
    assert stored.last_validated_at is not None
    sealed = await app.accounts.sealed_credential(view.id)
    assert b"my-paper-key" not in sealed.ciphertext
    assert app.vault.decrypt(sealed.ciphertext, owner_id=user_id, credential_id=view.id) == {"api_key": "my-paper-key"}


# -- good paths -----------------------------------------------------------------------------------


async def test_update_follow_changes_the_settings_as_decimals(app):
    master_id = await new_master(app)
    user_id, _, follow = await follower(app, master_id)
    await app.services.update_follow(
        user_id,
        follow.id,
        {
            "sizing_value": "0.5",
            "take_profit_pct": "12.5",
            "stop_loss_pct": "7",
            "max_position_notional": "2500",
            "daily_loss_limit": "300",
            "leverage": "3",
            "allowed_symbols": "btc, ETH",
            "blocked_symbols": "SOLUSDT",
            "order_types": "market limit",
            "reverse": "on",
            "dry_run": "yes",
        },
    )
    row = await app.accounts.follow(follow.id)
    for name, expected in (
        ("sizing_value", Decimal("0.5")),
        ("take_profit_pct", Decimal("12.5")),
        ("stop_loss_pct", Decimal(7)),
        ("max_position_notional", Decimal(2500)),
        ("daily_loss_limit", Decimal(300)),
    ):
        value = getattr(row, name)
        assert isinstance(value, Decimal) and value == expected, name
    assert row.leverage == 3
    assert row.allowed_symbols == ["BTC", "ETH"] and row.blocked_symbols == ["SOLUSDT"]
    assert row.order_types == ["limit", "market"]
    assert row.reverse is True and row.dry_run is True
    assert row.updated_at >= follow.updated_at
    [engine_view] = await app.journal.active_follows(master_id)
    assert engine_view.allowed_symbols == frozenset({"BTC", "ETH"})


async def test_update_follow_clears_optional_limits_with_off(app):
    master_id = await new_master(app)
    user_id, _, follow = await follower(
        app, master_id, {"take_profit_pct": "10", "leverage": "5", "allowed_symbols": "BTC"}
    )
    await app.services.update_follow(
        user_id, follow.id, {"take_profit_pct": "off", "leverage": "none", "allowed_symbols": "-"}
    )
    row = await app.accounts.follow(follow.id)
    assert row.take_profit_pct is None and row.leverage is None and row.allowed_symbols == []


async def _give_position(app: App, follow_id: int | None, *, simulated: bool = False) -> None:
    assert follow_id is not None
    await app.journal.finish_copies(
        [], [PositionChange(follow_id, "BTC/USDT:USDT", Decimal("0.5"), Decimal(60000), simulated=simulated)]
    )
    assert await app.journal.follow_positions([follow_id], "BTC/USDT:USDT", simulated=simulated) == {
        follow_id: Decimal("0.5")
    }


async def test_turning_dry_run_off_clears_the_simulated_positions(app):
    master_id = await new_master(app)
    user_id, _, follow = await follower(app, master_id, {"dry_run": "on"})
    await _give_position(app, follow.id, simulated=True)
    await _give_position(app, follow.id)  # a real copy from before dry run was switched on
    row = await app.services.update_follow(user_id, follow.id, {"dry_run": "off"})
    assert row.dry_run is False
    assert await app.journal.follow_positions([follow.id], "BTC/USDT:USDT", simulated=True) == {}
    assert await app.journal.follow_positions([follow.id], "BTC/USDT:USDT") == {follow.id: Decimal("0.5")}
    assert await count(app, FollowPosition) == 1


async def test_other_setting_changes_keep_the_positions(app):
    master_id = await new_master(app)
    user_id, _, follow = await follower(app, master_id)
    await _give_position(app, follow.id)
    await app.services.update_follow(user_id, follow.id, {"sizing_value": "2", "dry_run": "off"})  # already live
    await app.services.update_follow(user_id, follow.id, {"dry_run": "on"})
    assert await app.journal.follow_positions([follow.id], "BTC/USDT:USDT") == {follow.id: Decimal("0.5")}


async def test_set_status_pauses_and_resumes(app):
    master_id = await new_master(app)
    user_id, _, follow = await follower(app, master_id)
    paused = await app.services.set_status(user_id, follow.id, FollowStatus.PAUSED)
    assert paused.status is FollowStatus.PAUSED
    assert (await app.accounts.follow(follow.id)).status is FollowStatus.PAUSED
    assert await app.journal.active_follows(master_id) == []
    assert (await app.services.masters())[0].followers == 0

    await app.services.set_status(user_id, follow.id, FollowStatus.ACTIVE)
    assert (await app.accounts.follow(follow.id)).status is FollowStatus.ACTIVE
    assert [f.follow_id for f in await app.journal.active_follows(master_id)] == [follow.id]


async def test_a_stopped_follow_cannot_be_resumed_or_updated(app):
    master_id = await new_master(app)
    user_id, _, follow = await follower(app, master_id)
    await app.services.set_status(user_id, follow.id, FollowStatus.STOPPED)
    for status in (FollowStatus.ACTIVE, FollowStatus.PAUSED):
        with pytest.raises(UserError, match="stopped"):
            await app.services.set_status(user_id, follow.id, status)
    with pytest.raises(UserError, match="stopped"):
        await app.services.update_follow(user_id, follow.id, {"sizing_value": "2"})
    assert (await app.accounts.follow(follow.id)).status is FollowStatus.STOPPED
    assert await app.services.follows_of(user_id) == []


async def test_a_stopped_follow_can_be_followed_again_reusing_its_row(app):
    master_id = await new_master(app)
    user_id, credential_id, follow = await follower(app, master_id, {"sizing_value": "2"})
    await _give_position(app, follow.id)
    await app.services.set_status(user_id, follow.id, FollowStatus.STOPPED)
    again = await app.services.follow(user_id, master_id, credential_id, {"sizing_value": "3"})
    assert again.id == follow.id
    row = await app.accounts.follow(follow.id)
    assert row.status is FollowStatus.ACTIVE and row.status_reason is None
    assert row.sizing_value == Decimal(3)
    assert await app.journal.follow_positions([follow.id], "BTC/USDT:USDT") == {}
    assert await count(app, Follow) == 1


async def test_following_again_after_stop_starts_from_the_new_settings_only(app):
    master_id = await new_master(app)
    user_id, credential_id, follow = await follower(
        app,
        master_id,
        {"sizing_value": "5", "reverse": "on", "dry_run": "on", "allowed_symbols": "BTC", "leverage": "20"},
    )
    await app.services.set_status(user_id, follow.id, FollowStatus.STOPPED)
    again = await app.services.follow(user_id, master_id, credential_id, {})
    fresh = Follow(user_id=user_id, master_id=master_id, credential_id=credential_id)
    assert (again.sizing_value, again.reverse, again.dry_run, again.allowed_symbols, again.leverage) == (
        fresh.sizing_value,
        fresh.reverse,
        fresh.dry_run,
        fresh.allowed_symbols,
        fresh.leverage,
    )


async def test_pause_all_pauses_every_active_follow_and_counts_them(app):
    m1, m2 = await new_master(app), await new_master(app)
    follows = [(await follower(app, m))[:3] for m in (m1, m1, m2)]
    paused_user, _, already_paused = await follower(app, m2)
    await app.services.set_status(paused_user, already_paused.id, FollowStatus.PAUSED)
    assert await app.services.pause_all("maintenance") == 3
    for _, _, follow in follows:
        row = await app.accounts.follow(follow.id)
        assert row.status is FollowStatus.PAUSED and row.status_reason == "maintenance"
    assert await app.journal.active_follows(m1) == [] and await app.journal.active_follows(m2) == []
    assert await app.services.pause_all("again") == 0


async def test_set_master_status_of_an_unknown_master_is_not_found(app):
    with pytest.raises(NotFound):
        await app.services.set_master_status(999_999, MasterStatus.HIDDEN)


async def test_add_master_with_another_users_key_is_not_found(app):
    owner = await new_user(app)
    key = await paper_account(app, owner)
    intruder = await new_user(app)
    with pytest.raises(NotFound):
        await app.services.add_master("Stolen", "paper", owner_id=intruder, credential_id=key)
    assert await app.services.masters(include_hidden=True) == []


# -- settings changes reach the engine -------------------------------------------------------------


async def test_a_paused_follow_is_not_copied_on_the_next_fill(app):
    master_id = await new_master(app)
    user_id, credential_id, follow = await follower(app, master_id, balance="100000")
    first = await app.engine.on_fill(master_fill(master_id, Side.BUY, "0.01"))
    assert [r.status for r in first.results] == [CopyStatus.FILLED]
    await app.services.set_status(user_id, follow.id, FollowStatus.PAUSED)
    second = await app.engine.on_fill(master_fill(master_id, Side.BUY, "0.01"))
    assert second.results == ()
    venue = await app.venues.venue_for(credential_id)
    assert venue.place_calls == 1


# Regression tests: clearing a follow's copied positions must also reset the engine's cache
# (fixed in 8775044; before it, a live exit was sized against the forgotten position).


async def _follower_holding_its_own_btc(
    app: App, master_id: int, settings: dict
) -> tuple[int, str, FollowRecord, PaperVenue]:
    user_id, credential_id, follow = await follower(app, master_id, settings, balance="200000")
    venue = await app.venues.venue_for(credential_id)
    assert isinstance(venue, PaperVenue)
    # the follower's own manual trade, unrelated to copying
    await venue.place_order(
        OrderIntent(follow_id=0, client_order_id="manual-1", symbol="BTC/USDT", side=Side.BUY, quantity=Decimal(1))
    )
    return user_id, credential_id, follow, venue


async def test_after_dry_run_is_turned_off_a_master_exit_does_not_sell_the_followers_own_holdings(app):
    master_id = await new_master(app)
    user_id, _, follow, venue = await _follower_holding_its_own_btc(app, master_id, {"dry_run": "on"})
    entry = await app.engine.on_fill(master_fill(master_id, Side.BUY, "0.5"))
    assert [r.skip.reason for r in entry.results] == [SkipReason.DRY_RUN]

    await app.services.update_follow(user_id, follow.id, {"dry_run": "off"})
    exit_ = await app.engine.on_fill(master_fill(master_id, Side.SELL, "0.5"))
    assert venue.holdings["BTC/USDT"].quantity == Decimal(1)
    assert venue.place_calls == 1  # only the manual order
    assert [r.skip.reason if r.skip else r.status for r in exit_.results] == [SkipReason.NO_POSITION_TO_EXIT]


async def test_after_following_again_a_master_exit_ignores_the_old_copied_position(app):
    master_id = await new_master(app)
    user_id, credential_id, follow, venue = await _follower_holding_its_own_btc(app, master_id, {})
    await app.engine.on_fill(master_fill(master_id, Side.BUY, "0.5"))
    assert venue.holdings["BTC/USDT"].quantity == Decimal("1.5")
    await app.services.set_status(user_id, follow.id, FollowStatus.STOPPED)
    await app.services.follow(user_id, master_id, credential_id, {})
    exit_ = await app.engine.on_fill(master_fill(master_id, Side.SELL, "0.5"))
    assert [r.skip.reason if r.skip else r.status for r in exit_.results] == [SkipReason.NO_POSITION_TO_EXIT]
    assert venue.holdings["BTC/USDT"].quantity == Decimal("1.5")
