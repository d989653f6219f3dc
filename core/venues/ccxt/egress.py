"""ccxt's HTTP client for an account with an egress proxy: an aiohttp session whose resolver
checks every address of the proxy's host with the egress policy (``core/venues/egress.py``) as
the connection is made, and connects only to the addresses it checked (so a name rebound to
127.0.0.1 after /connect is refused). With a proxy set, the proxy's host is the only name this
session resolves: the exchange's host travels in the proxy's CONNECT request. REST calls and
ccxt.pro's websockets share the session."""

from __future__ import annotations

import socket
import ssl

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from core.venues.egress import EgressPolicy, EgressRefused


class CheckedResolver(AbstractResolver):
    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy
        self._resolver = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            answers = await self._resolver.resolve(host, port, family)
        except OSError:
            raise EgressRefused() from None  # a name that does not resolve reads as any refusal
        if not answers:
            raise EgressRefused()
        for answer in answers:
            self._policy.check_address(answer["host"])
        return answers

    async def close(self) -> None:
        await self._resolver.close()


def egress_session(policy: EgressPolicy, tls: ssl.SSLContext | bool) -> aiohttp.ClientSession:
    """The session ccxt uses for an account with an egress proxy (the same connector options as
    ccxt's own, ``ccxt/async_support/base/exchange.py`` ``open``, plus the checked resolver)."""
    connector = aiohttp.TCPConnector(
        ssl=tls,
        resolver=CheckedResolver(policy),
        family=socket.AF_UNSPEC,
        happy_eyeballs_delay=0,
        enable_cleanup_closed=True,
    )
    return aiohttp.ClientSession(connector=connector)
