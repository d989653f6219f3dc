"""Drains the engine's notification queue into Telegram messages. The engine only ever puts an
event on the queue; these tasks send at Telegram's pace (through the bot's rate limiter), so a
slow or failing Telegram never delays trading."""

from __future__ import annotations

import asyncio
import logging
import time

from telegram import Bot, InlineKeyboardMarkup
from telegram.error import Forbidden, TelegramError

from bot.formatting import format_event, format_skip_digest, split_message
from bot.host import BotApp
from bot.keyboards import keyboard
from core.confirmations import CopyOffer
from core.model import CopyResult
from core.notifications import Event, SkipDigest, digested
from core.records import UserRecord
from core.risk_service import DriftFound

log = logging.getLogger(__name__)

#: Messages in flight at once. One sender waits a full round trip to Telegram per message
#: (50-150 ms from a cloud host), which alone caps it at 7-20 messages a second; the rate
#: limiter, not this number, keeps the total under Telegram's limit.
SENDERS = 8
#: events waiting in one sender's lane; the backlog beyond stays in the engine's bounded queue,
#: where /stats counts it and an overflow is counted as dropped
LANE_DEPTH = 4


class Notifier:
    def __init__(self, app: BotApp, bot: Bot) -> None:
        self.app = app
        self.bot = bot
        self._master_names: dict[int, str] = {}
        self._tasks: list[asyncio.Task[None]] = []
        # one lane per sender; a user's events always take the same lane, so they arrive in order
        self._lanes: list[asyncio.Queue[Event]] = []
        self._digest = SkipDigest()
        self._shown_drifts: dict[
            int, tuple[tuple[object, ...], float]
        ] = {}  # follow id -> (drifts, monotonic deadline)

    def drift_shown(self, follow_id: int, drifts: tuple[tuple[object, ...], ...], seconds: float) -> None:
        """/sync has just shown the user this finding in its answer: the notice the same check
        published is left out (a different finding, or an auto-sync that sent orders, still goes
        out). Call it right after the check returns, before any await: the notice is queued
        during the check and this task cannot run in between."""
        self._shown_drifts[follow_id] = (drifts, time.monotonic() + seconds)

    def _already_shown(self, event: Event) -> bool:
        if not isinstance(event, DriftFound) or event.synced:
            return False
        shown = self._shown_drifts.get(event.follow_id)
        if shown is None:
            return False
        drifts, deadline = shown
        if deadline < time.monotonic():
            del self._shown_drifts[event.follow_id]
            return False
        if drifts != event.drifts:
            return False
        del self._shown_drifts[event.follow_id]  # left out once
        return True

    def start(self) -> None:
        if self._tasks:
            return
        self._lanes = [asyncio.Queue(LANE_DEPTH) for _ in range(SENDERS)]
        self._tasks = [asyncio.create_task(self.app.notifications.consume(self._route), name="telegram-notifier")]
        self._tasks += [
            asyncio.create_task(self._send_lane(lane), name=f"telegram-notifier-{number}")
            for number, lane in enumerate(self._lanes)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks = []

    async def _route(self, event: Event) -> None:
        await self._lanes[event.user_id % len(self._lanes)].put(event)

    async def _send_lane(self, lane: asyncio.Queue[Event]) -> None:
        while True:
            event = await lane.get()
            try:
                await self.deliver(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivering a notification failed")

    async def _master_name(self, master_id: int) -> str | None:
        if master_id not in self._master_names:
            name = await self.app.services.master_name(master_id)
            if name is None:
                return None
            self._master_names[master_id] = name
        return self._master_names[master_id]

    async def send_digests(self) -> None:
        """One message per user for the skips held since the last digest (a scheduled job)."""
        for user_id, skips in self._digest.take().items():
            user = await self.app.services.user(user_id)
            if user is None or user.telegram_id is None or user.blocked_bot:
                continue
            names = {m: name for m in {s.master_id for s in skips} if (name := await self._master_name(m))}
            await self._send(user, format_skip_digest(skips, names))

    async def deliver(self, event: Event) -> None:
        if self._already_shown(event):
            return
        if digested(event):
            assert isinstance(event, CopyResult)
            self._digest.hold(event)
            return
        user = await self.app.services.user(event.user_id)
        if user is None or user.telegram_id is None or user.blocked_bot:
            return  # accounts created outside Telegram (demo, paper setup) have no chat
        master_name = await self._master_name(event.master_id) if isinstance(event, (CopyResult, CopyOffer)) else None
        # an offered copy carries its answer buttons (handled in bot/follow.py)
        markup = (
            keyboard([("✅ Copy", f"cf:y:{event.offer_id}"), ("⏭ Skip", f"cf:n:{event.offer_id}")])
            if isinstance(event, CopyOffer)
            else None
        )
        await self._send(user, format_event(event, master_name=master_name), markup)

    async def _send(self, user: UserRecord, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
        assert user.telegram_id is not None
        try:
            for part in split_message(text):
                await self.bot.send_message(user.telegram_id, part, reply_markup=markup)
        except Forbidden:
            assert user.id is not None
            await self.app.services.set_blocked(user.id, True)
            log.info("user %s blocked the bot; notifications to them stop until they /start again", user.id)
        except TelegramError as exc:
            log.warning("notification to user %s not delivered: %s", user.id, exc)
