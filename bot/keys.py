"""/connect (a dialogue: venue → each secret, or all of them in one message → label → checked
against the venue → stored sealed → the masters to follow, or straight to the offer of the master
the user came for) and /keys (list, remove). Every message carrying a secret is deleted at once; secrets
live only in this dialogue's ``user_data`` entry and are dropped when it ends, whatever way."""

from __future__ import annotations

import logging
from typing import Any

from telegram import Update
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
    BotUser,
    callback_args,
    cancel_fallbacks,
    get_app,
    handler,
    int_arg,
    message_text,
    reply,
    user_data,
)
from bot.follow import list_masters, offer_follow
from bot.formatting import format_account, format_accounts
from bot.keyboards import column, keyboard
from core.errors import UserError
from core.venues.catalog import FIELD_PROMPTS, VENUES, VenueSpec, venue_spec

log = logging.getLogger(__name__)

VENUE, SECRET, LABEL = range(3)
_KEY = "connect"  # user_data entry of the running dialogue
TIMEOUT_SECONDS = 600


def available_venues(context: ContextTypes.DEFAULT_TYPE) -> list[str]:
    """Venues this deployment can open (paper mode: only the simulated one): the catalog's
    in its order, then any other configured exchange by name."""
    names = get_app(context).services.venue_names
    known = [name for name in VENUES if name in names]
    return known + sorted(n for n in names if n not in VENUES and venue_spec(n) is not None)


def spec_of(venue: str) -> VenueSpec:
    spec = venue_spec(venue)
    if spec is None:
        raise UserError("that exchange is not available in this deployment; start again")
    return spec


async def delete_secret_message(update: Update) -> bool:
    """Delete the user's message at once; say so when Telegram refuses."""
    message = update.effective_message
    if message is None:
        return False
    try:
        await message.delete()
        return True
    except TelegramError:
        log.warning("could not delete a message carrying a secret")
        await reply(update, "⚠️ I could not delete your message — please delete it yourself now.")
        return False


def _forget(context: ContextTypes.DEFAULT_TYPE) -> None:
    user_data(context).pop(_KEY, None)


@handler()
async def connect(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> int | None:
    _forget(context)
    if update.callback_query is not None:  # the button, from /start or a master's offer
        _, master_id = callback_args(update, 2)
        user_data(context)[_KEY] = {"then_follow": int_arg(master_id)}
    venues = available_venues(context)
    buttons = [(spec_of(name).title, f"cn:v:{name}") for name in venues]
    await reply(
        update,
        "Which exchange do you want to connect?\n\nUse an API key that can trade but NOT withdraw. "
        "Messages with your key are deleted from this chat as soon as I read them.",
        reply_markup=column(buttons, [("Cancel", "cn:x")]),
    )
    return VENUE


async def _ask_field(update: Update, state: dict[str, Any]) -> int:
    name = state["pending"][0]
    spec = spec_of(state["venue"])
    if name in spec.optional_fields:
        await reply(
            update,
            f"Send the {FIELD_PROMPTS.get(name, name)}, or skip it.",
            reply_markup=keyboard([("Skip", "cn:skip")]),
        )
    elif len(state["pending"]) > 1 and not state["values"]:
        names = " and ".join(_short(f) for f in state["pending"])
        await reply(
            update,
            f"Send your {FIELD_PROMPTS.get(name, name)} — or {names} in one message, separated by spaces.",
        )
    else:
        await reply(update, f"Send your {FIELD_PROMPTS.get(name, name)}.")
    return SECRET


def _short(field_name: str) -> str:
    return FIELD_PROMPTS.get(field_name, field_name).split(" (")[0]


async def _ask_label(
    update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser, state: dict[str, Any]
) -> int | None:
    taken = {view.label for view in await get_app(context).services.accounts_of(user.id)}
    number = 1
    while f"{state['venue']} {number}" in taken:
        number += 1
    state["default_label"] = f"{state['venue']} {number}"
    if not taken:  # a first account has nothing to be told apart from: the suggestion is its name
        return await _finish(update, context, user, state["default_label"])
    await reply(
        update,
        "Name this account so you can tell it apart (letters, digits, spaces, . @ # -), or use the suggestion.",
        reply_markup=keyboard([(f"Use “{state['default_label']}”", "cn:label")]),
    )
    return LABEL


@handler()
async def choose_venue(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> int | None:
    (action, venue) = callback_args(update, 2)
    if action != "v" or venue not in available_venues(context):
        raise UserError("that exchange is not available in this deployment; choose one of the buttons")
    spec = spec_of(venue)
    then_follow = (user_data(context).get(_KEY) or {}).get("then_follow", 0)
    state = {"venue": venue, "pending": [*spec.fields, *spec.optional_fields], "values": {}, "then_follow": then_follow}
    user_data(context)[_KEY] = state
    await reply(
        update,
        f"{spec.title}: I will ask for {', '.join(FIELD_PROMPTS.get(f, f).split(' (')[0] for f in state['pending'])}.",
    )
    return await _ask_field(update, state)


@handler()
async def receive_secret(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> int | None:
    await delete_secret_message(update)  # first, whatever happens next
    state = user_data(context).get(_KEY)
    if not state or not state.get("pending"):
        await reply(update, "This dialogue has expired. Start again with /connect.")
        return ConversationHandler.END
    parts = message_text(update).split()
    pending = state["pending"]
    # several fields at once: in the order asked, each as strict as when sent alone
    if not parts or len(parts) > len(pending) or any(len(part) > 512 for part in parts):
        await reply(
            update,
            f"That does not look like a {_short(pending[0])} (no spaces, at most 512 characters). Send it again.",
        )
        return SECRET
    got = [pending.pop(0) for _ in parts]
    state["values"].update(zip(got, parts, strict=True))
    await reply(update, f"🔒 Got the {' and '.join(_short(f) for f in got)} (message deleted).")
    if state["pending"]:
        return await _ask_field(update, state)
    return await _ask_label(update, context, user, state)


@handler()
async def skip_field(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> int | None:
    state = user_data(context).get(_KEY)
    if not state or not state.get("pending") or state["pending"][0] not in spec_of(state["venue"]).optional_fields:
        raise UserError("there is nothing to skip right now")
    state["pending"].pop(0)
    if state["pending"]:
        return await _ask_field(update, state)
    return await _ask_label(update, context, user, state)


async def _finish(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser, label: str) -> int | None:
    state = user_data(context).get(_KEY)
    if not state or state.get("pending"):
        await reply(update, "This dialogue has expired. Start again with /connect.")
        return ConversationHandler.END
    app = get_app(context)
    await reply(update, f"Checking the key with {spec_of(state['venue']).title}…")
    try:
        view = await app.services.connect_account(
            user.id, state["venue"], label, state["values"], environment=app.settings.mode.value
        )
    except UserError as exc:
        if "label" in str(exc):  # only the name was wrong: keep the secrets, ask again
            await reply(update, f"⚠️ {exc}")
            return LABEL
        _forget(context)
        await reply(update, f"❌ {exc}\nNothing was stored. Start again with /connect.")
        return ConversationHandler.END
    _forget(context)
    await reply(update, "✅ Connected and stored encrypted:\n" + format_account(view))
    if state.get("then_follow"):
        await offer_follow(update, context, user, state["then_follow"])
    elif not await list_masters(update, context):
        await reply(update, "Next: /follow a master once one is listed.")
    return ConversationHandler.END


@handler()
async def typed_label(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> int | None:
    return await _finish(update, context, user, message_text(update))


@handler()
async def default_label(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> int | None:
    state = user_data(context).get(_KEY) or {}
    return await _finish(update, context, user, state.get("default_label", ""))


async def timed_out(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    _forget(context)
    await reply(update, "⌛ /connect timed out and its answers were forgotten. Start again with /connect when ready.")


def connect_conversation() -> ConversationHandler:
    return ConversationHandler(
        entry_points=[CommandHandler("connect", connect), CallbackQueryHandler(connect, pattern=r"^cn:go:\d+$")],
        states={
            VENUE: [CallbackQueryHandler(choose_venue, pattern=r"^cn:v:")],
            SECRET: [
                MessageHandler(filters.TEXT & ~filters.COMMAND, receive_secret),
                CallbackQueryHandler(skip_field, pattern=r"^cn:skip$"),
            ],
            LABEL: [
                MessageHandler(filters.TEXT & ~filters.COMMAND, typed_label),
                CallbackQueryHandler(default_label, pattern=r"^cn:label$"),
            ],
            ConversationHandler.TIMEOUT: [MessageHandler(filters.ALL, timed_out), CallbackQueryHandler(timed_out)],
        },
        fallbacks=cancel_fallbacks(_KEY, "Cancelled; nothing was stored.", r"^cn:x$"),
        conversation_timeout=TIMEOUT_SECONDS,
        name="connect",
    )


# -- /keys ------------------------------------------------------------------------------------


@handler()
async def keys(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> None:
    views = await get_app(context).services.accounts_of(user.id)
    buttons = [(f"Remove {v.label}", f"ky:rm:{v.id}") for v in views]
    await reply(update, format_accounts(views), reply_markup=column(buttons) if buttons else None)


@handler()
async def remove_key(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> None:
    action, credential_id = callback_args(update, 2)
    services = get_app(context).services
    if action == "rm":
        view = await services.own_account(user.id, credential_id)
        await reply(
            update,
            f"Remove {view.label}? Its encrypted key is deleted from our storage; revoke it on the exchange too.",
            reply_markup=keyboard([("Yes, remove", f"ky:ok:{view.id}"), ("Keep it", "ky:no:-")]),
        )
    elif action == "ok":
        view = await services.remove_account(user.id, credential_id)
        await reply(update, f"🗑 Removed {view.label}.")
    elif action == "no":
        await reply(update, "Kept.")
    else:
        raise UserError("This button is no longer valid. Send the command again.")


def key_handlers() -> list[Any]:
    return [CommandHandler("keys", keys), CallbackQueryHandler(remove_key, pattern=r"^ky:")]
