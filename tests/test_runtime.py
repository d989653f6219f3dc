"""The pieces around the engine: the venue registry, fill-stream supervision, notifications,
and the scheduler's settle job."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D

import pytest

from core.copying.config import EngineConfig
from core.copying.ids import client_order_id
from core.copying.path import OrderPath
from core.engine import CopyEngine
from core.errors import NotFound, VaultError
from core.journal import CopyDraft
from core.listeners.supervisor import ListenerSupervisor
from core.model import CopyResult, CopyStatus, Fill, OrderIntent, OrderState, OrderType, Side
from core.notifications import NotificationQueue
from core.reports import build_reports
from core.scheduler import build_scheduler
from core.vault import Vault, generate_key
from core.venues.base import FillSource
from core.venues.paper.venue import PaperExchange
from core.venues.registry import VenueRegistry
from storage.accounts import AccountStore
from storage.journal import JournalStore
from storage.models import Credential, Follow, Master
from storage.stats import StatsStore
from tests.harness import BTC


class CountingFactory:
    def __init__(self, exchange: PaperExchange) -> None:
        self.exchange = exchange
        self.opened = 0
        self.fail_first = 0

    async def __call__(self, account):
        self.opened += 1
        await asyncio.sleep(0.01)  # give concurrent callers time to pile up
        if self.fail_first:
            self.fail_first -= 1
            raise ConnectionError("venue unreachable")
        return self.exchange.account(account.credential_id)


async def _credential(accounts: AccountStore, vault: Vault, credential_id: str = "c" * 32) -> str:
    user = await accounts.ensure_user(None, "u")
    assert user.id is not None
    await accounts.add_credential(
        Credential(
            id=credential_id,
            user_id=user.id,
            venue="paper",
            label="main",
            key_fingerprint="f",
            ciphertext=vault.encrypt({"api_key": "secret-key"}, owner_id=user.id, credential_id=credential_id),
        )
    )
    return credential_id


async def test_registry_opens_one_adapter_per_credential_under_concurrency(sqlite_db):
    accounts, vault, factory = AccountStore(sqlite_db), Vault(generate_key()), CountingFactory(PaperExchange())
    credential_id = await _credential(accounts, vault)
    registry = VenueRegistry(accounts, vault, {"paper": factory})
    venues = await asyncio.gather(*(registry.venue_for(credential_id) for _ in range(20)))
    assert factory.opened == 1 and len({id(v) for v in venues}) == 1


async def test_registry_retries_after_a_failed_open(sqlite_db):
    accounts, vault, factory = AccountStore(sqlite_db), Vault(generate_key()), CountingFactory(PaperExchange())
    factory.fail_first = 1
    credential_id = await _credential(accounts, vault)
    registry = VenueRegistry(accounts, vault, {"paper": factory})
    with pytest.raises(ConnectionError):
        await registry.venue_for(credential_id)
    assert await registry.venue_for(credential_id) is not None
    assert factory.opened == 2


async def test_registry_refuses_a_credential_sealed_with_another_key(sqlite_db):
    accounts = AccountStore(sqlite_db)
    credential_id = await _credential(accounts, Vault(generate_key()))
    registry = VenueRegistry(accounts, Vault(generate_key()), {"paper": CountingFactory(PaperExchange())})
    with pytest.raises(VaultError):
        await registry.venue_for(credential_id)


async def test_registry_answers_not_found_for_a_removed_credential(sqlite_db):
    registry = VenueRegistry(AccountStore(sqlite_db), Vault(generate_key()), {})
    with pytest.raises(NotFound):
        await registry.venue_for("0" * 32)


async def test_registry_opens_many_with_one_read_and_leaves_bad_keys_to_venue_for(sqlite_db):
    accounts, vault, factory = AccountStore(sqlite_db), Vault(generate_key()), CountingFactory(PaperExchange())
    good = [await _credential(accounts, vault, str(n) * 32) for n in range(3)]
    foreign = await _credential(accounts, Vault(generate_key()), "f" * 32)  # sealed with another key
    registry = VenueRegistry(accounts, vault, {"paper": factory})
    await registry.open_many([*good, foreign, "9" * 32, good[0]])
    assert factory.opened == 3  # once each; the bad ones did not stop the good ones
    await asyncio.gather(*(registry.venue_for(c) for c in good))
    assert factory.opened == 3  # already open
    with pytest.raises(VaultError):
        await registry.venue_for(foreign)
    with pytest.raises(NotFound):
        await registry.venue_for("9" * 32)


class SlowClosingVenue:
    def __init__(self, closing: list[str], name: str) -> None:
        self.closing, self.name = closing, name

    async def close(self) -> None:
        self.closing.append(self.name)
        await asyncio.sleep(0.05)
        self.closing.append(f"{self.name} closed")


async def test_registry_closes_every_venue_at_once(sqlite_db):
    accounts, vault = AccountStore(sqlite_db), Vault(generate_key())
    events: list[str] = []
    credentials = [await _credential(accounts, vault, str(n) * 32) for n in range(3)]

    async def factory(account):
        return SlowClosingVenue(events, account.credential_id[:1])

    registry = VenueRegistry(accounts, vault, {"paper": factory})
    await registry.open_many(credentials)
    await registry.close()
    assert events[:3] == ["0", "1", "2"]  # every close began before any finished (ccxt waits 250 ms in each)
    assert sorted(events[3:]) == ["0 closed", "1 closed", "2 closed"]


class ScriptedSource(FillSource):
    """Yields the given fills, then fails (a dropped connection)."""

    def __init__(self, fills: list[Fill]) -> None:
        self._fills = fills

    async def fills(self):
        for fill in self._fills:
            yield fill
        raise ConnectionError("socket closed")


def _fill(trade_id: str) -> Fill:
    return Fill(1, "v", trade_id, "o", "BTC/USDT:USDT", Side.BUY, D(1), D(1))


async def test_supervisor_hands_every_fill_over_and_restarts_a_dropped_stream():
    received: list[str] = []
    opened = 0

    async def on_fill(fill):
        received.append(fill.trade_id)

    async def open_source():
        nonlocal opened
        opened += 1
        return ScriptedSource([_fill(f"{opened}-a"), _fill(f"{opened}-b")])

    supervisor = ListenerSupervisor(on_fill, restart_delays=(0.001,))
    await supervisor.start(1, open_source)
    for _ in range(500):
        if opened >= 3:
            break
        await asyncio.sleep(0.002)
    await supervisor.stop()
    assert {"1-a", "1-b", "2-a", "2-b"} <= set(received)
    health = supervisor.health[1]
    assert health.restarts >= 2 and "socket closed" in (health.last_error or "") and health.fills >= 4


async def test_supervisor_keeps_going_when_copying_one_fill_fails():
    copied: list[str] = []

    async def on_fill(fill):
        if fill.trade_id == "bad":
            raise RuntimeError("boom")
        copied.append(fill.trade_id)

    async def open_source():
        return ScriptedSource([_fill("bad"), _fill("good")])

    supervisor = ListenerSupervisor(on_fill, restart_delays=(10,))
    await supervisor.start(1, open_source)
    await asyncio.sleep(0.05)
    await supervisor.idle()
    await supervisor.stop()
    assert copied == ["good"]


def _result(n: int) -> CopyResult:
    return CopyResult(n, 1, 1, f"c{n}", _fill(str(n)), CopyStatus.FILLED)


async def test_notifications_never_block_and_count_what_they_drop():
    queue = NotificationQueue(maxsize=2)
    for n in range(5):
        queue.publish(_result(n))  # returns at once even when full
    assert queue.pending() == 2 and queue.dropped == 3


async def test_a_failing_delivery_does_not_stop_the_others():
    queue = NotificationQueue()
    delivered: list[int] = []

    async def deliver(event):
        if event.follow_id == 0:
            raise RuntimeError("chat not found")
        delivered.append(event.follow_id)

    for n in range(3):
        queue.publish(_result(n))
    consumer = asyncio.create_task(queue.consume(deliver))
    for _ in range(100):
        if len(delivered) == 2:
            break
        await asyncio.sleep(0.005)
    consumer.cancel()
    assert delivered == [1, 2]


async def test_a_notification_being_delivered_is_still_pending_until_its_delivery_ends():
    """A stop waits for none pending, then cancels the consumer: a delivery half-way (reading the
    user's name) must keep it waiting, or the cancel lands inside its database reads."""
    queue = NotificationQueue()
    reading, release = asyncio.Event(), asyncio.Event()

    async def deliver(event):
        reading.set()
        await release.wait()

    queue.publish(_result(1))
    consumer = asyncio.create_task(queue.consume(deliver))
    await asyncio.wait_for(reading.wait(), 5)
    assert queue.pending() == 1  # out of the queue, not delivered yet
    release.set()
    for _ in range(100):
        if not queue.pending():
            break
        await asyncio.sleep(0.005)
    assert queue.pending() == 0
    consumer.cancel()


async def test_scheduled_settle_job_resolves_a_copy_left_pending(sqlite_db):
    accounts, journal, vault = AccountStore(sqlite_db), JournalStore(sqlite_db), Vault(generate_key())
    exchange = PaperExchange()

    async def paper(account):
        return exchange.account(account.credential_id)

    credential_id = await _credential(accounts, vault)
    master = await accounts.add_master(Master(name="M", venue="paper"))
    credential = await accounts.credential(credential_id)
    assert credential is not None and master.id is not None
    user_id = credential.user_id
    follow = await accounts.add_follow(Follow(user_id=user_id, master_id=master.id, credential_id=credential_id))
    assert follow.id is not None
    fill = Fill(master.id, "paper:m", "t1", "o1", "BTC/USDT:USDT", Side.BUY, D("0.01"), D(60000))
    entry = await journal.journal_fill(fill)
    assert entry is not None
    await journal.mark_planned(entry.fill_id)
    cid = client_order_id(fill, follow.id, 0)
    await journal.begin_copies(
        [
            CopyDraft(
                cid,
                entry.fill_id,
                follow.id,
                user_id,
                fill.symbol,
                Side.BUY,
                OrderType.MARKET,
                False,
                CopyStatus.PENDING,
                D("0.01"),
                fill.price,
            )
        ]
    )
    venue = exchange.account(credential_id)
    await venue.place_order(OrderIntent(follow.id, cid, fill.symbol, Side.BUY, D("0.01")))
    registry = VenueRegistry(accounts, vault, {"paper": paper})
    engine = CopyEngine(OrderPath(journal, registry, lambda _e: None, EngineConfig()))
    reports = build_reports(StatsStore(journal.db), accounts, registry)
    scheduler = build_scheduler(engine, reports, settle_every_seconds=3600)
    job = scheduler.get_job("settle-pending")
    await job.func()
    order = await journal.copy_order(cid)
    assert order is not None and order.status is CopyStatus.FILLED
    assert venue.place_calls == 1


class ListenerWithHealth(ScriptedSource):
    """A source reporting its own health, as the websocket listeners do."""

    def __init__(self) -> None:
        super().__init__([])
        from types import SimpleNamespace

        self.health = SimpleNamespace(
            connected=False, reconnects=3, last_event_at=None, last_error="socket silent for 60s"
        )

    async def fills(self):
        await asyncio.Event().wait()
        yield  # pragma: no cover


async def test_stream_health_includes_the_listeners_own_reconnects():
    supervisor = ListenerSupervisor(lambda fill: asyncio.sleep(0))

    async def open_source():
        return ListenerWithHealth()

    await supervisor.start(5, open_source)
    await asyncio.sleep(0.01)
    view = supervisor.health[5]
    await supervisor.stop()
    assert (view.running, view.restarts, view.last_error) == (False, 3, "socket silent for 60s")


async def test_the_tracking_job_records_a_resting_copy_filled_after_its_answer(h):
    follow_id, venue = await h.add_follower()
    below = h.exchange.prices[BTC] - 100
    await h.engine.on_fill(h.fill(Side.BUY, "0.2", price=str(below), order_type=OrderType.LIMIT))
    h.exchange.set_price(BTC, below)
    scheduler = build_scheduler(h.engine, build_reports(StatsStore(h.db), h.accounts, h.registry))
    await scheduler.get_job("track-orders").func()
    assert await h.position(follow_id) == D("0.2")
    [row] = await h.rows(follow_id=follow_id)
    assert (row.state, row.filled_quantity) == (OrderState.FILLED, D("0.2"))
