"""/status, /history, /pause, /resume and /stop (keep or close the copied positions)."""

from __future__ import annotations

from datetime import datetime, time, timezone
from typing import Any

from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler, ContextTypes

from copytrade.bot.auth import STALE_BUTTON, callback_args, get_app, handler, int_arg, reply
from copytrade.bot.formatting import (
    format_close_outcomes,
    format_counts,
    format_history_line,
    format_positions,
    sizing_text,
    split_message,
)
from copytrade.bot.keyboards import column, keyboard, pager
from copytrade.core.errors import UserError
from copytrade.core.model import FollowStatus
from copytrade.core.positions import stop_follow
from copytrade.storage.models import User

HISTORY_PAGE = 10


def _today() -> datetime:
    return datetime.combine(datetime.now(timezone.utc).date(), time(), tzinfo=timezone.utc)


@handler()
async def status(update: Update, context: ContextTypes.DEFAULT_TYPE, user: User) -> None:
    app = get_app(context)
    views = await app.services.follow_views(user.id)
    lines = ["📋 Your follows:"] if views else ["You are not following anyone. Start with /follow."]
    for view in views:
        f = view.follow
        reason = f" — {f.status_reason}" if f.status_reason and f.status is not FollowStatus.ACTIVE else ""
        lines.append(f"\n#{f.id} {view.master_name} → {view.account_label}: {f.status.value}{reason}")
        lines.append(f"  sizing {sizing_text(f.sizing_mode, f.sizing_value)}" + (", reverse" if f.reverse else "") + (", dry run" if f.dry_run else ""))
        lines.append(format_positions(await app.accounts.follow_positions_of(f.id)))
    lines.append(f"\nToday's copies: {format_counts(await app.accounts.copy_counts_since(user.id, _today()))}")
    for part in split_message("\n".join(lines)):
        await reply(update, part)


async def _history_page(update: Update, context: ContextTypes.DEFAULT_TYPE, user: User, page: int) -> None:
    app = get_app(context)
    total = await app.accounts.copy_history_count(user.id)
    if total == 0:
        await reply(update, "No copies yet. Every copied trade, skip and failure will be listed here.")
        return
    pages = (total + HISTORY_PAGE - 1) // HISTORY_PAGE
    page = min(max(page, 0), pages - 1)
    orders = await app.accounts.copy_history(user.id, limit=HISTORY_PAGE, offset=page * HISTORY_PAGE)
    names = {v.follow.id: v.master_name for v in await app.services.follow_views(user.id, include_stopped=True)}
    lines = [f"🧾 Copy history (page {page + 1}/{pages}, newest first):"]
    lines += [format_history_line(o, names.get(o.follow_id, f"follow #{o.follow_id}")) for o in orders]
    nav = pager("hi:p", page, pages)
    await reply(update, split_message("\n".join(lines))[0], reply_markup=keyboard(nav) if nav else None)


@handler()
async def history(update: Update, context: ContextTypes.DEFAULT_TYPE, user: User) -> None:
    await _history_page(update, context, user, 0)


@handler()
async def history_button(update: Update, context: ContextTypes.DEFAULT_TYPE, user: User) -> None:
    _, page = callback_args(update, 2)
    await _history_page(update, context, user, int_arg(page))


# -- pause / resume / stop ----------------------------------------------------------------------

_VERBS = {"pz": ("pause", FollowStatus.ACTIVE), "rs": ("resume", FollowStatus.PAUSED), "st": ("stop", None)}


async def _choose(update: Update, context: ContextTypes.DEFAULT_TYPE, user: User, prefix: str) -> None:
    verb, wanted = _VERBS[prefix]
    views = [v for v in await get_app(context).services.follow_views(user.id) if wanted is None or v.follow.status is wanted]
    if not views:
        await reply(update, f"Nothing to {verb}." + (" Start with /follow." if prefix != "rs" else ""))
        return
    buttons = [(f"#{v.follow.id} {v.master_name} → {v.account_label} ({v.follow.status.value})", f"{prefix}:f:{v.follow.id}") for v in views]
    extra = [(f"All ({len(views)})", f"{prefix}:all:-")] if len(views) > 1 else []
    await reply(update, f"Which follow do you want to {verb}?", reply_markup=column(buttons, extra))


@handler()
async def pause(update: Update, context: ContextTypes.DEFAULT_TYPE, user: User) -> None:
    await _choose(update, context, user, "pz")


@handler()
async def resume(update: Update, context: ContextTypes.DEFAULT_TYPE, user: User) -> None:
    await _choose(update, context, user, "rs")


@handler()
async def stop(update: Update, context: ContextTypes.DEFAULT_TYPE, user: User) -> None:
    await _choose(update, context, user, "st")


@handler()
async def pause_resume_button(update: Update, context: ContextTypes.DEFAULT_TYPE, user: User) -> None:
    prefix = (update.callback_query.data or "")[:2]
    action, target = callback_args(update, 2)
    services = get_app(context).services
    new = FollowStatus.PAUSED if prefix == "pz" else FollowStatus.ACTIVE
    if action == "all":
        changed = await services.set_statuses(user.id, new)
        await reply(update, f"{'⏸ Paused' if new is FollowStatus.PAUSED else '▶️ Resumed'} {len(changed)} follow(s).")
        return
    if action != "f":
        raise UserError(STALE_BUTTON)
    row = await services.set_status(user.id, int_arg(target), new)
    if new is FollowStatus.PAUSED:
        await reply(update, f"⏸ Follow #{row.id} paused: the master's trades are not copied until you /resume. Copied positions stay open.")
    else:
        await reply(update, f"▶️ Follow #{row.id} resumed: copying from the master's next trade.")


@handler()
async def stop_button(update: Update, context: ContextTypes.DEFAULT_TYPE, user: User) -> None:
    action, target = callback_args(update, 2)
    app = get_app(context)
    if action == "x":
        await reply(update, "Nothing was stopped.")
        return
    if action == "all" or target == "all":
        follow_ids = [v.follow.id for v in await app.services.follow_views(user.id)]
    else:
        follow_ids = [int_arg(target)]
    if not follow_ids:
        await reply(update, "Nothing to stop.")
        return
    if action in ("f", "all"):
        if action == "f":
            await app.services.own_follow(user.id, follow_ids[0])  # refuse someone else's follow before asking
        which = "all your follows" if action == "all" else f"follow #{follow_ids[0]}"
        key = "all" if action == "all" else str(follow_ids[0])
        await reply(
            update,
            f"Stop {which}? The master's trades will no longer be copied.\n"
            "What about the positions the copier opened for you?",
            reply_markup=keyboard(
                [("Keep positions", f"st:k:{key}"), ("Close positions", f"st:c:{key}")],
                [("Don't stop", "st:x:-")],
            ),
        )
        return
    if action not in ("k", "c"):
        raise UserError(STALE_BUTTON)
    for follow_id in follow_ids:
        follow, outcomes = await stop_follow(app.services, app.positions, user.id, follow_id, close_positions=action == "c")
        text = f"⏹ Follow #{follow.id} stopped."
        if action == "c":
            text += "\n" + format_close_outcomes(outcomes)
        else:
            text += " Copied positions were kept open; manage them on your exchange."
        await reply(update, text)


def status_handlers() -> list[Any]:
    return [
        CommandHandler("status", status),
        CommandHandler("history", history),
        CallbackQueryHandler(history_button, pattern=r"^hi:"),
        CommandHandler("pause", pause),
        CommandHandler("resume", resume),
        CommandHandler("stop", stop),
        CallbackQueryHandler(pause_resume_button, pattern=r"^(pz|rs):"),
        CallbackQueryHandler(stop_button, pattern=r"^st:"),
    ]
