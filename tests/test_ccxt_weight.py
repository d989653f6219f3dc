"""Binance's request weight, per egress IP, through the real ccxt against the fake Binance.

Binance counts request weight per IP whatever key sends, answers 429 over the limit and bans the IP
(418) for every account on it when a client does not back off (tests/fakes/binance.py,
``RequestWeights``). The fake is given small limits and short windows so these stay fast."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from decimal import Decimal

import aiohttp
import pytest
from sqlmodel import col, select

from core.copying.config import EngineConfig
from core.copying.path import OrderPath
from core.engine import CopyEngine
from core.model import CopyStatus, Fill, OrderIntent, Side, SkipReason
from core.venues.ccxt.driver import CcxtDriver
from core.venues.ccxt.venue import CcxtVenue
from core.venues.registry import VenueAccount
from storage.models import Follow
from tests.fakes.binance import FUTURES, FakeBinance
from tests.fakes.smartapi import EgressProxy
from tests.harness import LOOPBACK_ALLOWED, eventually

PERP = "BTC/USDT:USDT"
HOST = "127.0.0.1"

Accounts = Callable[..., Awaitable[list[CcxtVenue]]]


def fake_binance(**limits: float) -> FakeBinance:
    return FakeBinance(**limits)  # type: ignore[arg-type]


@pytest.fixture
async def opened() -> AsyncIterator[list[CcxtVenue]]:
    venues: list[CcxtVenue] = []
    yield venues
    await asyncio.gather(*(venue.close() for venue in venues))


def accounts_on(fake: FakeBinance, driver: CcxtDriver, opened: list[CcxtVenue]) -> Accounts:
    """Opens ``count`` follower accounts through the driver, as the service does."""

    async def open_accounts(count: int, *, prefix: str = "f", egress: str | None = None, **settings) -> list[CcxtVenue]:
        venues = []
        for index in range(count):
            key = f"{prefix}-key-{index}"
            fake.add_account(key, f"{prefix}-secret-{index}", **settings)
            secrets = {"api_key": key, "secret": f"{prefix}-secret-{index}"}
            if egress is not None:
                secrets["egress_proxy"] = egress
            venue = await driver.open_venue(VenueAccount(f"{prefix}{index}", "binanceusdm", "live", secrets))
            assert isinstance(venue, CcxtVenue)
            venues.append(venue)
        opened.extend(venues)
        return venues

    return open_accounts


def driver_for(fake: FakeBinance) -> CcxtDriver:
    return CcxtDriver(["binanceusdm"], urls={"binanceusdm": fake.url_overrides()}, egress=LOOPBACK_ALLOWED)


def order(client_order_id: str) -> OrderIntent:
    return OrderIntent(
        follow_id=1,
        client_order_id=client_order_id,
        symbol=PERP,
        side=Side.BUY,
        quantity=Decimal("0.01"),
        reference_price=Decimal(60000),
    )


async def test_a_restart_of_many_followers_on_one_ip_never_draws_a_429_or_418_and_reports_its_weight(
    opened: list[CcxtVenue],
) -> None:
    """30 followers leave from one IP whose limit is 100 weight per 2 s: their warm-up (the markets
    once, a ping each to open its connection) and then one
    read each of their positions (weight 6: 180 in all, a reconciliation pass) are spread over the
    IP's budget instead of sent at once. Warm-up never reads the position mode (weight 30)."""
    async with fake_binance(weight_limit=100, weight_interval=2.0) as fake:
        driver = driver_for(fake)
        followers = await accounts_on(fake, driver, opened)(30)

        await asyncio.gather(*(venue.warm_up() for venue in followers))
        warm_up = fake.weights.charged[(HOST, FUTURES)]
        positions = await asyncio.gather(*(venue.positions() for venue in followers))

    assert positions == [[]] * 30
    assert fake.weights.refused == Counter()  # not one 429 or 418
    assert fake.count("GET", "/fapi/v1/positionSide/dual") == 0
    assert warm_up == 1 + 30  # the markets, read once for all, and a ping per account (its connection)
    # the markets (1); per account a ping (1), ccxt's leverage brackets (1, read once) and the positions (5)
    assert fake.weights.charged[(HOST, FUTURES)] == 1 + 30 * (1 + 1 + 5)
    assert driver.weights.spent() == {"binanceusdm": 211.0}  # what the service reports it spent


async def test_a_429_pauses_every_account_on_that_ip_for_its_retry_after(opened: list[CcxtVenue]) -> None:
    """The 429 one account draws (another user of the IP spent its weight) holds back every account
    on that IP until its Retry-After has passed: none of them is banned for not backing off, and the
    refused read is read again after the pause."""
    async with fake_binance() as fake:
        followers = await accounts_on(fake, driver_for(fake), opened)(4)
        await asyncio.gather(*(venue.warm_up() for venue in followers))
        fake.weights.refuse_next(429, 1.0)

        equities = await asyncio.gather(*(venue.equity() for venue in followers))

    assert equities == [Decimal(10000)] * 4
    assert fake.weights.refused[(HOST, 429)] >= 1 and fake.weights.refused[(HOST, 418)] == 0


async def test_each_egress_proxy_is_an_ip_with_a_budget_of_its_own(opened: list[CcxtVenue]) -> None:
    """A 418 on the host's IP stops the accounts leaving from it; an account leaving through an
    egress proxy (another IP) goes on."""
    async with fake_binance() as fake:
        proxy = EgressProxy("127.0.0.6")
        await proxy.start()
        try:
            driver = driver_for(fake)
            [direct] = await accounts_on(fake, driver, opened)(1)
            [through] = await accounts_on(fake, driver, opened)(1, prefix="p", egress=proxy.url)
            await direct.warm_up()
            fake.weights.refuse_next(418, 30.0)
            banned = asyncio.create_task(direct.equity())
            await eventually(lambda: fake.weights.refused[(HOST, 418)] == 1, "the host's IP banned")

            assert await asyncio.wait_for(through.equity(), 10) == Decimal(10000)
            assert not banned.done()  # still waiting for the ban to end, sending nothing
            banned.cancel()
        finally:
            await proxy.close()

    assert fake.weights.refused == Counter({(HOST, 418): 1})
    assert len(driver.weights.spent()) == 2  # the host's IP, and the proxy's


async def test_a_418_stops_every_account_on_the_ip_until_the_ban_ends_and_an_entry_that_waited_past_its_age_is_skipped(
    opened: list[CcxtVenue], h
) -> None:
    """One account's read draws a 418 (a 3 s ban): the entry copies of every follower on that IP wait
    for the ban instead of being refused, and once the ban is over their time (1 s) has run out:
    each is recorded skipped (stale) with the reason, nothing sent. The next fill is copied."""
    async with fake_binance() as fake:
        first, second = await accounts_on(fake, driver_for(fake), opened)(2)
        follows = [(await h.add_follower())[0] for _ in range(2)]
        async with h.db.session() as session:
            rows = (await session.execute(select(Follow).where(col(Follow.id).in_(follows)))).scalars()
            credentials = [row.credential_id for row in sorted(rows, key=lambda row: row.id or 0)]
        venue_of = dict(zip(credentials, (first, second), strict=True))

        class Venues:
            async def venue_for(self, credential_id: str) -> CcxtVenue:
                return venue_of[credential_id]

            async def open_many(self, credential_ids, *, warm_up: bool = False) -> None:
                return None

        engine = CopyEngine(
            OrderPath(
                h.journal,
                Venues(),
                h.events.append,
                EngineConfig(max_fill_age=timedelta(seconds=1), retry_delays=(0.001,)),
            )
        )
        await asyncio.gather(first.warm_up(), second.warm_up())
        fake.weights.refuse_next(418, 3.0)
        read = asyncio.create_task(first.equity())  # banned: waits for the ban's end, then reads again
        await eventually(lambda: fake.weights.refused[(HOST, 418)] == 1, "the IP banned")

        def entry(trade: str) -> Fill:
            return Fill(h.master_id, "binanceusdm:m", trade, trade, PERP, Side.BUY, Decimal("0.01"), Decimal(60000))

        waited = await engine.on_fill(entry("t1"))
        assert await read == Decimal(10000)
        copied = await engine.on_fill(entry("t2"))

    assert [r.status for r in waited.results] == [CopyStatus.SKIPPED] * 2
    assert {r.reason_code for r in waited.results} == {SkipReason.STALE_FILL.value}
    assert all("rate limits held it back" in str(r.skip) for r in waited.results), waited.results
    assert [r.status for r in copied.results] == [CopyStatus.FILLED] * 2
    assert [request.params["newClientOrderId"] for request in fake.order_requests] == [
        r.client_order_id for r in copied.results
    ]  # the waiting entries were never sent
    assert fake.weights.refused == Counter({(HOST, 418): 1})  # nothing was sent during the ban


async def test_orders_are_not_starved_by_reads(opened: list[CcxtVenue]) -> None:
    """Reads queued beyond the IP's budget (30 position reads, 150 weight, against 100 per 2 s) wait;
    an order sent behind them (weight 0 on the IP, counted on the account's own order limits) goes
    out at once."""
    async with fake_binance(weight_limit=100, weight_interval=2.0) as fake:
        [venue] = await accounts_on(fake, driver_for(fake), opened)(1)
        await venue.warm_up()
        reads = [asyncio.create_task(venue.positions()) for _ in range(30)]
        await eventually(lambda: fake.count("GET", "/fapi/v3/positionRisk") >= 10, "the first reads")

        await venue.ready_to_send()
        placed = await venue.place_order(order("not-starved"))
        reads_done_by_then = sum(read.done() for read in reads)
        await asyncio.gather(*reads)

    assert placed.status is CopyStatus.FILLED
    assert reads_done_by_then < 30
    assert fake.weights.refused == Counter()


async def test_the_budget_takes_the_weight_the_venue_reports_as_the_truth(opened: list[CcxtVenue]) -> None:
    """Another program on the same IP spends 80 of its 100 weight: the venue's X-MBX-USED-WEIGHT
    answer tells the budget, whose next reads then wait for the window instead of drawing a 429."""
    async with fake_binance(weight_limit=100, weight_interval=2.0) as fake:
        [venue] = await accounts_on(fake, driver_for(fake), opened)(1)
        await venue.warm_up()
        async with aiohttp.ClientSession() as http:
            for _ in range(80):  # server time: 1 each
                async with http.get(f"{fake.base_url}/fapi/v1/time") as response:
                    assert response.status == 200

        await venue.positions()  # 5: the answer says 86 of 100
        await asyncio.gather(*(venue.positions() for _ in range(6)))  # 30 more: they wait for the window

    assert fake.weights.refused == Counter()


async def test_the_position_mode_is_learnt_from_the_first_order_never_read_at_warm_up(opened: list[CcxtVenue]) -> None:
    """A one-way account never pays the position-mode read (30 weight); a hedge-mode account pays it
    once: its first order, sent one-way, is refused -4061 and sent again in hedge mode."""
    async with fake_binance() as fake:
        driver = driver_for(fake)
        [one_way] = await accounts_on(fake, driver, opened)(1)
        [hedged] = await accounts_on(fake, driver, opened)(1, prefix="h", hedge_mode=True)
        await asyncio.gather(one_way.warm_up(), hedged.warm_up())
        assert fake.count("GET", "/fapi/v1/positionSide/dual") == 0

        assert (await one_way.place_order(order("one-way"))).status is CopyStatus.FILLED
        assert fake.count("GET", "/fapi/v1/positionSide/dual") == 0
        first = await hedged.place_order(order("hedged-1"))
        second = await hedged.place_order(order("hedged-2"))

    assert (first.status, second.status) == (CopyStatus.FILLED, CopyStatus.FILLED)
    assert fake.count("GET", "/fapi/v1/positionSide/dual") == 1
    sent = [(r.params["newClientOrderId"], r.params.get("positionSide")) for r in fake.order_requests]
    assert sent == [("one-way", None), ("hedged-1", None), ("hedged-1", "LONG"), ("hedged-2", "LONG")]
