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
    BotUser,
    callback_args,
    callback_data,
    cancel_fallbacks,
    get_app,
    handler,
    int_arg,
    message_text,
    reply,
    stored_id,
    user_data,
)
from bot.follow import CODE_OF_MODE, MODE_CODES
from bot.formatting import SIZING_HELP, SIZING_TITLES, format_follow_settings
from bot.keyboards import column, keyboard
from core.errors import UserError
from core.follow_settings import FOLLOW_SETTINGS, Choice, FollowSetting, SizingPicker, Toggle, Typed
from core.model import FollowStatus, SizingMode

VALUE = 0
_KEY = "settings_edit"

#: the settings /settings edits, by callback code: (field, widget)
TYPED = {s.widget.code: (s.name, s.widget) for s in FOLLOW_SETTINGS if isinstance(s.widget, Typed)}
TOGGLES = {s.widget.code: (s.name, s.widget) for s in FOLLOW_SETTINGS if isinstance(s.widget, Toggle)}
CHOICES = {s.widget.code: (s.name, s.widget) for s in FOLLOW_SETTINGS if isinstance(s.widget, Choice)}


def _button(setting: FollowSetting, follow: Any) -> tuple[str, str]:
    """One setting's button: its text (with the current value where it shows one) and callback data."""
    widget, fid = setting.widget, follow.id
    if isinstance(widget, SizingPicker):
        return widget.button, f"se:m:{fid}"
    if isinstance(widget, Typed):
        return widget.button, f"se:e:{fid}:{widget.code}"
    value = getattr(follow, setting.name)
    if isinstance(widget, Toggle):
        return f"{widget.button}: {'on' if value else 'off'}", f"se:t:{fid}:{widget.code}"
    assert isinstance(widget, Choice)
    return f"{widget.button}: {value or widget.unset}", f"se:o:{fid}:{widget.code}"


def settings_keyboard(follow) -> Any:
    """Every setting's button, in the keyboard row its widget names."""
    rows: dict[int, list[tuple[str, str]]] = {}
    for setting in FOLLOW_SETTINGS:
        if setting.widget is not None:
            rows.setdefault(setting.widget.row, []).append(_button(setting, follow))
    return keyboard(*(rows[row] for row in sorted(rows)))


async def _show(
    update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser, follow_id: int, note: str = ""
) -> None:
    view = await get_app(context).services.own_follow_view(user.id, follow_id)
    if view.follow.status is FollowStatus.STOPPED:
        raise UserError("this follow is stopped; follow the master again to copy it")
    text = (note + "\n\n" if note else "") + format_follow_settings(view.follow, view.master_name, view.account_label)
    await reply(update, text, reply_markup=settings_keyboard(view.follow))


@handler()
async def settings(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> int:
    user_data(context).pop(_KEY, None)
    views = await get_app(context).services.follow_views(user.id)
    if not views:
        await reply(update, "You are not following anyone yet. Start with /follow.")
    elif len(views) == 1:
        await _show(update, context, user, stored_id(views[0].follow))
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
async def settings_button(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> int | None:
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
        if code not in CHOICES or CHOICES[code][1].option(value) is None:
            raise UserError(STALE_BUTTON)
        await services.update_follow(user.id, fid, {CHOICES[code][0]: value})
        await _show(update, context, user, fid, "Saved; applies from the master's next trade.")
        return ConversationHandler.END
    _, follow_id, code = callback_args(update, 3)
    fid = int_arg(follow_id)
    follow = await services.own_follow(user.id, fid)  # ownership before anything else
    if action == "t" and code in TOGGLES:
        field = TOGGLES[code][0]
        await services.update_follow(user.id, fid, {field: "off" if getattr(follow, field) else "on"})
        await _show(update, context, user, fid, "Saved; applies from the master's next trade.")
        return ConversationHandler.END
    if action == "o" and code in CHOICES:
        field, choice = CHOICES[code]
        current = getattr(follow, field)
        await reply(
            update,
            choice.question,
            reply_markup=column(
                [
                    (("• " if option.value == current else "") + option.button, f"se:v:{fid}:{code}:{option.code}")
                    for option in choice.options
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
        field, typed = TYPED[code]
        user_data(context)[_KEY] = {"follow_id": fid, "field": field}
        await reply(
            update,
            typed.prompt + " Or /cancel.",
            reply_markup=keyboard([("Clear (off)", f"se:c:{fid}:{code}")]),
        )
        return VALUE
    if action == "c" and code in TYPED:
        await services.update_follow(user.id, fid, {TYPED[code][0]: "none"})
        await _show(update, context, user, fid, "Cleared; applies from the master's next trade.")
        return ConversationHandler.END
    raise UserError(STALE_BUTTON)


@handler()
async def typed_value(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> int | None:
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


def settings_conversation() -> ConversationHandler:
    return ConversationHandler(
        entry_points=[CommandHandler("settings", settings), CallbackQueryHandler(settings_button, pattern=r"^se:")],
        states={VALUE: [MessageHandler(filters.TEXT & ~filters.COMMAND, typed_value)]},
        fallbacks=[
            *cancel_fallbacks(_KEY, "Cancelled; nothing was changed."),
            CallbackQueryHandler(settings_button, pattern=r"^se:"),
        ],
        allow_reentry=True,
        conversation_timeout=600,
        name="settings",
    )
