"""Markets shared by every account of one ccxt exchange, and one TLS context for them all."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any


class CcxtMarketsCache:
    """Markets loaded once per (exchange id, sandbox) and shared by every account instance,
    and the one TLS context they all use.

    An object passed in by whoever builds venues, never module state.
    """

    def __init__(self) -> None:
        self._sources: dict[tuple[str, bool], Any] = {}
        self._locks: dict[tuple[str, bool], asyncio.Lock] = {}
        self._ssl_contexts: dict[str | None, ssl.SSLContext] = {}

    def ssl_context(self, cafile: str | None) -> ssl.SSLContext:
        """ccxt builds a TLS context per instance on its first request, loading the whole CA
        bundle: ~25 ms of CPU and a copy of the store per account (measured in bench/)."""
        context = self._ssl_contexts.get(cafile)
        if context is None:
            context = self._ssl_contexts[cafile] = ssl.create_default_context(cafile=cafile)
        return context

    async def attach(self, exchange: Any, *, sandbox: bool) -> None:
        """Give ``exchange`` the shared markets, loading them with it if nobody has yet."""
        key = (exchange.id, sandbox)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            source = self._sources.get(key)
            if source is None:
                await exchange.load_markets()
                self._sources[key] = exchange
                return
        exchange.set_markets_from_exchange(source)

    def forget(self, exchange_id: str, *, sandbox: bool) -> None:
        """Drop a venue's markets so the next ``attach`` reloads them (e.g. a daily refresh)."""
        self._sources.pop((exchange_id, sandbox), None)
