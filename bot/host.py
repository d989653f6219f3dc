"""What the bot needs of the service it runs over, typed.

The service ``App`` (copytrade/app.py) sits above the bot in the layers, so the bot cannot name
it: these protocols say what the handlers use, and mypy checks that ``App`` provides it where the
wiring hands it to ``bot.app.serve`` / ``build_application``. Every member is read-only here,
which is all a handler needs (and lets ``App``'s own, narrower types satisfy them).
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from typing import Protocol

from core.api_tokens import ApiTokens
from core.listeners.supervisor import ListenerSupervisor
from core.notifications import NotificationQueue
from core.services import Services
from core.venues.driver import JobScheduler


class BotSettings(Protocol):
    """The deployment settings the bot reads (``copytrade.config.Settings``)."""

    @property
    def admin_ids(self) -> Collection[int]: ...

    @property
    def mode(self) -> enum.StrEnum: ...  # paper, testnet or live (``copytrade.config.Mode``)

    @property
    def telegram_bot_token(self) -> str | None: ...

    @property
    def telegram_api_base_url(self) -> str | None: ...

    @property
    def webhook_url(self) -> str | None: ...


class BotApp(Protocol):
    """The service application as the bot sees it (``copytrade.app.App``)."""

    @property
    def settings(self) -> BotSettings: ...

    @property
    def services(self) -> Services: ...

    @property
    def notifications(self) -> NotificationQueue: ...

    @property
    def listeners(self) -> ListenerSupervisor: ...

    @property
    def api_tokens(self) -> ApiTokens: ...

    async def start_listener(self, master_id: int) -> None:
        """Watch one master's fills (a master added while the service runs)."""

    def add_paper_trading_job(self, scheduler: JobScheduler) -> None:
        """Paper mode: let the simulated masters trade on the scheduler."""
