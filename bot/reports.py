"""/pnl (chart and numbers over a period), /export (the copy log as a CSV or JSON document;
admins: one master's or everyone's), /summary (the daily summary on or off) and the delivery
of due daily summaries through the bot."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Bot, Update
from telegram.constants import ChatAction
from telegram.error import Forbidden
from telegram.ext import CommandHandler, ContextTypes

from bot.auth import ADMINS_ONLY, BotUser, chat_of, get_app, handler, is_admin, reply, sender_id, working
from bot.formatting import format_pnl, format_summary_setting, period_title, split_message
from bot.host import BotApp
from bot.report_text import daily_summary_text
from core.errors import UserError
from core.reports.summaries import DailySummary

log = logging.getLogger(__name__)

PNL_USAGE = "Usage: /pnl [period] — today, 7d, 30d (the default), 4w, 3m, 1y or all."
EXPORT_USAGE = "Usage: /export [csv|json] — your copy log as a file."
EXPORT_ADMIN_USAGE = "Admins also: /export master <id> [csv|json], /export all [csv|json]."
SUMMARY_USAGE = "Usage: /summary on [HH:MM] (UTC) or /summary off."


# -- /pnl ---------------------------------------------------------------------------------------


@handler()
async def pnl(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> None:
    args = context.args or []
    if len(args) > 1:
        raise UserError(PNL_USAGE)
    services = get_app(context).services
    period = args[0] if args else None
    await working(update, ChatAction.UPLOAD_PHOTO)  # the first chart takes seconds
    chart: bytes | None
    try:
        report, chart = await services.pnl_chart(user.id, period=period)
    except UserError:
        raise
    except Exception:  # the numbers still go out without the chart
        log.exception("PnL chart of user %s failed", user.id)
        report, chart = await services.follow_pnl(user.id, period=period), None
    if not report.follows:
        await reply(update, "You have not followed anyone yet, so there is no PnL. Start with /follow.")
        return
    if chart is not None:
        await chat_of(update).send_photo(
            chart,
            caption=(
                f"💰 Your PnL over {period_title(report.period.label)}: realized after fees, against the master's "
                "scaled to you"
            ),
        )
    for part in split_message(format_pnl(report)):
        await reply(update, part)


# -- /export ------------------------------------------------------------------------------------


def _format_arg(args: list[str]) -> str:
    if not args:
        return "csv"
    if len(args) == 1 and args[0].lower() in ("csv", "json"):
        return args[0].lower()
    raise UserError("the export format is csv or json")


@handler()
async def export(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> None:
    args = [a.strip() for a in context.args or []]
    services = get_app(context).services
    scope = args[0].lower() if args else ""
    if scope in ("master", "all"):
        if not is_admin(context, sender_id(update)):
            log.warning("non-admin %s tried /export %s", sender_id(update), scope)
            await reply(update, ADMINS_ONLY)
            return
        if scope == "all":
            file = await services.export_admin_log(fmt=_format_arg(args[1:]))
            what = "every master's copy log"
        else:
            if len(args) < 2 or not args[1].isdigit() or len(args[1]) > 12:
                raise UserError("say which master: /export master <id> [csv|json] (the id is in /masters)")
            file = await services.export_admin_log(master_id=int(args[1]), fmt=_format_arg(args[2:]))
            what = f"master #{args[1]}'s copy log"
    else:
        try:
            fmt = _format_arg(args)
        except UserError:
            usage = EXPORT_USAGE + (" " + EXPORT_ADMIN_USAGE if is_admin(context, sender_id(update)) else "")
            raise UserError(usage) from None
        file = await services.export_copy_log(user.id, fmt=fmt)
        what = "your copy log"
    if file.rows == 0:
        await reply(update, f"Nothing to export yet: {what} is empty.")
        return
    await chat_of(update).send_document(
        file.content,
        filename=file.filename,
        caption=f"🧾 {what[0].upper()}{what[1:]}: {file.rows} row(s) — every master fill and what was done for it, "
        "quantities and prices as exact decimals, times in UTC.",
    )


# -- /summary -----------------------------------------------------------------------------------


@handler()
async def summary(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> None:
    args = [a.strip().lower() for a in context.args or []]
    services = get_app(context).services
    if not args:
        await reply(
            update, format_summary_setting(await services.daily_summary_setting(user.id)) + "\n" + SUMMARY_USAGE
        )
        return
    if args[0] == "on" and len(args) <= 2:
        setting = await services.set_daily_summary(user.id, enabled=True, at=args[1] if len(args) == 2 else None)
    elif args == ["off"]:
        setting = await services.set_daily_summary(user.id, enabled=False)
    else:
        raise UserError(SUMMARY_USAGE)
    await reply(update, "Saved. " + format_summary_setting(setting))


def summary_sender(app: BotApp, bot: Bot) -> Callable[[DailySummary], Awaitable[None]]:
    """``deliver(summary)`` for ``add_daily_summary_job``: sent through the bot (its rate
    limiter); a user who blocked the bot is marked so and gets no more summaries."""

    async def deliver(summary: DailySummary) -> None:
        try:
            for part in split_message("🗓 " + daily_summary_text(summary.activity)):
                await bot.send_message(summary.telegram_id, part)
        except Forbidden:
            await app.services.set_blocked(summary.user_id, True)
            log.info("a daily summary could not be delivered: the user blocked the bot")

    return deliver


def report_handlers() -> list[Any]:
    return [
        CommandHandler("pnl", pnl),
        CommandHandler("export", export),
        CommandHandler("summary", summary),
    ]
