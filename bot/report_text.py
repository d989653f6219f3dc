"""Plain-text renderings of the reports: the ``/pnl`` numbers and the daily summary."""

from __future__ import annotations

from bot.formatting import plain_money, signed
from core.reports.pnl import PnlReport
from core.reports.summaries import DayActivity


def _reasons(counts: dict[str, int]) -> str:
    """Most frequent first (ties in the order first seen)."""
    return ", ".join(f"{reason.replace('_', ' ')} ×{n}" for reason, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def pnl_text(report: PnlReport) -> str:
    """The numbers of a ``/pnl`` report as plain text."""
    lines = [
        f"PnL over {report.period.label}" + (f" (since {report.period.first_day})" if report.period.first_day else "")
    ]
    for item in report.follows:
        lines.append(f"• {item.master_name} → {item.account_label}{' (dry run)' if item.dry_run else ''}")
        lines.append(
            f"  realized {signed(item.realized)} (fees {plain_money(item.fees)}), unrealized {signed(item.unrealized)}"
            + ("" if item.unrealized_complete else " (some positions without a price)")
        )
        if item.expected is not None and item.tracking_difference is not None:
            lines.append(
                f"  master over the same days, scaled to you: {signed(item.expected)}; difference "
                f"{signed(item.tracking_difference)}"
            )
        if item.simulated_realized is not None:
            lines.append(f"  dry-run (simulated) realized: {signed(item.simulated_realized)}")
    lines.append(
        f"Total: {signed(report.total)} (realized {signed(report.realized)}, unrealized {signed(report.unrealized)})"
    )
    if report.tracking_difference is not None:
        lines.append(f"Against the masters: {signed(report.tracking_difference)}")
    return "\n".join(lines)


def daily_summary_text(activity: DayActivity) -> str:
    """The day's copies, realized PnL (net of fees) and skips and failures with reasons."""
    counts = activity.statuses
    lines = [f"Daily summary for {activity.day.isoformat()} (UTC)"]
    if not activity.copies:
        lines.append("No copies yesterday.")
    else:
        lines.append(
            f"Copies: {activity.copies} — {counts.get('filled', 0)} filled, {counts.get('placed', 0)} placed, "
            f"{counts.get('skipped', 0)} skipped, {counts.get('failed', 0)} failed, {counts.get('pending', 0)} pending"
        )
        lines.append("By master: " + ", ".join(f"{name} {n}" for name, n in sorted(activity.per_master.items())))
    lines.append(f"Realized PnL: {signed(activity.realized)} (fees {plain_money(activity.fees)})")
    if activity.skipped:
        lines.append("Skipped: " + _reasons(activity.skipped))
    if activity.failed:
        lines.append("Failed: " + _reasons(activity.failed))
    return "\n".join(lines)
