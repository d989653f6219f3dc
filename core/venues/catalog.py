"""The venues a follower can connect, and what each one needs from them."""

from __future__ import annotations

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
}
