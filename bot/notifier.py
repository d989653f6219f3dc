"""Drains the engine's notification queue into Telegram messages. The engine only ever puts an
event on the queue; this task sends at Telegram's pace (through the bot's rate limiter), so a
slow or failing Telegram never delays trading."""

from __future__ import annotations

import asyncio
import logging

from telegram import Bot
from telegram.error import Forbidden, TelegramError

from copytrade.bot.formatting import format_copy_result, format_drift, format_follow_paused, format_risk_notice, split_message
from copytrade.core.engine import FollowPaused
from copytrade.core.risk_service import DriftFound, RiskNotice
from copytrade.core.model import CopyResult
from copytrade.core.notifications import Event

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, app, bot: Bot) -> None:  # type: ignore[no-untyped-def]
        self.app = app
        self.bot = bot
        self._master_names: dict[int, str] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.app.notifications.consume(self.deliver), name="telegram-notifier")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _master_name(self, master_id: int) -> str | None:
        if master_id not in self._master_names:
            master = await self.app.accounts.master(master_id)
            if master is None:
                return None
            self._master_names[master_id] = master.name
        return self._master_names[master_id]

    def text_for(self, event: Event, master_name: str | None) -> str:
        if isinstance(event, FollowPaused):
            return format_follow_paused(event)
        if isinstance(event, DriftFound):
            return format_drift(event)
        if isinstance(event, RiskNotice):
            return format_risk_notice(event)
        return format_copy_result(event, master_name=master_name)

    async def deliver(self, event: Event) -> None:
        user = await self.app.accounts.user(event.user_id)
        if user is None or user.telegram_id is None or user.blocked_bot:
            return  # accounts created outside Telegram (demo, paper setup) have no chat
        master_name = await self._master_name(event.master_id) if isinstance(event, CopyResult) else None
        try:
            for part in split_message(self.text_for(event, master_name)):
                await self.bot.send_message(user.telegram_id, part)
        except Forbidden:
            assert user.id is not None
            await self.app.accounts.set_blocked(user.id, True)
            log.info("user %s blocked the bot; notifications to them stop until they /start again", user.id)
        except TelegramError as exc:
            log.warning("notification to user %s not delivered: %s", user.id, exc)
