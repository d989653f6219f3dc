"""A copy engine on real storage (SQLite) with paper venues, for engine and risk tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal as D

from sqlalchemy import select
from sqlmodel import col

from core.copying.config import EngineConfig
from core.copying.path import OrderPath
from core.engine import CopyEngine
from core.model import Fill, Side, utcnow
from core.observe import EngineObserver
from core.risk_service import RiskService
from core.vault import Vault
from core.venues.egress import EgressPolicy, parse_networks
from core.venues.paper.venue import PaperExchange, PaperVenue
from core.venues.registry import VenueRegistry
from storage.accounts import AccountStore
from storage.db import Database
from storage.journal import JournalStore
from storage.models import CopyOrder, Credential, Follow, FollowPosition

BTC = "BTC/USDT:USDT"


async def eventually(check, what: str) -> None:
    """Wait (bounded) until ``check()`` holds: for effects that arrive over a socket or a task."""
    for _ in range(400):
        if check():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Harness:
    db: Database
    accounts: AccountStore
    journal: JournalStore
    exchange: PaperExchange
    vault: Vault
    registry: VenueRegistry
    events: list = field(default_factory=list)
    engine: CopyEngine | None = None
    master_id: int = 0
    trades: int = 0
    risk: RiskService | None = None
    now: datetime | None = None  # the risk service's clock when set
    engine_shift: timedelta = timedelta(0)  # how far the engine's clock runs ahead

    def build_engine(self, observer: EngineObserver | None = None, **config) -> CopyEngine:
        """The engine and the risk controls over one order path; the engine's clock runs
        ``engine_shift`` ahead of the real one (a test moves it to let time pass)."""
        path = OrderPath(
            self.journal,
            self.registry,
            self.events.append,
            EngineConfig(retry_delays=(0.001, 0.001, 0.001), **config),
            clock=lambda: utcnow() + self.engine_shift,
            observer=observer,
        )
        self.risk = RiskService(self.journal, path, self.events.append, clock=lambda: self.now or utcnow())
        self.engine = CopyEngine(path, after_position_change=self.risk.after_position_change)
        return self.engine

    async def add_follower(self, balance="100000", **settings) -> tuple[int, PaperVenue]:
        user = await self.accounts.ensure_user(None, "f")
        assert user.id is not None
        credential_id = f"c{user.id:030d}"
        blob = self.vault.encrypt({"api_key": "k", "balance": balance}, owner_id=user.id, credential_id=credential_id)
        await self.accounts.add_credential(
            Credential(
                id=credential_id, user_id=user.id, venue="paper", label="main", ciphertext=blob, key_fingerprint="f"
            )
        )
        follow = await self.accounts.add_follow(
            Follow(user_id=user.id, master_id=self.master_id, credential_id=credential_id, **settings)
        )
        venue = await self.registry.venue_for(credential_id)
        assert isinstance(venue, PaperVenue)
        if self.engine:
            self.engine.invalidate_follows()
        assert follow.id is not None
        return follow.id, venue

    def fill(self, side=Side.BUY, qty="1", price=None, symbol=BTC, **kw) -> Fill:
        self.trades += 1
        price = D(price) if price is not None else self.exchange.prices[symbol]
        return Fill(
            self.master_id, "paper:master", f"t{self.trades}", f"o{self.trades}", symbol, side, D(qty), price, **kw
        )

    async def rows(self, **where) -> list[CopyOrder]:
        async with self.db.session() as session:
            query = select(CopyOrder)
            for name, value in where.items():
                query = query.where(getattr(CopyOrder, name) == value)
            return list((await session.execute(query)).scalars())

    async def position(self, follow_id: int, symbol=BTC, *, simulated=False) -> D:
        """The follow's copied position in ``symbol``, every position side together (the net)."""
        async with self.db.session() as session:
            rows = await session.execute(
                select(FollowPosition).where(
                    col(FollowPosition.follow_id) == follow_id,
                    col(FollowPosition.symbol) == symbol,
                    col(FollowPosition.simulated) == simulated,
                )
            )
            return sum((row.quantity for row in rows.scalars()), D(0))


#: the tests' egress proxies listen on 127.0.0.x, which an egress policy refuses unless the
#: operator allow-lists it (COPYTRADE_EGRESS_ALLOW); tests allow it as an operator would a
#: proxy on its own network
LOOPBACK_EGRESS = parse_networks("127.0.0.0/8")  # Settings(egress_allow=...)
LOOPBACK_ALLOWED = EgressPolicy(LOOPBACK_EGRESS)
