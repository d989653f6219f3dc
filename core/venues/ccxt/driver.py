"""The ccxt family's driver: every exchange ccxt supports, one sandbox switch, URL overrides.

ccxt takes seconds to import, so this module imports it only when a driver is built or an
exchange outside the curated list is looked up: paper-only deployments never load it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from core.venues.base import FillSource, Venue
from core.venues.ccxt.constants import CREDENTIAL_FIELDS, CURATED_VENUES, DEFAULT_FIELDS
from core.venues.driver import MasterStream, VenueDriver, VenueSpec
from core.venues.egress import PUBLIC_ONLY, EgressPolicy, IPNetwork, check_egress_proxy
from core.venues.registry import VenueAccount

if TYPE_CHECKING:
    from core.venues.ccxt.markets import CcxtMarketsCache
    from core.venues.ccxt.throttler import WeightBudgets
    from core.venues.ccxt.venue import CcxtVenue


class CcxtSettings(Protocol):
    """The deployment settings this driver reads."""

    @property
    def mode(self) -> str: ...  # "paper", "testnet" or "live"

    @property
    def ccxt_exchanges(self) -> list[str]: ...

    @property
    def venue_urls(self) -> dict[str, dict[str, Any]]: ...

    @property
    def egress_allow(self) -> tuple[IPNetwork, ...]: ...  # private ranges egress proxies may be in


@functools.cache
def _exchange_spec(name: str) -> VenueSpec | None:
    """Any exchange ccxt supports, asking for the credentials ccxt says it requires."""
    import ccxt

    exchange_class = getattr(ccxt, name, None) if name in ccxt.exchanges else None
    if exchange_class is None:
        return None
    required = exchange_class().requiredCredentials
    fields = tuple(ours for theirs, ours in CREDENTIAL_FIELDS if required.get(theirs))
    return VenueSpec(name, exchange_class().name, fields or DEFAULT_FIELDS, optional_fields=("egress_proxy",))


def check_exchange_ids(names: Iterable[str]) -> list[str]:
    """``names`` as a list when ccxt knows each; ``ValueError`` names the first it does not."""
    import ccxt

    names = list(names)
    unknown = [name for name in names if name not in ccxt.exchanges]
    if unknown:
        raise ValueError(f"{unknown[0]!r} is not a ccxt exchange id (see ccxt.exchanges)")
    return names


class CcxtDriver(VenueDriver):
    """Opens accounts on the enabled ccxt exchanges; a testnet credential (or every one, in
    testnet mode) uses the exchange's sandbox. Markets, the TLS context and Binance's request-weight
    budgets (one per egress IP, ``throttler.WeightBudgets``) are shared by every account it opens."""

    name = "ccxt"
    curated = CURATED_VENUES

    def __init__(
        self,
        exchanges: Iterable[str],
        *,
        testnet_mode: bool = False,
        urls: Mapping[str, Mapping[str, Any]] | None = None,
        egress: EgressPolicy = PUBLIC_ONLY,
    ) -> None:
        from core.venues.ccxt.markets import CcxtMarketsCache
        from core.venues.ccxt.throttler import WeightBudgets

        self._exchanges = frozenset(exchanges)
        self._egress = egress
        self._testnet_mode = testnet_mode
        self._urls = urls if urls is not None else {}  # read at each open: the settings' own mapping
        self.markets: CcxtMarketsCache = CcxtMarketsCache()
        self.weights: WeightBudgets = WeightBudgets()

    @classmethod
    def from_settings(cls, settings: CcxtSettings) -> CcxtDriver:
        return cls(
            settings.ccxt_exchanges,
            testnet_mode=settings.mode == "testnet",
            urls=settings.venue_urls,
            egress=EgressPolicy(settings.egress_allow),
        )

    @classmethod
    def spec(cls, venue: str) -> VenueSpec | None:
        return super().spec(venue) or _exchange_spec(venue)

    @property
    def venue_names(self) -> frozenset[str]:
        return self._exchanges

    @classmethod
    def check_secrets(cls, secrets: dict[str, str]) -> dict[str, str]:
        if "egress_proxy" in secrets:
            check_egress_proxy(secrets["egress_proxy"])
        return secrets

    async def open_venue(self, account: VenueAccount) -> Venue:
        return self._create(account, streaming=False)

    async def open_fill_source(self, master: MasterStream) -> FillSource:
        """A ccxt.pro client of its own for the master's websocket (the listener closes it)."""
        from core.venues.ccxt.listener import CcxtFillListener

        stream = self._create(await master.account(), streaming=True)
        optional: dict[str, Any] = {}
        if master.known_symbols is not None:
            optional["known_symbols"] = master.known_symbols
        return CcxtFillListener(
            stream,
            master_id=master.master_id,
            checkpoint=master.checkpoint,
            save_checkpoint=master.save_checkpoint,
            **optional,
        )

    def _create(self, account: VenueAccount, *, streaming: bool) -> CcxtVenue:
        from core.venues.ccxt.venue import CcxtVenue

        return CcxtVenue.create(
            account.venue,
            account.secrets["api_key"],
            account.secrets["secret"],
            password=account.secrets.get("password"),
            egress_proxy=account.secrets.get("egress_proxy"),
            egress=self._egress,
            markets_cache=self.markets,
            weights=self.weights,
            sandbox=self._testnet_mode or account.environment == "testnet",
            url_overrides=self._urls.get(account.venue),
            streaming=streaming,
        )
