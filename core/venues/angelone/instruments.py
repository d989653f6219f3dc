"""Angel One's instrument master (the "scrip master" JSON), loaded once a day and shared.

Symbols are addressed as ``"EXCHANGE:TRADINGSYMBOL"``, e.g. ``"NSE:SBIN-EQ"`` or
``"NFO:NIFTY24DEC24000CE"``: the exchange segment (``exch_seg``) and the trading symbol
(``symbol``) exactly as the scrip master spells them. The master file lists about 150 000
contracts and is republished every morning, so one ``InstrumentMaster`` object is built per
process and handed to every Angel One account; nothing is kept in module globals.

The scrip master has no freeze quantity (NSE's most units per F&O order): it comes from
``freeze_quantities.json`` beside this module (``FreezeQuantities``), a table an operator updates
when NSE revises the limits (docs/angelone.md, "Freeze quantities"), and bounds each order
(``MarketRules.max_quantity``): a larger copy is sent as slices of whole lots.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from importlib import resources

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
    #: the most units one order may ask for (NSE's freeze quantity; ``None``: no known limit)
    freeze_quantity: Decimal | None = None

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
            max_quantity=self.freeze_quantity,
            derivative=bool(self.instrument_type),
        )


@dataclass(frozen=True, slots=True)
class FreezeQuantities:
    """NSE's quantity freeze limits: an order with more units than its contract's freeze quantity
    is rejected by the exchange ("orders … with quantity more than the respective freeze quantity
    limit … shall be frozen and automatically rejected"), the freeze quantity itself is taken. Per
    exchange segment and underlying (the scrip master's ``name``); a contract not listed has no
    known limit. ``as_of`` and ``source`` say which revision the table is."""

    limits: Mapping[str, Mapping[str, Decimal]]
    as_of: date
    source: str

    @classmethod
    def packaged(cls) -> FreezeQuantities:
        """The table shipped with the package (``freeze_quantities.json``)."""
        text = resources.files(__package__).joinpath("freeze_quantities.json").read_text(encoding="utf-8")
        return cls.parse(json.loads(text))

    @classmethod
    def parse(cls, table: Mapping[str, object]) -> FreezeQuantities:
        """The table from its JSON; ``ValueError`` naming what is wrong (a freeze quantity that is
        not a positive whole number would slice orders wrongly)."""
        segments = table.get("segments")
        if not isinstance(segments, Mapping):
            raise ValueError("the freeze quantity table has no 'segments'")
        limits: dict[str, dict[str, Decimal]] = {}
        for exchange, underlyings in segments.items():
            if str(exchange).upper() not in SUPPORTED_EXCHANGES or not isinstance(underlyings, Mapping):
                raise ValueError(f"the freeze quantity table names an unknown segment {exchange!r}")
            for name, units in underlyings.items():
                if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
                    raise ValueError(f"the freeze quantity of {exchange} {name} is not a positive whole number")
                limits.setdefault(str(exchange).upper(), {})[str(name).upper()] = Decimal(units)
        return cls(limits, date.fromisoformat(str(table.get("as_of"))), str(table.get("source") or ""))

    def of(self, exchange: str, name: str) -> Decimal | None:
        return self.limits.get(exchange, {}).get(name.upper())


def split_symbol(symbol: str) -> tuple[str, str]:
    """``"NSE:SBIN-EQ"`` → ``("NSE", "SBIN-EQ")``; raises ``UnknownSymbol`` for any other shape."""
    exchange, sep, trading_symbol = symbol.partition(":")
    if not sep or not trading_symbol or exchange.upper() not in SUPPORTED_EXCHANGES:
        raise UnknownSymbol(
            f"{symbol!r} is not an Angel One symbol: write EXCHANGE:TRADINGSYMBOL with the exchange one of "
            f"{', '.join(sorted(SUPPORTED_EXCHANGES))}, e.g. NSE:SBIN-EQ"
        )
    return exchange.upper(), trading_symbol.upper()


def parse_scrip_master(rows: list[Mapping[str, str]], freeze: FreezeQuantities | None = None) -> dict[str, Instrument]:
    """Index the scrip master rows of the supported exchanges by ``EXCHANGE:TRADINGSYMBOL``, each
    with its underlying's freeze quantity from ``freeze``.

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
        if freeze is not None and (limit := freeze.of(exchange, instrument.name)) is not None:
            instrument = replace(instrument, freeze_quantity=limit)
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
        freeze: FreezeQuantities | None = None,
    ) -> None:
        self._url = url
        self._freeze = freeze if freeze is not None else FreezeQuantities.packaged()
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
            instruments = await asyncio.to_thread(parse_scrip_master, rows, self._freeze)
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
