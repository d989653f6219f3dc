"""The plain-text reports rendered by the bot (``bot/report_text.py``): the exact texts the
core produced before the rendering moved to the bot, byte for byte."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, localcontext
from decimal import Decimal as D

from bot.formatting import plain_money, signed
from bot.report_text import daily_summary_text, pnl_text
from core.model import FollowStatus
from core.reports.pnl import FollowPnl, PnlReport
from core.reports.summaries import DayActivity
from core.stats import Period, parse_period

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


def follow_pnl(
    period: Period, name: str, label: str, *, dry_run: bool = False, **numbers: D | bool | None
) -> FollowPnl:
    values: dict = dict(
        realized=D(0),
        fees=D(0),
        unrealized=D(0),
        unrealized_complete=True,
        expected=None,
        tracking_difference=None,
        simulated_realized=None,
    )
    values.update(numbers)
    return FollowPnl(
        follow_id=1,
        master_id=2,
        master_name=name,
        account_label=label,
        status=FollowStatus.ACTIVE,
        dry_run=dry_run,
        period=period,
        realized_gross=values["realized"] + values["fees"],
        total=values["realized"] + values["unrealized"],
        positions=(),
        ledger_realized=D(0),
        master_realized=D(0),
        scale=None,
        copies={},
        series=(),
        master_series=(),
        **values,
    )


def report(period_text: str) -> PnlReport:
    period = parse_period(period_text, NOW)
    follows = (
        follow_pnl(
            period,
            "Trend",
            "main",
            realized=D("475.2"),
            fees=D("24.8"),
            unrealized=D("-1234.5"),
            unrealized_complete=False,
            expected=D(500),
            tracking_difference=D("-24.8"),
        ),
        follow_pnl(period, "Quiet", "paper", dry_run=True, simulated_realized=D("12.345")),
    )
    return PnlReport(
        user_id=1,
        period=period,
        follows=follows,
        realized=D("475.2"),
        fees=D("24.8"),
        unrealized=D("-1234.5"),
        total=D("-759.3"),
        expected=D(500),
        tracking_difference=D("-24.8"),
    )


PNL_BODY = (
    "• Trend → main\n"
    "  realized +475.20 (fees 24.80), unrealized -1,234.50 (some positions without a price)\n"
    "  master over the same days, scaled to you: +500.00; difference -24.80\n"
    "• Quiet → paper (dry run)\n"
    "  realized +0.00 (fees 0.00), unrealized +0.00\n"
    "  dry-run (simulated) realized: +12.34\n"
    "Total: -759.30 (realized +475.20, unrealized -1,234.50)\n"
    "Against the masters: -24.80"
)


def test_pnl_text_lists_each_follow_then_the_total_and_the_difference_to_the_masters():
    assert pnl_text(report("7d")) == "PnL over 7d (since 2026-04-25)\n" + PNL_BODY
    assert pnl_text(report("all")) == "PnL over all\n" + PNL_BODY


def test_daily_summary_text_counts_copies_by_status_and_master_and_reasons_most_frequent_first():
    activity = DayActivity(
        day=date(2026, 4, 30),
        copies=6,
        statuses={"filled": 3, "skipped": 2, "failed": 1},
        per_master={"Trend": 4, "Beta": 2},
        realized=D("450.4"),
        fees=D("24.8"),
        skipped={"symbol_not_allowed": 1, "no_position": 2},
        failed={"insufficient_funds": 1},
    )
    assert daily_summary_text(activity) == (
        "Daily summary for 2026-04-30 (UTC)\n"
        "Copies: 6 — 3 filled, 0 placed, 2 skipped, 1 failed, 0 pending\n"
        "By master: Beta 2, Trend 4\n"
        "Realized PnL: +450.40 (fees 24.80)\n"
        "Skipped: no position ×2, symbol not allowed ×1\n"
        "Failed: insufficient funds ×1"
    )


def test_daily_summary_text_of_a_quiet_day():
    quiet = DayActivity(date(2026, 4, 30), 0, {}, {}, D(0), D(0), {}, {})
    assert daily_summary_text(quiet) == (
        "Daily summary for 2026-04-30 (UTC)\nNo copies yesterday.\nRealized PnL: +0.00 (fees 0.00)"
    )


def test_money_is_rounded_half_to_even_whatever_the_decimal_context_says():
    """ccxt's decimal_to_precision sets the shared decimal context to round half up; the texts must not change."""
    with localcontext(rounding=ROUND_HALF_UP):
        assert signed(D("12.345")) == "+12.34"
        assert plain_money(D("1234.565")) == "1,234.56"
        assert pnl_text(report("7d")) == "PnL over 7d (since 2026-04-25)\n" + PNL_BODY
