"""Pure ``data -> str`` formatting for chat messages and the console. No Telegram import:
the messages are plain text, split below Telegram's 4096-character limit by ``split_message``."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from core.confirmations import CopyOffer
from core.copying.config import FollowPaused
from core.copying.direct import DirectOrder
from core.follow_settings import FOLLOW_SETTINGS, SETTINGS_BY_NAME
from core.model import (
    SKIP_EXPLANATIONS,
    CopyResult,
    CopyStatus,
    FeeStatus,
    FollowSettings,
    OrderOrigin,
    Side,
    SizingMode,
    Skip,
    plain,
)
from core.notifications import Event
from core.risk_service import DriftFound, RiskNotice

TELEGRAM_LIMIT = 4096


def amount(value: Decimal | None) -> str:
    return "-" if value is None else plain(value)


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
    OrderOrigin.TAKE_PROFIT: "🎯 Take-profit",
    OrderOrigin.STOP_LOSS: "🛑 Stop-loss",
    OrderOrigin.SYNC: "🔁 Sync with your copy history",
    OrderOrigin.OPEN: "📥 Opening the master's position",
    OrderOrigin.CLOSE: "🔒 Closing your copied position",
    OrderOrigin.WRITE_OFF: "✂️ Closed outside the copier",
}


def format_direct_result(result: CopyResult) -> str:
    """An order the copier placed itself (not a copy of a master fill)."""
    title = ORIGIN_TITLES.get(result.origin, result.origin)
    symbol = result.fill.symbol
    if result.status is CopyStatus.FILLED:
        return (
            f"{title}: {_verb(result.side, result.status)} {amount(result.filled_quantity)} {symbol} @ "
            f"{amount(result.average_price)}"
        )
    if result.status is CopyStatus.PLACED:
        return (
            f"{title}: order placed to {_verb(result.side, result.status)} {amount(result.requested_quantity)} {symbol}"
        )
    if result.status is CopyStatus.PENDING:
        return f"{title}: the exchange did not answer for {symbol}; it will be checked and never sent twice"
    if result.status is CopyStatus.SKIPPED:
        return f"{title}: not sent for {symbol}: {result.reason}"
    if result.status is CopyStatus.WRITTEN_OFF:
        return f"{title}: {amount(result.requested_quantity)} {symbol} taken off your copied position. {result.reason}"
    if result.status is CopyStatus.CANCELED:
        return (
            f"{title}: cancelled on your exchange for {symbol}, nothing filled ({result.reason or 'by the exchange'})"
        )
    return f"{title} failed for {symbol}: {result.error}. Check the position on your exchange."


def format_drift(event: DriftFound) -> str:
    lines = [f"⚖️ Your exchange disagrees with your copy history (follow #{event.follow_id}):"]
    for symbol, expected, actual in event.drifts:
        lines.append(f"  {symbol}: copies say {amount(expected)}, your exchange shows {amount(actual)}")
    lines.append(
        "Sync orders were sent to fix it."
        if event.synced
        else "A manual trade, a missed copy, a stop or a liquidation can cause this. /sync brings it back in line."
    )
    return "\n".join(lines)


def format_risk_notice(event: RiskNotice) -> str:
    return f"⚠️ {event.text} (follow #{event.follow_id})"


def format_copy_result(result: CopyResult, *, master_name: str | None = None) -> str:
    if result.origin is not OrderOrigin.COPY:
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
        return (
            f"📝 Order placed: {_verb(result.side, result.status)} {amount(result.requested_quantity)} "
            f"{fill.symbol}\n{master_line}"
        )
    if result.status is CopyStatus.SKIPPED:
        return f"⏭ Not copied: {result.reason}\n{master_line}"
    if result.status is CopyStatus.CANCELED:
        return (
            f"❎ Cancelled, nothing filled: {_verb(result.side, result.status)} {amount(result.requested_quantity)} "
            f"{fill.symbol} ({result.reason or 'by the exchange'})\n{master_line}"
        )
    if result.status is CopyStatus.OFFERED:
        return (
            f"✋ Waiting for your confirmation: {_verb(result.side, result.status)} "
            f"{amount(result.requested_quantity)} {fill.symbol}\n{master_line}"
        )
    if result.status is CopyStatus.PENDING:
        return (
            f"⏳ Unconfirmed: the exchange did not answer for {_verb(result.side, result.status)} "
            f"{amount(result.requested_quantity)} {fill.symbol}; it will be checked and never sent "
            f"twice.\n{master_line}"
        )
    return (
        f"❌ Copy failed: {result.error}\n{master_line}\nCheck your balance and key permissions; the next trade "
        "will be tried as usual."
    )


def format_copy_offer(offer: CopyOffer, *, master_name: str | None = None) -> str:
    """Manual confirmation: "Master bought 0.5 BTC @ 60,000 — copy 0.05 BTC?" (Copy / Skip buttons)."""
    fill = offer.fill
    who = master_name or "Master"
    done = "bought" if fill.side is Side.BUY else "sold"
    return (
        f"✋ {who} {done} {amount(fill.quantity)} {fill.symbol} @ {format(fill.price.normalize(), ',f')} — "
        f"copy: {offer.side.value} {amount(offer.quantity)} {offer.symbol}?\n"
        f"Answer within {offer.seconds} s, otherwise it is skipped (not confirmed)."
    )


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


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "never"


def format_account(view) -> str:
    """A connected exchange account: label, venue, fingerprint and last check — never the key."""
    from core.venues.catalog import venue_spec

    spec = venue_spec(view.venue)
    title = spec.title if spec else view.venue
    return f"• {view.label} — {title}, key …{view.key_fingerprint[-6:]}, checked {when(view.last_validated_at)}"


def format_accounts(views) -> str:
    if not views:
        return "No exchange accounts connected yet. Add one with /connect."
    return "Your exchange accounts:\n" + "\n".join(format_account(v) for v in views)


UNKNOWN = "—"
CENT = Decimal("0.01")


def cents(value: Decimal) -> Decimal:
    """Money to two places, half to even, whatever the thread's decimal context says: ccxt's
    ``decimal_to_precision`` sets the shared context's rounding to half-up as a side effect."""
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def signed(value: Decimal | None) -> str:
    """Money with its sign and thousands separators (``—`` when unknown)."""
    return UNKNOWN if value is None else f"{cents(value):+,}"


def plain_money(value: Decimal | None) -> str:
    return UNKNOWN if value is None else f"{cents(value):,}"


def ratio(value: Decimal | float | None, *, sign: bool = False) -> str:
    """A fraction as a percentage (0.05 → 5.0 %)."""
    if value is None:
        return UNKNOWN
    number = Decimal(str(value)) * 100
    return f"{number:+.1f} %" if sign else f"{number:.1f} %"


def duration(value: timedelta | None) -> str:
    if value is None:
        return UNKNOWN
    seconds = int(value.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


#: /masters sort keys (core.reports.masters.RANK_KEYS) as buttons and headings say them
RANK_TITLES: dict[str, str] = {
    "followers": "followers",
    "pnl": "PnL",
    "pnl_pct": "PnL %",
    "pnl_30d": "30-day PnL",
    "pnl_30d_pct": "30-day PnL %",
    "win_rate": "win rate",
    "profit_factor": "profit factor",
    "drawdown": "drawdown",
    "drawdown_pct": "drawdown %",
    "sharpe": "Sharpe",
    "trades": "trades",
    "holding": "holding time",
    "trading_days": "trading days",
}


def rank_value(stats, key: str) -> str:
    """The statistic a ranking is sorted by, in words."""
    values = {
        "pnl_pct": lambda s: ratio(s.realized_pnl_pct, sign=True),
        "pnl_30d": lambda s: signed(s.pnl_30d),
        "pnl_30d_pct": lambda s: ratio(s.pnl_30d_pct, sign=True),
        "profit_factor": lambda s: UNKNOWN if s.profit_factor is None else f"{s.profit_factor:.2f}",
        "drawdown_pct": lambda s: ratio(s.max_drawdown_pct),
        "sharpe": lambda s: UNKNOWN if s.sharpe is None else f"{s.sharpe:.2f}",
        "trades": lambda s: str(s.round_trips),
        "holding": lambda s: duration(s.avg_holding),
        "trading_days": lambda s: str(s.trading_days),
    }
    return values[key](stats) if key in values else ""


def format_master_line(rank: int, master, sort: str = "followers") -> str:
    """One master of /masters; with statistics (``MasterStatistics``): PnL, win rate, max
    drawdown and the figure the list is sorted by, ``—`` where it is not known yet."""
    hidden = f" [{master.status.value}]" if master.status.value != "active" else ""
    line = f"{rank}. {master.name}{hidden} — {master.venue}, {master.followers} follower(s)"
    if not hasattr(master, "realized_pnl"):
        return line
    pnl = signed(master.realized_pnl) + (
        f" ({ratio(master.realized_pnl_pct, sign=True)})" if master.realized_pnl_pct is not None else ""
    )
    drawdown = plain_money(master.max_drawdown) + (
        f" ({ratio(master.max_drawdown_pct)})" if master.max_drawdown_pct is not None else ""
    )
    line += f"\n    PnL {pnl} · win rate {ratio(master.win_rate)} · max drawdown {drawdown}"
    extra = rank_value(master, sort)
    if extra:
        line += f" · {RANK_TITLES[sort]} {extra}"
    return line


def format_master_statistics(stats) -> str:
    """A master's detail page: every statistic (``MasterStatistics``), ``—`` where unknown."""
    head = [f"👤 {stats.name}", f"Venue: {stats.venue} · followers: {stats.followers}"]
    if stats.status.value != "active":
        head.append(f"Status: {stats.status.value}")
    if stats.description:
        head += ["", stats.description]
    pnl_pct = (
        f" ({ratio(stats.realized_pnl_pct, sign=True)} of the first equity)"
        if stats.realized_pnl_pct is not None
        else ""
    )
    pnl_30d_pct = f" ({ratio(stats.pnl_30d_pct, sign=True)})" if stats.pnl_30d_pct is not None else ""
    drawdown_pct = f" ({ratio(stats.max_drawdown_pct)} of equity)" if stats.max_drawdown_pct is not None else ""
    if stats.round_trips:
        wins = f"{ratio(stats.win_rate)} ({stats.wins} won, {stats.losses} lost of {stats.round_trips} round trips)"
    else:
        wins = f"{UNKNOWN} (no closed round trip yet)"
    if stats.profit_factor is not None:
        factor = f"{stats.profit_factor:.2f}"
    else:
        factor = UNKNOWN + (" (no losing round trip yet)" if stats.round_trips else "")
    source = {"equity_snapshots": "daily equity", "daily_realized_pnl": "daily realized PnL"}.get(
        stats.sharpe_source or "", ""
    )
    sharpe = UNKNOWN if stats.sharpe is None else f"{stats.sharpe:.2f}" + (f" (from {source})" if source else "")
    equity = f"{plain_money(stats.equity)} on {stats.equity_day}" if stats.equity is not None else UNKNOWN
    positions = (
        ", ".join(
            f"{symbol} {'long' if qty > 0 else 'short'} {amount(abs(qty))}" for symbol, qty in stats.open_positions
        )
        or "none"
    )
    lines = head + [
        "",
        "📊 Statistics (gross: the master's fills carry no fees)",
        f"Realized PnL: {signed(stats.realized_pnl)}{pnl_pct}",
        f"Last 30 days: {signed(stats.pnl_30d)}{pnl_30d_pct}",
        f"Win rate: {wins}",
        f"Profit factor: {factor}",
        f"Max drawdown: {plain_money(stats.max_drawdown)}{drawdown_pct}",
        f"Sharpe ratio: {sharpe}",
        f"Average holding time: {duration(stats.avg_holding)}",
        f"Trading days: {stats.trading_days} · fills: {stats.fills}",
        f"First fill: {when(stats.first_fill_at) if stats.first_fill_at else UNKNOWN} · last fill: "
        f"{when(stats.last_fill_at) if stats.last_fill_at else UNKNOWN}",
        f"Equity: {equity}",
        f"Open positions: {positions}",
    ]
    if stats.untracked_closes:
        lines.append(
            f"({stats.untracked_closes} close(s) of positions opened before tracking began are left out of "
            "the win rate)"
        )
    lines += ["", "Past results say nothing about the future."]
    return "\n".join(lines)


#: settings that act only on Angel One (no market orders, product types, exchange hours): left
#: out of the summary and of /settings on a follow on any other venue
ANGELONE_ONLY_SETTINGS = frozenset(
    {"price_protection_pct", "product", "remainder_action", "reprice_attempts", "closed_market_action"}
)
ANGELONE_VENUES = frozenset({"angelone"})
#: at most this many changed settings are listed in the short summary (8 lines with the title,
#: the status and the sizing); the rest is one tap away, behind "All settings"
BRIEF_CHANGES = 5
_DEFAULTS = FollowSettings(follow_id=0, user_id=0, master_id=0, credential_id="")


def applies(name: str, venue: str | None) -> bool:
    """Whether setting ``name`` acts on a follow on ``venue`` (``None``: any venue, all shown)."""
    return venue is None or name not in ANGELONE_ONLY_SETTINGS or venue in ANGELONE_VENUES


def format_follow_settings(
    follow, master_name: str, account_label: str, *, names: Collection[str] | None = None, venue: str | None = None
) -> str:
    """A follow's title and status, then the summary line of each setting in ``names`` (every one
    by default) that acts on ``venue``, in the table's order: a /settings screen."""
    status = follow.status.value + (f" ({follow.status_reason})" if follow.status_reason else "")
    title = f"#{follow.id} {master_name}" if follow.id is not None else f"New follow: {master_name}"
    lines = [f"{title} → {account_label}", f"Status: {status}"]
    lines += [
        setting.line(follow)
        for setting in FOLLOW_SETTINGS
        if setting.line is not None and (names is None or setting.name in names) and applies(setting.name, venue)
    ]
    return "\n".join(lines)


def changed_settings(follow, venue: str | None, names: Collection[str] | None = None) -> list[str]:
    """The summary lines of the settings (of ``names``; every one by default, the sizing aside)
    that differ from the defaults and act on ``venue``."""
    changed = []
    for setting in FOLLOW_SETTINGS:
        if setting.line is None or setting.name == "sizing_mode" or not applies(setting.name, venue):
            continue
        if names is not None and setting.name not in names:
            continue
        line = setting.line(follow)
        if line != setting.line(_DEFAULTS):
            changed.append(line)
    return changed


def at_most(lines: list[str], count: int = BRIEF_CHANGES) -> list[str]:
    """``lines``, the last ones counted in one line when there are more than ``count``."""
    if len(lines) <= count:
        return lines
    return lines[: count - 1] + [f"… and {len(lines) - count + 1} more changed settings"]


def format_follow_brief(follow, master_name: str, account_label: str, venue: str) -> str:
    """A follow at a glance (offers, "Following"): the title, the status when not active, the
    sizing, and only the settings that differ from the defaults and act on ``venue``."""
    lines = [
        f"#{follow.id} {master_name} → {account_label}" if follow.id is not None else f"{master_name} → {account_label}"
    ]
    if follow.status.value != "active":
        lines.append("Status: " + follow.status.value + (f" ({follow.status_reason})" if follow.status_reason else ""))
    sizing = SETTINGS_BY_NAME["sizing_mode"].line
    assert sizing is not None  # the sizing has its line in the table
    lines.append(sizing(follow))
    return "\n".join(lines + (at_most(changed_settings(follow, venue)) or ["Every other setting: the default"]))


def format_opening_plan(plan: Sequence[DirectOrder | Skip]) -> str:
    """What copying the master's open positions would send now, one line each."""
    return "\n".join(
        f"• {outcome}"
        if isinstance(outcome, Skip)
        else f"• {outcome.side.value} {amount(outcome.quantity)} "
        f"{outcome.symbol} (about {amount(outcome.reference_price)})"
        for outcome in plan
    )


def format_skip_digest(skips: Sequence[CopyResult], master_names: dict[int, str]) -> str:
    """The skips held for the digest (``core.notifications.DIGESTED_SKIPS``), one line per master
    and reason with the count and the symbols."""
    groups: dict[tuple[int, str], list[CopyResult]] = {}
    for skip in skips:
        assert skip.skip is not None  # only skips are digested
        groups.setdefault((skip.master_id, SKIP_EXPLANATIONS[skip.skip.reason]), []).append(skip)
    lines = [f"ℹ️ Not copied, nothing for you to do ({len(skips)}):"]
    for (master_id, why), group in groups.items():
        symbols = ", ".join(sorted({s.fill.symbol for s in group}))
        lines.append(f"• {master_names.get(master_id, f'master #{master_id}')}: {len(group)}× {why} ({symbols})")
    lines.append("Each one is in /history.")
    return "\n".join(lines)


def format_positions(positions) -> str:
    if not positions:
        return "  no open copied positions"
    return "\n".join(
        f"  {p.symbol}: {'long' if p.quantity > 0 else 'short'} {amount(abs(p.quantity))} @ {amount(p.entry_price)}"
        for p in positions
    )


def format_counts(counts: dict[str, int]) -> str:
    order = ["filled", "placed", "skipped", "failed", "pending"]
    parts = [f"{counts[k]} {k}" for k in order if counts.get(k)]
    return ", ".join(parts) if parts else "none"


def format_history_line(order, master_name: str) -> str:
    """One copy record with its outcome in plain words."""
    side = order.side.value if order.side else "-"
    qty = amount(order.filled_quantity) if order.filled_quantity else amount(order.requested_quantity)
    head = f"{order.created_at.strftime('%m-%d %H:%M')} {master_name}: {side} {qty} {order.symbol}"
    status = order.status.value
    if status == "filled":
        tail = f"filled @ {amount(order.average_price)} (master {amount(order.master_price)})"
        if order.fee_status is FeeStatus.PENDING:
            tail += "; its commission is still to come"
        elif order.fee_status is FeeStatus.MISSING:
            tail += f"; {order.reason}"
    elif status == "skipped":
        tail = f"not copied — {order.reason or order.reason_code or 'no reason recorded'}"
    elif status == "failed":
        tail = f"failed — {order.reason or order.reason_code or 'no reason recorded'}"
    elif status == "pending":
        tail = "waiting for the exchange's answer (never sent twice)"
    elif status == "written_off":
        tail = f"taken off your copied position, never sent — {order.reason or 'closed outside the copier'}"
    else:
        tail = "placed, not filled yet"
    return f"{head} — {tail}" + (" [dry run]" if order.dry_run else "")


def format_broadcast_progress(
    done: int, total: int, delivered: int, blocked: int, failed: int, *, finished: bool = False
) -> str:
    head = "📣 Broadcast finished" if finished else f"📣 Sending… {done}/{total}"
    return f"{head}\nDelivered: {delivered}\nBlocked the bot: {blocked}\nFailed: {failed}"


def format_stats(counts: dict[str, int], copies_today: dict[str, int], pending_notifications: int, dropped: int) -> str:
    return "\n".join(
        [
            "📊 Stats",
            f"Users: {counts.get('users', 0)} ({counts.get('blocked', 0)} blocked the bot)",
            f"Exchange accounts: {counts.get('credentials', 0)}",
            f"Masters: {counts.get('masters_active', 0)} active, {counts.get('masters_hidden', 0)} hidden, "
            f"{counts.get('masters_retired', 0)} retired",
            f"Follows: {counts.get('follows_active', 0)} active, {counts.get('follows_paused', 0)} paused, "
            f"{counts.get('follows_stopped', 0)} stopped",
            f"Copies today: {format_counts(copies_today)}",
            f"Notifications waiting: {pending_notifications}, dropped: {dropped}",
        ]
    )


# -- issue 6: sync, opening the master's positions, closing, drift in /status -------------------


def format_drift_rows(drifts) -> str:
    """The last reconciliation's findings (``PositionDrift`` rows) under a follow in /status."""
    return "\n".join(
        f"  ⚖️ {d.symbol}: copies say {amount(d.expected)}, your exchange shows {amount(d.actual)} "
        f"(checked {when(d.detected_at)}) — /sync fixes it"
        for d in drifts
    )


def format_sync_preview(title: str, drifts: dict[str, tuple[Decimal, Decimal]]) -> str:
    """What /sync found and what it would send (``RiskService.reconcile``'s answer)."""
    if not drifts:
        return f"✅ {title}: your exchange matches your copy history; nothing to sync."
    lines = [f"⚖️ {title}: your exchange disagrees with your copy history:"]
    for symbol, (expected, actual) in drifts.items():
        delta = expected - actual
        verb = "buy" if delta > 0 else "sell"
        lines.append(
            f"  {symbol}: copies say {amount(expected)}, your exchange shows {amount(actual)} → {verb} "
            f"{amount(abs(delta))}"
        )
    lines.append(
        "\nSync sends market orders on your account to bring it in line with the copy history "
        "(a manual trade in these symbols would be undone)."
    )
    return "\n".join(lines)


def format_orders_sent(results: Sequence[CopyResult], what: str, *, empty: str) -> str:
    """Orders the copier placed itself from a chat action (/stop close, opening the master's
    positions): each is pushed as its own notification, so the answer only counts them."""
    if not results:
        return empty
    return f"{len(results)} order(s) sent to {what}; each is reported in its own message."


def format_open_outcomes(outcomes: Sequence[CopyResult | Skip]) -> str:
    """``RiskService.open_master_positions``: how many orders were sent (each reported in its own
    notification) and why any position was not opened (said only here)."""
    if not outcomes:
        return "The master holds no open position now; copying starts with the next trade."
    sent = [o for o in outcomes if not isinstance(o, Skip)]
    lines = [format_orders_sent(sent, "open the master's positions", empty="No order was sent.")]
    lines += [f"⏭ Not opened: {outcome}" for outcome in outcomes if isinstance(outcome, Skip)]
    return "\n".join(lines)


def format_master_positions(positions: dict[str, Decimal]) -> str:
    return (
        ", ".join(
            f"{symbol} {'long' if qty > 0 else 'short'} {amount(abs(qty))}" for symbol, qty in sorted(positions.items())
        )
        or "none"
    )


# -- issue 8: PnL, daily summary, admin statistics -------------------------------------------


def period_title(label: str) -> str:
    if label == "all":
        return "all time"
    if label == "today":
        return "today (UTC)"
    return f"the last {label}"


def format_pnl(report) -> str:
    """/pnl: per follow and in total (``PnlReport``): realized after fees, open positions at the
    current price, and what the master made over the same days scaled to the follow."""
    since = f" (since {report.period.first_day}, UTC)" if report.period.first_day else ""
    if not report.follows:
        return "You have not followed anyone yet, so there is no PnL. Start with /follow."
    lines = [f"💰 PnL over {period_title(report.period.label)}{since}"]
    for item in report.follows:
        flags = []
        if item.status.value != "active":
            flags.append(item.status.value)
        if item.dry_run:
            flags.append("dry run")
        lines.append(
            f"\n#{item.follow_id} {item.master_name} → {item.account_label}"
            + (f" ({', '.join(flags)})" if flags else "")
        )
        lines.append(
            f"  Realized: {signed(item.realized)} (fees {plain_money(item.fees)}) · open: {signed(item.unrealized)}"
            + ("" if item.unrealized_complete else " (some positions have no price now)")
            + f" · total {signed(item.total)}"
        )
        for position in item.positions:
            if position.simulated:
                continue
            mark = f", now {amount(position.mark_price)}" if position.mark_price is not None else ", no price now"
            lines.append(
                f"  {position.symbol}: {'long' if position.quantity > 0 else 'short'} {amount(abs(position.quantity))} "
                f"@ {amount(position.entry_price)}{mark} → {signed(position.unrealized)}"
            )
        if item.expected is not None and item.tracking_difference is not None:
            lines.append(
                f"  The master over the same days, scaled to you: {signed(item.expected)}; "
                f"you differ by {signed(item.tracking_difference)} (rounding, skips, slippage, fees)"
            )
        if item.simulated_realized is not None:
            lines.append(f"  Dry run (simulated, not in the totals): {signed(item.simulated_realized)}")
        lines.append(f"  Copies: {format_counts(dict(item.copies))}")
    lines.append(
        f"\nTotal: {signed(report.total)} (realized {signed(report.realized)} after {plain_money(report.fees)} fees, "
        f"open {signed(report.unrealized)})"
    )
    if report.tracking_difference is not None and report.expected is not None:
        lines.append(
            f"The masters, scaled to you: {signed(report.expected)}; difference {signed(report.tracking_difference)}"
        )
    return "\n".join(lines)


def format_summary_setting(setting) -> str:
    at = f"{setting.minute_of_day // 60:02d}:{setting.minute_of_day % 60:02d} UTC"
    if setting.enabled:
        return f"🗓 Daily summary: on, every day at {at} — yesterday's copies, realized PnL, skips and failures."
    return f"🗓 Daily summary: off. Turn it on with /summary on [HH:MM] (UTC; {at} if no time is given)."


def _reason_counts(counts: dict[str, int]) -> str:
    return ", ".join(
        f"{reason.replace('_', ' ')} {n}" for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )


def format_admin_stats(stats) -> str:
    """Admin /stats (``AdminStats``): copies per day, outcome rates with reasons, latency,
    follows and the master streams' health."""
    total = sum(stats.status_counts.values())
    lines = [f"\n📈 Copies, last {(stats.until.date() - stats.since.date()).days + 1} days (UTC):"]
    if stats.copies_per_day:
        lines += [f"  {day:%m-%d}: {format_counts(counts)}" for day, counts in stats.copies_per_day.items()]
    else:
        lines.append("  none")

    def rate(value: float | None) -> str:
        return UNKNOWN if value is None else f"{value * 100:.1f} %"

    lines.append(
        f"Success {rate(stats.success_rate)}, skipped {rate(stats.skip_rate)}, failed "
        f"{rate(stats.failure_rate)} of {total} copies"
    )
    for status, title in (("skipped", "Skipped by reason"), ("failed", "Failed by reason")):
        if stats.reason_counts.get(status):
            lines.append(f"{title}: {_reason_counts(stats.reason_counts[status])}")
    if stats.latency_samples:
        lines.append(
            f"Latency: p50 {stats.latency_p50_ms:.0f} ms, p99 {stats.latency_p99_ms:.0f} ms "
            f"({stats.latency_samples} copies)"
        )
    else:
        lines.append(f"Latency: {UNKNOWN} (no copy placed yet)")
    others = ", ".join(f"{n} {status}" for status, n in sorted(stats.follows.items()) if status != "active")
    lines.append(f"Active follows: {stats.active_follows}" + (f" ({others})" if others else ""))
    if stats.listeners:
        lines.append("Master streams:")
        for h in stats.listeners:
            state = "up" if h.running else "down"
            last = f", last fill {when(h.last_fill_at)}" if h.last_fill_at else ""
            error = f" — last error: {h.last_error[:120]}" if h.last_error and not h.running else ""
            lines.append(f"  #{h.master_id} {state}: {h.fills} fills, {h.restarts} restart(s){last}{error}")
    else:
        lines.append("Master streams: none running")
    return "\n".join(lines)


def format_event(event: Event, *, master_name: str | None = None) -> str:
    """Any notification the engine or the risk service publishes, as its message."""
    if isinstance(event, FollowPaused):
        return format_follow_paused(event)
    if isinstance(event, DriftFound):
        return format_drift(event)
    if isinstance(event, RiskNotice):
        return format_risk_notice(event)
    if isinstance(event, CopyOffer):
        return format_copy_offer(event, master_name=master_name)
    return format_copy_result(event, master_name=master_name)
