"""An account's egress proxy is no door into the server's own network (core/venues/egress.py):
/connect (``Services.connect_account``, what the bot's key dialogue calls) refuses a proxy on a
loopback, link-local, private or metadata address, or named by a name resolving to one, before
any connection is made to it; an allow-listed range is accepted; every failure through a proxy
reads the same; and the check runs at every connection, so a credential stored while its proxy
was allowed is refused once it is not.

Real ccxt against the fake Binance and the real smartapi-python against the fake SmartAPI, with
the real proxies of tests/fakes; listeners on 127.0.0.1 count the connections that reach them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from copytrade.app import build_app
from copytrade.config import Mode, Settings
from core.errors import UserError
from core.vault import generate_key
from core.venues.ccxt.markets import CcxtMarketsCache
from core.venues.ccxt.venue import CcxtVenue
from core.venues.egress import EGRESS_UNUSABLE, PUBLIC_ONLY, EgressPolicy, EgressRefused, parse_networks
from tests.fakes.binance import FakeBinance
from tests.fakes.smartapi import FOLLOWER, EgressProxy, FakeSmartApi, credentials_of, fresh_accounts
from tests.harness import LOOPBACK_EGRESS

KEY, SECRET = "egress-key-0001", "egress-secret"


class Listener:
    """A TCP port on 127.0.0.1 that counts who connects: ``answer`` is written to each (or
    nothing, and the connection is held open: a silent port)."""

    def __init__(self, answer: bytes | None) -> None:
        self.answer = answer
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Listener:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.answer is None:
            await reader.read()  # silent until the client gives up
        else:
            writer.write(self.answer)
            await writer.drain()
        writer.close()


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance() as server:
        server.add_account(KEY, SECRET)
        yield server


def _settings(fake: FakeBinance, tmp_path, migrated_sqlite, **overrides) -> Settings:
    return Settings(
        database_url=migrated_sqlite(tmp_path / "egress.db"),
        secret_key=generate_key(),
        mode=Mode.TESTNET,
        venue_urls={"binanceusdm": fake.url_overrides()},
        **overrides,
    )


@pytest.fixture
async def app(fake, tmp_path, migrated_sqlite):
    application = await build_app(_settings(fake, tmp_path, migrated_sqlite))
    yield application
    await application.close()


async def _connect(app, proxy: str, user_id: int = 0):
    user = user_id or (await app.services.register_user(4001, "prober")).id
    return await app.services.connect_account(
        user, "binanceusdm", "main", {"api_key": KEY, "secret": SECRET, "egress_proxy": proxy}
    )


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "169.254.169.254", "[::1]", "10.0.0.1", "localhost", "[fd00:ec2::254]", "[::ffff:127.0.0.1]"],
)
async def test_connect_refuses_an_egress_proxy_on_an_internal_address_with_one_message(app, address):
    async with Listener(b"HTTP/1.1 200 Connection established\r\n\r\n") as listener:
        port = listener.port if address in ("127.0.0.1", "localhost", "[::ffff:127.0.0.1]") else 3128
        with pytest.raises(UserError) as refused:
            await _connect(app, f"http://ops:pw@{address}:{port}")
        assert str(refused.value) == EGRESS_UNUSABLE
        assert listener.connections == 0  # refused before any connection
    assert await app.services.accounts_of(1) == []


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"", id="open-then-closed"),
        pytest.param(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", id="open-not-a-proxy"),
        pytest.param(b"SSH-2.0-OpenSSH_9.6\r\n", id="open-other-protocol"),
        pytest.param(None, id="silent"),
    ],
)
async def test_every_failure_through_an_allowed_egress_proxy_reads_the_same(fake, tmp_path, migrated_sqlite, answer):
    """No port scanner: a closed port, a silent one and open ones that are no proxy all read as one text."""
    application = await build_app(_settings(fake, tmp_path, migrated_sqlite, egress_allow=LOOPBACK_EGRESS))
    try:
        async with Listener(answer) as listener:
            with pytest.raises(UserError) as through_listener:
                await _connect(application, f"http://127.0.0.1:{listener.port}")
            closed_port = listener.port
        with pytest.raises(UserError) as through_closed_port:
            await _connect(application, f"http://127.0.0.1:{closed_port}")
        assert str(through_listener.value) == str(through_closed_port.value) == EGRESS_UNUSABLE
        assert listener.connections >= 1
    finally:
        await application.close()


async def test_an_allow_listed_egress_proxy_is_used_for_every_request(fake, tmp_path, migrated_sqlite):
    application = await build_app(_settings(fake, tmp_path, migrated_sqlite, egress_allow=LOOPBACK_EGRESS))
    proxy = EgressProxy("127.0.0.9")
    await proxy.start()
    try:
        view = await _connect(application, proxy.url)
        assert view.venue == "binanceusdm" and proxy.forwarded >= 1
    finally:
        await proxy.close()
        await application.close()


async def test_a_proxy_name_is_checked_at_every_connection_not_only_at_connect(fake):
    """What /connect accepted is checked again whenever the account connects: the same name,
    once its address is no longer allowed, is refused and nothing reaches the proxy."""
    proxy = EgressProxy("127.0.0.9")
    await proxy.start()
    by_name = proxy.url.replace("127.0.0.1", "localhost")  # resolves to 127.0.0.1 (and maybe ::1)
    cache = CcxtMarketsCache()
    allowed = EgressPolicy(parse_networks("127.0.0.0/8,::1/128"))
    try:
        for policy, reaches in ((allowed, True), (PUBLIC_ONLY, False)):
            venue = CcxtVenue.create(
                "binanceusdm",
                KEY,
                SECRET,
                egress_proxy=by_name,
                egress=policy,
                markets_cache=CcxtMarketsCache() if not reaches else cache,
                url_overrides=fake.url_overrides(),
                enable_rate_limit=False,
                retry_backoff=0.01,
            )
            before = proxy.forwarded
            try:
                if reaches:
                    assert await venue.equity() > 0
                    assert proxy.forwarded > before
                else:
                    with pytest.raises(EgressRefused):
                        await venue.equity()
                    assert proxy.forwarded == before
            finally:
                await venue.close()
    finally:
        await proxy.close()


def test_the_policy_refuses_every_internal_range_and_takes_public_and_allowed_ones():
    refused = [
        "127.0.0.1", "127.8.9.10", "::1", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254",
        "169.254.1.1", "fe80::1", "fd00:ec2::254", "fc00::1", "100.64.0.1", "0.0.0.0", "::", "224.0.0.1",
        "ff02::1", "240.0.0.1", "255.255.255.255", "203.0.113.7", "192.0.2.1", "198.51.100.1",
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "not-an-address",
    ]  # fmt: skip
    for address in refused:
        with pytest.raises(EgressRefused):
            PUBLIC_ONLY.check_address(address)
    for address in ("8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"):
        PUBLIC_ONLY.check_address(address)
    operators = EgressPolicy(parse_networks("10.8.0.0/16, 203.0.113.7"))
    operators.check_address("10.8.1.2")
    operators.check_address("203.0.113.7")
    with pytest.raises(EgressRefused):
        operators.check_address("10.9.0.1")


def test_a_name_is_refused_when_any_of_its_addresses_is():
    with pytest.raises(EgressRefused):
        PUBLIC_ONLY.resolve("localhost", 3128)
    with pytest.raises(EgressRefused):
        PUBLIC_ONLY.resolve("no-such-host.invalid", 3128)  # .invalid never resolves (RFC 6761)


def test_an_http_proxy_is_pinned_to_the_address_that_was_checked():
    policy = EgressPolicy(parse_networks("127.0.0.0/8,::1/128"))
    pinned = policy.pinned("http://ops:p%40ss@localhost:3128")
    assert pinned in ("http://ops:p%40ss@127.0.0.1:3128", "http://ops:p%40ss@[::1]:3128")
    assert policy.pinned("https://localhost:8443") == "https://localhost:8443"  # its certificate names it
    with pytest.raises(EgressRefused):
        PUBLIC_ONLY.pinned("http://localhost:3128")


# -- Angel One: the SDK's proxies go through the same check -----------------------------------


@pytest.fixture
def smartapi():
    server = FakeSmartApi(fresh_accounts()).start()
    yield server
    server.stop()


@pytest.mark.parametrize("allowed", [False, True])
async def test_angel_one_connect_refuses_an_internal_egress_and_uses_an_allowed_one(
    smartapi, tmp_path, migrated_sqlite, allowed
):
    settings = Settings(
        database_url=migrated_sqlite(tmp_path / "angel.db"),
        secret_key=generate_key(),
        mode=Mode.LIVE,
        angelone_rest_url=smartapi.rest_root,
        angelone_ws_url=smartapi.ws_url,
        angelone_scrip_master_url=smartapi.scrip_master_url,
        egress_allow=LOOPBACK_EGRESS if allowed else (),
    )
    application = await build_app(settings)
    try:
        smartapi.register_static_ip(FOLLOWER.client_code, "127.0.0.7")
        egress = smartapi.start_egress_proxy("127.0.0.7")
        user_id = (await application.services.register_user(4002, "angel")).id
        assert user_id is not None
        secrets = credentials_of(FOLLOWER, egress_proxy=egress.url, static_ip="127.0.0.7")
        if allowed:
            await application.services.connect_account(user_id, "angelone", "main", secrets)
            assert egress.forwarded >= 1
        else:
            with pytest.raises(UserError) as refused:
                await application.services.connect_account(user_id, "angelone", "main", secrets)
            assert str(refused.value) == EGRESS_UNUSABLE
            assert egress.forwarded == 0 and smartapi.calls["login"] == 0
            assert await application.services.accounts_of(user_id) == []
    finally:
        await application.close()
