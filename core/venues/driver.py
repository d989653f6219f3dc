"""What a venue package gives the rest of the system: one driver per venue family.

A driver class knows its venues' credentials (the fields asked for and their checks) without
being built, so the bot and the services can ask for and check keys in any deployment. A driver
object is built once per process with that deployment's settings and holds what the family's
accounts share (markets, sessions, the simulated exchange): it opens follower venues and master
fill streams, adds its periodic jobs and releases everything on ``close``. The app looks a
driver up by venue name and never needs to know which vendor it drives.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Protocol

from core.errors import UserError
from core.venues.base import FillSource, Venue
from core.venues.registry import VenueAccount, VenueFactory

#: the longest secret a user may paste (any longer is a paste mistake)
MAX_SECRET_LENGTH = 512


@dataclass(frozen=True, slots=True)
class VenueSpec:
    name: str  # stored with credentials: the adapter's venue id
    title: str  # shown to users
    fields: tuple[str, ...]  # secrets asked for, in order
    identity_field: str = "api_key"  # fingerprinted so users can tell keys apart
    optional_fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MasterStream:
    """What opening a master's fill stream may need; the account is decrypted only on demand."""

    master_id: int
    venue: Venue  # the master's adapter, opened by this driver
    account: Callable[[], Awaitable[VenueAccount]]
    checkpoint: Callable[[], Awaitable[datetime | None]]  # where the master's journaled history ends
    #: a recovery found nothing missing up to this time (listeners that recover gaps save it)
    save_checkpoint: Callable[[datetime], Awaitable[None]] | None = None
    #: symbols the journal has seen the master trade (where a gap may hide executions)
    known_symbols: Callable[[], Awaitable[set[str]]] | None = None
    #: of these venue order ids of the master, the ones with journaled fills: their journaled
    #: quantity and average price (listeners that replay orders, not trades, resume from it)
    order_progress: Callable[[Sequence[str]], Awaitable[Mapping[str, tuple[Decimal, Decimal]]]] | None = None


class JobScheduler(Protocol):
    """The part of APScheduler's ``AsyncIOScheduler`` a driver uses."""

    def add_job(self, func: Callable[..., Any], trigger: str, **options: Any) -> object: ...


def secret_label(name: str) -> str:
    """A credential field as named in messages: ``totp_secret`` -> "totp secret"."""
    return name.replace("_", " ")


class VenueDriver(abc.ABC):
    """One venue family (see the module docstring)."""

    #: the driver's own name (a family may serve several venues: every ccxt exchange)
    name: ClassVar[str]
    #: the venues offered by name, in the order users see them
    curated: ClassVar[tuple[VenueSpec, ...]] = ()

    @classmethod
    def spec(cls, venue: str) -> VenueSpec | None:
        """The spec of ``venue`` if this family serves it, else ``None``."""
        return next((spec for spec in cls.curated if spec.name == venue), None)

    @classmethod
    def clean_secrets(cls, spec: VenueSpec, raw: Mapping[str, str]) -> dict[str, str]:
        """The secrets a user typed, trimmed and checked; ``UserError`` says what is wrong."""
        cleaned: dict[str, str] = {}
        for name in spec.fields:
            value = (raw.get(name) or "").strip()
            if not value:
                raise UserError(f"the {secret_label(name)} is missing")
            if len(value) > MAX_SECRET_LENGTH or any(c.isspace() for c in value):
                raise UserError(
                    f"the {secret_label(name)} does not look right (no spaces, at most {MAX_SECRET_LENGTH} characters)"
                )
            cleaned[name] = value
        for name in spec.optional_fields:
            value = (raw.get(name) or "").strip()
            if value:
                cleaned[name] = value
        return cls.check_secrets(cleaned)

    @classmethod
    def check_secrets(cls, secrets: dict[str, str]) -> dict[str, str]:
        """The family's own checks on trimmed secrets (a PIN's digits, a TOTP seed), in the
        form they are stored."""
        return secrets

    @property
    @abc.abstractmethod
    def venue_names(self) -> frozenset[str]:
        """The venues this driver opens in this deployment."""

    @abc.abstractmethod
    async def open_venue(self, account: VenueAccount) -> Venue:
        """A long-lived adapter for one follower (or master) account."""

    @abc.abstractmethod
    async def open_fill_source(self, master: MasterStream) -> FillSource:
        """The master's stream of executions."""

    def register_jobs(self, scheduler: JobScheduler) -> None:  # noqa: B027 (an optional hook: nothing by default)
        """Add the family's periodic work (session refresh, instrument reloads); none by default."""

    async def close(self) -> None:  # noqa: B027 (an optional hook: nothing by default)
        """Release what the family's accounts share (adapters are closed by the registry)."""


class VenueDrivers:
    """The drivers of one deployment, found by the venue they serve."""

    def __init__(self, drivers: Iterable[VenueDriver]) -> None:
        self._drivers = tuple(drivers)
        self._by_venue = {venue: driver for driver in self._drivers for venue in sorted(driver.venue_names)}

    def __iter__(self) -> Iterator[VenueDriver]:
        return iter(self._drivers)

    def factories(self) -> dict[str, VenueFactory]:
        """Each venue's adapter factory, for the ``VenueRegistry``."""
        return {venue: driver.open_venue for venue, driver in self._by_venue.items()}

    def for_venue(self, venue: str) -> VenueDriver | None:
        return self._by_venue.get(venue)

    def register_jobs(self, scheduler: JobScheduler) -> None:
        for driver in self._drivers:
            driver.register_jobs(scheduler)

    async def close(self) -> None:
        """Every driver, even when one fails (the failure is raised after)."""
        results = await asyncio.gather(*(driver.close() for driver in self._drivers), return_exceptions=True)
        for error in results:
            if isinstance(error, BaseException):
                raise error
