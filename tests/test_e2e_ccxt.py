"""The whole path on real ccxt: a master's Binance futures executions stream in over the
user-data websocket, the engine copies them, and the followers' orders land on the fake
exchange — wired exactly as `copytrade run` wires it (settings, vault, registry, listeners)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal as D

import pytest

from copytrade.app import build_app
from copytrade.config import Mode, Settings
from core.model import CopyStatus
from core.vault import generate_key
from tests.fakes.binance import FakeBinance
from tests.harness import eventually

MASTER = ("master-key-0001", "master-secret")
FOLLOWERS = [("follower-key-0001", "follower-secret-1"), ("follower-key-0002", "follower-secret-2")]


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance() as server:
        for key, secret in [MASTER, *FOLLOWERS]:
            server.add_account(key, secret)
        yield server


@pytest.fixture
async def app(fake, tmp_path, migrated_sqlite):
    settings = Settings(
        database_url=migrated_sqlite(tmp_path / "e2e.db"),
        secret_key=generate_key(),
        mode=Mode.TESTNET,
        venue_urls={"binanceusdm": fake.url_overrides(), "binance": fake.url_overrides()},
    )
    application = await build_app(settings)
    yield application
    await application.close()


async def _setup(app, fake):
    services = app.services
    owner = await services.register_user(1001, "master owner")
    master_key = await services.connect_account(
        owner.id, "binanceusdm", "master", {"api_key": MASTER[0], "secret": MASTER[1]}
    )
    master = await services.add_master("Futures Pro", "binanceusdm", owner_id=owner.id, credential_id=master_key.id)
    follows = []
    for n, ((key, secret), coefficient) in enumerate(zip(FOLLOWERS, ("0.5", "1"), strict=True), start=1):
        user = await services.register_user(2000 + n, f"follower {n}")
        credential = await services.connect_account(user.id, "binanceusdm", "main", {"api_key": key, "secret": secret})
        follows.append(await services.follow(user.id, master.id, credential.id, {"sizing_value": coefficient}))
    await app.start_listeners()
    await eventually(lambda: fake.open_websockets >= 1, "the master's user-data stream")
    return master, follows


async def test_master_executions_are_copied_to_followers_on_binance_futures(app, fake):
    master, follows = await _setup(app, fake)
    first, second = (fake.accounts[key] for key, _ in FOLLOWERS)

    await fake.master_trade(MASTER[0], "BTCUSDT", "BUY", D("0.2"), fills=[D("0.1"), D("0.1")])
    await eventually(
        lambda: first.signed_position("BTCUSDT") == D("0.1") and second.signed_position("BTCUSDT") == D("0.2"),
        "entries",
    )

    await fake.master_trade(MASTER[0], "BTCUSDT", "SELL", D("0.2"), reduce_only=True)
    await eventually(lambda: first.signed_position("BTCUSDT") == 0 and second.signed_position("BTCUSDT") == 0, "exits")

    await app.listeners.idle()
    rows = await app.accounts.copy_history((await app.accounts.follow(follows[0].id)).user_id, limit=50)
    assert sorted(r.status for r in rows) == [CopyStatus.FILLED] * 3  # two partial entries, one exit
    for account in (first, second):
        client_ids = [o.client_order_id for o in account.orders.values()]
        assert len(client_ids) == len(set(client_ids)) == 3  # each copy sent once
        assert all(cid.startswith("ct") for cid in client_ids)


async def test_warm_up_at_start_leaves_the_first_copy_nothing_to_fetch_but_its_order(app, fake):
    master, follows = await _setup(app, fake)
    position_mode, ping = ("GET", "/fapi/v1/positionSide/dual"), ("GET", "/fapi/v1/ping")
    before, pinged = fake.count(*position_mode), fake.count(*ping)
    await app.engine.warm_up()
    assert fake.count(*ping) == pinged + len(FOLLOWERS)  # one per follower account: its connection opened
    assert fake.count(*position_mode) == before  # 30 weight each: never read at start
    venues = [await app.venues.venue_for(f.credential_id) for f in follows]
    assert venues[0].exchange.ssl_context is venues[1].exchange.ssl_context  # the CA bundle loaded once

    await fake.master_trade(MASTER[0], "BTCUSDT", "BUY", D("0.1"))
    first, second = (fake.accounts[key] for key, _ in FOLLOWERS)
    await eventually(
        lambda: first.signed_position("BTCUSDT") == D("0.05") and second.signed_position("BTCUSDT") == D("0.1"),
        "entries",
    )
    assert fake.count(*position_mode) == before  # one-way accounts: their orders never needed it


async def test_key_with_withdrawals_enabled_is_refused_and_not_stored(app, fake):
    fake.add_account("withdraw-key-0001", "withdraw-secret", enable_withdrawals=True)
    user = await app.services.register_user(3001, "careless")
    with pytest.raises(Exception, match="(?i)withdraw"):
        await app.services.connect_account(
            user.id, "binance", "spot", {"api_key": "withdraw-key-0001", "secret": "withdraw-secret"}
        )
    assert await app.services.accounts_of(user.id) == []


async def test_unreachable_exchange_is_not_reported_as_a_refused_key(app, fake):
    closed_port = json.loads(json.dumps(fake.url_overrides()).replace(fake.base_url, "http://127.0.0.1:9"))
    app.settings.venue_urls["binance"] = closed_port  # the factory reads the same mapping
    user = await app.services.register_user(3002, "offline")
    with pytest.raises(Exception, match="could not be reached"):
        await app.services.connect_account(
            user.id, "binance", "spot", {"api_key": "any-key-0001", "secret": "any-secret"}
        )
    assert await app.services.accounts_of(user.id) == []


def _resting_algo(account):
    return sorted((o.type, o.stop_price, o.quantity) for o in account.orders.values() if o.algo and o.status == "NEW")


async def test_take_profit_and_stop_loss_live_on_binance_with_the_position(app, fake):
    master, follows = await _setup(app, fake)
    first = fake.accounts[FOLLOWERS[0][0]]  # coefficient 0.5
    await app.services.update_follow(follows[0].user_id, follows[0].id, {"take_profit_pct": "10", "stop_loss_pct": "5"})

    await fake.master_trade(MASTER[0], "BTCUSDT", "BUY", D("0.4"))  # follower: 0.2 @ 60000
    await eventually(lambda: len(_resting_algo(first)) == 2, "TP and SL resting on the exchange")
    assert _resting_algo(first) == [("STOP_MARKET", D(57000), D("0.2")), ("TAKE_PROFIT_MARKET", D(66000), D("0.2"))]

    await fake.master_trade(MASTER[0], "BTCUSDT", "SELL", D("0.2"), reduce_only=True)  # half out: resized
    await eventually(lambda: [q for *_, q in _resting_algo(first)] == [D("0.1"), D("0.1")], "TP/SL resized")

    fake.set_mark_price("BTCUSDT", D(56900))
    await fake.trigger_conditional(FOLLOWERS[0][0])  # the exchange fires the stop
    await app.risk.watch()
    assert first.signed_position("BTCUSDT") == 0
    assert _resting_algo(first) == []  # the take-profit was cancelled with it
    [stop] = [r for r in await app.accounts.copy_history(follows[0].user_id, limit=50) if r.origin == "stop_loss"]
    assert stop.status is CopyStatus.FILLED and stop.filled_quantity == D("0.1")
    await app.risk.watch()  # seen again: recorded once
    assert (
        len([r for r in await app.accounts.copy_history(follows[0].user_id, limit=50) if r.origin == "stop_loss"]) == 1
    )


async def test_a_full_exit_leaves_no_protective_order_behind(app, fake):
    master, follows = await _setup(app, fake)
    first = fake.accounts[FOLLOWERS[0][0]]
    await app.services.update_follow(follows[0].user_id, follows[0].id, {"take_profit_pct": "10", "stop_loss_pct": "5"})
    await fake.master_trade(MASTER[0], "BTCUSDT", "BUY", D("0.4"))
    await eventually(lambda: len(_resting_algo(first)) == 2, "TP and SL resting")
    await fake.master_trade(MASTER[0], "BTCUSDT", "SELL", D("0.4"), reduce_only=True)
    await eventually(lambda: first.signed_position("BTCUSDT") == 0 and _resting_algo(first) == [], "exit and cancels")


# --------------------------------------------------------------------------- restarts (issue 13)


def _settings(fake, tmp_path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'restart.db'}",
        secret_key=KEY,
        mode=Mode.TESTNET,
        venue_urls={"binanceusdm": fake.url_overrides(), "binance": fake.url_overrides()},
        max_fill_age_seconds=D(3600),  # executions replayed after the restart are copied, not stale
    )


KEY = generate_key()


@pytest.fixture
async def first_run(fake, tmp_path):
    application = await build_app(_settings(fake, tmp_path))
    yield application
    await application.close()


async def _restart(app, fake, tmp_path):
    """The process stops (nothing streams) and a new one starts on the same database."""
    await app.listeners.idle()
    await app.close()
    return await build_app(_settings(fake, tmp_path))


async def test_a_partial_exit_made_while_down_moves_the_master_once_and_followers_close_that_fraction(
    first_run, fake, tmp_path
):
    master, follows = await _setup(first_run, fake)
    first, second = (fake.accounts[key] for key, _ in FOLLOWERS)
    await fake.master_trade(MASTER[0], "BTCUSDT", "BUY", D("0.6"))
    await eventually(lambda: second.signed_position("BTCUSDT") == D("0.6"), "entries")

    app = await _restart(first_run, fake, tmp_path)
    try:
        await fake.master_trade(MASTER[0], "BTCUSDT", "SELL", D("0.3"), reduce_only=True)  # while down
        await app.start_listeners()
        await eventually(
            lambda: first.signed_position("BTCUSDT") == D("0.15") and second.signed_position("BTCUSDT") == D("0.3"),
            "half of each follower's position closed",
        )
        await app.listeners.idle()
        assert await app.journal.master_positions(master.id) == {"BTC/USDT:USDT": D("0.3")}

        await fake.master_trade(MASTER[0], "BTCUSDT", "SELL", D("0.3"), reduce_only=True)
        await eventually(
            lambda: first.signed_position("BTCUSDT") == 0 and second.signed_position("BTCUSDT") == 0, "out"
        )
    finally:
        await app.close()


async def test_a_flat_master_trading_while_down_is_copied_after_the_restart(first_run, fake, tmp_path):
    master, follows = await _setup(first_run, fake)  # flat: its first start writes the checkpoint
    app = await _restart(first_run, fake, tmp_path)
    try:
        await fake.master_trade(MASTER[0], "ETHUSDT", "BUY", D("2"))  # a symbol never journaled
        await app.start_listeners()
        first, second = (fake.accounts[key] for key, _ in FOLLOWERS)
        await eventually(
            lambda: first.signed_position("ETHUSDT") == D("1") and second.signed_position("ETHUSDT") == D("2"),
            "the entry made while down",
        )
        await app.listeners.idle()
        assert await app.journal.master_positions(master.id) == {"ETH/USDT:USDT": D("2")}
    finally:
        await app.close()


async def test_a_full_exit_made_while_down_is_journaled_and_copied(first_run, fake, tmp_path):
    master, follows = await _setup(first_run, fake)
    first, second = (fake.accounts[key] for key, _ in FOLLOWERS)
    await fake.master_trade(MASTER[0], "BTCUSDT", "BUY", D("0.4"))
    await eventually(lambda: second.signed_position("BTCUSDT") == D("0.4"), "entries")

    app = await _restart(first_run, fake, tmp_path)
    try:
        await fake.master_trade(MASTER[0], "BTCUSDT", "SELL", D("0.4"), reduce_only=True)  # flat while down
        await app.start_listeners()
        await eventually(
            lambda: first.signed_position("BTCUSDT") == 0 and second.signed_position("BTCUSDT") == 0, "out"
        )
        await app.listeners.idle()
        assert await app.journal.master_positions(master.id) == {}
    finally:
        await app.close()


@pytest.mark.parametrize(
    ("status", "code", "msg"),
    [
        (400, -1000, "An unknown error occured while processing the request."),
        (400, -1006, "An unexpected response was received from the message bus. Execution status unknown."),
        (503, 0, "Unknown error, please check your request or try again later."),
    ],
)
async def test_a_copy_answered_status_unknown_after_the_venue_accepted_it_is_placed_once(app, fake, status, code, msg):
    master, follows = await _setup(app, fake)
    first, second = (fake.accounts[key] for key, _ in FOLLOWERS)
    fake.fail_after_processing_next("POST", "/fapi/v1/order", status=status, code=code, msg=msg)

    await fake.master_trade(MASTER[0], "BTCUSDT", "BUY", D("0.2"))
    await eventually(
        lambda: first.signed_position("BTCUSDT") == D("0.1") and second.signed_position("BTCUSDT") == D("0.2"),
        "entries",
    )
    await app.listeners.idle()
    for account in (first, second):
        assert len(account.orders) == 1  # the unknown answer was looked up, not resent


async def test_a_follower_who_closed_part_by_hand_is_not_bought_back_by_sync_after_the_master_exits(app, fake):
    master, follows = await _setup(app, fake)
    second = fake.accounts[FOLLOWERS[1][0]]  # coefficient 1
    await fake.master_trade(MASTER[0], "BTCUSDT", "BUY", D("0.1"))
    await eventually(lambda: second.signed_position("BTCUSDT") == D("0.1"), "the entry")
    await app.listeners.idle()
    (entry,) = await app.accounts.copy_history(follows[1].user_id, limit=10)
    entry_price = entry.average_price

    def position_reads() -> int:
        return fake.count("GET", "/fapi/v3/positionRisk") + fake.count("GET", "/fapi/v2/positionRisk")

    reads = position_reads()
    await fake.master_trade(FOLLOWERS[1][0], "BTCUSDT", "SELL", D("0.04"), reduce_only=True)  # closed by hand
    await fake.master_trade(MASTER[0], "BTCUSDT", "SELL", D("0.1"), reduce_only=True)
    await eventually(lambda: second.signed_position("BTCUSDT") == 0, "the follower flat with the master")

    await app.listeners.idle()
    user_id = follows[1].user_id
    history = await app.accounts.copy_history(user_id, limit=10)
    exit_copy = next(r for r in history if r.origin == "copy" and r.side == "sell")
    assert (exit_copy.status, exit_copy.filled_quantity) == (CopyStatus.FILLED, D("0.06"))
    sent = [o for o in second.orders.values() if o.client_order_id == exit_copy.client_order_id]
    assert [(o.quantity, o.reduce_only) for o in sent] == [(D("0.06"), True)]
    assert "0.04 BTC closed outside the copier is not sent" in (exit_copy.reason or "")
    (write_off,) = [r for r in history if r.origin == "write_off"]
    assert (write_off.status, write_off.requested_quantity) == (CopyStatus.WRITTEN_OFF, D("0.04"))
    assert write_off.client_order_id not in {o.client_order_id for o in second.orders.values()}
    assert position_reads() == reads + len(FOLLOWERS)  # one read per follower account, for its exit only
    assert [p for p in await app.accounts.follow_positions_of(follows[1].id) if p.quantity] == []

    export = await app.services.reports.exports.export_user_log(user_id, fmt="json")
    logged = [r for r in json.loads(export.content)["rows"] if r["origin"] == "write_off"]
    assert [(r["status"], r["side"], r["requested_quantity"]) for r in logged] == [("written_off", "sell", "0.04")]
    assert logged[0]["reason"].startswith("closed outside the copier") and logged[0]["master_trade_id"]
    pnl = (await app.services.reports.pnl.follow_pnl(user_id, period="all")).follows[0]
    assert pnl.positions == ()  # /pnl: nothing open, and only the 0.06 the copier closed realized
    assert pnl.realized_gross == (exit_copy.average_price - entry_price) * D("0.06")

    orders_before = len(second.orders)
    assert await app.services.check_drift(user_id, follows[1].id) == {}  # nothing to report again
    assert await app.services.sync(user_id, follows[1].id) == []
    assert len(second.orders) == orders_before and second.signed_position("BTCUSDT") == 0  # nothing bought back


async def test_a_150_btc_market_copy_is_sent_within_market_lot_size_and_fully_executed(app, fake):
    master, follows = await _setup(app, fake)
    for key, _ in [MASTER, *FOLLOWERS]:
        fake.accounts[key].futures_wallet = D("100000000")
    second = fake.accounts[FOLLOWERS[1][0]]  # coefficient 1

    await fake.master_trade(MASTER[0], "BTCUSDT", "BUY", D("150"))
    await eventually(lambda: second.signed_position("BTCUSDT") == D("150"), "the whole entry")
    entries = [o for o in second.orders.values() if o.side == "BUY"]
    assert sorted(o.quantity for o in entries) == [D(75), D(75)]  # MARKET_LOT_SIZE maxQty 120
    assert all(o.status == "FILLED" and o.client_order_id.startswith("cs") for o in entries)

    await fake.master_trade(MASTER[0], "BTCUSDT", "SELL", D("150"), reduce_only=True)
    await eventually(lambda: second.signed_position("BTCUSDT") == 0, "the whole exit")
    await app.listeners.idle()
    rows = await app.accounts.copy_history(follows[1].user_id, limit=10)
    assert sorted((r.side, r.requested_quantity, r.status) for r in rows) == [
        ("buy", D(75), CopyStatus.FILLED),
        ("buy", D(75), CopyStatus.FILLED),
        ("sell", D(75), CopyStatus.FILLED),
        ("sell", D(75), CopyStatus.FILLED),
    ]
    assert all("part" in (r.reason or "") and "120" in (r.reason or "") for r in rows)


async def test_a_150_btc_stop_close_is_sent_within_market_lot_size_and_the_follower_ends_flat(app, fake):
    master, follows = await _setup(app, fake)
    for key, _ in [MASTER, *FOLLOWERS]:
        fake.accounts[key].futures_wallet = D("100000000")
    second = fake.accounts[FOLLOWERS[1][0]]  # coefficient 1
    await fake.master_trade(MASTER[0], "BTCUSDT", "BUY", D("150"))
    await eventually(lambda: second.signed_position("BTCUSDT") == D("150"), "the whole entry")
    await app.listeners.idle()

    _, results = await app.services.stop_follow(follows[1].user_id, follows[1].id, close_positions=True)

    closes = [o for o in second.orders.values() if o.side == "SELL"]
    assert sorted(o.quantity for o in closes) == [D(75), D(75)]  # MARKET_LOT_SIZE maxQty 120, never -4005
    assert all(o.reduce_only and o.status == "FILLED" for o in closes)
    assert [(r.origin, r.status) for r in results] == [("close", CopyStatus.FILLED)] * 2
    assert second.signed_position("BTCUSDT") == 0
    assert [p for p in await app.accounts.follow_positions_of(follows[1].id) if p.quantity] == []


async def test_a_stop_close_after_a_partial_close_by_hand_is_not_refused_and_writes_off_the_rest(app, fake):
    master, follows = await _setup(app, fake)
    second = fake.accounts[FOLLOWERS[1][0]]  # coefficient 1
    await fake.master_trade(MASTER[0], "BTCUSDT", "BUY", D("0.1"))
    await eventually(lambda: second.signed_position("BTCUSDT") == D("0.1"), "the entry")
    await app.listeners.idle()
    await fake.master_trade(FOLLOWERS[1][0], "BTCUSDT", "SELL", D("0.04"), reduce_only=True)  # closed by hand

    _, results = await app.services.stop_follow(follows[1].user_id, follows[1].id, close_positions=True)

    assert [(r.status, r.filled_quantity) for r in results] == [(CopyStatus.FILLED, D("0.06"))]  # never -2022
    assert second.signed_position("BTCUSDT") == 0
    history = await app.accounts.copy_history(follows[1].user_id, limit=10)
    (write_off,) = [r for r in history if r.origin == "write_off"]
    assert write_off.requested_quantity == D("0.04")
    assert [p for p in await app.accounts.follow_positions_of(follows[1].id) if p.quantity] == []
