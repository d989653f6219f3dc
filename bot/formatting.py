"""Pure ``data -> str`` formatting for chat messages and the console. No Telegram import:
the messages are plain text, split below Telegram's 4096-character limit by ``split_message``."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from copytrade.core.engine import FollowPaused
from copytrade.core.risk_service import DriftFound, RiskNotice
from copytrade.core.model import CopyResult, CopyStatus, Side, SizingMode

TELEGRAM_LIMIT = 4096


def amount(value: Decimal | None) -> str:
    if value is None:
        return "-"
    return format(value.normalize(), "f")


def _verb(side: Side | None, status: CopyStatus) -> str:
    if side is None:
        return "trade"
    done = status is CopyStatus.FILLED
    if side is Side.BUY:
        return "bought" if done else "buy"
    return "sold" if done else "sell"


def slippage_pct(result: CopyResult) -> Decimal | None:
    """Positive when the follower got a worse price than the master."""
    if result.average_price is None or result.side is None:
        return None
    master = result.fill.price
    diff = (result.average_price - master) / master * 100
    return (diff if result.side is Side.BUY else -diff).quantize(Decimal("0.01"))


ORIGIN_TITLES = {
    "take_profit": "🎯 Take-profit",
    "stop_loss": "🛑 Stop-loss",
    "sync": "🔁 Sync with your copy history",
    "open": "📥 Opening the master's position",
    "close": "🔒 Closing your copied position",
}


def format_direct_result(result: CopyResult) -> str:
    """An order the copier placed itself (not a copy of a master fill)."""
    title = ORIGIN_TITLES.get(result.origin, result.origin)
    symbol = result.fill.symbol
    if result.status is CopyStatus.FILLED:
        return f"{title}: {_verb(result.side, result.status)} {amount(result.filled_quantity)} {symbol} @ {amount(result.average_price)}"
    if result.status is CopyStatus.PLACED:
        return f"{title}: order placed to {_verb(result.side, result.status)} {amount(result.requested_quantity)} {symbol}"
    if result.status is CopyStatus.PENDING:
        return f"{title}: the exchange did not answer for {symbol}; it will be checked and never sent twice"
    if result.status is CopyStatus.SKIPPED:
        return f"{title}: not sent for {symbol}: {result.reason}"
    return f"{title} failed for {symbol}: {result.error}. Check the position on your exchange."


def format_drift(event: DriftFound) -> str:
    lines = [f"⚖️ Your exchange disagrees with your copy history (follow #{event.follow_id}):"]
    for symbol, expected, actual in event.drifts:
        lines.append(f"  {symbol}: copies say {amount(expected)}, your exchange shows {amount(actual)}")
    lines.append(
        "Sync orders were sent to fix it." if event.synced else "A manual trade, a missed copy, a stop or a liquidation can cause this. /sync brings it back in line."
    )
    return "\n".join(lines)


def format_risk_notice(event: RiskNotice) -> str:
    return f"⚠️ {event.text} (follow #{event.follow_id})"


def format_copy_result(result: CopyResult, *, master_name: str | None = None) -> str:
    if result.origin != "copy":
        return format_direct_result(result)
    fill = result.fill
    who = f"{master_name}: " if master_name else ""
    master_line = f"{who}master {fill.side.value} {amount(fill.quantity)} {fill.symbol} @ {amount(fill.price)}"
    if result.status is CopyStatus.FILLED:
        slip = slippage_pct(result)
        latency = f", {result.latency_ms:.0f} ms" if result.latency_ms is not None else ""
        return (
            f"✅ Copied: {_verb(result.side, result.status)} {amount(result.filled_quantity)} {fill.symbol} "
            f"@ {amount(result.average_price)} (master {amount(fill.price)}, slippage {slip}%{latency})\n{master_line}"
        )
    if result.status is CopyStatus.PLACED:
        return f"📝 Order placed: {_verb(result.side, result.status)} {amount(result.requested_quantity)} {fill.symbol}\n{master_line}"
    if result.status is CopyStatus.SKIPPED:
        return f"⏭ Not copied: {result.reason}\n{master_line}"
    if result.status is CopyStatus.PENDING:
        return (
            f"⏳ Unconfirmed: the exchange did not answer for {_verb(result.side, result.status)} "
            f"{amount(result.requested_quantity)} {fill.symbol}; it will be checked and never sent twice.\n{master_line}"
        )
    return f"❌ Copy failed: {result.error}\n{master_line}\nCheck your balance and key permissions; the next trade will be tried as usual."


def format_follow_paused(event: FollowPaused) -> str:
    return f"⏸ Copying paused (follow #{event.follow_id}): {event.reason}\nFix it, then /resume."


def split_message(text: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Split on line boundaries so each part fits one Telegram message."""
    parts: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line) > limit:
            if current:
                parts.append(current)
                current = ""
            parts.append(line[:limit])
            line = line[limit:]
        if len(current) + len(line) > limit:
            parts.append(current)
            current = ""
        current += line
    if current:
        parts.append(current)
    return parts


# -- views for the Telegram commands (plain text; every function is data -> str) -------------

SIZING_TITLES = {
    SizingMode.COEFFICIENT: "Coefficient",
    SizingMode.EQUITY_RATIO: "Equity ratio",
    SizingMode.FIXED_NOTIONAL: "Fixed order value",
    SizingMode.FIXED_QUANTITY: "Fixed quantity",
}
SIZING_HELP = {
    SizingMode.COEFFICIENT: "your quantity = master's quantity × value (e.g. 0.5 copies half)",
    SizingMode.EQUITY_RATIO: "master's quantity × your equity ÷ master's equity × value (1 = same risk as the master)",
    SizingMode.FIXED_NOTIONAL: "every entry is worth this much in the quote currency (e.g. 100 USDT)",
    SizingMode.FIXED_QUANTITY: "every entry is this many coins or shares",
}
NOT_ENFORCED = "saved; enforced once risk monitoring ships — not active yet"


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "never"


def sizing_text(mode: SizingMode, value) -> str:  # type: ignore[no-untyped-def]
    if mode is SizingMode.COEFFICIENT:
        return f"coefficient × {amount(value)}"
    if mode is SizingMode.EQUITY_RATIO:
        return f"equity ratio × {amount(value)}"
    if mode is SizingMode.FIXED_NOTIONAL:
        return f"{amount(value)} (quote currency) per entry"
    return f"{amount(value)} units per entry"


def percent(value) -> str:  # type: ignore[no-untyped-def]
    return "off" if value is None else f"{amount(value)} %"


def money(value) -> str:  # type: ignore[no-untyped-def]
    return "off" if value is None else amount(value)


def format_account(view) -> str:  # type: ignore[no-untyped-def]
    """A connected exchange account: label, venue, fingerprint and last check — never the key."""
    from copytrade.core.venues.catalog import venue_spec

    spec = venue_spec(view.venue)
    title = spec.title if spec else view.venue
    return f"• {view.label} — {title}, key …{view.key_fingerprint[-6:]}, checked {when(view.last_validated_at)}"


def format_accounts(views) -> str:  # type: ignore[no-untyped-def]
    if not views:
        return "No exchange accounts connected yet. Add one with /connect."
    return "Your exchange accounts:\n" + "\n".join(format_account(v) for v in views)


def format_master_line(rank: int, master) -> str:  # type: ignore[no-untyped-def]
    hidden = f" [{master.status.value}]" if master.status.value != "active" else ""
    return f"{rank}. {master.name}{hidden} — {master.venue}, {master.followers} follower(s)"


def format_master(master) -> str:  # type: ignore[no-untyped-def]
    lines = [f"👤 {master.name}", f"Venue: {master.venue}", f"Followers: {master.followers}"]
    if master.status.value != "active":
        lines.append(f"Status: {master.status.value}")
    if master.description:
        lines.append("")
        lines.append(master.description)
    lines.append("")
    lines.append("Performance statistics (PnL, win rate, drawdown) are not published yet.")
    return "\n".join(lines)


def format_follow_settings(follow, master_name: str, account_label: str) -> str:  # type: ignore[no-untyped-def]
    """Every setting of one follow, as shown by /settings and the follow summary."""
    allowed = ", ".join(follow.allowed_symbols) or "all symbols"
    blocked = ", ".join(follow.blocked_symbols) or "none"
    status = follow.status.value + (f" ({follow.status_reason})" if follow.status_reason else "")
    lines = [
        f"#{follow.id or '-'} {master_name} → {account_label}",
        f"Status: {status}",
        f"Sizing: {sizing_text(follow.sizing_mode, follow.sizing_value)}",
        f"Reverse: {'on' if follow.reverse else 'off'}",
        f"Max position: {money(follow.max_position_notional)}",
        f"Allow list: {allowed}",
        f"Block list: {blocked}",
        f"Dry run: {'on — orders are recorded, not sent' if follow.dry_run else 'off'}",
        f"Take-profit: {percent(follow.take_profit_pct)}, stop-loss: {percent(follow.stop_loss_pct)}, "
        f"daily loss limit: {money(follow.daily_loss_limit)}" + (
            f" ({NOT_ENFORCED})" if (follow.take_profit_pct or follow.stop_loss_pct or follow.daily_loss_limit) else ""
        ),
    ]
    return "\n".join(lines)


def format_positions(positions) -> str:  # type: ignore[no-untyped-def]
    if not positions:
        return "  no open copied positions"
    return "\n".join(
        f"  {p.symbol}: {'long' if p.quantity > 0 else 'short'} {amount(abs(p.quantity))} @ {amount(p.entry_price)}" for p in positions
    )


def format_counts(counts: dict[str, int]) -> str:
    order = ["filled", "placed", "skipped", "failed", "pending"]
    parts = [f"{counts[k]} {k}" for k in order if counts.get(k)]
    return ", ".join(parts) if parts else "none"


def format_history_line(order, master_name: str) -> str:  # type: ignore[no-untyped-def]
    """One copy record with its outcome in plain words."""
    side = order.side.value if order.side else "-"
    qty = amount(order.filled_quantity) if order.filled_quantity else amount(order.requested_quantity)
    head = f"{order.created_at.strftime('%m-%d %H:%M')} {master_name}: {side} {qty} {order.symbol}"
    status = order.status.value
    if status == "filled":
        tail = f"filled @ {amount(order.average_price)} (master {amount(order.master_price)})"
    elif status == "skipped":
        tail = f"not copied — {order.reason or order.reason_code or 'no reason recorded'}"
    elif status == "failed":
        tail = f"failed — {order.reason or order.reason_code or 'no reason recorded'}"
    elif status == "pending":
        tail = "waiting for the exchange's answer (never sent twice)"
    else:
        tail = "placed, not filled yet"
    return f"{head} — {tail}" + (" [dry run]" if order.dry_run else "")


def format_close_outcomes(outcomes) -> str:  # type: ignore[no-untyped-def]
    if not outcomes:
        return "There were no copied positions to close."
    lines = []
    for o in outcomes:
        if o.status.value == "filled":
            lines.append(f"✅ {o.symbol}: {o.side.value} {amount(o.filled_quantity)} @ {amount(o.average_price)}")
        elif o.status.value == "placed":
            lines.append(f"📝 {o.symbol}: {o.side.value} {amount(o.quantity)} placed, not filled yet")
        elif o.status.value == "skipped":
            lines.append(f"⏭ {o.symbol}: {o.reason}")
        else:
            lines.append(f"❌ {o.symbol}: not closed — {o.reason}. Close it on the exchange.")
    return "\n".join(lines)


def format_broadcast_progress(done: int, total: int, delivered: int, blocked: int, failed: int, *, finished: bool = False) -> str:
    head = "📣 Broadcast finished" if finished else f"📣 Sending… {done}/{total}"
    return f"{head}\nDelivered: {delivered}\nBlocked the bot: {blocked}\nFailed: {failed}"


def format_stats(counts: dict[str, int], copies_today: dict[str, int], pending_notifications: int, dropped: int) -> str:
    return "\n".join([
        "📊 Stats",
        f"Users: {counts.get('users', 0)} ({counts.get('blocked', 0)} blocked the bot)",
        f"Exchange accounts: {counts.get('credentials', 0)}",
        f"Masters: {counts.get('masters_active', 0)} active, {counts.get('masters_hidden', 0)} hidden, {counts.get('masters_retired', 0)} retired",
        f"Follows: {counts.get('follows_active', 0)} active, {counts.get('follows_paused', 0)} paused, {counts.get('follows_stopped', 0)} stopped",
        f"Copies today: {format_counts(copies_today)}",
        f"Notifications waiting: {pending_notifications}, dropped: {dropped}",
    ])
