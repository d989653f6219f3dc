"""What an Angel One account logs in with, where it connects, and the redaction of both from
anything that may reach a log or a user."""

from __future__ import annotations

import binascii
import ipaddress
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pyotp

from core.errors import UserError
from core.venues.angelone.constants import (
    ANGEL_ONE_VENUE,
    ORDER_UPDATES_URL,
    REQUEST_TIMEOUT_SECONDS,
    REST_ROOT,
    SCRIP_MASTER_URL,
)
from core.venues.egress import PUBLIC_ONLY, EgressPolicy, check_egress_proxy


def is_totp_seed(secret: str) -> bool:
    """True when ``secret`` is a base32 seed pyotp can make codes from."""
    try:
        pyotp.TOTP(secret).now()
    except (binascii.Error, ValueError):
        return False
    return True


def check_egress(values: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The egress proxy URL and static IP of a credential (both or neither); ``UserError`` says
    what is wrong. Angel One accepts API orders only from the client's registered static IP."""
    proxy = str(values.get("egress_proxy") or "").strip() or None
    static_ip = str(values.get("static_ip") or "").strip() or None
    if (proxy is None) != (static_ip is None):
        raise UserError(
            "an Angel One egress needs both the proxy URL and the static IP registered for the client with Angel One"
        )
    if proxy is None or static_ip is None:
        return None, None
    check_egress_proxy(proxy)
    try:
        address = ipaddress.ip_address(static_ip)
    except ValueError:
        raise UserError(f"the static IP {static_ip!r} is not an IP address") from None
    return proxy, str(address)


@dataclass(frozen=True)
class AngelOneCredentials:
    """What one Angel One account logs in with. ``repr`` shows the client code only."""

    api_key: str = field(repr=False)
    client_code: str
    pin: str = field(repr=False)
    totp_secret: str = field(repr=False)
    #: an exchange-registered algo allowed above the 10 orders/s threshold, and its registered rate
    algo_id: str | None = None
    algo_orders_per_second: int | None = None
    #: the client's egress: an HTTP(S) proxy whose requests leave from ``static_ip``, the address
    #: registered with Angel One (every request of the account goes through it)
    egress_proxy: str | None = field(default=None, repr=False)
    static_ip: str | None = None

    REQUIRED = ANGEL_ONE_VENUE.fields

    @classmethod
    def from_mapping(cls, values: Mapping[str, str]) -> AngelOneCredentials:
        """Build from a stored credential dict; ``UserError`` names what is missing or malformed."""
        missing = [key for key in cls.REQUIRED if not str(values.get(key) or "").strip()]
        if missing:
            raise UserError(f"Angel One credentials need {', '.join(cls.REQUIRED)}; missing: {', '.join(missing)}")
        secret = str(values["totp_secret"]).strip().replace(" ", "").upper()
        if not is_totp_seed(secret):
            raise UserError("the Angel One TOTP secret is not valid: paste the base32 key shown under the QR code")
        algo_id = str(values.get("algo_id") or "").strip() or None
        rate = str(values.get("algo_orders_per_second") or "").strip()
        if (algo_id is None) != (not rate):
            raise UserError("an Angel One algo id and its registered orders per second go together")
        if rate and (not rate.isdigit() or int(rate) <= 0):
            raise UserError("the algo's registered orders per second must be a whole number above 0")
        egress_proxy, static_ip = check_egress(values)
        return cls(
            str(values["api_key"]).strip(),
            str(values["client_code"]).strip().upper(),
            str(values["pin"]).strip(),
            secret,
            algo_id,
            int(rate) if rate else None,
            egress_proxy,
            static_ip,
        )

    def current_totp(self) -> str:
        return pyotp.TOTP(self.totp_secret).now()


@dataclass(frozen=True)
class AngelOneEndpoints:
    """Where the SDK connects (tests point these at a local fake)."""

    rest_root: str = REST_ROOT
    order_updates_url: str = ORDER_UPDATES_URL
    scrip_master_url: str = SCRIP_MASTER_URL
    request_timeout: float = REQUEST_TIMEOUT_SECONDS
    #: the static IP registered with Angel One (sent as X-ClientPublicIP); the SDK sends a fixed one
    public_ip: str | None = None
    #: where an account's egress proxy may be (checked at every connection to it)
    egress: EgressPolicy = PUBLIC_ONLY


class SecretRedactor:
    """Redacts one account's secrets from any text that may reach a log or an exception."""

    def __init__(self, credentials: AngelOneCredentials) -> None:
        self._credentials = credentials
        self.tokens: list[str] = []

    def redact(self, text: str) -> str:
        credentials = self._credentials
        candidates = [credentials.api_key, credentials.pin, credentials.totp_secret, *self.tokens]
        if credentials.egress_proxy:  # may carry the proxy's user and password
            candidates += [credentials.egress_proxy, urlsplit(credentials.egress_proxy).password or ""]
        now = int(time.time())
        totp = pyotp.TOTP(credentials.totp_secret)
        candidates += [totp.at(now + offset) for offset in (-30, 0, 30)]
        for secret in sorted({c for c in candidates if c and len(c) >= 4}, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text
