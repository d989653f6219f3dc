"""/status, /history, /pause, /resume, /stop (keep or close the copied positions) and /sync
(compare the exchange with the copy history, then bring it in line after a confirmation)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler, ContextTypes

from bot.auth import (
    STALE_BUTTON,
    BotUser,
    callback_args,
    callback_data,
    get_app,
    handler,
    int_arg,
    reply,
    show,
    stored_id,
)
from bot.formatting import (
    format_counts,
    format_drift_rows,
    format_history_line,
    format_orders_sent,
    format_positions,
    format_sync_preview,
    split_message,
)
from bot.keyboards import column, keyboard, pager
from core.errors import UserError, VaultError, VenueError
from core.follow_settings import sizing_text
from core.model import FollowStatus

HISTORY_PAGE = 10


@handler()
async def status(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> None:
    services = get_app(context).services
    statuses = await services.follow_statuses(user.id)
    lines = ["📋 Your follows:"] if statuses else ["You are not following anyone. Start with /follow."]
    for item in statuses:
        view, f = item.view, item.view.follow
        reason = f" — {f.status_reason}" if f.status_reason and f.status is not FollowStatus.ACTIVE else ""
        lines.append(f"\n#{f.id} {view.master_name} → {view.account_label}: {f.status.value}{reason}")
        lines.append(
            f"  sizing {sizing_text(f.sizing_mode, f.sizing_value)}"
            + (", reverse" if f.reverse else "")
            + (", dry run" if f.dry_run else "")
        )
        lines.append(format_positions(item.positions))
        if item.drifts:
            lines.append(format_drift_rows(item.drifts))
    lines.append(f"\nToday's copies: {format_counts(await services.copies_today(user.id))}")
    for part in split_message("\n".join(lines)):
        await reply(update, part)


async def _history_page(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser, page: int) -> None:
    services = get_app(context).services
    total = await services.copy_history_count(user.id)
    if total == 0:
        await reply(update, "No copies yet. Every copied trade, skip and failure will be listed here.")
        return
    pages = (total + HISTORY_PAGE - 1) // HISTORY_PAGE
    page = min(max(page, 0), pages - 1)
    orders = await services.copy_history(user.id, limit=HISTORY_PAGE, offset=page * HISTORY_PAGE)
    names = {v.follow.id: v.master_name for v in await services.follow_views(user.id, include_stopped=True)}
    lines = [f"🧾 Copy history (page {page + 1}/{pages}, newest first):"]
    lines += [format_history_line(o, names.get(o.follow_id, f"follow #{o.follow_id}")) for o in orders]
    nav = pager("hi:p", page, pages)
    await show(update, split_message("\n".join(lines))[0], reply_markup=keyboard(nav) if nav else None)


@handler()
async def history(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> None:
    await _history_page(update, context, user, 0)


@handler()
async def history_button(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> None:
    _, page = callback_args(update, 2)
    await _history_page(update, context, user, int_arg(page))


# -- pause / resume / stop ----------------------------------------------------------------------

_VERBS = {"pz": ("pause", FollowStatus.ACTIVE), "rs": ("resume", FollowStatus.PAUSED), "st": ("stop", None)}


async def _choose(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser, prefix: str) -> None:
    verb, wanted = _VERBS[prefix]
    views = [
        v for v in await get_app(context).services.follow_views(user.id) if wanted is None or v.follow.status is wanted
    ]
    if not views:
        await reply(update, f"Nothing to {verb}." + (" Start with /follow." if prefix != "rs" else ""))
        return
    buttons = [
        (f"#{v.follow.id} {v.master_name} → {v.account_label} ({v.follow.status.value})", f"{prefix}:f:{v.follow.id}")
        for v in views
    ]
    extra = [(f"All ({len(views)})", f"{prefix}:all:-")] if len(views) > 1 else []
    await reply(update, f"Which follow do you want to {verb}?", reply_markup=column(buttons, extra))


@handler()
async def pause(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> None:
    await _choose(update, context, user, "pz")


@handler()
async def resume(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> None:
    await _choose(update, context, user, "rs")


@handler()
async def stop(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> None:
    await _choose(update, context, user, "st")


@handler()
async def pause_resume_button(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> None:
    prefix = callback_data(update)[:2]
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
        await reply(
            update,
            f"⏸ Follow #{row.id} paused: the master's trades are not copied until you /resume. Copied "
            "positions stay open.",
        )
    else:
        await reply(update, f"▶️ Follow #{row.id} resumed: copying from the master's next trade.")


@handler()
async def stop_button(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> None:
    action, target = callback_args(update, 2)
    app = get_app(context)
    if action == "x":
        await reply(update, "Nothing was stopped.")
        return
    if action == "all" or target == "all":
        follow_ids = [stored_id(v.follow) for v in await app.services.follow_views(user.id)]
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
        follow = await app.services.own_follow(user.id, follow_id)
        try:
            follow, results = await app.services.stop_follow(user.id, follow_id, close_positions=action == "c")
        except (VenueError, VaultError) as exc:  # stopped, but the exchange could not be used to close
            await reply(
                update,
                f"⏹ Follow #{follow.id} stopped.\n❌ Your copied positions could not be closed: {exc}. "
                "Close them on your exchange.",
            )
            continue
        text = f"⏹ Follow #{follow.id} stopped."
        if action == "c":
            empty = (
                "Dry run was on: nothing real was opened, so nothing was sent."
                if follow.dry_run
                else "There were no copied positions to close."
            )
            text += "\n" + format_orders_sent(results, "close your copied positions", empty=empty)
        else:
            text += " Copied positions were kept open; manage them on your exchange."
        for part in split_message(text):
            await reply(update, part)


# -- /sync ------------------------------------------------------------------------------------

#: how long the drift notice of a check /sync made itself may still be left out (see
#: ``Notifier.drift_shown``); the notifier normally takes it within milliseconds
SYNC_NOTICE_WINDOW = 30.0


def _shown(context: ContextTypes.DEFAULT_TYPE, follow_id: int, drifts: Mapping[str, tuple[Decimal, Decimal]]) -> None:
    """The user sees ``drifts`` in /sync's answer: the notifier leaves out the same notice.
    Called right after ``reconcile`` returns, with no await in between."""
    notifier = context.application.bot_data.get("notifier")
    if notifier is not None and drifts:
        notifier.drift_shown(follow_id, tuple((s, w, h) for s, (w, h) in drifts.items()), SYNC_NOTICE_WINDOW)


async def _syncable(context: ContextTypes.DEFAULT_TYPE, user: BotUser, follow_id: int):
    view = await get_app(context).services.own_follow_view(user.id, follow_id)
    if view.follow.status is FollowStatus.STOPPED:
        raise UserError("this follow is stopped; there is nothing to sync")
    if view.follow.dry_run:
        raise UserError("dry run is on for this follow: no real order was copied, so there is nothing to sync")
    return view


async def _check(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser, follow_id: int) -> None:
    app = get_app(context)
    view = await _syncable(context, user, follow_id)
    title = f"#{view.follow.id} {view.master_name} → {view.account_label}"
    try:
        drifts = await app.services.check_drift(user.id, view.follow.id)
    except (VenueError, VaultError) as exc:
        raise UserError(
            f"your exchange could not be asked for its positions: {exc}; nothing was sent, try again later"
        ) from None
    _shown(context, view.follow.id, drifts)
    if not drifts:
        await reply(update, format_sync_preview(title, drifts))
        return
    if not await app.services.drift_pending(
        user.id, view.follow.id
    ):  # auto-sync has already sent the orders (and cleared the finding)
        await reply(
            update,
            format_sync_preview(title, drifts).split("\n\n")[0]
            + "\n\nAuto-sync is on: the orders to fix it were sent; each result follows as a message.",
        )
        return
    await reply(
        update,
        format_sync_preview(title, drifts),
        reply_markup=keyboard([("🔁 Sync now", f"sy:ok:{view.follow.id}"), ("Leave it", f"sy:x:{view.follow.id}")]),
    )


@handler()
async def sync(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> None:
    views = [v for v in await get_app(context).services.follow_views(user.id) if not v.follow.dry_run]
    if not views:
        await reply(update, "Nothing to sync: you have no follow copying real orders. Start with /follow.")
        return
    if len(views) == 1:
        await _check(update, context, user, stored_id(views[0].follow))
        return
    buttons = [(f"#{v.follow.id} {v.master_name} → {v.account_label}", f"sy:f:{v.follow.id}") for v in views]
    await reply(update, "Which follow should be compared with your exchange?", reply_markup=column(buttons))


@handler()
async def sync_button(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> None:
    action, target = callback_args(update, 2)
    follow_id = int_arg(target)
    if action == "f":
        await _check(update, context, user, follow_id)
        return
    if action == "x":
        await get_app(context).services.own_follow(user.id, follow_id)
        await reply(update, "Nothing was sent. The difference stays listed in /status; /sync when you want to fix it.")
        return
    if action != "ok":
        raise UserError(STALE_BUTTON)
    app = get_app(context)
    await _syncable(context, user, follow_id)
    try:
        results = await app.services.sync(user.id, follow_id)
    except (VenueError, VaultError) as exc:
        raise UserError(f"your exchange could not be reached: {exc}; /sync again later") from None
    text = "🔁 Sync: " + format_orders_sent(
        results,
        "bring your exchange in line",
        empty="nothing was left to send (the difference was already gone).",
    )
    remaining: dict[str, tuple[Decimal, Decimal]] | None
    try:
        remaining = await app.services.check_drift(user.id, follow_id)  # check the outcome with the exchange
    except (VenueError, VaultError):
        remaining = None
    if remaining is not None:
        _shown(context, follow_id, remaining)
    if remaining is None:
        text += "\n\nYour exchange could not be asked again just now; /status shows the next check."
    elif remaining:
        text += (
            "\n\n"
            + format_sync_preview(f"#{follow_id}", remaining).split("\n\n")[0]
            + "\nCheck these on your exchange."
        )
    else:
        text += "\n\n✅ Your exchange now matches your copy history."
    for part in split_message(text):
        await reply(update, part)


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
        CommandHandler("sync", sync),
        CallbackQueryHandler(sync_button, pattern=r"^sy:"),
    ]
