"""Turns a stored credential into its long-lived venue adapter: decrypted once, cached, closed
on shutdown. Adapters are built by per-venue factories so the engine never imports an SDK."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from core.errors import NotFound, UserError
from core.vault import Vault
from core.venues.base import Venue

log = logging.getLogger(__name__)

#: adapters built between two yields to the event loop
OPEN_BATCH = 20
#: accounts warming up at once (each makes a request or two)
WARM_UP_CONCURRENCY = 50


class SealedCredential(Protocol):
    """A stored credential as the registry reads it: still encrypted."""

    @property
    def id(self) -> str: ...

    @property
    def user_id(self) -> int: ...

    @property
    def venue(self) -> str: ...

    @property
    def environment(self) -> str: ...

    @property
    def ciphertext(self) -> bytes: ...


class SealedCredentials(Protocol):
    """Where sealed credentials are read from (storage's ``AccountStore``)."""

    async def sealed_credential(self, credential_id: str) -> SealedCredential | None: ...

    async def sealed_credentials(self, credential_ids: Sequence[str]) -> Sequence[SealedCredential]: ...


@dataclass(frozen=True, slots=True)
class VenueAccount:
    """What a factory gets: the decrypted secrets exist only here and inside the adapter."""

    credential_id: str
    venue: str
    environment: str
    secrets: dict[str, str]


VenueFactory = Callable[[VenueAccount], Awaitable[Venue]]


class VenueRegistry:
    def __init__(self, accounts: SealedCredentials, vault: Vault, factories: dict[str, VenueFactory]) -> None:
        self._accounts = accounts
        self._vault = vault
        self._factories = factories
        self._venues: dict[str, asyncio.Future[Venue]] = {}

    def register(self, venue: str, factory: VenueFactory) -> None:
        """Add a venue to this deployment (the benchmarks' instant venue, a plug-in adapter)."""
        self._factories[venue] = factory

    @property
    def venue_names(self) -> frozenset[str]:
        return frozenset(self._factories)

    async def build(self, account: VenueAccount) -> Venue:
        """A fresh adapter (not cached): used to validate keys before they are stored."""
        factory = self._factories.get(account.venue)
        if factory is None:
            raise UserError(f"{account.venue} is not available in this deployment")
        return await factory(account)

    async def venue_for(self, credential_id: str) -> Venue:
        future = self._venues.get(credential_id)
        if future is None:
            return await self._open_once(credential_id, self.account(credential_id))
        return await asyncio.shield(future)

    async def open_many(self, credential_ids: Sequence[str], *, warm_up: bool = False) -> None:
        """Open every adapter not yet open, reading their credentials in one query: after a
        restart the first fill would otherwise open 10,000 followers one database read at a
        time. Builds yield to the event loop every few adapters (a ccxt instance costs ~3 ms
        of CPU), so copies in flight keep moving. With ``warm_up``, each adapter then fetches
        what its first order needs, a bounded number at a time. Failures are left for
        ``venue_for`` to raise to the copy that needs the venue."""
        wanted = [c for c in dict.fromkeys(credential_ids) if c not in self._venues]
        sealed = {s.id: s for s in await self._accounts.sealed_credentials(wanted)} if wanted else {}
        for start in range(0, len(wanted), OPEN_BATCH):
            await asyncio.gather(*(self._open_sealed(c, sealed.get(c)) for c in wanted[start : start + OPEN_BATCH]))
            await asyncio.sleep(0)
        if warm_up:
            slots = asyncio.Semaphore(WARM_UP_CONCURRENCY)

            async def warm(credential_id: str) -> None:
                future = self._venues.get(credential_id)
                if future is None or not future.done() or future.cancelled() or future.exception():
                    return
                async with slots:
                    try:
                        await future.result().warm_up()
                    except Exception as exc:  # the first order will try again and report it
                        log.info("warming up the venue of credential %s failed: %s", credential_id, exc)

            await asyncio.gather(*(warm(c) for c in dict.fromkeys(credential_ids)))

    async def _open_sealed(self, credential_id: str, sealed: SealedCredential | None) -> None:
        if sealed is None or credential_id in self._venues:
            return  # a missing credential is reported by venue_for

        async def unsealed() -> VenueAccount:
            return self._unseal(sealed)

        try:
            await self._open_once(credential_id, unsealed())
        except Exception:
            return  # the next venue_for tries again and reports the error

    async def _open_once(self, credential_id: str, account: Awaitable[VenueAccount]) -> Venue:
        """Build the adapter with concurrent callers waiting on one future; a failure is
        forgotten so that the next call tries again."""
        future = asyncio.get_running_loop().create_future()
        self._venues[credential_id] = future
        try:
            venue = await self.build(await account)
        except asyncio.CancelledError:
            del self._venues[credential_id]
            future.cancel()
            raise
        except Exception as exc:
            del self._venues[credential_id]
            future.set_exception(exc)
            future.exception()  # marked retrieved: concurrent waiters re-raise it themselves
            raise
        future.set_result(venue)
        return venue

    async def account(self, credential_id: str) -> VenueAccount:
        """The decrypted account, for building a connection of another kind (a master's stream)."""
        sealed = await self._accounts.sealed_credential(credential_id)
        if sealed is None:
            raise NotFound(f"credential {credential_id} no longer exists")
        return self._unseal(sealed)

    def _unseal(self, sealed: SealedCredential) -> VenueAccount:
        secrets = self._vault.decrypt(sealed.ciphertext, owner_id=sealed.user_id, credential_id=sealed.id)
        return VenueAccount(sealed.id, sealed.venue, sealed.environment, secrets)

    async def forget(self, credential_id: str) -> None:
        """Close and drop the adapter of a removed or replaced credential."""
        future = self._venues.pop(credential_id, None)
        if future is not None and future.done() and not future.exception():
            await future.result().close()

    async def close(self) -> None:
        """All at once: ccxt waits 250 ms in each ``close``, so a thousand accounts closed one
        after another would outlast the 30 s a platform gives a stopping process."""
        results = await asyncio.gather(*(self.forget(c) for c in list(self._venues)), return_exceptions=True)
        for error in (r for r in results if isinstance(r, Exception)):
            log.warning("closing a venue failed: %s", error)
