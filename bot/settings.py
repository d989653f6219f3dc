"""/settings: every setting of a follow, changed with buttons wherever the choice is finite
(on/off, sizing mode, slippage action, entry sides, margin mode) or a typed value (numbers,
symbol lists). Validated by the core (a bad value is answered and nothing changes); applied from
the master's next fill.

The settings are grouped so that no keyboard carries more than eight buttons: a first screen
with what followers change most (sizing, reverse, take-profit, stop-loss, pause / resume) and
one tap to each sub-screen (risk limits, which trades are copied and how, the venue's own
settings — Angel One's only on an Angel One follow), each with a Back button. The whole dialogue
is one message: each press, and each typed value, edits it in place."""

from __future__ import annotations

from dataclasses import dataclass
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
    show,
    stored_id,
    user_data,
)
from bot.follow import CODE_OF_MODE, MODE_CODES
from bot.formatting import (
    SIZING_HELP,
    SIZING_TITLES,
    applies,
    at_most,
    changed_settings,
    format_follow_settings,
)
from bot.keyboards import Button, column, keyboard
from core.errors import UserError
from core.follow_settings import FOLLOW_SETTINGS, Choice, FollowSetting, SizingPicker, Toggle, Typed
from core.model import FollowStatus, SizingMode

VALUE = 0
_KEY = "settings_edit"
SAVED = "Saved; applies from the master's next trade."

#: the settings /settings edits, by callback code: (field, widget)
TYPED = {s.widget.code: (s.name, s.widget) for s in FOLLOW_SETTINGS if isinstance(s.widget, Typed)}
TOGGLES = {s.widget.code: (s.name, s.widget) for s in FOLLOW_SETTINGS if isinstance(s.widget, Toggle)}
CHOICES = {s.widget.code: (s.name, s.widget) for s in FOLLOW_SETTINGS if isinstance(s.widget, Choice)}


@dataclass(frozen=True, slots=True)
class Screen:
    """One screen of /settings: the settings it shows and edits (``FollowSetting`` names)."""

    code: str  # in the callback data: se:g:<follow>:<code>
    button: str  # on the first screen, and in the screen's title
    settings: frozenset[str]


#: what a follower changes most (the seeds' copiers expose a coefficient, reverse and TP / SL first)
MAIN = Screen(
    "h", "⚙️ Settings", frozenset({"sizing_mode", "sizing_value", "reverse", "take_profit_pct", "stop_loss_pct"})
)
SUBSCREENS = (
    Screen(
        "r",
        "🚦 Risk",
        frozenset(
            {
                "max_position_notional",
                "max_total_notional",
                "daily_loss_limit",
                "close_on_daily_loss",
                "slippage_pct",
                "slippage_action",
                "auto_sync",
            }
        ),
    ),
    Screen(
        "o",
        "📋 Orders",
        frozenset(
            {"entry_sides", "allowed_symbols", "blocked_symbols", "dry_run", "max_resting_minutes", "confirm_seconds"}
        ),
    ),
    Screen(
        "v",
        "🏦 Venue",
        frozenset(
            {
                "margin_mode",
                "oversize_action",
                "price_protection_pct",
                "product",
                "remainder_action",
                "reprice_attempts",
                "closed_market_action",
            }
        ),
    ),
)
SCREENS = {screen.code: screen for screen in (MAIN, *SUBSCREENS)}
SCREEN_OF = {name: screen for screen in SCREENS.values() for name in screen.settings}


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


def _back(follow: Any, screen: Screen) -> Button:
    return ("◀ Back", f"se:f:{follow.id}" if screen is MAIN else f"se:g:{follow.id}:{screen.code}")


def screen_keyboard(follow: Any, venue: str, screen: Screen) -> Any:
    """The buttons of ``screen`` for a follow on ``venue``: its settings in the rows their widgets
    name; on the first screen pause / resume and the sub-screens, on a sub-screen Back."""
    rows: dict[int, list[Button]] = {}
    for setting in FOLLOW_SETTINGS:
        if setting.widget is not None and setting.name in screen.settings and applies(setting.name, venue):
            rows.setdefault(setting.widget.row, []).append(_button(setting, follow))
    groups = [rows[row] for row in sorted(rows)]
    if screen is MAIN:
        if follow.status is FollowStatus.PAUSED:
            groups.append([("▶️ Resume copying", f"se:p:{follow.id}")])
        else:
            groups.append([("⏸ Pause copying", f"se:p:{follow.id}")])
        groups.append([(sub.button, f"se:g:{follow.id}:{sub.code}") for sub in SUBSCREENS])
    else:
        groups.append([_back(follow, MAIN)])
    return keyboard(*groups)


def screen_text(follow: Any, master_name: str, account_label: str, venue: str, screen: Screen) -> str:
    """A screen's settings as summary lines; the first screen also lists what differs from the
    defaults on the others, so nothing changed is out of sight."""
    text = format_follow_settings(follow, master_name, account_label, names=screen.settings, venue=venue)
    if screen is not MAIN:
        return f"{screen.button}\n{text}"
    elsewhere = at_most(changed_settings(follow, venue, frozenset(SCREEN_OF) - MAIN.settings))
    if elsewhere:
        text += "\nAlso changed:\n" + "\n".join(f"• {line}" for line in elsewhere)
    return text


async def _show(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    user: BotUser,
    follow_id: int,
    screen: Screen = MAIN,
    note: str = "",
    message_id: int | None = None,
    *,
    edit: bool = True,
) -> None:
    services = get_app(context).services
    view = await services.own_follow_view(user.id, follow_id)
    if view.follow.status is FollowStatus.STOPPED:
        raise UserError("this follow is stopped; follow the master again to copy it")
    venue = (await services.own_account(user.id, view.follow.credential_id)).venue if view.follow.credential_id else ""
    text = (note + "\n\n" if note else "") + screen_text(
        view.follow, view.master_name, view.account_label, venue, screen
    )
    await show(update, text, message_id=message_id, edit=edit, reply_markup=screen_keyboard(view.follow, venue, screen))


def _dialogue_message(update: Update) -> int | None:
    """The id of the message a pressed button is on: the dialogue's message, edited after a typed value."""
    query = update.callback_query
    return query.message.message_id if query is not None and query.message is not None else None


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
    if action in ("f", "n", "m", "p"):
        _, follow_id = callback_args(update, 2)
        fid = int_arg(follow_id)
        if action in ("f", "n"):  # "n": opened from another message ("All settings"), which stays
            await _show(update, context, user, fid, edit=action == "f")
            return ConversationHandler.END
        follow = await services.own_follow(user.id, fid)
        if action == "p":
            paused = follow.status is FollowStatus.PAUSED
            await services.set_status(user.id, fid, FollowStatus.ACTIVE if paused else FollowStatus.PAUSED)
            note = (
                "▶️ Resumed: copying from the master's next trade."
                if paused
                else "⏸ Paused: the master's trades are not copied until you resume. Copied positions stay open."
            )
            await _show(update, context, user, fid, MAIN, note)
            return ConversationHandler.END
        lines = [f"Sizing now: {SIZING_TITLES[follow.sizing_mode]} {follow.sizing_value}. Choose the mode:"]
        lines += [f"• {SIZING_TITLES[m]}: {SIZING_HELP[m]}" for m in SizingMode]
        await show(
            update,
            "\n".join(lines),
            reply_markup=column(
                [(SIZING_TITLES[m], f"se:s:{fid}:{CODE_OF_MODE[m]}") for m in SizingMode], [_back(follow, MAIN)]
            ),
        )
        return ConversationHandler.END
    if action == "v":  # a choice was picked: se:v:<follow>:<setting>:<value>
        _, follow_id, code, value = callback_args(update, 4)
        fid = int_arg(follow_id)
        await services.own_follow(user.id, fid)
        if code not in CHOICES or CHOICES[code][1].option(value) is None:
            raise UserError(STALE_BUTTON)
        await services.update_follow(user.id, fid, {CHOICES[code][0]: value})
        await _show(update, context, user, fid, SCREEN_OF[CHOICES[code][0]], SAVED)
        return ConversationHandler.END
    _, follow_id, code = callback_args(update, 3)
    fid = int_arg(follow_id)
    follow = await services.own_follow(user.id, fid)  # ownership before anything else
    if action == "g" and code in SCREENS:
        await _show(update, context, user, fid, SCREENS[code])
        return ConversationHandler.END
    if action == "t" and code in TOGGLES:
        field = TOGGLES[code][0]
        await services.update_follow(user.id, fid, {field: "off" if getattr(follow, field) else "on"})
        await _show(update, context, user, fid, SCREEN_OF[field], SAVED)
        return ConversationHandler.END
    if action == "o" and code in CHOICES:
        field, choice = CHOICES[code]
        current = getattr(follow, field)
        await show(
            update,
            choice.question,
            reply_markup=column(
                [
                    (("• " if option.value == current else "") + option.button, f"se:v:{fid}:{code}:{option.code}")
                    for option in choice.options
                ],
                [_back(follow, SCREEN_OF[field])],
            ),
        )
        return ConversationHandler.END
    if action == "s" and code in MODE_CODES:
        mode = MODE_CODES[code]
        await show(
            update,
            f"{SIZING_TITLES[mode]}: {SIZING_HELP[mode]}.\nSend the value (a number), or /cancel.",
            reply_markup=keyboard([_back(follow, MAIN)]),
        )
        user_data(context)[_KEY] = {
            "follow_id": fid,
            "field": "sizing",
            "mode": mode.value,
            "message_id": _dialogue_message(update),
        }
        return VALUE
    if action == "e" and code in TYPED:
        field, typed = TYPED[code]
        await show(
            update,
            typed.prompt + " Or /cancel.",
            reply_markup=keyboard([("Clear (off)", f"se:c:{fid}:{code}"), _back(follow, SCREEN_OF[field])]),
        )
        user_data(context)[_KEY] = {"follow_id": fid, "field": field, "message_id": _dialogue_message(update)}
        return VALUE
    if action == "c" and code in TYPED:
        field = TYPED[code][0]
        await services.update_follow(user.id, fid, {field: "none"})
        await _show(update, context, user, fid, SCREEN_OF[field], "Cleared; applies from the master's next trade.")
        return ConversationHandler.END
    raise UserError(STALE_BUTTON)


@handler()
async def typed_value(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> int | None:
    edit = user_data(context).get(_KEY)
    if not edit:
        await reply(update, "Choose a setting with the buttons first (/settings).")
        return ConversationHandler.END
    text = message_text(update)
    sizing = edit["field"] == "sizing"
    changes = {"sizing_mode": edit["mode"], "sizing_value": text} if sizing else {edit["field"]: text}
    await get_app(context).services.update_follow(
        user.id, edit["follow_id"], changes
    )  # a UserError keeps the prompt open
    user_data(context).pop(_KEY, None)
    screen = MAIN if sizing else SCREEN_OF[edit["field"]]
    await _show(update, context, user, edit["follow_id"], screen, SAVED, message_id=edit["message_id"])
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
