"""The follow-settings table (core/follow_settings.py): every setting parses, rejects with its
message, maps to storage and back, and renders; the /settings keyboard keeps its layout."""

from __future__ import annotations

import dataclasses
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import SQLModel

from bot.formatting import format_follow_settings
from bot.settings import MAIN, SCREENS, SUBSCREENS, screen_keyboard
from core.errors import UserError
from core.follow_settings import FOLLOW_SETTINGS, SETTING_FIELDS, SLIPPAGE_ACTION, Choice, validate_follow_changes
from core.model import (
    ClosedMarketAction,
    EntrySides,
    FollowSettings,
    FollowStatus,
    MarginMode,
    OrderType,
    OversizeAction,
    RemainderAction,
    SizingMode,
    SlippageAction,
)
from core.validation import PLAIN_NUMBER_HINT
from storage.journal import follow_settings
from storage.models import Credential, Follow, Master
from tests.test_storage import make_user, saved

#: a value a follower may send for each setting (sizing is checked as a pair) and what is stored
ACCEPTED: dict[str, tuple[object, object]] = {
    "reverse": ("on", True),
    "max_position_notional": ("1000", D(1000)),
    "allowed_symbols": ("btc, eth", ["BTC", "ETH"]),
    "blocked_symbols": ("doge", ["DOGE"]),
    "dry_run": ("yes", True),
    "take_profit_pct": ("5.5", D("5.5")),
    "stop_loss_pct": ("3", D(3)),
    "daily_loss_limit": ("200", D(200)),
    "close_on_daily_loss": ("on", True),
    "max_total_notional": ("5000", D(5000)),
    "slippage_pct": ("0.5", D("0.5")),
    "slippage_action": ("LIMIT", SlippageAction.LIMIT),
    "entry_sides": (" short ", EntrySides.SHORT),
    "margin_mode": ("cross", MarginMode.CROSS),
    "auto_sync": ("on", True),
    "max_resting_minutes": ("30", 30),
    "confirm_seconds": ("60", 60),
    "price_protection_pct": ("0.5", D("0.5")),
    "product": (" delivery ", "DELIVERY"),
    "remainder_action": ("Cancel", RemainderAction.CANCEL),
    "reprice_attempts": ("5", 5),
    "oversize_action": (" Cap ", OversizeAction.CAP),
    "closed_market_action": (" after_market ", ClosedMarketAction.AFTER_MARKET),
    "leverage": ("10", 10),
    "order_types": ("market stop_limit", ["market", "stop_market"]),
}
#: a value each setting refuses, and the message that says so (the bot shows it as it is)
REFUSED: dict[str, tuple[object, str]] = {
    "reverse": ("maybe", "reverse must be on or off"),
    "max_position_notional": ("abc", f"max position must be a number, got 'abc' ({PLAIN_NUMBER_HINT})"),
    "allowed_symbols": ("BTC$", "'BTC$' is not a symbol name"),
    "blocked_symbols": (" ".join(f"S{n}" for n in range(101)), "block list may hold at most 100 symbols"),
    "dry_run": ("perhaps", "dry run must be on or off"),
    "take_profit_pct": ("500", "take-profit % must be more than 0 and at most 100, got 500"),
    "stop_loss_pct": ("100", "stop-loss % must be below 100 (100 % means the price reached zero)"),
    "daily_loss_limit": ("-5", "daily loss limit must be more than 0 and at most 1000000000, got -5"),
    "close_on_daily_loss": ("2", "close on loss limit must be on or off"),
    "max_total_notional": ("abc", f"max total position must be a number, got 'abc' ({PLAIN_NUMBER_HINT})"),
    "slippage_pct": ("80", "slippage limit % must be more than 0 and at most 50, got 80"),
    "slippage_action": ("maybe", "slippage action must be one of skip, limit"),
    "entry_sides": ("sideways", "entry sides must be one of both, long, short"),
    "margin_mode": ("portfolio", "margin mode must be one of cross, isolated"),
    "auto_sync": ("perhaps", "auto-sync must be on or off"),
    "max_resting_minutes": ("2.5", "max resting time (minutes) must be a whole number of minutes, at least 1"),
    "confirm_seconds": ("5", "manual confirmation (seconds) must be a whole number of seconds, at least 10"),
    "price_protection_pct": ("80", "price protection % must be more than 0 and at most 50, got 80"),
    "product": ("CARRY FORWARD", "product type must be one word of letters, e.g. DELIVERY or INTRADAY"),
    "remainder_action": ("chase", "unfilled limit copies must be one of reprice, cancel"),
    "closed_market_action": ("wait", "market closed must be one of skip, after_market"),
    "reprice_attempts": ("2.5", "re-price attempts must be a whole number from 0 to 10"),
    "oversize_action": ("drop", "large orders must be one of split, cap"),
    "leverage": ("2.5", "leverage must be a whole number"),
    "order_types": ("iceberg", "order type must be market, limit or stop, got 'iceberg'"),
}
PARSED = [s for s in FOLLOW_SETTINGS if s.parse is not None]


def test_the_table_names_every_field_of_the_engines_view_and_a_column_of_follows():
    identity = {"follow_id", "user_id", "master_id", "credential_id"}
    assert set(SETTING_FIELDS) == {f.name for f in dataclasses.fields(FollowSettings)} - identity
    assert len(SETTING_FIELDS) == len(set(SETTING_FIELDS))
    assert set(SETTING_FIELDS) <= set(SQLModel.metadata.tables["follows"].columns.keys())


def test_callback_codes_are_unique_and_fit_the_callback_data():
    codes = [s.widget.code for s in FOLLOW_SETTINGS if s.widget is not None and hasattr(s.widget, "code")]
    assert len(codes) == len(set(codes))
    assert all(code.isalnum() and len(code) <= 4 for code in codes)


@pytest.mark.parametrize("setting", PARSED, ids=lambda s: s.name)
def test_every_setting_parses_what_a_follower_sends(setting):
    sent, stored = ACCEPTED[setting.name]
    assert validate_follow_changes({setting.name: sent}) == {setting.name: stored}


@pytest.mark.parametrize("setting", PARSED, ids=lambda s: s.name)
def test_every_setting_refuses_a_bad_value_with_its_own_message(setting):
    sent, message = REFUSED[setting.name]
    with pytest.raises(UserError) as refused:
        validate_follow_changes({setting.name: sent})
    assert str(refused.value) == message


def test_sizing_is_parsed_as_a_pair_against_the_current_mode():
    assert validate_follow_changes({"sizing_value": "250"}, current_mode=SizingMode.FIXED_NOTIONAL) == {
        "sizing_mode": SizingMode.FIXED_NOTIONAL,
        "sizing_value": D(250),
    }
    with pytest.raises(UserError, match="give a value together with the sizing mode"):
        validate_follow_changes({"sizing_mode": "coefficient"})
    with pytest.raises(UserError, match="sizing mode must be one of coefficient, equity_ratio"):
        validate_follow_changes({"sizing_mode": "martingale", "sizing_value": "1"})


# -- maps to storage and back, renders: over generated values --------------------------------


def _decimal(high: int) -> st.SearchStrategy[str]:
    return st.decimals(min_value=D("0.0001"), max_value=high, places=4).map(str)


_symbols = st.lists(st.from_regex(r"[A-Z0-9]{2,8}(/USDT)?", fullmatch=True), max_size=4).map(" ".join)
_flag = st.sampled_from(["on", "off", "yes", "no", True, False])
_optional_money = st.one_of(st.just("none"), _decimal(1_000_000_000))
SENT: dict[str, st.SearchStrategy[Any]] = {
    "reverse": _flag,
    "max_position_notional": _optional_money,
    "allowed_symbols": _symbols,
    "blocked_symbols": _symbols,
    "dry_run": _flag,
    "take_profit_pct": st.one_of(st.just("off"), _decimal(100)),
    "stop_loss_pct": st.one_of(st.just("off"), _decimal(99)),
    "daily_loss_limit": _optional_money,
    "close_on_daily_loss": _flag,
    "max_total_notional": _optional_money,
    "slippage_pct": st.one_of(st.just("none"), _decimal(50)),
    "slippage_action": st.sampled_from(["skip", "limit", "Skip", SlippageAction.LIMIT]),
    "entry_sides": st.sampled_from([*EntrySides, "LONG"]),
    "margin_mode": st.sampled_from([*MarginMode, "none", "off", None]),
    "auto_sync": _flag,
    "max_resting_minutes": st.one_of(st.just("off"), st.integers(1, 7 * 24 * 60).map(str)),
    "confirm_seconds": st.one_of(st.just("off"), st.integers(10, 3600).map(str)),
    "price_protection_pct": st.one_of(st.just("off"), _decimal(50)),
    "product": st.sampled_from(["off", "INTRADAY", "delivery", "CarryForward", "MARGIN"]),
    "remainder_action": st.sampled_from([*RemainderAction, "CANCEL", "Reprice"]),
    "reprice_attempts": st.one_of(st.just("off"), st.integers(0, 10).map(str)),
    "oversize_action": st.sampled_from([*OversizeAction, "CAP", "Split"]),
    "closed_market_action": st.sampled_from([*ClosedMarketAction, "SKIP", "After_Market"]),
    "leverage": st.one_of(st.just("none"), st.integers(1, 125).map(str)),
    "order_types": st.lists(st.sampled_from(["market", "limit", "stop", *OrderType]), max_size=3).map(" ".join),
}
CHANGES = st.fixed_dictionaries({}, optional=SENT)


def test_every_parsed_setting_has_a_generator_an_accepted_and_a_refused_value():
    names = {s.name for s in PARSED}
    assert names == SENT.keys() == ACCEPTED.keys() == REFUSED.keys()


@given(CHANGES)
def test_stored_values_parse_to_themselves_and_load_as_the_engine_reads_them(changes):
    stored = validate_follow_changes(changes)
    assert validate_follow_changes(stored) == stored  # what is stored is a valid input, unchanged
    row = Follow(id=1, user_id=2, master_id=3, credential_id="c", **stored)
    engine_view = follow_settings(row)
    for setting in FOLLOW_SETTINGS:
        assert getattr(engine_view, setting.name) == setting.load(getattr(row, setting.name))
    assert isinstance(engine_view.slippage_action, SlippageAction)
    assert isinstance(engine_view.entry_sides, EntrySides)
    assert engine_view.margin_mode is None or isinstance(engine_view.margin_mode, MarginMode)
    assert all(isinstance(t, OrderType) for t in engine_view.order_types)


@given(CHANGES)
def test_every_setting_renders_in_the_summary_and_the_keyboard(changes):
    row = Follow(id=4, user_id=2, master_id=3, credential_id="c", **validate_follow_changes(changes))
    text = format_follow_settings(row, "Trend", "main")
    assert text.count("\n") + 1 == 2 + sum(1 for s in FOLLOW_SETTINGS if s.line is not None)
    screens = [screen_keyboard(row, "angelone", screen) for screen in SCREENS.values()]
    buttons = [b for markup in screens for line in markup.inline_keyboard for b in line]
    navigation = 1 + len(SUBSCREENS) + len(SUBSCREENS)  # pause / resume and each sub-screen; each Back
    assert len(buttons) == sum(1 for s in FOLLOW_SETTINGS if s.widget is not None) + navigation
    assert all(sum(len(line) for line in markup.inline_keyboard) <= 8 for markup in screens)
    for setting in FOLLOW_SETTINGS:
        if isinstance(setting.widget, Choice):
            current = getattr(row, setting.name)
            assert f"{current or setting.widget.unset}" in next(
                b.text for b in buttons if b.callback_data == f"se:o:4:{setting.widget.code}"
            )


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=CHANGES)
async def test_every_setting_survives_a_round_trip_through_the_database(accounts, changes):
    user = await make_user(accounts.db)
    credential_id = f"k{saved(user.id):031d}"[:32]
    await accounts.add_credential(
        Credential(
            id=credential_id,
            user_id=saved(user.id),
            venue="paper",
            label=credential_id,
            ciphertext=b"x",
            key_fingerprint="f",
        )
    )
    master = await accounts.add_master(Master(name=credential_id, venue="paper"))
    stored = validate_follow_changes(changes)
    row = await accounts.add_follow(
        Follow(user_id=saved(user.id), master_id=saved(master.id), credential_id=credential_id, **stored)
    )
    again = await accounts.follow(saved(row.id))
    assert again is not None
    in_memory = follow_settings(
        Follow(id=row.id, user_id=row.user_id, master_id=row.master_id, credential_id=credential_id, **stored)
    )
    assert follow_settings(again) == in_memory
    assert isinstance(again.slippage_action, SlippageAction) and isinstance(again.entry_sides, EntrySides)


def test_the_settings_screens_keep_their_rows_texts_and_callback_codes():
    row = Follow(id=5, user_id=1, master_id=2, credential_id="c", reverse=True, margin_mode=MarginMode.ISOLATED)

    def layout(venue: str, code: str) -> list[list[tuple[str, str]]]:
        markup = screen_keyboard(row, venue, SCREENS[code])
        return [[(b.text, b.callback_data) for b in line] for line in markup.inline_keyboard]

    assert layout("binanceusdm", "h") == [
        [("📏 Sizing", "se:m:5"), ("🔁 Reverse: on", "se:t:5:rv")],
        [("🎯 Take-profit", "se:e:5:tp"), ("🛑 Stop-loss", "se:e:5:sl")],
        [("⏸ Pause copying", "se:p:5")],
        [("🚦 Risk", "se:g:5:r"), ("📋 Orders", "se:g:5:o"), ("🏦 Venue", "se:g:5:v")],
    ]
    assert layout("binanceusdm", "r") == [
        [("📉 Daily loss limit", "se:e:5:dl"), ("🔒 Close on loss limit: off", "se:t:5:cl")],
        [("📦 Max position", "se:e:5:mp"), ("🧮 Max total position", "se:e:5:mt")],
        [("🐢 Slippage limit", "se:e:5:sp"), ("Slippage action: skip", "se:o:5:sa")],
        [("⚖️ Auto-sync: off", "se:t:5:as")],
        [("◀ Back", "se:f:5")],
    ]
    assert layout("binanceusdm", "o") == [
        [("↕ Entries: both", "se:o:5:es")],
        [("✅ Allow list", "se:e:5:al"), ("🚫 Block list", "se:e:5:bl")],
        [("🧪 Dry run: off", "se:t:5:dr")],
        [("⏳ Max resting time", "se:e:5:mr"), ("✋ Confirm each copy", "se:e:5:cf")],
        [("◀ Back", "se:f:5")],
    ]
    assert layout("binanceusdm", "v") == [
        [("⚙ Margin: isolated", "se:o:5:mm")],
        [("Large orders: split", "se:o:5:ov")],
        [("◀ Back", "se:f:5")],
    ]  # Angel One's own settings only on an Angel One follow
    assert layout("angelone", "v") == [
        [("⚙ Margin: isolated", "se:o:5:mm")],
        [("🛡 Price protection", "se:e:5:pp"), ("🏷 Product type", "se:e:5:pt")],
        [("Unfilled limit copies: reprice", "se:o:5:ra"), ("🔂 Re-price attempts", "se:e:5:rp")],
        [("Large orders: split", "se:o:5:ov"), ("Market closed: skip", "se:o:5:cm")],
        [("◀ Back", "se:f:5")],
    ]
    paused = Follow(id=5, user_id=1, master_id=2, credential_id="c", status=FollowStatus.PAUSED)
    assert "▶️ Resume copying" in str(screen_keyboard(paused, "paper", MAIN))
    assert "⚙ Margin: default" in str(screen_keyboard(paused, "paper", SCREENS["v"]))


def test_every_setting_shown_or_edited_is_on_exactly_one_settings_screen():
    placed = [name for screen in SCREENS.values() for name in screen.settings]
    assert len(placed) == len(set(placed))
    assert {s.name for s in FOLLOW_SETTINGS if s.widget is not None or s.line is not None} <= set(placed)


def test_the_summary_keeps_its_lines_in_order():
    row = Follow(
        id=6,
        user_id=1,
        master_id=2,
        credential_id="c",
        sizing_mode=SizingMode.FIXED_NOTIONAL,
        sizing_value=D("100.0"),
        stop_loss_pct=D(3),
        slippage_pct=D(1),
        blocked_symbols=["DOGE", "PEPE"],
    )
    assert format_follow_settings(row, "Trend", "main") == "\n".join(
        [
            "#6 Trend → main",
            "Status: active",
            "Sizing: 100 (quote currency) per entry",
            "Reverse: off",
            "Max position: off",
            "Allow list: all symbols",
            "Block list: DOGE, PEPE",
            "Dry run: off",
            "Take-profit: off, stop-loss: 3 % (of your own entry price; resting orders where your exchange "
            "supports them, otherwise watched every few seconds)",
            "Daily loss limit: off",
            "Close on loss limit: off",
            "Max total position: off",
            "Slippage limit: 1 % — skip the copy",
            "Entries copied: long and short",
            "Margin mode: exchange default",
            "Auto-sync: off — drift is reported; /sync fixes it",
            "Max resting time of limit copies: 60 min (then cancelled; what filled is kept)",
            "Manual confirmation: off (every copy is sent at once)",
            "Price protection: 1 % (default) — market copies as limits where the exchange takes no market orders",
            "Product type: as the master (Angel One)",
            "Unfilled limit copies: the rest is cancelled and sent again at the current price, within your "
            "slippage limit (at most 3 times)",
            "Large orders: split into several orders, each within the maximum",
            "Market closed: skipped and recorded (market closed)",
        ]
    )


def test_the_slippage_action_promises_no_ioc_order_since_some_exchanges_never_get_one():
    """Angel One takes no IOC API order (the guard's limit rests there for the protected window):
    the option's words must be true on every venue."""
    [limit] = [o for o in SLIPPAGE_ACTION.options if o.value is SlippageAction.LIMIT]
    assert "IOC" not in limit.button and "IOC" not in limit.shown
    assert "short window" in limit.shown
