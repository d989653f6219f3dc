"""The venues a follower can connect, and what each one needs from them."""

from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class VenueSpec:
    name: str  # stored with credentials: the adapter's venue id
    title: str  # shown to users
    fields: tuple[str, ...]  # secrets asked for, in order
    identity_field: str = "api_key"  # fingerprinted so users can tell keys apart
    optional_fields: tuple[str, ...] = ()


VENUES: dict[str, VenueSpec] = {
    spec.name: spec
    for spec in (
        VenueSpec("binanceusdm", "Binance USD-M futures", ("api_key", "secret")),
        VenueSpec("binance", "Binance spot", ("api_key", "secret")),
        VenueSpec("bybit", "Bybit", ("api_key", "secret")),
        VenueSpec("okx", "OKX", ("api_key", "secret", "password")),
        VenueSpec("angelone", "Angel One", ("api_key", "client_code", "pin", "totp_secret")),
        VenueSpec("paper", "Paper trading (simulated)", ("api_key",), optional_fields=("balance",)),
    )
}

FIELD_PROMPTS = {
    "api_key": "API key",
    "secret": "API secret",
    "password": "API passphrase",
    "client_code": "client code",
    "pin": "PIN",
    "totp_secret": "TOTP secret (the base32 seed shown when you enabled TOTP)",
    "balance": "starting balance in USDT",
    "uid": "user id (UID)",
}


#: ccxt's names for the credentials an exchange requires, mapped to the fields asked for
_CCXT_FIELDS = (("apiKey", "api_key"), ("secret", "secret"), ("password", "password"), ("uid", "uid"))


@functools.cache
def venue_spec(name: str) -> VenueSpec | None:
    """The spec of a named venue: the known ones above, else any exchange ccxt supports
    (its required credentials as fields); ``None`` when nothing by that name exists."""
    if name in VENUES:
        return VENUES[name]
    import ccxt  # local: paper-only deployments never load it

    exchange_class = getattr(ccxt, name, None) if name in ccxt.exchanges else None
    if exchange_class is None:
        return None
    required = exchange_class().requiredCredentials
    fields = tuple(ours for theirs, ours in _CCXT_FIELDS if required.get(theirs))
    return VenueSpec(name, exchange_class().name, fields or ("api_key", "secret"))
