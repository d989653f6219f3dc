"""/settings: every setting of a follow, changed with buttons wherever the choice is finite
(on/off, sizing mode, slippage action, entry sides, margin mode) or a typed value (numbers,
symbol lists). Validated by the core (a bad value is answered and nothing changes); applied from
the master's next fill."""

from __future__ import annotations

from typing import Any

from telegram import Update
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
    callback_args,
    callback_data,
    get_app,
    handler,
    int_arg,
    message_text,
    reply,
    user_data,
)
from bot.follow import CODE_OF_MODE, MODE_CODES
from bot.formatting import (
    LOSS_LIMIT_EXPLAINED,
    SIZING_HELP,
    SIZING_TITLES,
    TP_SL_EXPLAINED,
    format_follow_settings,
)
from bot.keyboards import column, keyboard
from core.errors import UserError
from core.model import FollowStatus, SizingMode
from core.records import UserRecord

VALUE = 0
_KEY = "settings_edit"

#: typed settings: code -> (field, prompt, clearable)
TYPED: dict[str, tuple[str, str, bool]] = {
    "tp": ("take_profit_pct", f"Send the take-profit in % (e.g. 5). It is set {TP_SL_EXPLAINED}.", True),
    "sl": ("stop_loss_pct", f"Send the stop-loss in % (e.g. 3). It is set {TP_SL_EXPLAINED}.", True),
    "mp": (
        "max_position_notional",
        "Send the maximum position value per symbol in the quote currency (e.g. 1000).",
        True,
    ),
    "mt": (
        "max_total_notional",
        "Send the maximum value of all copied positions together, in the quote currency (e.g. 5000). "
        "An entry that would go over it is not copied.",
        True,
    ),
    "dl": (
        "daily_loss_limit",
        f"Send the daily loss limit in the quote currency (e.g. 200): {LOSS_LIMIT_EXPLAINED}.",
        True,
    ),
    "sp": (
        "slippage_pct",
        "Send the slippage limit in % (e.g. 0.5, at most 50): how far your exchange's price may be from the "
        "master's fill before a market copy is skipped or sent as a limit order (see “Slippage action”).",
        True,
    ),
    "al": (
        "allowed_symbols",
        "Send the symbols to copy, separated by spaces or commas (e.g. BTC ETH). Only these will be copied.",
        True,
    ),
    "bl": ("blocked_symbols", "Send the symbols never to copy, separated by spaces or commas (e.g. DOGE).", True),
}
TOGGLES = {"rv": "reverse", "dr": "dry_run", "cl": "close_on_daily_loss", "as": "auto_sync"}
#: settings with a few choices: code -> (field, question, {value code: (stored value, button text)})
CHOICES: dict[str, tuple[str, str, dict[str, tuple[str, str]]]] = {
    "sa": (
        "slippage_action",
        "When the price moved past your slippage limit:",
        {
            "skip": ("skip", "Skip the copy"),
            "limit": ("limit", "Send a limit order at the limit (IOC)"),
        },
    ),
    "es": (
        "entry_sides",
        "Which of the master's entries should be copied? (Exits are always copied.)",
        {
            "both": ("both", "Long and short"),
            "long": ("long", "Long only"),
            "short": ("short", "Short only"),
        },
    ),
    "mm": (
        "margin_mode",
        "Margin mode of copied futures orders:",
        {
            "cross": ("cross", "Cross"),
            "isolated": ("isolated", "Isolated"),
            "none": ("none", "Exchange default"),
        },
    ),
}


def settings_keyboard(follow) -> Any:
    fid = follow.id
    on = {True: "on", False: "off"}
    return keyboard(
        [("📏 Sizing", f"se:m:{fid}"), (f"🔁 Reverse: {on[follow.reverse]}", f"se:t:{fid}:rv")],
        [("🎯 Take-profit", f"se:e:{fid}:tp"), ("🛑 Stop-loss", f"se:e:{fid}:sl")],
        [
            ("📉 Daily loss limit", f"se:e:{fid}:dl"),
            (f"🔒 Close on loss limit: {on[follow.close_on_daily_loss]}", f"se:t:{fid}:cl"),
        ],
        [("📦 Max position", f"se:e:{fid}:mp"), ("🧮 Max total position", f"se:e:{fid}:mt")],
        [("🐢 Slippage limit", f"se:e:{fid}:sp"), (f"Slippage action: {follow.slippage_action}", f"se:o:{fid}:sa")],
        [
            (f"↕ Entries: {follow.entry_sides}", f"se:o:{fid}:es"),
            (f"⚙ Margin: {follow.margin_mode or 'default'}", f"se:o:{fid}:mm"),
        ],
        [("✅ Allow list", f"se:e:{fid}:al"), ("🚫 Block list", f"se:e:{fid}:bl")],
        [
            (f"🧪 Dry run: {on[follow.dry_run]}", f"se:t:{fid}:dr"),
            (f"⚖️ Auto-sync: {on[follow.auto_sync]}", f"se:t:{fid}:as"),
        ],
    )


async def _show(
    update: Update, context: ContextTypes.DEFAULT_TYPE, user: UserRecord, follow_id: int, note: str = ""
) -> None:
    view = await get_app(context).services.own_follow_view(user.id, follow_id)
    if view.follow.status is FollowStatus.STOPPED:
        raise UserError("this follow is stopped; follow the master again to copy it")
    text = (note + "\n\n" if note else "") + format_follow_settings(view.follow, view.master_name, view.account_label)
    await reply(update, text, reply_markup=settings_keyboard(view.follow))


@handler()
async def settings(update: Update, context: ContextTypes.DEFAULT_TYPE, user: UserRecord) -> int:
    user_data(context).pop(_KEY, None)
    views = await get_app(context).services.follow_views(user.id)
    if not views:
        await reply(update, "You are not following anyone yet. Start with /follow.")
    elif len(views) == 1:
        await _show(update, context, user, views[0].follow.id)
    else:
        await reply(
            update,
            "Which follow?",
            reply_markup=column(
                [(f"#{v.follow.id} {v.master_name} → {v.account_label}", f"se:f:{v.follow.id}") for v in views]
            ),
        )
    return ConversationHandler.END


@handler()
async def settings_button(update: Update, context: ContextTypes.DEFAULT_TYPE, user: UserRecord) -> int | None:
    user_data(context).pop(_KEY, None)
    data = callback_data(update)
    services = get_app(context).services
    action = data.split(":")[1] if data.count(":") >= 2 else ""
    if action in ("f", "m"):
        _, follow_id = callback_args(update, 2)
        fid = int_arg(follow_id)
        if action == "f":
            await _show(update, context, user, fid)
            return ConversationHandler.END
        follow = await services.own_follow(user.id, fid)
        lines = [f"Sizing now: {SIZING_TITLES[follow.sizing_mode]} {follow.sizing_value}. Choose the mode:"]
        lines += [f"• {SIZING_TITLES[m]}: {SIZING_HELP[m]}" for m in SizingMode]
        await reply(
            update,
            "\n".join(lines),
            reply_markup=column([(SIZING_TITLES[m], f"se:s:{fid}:{CODE_OF_MODE[m]}") for m in SizingMode]),
        )
        return ConversationHandler.END
    if action == "v":  # a choice was picked: se:v:<follow>:<setting>:<value>
        _, follow_id, code, value = callback_args(update, 4)
        fid = int_arg(follow_id)
        await services.own_follow(user.id, fid)
        if code not in CHOICES or value not in CHOICES[code][2]:
            raise UserError(STALE_BUTTON)
        field, _, options = CHOICES[code]
        await services.update_follow(user.id, fid, {field: options[value][0]})
        await _show(update, context, user, fid, "Saved; applies from the master's next trade.")
        return ConversationHandler.END
    _, follow_id, code = callback_args(update, 3)
    fid = int_arg(follow_id)
    follow = await services.own_follow(user.id, fid)  # ownership before anything else
    if action == "t" and code in TOGGLES:
        field = TOGGLES[code]
        await services.update_follow(user.id, fid, {field: "off" if getattr(follow, field) else "on"})
        await _show(update, context, user, fid, "Saved; applies from the master's next trade.")
        return ConversationHandler.END
    if action == "o" and code in CHOICES:
        field, question, options = CHOICES[code]
        current = getattr(follow, field) or "none"
        await reply(
            update,
            question,
            reply_markup=column(
                [
                    (("• " if value == current else "") + text, f"se:v:{fid}:{code}:{value}")
                    for value, (_, text) in options.items()
                ]
            ),
        )
        return ConversationHandler.END
    if action == "s" and code in MODE_CODES:
        mode = MODE_CODES[code]
        user_data(context)[_KEY] = {"follow_id": fid, "field": "sizing", "mode": mode.value}
        await reply(update, f"{SIZING_TITLES[mode]}: {SIZING_HELP[mode]}.\nSend the value (a number), or /cancel.")
        return VALUE
    if action == "e" and code in TYPED:
        field, prompt, clearable = TYPED[code]
        user_data(context)[_KEY] = {"follow_id": fid, "field": field}
        await reply(
            update,
            prompt + " Or /cancel.",
            reply_markup=keyboard([("Clear (off)", f"se:c:{fid}:{code}")]) if clearable else None,
        )
        return VALUE
    if action == "c" and code in TYPED:
        await services.update_follow(user.id, fid, {TYPED[code][0]: "none"})
        await _show(update, context, user, fid, "Cleared; applies from the master's next trade.")
        return ConversationHandler.END
    raise UserError(STALE_BUTTON)


@handler()
async def typed_value(update: Update, context: ContextTypes.DEFAULT_TYPE, user: UserRecord) -> int | None:
    edit = user_data(context).get(_KEY)
    if not edit:
        await reply(update, "Choose a setting with the buttons first (/settings).")
        return ConversationHandler.END
    text = message_text(update)
    changes = (
        {"sizing_mode": edit["mode"], "sizing_value": text} if edit["field"] == "sizing" else {edit["field"]: text}
    )
    await get_app(context).services.update_follow(
        user.id, edit["follow_id"], changes
    )  # a UserError keeps the prompt open
    user_data(context).pop(_KEY, None)
    await _show(update, context, user, edit["follow_id"], "Saved; applies from the master's next trade.")
    return ConversationHandler.END


async def cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    user_data(context).pop(_KEY, None)
    await reply(update, "Cancelled; nothing was changed.")
    return ConversationHandler.END


def settings_conversation() -> ConversationHandler:
    return ConversationHandler(
        entry_points=[CommandHandler("settings", settings), CallbackQueryHandler(settings_button, pattern=r"^se:")],
        states={VALUE: [MessageHandler(filters.TEXT & ~filters.COMMAND, typed_value)]},
        fallbacks=[CommandHandler("cancel", cancel), CallbackQueryHandler(settings_button, pattern=r"^se:")],
        allow_reentry=True,
        conversation_timeout=600,
        name="settings",
    )
