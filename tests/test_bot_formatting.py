"""The bot's pure formatting (data -> str) and keyboard helpers, without Telegram."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal as D

import pytest

from copytrade.bot.formatting import (
    format_account,
    format_accounts,
    format_broadcast_progress,
    format_close_outcomes,
    format_counts,
    format_follow_settings,
    format_history_line,
    format_master,
    format_master_line,
    format_positions,
    format_stats,
    sizing_text,
)
from copytrade.bot.keyboards import button, column, pager
from copytrade.core.model import CopyStatus, OrderType, Side, SizingMode
from copytrade.core.positions import CloseOutcome
from copytrade.storage.accounts import CredentialView, MasterView
from copytrade.storage.models import CopyOrder, Follow, FollowPosition, MasterStatus

NOW = datetime(2026, 5, 1, 12, 30, tzinfo=timezone.utc)


def test_an_account_is_shown_by_label_venue_and_fingerprint_never_the_key():
    view = CredentialView("c1", 1, "binanceusdm", "main", "live", "ab12cd34ef56", NOW, NOW)
    text = format_account(view)
    assert text == "• main — Binance USD-M futures, key …34ef56, checked 2026-05-01 12:30 UTC"
    assert "No exchange accounts" in format_accounts([])


def test_master_views_show_only_numbers_that_exist():
    master = MasterView(3, "Trend", "BTC swing trades", "paper", MasterStatus.ACTIVE, "k", 12)
    assert format_master_line(1, master) == "1. Trend — paper, 12 follower(s)"
    detail = format_master(master)
    assert "Followers: 12" in detail and "BTC swing trades" in detail
    assert "PnL" in detail and "not published yet" in detail and "%" not in detail
    hidden = MasterView(4, "Quiet", "", "paper", MasterStatus.HIDDEN, None, 0)
    assert "[hidden]" in format_master_line(2, hidden)


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        (SizingMode.COEFFICIENT, D("0.50"), "coefficient × 0.5"),
        (SizingMode.EQUITY_RATIO, D("1"), "equity ratio × 1"),
        (SizingMode.FIXED_NOTIONAL, D("100.0"), "100 (quote currency) per entry"),
        (SizingMode.FIXED_QUANTITY, D("0.010"), "0.01 units per entry"),
    ],
)
def test_sizing_is_described_in_words(mode, value, expected):
    assert sizing_text(mode, value) == expected


def test_follow_settings_list_every_setting_and_flag_unenforced_limits():
    follow = Follow(id=7, user_id=1, master_id=2, credential_id="c", sizing_mode=SizingMode.COEFFICIENT, sizing_value=D(2),
                    allowed_symbols=["BTC"], blocked_symbols=[], take_profit_pct=D(5))
    text = format_follow_settings(follow, "Trend", "main")
    for part in ("#7 Trend → main", "coefficient × 2", "Reverse: off", "Max position: off", "Allow list: BTC",
                 "Block list: none", "Dry run: off", "Take-profit: 5 %", "stop-loss: off", "not active yet"):
        assert part in text
    plain = Follow(id=8, user_id=1, master_id=2, credential_id="c")
    assert "not active yet" not in format_follow_settings(plain, "Trend", "main")


def test_history_lines_give_every_outcome_in_plain_words():
    base = dict(client_order_id="x", fill_id=1, follow_id=1, user_id=1, symbol="BTC/USDT:USDT", side=Side.BUY,
                order_type=OrderType.MARKET, master_price=D(60000), created_at=NOW)
    filled = CopyOrder(status=CopyStatus.FILLED, filled_quantity=D("0.010"), average_price=D(60010), **base)
    assert format_history_line(filled, "Trend") == "05-01 12:30 Trend: buy 0.01 BTC/USDT:USDT — filled @ 60010 (master 60000)"
    skipped = CopyOrder(status=CopyStatus.SKIPPED, requested_quantity=None, reason="the symbol is on your block list", **base)
    assert "not copied — the symbol is on your block list" in format_history_line(skipped, "Trend")
    failed = CopyOrder(status=CopyStatus.FAILED, reason_code="insufficient_funds", **base)
    assert "failed — insufficient_funds" in format_history_line(failed, "Trend")
    dry = CopyOrder(status=CopyStatus.SKIPPED, reason="dry run", dry_run=True, **base)
    assert format_history_line(dry, "Trend").endswith("[dry run]")


def test_positions_counts_and_close_outcomes():
    assert "no open copied positions" in format_positions([])
    short = FollowPosition(follow_id=1, symbol="ETH/USDT:USDT", quantity=D("-0.50"), entry_price=D(3000))
    assert format_positions([short]) == "  ETH/USDT:USDT: short 0.5 @ 3000"
    assert format_counts({}) == "none"
    assert format_counts({"skipped": 2, "filled": 3}) == "3 filled, 2 skipped"
    outcomes = [
        CloseOutcome("BTC/USDT:USDT", Side.SELL, D("0.01"), CopyStatus.FILLED, D("0.01"), D(60000)),
        CloseOutcome("SOL/USDT:USDT", Side.BUY, D("0.4"), CopyStatus.SKIPPED, reason="0.4 is below the exchange's minimum 1"),
        CloseOutcome("ETH/USDT:USDT", Side.SELL, D("1"), CopyStatus.FAILED, reason="exchange unavailable"),
    ]
    text = format_close_outcomes(outcomes)
    assert "✅ BTC/USDT:USDT: sell 0.01 @ 60000" in text and "⏭ SOL/USDT:USDT: 0.4 is below" in text
    assert "❌ ETH/USDT:USDT: not closed — exchange unavailable. Close it on the exchange." in text
    assert "no copied positions" in format_close_outcomes([])


def test_broadcast_progress_and_stats():
    assert format_broadcast_progress(10, 200, 9, 1, 0).startswith("📣 Sending… 10/200")
    final = format_broadcast_progress(200, 200, 197, 2, 1, finished=True)
    assert "finished" in final and "Delivered: 197" in final and "Blocked the bot: 2" in final and "Failed: 1" in final
    stats = format_stats({"users": 5, "follows_active": 3, "masters_active": 1}, {"filled": 4}, 0, 0)
    assert "Users: 5" in stats and "Follows: 3 active, 0 paused" in stats and "Copies today: 4 filled" in stats


def test_keyboards_refuse_oversized_callback_data_and_page_only_where_there_is_a_page():
    with pytest.raises(ValueError):
        button("x", "x" * 65)
    assert pager("ms:l:f", 0, 1) == []
    assert pager("ms:l:f", 0, 3) == [("Next ▶", "ms:l:f:1")]
    assert pager("ms:l:f", 2, 3) == [("◀ Previous", "ms:l:f:1")]
    markup = column([("A", "a:1"), ("B", "b:1")], [("Cancel", "x")], [])
    assert [[b.text for b in row] for row in markup.inline_keyboard] == [["A"], ["B"], ["Cancel"]]
