"""Each venue family's driver: the credentials it asks for and checks, the venues it opens."""

from __future__ import annotations

from decimal import Decimal

import pyotp
import pytest

from copytrade.app import build_drivers
from copytrade.config import Mode, Settings
from core.errors import UserError
from core.venues.angelone import AngelOneDriver
from core.venues.catalog import clean_secrets, driver_class, venue_spec
from core.venues.ccxt import CcxtDriver
from core.venues.ccxt.driver import check_exchange_ids
from core.venues.paper import PaperDriver
from core.venues.paper.venue import PaperExchange, PaperVenue
from core.venues.registry import VenueAccount

SEED = pyotp.random_base32()


def angel(**overrides: str) -> dict[str, str]:
    return {"api_key": "key-1", "client_code": "A123", "pin": "1234", "totp_secret": SEED, **overrides}


def test_each_venue_is_served_by_its_family():
    assert driver_class("paper") is PaperDriver
    assert driver_class("angelone") is AngelOneDriver
    assert driver_class("binanceusdm") is CcxtDriver
    assert driver_class("kucoin") is CcxtDriver  # any ccxt exchange, not only the curated ones
    assert driver_class("not-an-exchange") is None


@pytest.mark.parametrize(
    "secrets, message",
    [
        (angel(pin="12ab"), "the PIN must be 4 to 8 digits"),
        (angel(pin="123"), "the PIN must be 4 to 8 digits"),
        (angel(totp_secret="not-base32!"), "the TOTP secret is not a valid base32 seed"),
        (angel(client_code=""), "the client code is missing"),
        (angel(api_key="two words"), "the api key does not look right"),
    ],
)
def test_angel_one_credentials_are_refused_with_what_is_wrong(secrets, message):
    with pytest.raises(UserError, match=f"^{message}"):
        clean_secrets(AngelOneDriver.curated[0], secrets)


def test_angel_one_credentials_are_trimmed_and_the_seed_upper_cased():
    cleaned = AngelOneDriver.clean_secrets(
        AngelOneDriver.curated[0], angel(pin=" 123456 ", totp_secret=SEED.lower(), extra="dropped")
    )
    assert cleaned == {"api_key": "key-1", "client_code": "A123", "pin": "123456", "totp_secret": SEED}


@pytest.mark.parametrize(
    "secrets, message",
    [
        ({}, "the api key is missing"),
        ({"api_key": "k", "balance": "lots"}, "starting balance must be a number"),
        ({"api_key": "k", "balance": "2000000000"}, "starting balance must be"),
    ],
)
def test_paper_credentials_are_refused_with_what_is_wrong(secrets, message):
    with pytest.raises(UserError, match=f"^{message}"):
        PaperDriver.clean_secrets(PaperDriver.curated[0], secrets)


def test_a_ccxt_exchange_asks_for_its_passphrase():
    okx = venue_spec("okx")
    assert okx is not None and okx.fields == ("api_key", "secret", "password")
    with pytest.raises(UserError, match="^the password is missing"):
        CcxtDriver.clean_secrets(okx, {"api_key": "k", "secret": "s"})
    assert CcxtDriver.clean_secrets(okx, {"api_key": " k ", "secret": "s", "password": "p"}) == {
        "api_key": "k",
        "secret": "s",
        "password": "p",
    }


def test_exchange_ids_are_checked_against_ccxt():
    assert check_exchange_ids(["binanceusdm", "kucoin"]) == ["binanceusdm", "kucoin"]
    with pytest.raises(ValueError, match="^'nope' is not a ccxt exchange id"):
        check_exchange_ids(["binance", "nope"])


async def test_paper_driver_opens_accounts_with_their_starting_balance():
    driver = PaperDriver(PaperExchange())
    venue = await driver.open_venue(VenueAccount("c1", "paper", "paper", {"api_key": "k", "balance": "2500"}))
    assert isinstance(venue, PaperVenue) and await venue.equity() == Decimal(2500)
    default = await driver.open_venue(VenueAccount("c2", "paper", "paper", {"api_key": "k"}))
    assert await default.equity() == Decimal(10_000)


def test_paper_mode_has_only_the_simulated_venue(tmp_path):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", mode=Mode.PAPER)
    drivers = build_drivers(settings, PaperExchange())
    assert set(drivers.factories()) == {"paper"}
    assert drivers.for_venue("binanceusdm") is None


def test_live_mode_serves_the_configured_exchanges_and_angel_one(tmp_path):
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'x.db'}", mode=Mode.LIVE, ccxt_exchanges=["binanceusdm", "kucoin"]
    )
    drivers = build_drivers(settings, PaperExchange())
    assert set(drivers.factories()) == {"paper", "binanceusdm", "kucoin", "angelone"}
    assert isinstance(drivers.for_venue("kucoin"), CcxtDriver)
    assert isinstance(drivers.for_venue("angelone"), AngelOneDriver)
