"""Authorization and error handling in one place.

Every handler is wrapped by ``handler()``: it resolves the Telegram user to our ``User`` row
(or asks them to /start), checks the admin role from ``ADMIN_IDS``, answers callback queries,
turns a ``UserError`` into a reply and logs anything else with its traceback — the chat only
ever sees a generic apology, never internals or secrets.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from telegram import Chat, Update
from telegram.constants import ChatAction
from telegram.error import BadRequest, TelegramError
from telegram.ext import (
    Application,
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
)

from bot.host import BotApp
from core.errors import UserError
from core.records import UserRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BotUser:
    """The user a handler acts for: a stored user, so its id is always known (a ``UserRecord``'s
    may be None only before it is first saved)."""

    id: int
    telegram_id: int | None
    display_name: str
    blocked_bot: bool

    @classmethod
    def of(cls, record: UserRecord) -> BotUser:
        return cls(stored_id(record), record.telegram_id, record.display_name, record.blocked_bot)


class _Stored(Protocol):
    @property
    def id(self) -> int | None: ...


def stored_id(record: _Stored) -> int:
    """The id of a record read from (or just written to) storage: None only before a record is
    first saved, so never for one a service answered."""
    if record.id is None:
        raise RuntimeError(f"a {type(record).__name__} that was never stored reached the bot")
    return record.id


Handler = Callable[[Update, ContextTypes.DEFAULT_TYPE, BotUser], Awaitable[Any]]
#: what python-telegram-bot calls: ``(update, context)``
Callback = Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, Any]]

NOT_REGISTERED = "Send /start first, then try again."
ADMINS_ONLY = "⛔ This command is for administrators only."
INTERNAL_ERROR = "Something went wrong on our side and was logged. Please try again in a minute."
STALE_BUTTON = "This button is no longer valid. Send the command again."
#: where ``build_application`` keeps the service ``App`` in ``application.bot_data``
APP_KEY = "app"


def get_app(context: ContextTypes.DEFAULT_TYPE) -> BotApp:
    """The service ``App`` the bot was built over (``bot.app.build_application`` stores it)."""
    return app_of(context.application)


def app_of(application: Application[Any, Any, Any, Any, Any, Any]) -> BotApp:
    """The service ``App`` stored in ``application.bot_data`` (a plain dict: typed here, once)."""
    app: BotApp = application.bot_data[APP_KEY]
    return app


def is_admin(context: ContextTypes.DEFAULT_TYPE, telegram_id: int) -> bool:
    return telegram_id in get_app(context).settings.admin_ids


def user_data(context: ContextTypes.DEFAULT_TYPE) -> dict[Any, Any]:
    """The user's dialogue state (every update a handler sees comes from a user)."""
    data = context.user_data
    if data is None:
        raise RuntimeError("an update without a user reached a handler")
    return data


def message_text(update: Update) -> str:
    """The text of the message the update carries ("" for none)."""
    message = update.effective_message
    return (message.text or "") if message is not None else ""


def callback_data(update: Update) -> str:
    """The data of the pressed button ("" for none)."""
    query = update.callback_query
    return (query.data or "") if query is not None else ""


def sender_id(update: Update) -> int:
    """The Telegram id of whoever sent the update."""
    sender = update.effective_user
    if sender is None:
        raise RuntimeError("an update without a user reached a handler")
    return sender.id


async def working(update: Update, action: str = ChatAction.TYPING) -> None:
    """Show "typing…" (or "sending photo…") while a slow reply is prepared; Telegram clears it
    when the reply arrives. A sign that cannot be shown never holds the reply back."""
    chat = update.effective_chat
    if chat is None:
        return
    try:
        await chat.send_action(action)
    except TelegramError:
        log.debug("chat action not shown", exc_info=True)


def chat_of(update: Update) -> Chat:
    chat = update.effective_chat
    if chat is None:
        raise RuntimeError("an update without a chat reached a handler")
    return chat


async def reply(update: Update, text: str, **kwargs: Any) -> None:
    """Answer in the chat the update came from (a message or a pressed button)."""
    chat = update.effective_chat
    if chat is None:
        return
    await chat.send_message(text, **kwargs)


async def show(
    update: Update, text: str, *, message_id: int | None = None, edit: bool = True, **kwargs: Any
) -> int | None:
    """Answer a step of a dialogue in its own message: a pressed button's message (or the
    dialogue message ``message_id``, after a typed value) is edited in place, so a dialogue stays
    one message; a command, a button that opens a new dialogue (``edit=False``: the message it
    is on stays as it was), or a message that cannot be edited (a photo, one too old) gets a new
    one. Returns the id of the message that now shows ``text``."""
    chat = update.effective_chat
    if chat is None:
        return None
    query = update.callback_query
    if (
        message_id is None
        and edit
        and query is not None
        and query.message is not None
        and getattr(query.message, "text", None)
    ):
        message_id = query.message.message_id
    if message_id is not None:
        try:
            await chat.get_bot().edit_message_text(text, chat_id=chat.id, message_id=message_id, **kwargs)
            return message_id
        except BadRequest as exc:
            # https://core.telegram.org/bots/api#editmessagetext: the same text and keyboard again
            # is refused as "message is not modified" and leaves the message as it should be
            if "not modified" in str(exc).lower():
                return message_id
            log.debug("dialogue message %s not edited (%s); sending a new one", message_id, exc)
    sent = await chat.send_message(text, **kwargs)
    return sent.message_id


def handler(*, admin: bool = False, register: bool = False) -> Callable[[Handler], Callback]:
    """Wrap a handler ``(update, context, user)``.

    ``register``: create the user on first contact (/start does). ``admin``: refuse anyone not
    in ADMIN_IDS (and register an admin on first contact). A ``UserError`` is answered and the
    conversation stays where it was (``None`` keeps a ConversationHandler in its state); nothing
    else leaks to the chat.
    """

    def decorate(func: Handler) -> Callback:
        @functools.wraps(func)
        async def wrapper(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Any:
            query = update.callback_query
            if query is not None:
                try:
                    await query.answer()
                except TelegramError:
                    log.debug("answering a callback query failed", exc_info=True)
            tg_user = update.effective_user
            if tg_user is None:
                return None
            try:
                app = get_app(context)
                if admin and tg_user.id not in app.settings.admin_ids:
                    log.warning("non-admin %s tried an admin action", tg_user.id)
                    await reply(update, ADMINS_ONLY)
                    return None
                record: UserRecord | None
                if register or admin:  # an admin in ADMIN_IDS needs no /start before /stats
                    record = await app.services.register_user(tg_user.id, tg_user.full_name or tg_user.username or "")
                else:
                    record = await app.services.user_by_telegram_id(tg_user.id)
                    if record is None:
                        await reply(update, NOT_REGISTERED)
                        return None
                return await func(update, context, BotUser.of(record))
            except UserError as exc:
                await reply(update, f"⚠️ {exc}")
                return None
            except TelegramError:
                log.exception("Telegram refused a request while handling an update")
                return None
            except Exception:
                log.exception("handler %s failed", func.__qualname__)
                await reply(update, INTERNAL_ERROR)
                return None

        return wrapper

    return decorate


def callback_args(update: Update, count: int) -> list[str]:
    """The ``count`` fields after the prefix of ``prefix:a:b``; a ``UserError`` (stale or
    tampered button) when the data has another shape."""
    parts = callback_data(update).split(":")
    if len(parts) != count + 1 or not all(parts[1:]):
        raise UserError(STALE_BUTTON)
    return parts[1:]


def int_arg(value: str) -> int:
    if not value.isdigit() or len(value) > 12:
        raise UserError(STALE_BUTTON)
    return int(value)


def cancel_fallbacks(
    state_key: str, answer: str, button_pattern: str | None = None
) -> list[BaseHandler[Any, Any, Any]]:
    """The fallbacks of a dialogue: ``/cancel`` (and its ✖ button, when it has one) forget the
    dialogue's answers kept under ``state_key`` and say what did not happen."""

    async def cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
        user_data(context).pop(state_key, None)
        if update.callback_query:
            await update.callback_query.answer()
        await show(update, answer)  # a ✖ button's question becomes the answer
        return ConversationHandler.END

    handlers: list[BaseHandler[Any, Any, Any]] = [CommandHandler("cancel", cancel)]
    if button_pattern is not None:
        handlers.append(CallbackQueryHandler(cancel, pattern=button_pattern))
    return handlers
