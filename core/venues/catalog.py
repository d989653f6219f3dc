"""The venue families this build knows, by name, and what each venue asks a user for."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from core.venues.angelone.driver import AngelOneDriver
from core.venues.ccxt.driver import CcxtDriver
from core.venues.driver import VenueDriver, VenueSpec
from core.venues.paper.driver import PaperDriver

__all__ = ["DRIVERS", "FIELD_PROMPTS", "VENUES", "VenueSpec", "clean_secrets", "driver_class", "venue_spec"]

#: every driver of this build by its name, in the order their venues are offered
DRIVERS: dict[str, type[VenueDriver]] = {driver.name: driver for driver in (CcxtDriver, AngelOneDriver, PaperDriver)}

#: the venues offered by name (any other ccxt exchange can be connected too)
VENUES: dict[str, VenueSpec] = {spec.name: spec for driver in DRIVERS.values() for spec in driver.curated}

FIELD_PROMPTS = {
    "api_key": "API key",
    "secret": "API secret",
    "password": "API passphrase",
    "client_code": "client code",
    "pin": "PIN",
    "totp_secret": "TOTP secret (the base32 seed shown when you enabled TOTP)",
    "balance": "starting balance in USDT",
    "uid": "user id (UID)",
    "egress_proxy": "egress proxy URL (an HTTP(S) proxy whose requests leave from the static IP you registered "
    "with Angel One, e.g. http://user:pass@203.0.113.7:3128; required for live orders)",
    "static_ip": "static IP registered with Angel One for this client (the proxy's outgoing address)",
    "algo_id": "exchange-registered algo id (only to send above 10 orders a second)",
    "algo_orders_per_second": "orders per second registered for that algo",
}


@functools.cache
def driver_class(venue: str) -> type[VenueDriver] | None:
    """The family that serves ``venue``; ``None`` when nothing by that name exists."""
    return next((driver for driver in DRIVERS.values() if driver.spec(venue) is not None), None)


def venue_spec(name: str) -> VenueSpec | None:
    """The spec of a named venue: the curated ones, else any exchange ccxt supports (its
    required credentials as fields); ``None`` when nothing by that name exists."""
    driver = driver_class(name)
    return driver.spec(name) if driver is not None else None


def clean_secrets(spec: VenueSpec, raw: Mapping[str, str]) -> dict[str, str]:
    """``raw`` trimmed and checked by the driver of ``spec``'s venue; ``UserError`` says what is wrong."""
    driver = driver_class(spec.name)
    if driver is None:
        raise LookupError(f"no driver serves {spec.name}")  # specs come from drivers: never
    return driver.clean_secrets(spec, raw)
