"""Turns a stored credential into its long-lived venue adapter: decrypted once, cached, closed
on shutdown. Adapters are built by per-venue factories so the engine never imports an SDK."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from copytrade.core.errors import NotFound, UserError
from copytrade.core.vault import Vault
from copytrade.core.venues.base import Venue
from copytrade.storage.accounts import AccountStore


@dataclass(frozen=True, slots=True)
class VenueAccount:
    """What a factory gets: the decrypted secrets exist only here and inside the adapter."""

    credential_id: str
    venue: str
    environment: str
    secrets: dict[str, str]


VenueFactory = Callable[[VenueAccount], Awaitable[Venue]]


class VenueRegistry:
    def __init__(self, accounts: AccountStore, vault: Vault, factories: dict[str, VenueFactory]) -> None:
        self._accounts = accounts
        self._vault = vault
        self._factories = factories
        self._venues: dict[str, asyncio.Future[Venue]] = {}

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
            future = asyncio.get_running_loop().create_future()
            self._venues[credential_id] = future
            try:
                venue = await self._open(credential_id)
            except asyncio.CancelledError:
                del self._venues[credential_id]
                future.cancel()
                raise
            except Exception as exc:
                del self._venues[credential_id]  # let the next call try again
                future.set_exception(exc)
                future.exception()  # marked retrieved: concurrent waiters re-raise it themselves
                raise
            future.set_result(venue)
        return await asyncio.shield(future)

    async def _open(self, credential_id: str) -> Venue:
        return await self.build(await self.account(credential_id))

    async def account(self, credential_id: str) -> VenueAccount:
        """The decrypted account, for building a connection of another kind (a master's stream)."""
        sealed = await self._accounts.sealed_credential(credential_id)
        if sealed is None:
            raise NotFound(f"credential {credential_id} no longer exists")
        secrets = self._vault.decrypt(sealed.ciphertext, owner_id=sealed.user_id, credential_id=sealed.id)
        return VenueAccount(sealed.id, sealed.venue, sealed.environment, secrets)

    async def forget(self, credential_id: str) -> None:
        """Close and drop the adapter of a removed or replaced credential."""
        future = self._venues.pop(credential_id, None)
        if future is not None and future.done() and not future.exception():
            await future.result().close()

    async def close(self) -> None:
        for credential_id in list(self._venues):
            await self.forget(credential_id)
