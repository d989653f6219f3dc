"""Builds the running system from ``Settings``: storage, vault, venues, engine, notifications.

One place decides which venues exist in which mode: paper mode has only the simulated venue,
so nothing can leave the process by accident.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from copytrade.config import Mode, Settings
from copytrade.http.metrics import Metrics
from core.api_tokens import ApiTokens
from core.confirmations import CopyConfirmations, CopyOffers
from core.copying.config import EngineConfig
from core.copying.path import OrderPath
from core.engine import CopyEngine
from core.errors import ConfigError, VaultError
from core.listeners.supervisor import ListenerSupervisor
from core.model import MasterStatus, utcnow
from core.notifications import NotificationQueue
from core.reports import build_reports
from core.risk_service import RiskService, register_risk_jobs
from core.services import Services
from core.vault import Vault, generate_key
from core.venues.angelone import AngelOneDriver
from core.venues.base import FillSource, Venue
from core.venues.ccxt import CcxtDriver
from core.venues.driver import JobScheduler, MasterStream, VenueDriver, VenueDrivers
from core.venues.paper import PaperDriver
from core.venues.paper.constants import PAPER_VENUE
from core.venues.paper.trader import SIMULATED_MASTERS_JOB, SimulatedMasters
from core.venues.paper.venue import PaperExchange
from core.venues.registry import VenueRegistry
from storage.accounts import AccountStore
from storage.api_tokens import ApiTokenStore
from storage.db import Database
from storage.journal import JournalStore
from storage.migrate import upgrade
from storage.paper import PaperWorldStore
from storage.stats import StatsStore

log = logging.getLogger(__name__)

DEV_KEY_FILE = "dev-secret.key"


def load_vault(settings: Settings, on_secrets: Callable[[Iterable[str]], None] | None = None) -> Vault:
    """The vault from COPYTRADE_SECRET_KEY; in paper mode a generated key kept in the data dir.

    Testnet and live refuse to start without an explicit key: a generated key on a server's
    disk would sit next to the data it protects.
    """
    if settings.secret_key:
        return Vault(settings.secret_key, settings.old_secret_keys, on_open=on_secrets)
    if settings.mode is not Mode.PAPER:
        raise ConfigError(
            f"COPYTRADE_SECRET_KEY: required in {settings.mode.value} mode (generate one with `copytrade gen-key`)"
        )
    path = Path(settings.data_dir) / DEV_KEY_FILE
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(generate_key())
            log.warning("generated a development secret key in %s (paper mode only)", path)
        key = path.read_text().strip()
        if on_secrets is not None:
            on_secrets([key])
        return Vault(key, settings.old_secret_keys, on_open=on_secrets)
    except OSError as exc:
        raise ConfigError(
            f"COPYTRADE_DATA_DIR: cannot keep the development key in {path}: {exc.strerror or exc}"
        ) from None


async def check_vault_opens_every_credential(accounts: AccountStore, vault: Vault) -> None:
    """Fail closed at start: a key that cannot open the stored credentials stops the service."""
    for credential_id in await accounts.sealed_credential_ids():
        sealed = await accounts.sealed_credential(credential_id)
        if sealed is None:
            continue
        if not vault.can_open(sealed.ciphertext):
            raise VaultError(
                "COPYTRADE_SECRET_KEY does not match the key the stored credentials were sealed with "
                "(wrong key? during a rotation, list the previous key in COPYTRADE_OLD_SECRET_KEYS)"
            )
        vault.decrypt(sealed.ciphertext, owner_id=sealed.user_id, credential_id=sealed.id)


def build_drivers(settings: Settings, paper: PaperExchange, clock: Callable[[], datetime] = utcnow) -> VenueDrivers:
    """The venue families of this deployment: paper mode has only the simulated venue, so
    nothing can leave the process by accident; Angel One only where it is enabled (its market
    hours are judged by ``clock``)."""
    drivers: list[VenueDriver] = [PaperDriver(paper)]
    if not settings.is_paper:
        drivers.append(CcxtDriver.from_settings(settings))
    if settings.angelone_enabled:
        drivers.append(AngelOneDriver.from_settings(settings, clock=clock))
    return VenueDrivers(drivers)


@dataclass
class App:
    settings: Settings
    db: Database
    accounts: AccountStore
    journal: JournalStore
    vault: Vault
    venues: VenueRegistry
    services: Services
    engine: CopyEngine
    notifications: NotificationQueue
    listeners: ListenerSupervisor
    paper: PaperExchange
    drivers: VenueDrivers
    risk: RiskService  # TP/SL, loss limit, reconciliation, /sync, opening and closing positions
    confirmations: CopyConfirmations  # manual confirmation: copies offered with Copy / Skip
    metrics: Metrics  # what the engine reports, and /metrics
    simulated_masters: SimulatedMasters | None = None  # paper masters trading on a schedule (paper mode)
    #: scaled out: a master added in the bot role is watched by the listener role (see copytrade.scaleout)
    listener_starter: Callable[[int], Awaitable[None]] | None = None
    api_tokens: ApiTokens = field(kw_only=True)  # the REST API's tokens (/apitoken)

    async def open_fill_source(self, master_id: int) -> FillSource:
        """The fill stream of one master, by its venue."""
        master = await self.accounts.master(master_id)
        if master is None or master.credential_id is None:
            raise ConfigError(f"master {master_id} has no key to watch")
        venue = await self.venues.venue_for(master.credential_id)
        if await self.journal.stream_checkpoint(master_id) is None:
            # The first start: the venue's positions are the master's (a first sell of an older
            # long is an exit), and its history starts once they are read. After that the journal
            # plus the replayed gap are the master's positions: seeding again from the venue
            # would count every execution made while we were down twice.
            quantities = {(p.symbol, p.position_side): p.quantity for p in await venue.positions()}
            await self.journal.start_master_stream(master_id, quantities, utcnow())
        driver = self.drivers.for_venue(venue.name)
        if driver is None:
            raise ConfigError(f"no fill listener for venue {master.venue} in this build")
        return await driver.open_fill_source(
            MasterStream(
                master_id,
                venue,
                account=functools.partial(self.venues.account, master.credential_id),
                checkpoint=functools.partial(self.journal.stream_checkpoint, master_id),
                save_checkpoint=functools.partial(self.journal.save_stream_checkpoint, master_id),
                known_symbols=functools.partial(self.journal.master_symbols, master_id),
                order_progress=functools.partial(self.journal.master_order_progress, master_id),
            )
        )

    async def start_listeners(self) -> None:
        for master in await self.accounts.masters(include_hidden=True):
            if master.credential_id is not None:
                await self.listeners.start(master.id, functools.partial(self.open_fill_source, master.id))

    async def start_listener(self, master_id: int) -> None:
        """Watch one master's fills (a master added while the service runs)."""
        if self.listener_starter is not None:
            await self.listener_starter(master_id)
            return
        await self.listeners.start(master_id, lambda: self.open_fill_source(master_id))

    def register_jobs(self, scheduler: JobScheduler) -> None:
        """The risk controls' and the venues' periodic work (broker sessions, instrument lists)."""
        assert self.risk is not None
        register_risk_jobs(
            scheduler,
            self.risk,
            watch_seconds=self.settings.risk_check_seconds,
            reconcile_seconds=self.settings.reconcile_seconds,
        )
        self.drivers.register_jobs(scheduler)
        if self.confirmations is not None:  # offered copies nobody answered: skipped, not confirmed
            scheduler.add_job(self.confirmations.expire_due, "interval", seconds=1, id="expire-copy-offers")

    async def paper_masters(self) -> list[tuple[int, Venue]]:
        """The active masters trading on the paper venue, with their accounts."""
        found: list[tuple[int, Venue]] = []
        for master in await self.accounts.masters(include_hidden=True):
            if master.venue == PAPER_VENUE.name and master.credential_id and master.status is not MasterStatus.RETIRED:
                found.append((master.id, await self.venues.venue_for(master.credential_id)))
        return found

    def add_paper_trading_job(self, scheduler: JobScheduler) -> None:
        """Paper mode: the paper masters trade every PAPER_TRADE_SECONDS (none when 0, nor
        outside paper mode, where no master is simulated)."""
        seconds = self.settings.paper_trade_seconds
        if not self.settings.is_paper or not seconds:
            return
        self.simulated_masters = SimulatedMasters(self.paper, self.paper_masters, random.Random())
        scheduler.add_job(self.simulated_masters.step, "interval", seconds=seconds, id=SIMULATED_MASTERS_JOB)

    async def close(self) -> None:
        await self.listeners.stop()
        await self.engine.drain()
        await self.paper.flush()
        await self.venues.close()
        await self.drivers.close()
        await self.db.dispose()


#: The first generation's threshold: Python's default (700 allocations) makes one fill for
#: 10,000 followers run hundreds of collections, the older ones walking the whole heap
#: (bench/: 179 -> 103 us per follower at 5,000 followers).
GC_THRESHOLDS = (10_000, 10, 10)


def tune_garbage_collector() -> None:
    """Once the service is built: what is alive now (modules, metadata, caches) moves to the
    permanent generation, which collections no longer walk, and collections run less often
    during a fill's burst of short-lived objects."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def _master_equity(accounts: AccountStore, venues: VenueRegistry, master_id: int) -> Decimal | None:
    """The master's equity on its venue (equity-ratio sizing)."""
    master = await accounts.master(master_id)
    if master is None or master.credential_id is None:
        return None
    venue = await venues.venue_for(master.credential_id)
    return await venue.equity()


def _then(first: Callable[[int], None], second: Callable[[int], None] | None) -> Callable[[int], None]:
    if second is None:
        return first

    def both(value: int) -> None:
        first(value)
        second(value)

    return both


async def build_app(
    settings: Settings,
    *,
    paper: PaperExchange | None = None,
    migrate: bool = True,
    on_secrets: Callable[[Iterable[str]], None] | None = None,
    follows_changed: Callable[[int], None] | None = None,
    engine_config: EngineConfig | None = None,
    clock: Callable[[], datetime] = utcnow,
    market_clock: Callable[[], datetime] | None = None,
) -> App:
    """``on_secrets`` is told every secret the service opens (the log redactor masks them).

    Without ``paper``, the paper world is kept in the database: a restart continues with the
    same paper balances, positions and orders. ``follows_changed(master_id)``: told after the
    engine's follows cache is dropped (a scaled-out deployment tells its other processes);
    ``engine_config``: the engine's settings instead of those the settings file gives;
    ``clock``: the engine's clock; ``market_clock``: the one market hours are judged by (the
    engine's unless given)."""
    vault = load_vault(settings, on_secrets)
    if migrate:
        await asyncio.to_thread(upgrade, settings.database_url)
    db = Database(settings.database_url)
    accounts = AccountStore(db)
    journal = JournalStore(db)
    await check_vault_opens_every_credential(accounts, vault)
    exchange = paper or PaperExchange(store=PaperWorldStore(db))
    drivers = build_drivers(settings, exchange, market_clock or clock)
    venues = VenueRegistry(accounts, vault, drivers.factories())
    notifications = NotificationQueue()
    config = EngineConfig(
        max_fill_age=timedelta(seconds=float(settings.max_fill_age_seconds)),
        max_concurrent_orders=settings.max_concurrent_orders,
        per_account_concurrency=settings.per_account_concurrency,
    )
    metrics = Metrics()
    path = OrderPath(journal, venues, notifications.publish, engine_config or config, clock=clock, observer=metrics)
    master_equity = functools.partial(_master_equity, accounts, venues)
    risk = RiskService(journal, path, notifications.publish, master_equity=master_equity)
    offers = CopyOffers(notifications.publish)
    engine = CopyEngine(
        path,
        master_equity=master_equity,
        after_position_change=risk.after_position_change,
        offer_copy=offers.offer,
    )
    confirmations = CopyConfirmations(offers, engine, journal)
    reports = build_reports(StatsStore(db), accounts, venues)
    services = Services(
        accounts,
        vault,
        venues,
        _then(engine.invalidate_follows, follows_changed),
        reports=reports,
        risk=risk,
        journal=journal,
        confirmations=confirmations,
        quiesce=engine.quiesce,
    )
    app = App(
        settings,
        db,
        accounts,
        journal,
        vault,
        venues,
        services,
        engine,
        notifications,
        ListenerSupervisor(engine.on_event),
        exchange,
        drivers,
        risk,
        confirmations,
        metrics,
        api_tokens=ApiTokens(ApiTokenStore(db)),
    )
    return app
