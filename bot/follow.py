"""/masters (ranked by any statistic, paginated; a master's page with every statistic, its
equity-curve chart and a Follow button) and /follow.

Following is one confirmation: a master (and an account, when several could copy it) leads to
"Follow with recommended settings" (``RECOMMENDED_SETTINGS``), a stateless button; "Customize"
opens the dialogue (sizing mode → value → take-profit → stop-loss → the master's open positions:
copy now or only new trades → summary → Confirm). A user without an exchange key is offered a
funded paper account in one tap; the deep link ``/start follow-<master id>`` lands on the offer."""

from __future__ import annotations

import logging
from typing import Any

from telegram import InlineKeyboardMarkup, Update
from telegram.constants import ChatAction
from telegram.error import TelegramError
from telegram.ext import (
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    filters,
)

from bot.auth import (
    STALE_BUTTON,
    BotUser,
    callback_args,
    callback_data,
    cancel_fallbacks,
    chat_of,
    get_app,
    handler,
    int_arg,
    is_admin,
    message_text,
    reply,
    sender_id,
    show,
    stored_id,
    user_data,
    working,
)
from bot.formatting import (
    RANK_TITLES,
    SIZING_HELP,
    SIZING_TITLES,
    format_follow_brief,
    format_master_line,
    format_master_positions,
    format_master_statistics,
    format_open_outcomes,
    format_opening_plan,
    split_message,
)
from bot.keyboards import button, column, keyboard, pager, rows
from core.errors import UserError, VaultError, VenueError
from core.follow_settings import RECOMMENDED_SETTINGS, TP_SL_EXPLAINED, validate_follow_changes
from core.model import MasterStatus, SizingMode, Skip
from core.reports.masters import RANK_KEYS
from core.validation import parse_sizing
from core.venues.paper.constants import DEFAULT_BALANCE

log = logging.getLogger(__name__)

PAGE_SIZE = 8
DEFAULT_SORT = "followers"
MODE_CODES = {
    "c": SizingMode.COEFFICIENT,
    "e": SizingMode.EQUITY_RATIO,
    "n": SizingMode.FIXED_NOTIONAL,
    "q": SizingMode.FIXED_QUANTITY,
}
CODE_OF_MODE = {mode: code for code, mode in MODE_CODES.items()}

VALUE, TAKE_PROFIT, STOP_LOSS, OPEN_POSITIONS, CONFIRM = range(5)
_KEY = "follow"


# -- /masters ---------------------------------------------------------------------------------


def _masters_markup(chunk: list[Any], sort: str, page: int, pages: int) -> InlineKeyboardMarkup:
    markup = rows([(s.name, f"ms:d:{s.master_id}:{sort}") for s in chunk])
    nav = pager(f"ms:l:{sort}", page, pages)
    if nav:
        markup.append([button(text, data) for text, data in nav])
    sorts = [(("• " if key == sort else "") + RANK_TITLES[key], f"ms:l:{key}:0") for key in RANK_KEYS]
    return InlineKeyboardMarkup(markup + rows(sorts, per_row=3))


async def _masters_page(update: Update, context: ContextTypes.DEFAULT_TYPE, sort: str, page: int) -> None:
    if sort not in RANK_KEYS:
        raise UserError(STALE_BUTTON)
    admin = is_admin(context, sender_id(update))
    ranked = await get_app(context).services.ranked_masters(sort, include_hidden=admin)
    if not ranked:
        await reply(update, "No masters are listed yet." + (" Add one with /addmaster." if admin else ""))
        return
    pages = (len(ranked) + PAGE_SIZE - 1) // PAGE_SIZE
    page = min(page, pages - 1)
    chunk = ranked[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
    lines = [f"Masters by {RANK_TITLES[sort]} (page {page + 1}/{pages}):"]
    lines += [format_master_line(page * PAGE_SIZE + i + 1, m, sort) for i, m in enumerate(chunk)]
    lines.append(
        "\nPnL and drawdown are the master's own, gross of fees; — means not known yet. "
        "Tap a master for every statistic and the chart, or a button below to sort differently."
    )
    await show(update, split_message("\n".join(lines))[0], reply_markup=_masters_markup(chunk, sort, page, pages))


@handler()
async def masters(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> None:
    await _masters_page(update, context, DEFAULT_SORT, 0)


async def _master_detail(update: Update, context: ContextTypes.DEFAULT_TYPE, master_id: int, sort: str) -> None:
    admin = is_admin(context, sender_id(update))
    services = get_app(context).services
    await working(update, ChatAction.UPLOAD_PHOTO)  # the statistics and the chart take a moment
    stats = await services.master_statistics(master_id, include_hidden=admin)
    try:
        chart: bytes | None = await services.master_chart(master_id, include_hidden=admin)
    except Exception:  # a chart that cannot be drawn never hides the statistics
        log.exception("chart of master %s failed", master_id)
        chart = None
    if chart is not None:
        try:
            await chat_of(update).send_photo(
                chart, caption=f"📈 {stats.name}: equity (or realized PnL) over the last 90 days"
            )
        except TelegramError as exc:  # nor does a chart that cannot be uploaded
            log.warning("chart of master %s not delivered: %s", master_id, exc)
    buttons = [[("➕ Follow", f"fw:m:{stats.master_id}"), ("◀ Back", f"ms:l:{sort}:0")]]
    if admin:
        visibility = (
            ("👁 Show", f"am:a:{stats.master_id}")
            if stats.status is MasterStatus.HIDDEN
            else ("🙈 Hide", f"am:h:{stats.master_id}")
        )
        buttons.append([visibility, ("🗄 Retire", f"am:r:{stats.master_id}")])
    await reply(update, split_message(format_master_statistics(stats))[0], reply_markup=keyboard(*buttons))


@handler()
async def masters_button(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> None:
    data = callback_data(update)
    if data.startswith("ms:l:"):
        _, sort, page = callback_args(update, 3)
        await _masters_page(update, context, sort, int_arg(page))
        return
    action, master_id, sort = callback_args(update, 3)
    if action != "d" or sort not in RANK_KEYS:
        raise UserError(STALE_BUTTON)
    await _master_detail(update, context, int_arg(master_id), sort)


# -- /follow ----------------------------------------------------------------------------------


def _state(context: ContextTypes.DEFAULT_TYPE) -> dict[str, Any]:
    state = user_data(context).get(_KEY)
    if state is None:
        raise UserError("This dialogue has expired. Start again with /follow.")
    return state


def paper_button(master_id: int | None = None) -> tuple[str, str]:
    """The "Try with a paper account" button: a funded paper account in one tap (then the offer to follow
    ``master_id``, or the list of masters)."""
    return ("🧪 Try with a paper account", f"fq:p:{master_id or 0}")


def connect_button(master_id: int | None = None) -> tuple[str, str]:
    """The "Connect my exchange" button: /connect (bot/keys.py), then the offer to follow
    ``master_id``, or the list of masters."""
    return ("🔑 Connect my exchange", f"cn:go:{master_id or 0}")


async def offer_follow(
    update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser, master_id: int, *, edit: bool = True
) -> None:
    """What following ``master_id`` takes from here: a paper account or /connect without a key,
    the account to use when several could, else the recommended settings to confirm — in place
    of the pressed button's message unless ``edit`` is False."""
    services = get_app(context).services
    master = await services.master(master_id)
    accounts = await services.accounts_of(user.id)
    if not accounts:
        await show(
            update,
            f"To copy {master.name} you need an exchange account. Try it first with simulated money, "
            "or connect your own exchange.",
            reply_markup=keyboard([paper_button(master.id)], [connect_button(master.id)]),
            edit=edit,
        )
        return
    following = {
        f.follow.credential_id for f in await services.follow_views(user.id) if f.follow.master_id == master.id
    }
    free = [a for a in accounts if a.id not in following and a.id != master.credential_id]
    if not free:
        await show(
            update,
            f"You are already following {master.name} with every connected account (error 80005). "
            "Change it with /settings, or /connect another account.",
            edit=edit,
        )
        return
    if len(free) > 1:
        await show(
            update,
            f"Copy {master.name} with which account?",
            reply_markup=column([(f"{a.label} ({a.venue})", f"fq:a:{master.id}:{a.id}") for a in free]),
            edit=edit,
        )
        return
    await _offer_recommended(update, context, user, master.id, master.name, free[0].id, free[0].label, edit=edit)


async def _offer_recommended(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    user: BotUser,
    master_id: int,
    master_name: str,
    credential_id: str,
    label: str,
    *,
    edit: bool = True,
) -> None:
    services = get_app(context).services
    preview = services.preview_follow(user.id, master_id, credential_id, RECOMMENDED_SETTINGS)
    account = await services.own_account(user.id, credential_id)
    warning = await services.master_account_warning(master_id, credential_id)
    await show(
        update,
        f"Copy {master_name} on {label} with the recommended settings?\n\n"
        + format_follow_brief(preview, master_name, label, account.venue)
        + "\n\nEach trade is sized in proportion to your account; copying starts with the master's next trade. "
        "Change anything later with /settings." + (f"\n\n{warning}" if warning else ""),
        reply_markup=keyboard(
            [("✅ Follow with recommended settings", f"fq:r:{master_id}:{credential_id}")],
            [("⚙️ Customize", f"fw:c:{master_id}:{credential_id}")],
        ),
        edit=edit,
    )


async def _say_following(
    update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser, row: Any, master_name: str, *, offer: bool
) -> None:
    """ "✅ Following" with the follow at a glance and "All settings" one tap away. ``offer``: when
    the master holds positions, the same message offers to copy them now, with the sizes it would
    send — so the first thing a new follower hears is never an exit of a position they lack."""
    services = get_app(context).services
    account = await services.own_account(user.id, row.credential_id)
    follow_id = stored_id(row)
    text = "✅ Following.\n\n" + format_follow_brief(row, master_name, account.label, account.venue)
    buttons: list[list[tuple[str, str]]] = []
    plan: list[Any] = []
    if offer:
        try:
            plan = await services.open_positions_plan(user.id, follow_id)
        except (VenueError, VaultError) as exc:  # the follow stands; only the offer is left out
            log.warning("open positions of follow %s not offered: %s", follow_id, exc)
    if any(not isinstance(order, Skip) for order in plan):
        text += (
            f"\n\n{master_name} holds open positions now. Also copy them now at your sizing?\n"
            + format_opening_plan(plan)
            + "\nOtherwise their exits are not copied (you hold no copy of them)."
        )
        buttons.append([("📥 Copy the open positions now", f"fq:o:{follow_id}")])
    else:
        text += "\n\nYou will get a message for every copied trade."
    buttons.append([("⚙️ All settings", f"se:n:{follow_id}")])
    await show(update, text, reply_markup=keyboard(*buttons))


async def _open_positions(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser, follow_id: int) -> None:
    """Copy the master's open positions for a follow (each order's id is derived from the
    master's position: pressing twice sends once)."""
    services = get_app(context).services
    view = await services.own_follow_view(user.id, follow_id)
    await reply(update, f"Opening {view.master_name}'s current positions on {view.account_label}…")
    try:
        outcomes = await services.open_master_positions(user.id, follow_id)
    except (VenueError, VaultError) as exc:
        await reply(
            update,
            f"❌ The master's open positions were not copied: your exchange could not be used ({exc}). "
            "You follow the master from the next trade.",
        )
        return
    for part in split_message("📥 The master's open positions:\n" + format_open_outcomes(outcomes)):
        await reply(update, part)


@handler()
async def follow_quick(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> None:
    """The stateless buttons: a paper account (``fq:p``), an account picked (``fq:a``), the
    recommended settings confirmed (``fq:r``)."""
    services = get_app(context).services
    parts = callback_data(update).split(":")
    action = parts[1] if len(parts) > 1 else ""
    if action == "p":
        _, master_id = callback_args(update, 2)
        await services.paper_account(user.id)
        await reply(update, f"🧪 Your paper account is ready with {DEFAULT_BALANCE:,} USDT of simulated money.")
        if int_arg(master_id):  # below "ready": the message the button is on stays
            await offer_follow(update, context, user, int_arg(master_id), edit=False)
        elif not await list_masters(update, context):
            await reply(update, "No masters are listed yet.")
        return
    if action == "o":
        _, follow_id = callback_args(update, 2)
        await _open_positions(update, context, user, int_arg(follow_id))
        return
    _, master_id, credential_id = callback_args(update, 3)
    master = await services.master(int_arg(master_id))
    account = await services.own_account(user.id, credential_id)
    if action == "a":
        await _offer_recommended(update, context, user, master.id, master.name, account.id, account.label)
    elif action == "r":
        row = await services.follow(user.id, master.id, account.id, dict(RECOMMENDED_SETTINGS))
        await _say_following(update, context, user, row, master.name, offer=True)
    else:
        raise UserError(STALE_BUTTON)


async def list_masters(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """The masters to follow as buttons (each leads to the offer); False when none is listed."""
    listed = sorted(await get_app(context).services.masters(), key=lambda m: (-m.followers, m.id))
    if not listed:
        return False
    await reply(
        update,
        "Which master do you want to copy?",
        reply_markup=column([(m.name, f"fw:m:{m.id}") for m in listed[:40]]),
    )
    return True


@handler()
async def follow_start(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> int:
    """/follow lists the masters; a master's button (here or on its page) leads to the offer."""
    user_data(context).pop(_KEY, None)
    if update.callback_query is not None:
        _, master_id = callback_args(update, 2)
        await offer_follow(update, context, user, int_arg(master_id))
        return ConversationHandler.END
    if not await get_app(context).services.accounts_of(user.id):
        await reply(
            update,
            "Connect an exchange account first with /connect, then come back to /follow — or try with simulated "
            "money first.",
            reply_markup=keyboard([paper_button()], [connect_button()]),
        )
        return ConversationHandler.END
    if not await list_masters(update, context):
        await reply(update, "No masters are listed yet.")
    return ConversationHandler.END


@handler()
async def follow_customize(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> int | None:
    """The Customize button: every setting of the follow, one question at a time."""
    _, master_id, credential_id = callback_args(update, 3)
    services = get_app(context).services
    master = await services.master(int_arg(master_id))
    account = await services.own_account(user.id, credential_id)
    user_data(context)[_KEY] = {
        "master_id": master.id,
        "master_name": master.name,
        "settings": {},
        "credential_id": account.id,
        "account_label": account.label,
    }
    lines = ["How should your order size be computed?"] + [
        f"• {SIZING_TITLES[m]}: {SIZING_HELP[m]}" for m in SizingMode
    ]
    await show(
        update,
        "\n".join(lines),
        reply_markup=column([(SIZING_TITLES[m], f"fw:s:{CODE_OF_MODE[m]}") for m in SizingMode], [("Cancel", "fw:x")]),
    )
    return VALUE


@handler()
async def follow_pick_mode(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> int | None:
    state = _state(context)
    _, code = callback_args(update, 2)
    if code not in MODE_CODES:
        raise UserError(STALE_BUTTON)
    state["mode"] = MODE_CODES[code]
    await show(update, f"{SIZING_TITLES[state['mode']]}: {SIZING_HELP[state['mode']]}.\nSend the value (a number).")
    return VALUE


@handler()
async def follow_value(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> int | None:
    state = _state(context)
    if "mode" not in state:
        raise UserError("choose a sizing mode with the buttons above first")
    mode, value = parse_sizing(state["mode"], message_text(update))
    state["settings"].update(sizing_mode=mode.value, sizing_value=str(value))
    await reply(
        update,
        "Take-profit: close a copied position when it gains this many percent (e.g. 5). Send a number, or:\n"
        f"(Take-profit and stop-loss are set {TP_SL_EXPLAINED}.)",
        reply_markup=keyboard([("No take-profit", "fw:tp:none")]),
    )
    return TAKE_PROFIT


async def _ask_stop_loss(update: Update) -> int:
    await show(
        update,
        "Stop-loss: close a copied position when it loses this many percent (e.g. 3). Send a number, or:",
        reply_markup=keyboard([("No stop-loss", "fw:sl:none")]),
    )
    return STOP_LOSS


@handler()
async def follow_take_profit(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> int | None:
    state = _state(context)
    text = "none" if update.callback_query else message_text(update)
    validate_follow_changes({"take_profit_pct": text})
    state["settings"]["take_profit_pct"] = text
    return await _ask_stop_loss(update)


@handler()
async def follow_stop_loss(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> int | None:
    state = _state(context)
    text = "none" if update.callback_query else message_text(update)
    validate_follow_changes({"stop_loss_pct": text})
    state["settings"]["stop_loss_pct"] = text
    validate_follow_changes(state["settings"])
    held = await get_app(context).services.master_positions(state["master_id"])
    if not held:
        state["open_now"] = False
        return await _summary(update, context, state, user)
    await show(
        update,
        f"{state['master_name']} holds open positions now: {format_master_positions(held)}.\n"
        "Copy them now at your sizing (market orders on your account as soon as you confirm), "
        "or only copy the master's new trades?",
        reply_markup=keyboard(
            [("📥 Copy the master's open positions now", "fw:op:now")],
            [("Only new trades", "fw:op:new")],
            [("Cancel", "fw:x")],
        ),
    )
    return OPEN_POSITIONS


@handler()
async def follow_open_positions(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> int | None:
    state = _state(context)
    _, choice = callback_args(update, 2)
    if choice not in ("now", "new"):
        raise UserError(STALE_BUTTON)
    state["open_now"] = choice == "now"
    return await _summary(update, context, state, user)


async def _summary(update: Update, context: ContextTypes.DEFAULT_TYPE, state: dict[str, Any], user: BotUser) -> int:
    services = get_app(context).services
    preview = services.preview_follow(user.id, state["master_id"], state["credential_id"], state["settings"])
    opening = (
        "The master's open positions are copied at your sizing as soon as you confirm; then every new trade."
        if state["open_now"]
        else "Copying starts with the master's next trade; positions the master already holds are not copied."
    )
    warning = await services.master_account_warning(state["master_id"], state["credential_id"])
    account = await services.own_account(user.id, state["credential_id"])
    await show(
        update,
        "Please check and confirm:\n\n"
        + format_follow_brief(preview, state["master_name"], state["account_label"], account.venue)
        + "\n\n"
        + opening
        + (f"\n\n{warning}" if warning else ""),
        reply_markup=keyboard([("✅ Confirm", "fw:ok"), ("Cancel", "fw:x")]),
    )
    return CONFIRM


@handler()
async def follow_confirm(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> int | None:
    state = _state(context)
    app = get_app(context)
    row = await app.services.follow(user.id, state["master_id"], state["credential_id"], state["settings"])
    user_data(context).pop(_KEY, None)
    await _say_following(update, context, user, row, state["master_name"], offer=False)  # asked already
    if state.get("open_now"):
        await _open_positions(update, context, user, stored_id(row))
    return ConversationHandler.END


def follow_conversation() -> ConversationHandler:
    text = filters.TEXT & ~filters.COMMAND
    return ConversationHandler(
        entry_points=[
            CommandHandler("follow", follow_start),
            CallbackQueryHandler(follow_start, pattern=r"^fw:m:"),
            CallbackQueryHandler(follow_customize, pattern=r"^fw:c:"),
        ],
        states={
            VALUE: [CallbackQueryHandler(follow_pick_mode, pattern=r"^fw:s:"), MessageHandler(text, follow_value)],
            TAKE_PROFIT: [
                CallbackQueryHandler(follow_take_profit, pattern=r"^fw:tp:none$"),
                MessageHandler(text, follow_take_profit),
            ],
            STOP_LOSS: [
                CallbackQueryHandler(follow_stop_loss, pattern=r"^fw:sl:none$"),
                MessageHandler(text, follow_stop_loss),
            ],
            OPEN_POSITIONS: [CallbackQueryHandler(follow_open_positions, pattern=r"^fw:op:")],
            CONFIRM: [CallbackQueryHandler(follow_confirm, pattern=r"^fw:ok$")],
        },
        fallbacks=cancel_fallbacks(_KEY, "Cancelled; nothing was changed.", r"^fw:x$"),
        allow_reentry=True,
        conversation_timeout=900,
        name="follow",
    )


@handler()
async def copy_offer_answer(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> None:
    """Copy / Skip on an offered copy (manual confirmation); the outcome arrives as the usual
    copy notification, so nothing else is said here."""
    answer, offer_id = callback_args(update, 2)
    if answer not in ("y", "n"):
        raise UserError(STALE_BUTTON)
    await get_app(context).services.answer_copy_offer(user.id, offer_id, copy=answer == "y")


def masters_handlers() -> list[Any]:
    return [
        CommandHandler("masters", masters),
        CallbackQueryHandler(masters_button, pattern=r"^ms:"),
        CallbackQueryHandler(follow_quick, pattern=r"^fq:"),
        CallbackQueryHandler(copy_offer_answer, pattern=r"^cf:"),
    ]
