"""The paper family's driver: accounts on one in-process simulated exchange."""

from __future__ import annotations

from decimal import Decimal

from core.validation import parse_decimal
from core.venues.base import FillSource, Venue
from core.venues.driver import MasterStream, VenueDriver
from core.venues.paper.constants import DEFAULT_BALANCE, MAX_BALANCE, PAPER_VENUE
from core.venues.paper.listener import PaperFillSource
from core.venues.paper.venue import PaperExchange, PaperVenue
from core.venues.registry import VenueAccount


class PaperDriver(VenueDriver):
    """Every paper account of the process trades on ``exchange`` (one price feed, shared markets)."""

    name = "paper"
    curated = (PAPER_VENUE,)

    def __init__(self, exchange: PaperExchange | None = None) -> None:
        self.exchange = exchange or PaperExchange()

    @classmethod
    def check_secrets(cls, secrets: dict[str, str]) -> dict[str, str]:
        if "balance" in secrets:
            parse_decimal(secrets["balance"], "starting balance", low=Decimal(0), high=MAX_BALANCE)
        return secrets

    @property
    def venue_names(self) -> frozenset[str]:
        return frozenset({PAPER_VENUE.name})

    async def open_venue(self, account: VenueAccount) -> Venue:
        balance = Decimal(account.secrets["balance"]) if "balance" in account.secrets else DEFAULT_BALANCE
        return await self.exchange.open_account(account.credential_id, balance=balance)

    async def open_fill_source(self, master: MasterStream) -> FillSource:
        if not isinstance(master.venue, PaperVenue):
            raise TypeError(f"a paper master needs a paper venue, not {type(master.venue).__name__}")
        return PaperFillSource(master.venue, master.master_id)
