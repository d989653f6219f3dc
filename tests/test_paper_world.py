"""The paper world (simulated venue accounts, positions, orders, prices) outlives a restart."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest
from sqlalchemy import text

from copytrade.app import build_app
from copytrade.cli import main
from copytrade.config import Mode, Settings, load_settings
from copytrade.paper_setup import add_paper_follower, create_paper_master
from core.errors import ConfigError
from core.ledger import Holding
from core.model import CopyStatus, OrderIntent, OrderState, OrderType, Side
from core.vault import generate_key
from core.venues.paper.listener import PaperFillSource
from core.venues.paper.state import PaperAccountState, PaperOrderState
from core.venues.paper.trader import SIMULATED_MASTERS_JOB
from core.venues.paper.venue import PaperExchange, PaperVenue
from storage.db import create_sync_engine
from storage.paper import PaperWorldStore

BTC = "BTC/USDT:USDT"


def _settings(tmp_path: Path, key: str) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'app.db'}", secret_key=key, data_dir=tmp_path)


async def test_a_restarted_app_keeps_paper_balances_and_positions_and_copies_the_next_exit(tmp_path):
    key = generate_key()
    app = await build_app(_settings(tmp_path, key))
    try:
        master, master_key = await create_paper_master(app.services, "Master", "100000")
        follow, follower_key = await add_paper_follower(app.services, master.id, "f", "20000", {"sizing_value": "1"})
        master_venue = await app.venues.venue_for(master_key.id)
        assert isinstance(master_venue, PaperVenue)
        stream = PaperFillSource(master_venue, master.id).fills()
        await master_venue.place_order(OrderIntent(0, "m1", BTC, Side.BUY, D("0.1")))
        outcome = await app.engine.on_fill(await anext(stream))
        assert outcome.results[0].status is CopyStatus.FILLED
        app.paper.set_price(BTC, D("61000"))
        await app.paper.flush()
        follower = await app.venues.venue_for(follower_key.id)
        before = (await follower.equity(), await follower.positions(), await master_venue.positions())
    finally:
        await app.close()

    app = await build_app(_settings(tmp_path, key))
    try:
        assert app.paper.accounts() == []  # nothing in memory yet: what follows comes from the database
        master_venue = await app.venues.venue_for(master_key.id)
        follower = await app.venues.venue_for(follower_key.id)
        assert isinstance(master_venue, PaperVenue)
        assert (await follower.equity(), await follower.positions(), await master_venue.positions()) == before
        assert before[1][0].quantity == D("0.1") and await follower.price(BTC) == D("61000")
        stream = PaperFillSource(master_venue, master.id).fills()
        await master_venue.place_order(OrderIntent(0, "m2", BTC, Side.SELL, D("0.1"), reduce_only=True))
        outcome = await app.engine.on_fill(await anext(stream))
        assert [r.status for r in outcome.results] == [CopyStatus.FILLED]
        assert await follower.positions() == [] and await master_venue.positions() == []
    finally:
        await app.close()


async def test_a_resting_order_survives_a_restart_and_fills_when_the_price_crosses_it(db):
    exchange = PaperExchange(store=PaperWorldStore(db))
    venue = await exchange.open_account("acct", balance=D(5000))
    await venue.place_order(OrderIntent(0, "c1", BTC, Side.BUY, D("0.01"), OrderType.LIMIT, price=D("59000")))

    again = PaperExchange(store=PaperWorldStore(db))
    restored = await again.open_account("acct", balance=D(1))  # the stored balance wins
    assert restored.balance == D(5000)
    assert (await restored.fetch_order("c1", BTC)).state is OrderState.ACKNOWLEDGED  # type: ignore[union-attr]
    again.set_price(BTC, D("58900"))
    await again.flush()
    assert (await restored.fetch_order("c1", BTC)).state is OrderState.FILLED  # type: ignore[union-attr]

    third = PaperExchange(store=PaperWorldStore(db))
    account = await third.open_account("acct")
    assert [(p.symbol, p.quantity) for p in await account.positions()] == [(BTC, D("0.01"))]
    assert await account.price(BTC) == D("58900")
    # a client order id is accepted once, across restarts too; venue order ids keep counting
    report = await account.place_order(OrderIntent(0, "c2", BTC, Side.SELL, D("0.01"), reduce_only=True))
    assert int(report.venue_order_id) > int((await account.fetch_order("c1", BTC)).venue_order_id)  # type: ignore[union-attr]


async def test_paper_world_store_round_trips_an_account_and_drops_a_closed_position(db):
    store = PaperWorldStore(db)
    order = PaperOrderState(
        "c1", "7", BTC, Side.SELL, D("0.5"), OrderType.STOP_MARKET, None, D("58000"), True, None,
        OrderState.ACKNOWLEDGED, D(0), None, D(0),
    )  # fmt: skip
    holdings = {BTC: Holding(D("-0.5"), D("60000.123"), D("12.5"), D("0.3")), "ETH/USDT:USDT": Holding()}
    await store.save(
        {BTC: D("60000.1")}, [PaperAccountState("a", D("999.99"), 5, D("12.5"), D("0.3"), holdings)], [("a", order)]
    )
    assert await store.load_account("a") == (
        PaperAccountState("a", D("999.99"), 5, D("12.5"), D("0.3"), holdings),
        [order],
    )
    await store.save({}, [PaperAccountState("a", D("1000"), 5, D("12.5"), D("0.3"), {})], [])
    loaded = await store.load_account("a")
    assert loaded is not None and loaded[0].holdings == {} and loaded[0].balance == D("1000")
    assert await store.load_prices() == {BTC: D("60000.1")}
    assert await store.last_venue_order_id() == 7
    assert await store.load_account("nobody") is None


def _nonzero(rows) -> dict[str, D]:
    return {symbol: D(quantity) for symbol, quantity in rows if D(quantity) != 0}


def test_running_the_paper_copier_again_continues_from_the_masters_positions(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--max-fills", "12", "--interval", "0.01", "--seed", "3"]) == 0
    assert main(["run", "--max-fills", "12", "--interval", "0.01", "--seed", "4"]) == 0
    assert "✅ Copied" in capsys.readouterr().out
    engine = create_sync_engine(f"sqlite:///{tmp_path / 'data' / 'copytrade.db'}")
    try:
        with engine.connect() as connection:
            journaled = connection.execute(text("SELECT symbol, quantity FROM master_positions")).all()
            held = connection.execute(
                text(
                    "SELECT h.symbol, h.quantity FROM paper_holdings h JOIN masters m ON m.credential_id = h.account_id"
                )
            ).all()
    finally:
        engine.dispose()
    # the journal counted the master's fills of both runs; the paper venue kept the same positions
    assert _nonzero(journaled) == _nonzero(held) != {}


class _Jobs:
    """Records what is scheduled (the part of APScheduler the app uses)."""

    def __init__(self) -> None:
        self.jobs: dict[str, tuple[object, dict[str, object]]] = {}

    def add_job(self, func, trigger: str, **options) -> None:
        job_id = str(options.pop("id"))
        self.jobs[job_id] = (func, {"trigger": trigger, **options})


async def test_in_paper_mode_the_paper_masters_trade_on_a_schedule(tmp_path):
    app = await build_app(_settings(tmp_path, generate_key()))
    try:
        master, master_key = await create_paper_master(app.services, "Trend", "100000")
        scheduler = _Jobs()
        app.add_paper_trading_job(scheduler)
        step, options = scheduler.jobs[SIMULATED_MASTERS_JOB]
        assert options == {"trigger": "interval", "seconds": 15}  # the default PAPER_TRADE_SECONDS
        done = await step()  # type: ignore[operator]
        assert len(done) == 1 and done[0].startswith(f"master #{master.id}: open ")
        venue = await app.venues.venue_for(master_key.id)
        assert len(await venue.positions()) == 1
    finally:
        await app.close()


async def test_paper_trading_is_off_with_zero_seconds_and_outside_paper_mode(tmp_path):
    for overrides in ({"paper_trade_seconds": 0}, {"mode": Mode.TESTNET}):
        app = await build_app(_settings(tmp_path, generate_key()).model_copy(update=overrides))
        try:
            scheduler = _Jobs()
            app.add_paper_trading_job(scheduler)
            assert scheduler.jobs == {} and app.simulated_masters is None
        finally:
            await app.close()


def test_paper_trade_seconds_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("PAPER_TRADE_SECONDS", "5")
    assert load_settings().paper_trade_seconds == 5
    monkeypatch.setenv("PAPER_TRADE_SECONDS", "-1")
    with pytest.raises(ConfigError, match="PAPER_TRADE_SECONDS"):
        load_settings()


class _FailingOnce:
    """A store whose first save fails (a database that is briefly unavailable)."""

    def __init__(self, store: PaperWorldStore) -> None:
        self.store = store
        self.failed = False

    def __getattr__(self, name: str):
        return getattr(self.store, name)

    async def save(self, prices, accounts, orders) -> None:
        if not self.failed:
            self.failed = True
            raise OSError("database is locked")
        await self.store.save(prices, accounts, orders)


async def test_a_failed_save_keeps_the_order_booked_and_saves_it_with_the_next_change(db, caplog):
    exchange = PaperExchange(store=PaperWorldStore(db))
    venue = await exchange.open_account("acct", balance=D(5000))
    exchange.store = _FailingOnce(PaperWorldStore(db))
    report = await venue.place_order(OrderIntent(0, "c1", BTC, Side.BUY, D("0.01")))
    assert report.state is OrderState.FILLED and "paper world was not saved" in caplog.text
    await venue.place_order(OrderIntent(0, "c2", BTC, Side.BUY, D("0.01")))
    restored = await PaperExchange(store=PaperWorldStore(db)).open_account("acct")
    assert sorted(restored.orders) == ["c1", "c2"]
    assert [(p.symbol, p.quantity) for p in await restored.positions()] == [(BTC, D("0.02"))]
