"""No secret reaches a log line: the redactor on the service's log handler, with the real ccxt's
DEBUG request dumps against the fake Binance."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from decimal import Decimal

import pytest

from copytrade.logs import MASK, SecretRedactor, configure_logging
from core.model import OrderIntent, Side
from core.vault import Vault, generate_key
from core.venues.ccxt.markets import CcxtMarketsCache
from core.venues.ccxt.venue import CcxtVenue
from tests.fakes.binance import FakeBinance

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
API_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
BOT_TOKEN = "123456789:AAEhBOweik6ad6PsVMRx4fQp7Tg8eGA4Qxq"


@contextlib.contextmanager
def service_logging() -> Iterator[SecretRedactor]:
    """The service's logging (as ``copytrade`` configures it) at DEBUG, restored afterwards.
    Entered inside the test so that its handler writes to the stderr ``capfd`` captures."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.raiseExceptions)
    redactor = SecretRedactor()
    configure_logging("DEBUG", redactor=redactor)
    try:
        yield redactor
    finally:
        logging.raiseExceptions = saved[2]
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        (f"POST https://api.telegram.org/bot{BOT_TOKEN}/getMe", BOT_TOKEN.split(":")[1]),
        ("headers {'X-MBX-APIKEY': 'abcDEF123456ghi', 'Content-Type': 'x'}", "abcDEF123456ghi"),
        ("GET /fapi/v1/order?symbol=BTCUSDT&signature=9f86d081884c7d65&timestamp=1", "9f86d081884c7d65"),
        ('{"clientcode": "A1", "password": "4321", "totp": "123456"}', '"4321"'),
        ('{"totp": "654321"}', "654321"),
        ("postgresql://copier:hunter2secret@db.internal/copytrade", "hunter2secret"),
        ("Authorization: Bearer eyJhbGciOiJIUzUxMiJ9.payload", "eyJhbGciOiJIUzUxMiJ9"),
        ("{'jwtToken': 'Bearer eyJhbGciOiJIUzUxMiJ9.x', 'refreshToken': 'eyJhbGciOiJIUzUxMiJ9.y'}", "eyJhbG"),
        # a REST API token (core.api_tokens) anywhere: a query string, a pasted curl line
        ("GET /api/v1/copytrading/traders?t=ctk_Q2hJb3bX9kz_1-AbCdEfGhIjKlMnOpQrStUvWx", "Q2hJb3bX9kz"),
        ("curl -H 'X-Token: ctk_Q2hJb3bX9kz_1-AbCdEfGhIjKlMnOpQrStUvWx' http://x", "Q2hJb3bX9kz"),
    ],
)
def test_secrets_are_masked_by_their_shape(line: str, secret: str) -> None:
    redacted = SecretRedactor().redact(line)
    assert secret not in redacted
    assert MASK in redacted


def test_registered_values_are_masked_wherever_they_appear() -> None:
    redactor = SecretRedactor()
    redactor.add([API_KEY, None, "", "1234"])  # a short value would mask ordinary numbers: not taken
    assert redactor.redact(f"key={API_KEY} and {API_KEY[:10]}") == f"key={MASK} and {API_KEY[:10]}"
    assert redactor.redact(f"the price is 1234 ({API_KEY})") == f"the price is 1234 ({MASK})"


def test_a_traceback_that_carries_a_secret_is_masked(capfd: pytest.CaptureFixture[str]) -> None:
    with service_logging() as redactor:
        redactor.add([API_SECRET])
        try:
            raise RuntimeError(f"signing failed with {API_SECRET}")
        except RuntimeError:
            logging.getLogger("copytrade.test").exception("order %s failed", "ct1")
    err = capfd.readouterr().err
    assert "order ct1 failed" in err and "RuntimeError: signing failed with ***" in err
    assert API_SECRET not in err


def test_every_credential_the_vault_opens_is_masked(capfd: pytest.CaptureFixture[str]) -> None:
    with service_logging() as redactor:
        vault = Vault(generate_key(), on_open=redactor.add)
        sealed = vault.encrypt({"api_key": API_KEY, "secret": API_SECRET}, owner_id=1, credential_id="c1")
        opened = vault.decrypt(sealed, owner_id=1, credential_id="c1")
        logging.getLogger("some.library").debug("using %s / %s", opened["api_key"], opened["secret"])
    err = capfd.readouterr().err
    assert "using *** / ***" in err
    assert API_KEY not in err and API_SECRET not in err


async def test_a_debug_run_of_the_real_ccxt_leaves_no_key_in_the_log(capfd: pytest.CaptureFixture[str]) -> None:
    """ccxt logs every request's headers and signed URL at DEBUG (a follower's key appeared 7 times)."""
    with service_logging():
        await _place_one_order_through_ccxt()
    err = capfd.readouterr().err
    assert "X-MBX-APIKEY" in err and "signature=***" in err  # ccxt's request dump was logged, masked
    assert API_KEY not in err and API_SECRET not in err


async def _place_one_order_through_ccxt() -> None:
    async with FakeBinance() as fake:
        fake.add_account(API_KEY, API_SECRET)
        venue = CcxtVenue.create(
            "binanceusdm", API_KEY, API_SECRET, markets_cache=CcxtMarketsCache(), url_overrides=fake.url_overrides()
        )
        try:
            await venue.place_order(OrderIntent(1, "ct-logs-1", "BTC/USDT:USDT", Side.BUY, Decimal("0.01")))
        finally:
            await venue.close()


async def test_an_api_tokens_hash_reaches_no_log_line_at_debug(capfd, tmp_path, migrated_sqlite) -> None:
    """The database library's own DEBUG output (SQLAlchemy's statements with their parameters,
    aiosqlite's calls) would carry the SHA-256 of every token presented."""
    from core.api_tokens import ApiTokens, token_hash
    from storage.api_tokens import ApiTokenStore
    from storage.db import Database

    db = Database(migrated_sqlite(tmp_path / "tokens.db"))
    tokens = ApiTokens(ApiTokenStore(db))
    presented = "ctk_" + "q" * 43
    engine_logger = logging.getLogger("sqlalchemy.engine")
    with service_logging():
        engine_logger.setLevel(logging.DEBUG)  # what echo="debug" turns on
        try:
            assert await tokens.authenticate(presented) is None
        finally:
            engine_logger.setLevel(logging.NOTSET)
            await db.dispose()
    logged = capfd.readouterr().err
    assert "api_tokens" in logged  # the statement itself was logged
    assert token_hash(presented) not in logged
