"""The bot's pure formatting (data -> str) and keyboard helpers, without Telegram."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from bot.formatting import (
    RANK_TITLES,
    duration,
    format_account,
    format_accounts,
    format_admin_stats,
    format_broadcast_progress,
    format_counts,
    format_direct_result,
    format_drift,
    format_drift_rows,
    format_event,
    format_follow_paused,
    format_follow_settings,
    format_history_line,
    format_master_line,
    format_master_statistics,
    format_open_outcomes,
    format_orders_sent,
    format_pnl,
    format_positions,
    format_risk_notice,
    format_stats,
    format_summary_setting,
    format_sync_preview,
    ratio,
    signed,
)
from bot.keyboards import button, column, pager
from core.copying.config import FollowPaused
from core.follow_settings import sizing_text
from core.model import (
    CopyResult,
    CopyStatus,
    EntrySides,
    FeeStatus,
    Fill,
    FollowStatus,
    MarginMode,
    MasterStatus,
    OrderOrigin,
    OrderType,
    Side,
    SizingMode,
    Skip,
    SkipReason,
    SlippageAction,
)
from core.records import CredentialView, MasterView
from core.reports.admin import AdminStats, ListenerView
from core.reports.masters import RANK_KEYS, MasterStatistics
from core.reports.pnl import FollowPnl, OpenPositionView, PnlReport
from core.risk_service import DriftFound, RiskNotice
from core.stats import Period
from storage.models import CopyOrder, DailySummarySetting, Follow, FollowPosition, PositionDrift

NOW = datetime(2026, 5, 1, 12, 30, tzinfo=UTC)


def test_an_account_is_shown_by_label_venue_and_fingerprint_never_the_key():
    view = CredentialView("c1", 1, "binanceusdm", "main", "live", "ab12cd34ef56", NOW, NOW)
    text = format_account(view)
    assert text == "• main — Binance USD-M futures, key …34ef56, checked 2026-05-01 12:30 UTC"
    assert "No exchange accounts" in format_accounts([])


def master_stats(**changes) -> MasterStatistics:
    base = dict(
        master_id=3,
        name="Trend",
        description="BTC swing trades",
        venue="paper",
        status=MasterStatus.ACTIVE,
        followers=12,
        fills=40,
        round_trips=20,
        wins=11,
        losses=9,
        win_rate=D("0.55"),
        profit_factor=D("1.8512"),
        realized_pnl=D("1234.5"),
        realized_pnl_pct=D("0.1234"),
        pnl_30d=D("-200"),
        pnl_30d_pct=D("-0.02"),
        max_drawdown=D("300"),
        max_drawdown_pct=D("0.081"),
        sharpe=1.234,
        sharpe_source="equity_snapshots",
        avg_holding=timedelta(hours=3, minutes=20),
        trading_days=14,
        open_positions=(("BTC/USDT:USDT", D("0.5")), ("ETH/USDT:USDT", D("-2"))),
        equity=D("10000"),
        equity_day=NOW.date(),
        first_fill_at=NOW,
        last_fill_at=NOW,
        untracked_closes=0,
    )
    return MasterStatistics(**{**base, **changes})


def unknown_master(**changes) -> MasterStatistics:
    """A master without trades or equity snapshots yet."""
    return master_stats(
        fills=0,
        round_trips=0,
        wins=0,
        losses=0,
        win_rate=None,
        profit_factor=None,
        realized_pnl=D(0),
        realized_pnl_pct=None,
        pnl_30d=D(0),
        pnl_30d_pct=None,
        max_drawdown=D(0),
        max_drawdown_pct=None,
        sharpe=None,
        sharpe_source=None,
        avg_holding=None,
        trading_days=0,
        open_positions=(),
        equity=None,
        equity_day=None,
        first_fill_at=None,
        last_fill_at=None,
        **changes,
    )


def test_master_lines_show_pnl_win_rate_and_drawdown_with_a_dash_where_unknown():
    master = MasterView(3, "Trend", "BTC swing trades", "paper", MasterStatus.ACTIVE, "k", 12)
    assert format_master_line(1, master) == "1. Trend — paper, 12 follower(s)"  # a master without statistics
    line = format_master_line(1, master_stats())
    assert line.startswith("1. Trend — paper, 12 follower(s)")
    assert "PnL +1,234.50 (+12.3 %)" in line and "win rate 55.0 %" in line and "max drawdown 300.00 (8.1 %)" in line
    assert "Sharpe 1.23" in format_master_line(1, master_stats(), "sharpe")
    fresh = format_master_line(2, unknown_master(status=MasterStatus.HIDDEN), "profit_factor")
    assert "[hidden]" in fresh and "win rate —" in fresh and "profit factor —" in fresh and "PnL +0.00 ·" in fresh
    assert set(RANK_TITLES) == set(RANK_KEYS)  # every sort key has a title


def test_master_detail_shows_every_statistic():
    text = format_master_statistics(master_stats(untracked_closes=2))
    for part in (
        "👤 Trend",
        "followers: 12",
        "BTC swing trades",
        "Realized PnL: +1,234.50 (+12.3 % of the first equity)",
        "Last 30 days: -200.00 (-2.0 %)",
        "Win rate: 55.0 % (11 won, 9 lost of 20 round trips)",
        "Profit factor: 1.85",
        "Max drawdown: 300.00 (8.1 % of equity)",
        "Sharpe ratio: 1.23 (from daily equity)",
        "Average holding time: 3 h 20 min",
        "Trading days: 14 · fills: 40",
        "Equity: 10,000.00 on 2026-05-01",
        "BTC/USDT:USDT long 0.5, ETH/USDT:USDT short 2",
        "2 close(s) of positions opened before tracking began",
        "gross",
    ):
        assert part in text, part
    empty = format_master_statistics(unknown_master())
    assert "Win rate: — (no closed round trip yet)" in empty and "Sharpe ratio: —" in empty and "Equity: —" in empty
    assert "Open positions: none" in empty and "Profit factor: —" in empty


def test_number_helpers():
    assert signed(D("-1234.567")) == "-1,234.57" and signed(None) == "—"
    assert ratio(D("0.0512")) == "5.1 %" and ratio(D("0.05"), sign=True) == "+5.0 %" and ratio(None) == "—"
    assert (
        duration(timedelta(days=2, hours=3)) == "2 d 3 h"
        and duration(timedelta(seconds=42)) == "42 s"
        and duration(None) == "—"
    )


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


def test_follow_settings_list_every_setting_and_say_how_the_risk_limits_act():
    follow = Follow(
        id=7,
        user_id=1,
        master_id=2,
        credential_id="c",
        sizing_mode=SizingMode.COEFFICIENT,
        sizing_value=D(2),
        allowed_symbols=["BTC"],
        blocked_symbols=[],
        take_profit_pct=D(5),
        daily_loss_limit=D(200),
        close_on_daily_loss=True,
        max_total_notional=D(5000),
        slippage_pct=D("0.5"),
        slippage_action=SlippageAction.LIMIT,
        entry_sides=EntrySides.LONG,
        margin_mode=MarginMode.ISOLATED,
        auto_sync=True,
    )
    text = format_follow_settings(follow, "Trend", "main")
    for part in (
        "#7 Trend → main",
        "coefficient × 2",
        "Reverse: off",
        "Max position: off",
        "Allow list: BTC",
        "Block list: none",
        "Dry run: off",
        "Take-profit: 5 %",
        "stop-loss: off",
        "of your own entry price",
        "resting orders where your exchange supports them, otherwise watched every few seconds",
        "Daily loss limit: 200 — pauses the follow and closes the copied positions",
        "Close on loss limit: on",
        "Max total position: 5000",
        "Slippage limit: 0.5 % — limit order at the allowed price (cancelled at once where unfilled, or after a "
        "short window where the exchange takes no immediate-or-cancel orders)",
        "Entries copied: long only",
        "Margin mode: isolated",
        "Auto-sync: on",
    ):
        assert part in text, part
    assert "not active" not in text and "enforced once" not in text
    plain = format_follow_settings(Follow(id=8, user_id=1, master_id=2, credential_id="c"), "Trend", "main")
    for part in (
        "Take-profit: off, stop-loss: off\n",
        "Daily loss limit: off\n",
        "Slippage limit: off\n",
        "Entries copied: long and short",
        "Margin mode: exchange default",
        "Auto-sync: off — drift is reported; /sync fixes it",
    ):
        assert part in plain, part
    paused_only = format_follow_settings(
        Follow(id=9, user_id=1, master_id=2, credential_id="c", daily_loss_limit=D(50)), "T", "m"
    )
    assert "Daily loss limit: 50 — pauses the follow\n" in paused_only


def test_history_lines_give_every_outcome_in_plain_words():
    base: dict[str, Any] = dict(
        client_order_id="x",
        fill_id=1,
        follow_id=1,
        user_id=1,
        symbol="BTC/USDT:USDT",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        master_price=D(60000),
        created_at=NOW,
    )
    filled = CopyOrder(status=CopyStatus.FILLED, filled_quantity=D("0.010"), average_price=D(60010), **base)
    assert (
        format_history_line(filled, "Trend")
        == "05-01 12:30 Trend: buy 0.01 BTC/USDT:USDT — filled @ 60010 (master 60000)"
    )
    owed = CopyOrder(status=CopyStatus.FILLED, filled_quantity=D("0.010"), fee_status=FeeStatus.PENDING, **base)
    assert format_history_line(owed, "Trend").endswith("; its commission is still to come")
    never = "its commission never came (no trades; 30 min after the fill): not counted in the fees"
    missing = CopyOrder(
        status=CopyStatus.FILLED, filled_quantity=D("0.010"), fee_status=FeeStatus.MISSING, reason=never, **base
    )
    assert format_history_line(missing, "Trend").endswith(f"; {never}")
    skipped = CopyOrder(
        status=CopyStatus.SKIPPED, requested_quantity=None, reason="the symbol is on your block list", **base
    )
    assert "not copied — the symbol is on your block list" in format_history_line(skipped, "Trend")
    failed = CopyOrder(status=CopyStatus.FAILED, reason_code="insufficient_funds", **base)
    assert "failed — insufficient_funds" in format_history_line(failed, "Trend")
    dry = CopyOrder(status=CopyStatus.SKIPPED, reason="dry run", dry_run=True, **base)
    assert format_history_line(dry, "Trend").endswith("[dry run]")


def direct(origin: OrderOrigin, status: CopyStatus, side: Side = Side.SELL, **fields) -> CopyResult:
    fill = Fill(1, "copytrade", "cx1", origin, "BTC/USDT:USDT", side, D("0.01"), D(60000))
    return CopyResult(1, 1, 1, "cx1", fill, status, side=side, requested_quantity=D("0.01"), origin=origin, **fields)


def test_positions_counts_and_orders_the_copier_placed_itself():
    assert "no open copied positions" in format_positions([])
    short = FollowPosition(follow_id=1, symbol="ETH/USDT:USDT", quantity=D("-0.50"), entry_price=D(3000))
    assert format_positions([short]) == "  ETH/USDT:USDT: short 0.5 @ 3000"
    assert format_counts({}) == "none"
    assert format_counts({"skipped": 2, "filled": 3}) == "3 filled, 2 skipped"
    closed = direct(OrderOrigin.CLOSE, CopyStatus.FILLED, filled_quantity=D("0.01"), average_price=D(60000))
    failed = direct(OrderOrigin.CLOSE, CopyStatus.FAILED, error="exchange unavailable")
    assert format_direct_result(closed) == "🔒 Closing your copied position: sold 0.01 BTC/USDT:USDT @ 60000"
    assert format_direct_result(failed) == (
        "🔒 Closing your copied position failed for BTC/USDT:USDT: exchange unavailable. "
        "Check the position on your exchange."
    )
    # the answer to /stop counts them (each is pushed as its own notification)
    assert format_orders_sent([closed, failed], "close your copied positions", empty="nothing") == (
        "2 order(s) sent to close your copied positions; each is reported in its own message."
    )
    assert format_orders_sent([], "close", empty="There were no copied positions to close.") == (
        "There were no copied positions to close."
    )
    opened = direct(
        OrderOrigin.OPEN, CopyStatus.FILLED, side=Side.BUY, filled_quantity=D("0.01"), average_price=D(60000)
    )
    outcomes = format_open_outcomes([opened, Skip(SkipReason.BELOW_MIN_QUANTITY, "ETH/USDT:USDT: 0.0004 < 0.001")])
    # the order itself is pushed as its own notification: the answer only counts it
    assert "bought" not in outcomes
    assert "1 order(s) sent to open the master's positions; each is reported in its own message." in outcomes
    assert (
        "⏭ Not opened: your share of the trade is below the exchange's minimum quantity (ETH/USDT:USDT: 0.0004 < 0.001)"
        in outcomes
    )
    assert "holds no open position" in format_open_outcomes([])


def test_drift_sync_preview_and_risk_notices():
    drift = PositionDrift(follow_id=4, symbol="BTC/USDT:USDT", expected=D("0.01"), actual=D("0.06"), detected_at=NOW)
    assert format_drift_rows([drift]) == (
        "  ⚖️ BTC/USDT:USDT: copies say 0.01, your exchange shows 0.06 (checked 2026-05-01 12:30 UTC) — /sync fixes it"
    )
    preview = format_sync_preview(
        "#4 Trend → main", {"BTC/USDT:USDT": (D("0.01"), D("0.06")), "ETH/USDT:USDT": (D("1"), D("0"))}
    )
    assert "BTC/USDT:USDT: copies say 0.01, your exchange shows 0.06 → sell 0.05" in preview
    assert "ETH/USDT:USDT: copies say 1, your exchange shows 0 → buy 1" in preview and "market orders" in preview
    assert format_sync_preview("#4", {}).startswith("✅ #4: your exchange matches")
    notice = format_drift(DriftFound(4, 1, (("BTC/USDT:USDT", D("0.01"), D("0.06")),), synced=False))
    assert "copies say 0.01, your exchange shows 0.06" in notice and "/sync" in notice
    assert format_risk_notice(RiskNotice(4, 1, "your stop-loss order for BTC was refused: x")) == (
        "⚠️ your stop-loss order for BTC was refused: x (follow #4)"
    )


def follow_pnl(**changes) -> FollowPnl:
    period = Period("30d", NOW.replace(hour=0, minute=0, day=1), NOW)
    base = dict(
        follow_id=4,
        master_id=3,
        master_name="Trend",
        account_label="main",
        status=FollowStatus.ACTIVE,
        dry_run=False,
        period=period,
        realized=D("12.3"),
        realized_gross=D("12.7"),
        fees=D("0.4"),
        unrealized=D("5"),
        unrealized_complete=True,
        total=D("17.3"),
        positions=(OpenPositionView("BTC/USDT:USDT", D("0.01"), D(60000), D(60500), "venue", D("5")),),
        ledger_realized=D("12.7"),
        simulated_realized=None,
        master_realized=D(13),
        scale=D(1),
        expected=D(13),
        tracking_difference=D("-0.7"),
        copies={"filled": 3, "skipped": 1},
        series=(),
        master_series=(),
    )
    return FollowPnl(**{**base, **changes})


def test_pnl_report_per_follow_and_in_total():
    item = follow_pnl()
    report = PnlReport(1, item.period, (item,), D("12.3"), D("0.4"), D("5"), D("17.3"), D(13), D("-0.7"))
    text = format_pnl(report)
    for part in (
        "💰 PnL over the last 30d (since 2026-05-01, UTC)",
        "#4 Trend → main",
        "Realized: +12.30 (fees 0.40) · open: +5.00 · total +17.30",
        "BTC/USDT:USDT: long 0.01 @ 60000, now 60500 → +5.00",
        "scaled to you: +13.00; you differ by -0.70",
        "Copies: 3 filled, 1 skipped",
        "Total: +17.30 (realized +12.30 after 0.40 fees, open +5.00)",
    ):
        assert part in text, part
    dry = follow_pnl(
        dry_run=True, status=FollowStatus.PAUSED, simulated_realized=D(7), expected=None, tracking_difference=None
    )
    text = format_pnl(PnlReport(1, dry.period, (dry,), D(0), D(0), D(0), D(0), None, None))
    assert (
        "(paused, dry run)" in text
        and "Dry run (simulated, not in the totals): +7.00" in text
        and "scaled to you" not in text
    )
    assert "not followed anyone" in format_pnl(PnlReport(1, item.period, (), D(0), D(0), D(0), D(0), None, None))


def test_summary_setting_and_admin_stats():
    assert format_summary_setting(DailySummarySetting(user_id=1, enabled=True, minute_of_day=8 * 60 + 5)).startswith(
        "🗓 Daily summary: on, every day at 08:05 UTC"
    )
    assert "off" in format_summary_setting(DailySummarySetting(user_id=1))
    stats = AdminStats(
        since=NOW.replace(day=1, hour=0, minute=0) - timedelta(days=6),
        until=NOW,
        copies_per_day={NOW.date(): {"filled": 8, "skipped": 2}},
        status_counts={"filled": 8, "skipped": 2},
        reason_counts={"skipped": {"symbol_blocked": 2}},
        success_rate=0.8,
        skip_rate=0.2,
        failure_rate=0.0,
        latency_p50_ms=120.4,
        latency_p99_ms=901.0,
        latency_samples=8,
        follows={"active": 5, "paused": 1},
        active_follows=5,
        listeners=(ListenerView(1, True, 57, 0, NOW, None), ListenerView(2, False, 0, 3, None, "connection refused")),
    )
    text = format_admin_stats(stats)
    for part in (
        "Copies, last 7 days",
        "05-01: 8 filled, 2 skipped",
        "Success 80.0 %, skipped 20.0 %, failed 0.0 % of 10 copies",
        "Skipped by reason: symbol blocked 2",
        "Latency: p50 120 ms, p99 901 ms (8 copies)",
        "Active follows: 5 (1 paused)",
        "#1 up: 57 fills, 0 restart(s), last fill 2026-05-01 12:30 UTC",
        "#2 down: 0 fills, 3 restart(s) — last error: connection refused",
    ):
        assert part in text, part
    empty = AdminStats(NOW, NOW, {}, {}, {}, None, None, None, None, None, 0, {}, 0, ())
    text = format_admin_stats(empty)
    assert "none" in text and "Success —" in text and "Latency: —" in text and "Master streams: none running" in text


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


def test_every_kind_of_notification_has_its_own_text():
    """The headless paper run printed drift notices through the copy formatter and crashed."""
    drift = DriftFound(4, 1, (("BTC/USDT:USDT", D("0.01"), D("0.06")),), synced=False)
    notice = RiskNotice(4, 1, "your stop-loss order for BTC was refused: x")
    paused = FollowPaused(3, 1, "the exchange refused your key")
    assert format_event(drift) == format_drift(drift)
    assert format_event(notice) == format_risk_notice(notice)
    assert format_event(paused) == format_follow_paused(paused)


def test_the_summary_of_a_follow_not_saved_yet_says_new_not_a_dash():
    draft = Follow(user_id=1, master_id=2, credential_id="c")
    assert format_follow_settings(draft, "Trend", "main").splitlines()[0] == "New follow: Trend → main"
