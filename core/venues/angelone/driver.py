"""The Angel One family's driver: SmartAPI sessions shared by the process, the master's order
updates, the session refresh and instrument reload jobs.

The SDK is imported only when a driver is built (importing it patches the socket module for
the duration), so the credential checks here cost nothing in other deployments.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from core.errors import UserError
from core.model import utcnow
from core.venues.angelone.constants import ANGEL_ONE_VENUE, PIN_PATTERN, ProductType
from core.venues.angelone.credentials import AngelOneCredentials, AngelOneEndpoints, is_totp_seed
from core.venues.base import FillSource, Venue
from core.venues.driver import JobScheduler, MasterStream, VenueDriver
from core.venues.egress import EgressPolicy, IPNetwork
from core.venues.registry import VenueAccount

if TYPE_CHECKING:
    from core.venues.angelone.accounts import AngelOneAccounts


class AngelOneSettings(Protocol):
    """The deployment settings this driver reads (``None`` keeps Angel One's own hosts)."""

    @property
    def angelone_rest_url(self) -> str | None: ...

    @property
    def angelone_ws_url(self) -> str | None: ...

    @property
    def angelone_scrip_master_url(self) -> str | None: ...

    @property
    def angelone_public_ip(self) -> str | None: ...

    @property
    def angelone_product(self) -> str: ...

    @property
    def mode(self) -> str: ...  # "live": orders only through each client's own egress

    @property
    def egress_allow(self) -> tuple[IPNetwork, ...]: ...  # private ranges egress proxies may be in


class AngelOneDriver(VenueDriver):
    """Every Angel One account of the process: one session each, one login throttle, one
    instrument master; orders use ``product`` unless the copied fill names its own."""

    name = "angelone"
    curated = (ANGEL_ONE_VENUE,)

    def __init__(
        self,
        endpoints: AngelOneEndpoints | None = None,
        *,
        product: str = ProductType.INTRADAY,
        require_egress: bool = False,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        from core.venues.angelone.accounts import AngelOneAccounts

        self.accounts: AngelOneAccounts = AngelOneAccounts(endpoints, clock=clock)
        self._product = ProductType(product)
        self._require_egress = require_egress

    @classmethod
    def from_settings(cls, settings: AngelOneSettings, *, clock: Callable[[], datetime] = utcnow) -> AngelOneDriver:
        defaults = AngelOneEndpoints()
        endpoints = AngelOneEndpoints(
            rest_root=settings.angelone_rest_url or defaults.rest_root,
            order_updates_url=settings.angelone_ws_url or defaults.order_updates_url,
            scrip_master_url=settings.angelone_scrip_master_url or defaults.scrip_master_url,
            public_ip=settings.angelone_public_ip,
            egress=EgressPolicy(settings.egress_allow),
        )
        return cls(endpoints, product=settings.angelone_product, require_egress=settings.mode == "live", clock=clock)

    @classmethod
    def check_secrets(cls, secrets: dict[str, str]) -> dict[str, str]:
        if not re.fullmatch(PIN_PATTERN, secrets["pin"]):
            raise UserError("the PIN must be 4 to 8 digits")
        totp_secret = secrets["totp_secret"].upper()
        if not is_totp_seed(totp_secret):
            raise UserError("the TOTP secret is not a valid base32 seed")
        checked = {**secrets, "totp_secret": totp_secret}
        AngelOneCredentials.from_mapping(checked)  # the egress and algo fields, each with its message
        return checked

    @property
    def venue_names(self) -> frozenset[str]:
        return frozenset({ANGEL_ONE_VENUE.name})

    async def open_venue(self, account: VenueAccount) -> Venue:
        return self.accounts.venue(account.secrets, product=self._product, require_egress=self._require_egress)

    async def open_fill_source(self, master: MasterStream) -> FillSource:
        """The master's order updates over its own session (shared with its venue); at start, the
        order book's executions the journal lacks (made while copytrade was down) are replayed."""
        from core.venues.angelone.listener import AngelOneFillSource
        from core.venues.angelone.venue import AngelOneVenue

        if not isinstance(master.venue, AngelOneVenue):
            raise TypeError(f"an Angel One master needs an Angel One venue, not {type(master.venue).__name__}")
        return AngelOneFillSource(
            master.venue.session,
            master.master_id,
            checkpoint=master.checkpoint,
            order_progress=master.order_progress,
        )

    def register_jobs(self, scheduler: JobScheduler) -> None:
        from core.venues.angelone.jobs import register_jobs

        register_jobs(scheduler, self.accounts)

    async def close(self) -> None:
        await self.accounts.close()
