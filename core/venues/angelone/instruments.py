"""Angel One's instrument master (the "scrip master" JSON), loaded once a day and shared.

Symbols are addressed as ``"EXCHANGE:TRADINGSYMBOL"``, e.g. ``"NSE:SBIN-EQ"`` or
``"NFO:NIFTY24DEC24000CE"``: the exchange segment (``exch_seg``) and the trading symbol
(``symbol``) exactly as the scrip master spells them. The master file lists about 150 000
contracts and is republished every morning, so one ``InstrumentMaster`` object is built per
process and handed to every Angel One account; nothing is kept in module globals.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

import requests

from core.errors import TemporaryError, UnknownSymbol
from core.model import MarketRules
from core.venues.angelone.constants import (
    DOWNLOAD_TIMEOUT_SECONDS,
    IST,
    PAISE_PER_RUPEE,
    RELOAD_RETRY_DELAY,
    SCRIP_MASTER_URL,
    SUPPORTED_EXCHANGES,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Instrument:
    """One tradable contract as the order API needs it (token) and the engine sizes it (lot, tick)."""

    exchange: str
    trading_symbol: str
    token: str
    name: str
    lot_size: Decimal
    tick_size: Decimal  # rupees (the file gives paise)
    instrument_type: str = ""
    expiry: str = ""

    @property
    def symbol(self) -> str:
        return f"{self.exchange}:{self.trading_symbol}"

    def market_rules(self) -> MarketRules:
        return MarketRules(
            symbol=self.symbol,
            base=self.name or self.trading_symbol,
            quote="INR",
            quantity_step=self.lot_size,
            price_tick=self.tick_size,
            min_quantity=self.lot_size,
            derivative=bool(self.instrument_type),
        )


def split_symbol(symbol: str) -> tuple[str, str]:
    """``"NSE:SBIN-EQ"`` → ``("NSE", "SBIN-EQ")``; raises ``UnknownSymbol`` for any other shape."""
    exchange, sep, trading_symbol = symbol.partition(":")
    if not sep or not trading_symbol or exchange.upper() not in SUPPORTED_EXCHANGES:
        raise UnknownSymbol(
            f"{symbol!r} is not an Angel One symbol: write EXCHANGE:TRADINGSYMBOL with the exchange one of "
            f"{', '.join(sorted(SUPPORTED_EXCHANGES))}, e.g. NSE:SBIN-EQ"
        )
    return exchange.upper(), trading_symbol.upper()


def parse_scrip_master(rows: list[Mapping[str, str]]) -> dict[str, Instrument]:
    """Index the scrip master rows of the supported exchanges by ``EXCHANGE:TRADINGSYMBOL``.

    Rows with an unreadable lot or tick are dropped: a wrong lot size would size orders wrongly.
    """
    instruments: dict[str, Instrument] = {}
    for row in rows:
        exchange = str(row.get("exch_seg", "")).upper()
        if exchange not in SUPPORTED_EXCHANGES:
            continue
        try:
            lot_size = Decimal(str(row["lotsize"]))
            tick_size = Decimal(str(row["tick_size"])) / PAISE_PER_RUPEE
            instrument = Instrument(
                exchange=exchange,
                trading_symbol=str(row["symbol"]).upper(),
                token=str(row["token"]),
                name=str(row.get("name", "")),
                lot_size=lot_size,
                tick_size=tick_size.normalize(),
                instrument_type=str(row.get("instrumenttype", "")),
                expiry=str(row.get("expiry", "")),
            )
        except (KeyError, InvalidOperation, TypeError):
            continue
        if lot_size <= 0 or tick_size <= 0 or lot_size != lot_size.to_integral_value():
            continue
        instruments[instrument.symbol] = instrument
    return instruments


def download_scrip_master(url: str) -> list[Mapping[str, str]]:
    """Blocking download and JSON decode; run in a worker thread."""
    response = requests.get(url, timeout=DOWNLOAD_TIMEOUT_SECONDS)
    response.raise_for_status()
    rows: list[Mapping[str, str]] = json.loads(response.content)
    return rows


class InstrumentMaster:
    """The scrip master, loaded on first use and again once the date in India has changed.

    Shared by every Angel One account of the process. A failed daily reload keeps the previous
    day's list (equities and far contracts are unchanged) and is retried a few minutes later.
    """

    def __init__(
        self,
        url: str = SCRIP_MASTER_URL,
        *,
        download: Callable[[str], list[Mapping[str, str]]] = download_scrip_master,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._url = url
        self._download = download
        self._clock = clock
        self._instruments: dict[str, Instrument] = {}
        self._symbols: frozenset[str] = frozenset()
        self._loaded_on: date | None = None
        self._next_attempt: datetime | None = None
        self._lock = asyncio.Lock()

    @property
    def loaded_on(self) -> date | None:
        """The date in India of the list in use (None before the first load)."""
        return self._loaded_on

    async def instrument(self, symbol: str) -> Instrument:
        """The contract for ``"EXCHANGE:TRADINGSYMBOL"``; raises ``UnknownSymbol`` if not listed."""
        key = ":".join(split_symbol(symbol))
        await self.ensure_loaded()
        try:
            return self._instruments[key]
        except KeyError:
            raise UnknownSymbol(f"{symbol} is not in Angel One's instrument list of {self._loaded_on}") from None

    async def symbols(self) -> frozenset[str]:
        """Every listed ``EXCHANGE:TRADINGSYMBOL`` of the supported exchanges."""
        await self.ensure_loaded()
        return self._symbols

    async def ensure_loaded(self) -> None:
        """Load today's list unless it is already loaded (cheap when it is)."""
        now = self._clock()
        if self._is_current(now):
            return
        async with self._lock:
            now = self._clock()
            if self._is_current(now):
                return
            await self._load(now)

    async def refresh(self) -> None:
        """Reload now whatever the date (the daily scheduler job)."""
        async with self._lock:
            await self._load(self._clock())

    def _is_current(self, now: datetime) -> bool:
        if self._loaded_on == now.astimezone(IST).date():
            return True
        return bool(self._instruments) and self._next_attempt is not None and now < self._next_attempt

    async def _load(self, now: datetime) -> None:
        try:
            rows = await asyncio.to_thread(self._download, self._url)
            instruments = await asyncio.to_thread(parse_scrip_master, rows)
            if not instruments:
                raise ValueError("no usable contract in the list")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any download or decode failure: the list is unusable
            if not self._instruments:
                raise TemporaryError(
                    f"Angel One's instrument list could not be loaded ({type(exc).__name__})"
                ) from None
            self._next_attempt = now + RELOAD_RETRY_DELAY
            log.warning(
                "Angel One instrument list reload failed (%s); keeping the list of %s",
                type(exc).__name__,
                self._loaded_on,
            )
            return
        self._instruments = instruments
        self._symbols = frozenset(instruments)
        self._loaded_on = now.astimezone(IST).date()
        self._next_attempt = None
        log.info("Angel One instrument list loaded: %d contracts", len(instruments))
