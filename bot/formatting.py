"""Pure ``data -> str`` formatting for chat messages and the console. No Telegram import:
the messages are plain text, split below Telegram's 4096-character limit by ``split_message``."""

from __future__ import annotations

from decimal import Decimal

from copytrade.core.engine import FollowPaused
from copytrade.core.model import CopyResult, CopyStatus, Side

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


def format_copy_result(result: CopyResult, *, master_name: str | None = None) -> str:
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
