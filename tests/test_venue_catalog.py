"""Which venues exist, what they ask for, and where their accounts connect."""

from __future__ import annotations

import pytest

from copytrade.config import load_settings
from core.errors import ConfigError
from core.venues.catalog import VENUES, venue_spec
from core.venues.ccxt import CcxtDriver
from core.venues.ccxt.venue import CcxtVenue
from core.venues.registry import VenueAccount


def test_known_venues_keep_their_curated_spec():
    assert venue_spec("angelone") is VENUES["angelone"]
    binance = venue_spec("binanceusdm")
    assert binance is not None and binance.fields == ("api_key", "secret")


def test_any_ccxt_exchange_asks_for_the_credentials_ccxt_requires():
    kucoin = venue_spec("kucoin")
    assert kucoin is not None and kucoin.title == "KuCoin"
    assert kucoin.fields == ("api_key", "secret", "password")
    gate = venue_spec("gate")
    assert gate is not None and gate.fields == ("api_key", "secret")


def test_an_unknown_venue_has_no_spec():
    assert venue_spec("not-an-exchange") is None


def test_ccxt_exchanges_are_configurable_and_checked(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COPYTRADE_CCXT_EXCHANGES", "binanceusdm, kucoin")
    assert load_settings().ccxt_exchanges == ["binanceusdm", "kucoin"]
    monkeypatch.setenv("COPYTRADE_CCXT_EXCHANGES", "binanceusdm,nope")
    with pytest.raises(ConfigError, match="^COPYTRADE_CCXT_EXCHANGES: 'nope' is not a ccxt exchange id"):
        load_settings()


@pytest.mark.parametrize(
    "environment, testnet_mode, sandbox", [("live", False, False), ("testnet", False, True), ("live", True, True)]
)
async def test_sandbox_is_chosen_per_credential_or_by_testnet_mode(environment, testnet_mode, sandbox):
    driver = CcxtDriver(["binanceusdm"], testnet_mode=testnet_mode)
    venue = await driver.open_venue(VenueAccount("c" * 32, "binanceusdm", environment, {"api_key": "k", "secret": "s"}))
    try:
        assert isinstance(venue, CcxtVenue)
        urls = str(venue.exchange.urls["api"])
        assert ("demo" in urls) is sandbox  # constructing connects nowhere; only the base URLs differ
    finally:
        await venue.close()
