"""Admin commands (users in ADMIN_IDS only, checked by ``handler(admin=True)`` on every command
and button): /addmaster, master management from /masters, /broadcast, /stats, /pauseall."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

from telegram import Bot, Update
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError
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
    message_text,
    reply,
    user_data,
)
from bot.formatting import format_admin_stats, format_broadcast_progress, format_stats, split_message
from bot.keyboards import column, keyboard
from bot.keys import available_venues, delete_secret_message, spec_of
from core.errors import UserError
from core.model import MasterStatus
from core.venues.catalog import FIELD_PROMPTS

log = logging.getLogger(__name__)

# -- /addmaster ---------------------------------------------------------------------------------

AM_SECRET, AM_NAME, AM_DESCRIPTION, AM_CONFIRM = range(4)
_AM = "addmaster"


async def _am_ask(update: Update, state: dict[str, Any]) -> int:
    if state["pending"]:
        name = state["pending"][0]
        optional = name in spec_of(state["venue"]).optional_fields
        await reply(
            update,
            f"Send the master account's {FIELD_PROMPTS.get(name, name)}" + (", or skip it." if optional else "."),
            reply_markup=keyboard([("Skip", "ad:skip")]) if optional else None,
        )
        return AM_SECRET
    await reply(update, "Public name of this master (2 to 64 characters), as followers will see it:")
    return AM_NAME


@handler(admin=True)
async def addmaster(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> int:
    user_data(context).pop(_AM, None)
    buttons = [(spec_of(name).title, f"ad:v:{name}") for name in available_venues(context)]
    await reply(
        update,
        "Register a master account. Which venue? A read-only key is enough: the master's trades are only watched.",
        reply_markup=column(buttons, [("Cancel", "ad:x")]),
    )
    return AM_SECRET


@handler(admin=True)
async def am_venue(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> int | None:
    _, venue = callback_args(update, 2)
    if venue not in available_venues(context):
        raise UserError("that venue is not available in this deployment")
    spec = spec_of(venue)
    state = {"venue": venue, "pending": [*spec.fields, *spec.optional_fields], "values": {}}
    user_data(context)[_AM] = state
    return await _am_ask(update, state)


@handler(admin=True)
async def am_secret(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> int | None:
    await delete_secret_message(update)
    state = user_data(context).get(_AM)
    if not state or not state["pending"]:
        await reply(update, "Choose the venue with the buttons first (or /cancel).")
        return None
    value = message_text(update).strip()
    if not value or len(value) > 512 or any(c.isspace() for c in value):
        await reply(update, "That does not look right (no spaces, at most 512 characters). Send it again.")
        return AM_SECRET
    state["values"][state["pending"].pop(0)] = value
    await reply(update, "🔒 Got it (message deleted).")
    return await _am_ask(update, state)


@handler(admin=True)
async def am_skip(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> int | None:
    state = user_data(context).get(_AM)
    if not state or not state["pending"] or state["pending"][0] not in spec_of(state["venue"]).optional_fields:
        raise UserError("there is nothing to skip right now")
    state["pending"].pop(0)
    return await _am_ask(update, state)


@handler(admin=True)
async def am_name(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> int | None:
    state = user_data(context).get(_AM)
    if not state or state["pending"]:
        raise UserError("This dialogue has expired. Start again with /addmaster.")
    name = message_text(update).strip()
    if not 2 <= len(name) <= 64:
        raise UserError("a master's name must be 2 to 64 characters")
    taken = {m.name.lower() for m in await get_app(context).services.masters(include_hidden=True)}
    if name.lower() in taken:
        raise UserError(f"a master named {name!r} already exists; choose another name")
    state["name"] = name
    await reply(
        update,
        "Description for followers (strategy, markets, risk; at most 500 characters):",
        reply_markup=keyboard([("No description", "ad:nodesc")]),
    )
    return AM_DESCRIPTION


async def _am_summary(update: Update, state: dict[str, Any]) -> int:
    await reply(
        update,
        f"Register master “{state['name']}” on "
        f"{spec_of(state['venue']).title}?\n{state['description'] or '(no description)'}\n\n"
        "The key is checked with the venue first, then stored encrypted.",
        reply_markup=keyboard([("✅ Register", "ad:ok"), ("Cancel", "ad:x")]),
    )
    return AM_CONFIRM


@handler(admin=True)
async def am_description(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> int | None:
    state = user_data(context).get(_AM)
    if not state or "name" not in state:
        raise UserError("This dialogue has expired. Start again with /addmaster.")
    text = "" if update.callback_query else message_text(update).strip()
    if len(text) > 500:
        raise UserError("the description may be at most 500 characters")
    state["description"] = text
    return await _am_summary(update, state)


@handler(admin=True)
async def am_confirm(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> int | None:
    state = user_data(context).pop(_AM, None)
    if not state or "description" not in state:
        raise UserError("This dialogue has expired. Start again with /addmaster.")
    app = get_app(context)
    label = "master " + (re.sub(r"[^\w .@#-]", "", state["name"]).strip() or "account")
    await reply(update, f"Checking the key with {spec_of(state['venue']).title}…")
    try:
        key = await app.services.connect_account(
            user.id, state["venue"], label[:64], state["values"], environment=app.settings.mode.value
        )
    except UserError as exc:
        await reply(update, f"❌ {exc}\nNothing was stored. Start again with /addmaster.")
        return ConversationHandler.END
    try:
        master = await app.services.add_master(
            state["name"], state["venue"], owner_id=user.id, credential_id=key.id, description=state["description"]
        )
    except UserError:
        await app.services.remove_account(user.id, key.id)
        raise
    await app.start_listener(master.id)
    await reply(
        update,
        f"✅ Master #{master.id} “{master.name}” registered; its trades are now watched. It is listed in /masters.",
    )
    return ConversationHandler.END


def addmaster_conversation() -> ConversationHandler:
    text = filters.TEXT & ~filters.COMMAND
    return ConversationHandler(
        entry_points=[CommandHandler("addmaster", addmaster)],
        states={
            AM_SECRET: [
                CallbackQueryHandler(am_venue, pattern=r"^ad:v:"),
                CallbackQueryHandler(am_skip, pattern=r"^ad:skip$"),
                MessageHandler(text, am_secret),
            ],
            AM_NAME: [MessageHandler(text, am_name)],
            AM_DESCRIPTION: [
                MessageHandler(text, am_description),
                CallbackQueryHandler(am_description, pattern=r"^ad:nodesc$"),
            ],
            AM_CONFIRM: [CallbackQueryHandler(am_confirm, pattern=r"^ad:ok$")],
        },
        fallbacks=cancel_fallbacks(_AM, "Cancelled; nothing was stored.", r"^ad:x$"),
        allow_reentry=True,
        conversation_timeout=600,
        name="addmaster",
    )


# -- master management (buttons on /masters details) --------------------------------------------


@handler(admin=True)
async def manage_master(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> None:
    action, master_id = callback_args(update, 2)
    services = get_app(context).services
    master = await services.master(int_arg(master_id), include_hidden=True)
    if action == "h":
        await services.set_master_status(master.id, MasterStatus.HIDDEN)
        await reply(update, f"🙈 {master.name} is hidden from /masters; existing follows keep copying it.")
    elif action == "a":
        await services.set_master_status(master.id, MasterStatus.ACTIVE)
        await reply(update, f"👁 {master.name} is listed in /masters again.")
    elif action == "r":
        await reply(
            update,
            f"Retire {master.name}? It is no longer listed and nobody can start following it.",
            reply_markup=keyboard([("Yes, retire", f"am:ry:{master.id}"), ("No", "am:n:0")]),
        )
    elif action == "ry":
        await services.set_master_status(master.id, MasterStatus.RETIRED)
        await reply(update, f"🗄 {master.name} retired.")
    else:
        raise UserError(STALE_BUTTON)


@handler(admin=True)
async def manage_master_no(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> None:
    await reply(update, "Nothing was changed.")


# -- /broadcast ---------------------------------------------------------------------------------

BC_AUDIENCE, BC_TEXT, BC_CONFIRM = range(3)
_BC = "broadcast"
BROADCAST_CONCURRENCY = 30
PROGRESS_EVERY_SECONDS = 2.0


@handler(admin=True)
async def broadcast(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> int:
    user_data(context).pop(_BC, None)
    masters = await get_app(context).services.masters(include_hidden=True)
    buttons = [("Everyone", "bc:a:all")] + [
        (f"Followers of {m.name} ({m.followers})", f"bc:a:{m.id}") for m in masters[:30]
    ]
    await reply(update, "Who should receive the broadcast?", reply_markup=column(buttons, [("Cancel", "bc:x")]))
    return BC_AUDIENCE


@handler(admin=True)
async def bc_audience(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> int | None:
    _, target = callback_args(update, 2)
    if target == "all":
        user_data(context)[_BC] = {"master_id": None, "audience": "everyone"}
    else:
        master = await get_app(context).services.master(int_arg(target), include_hidden=True)
        user_data(context)[_BC] = {"master_id": master.id, "audience": f"followers of {master.name}"}
    await reply(update, "Send the message text (plain text, up to 4096 characters).")
    return BC_TEXT


@handler(admin=True)
async def bc_text(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> int | None:
    state = user_data(context).get(_BC)
    if not state:
        raise UserError("This dialogue has expired. Start again with /broadcast.")
    text = message_text(update)
    if not text.strip() or len(text) > 4096:
        raise UserError("the message must be 1 to 4096 characters")
    recipients = await get_app(context).services.broadcast_recipients(state["master_id"])
    state["text"] = text
    await reply(
        update,
        f"Send this to {state['audience']} ({len(recipients)} user(s))?\n\n{text}"[:4096],
        reply_markup=keyboard([("📣 Send", "bc:ok"), ("Cancel", "bc:x")]),
    )
    return BC_CONFIRM


@handler(admin=True)
async def bc_confirm(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> int | None:
    state = user_data(context).pop(_BC, None)
    if not state or "text" not in state:
        raise UserError("This dialogue has expired. Start again with /broadcast.")
    app = get_app(context)
    recipients = await app.services.broadcast_recipients(state["master_id"])
    progress = await chat_of(update).send_message(format_broadcast_progress(0, len(recipients), 0, 0, 0))
    context.application.create_task(
        run_broadcast(context.bot, app, recipients, state["text"], progress.chat_id, progress.message_id),
        name="broadcast",
    )
    return ConversationHandler.END


async def run_broadcast(
    bot: Bot, app, recipients: list[tuple[int, int]], text: str, chat_id: int, progress_id: int
) -> dict[str, int]:
    """Send to every recipient through the bot's rate limiter (≈30 messages/s, RetryAfter
    honoured), editing the progress message as it goes; a final count is sent at the end."""
    counts = {"delivered": 0, "blocked": 0, "failed": 0}
    slots = asyncio.Semaphore(BROADCAST_CONCURRENCY)
    last_progress = time.monotonic()

    async def send_one(user_id: int, telegram_id: int) -> None:
        nonlocal last_progress
        async with slots:
            try:
                await bot.send_message(telegram_id, text)
                counts["delivered"] += 1
            except Forbidden:  # blocked the bot or deactivated
                counts["blocked"] += 1
                await app.services.set_blocked(user_id, True)
            except (BadRequest, RetryAfter, TelegramError) as exc:
                counts["failed"] += 1
                log.warning("broadcast to user %s failed: %s", user_id, exc)
            done = sum(counts.values())
            if time.monotonic() - last_progress >= PROGRESS_EVERY_SECONDS and done < len(recipients):
                last_progress = time.monotonic()
                try:
                    await bot.edit_message_text(
                        format_broadcast_progress(
                            done, len(recipients), counts["delivered"], counts["blocked"], counts["failed"]
                        ),
                        chat_id=chat_id,
                        message_id=progress_id,
                    )
                except TelegramError:
                    log.debug("progress update failed", exc_info=True)

    try:
        await asyncio.gather(*(send_one(u, t) for u, t in recipients))
    finally:
        final = format_broadcast_progress(len(recipients), len(recipients), **counts, finished=True)
        try:  # the tally once: in the progress message, or as a new one when it cannot be edited
            await bot.edit_message_text(final, chat_id=chat_id, message_id=progress_id)
        except TelegramError:
            log.debug("final progress edit failed", exc_info=True)
            await bot.send_message(chat_id, final)
    log.info("broadcast finished: %s", counts)
    return counts


def broadcast_conversation() -> ConversationHandler:
    return ConversationHandler(
        entry_points=[CommandHandler("broadcast", broadcast)],
        states={
            BC_AUDIENCE: [CallbackQueryHandler(bc_audience, pattern=r"^bc:a:")],
            BC_TEXT: [MessageHandler(filters.TEXT & ~filters.COMMAND, bc_text)],
            BC_CONFIRM: [CallbackQueryHandler(bc_confirm, pattern=r"^bc:ok$")],
        },
        fallbacks=cancel_fallbacks(_BC, "Broadcast cancelled; nothing was sent.", r"^bc:x$"),
        allow_reentry=True,
        conversation_timeout=600,
        name="broadcast",
    )


# -- /stats, /pauseall --------------------------------------------------------------------------


@handler(admin=True)
async def stats(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> None:
    app = get_app(context)
    text = format_stats(
        await app.services.system_counts(),
        await app.services.copies_today(None),
        app.notifications.pending(),
        app.notifications.dropped,
    )
    text += "\n" + format_admin_stats(await app.services.admin_stats(listener_health=app.listeners.health))
    for part in split_message(text):
        await reply(update, part)


@handler(admin=True)
async def pauseall(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> None:
    await reply(
        update,
        "⚠️ Kill switch: pause EVERY active follow of every user now? Open positions stay as they are.",
        reply_markup=keyboard([("⏸ Pause everything", "pa:ok"), ("Cancel", "pa:x")]),
    )


@handler(admin=True)
async def pauseall_button(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> None:
    data = callback_data(update)
    if data == "pa:x":
        await reply(update, "Nothing was paused.")
        return
    if data != "pa:ok":
        raise UserError(STALE_BUTTON)
    count = await get_app(context).services.pause_all(
        "paused by an administrator (kill switch); /resume when told it is safe"
    )
    await reply(update, f"⏸ Kill switch: {count} follow(s) paused. Nothing will be copied until users /resume.")


def admin_handlers() -> list[Any]:
    return [
        addmaster_conversation(),
        broadcast_conversation(),
        CommandHandler("stats", stats),
        CommandHandler("pauseall", pauseall),
        CallbackQueryHandler(pauseall_button, pattern=r"^pa:"),
        CallbackQueryHandler(manage_master_no, pattern=r"^am:n:"),
        CallbackQueryHandler(manage_master, pattern=r"^am:"),
    ]
