"""/masters (ranked, paginated, detail with a Follow button) and /follow (master → account →
sizing mode → value → take-profit → stop-loss → summary → Confirm)."""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler, ContextTypes, ConversationHandler, MessageHandler, filters

from copytrade.bot.auth import STALE_BUTTON, callback_args, get_app, handler, int_arg, is_admin, reply
from copytrade.bot.formatting import SIZING_HELP, SIZING_TITLES, format_follow_settings, format_master, format_master_line
from copytrade.bot.keyboards import column, keyboard, pager
from copytrade.core.errors import UserError
from copytrade.core.model import SizingMode
from copytrade.core.validation import parse_sizing, validate_follow_changes
from copytrade.storage.models import Follow, MasterStatus, User

PAGE_SIZE = 8
#: ranking options of /masters: code -> (title, sort key). PnL, win rate and drawdown join here
#: once master statistics exist; the sort row is shown only when there is a choice.
SORTS: dict[str, tuple[str, Any]] = {
    "f": ("followers", lambda m: (-m.followers, m.id)),
}
MODE_CODES = {"c": SizingMode.COEFFICIENT, "e": SizingMode.EQUITY_RATIO, "n": SizingMode.FIXED_NOTIONAL, "q": SizingMode.FIXED_QUANTITY}
CODE_OF_MODE = {mode: code for code, mode in MODE_CODES.items()}

ACCOUNT, MODE, VALUE, TAKE_PROFIT, STOP_LOSS, CONFIRM = range(6)
_KEY = "follow"


# -- /masters ---------------------------------------------------------------------------------


async def _masters_page(update: Update, context: ContextTypes.DEFAULT_TYPE, sort: str, page: int) -> None:
    if sort not in SORTS:
        raise UserError(STALE_BUTTON)
    admin = is_admin(context, update.effective_user.id)
    masters = sorted(await get_app(context).services.masters(include_hidden=admin), key=SORTS[sort][1])
    if not masters:
        await reply(update, "No masters are listed yet." + (" Add one with /addmaster." if admin else ""))
        return
    pages = (len(masters) + PAGE_SIZE - 1) // PAGE_SIZE
    page = min(page, pages - 1)
    chunk = masters[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]
    lines = [f"Masters by {SORTS[sort][0]} (page {page + 1}/{pages}):"]
    lines += [format_master_line(page * PAGE_SIZE + i + 1, m) for i, m in enumerate(chunk)]
    lines.append("\nTap a master for details.")
    sort_row = [(("• " if code == sort else "") + title, f"ms:l:{code}:0") for code, (title, _) in SORTS.items()] if len(SORTS) > 1 else []
    await reply(
        update,
        "\n".join(lines),
        reply_markup=column([(m.name, f"ms:d:{m.id}") for m in chunk], pager(f"ms:l:{sort}", page, pages), sort_row),
    )


@handler()
async def masters(update: Update, context: ContextTypes.DEFAULT_TYPE, user: User) -> None:
    await _masters_page(update, context, "f", 0)


@handler()
async def masters_button(update: Update, context: ContextTypes.DEFAULT_TYPE, user: User) -> None:
    data = update.callback_query.data or ""
    if data.startswith("ms:l:"):
        _, sort, page = callback_args(update, 3)
        await _masters_page(update, context, sort, int_arg(page))
        return
    action, master_id = callback_args(update, 2)
    if action != "d":
        raise UserError(STALE_BUTTON)
    admin = is_admin(context, update.effective_user.id)
    master = await get_app(context).services.master(int_arg(master_id), include_hidden=admin)
    buttons = [[("➕ Follow", f"fw:m:{master.id}"), ("◀ Back", "ms:l:f:0")]]
    if admin:
        visibility = ("👁 Show", f"am:a:{master.id}") if master.status is MasterStatus.HIDDEN else ("🙈 Hide", f"am:h:{master.id}")
        buttons.append([visibility, ("🗄 Retire", f"am:r:{master.id}")])
    await reply(update, format_master(master), reply_markup=keyboard(*buttons))


# -- /follow ----------------------------------------------------------------------------------


def _state(context: ContextTypes.DEFAULT_TYPE) -> dict[str, Any]:
    state = context.user_data.get(_KEY)
    if state is None:
        raise UserError("This dialogue has expired. Start again with /follow.")
    return state


@handler()
async def follow_start(update: Update, context: ContextTypes.DEFAULT_TYPE, user: User) -> int | None:
    context.user_data.pop(_KEY, None)
    services = get_app(context).services
    if not await services.accounts_of(user.id):
        await reply(update, "Connect an exchange account first with /connect, then come back to /follow.")
        return ConversationHandler.END
    if update.callback_query is not None:  # "Follow" pressed on a master's detail
        _, master_id = callback_args(update, 2)
        return await _master_chosen(update, context, user, int_arg(master_id))
    listed = sorted(await services.masters(), key=SORTS["f"][1])
    if not listed:
        await reply(update, "No masters are listed yet.")
        return ConversationHandler.END
    await reply(update, "Which master do you want to copy?", reply_markup=column([(m.name, f"fw:m:{m.id}") for m in listed[:40]], [("Cancel", "fw:x")]))
    return ACCOUNT


@handler()
async def follow_pick_master(update: Update, context: ContextTypes.DEFAULT_TYPE, user: User) -> int | None:
    _, master_id = callback_args(update, 2)
    return await _master_chosen(update, context, user, int_arg(master_id))


async def _master_chosen(update: Update, context: ContextTypes.DEFAULT_TYPE, user: User, master_id: int) -> int | None:
    services = get_app(context).services
    master = await services.master(master_id)
    following = {f.follow.credential_id for f in await services.follow_views(user.id) if f.follow.master_id == master.id}
    accounts = [a for a in await services.accounts_of(user.id) if a.id not in following and a.id != master.credential_id]
    if not accounts:
        await reply(update, f"You are already following {master.name} with every connected account (error 80005). "
                            "Change it with /settings, or /connect another account.")
        return ConversationHandler.END
    context.user_data[_KEY] = {"master_id": master.id, "master_name": master.name, "settings": {}}
    await reply(
        update,
        f"Copy {master.name} with which account?",
        reply_markup=column([(f"{a.label} ({a.venue})", f"fw:a:{a.id}") for a in accounts], [("Cancel", "fw:x")]),
    )
    return MODE


@handler()
async def follow_pick_account(update: Update, context: ContextTypes.DEFAULT_TYPE, user: User) -> int | None:
    state = _state(context)
    _, credential_id = callback_args(update, 2)
    account = await get_app(context).services.own_account(user.id, credential_id)
    state["credential_id"], state["account_label"] = account.id, account.label
    lines = ["How should your order size be computed?"] + [f"• {SIZING_TITLES[m]}: {SIZING_HELP[m]}" for m in SizingMode]
    await reply(update, "\n".join(lines), reply_markup=column([(SIZING_TITLES[m], f"fw:s:{CODE_OF_MODE[m]}") for m in SizingMode], [("Cancel", "fw:x")]))
    return VALUE


@handler()
async def follow_pick_mode(update: Update, context: ContextTypes.DEFAULT_TYPE, user: User) -> int | None:
    state = _state(context)
    _, code = callback_args(update, 2)
    if code not in MODE_CODES:
        raise UserError(STALE_BUTTON)
    state["mode"] = MODE_CODES[code]
    await reply(update, f"{SIZING_TITLES[state['mode']]}: {SIZING_HELP[state['mode']]}.\nSend the value (a number).")
    return VALUE


@handler()
async def follow_value(update: Update, context: ContextTypes.DEFAULT_TYPE, user: User) -> int | None:
    state = _state(context)
    if "mode" not in state:
        raise UserError("choose a sizing mode with the buttons above first")
    mode, value = parse_sizing(state["mode"], update.effective_message.text or "")
    state["settings"].update(sizing_mode=mode.value, sizing_value=str(value))
    await reply(
        update,
        "Take-profit: close a copied position when it gains this many percent (e.g. 5). Send a number, or:\n"
        "(Take-profit and stop-loss are saved now and enforced once risk monitoring ships — not active yet.)",
        reply_markup=keyboard([("No take-profit", "fw:tp:none")]),
    )
    return TAKE_PROFIT


async def _ask_stop_loss(update: Update) -> int:
    await reply(update, "Stop-loss: close a copied position when it loses this many percent (e.g. 3). Send a number, or:",
                reply_markup=keyboard([("No stop-loss", "fw:sl:none")]))
    return STOP_LOSS


@handler()
async def follow_take_profit(update: Update, context: ContextTypes.DEFAULT_TYPE, user: User) -> int | None:
    state = _state(context)
    text = "none" if update.callback_query else (update.effective_message.text or "")
    validate_follow_changes({"take_profit_pct": text})
    state["settings"]["take_profit_pct"] = text
    return await _ask_stop_loss(update)


@handler()
async def follow_stop_loss(update: Update, context: ContextTypes.DEFAULT_TYPE, user: User) -> int | None:
    state = _state(context)
    text = "none" if update.callback_query else (update.effective_message.text or "")
    validate_follow_changes({"stop_loss_pct": text})
    state["settings"]["stop_loss_pct"] = text
    validated = validate_follow_changes(state["settings"])
    preview = Follow(user_id=user.id, master_id=state["master_id"], credential_id=state["credential_id"], **validated)
    await reply(
        update,
        "Please check and confirm:\n\n" + format_follow_settings(preview, state["master_name"], state["account_label"])
        + "\n\nCopying starts with the master's next trade; positions the master already holds are not copied.",
        reply_markup=keyboard([("✅ Confirm", "fw:ok"), ("Cancel", "fw:x")]),
    )
    return CONFIRM


@handler()
async def follow_confirm(update: Update, context: ContextTypes.DEFAULT_TYPE, user: User) -> int | None:
    state = _state(context)
    services = get_app(context).services
    row = await services.follow(user.id, state["master_id"], state["credential_id"], state["settings"])
    context.user_data.pop(_KEY, None)
    await reply(update, "✅ Following.\n\n" + format_follow_settings(row, state["master_name"], state["account_label"])
                + "\n\nYou will get a message for every copied trade. Change settings with /settings.")
    return ConversationHandler.END


async def follow_cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    context.user_data.pop(_KEY, None)
    if update.callback_query:
        await update.callback_query.answer()
    await reply(update, "Cancelled; nothing was changed.")
    return ConversationHandler.END


def follow_conversation() -> ConversationHandler:
    text = filters.TEXT & ~filters.COMMAND
    return ConversationHandler(
        entry_points=[CommandHandler("follow", follow_start), CallbackQueryHandler(follow_start, pattern=r"^fw:m:")],
        states={
            ACCOUNT: [CallbackQueryHandler(follow_pick_master, pattern=r"^fw:m:")],
            MODE: [CallbackQueryHandler(follow_pick_account, pattern=r"^fw:a:")],
            VALUE: [CallbackQueryHandler(follow_pick_mode, pattern=r"^fw:s:"), MessageHandler(text, follow_value)],
            TAKE_PROFIT: [CallbackQueryHandler(follow_take_profit, pattern=r"^fw:tp:none$"), MessageHandler(text, follow_take_profit)],
            STOP_LOSS: [CallbackQueryHandler(follow_stop_loss, pattern=r"^fw:sl:none$"), MessageHandler(text, follow_stop_loss)],
            CONFIRM: [CallbackQueryHandler(follow_confirm, pattern=r"^fw:ok$")],
        },
        fallbacks=[CommandHandler("cancel", follow_cancel), CallbackQueryHandler(follow_cancel, pattern=r"^fw:x$")],
        allow_reentry=True,
        conversation_timeout=900,
        name="follow",
    )


def masters_handlers() -> list[Any]:
    return [CommandHandler("masters", masters), CallbackQueryHandler(masters_button, pattern=r"^ms:")]
