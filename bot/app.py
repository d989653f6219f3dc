"""The python-telegram-bot ``Application`` over the service ``App``: handlers, the rate
limiter, the notification sender, command registration, and polling or webhook mode."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import warnings
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from telegram import BotCommand, BotCommandScopeChat, Update
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.warnings import PTBUserWarning

from bot.admin import admin_handlers
from bot.apitoken import apitoken_handlers
from bot.auth import APP_KEY, app_of
from bot.follow import follow_conversation, masters_handlers
from bot.host import BotApp
from bot.keys import connect_conversation, key_handlers
from bot.notifier import Notifier
from bot.ratelimit import TelegramPacer
from bot.reports import report_handlers, summary_sender
from bot.settings import settings_conversation
from bot.start import (
    ADMIN_COMMANDS,
    FOLLOWER_COMMANDS,
    help_command,
    stale_button,
    start,
    unexpected_text,
    unknown_command,
)
from bot.status import status_handlers
from bot.updates import PerUserUpdateProcessor
from core.scheduler import add_daily_summary_job
from core.venues.paper.trader import SIMULATED_MASTERS_JOB

log = logging.getLogger(__name__)


async def _nothing_to_cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if update.effective_chat:
        await update.effective_chat.send_message("Nothing to cancel.")


async def _log_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    log.error("unhandled error in the Telegram application", exc_info=context.error)


DAILY_SUMMARY_JOB = "daily-summaries"
SKIP_DIGEST_JOB = "skip-digests"
#: how often the skips a follower cannot act on are sent, grouped (``core.notifications.DIGESTED_SKIPS``)
SKIP_DIGEST_MINUTES = 30


async def post_init(application: Application) -> None:
    """Register the command lists, start draining notifications and, with the service's
    scheduler (``serve(..., scheduler=)``), deliver the due daily summaries every minute."""
    app = app_of(application)
    bot = application.bot
    await bot.set_my_commands([BotCommand(name, text) for name, text in FOLLOWER_COMMANDS])
    for admin_id in app.settings.admin_ids:
        try:
            await bot.set_my_commands(
                [BotCommand(n, t) for n, t in (*FOLLOWER_COMMANDS, *ADMIN_COMMANDS)],
                scope=BotCommandScopeChat(admin_id),
            )
        except TelegramError as exc:  # the admin has not opened a chat with the bot yet
            log.info("admin commands not registered for %s: %s", admin_id, exc)
    notifier = Notifier(app, bot)
    application.bot_data["notifier"] = notifier
    notifier.start()
    scheduler = application.bot_data.get("scheduler")
    if scheduler is not None:
        add_daily_summary_job(scheduler, app.services.reports.summaries, summary_sender(app, bot))
        scheduler.add_job(notifier.send_digests, "interval", minutes=SKIP_DIGEST_MINUTES, id=SKIP_DIGEST_JOB)
        app.add_paper_trading_job(scheduler)


async def post_shutdown(application: Application) -> None:
    scheduler = application.bot_data.get("scheduler")
    for job in (DAILY_SUMMARY_JOB, SKIP_DIGEST_JOB, SIMULATED_MASTERS_JOB):
        if scheduler is not None and scheduler.get_job(job) is not None:
            scheduler.remove_job(job)
    notifier = application.bot_data.pop("notifier", None)
    if notifier is not None:
        await notifier.stop()


def build_application(
    app: BotApp, *, webhook: bool = False, on_rate_limited: Callable[[], None] | None = None
) -> Application:
    """``webhook``: no updater; the service's HTTP server puts each posted update on the
    application's update queue. Updates run concurrently, each user's in order."""
    settings = app.settings
    if not settings.telegram_bot_token:
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    builder = (
        ApplicationBuilder()
        .token(settings.telegram_bot_token)
        .rate_limiter(TelegramPacer(on_rate_limited=on_rate_limited))
        .concurrent_updates(PerUserUpdateProcessor())
        .post_init(post_init)
        .post_shutdown(post_shutdown)
    )
    if webhook:
        builder = builder.updater(None)
    if settings.telegram_api_base_url:
        builder = builder.base_url(settings.telegram_api_base_url)
    application = builder.build()
    application.bot_data[APP_KEY] = app
    with warnings.catch_warnings():
        # Conversations are per user and chat on purpose (per_message=False): a dialogue's
        # buttons are answered whichever message carries them.
        warnings.filterwarnings("ignore", message=".*per_message=False.*", category=PTBUserWarning)
        handlers = _handlers()
    application.add_handlers(handlers)
    application.add_error_handler(_log_error)
    return application


def _handlers() -> list[BaseHandler[Update, Any, Any]]:
    """In order: the first handler that matches an update takes it."""
    return [
        CommandHandler("start", start),
        CommandHandler("help", help_command),
        connect_conversation(),
        follow_conversation(),
        settings_conversation(),
        *admin_handlers(),
        *key_handlers(),
        *masters_handlers(),
        *status_handlers(),
        *report_handlers(),
        *apitoken_handlers(),
        CommandHandler("cancel", _nothing_to_cancel),
        MessageHandler(filters.COMMAND, unknown_command),
        MessageHandler(filters.TEXT & ~filters.COMMAND, unexpected_text),
        CallbackQueryHandler(stale_button),
    ]


def webhook_secret(token: str) -> str:
    """Telegram sends it back in a header, so only Telegram can post updates to the webhook."""
    return hashlib.sha256(f"copytrade-webhook|{token}".encode()).hexdigest()[:48]


async def serve(
    app: BotApp,
    stop: asyncio.Event,
    *,
    poll_interval: float = 0.0,
    polling_timeout: int = 10,
    scheduler=None,
    on_webhook_ready: Callable[[Application], None] | None = None,
    on_rate_limited: Callable[[], None] | None = None,
) -> None:
    """Run the bot until ``stop`` is set: polling, or, when WEBHOOK_URL is set, a webhook served
    by the service's HTTP server: Telegram is told the URL and the secret, and
    ``on_webhook_ready(application)`` hands the application to the server's webhook route.
    ``scheduler``: the service's ``AsyncIOScheduler``; the bot adds its daily-summary job to it."""
    settings = app.settings
    # httpx logs every request URL at INFO, and the Bot API URL carries the bot token; the
    # telegram library logs whole updates (typed secrets included) at DEBUG.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("telegram").setLevel(max(logging.INFO, logging.getLogger("telegram").getEffectiveLevel()))
    webhook = bool(settings.webhook_url)
    application = build_application(app, webhook=webhook, on_rate_limited=on_rate_limited)
    if scheduler is not None:
        application.bot_data["scheduler"] = scheduler
    updater = application.updater
    async with application:
        await post_init(application)
        await application.start()
        try:
            if webhook:
                if on_webhook_ready is not None:
                    on_webhook_ready(application)
                await application.bot.set_webhook(
                    url=settings.webhook_url,
                    secret_token=webhook_secret(application.bot.token),
                    allowed_updates=Update.ALL_TYPES,
                )
                log.info("Telegram bot receiving webhooks at %s", urlparse(settings.webhook_url).path or "/")
            else:
                assert updater is not None  # built with one when not a webhook
                await updater.start_polling(poll_interval=poll_interval, timeout=polling_timeout)
                log.info("Telegram bot polling for updates")
            await stop.wait()
        finally:
            if updater is not None and updater.running:
                await updater.stop()
            await application.stop()
            await post_shutdown(application)
