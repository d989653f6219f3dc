"""/start, /help and the answers for everything no other handler takes (unknown commands,
unexpected text, expired buttons)."""

from __future__ import annotations

import re

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.auth import STALE_BUTTON, BotUser, get_app, handler, is_admin, message_text, reply, sender_id
from bot.follow import connect_button, offer_follow, paper_button
from bot.keyboards import keyboard

FOLLOWER_COMMANDS: tuple[tuple[str, str], ...] = (
    ("start", "welcome, risks and the next step"),
    ("help", "every command"),
    ("connect", "add an exchange account (API keys)"),
    ("keys", "list or remove your exchange accounts"),
    ("masters", "masters you can copy"),
    ("follow", "start copying a master"),
    ("settings", "change sizing, filters and limits of a follow"),
    ("pause", "pause copying (one follow or all)"),
    ("resume", "resume copying"),
    ("stop", "stop copying, keep or close the copied positions"),
    ("status", "follows, open copied positions, drift, today's copies"),
    ("sync", "compare your exchange with the copies and fix the difference"),
    ("history", "every copy, skip and failure with its reason"),
    ("pnl", "your PnL with a chart: /pnl [today|7d|30d|3m|1y|all]"),
    ("export", "your copy log as a file: /export [csv|json]"),
    ("summary", "daily summary: /summary on [HH:MM] | off (UTC)"),
    ("apitoken", "REST API tokens: /apitoken new read|trade, /apitoken revoke <id>"),
    ("cancel", "cancel the current dialogue"),
)
ADMIN_COMMANDS: tuple[tuple[str, str], ...] = (
    ("addmaster", "register a master account"),
    ("broadcast", "message all users or one master's followers"),
    ("stats", "service statistics: copies, outcomes, latency, streams"),
    ("pauseall", "kill switch: pause every follow"),
)

WELCOME = (
    "👋 Welcome to copytrade.\n"
    "\n"
    "This bot copies the trades of a master trader onto your own exchange account in real time: when the master "
    "buys or sells, your account does the same, sized the way you choose. You are told about every copied trade, "
    "every skipped one and why.\n"
    "\n"
    "⚠️ Risks — please read:\n"
    "• Trading with leverage can lose more than you expect; past results of a master say nothing about the future.\n"
    "• Copies are never perfect: your price, size and timing differ from the master's (slippage, minimum order "
    "sizes, delays).\n"
    "• Your API key can trade on your account. Use a key WITHOUT withdrawal permission (keys that can withdraw are "
    "refused) and, where your exchange allows it, restrict it to this service's IP.\n"
    "• Only risk money you can afford to lose.\n"
    "\n"
    "Next step: connect your exchange account with /connect, then pick a master with /masters or /follow. "
    "/help lists every command."
)


_NO_KEY_YET = (
    "\n\nNo exchange key yet? Try it with a paper account: simulated money, real copies, one tap. "
    "Or connect your exchange now."
)


def help_text(admin: bool) -> str:
    lines = ["Commands:"] + [f"/{name} — {text}" for name, text in FOLLOWER_COMMANDS]
    if admin:
        lines += (
            ["", "Admin:"]
            + [f"/{name} — {text}" for name, text in ADMIN_COMMANDS]
            + [
                "(/masters also lets you hide, show or retire a master; "
                "/export master <id> or /export all exports any copy log)"
            ]
        )
    return "\n".join(lines)


#: the deep link a master shares: t.me/<bot>?start=follow-<master id> arrives as "/start follow-<id>"
_FOLLOW_LINK = re.compile(r"^follow-(\d{1,12})$")


@handler(register=True)
async def start(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> None:
    services = get_app(context).services
    assert user.id is not None
    if user.blocked_bot:  # they came back after blocking the bot
        await services.set_blocked(user.id, False)
    link = _FOLLOW_LINK.match(context.args[0]) if context.args else None
    has_account = bool(await services.accounts_of(user.id))
    if link is not None:
        await reply(update, WELCOME)
        await offer_follow(update, context, user, int(link.group(1)))
        return
    if has_account:
        await reply(update, WELCOME)
        return
    await reply(update, WELCOME + _NO_KEY_YET, reply_markup=keyboard([paper_button()], [connect_button()]))


@handler()
async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> None:
    await reply(update, help_text(is_admin(context, sender_id(update))))


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    text = message_text(update).split()[0] if update.effective_message else ""
    await reply(update, f"I don't know the command {text[:40]}. /help lists every command.")


_KEY_CHARACTERS = re.compile(r"^[A-Za-z0-9+/=_\-]{16,}$")


def looks_like_a_secret(text: str) -> bool:
    """An API key, secret or TOTP seed pasted outside /connect: 16+ key characters with letters
    *and* digits (every venue's keys mix them), so a long word or a symbol name is not one."""
    text = text.strip()
    return bool(_KEY_CHARACTERS.match(text)) and any(c.isdigit() for c in text) and any(c.isalpha() for c in text)


async def unexpected_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Text outside any dialogue. Something that looks like a key is deleted at once (a
    /connect dialogue may have expired before it was pasted)."""
    message = update.effective_message
    if message is None:
        return
    if looks_like_a_secret(message.text or ""):
        try:
            await message.delete()
            await reply(
                update,
                "🔒 That looked like a key or secret, so I deleted it. To add an exchange account, start /connect.",
            )
        except TelegramError:
            await reply(
                update,
                "🔒 That looked like a key or secret — please delete it from the chat. "
                "To add an exchange account, start /connect.",
            )
        return
    await reply(update, "I was not expecting a message here. /help lists every command.")


async def stale_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    if query is not None:
        try:
            await query.answer(STALE_BUTTON, show_alert=True)
        except TelegramError:
            pass
    await reply(update, STALE_BUTTON)
