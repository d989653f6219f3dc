"""An account's egress proxy (``egress_proxy``): the one check of where the server may connect on
a user's behalf.

A user gives the proxy URL; the server then connects to it. Unchecked, that is a request forgery
(SSRF): a proxy at 127.0.0.1:6379, 169.254.169.254 or 10.0.0.1 makes the server talk to its own
Redis, the cloud's metadata service or the private network. So every address the proxy's host
stands for must be a public one: an address that is loopback, link-local, private, multicast,
unspecified, reserved (the documentation ranges 192.0.2.0/24, 198.51.100.0/24 and 203.0.113.0/24
among them: they are never routed), shared (100.64.0.0/10) or the metadata service's
(169.254.169.254, fd00:ec2::254) is refused, unless it lies in a range the operator allow-lists
(``COPYTRADE_EGRESS_ALLOW``: a proxy on the operator's own private network, or a test's listener).

The check runs where the connection is made, every time it is made, so a name that resolved to a
public address at /connect and to 127.0.0.1 later (DNS rebinding) is refused: the ccxt adapter's
HTTP client checks every address its resolver returns with ``EgressPolicy.check_address`` and
connects only to those (``core/venues/ccxt/egress.py``); Angel One's SDK resolves and checks the
proxy at each request (``EgressPolicy.pinned``, ``core/venues/angelone/sdk.py``). A proxy given as
an address is checked when the account's client is built (an address does not change).

Whatever the failure, a user sees one text (``EGRESS_UNUSABLE``): a refused address, a name that
does not resolve, a closed, silent or open port and a proxy that answers but will not forward all
read the same, so the server is no port scanner of other hosts."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlsplit, urlunsplit

from core.errors import PermissionDenied, UserError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: the cloud metadata services (AWS, GCP, Azure: 169.254.169.254; AWS over IPv6: fd00:ec2::254),
#: named although the link-local and private rules refuse them already
METADATA_ADDRESSES = (ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"))
#: the one text a user sees when an egress proxy cannot be used, whatever the cause
EGRESS_UNUSABLE = (
    "the egress proxy could not be used (refused, or not reachable as an HTTP proxy); nothing was saved. "
    "Give a proxy on a public address that forwards to the exchange"
)
_URL_EXAMPLE = "http://user:pass@proxy.example.com:3128"


class EgressRefused(PermissionDenied):
    """The proxy's address may not be connected to: nothing was sent (at /connect a user reads
    ``EGRESS_UNUSABLE`` instead, as for any other failure through the proxy)."""

    def __init__(self) -> None:
        super().__init__(
            "nothing was sent: the account's egress proxy is not on a public address (or its name does not resolve)"
        )


class ProxyAddress(NamedTuple):
    host: str
    port: int


def check_egress_proxy(proxy: str) -> str:
    """An account's egress proxy as stored: an http:// or https:// URL with a host (the proxy's
    own user and password may be in it); ``UserError`` says what is wrong. Where it points is
    checked when it is connected to (``EgressPolicy``)."""
    try:
        url = urlsplit(proxy)
        well_formed = url.scheme in ("http", "https") and bool(url.hostname) and (url.port or 1) > 0
    except ValueError:  # a port that is not a number from 0 to 65535
        well_formed = False
    if not well_formed:
        raise UserError(f"the egress proxy must be an http:// or https:// URL, e.g. {_URL_EXAMPLE}")
    return proxy


def proxy_address(proxy: str) -> ProxyAddress:
    """The host and port a proxy URL (already ``check_egress_proxy``-ed) connects to."""
    url = urlsplit(proxy)
    assert url.hostname is not None
    return ProxyAddress(url.hostname, url.port or (443 if url.scheme == "https" else 80))


def parse_networks(text: str | Iterable[str | IPNetwork]) -> tuple[IPNetwork, ...]:
    """``COPYTRADE_EGRESS_ALLOW``: a comma list of CIDR ranges (``10.8.0.0/16,fd12::/64``); a bare
    address is its own range. ``ValueError`` names the first that is not one."""
    parts = text.split(",") if isinstance(text, str) else text
    networks = []
    for part in (str(p).strip() for p in parts):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not an IP range (CIDR, e.g. 10.8.0.0/16)") from None
    return tuple(networks)


def _forbidden(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _forbidden(address.ipv4_mapped)  # ::ffff:127.0.0.1 is 127.0.0.1
    return (
        address in METADATA_ADDRESSES
        or address.is_loopback
        or address.is_link_local
        or address.is_private
        or address.is_multicast
        or address.is_unspecified
        or address.is_reserved
        or not address.is_global  # shared (100.64.0.0/10) and any other range not routed publicly
    )


@dataclass(frozen=True)
class EgressPolicy:
    """Where egress proxies may be: public addresses, and the ``allowed`` ranges."""

    allowed: Sequence[IPNetwork] = ()

    def check_address(self, address: str) -> None:
        """``EgressRefused`` unless this address may be connected to."""
        try:
            parsed = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 scope id is no part of it
        except ValueError:
            raise EgressRefused() from None
        if _forbidden(parsed) and not any(parsed in network for network in self.allowed):
            raise EgressRefused()

    def check_literal(self, proxy: str) -> None:
        """A proxy given as an address is checked here, once (an address cannot be rebound); a
        name is checked by ``resolve`` each time it is connected to."""
        host = proxy_address(proxy).host
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return
        self.check_address(host)

    def resolve(self, host: str, port: int, family: int = socket.AF_UNSPEC) -> list[str]:
        """Every address ``host`` stands for, when every one may be connected to (one forbidden
        address refuses them all: a resolver may hand out any of them); ``EgressRefused``
        otherwise, a name that does not resolve included. Blocking: run it in a thread."""
        try:
            answers = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise EgressRefused() from None
        addresses = list(dict.fromkeys(str(answer[4][0]) for answer in answers))
        if not addresses:
            raise EgressRefused()
        for address in addresses:
            self.check_address(address)
        return addresses

    def pinned(self, proxy: str) -> str:
        """The proxy URL to connect to now, for a client that resolves names itself (requests):
        the host resolved and every address checked (``resolve``). An http:// proxy comes back
        with its host replaced by the first checked address, so the connection goes where the
        check looked, with no second lookup a rebinding could answer. An https:// proxy keeps its
        name, since its certificate is checked against it: a rebound address holding no
        certificate for that name is never sent a request. Blocking: run it in a thread."""
        self.check_literal(proxy)
        host, port = proxy_address(proxy)
        addresses = self.resolve(host, port)
        url = urlsplit(proxy)
        if url.scheme != "http":
            return proxy
        userinfo, at, _ = url.netloc.rpartition("@")
        address = addresses[0]
        shown = f"[{address}]" if ":" in address else address
        return urlunsplit(url._replace(netloc=f"{userinfo}{at}{shown}:{port}"))


#: the policy without an allow-list: public addresses only
PUBLIC_ONLY = EgressPolicy()
