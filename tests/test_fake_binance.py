"""The fake Binance behaves like Binance: every behaviour driven through the real ccxt (async and
pro), never through the fake's internals. The sources for each behaviour are cited in
tests/fakes/binance.py (docs/research/binance.md)."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import ccxt
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import pytest

from tests.fakes.binance import (
    MSG_DISCONNECTED,
    MSG_TIMEOUT,
    MSG_UNEXPECTED_RESP,
    MSG_UNKNOWN,
    MSG_UNKNOWN_ERROR_503,
    FakeBinance,
)
from tests.fakes.smartapi import EgressProxy
from tests.harness import eventually

KEY, SECRET = "fake-test-key", "fake-test-secret"
PERP, SPOT_BTC = "BTC/USDT:USDT", "BTC/USDT"
D = Decimal
DAY_MS = 86_400_000

Client = Callable[..., Awaitable[Any]]


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance() as server:
        server.add_account(KEY, SECRET)
        yield server


@pytest.fixture
async def client(fake: FakeBinance) -> AsyncIterator[Client]:
    """Builds ccxt clients (binanceusdm by default; ``pro=True`` for streams) pointed at the fake."""
    created: list[Any] = []

    async def build(exchange_id: str = "binanceusdm", *, pro: bool = False, timeout_ms: int = 10_000) -> Any:
        module = ccxt_pro if pro else ccxt_async
        options: dict[str, Any] = {"fetchCurrencies": False, "fetchMargins": False}
        options["fetchMarkets"] = {"types": ["linear"] if exchange_id == "binanceusdm" else ["spot"]}
        if pro:
            options["watchPositions"] = {"fetchPositionsSnapshot": False}
            options["watchBalance"] = {"fetchBalanceSnapshot": False}
        exchange = getattr(module, exchange_id)(
            {"apiKey": KEY, "secret": SECRET, "timeout": timeout_ms, "enableRateLimit": False, "options": options}
        )
        exchange.urls["api"].update(fake.url_overrides())
        await exchange.load_markets()
        created.append(exchange)
        return exchange

    yield build
    for exchange in created:
        await exchange.close()


class Stream:
    """Collects what a ccxt.pro ``watch_*`` call yields, in the background."""

    def __init__(self, watch: Callable[[], Awaitable[list[dict[str, Any]]]]) -> None:
        self.items: list[dict[str, Any]] = []
        self._task = asyncio.create_task(self._run(watch))

    async def _run(self, watch: Callable[[], Awaitable[list[dict[str, Any]]]]) -> None:
        while True:
            self.items.extend(copy.deepcopy(item) for item in await watch())  # ccxt updates its cache in place

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@pytest.fixture
async def streams() -> AsyncIterator[Callable[[Callable[[], Awaitable[list[dict[str, Any]]]]], Stream]]:
    opened: list[Stream] = []

    def open_stream(watch: Callable[[], Awaitable[list[dict[str, Any]]]]) -> Stream:
        opened.append(Stream(watch))
        return opened[-1]

    yield open_stream
    for stream in opened:
        await stream.close()


# --------------------------------------------------------------------------- 1. limit orders


async def test_a_resting_limit_fills_partially_then_fully_with_a_trade_event_each(
    fake: FakeBinance, client: Client, streams
) -> None:
    rest, pro = await client(), await client(pro=True)
    trades = streams(pro.watch_my_trades)
    orders = streams(pro.watch_orders)
    await eventually(lambda: fake.open_websockets == 1, "the user-data socket")

    placed = await rest.create_order(PERP, "limit", "buy", 0.01, 59000, {"clientOrderId": "rest-1"})
    assert (placed["status"], placed["filled"]) == ("open", 0)
    await eventually(lambda: len(orders.items) == 1, "the streamed events")
    assert (orders.items[0]["info"]["x"], orders.items[0]["info"]["X"]) == ("NEW", "NEW")

    await fake.trade_through("BTCUSDT", D("59500"))  # above a buy's limit: nothing crosses
    await fake.trade_through("BTCUSDT", D("59000"), D("0.004"))
    await eventually(lambda: len(trades.items) == 1, "the streamed events")
    partial = await rest.fetch_order(None, PERP, {"clientOrderId": "rest-1"})
    await fake.trade_through("BTCUSDT", D("58900"))
    await eventually(lambda: len(trades.items) == 2, "the streamed events")
    done = await rest.fetch_order(None, PERP, {"clientOrderId": "rest-1"})

    assert (partial["status"], partial["filled"], partial["info"]["status"]) == ("open", 0.004, "PARTIALLY_FILLED")
    assert (done["status"], done["filled"], done["average"]) == ("closed", 0.01, 59000)
    first, second = (t["info"] for t in trades.items)
    assert (first["x"], first["X"], first["l"], first["z"], first["L"]) == (
        "TRADE",
        "PARTIALLY_FILLED",
        "0.004",
        "0.004",
        "59000",
    )
    assert (second["x"], second["X"], second["l"], second["z"], second["ap"]) == (
        "TRADE",
        "FILLED",
        "0.006",
        "0.01",
        "59000",
    )
    assert first["t"] != second["t"] and first["c"] == second["c"] == "rest-1"
    assert (first["n"], first["N"], first["m"], first["ps"], first["R"], first["rp"]) == (
        "0.0944",
        "USDT",
        True,
        "BOTH",
        False,
        "0",
    )
    history = await rest.fetch_my_trades(PERP)
    assert [t["amount"] for t in history] == [0.004, 0.006] and history[0]["takerOrMaker"] == "maker"


async def test_a_marketable_limit_fills_at_once_at_the_better_price(fake: FakeBinance, client: Client) -> None:
    rest = await client()
    order = await rest.create_order(PERP, "limit", "buy", 0.01, 61000)
    assert (order["status"], order["filled"], order["average"]) == ("closed", 0.01, 60000)


async def test_ioc_expires_what_it_cannot_fill_and_fok_is_rejected(fake: FakeBinance, client: Client, streams) -> None:
    rest, pro = await client(), await client(pro=True)
    orders = streams(pro.watch_orders)
    await eventually(lambda: fake.open_websockets == 1, "the user-data socket")

    ioc = await rest.create_order(PERP, "limit", "buy", 0.01, 59000, {"timeInForce": "IOC"})
    assert (ioc["status"], ioc["filled"]) == ("expired", 0)
    await eventually(lambda: [o["info"]["x"] for o in orders.items] == ["NEW", "EXPIRED"], "the streamed events")

    with pytest.raises(ccxt.InvalidOrder, match="-5021"):
        await rest.create_order(PERP, "limit", "buy", 0.01, 59000, {"timeInForce": "FOK", "clientOrderId": "fok"})
    with pytest.raises(ccxt.OrderNotFound):
        await rest.fetch_order(None, PERP, {"clientOrderId": "fok"})


async def test_modify_order_moves_a_resting_limit_and_pushes_an_amendment(
    fake: FakeBinance, client: Client, streams
) -> None:
    """USD-M Modify Order, ``PUT /fapi/v1/order`` through ccxt's ``edit_order`` (§3)."""
    rest, pro = await client(), await client(pro=True)
    orders = streams(pro.watch_orders)
    await eventually(lambda: fake.open_websockets == 1, "the user-data socket")
    placed = await rest.create_order(PERP, "limit", "buy", 0.01, 59000, {"clientOrderId": "mod-1"})
    await fake.trade_through("BTCUSDT", D("59000"), D("0.004"))

    edited = await rest.edit_order(placed["id"], PERP, "limit", "buy", 0.012, 58800)  # below the mark: rests
    assert (edited["price"], edited["amount"], edited["filled"], edited["clientOrderId"]) == (
        58800,
        0.012,
        0.004,
        "mod-1",
    )
    await eventually(lambda: [o["info"]["x"] for o in orders.items][-1:] == ["AMENDMENT"], "the amendment event")
    amendment = orders.items[-1]
    assert (amendment["info"]["X"], amendment["price"], amendment["amount"]) == ("PARTIALLY_FILLED", 58800, 0.012)

    with pytest.raises(ccxt.InvalidOrder, match="-1013"):  # a filter failure: the order "will stay as it is"
        raw = {"symbol": "BTCUSDT", "orderId": placed["id"], "side": "BUY", "quantity": "0.012", "price": "58800.05"}
        await rest.fapiPrivatePutOrder(raw)  # off the 0.10 tick (ccxt's edit_order would round it)
    assert fake.accounts[KEY].orders[int(placed["id"])].price == D("58800")
    below = await rest.edit_order(placed["id"], PERP, "limit", "buy", 0.004, 58700)  # not above what executed
    assert (below["status"], below["price"]) == ("canceled", 58800)
    await eventually(lambda: [o["info"]["x"] for o in orders.items][-1:] == ["CANCELED"], "the cancellation event")
    with pytest.raises(ccxt.OrderNotFound):  # a finished order cannot be modified (the code is unconfirmed)
        await rest.edit_order(placed["id"], PERP, "limit", "buy", 0.01, 59000)
    market = await rest.create_order(PERP, "market", "buy", 0.01)
    with pytest.raises(ccxt.OrderNotFound):  # only LIMIT orders may be modified
        await rest.edit_order(market["id"], PERP, "limit", "buy", 0.01, 59000)


async def test_fill_resting_still_fills_a_resting_order(fake: FakeBinance, client: Client) -> None:
    rest = await client()
    order = await rest.create_order(PERP, "limit", "sell", 0.01, 61000, {"clientOrderId": "ask"})
    await fake.fill_resting(KEY, int(order["id"]))
    assert (await rest.fetch_order(None, PERP, {"clientOrderId": "ask"}))["status"] == "closed"


# --------------------------------------------------------------------------- 2. status unknown, rejections


@pytest.mark.parametrize(
    ("status", "code", "msg", "raised"),
    [
        (500, -1000, MSG_UNKNOWN, ccxt.OperationFailed),
        (500, -1001, MSG_DISCONNECTED, ccxt.OperationFailed),
        (500, -1006, MSG_UNEXPECTED_RESP, ccxt.OperationFailed),
        (408, -1007, MSG_TIMEOUT, ccxt.RequestTimeout),
        (503, 0, MSG_UNKNOWN_ERROR_503, ccxt.ExchangeNotAvailable),
    ],
)
async def test_status_unknown_answers_come_after_the_order_was_accepted(
    fake: FakeBinance, client: Client, streams, status: int, code: int, msg: str, raised: type[Exception]
) -> None:
    rest, pro = await client(), await client(pro=True)
    trades = streams(pro.watch_my_trades)
    await eventually(lambda: fake.open_websockets == 1, "the user-data socket")
    fake.fail_after_processing_next("POST", "/fapi/v1/order", status=status, code=code, msg=msg)

    with pytest.raises(raised):
        await rest.create_order(PERP, "market", "buy", 0.01, None, {"clientOrderId": "unknown-1"})

    found = await rest.fetch_order(None, PERP, {"clientOrderId": "unknown-1"})
    assert (found["status"], found["filled"]) == ("closed", 0.01)
    await eventually(lambda: len(trades.items) == 1, "the streamed events")
    [position] = await rest.fetch_positions([PERP])
    assert position["contracts"] == 0.01


async def test_a_blind_resend_of_a_filled_order_is_a_second_order(fake: FakeBinance, client: Client) -> None:
    rest = await client(timeout_ms=300)
    fake.delay_next("POST", "/fapi/v1/order", 1.0)
    with pytest.raises(ccxt.RequestTimeout):
        await rest.create_order(PERP, "market", "buy", 0.01, None, {"clientOrderId": "resend"})

    await rest.create_order(PERP, "market", "buy", 0.01, None, {"clientOrderId": "resend"})

    [position] = await rest.fetch_positions([PERP])
    assert position["contracts"] == 0.02  # Binance accepted the id again: the order exists twice


@pytest.mark.parametrize(
    ("status", "code", "msg", "raised"),
    [
        (400, -2019, "Margin is insufficient.", ccxt.ExchangeError),  # linear table only on fapi hosts
        (429, -1003, "Too many requests; current limit is 2400 requests per minute.", ccxt.DDoSProtection),
        (418, -1003, "Way too many requests; IP banned until 1700000000000.", ccxt.DDoSProtection),
    ],
)
async def test_plain_rejections_place_nothing(
    fake: FakeBinance, client: Client, status: int, code: int, msg: str, raised: type[Exception]
) -> None:
    rest = await client()
    fake.fail_next("POST", "/fapi/v1/order", status=status, code=code, msg=msg, headers={"Retry-After": "7"})

    with pytest.raises(raised):
        await rest.create_order(PERP, "market", "buy", 0.01, None, {"clientOrderId": "refused"})

    assert rest.last_response_headers["Retry-After"] == "7"
    with pytest.raises(ccxt.OrderNotFound):
        await rest.fetch_order(None, PERP, {"clientOrderId": "refused"})


async def test_margin_is_checked_by_the_matching_engine(fake: FakeBinance, client: Client) -> None:
    rest = await client()
    with pytest.raises(ccxt.ExchangeError, match="-2019"):
        await rest.create_order(PERP, "market", "buy", 5, None)


async def test_a_skewed_clock_refuses_signed_requests_for_a_while(fake: FakeBinance, client: Client) -> None:
    rest = await client()
    fake.skew_clock(20_000, seconds=0.3)

    with pytest.raises(ccxt.InvalidNonce, match="-1021"):
        await rest.fetch_balance()
    await asyncio.sleep(0.35)
    assert (await rest.fetch_balance())["USDT"]["total"] == 10000


# --------------------------------------------------------------------------- 3. client order ids


async def test_client_ids_are_unique_among_open_orders_only(fake: FakeBinance, client: Client) -> None:
    rest = await client()
    first = await rest.create_order(PERP, "limit", "buy", 0.01, 59000, {"clientOrderId": "cid"})

    with pytest.raises(ccxt.ExchangeError, match="-4116"):
        await rest.create_order(PERP, "limit", "buy", 0.01, 59000, {"clientOrderId": "cid"})
    await rest.cancel_order(first["id"], PERP)
    second = await rest.create_order(PERP, "limit", "buy", 0.01, 58000, {"clientOrderId": "cid"})

    newest = await rest.fetch_order(None, PERP, {"clientOrderId": "cid"})
    assert newest["id"] == second["id"] != first["id"] and newest["price"] == 58000
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        await rest.fetch_order(None, PERP, {"clientOrderId": "never-sent"})


# --------------------------------------------------------------------------- 4. hedge mode


async def test_hedge_mode_requires_position_side_and_refuses_reduce_only(
    fake: FakeBinance, client: Client, streams
) -> None:
    rest, pro = await client(), await client(pro=True)
    await rest.set_position_mode(True)
    with pytest.raises(ccxt.ExchangeError, match="-4059"):
        await rest.set_position_mode(True)  # no change
    positions = streams(pro.watch_positions)
    await eventually(lambda: fake.open_websockets == 1, "the user-data socket")

    with pytest.raises(ccxt.OperationRejected, match="-4061"):
        await rest.create_order(PERP, "market", "buy", 0.01)
    with pytest.raises(ccxt.BadRequest, match="-1106"):
        await rest.create_order(PERP, "market", "sell", 0.01, None, {"positionSide": "LONG", "reduceOnly": True})
    await rest.create_order(PERP, "market", "buy", 0.02, None, {"positionSide": "LONG"})
    await rest.create_order(PERP, "market", "sell", 0.01, None, {"hedged": True})  # ccxt: positionSide SHORT
    with pytest.raises(ccxt.ExchangeError, match="-2022"):
        await rest.create_order(PERP, "market", "sell", 0.03, None, {"positionSide": "LONG"})

    held = {p["side"]: p["contracts"] for p in await rest.fetch_positions([PERP])}
    assert held == {"long": 0.02, "short": 0.01}
    await eventually(lambda: len(positions.items) == 2, "the streamed events")
    assert [(p["info"]["ps"], p["info"]["pa"]) for p in positions.items] == [("LONG", "0.02"), ("SHORT", "-0.01")]


async def test_hedge_mode_conditional_orders_need_a_position_side_and_refuse_reduce_only(
    fake: FakeBinance, client: Client
) -> None:
    """The same New Order rules hold for take-profit / stop-loss (algo) orders (§5)."""
    rest = await client()
    await rest.set_position_mode(True)
    await rest.create_order(PERP, "market", "buy", 0.02, None, {"positionSide": "LONG"})
    stop = {"stopLossPrice": 50000}
    with pytest.raises(ccxt.OperationRejected, match="-4061"):
        await rest.create_order(PERP, "market", "sell", 0.02, None, stop)
    with pytest.raises(ccxt.BadRequest, match="-1106"):
        await rest.create_order(
            PERP, "market", "sell", 0.02, None, {**stop, "positionSide": "LONG", "reduceOnly": True}
        )
    await rest.create_order(PERP, "market", "sell", 0.02, None, {**stop, "positionSide": "LONG"})
    [resting] = [o for o in fake.accounts[KEY].orders.values() if o.algo]
    assert (resting.position_side, resting.reduce_only, resting.status) == ("LONG", False, "NEW")


async def test_one_way_mode_refuses_a_position_side(fake: FakeBinance, client: Client) -> None:
    rest = await client()
    with pytest.raises(ccxt.OperationRejected, match="-4061"):
        await rest.create_order(PERP, "market", "buy", 0.01, None, {"positionSide": "LONG"})


# --------------------------------------------------------------------------- 5. spot


async def test_an_account_paying_fees_with_bnb_is_charged_in_bnb_and_receives_the_whole_trade(
    fake: FakeBinance, client: Client
) -> None:
    """commission_faq.md: the commission "converted into BNB based on the exchange rate" while the
    account holds enough BNB (BNB at 600 here): 0.01 BTC at 60000 with the 0.04 % rate is 0.24
    USDT = 0.0004 BNB; without enough BNB the standard commission comes back."""
    account = fake.accounts[KEY]
    account.pay_fees_in_bnb = True
    account.spot_balances["BNB"] = Decimal("0.0005")
    account.futures_bnb = Decimal("1")
    spot, futures = await client("binance"), await client()

    order = await spot.create_order(SPOT_BTC, "market", "buy", 0.01)
    assert order["fee"] == {"cost": 0.0004, "currency": "BNB"}
    balance = await spot.fetch_balance()
    assert (balance["BTC"]["total"], balance["BNB"]["total"]) == (0.01, 0.0001)  # the whole 0.01 received
    [history] = await spot.fetch_my_trades(SPOT_BTC)
    assert (history["info"]["commissionAsset"], history["info"]["commission"]) == ("BNB", "0.0004")
    again = await spot.create_order(SPOT_BTC, "market", "buy", 0.01)  # 0.0001 BNB left: not enough
    assert again["fee"] == {"cost": 0.000004, "currency": "BTC"}

    await futures.create_order(PERP, "market", "buy", 0.01)
    [trade] = await futures.fetch_my_trades(PERP)
    assert (trade["fee"]["currency"], trade["fee"]["cost"]) == ("BNB", 0.0004)
    assert account.futures_bnb == Decimal("0.9996") and account.futures_wallet == Decimal("10000")


async def test_spot_buy_commission_is_taken_in_the_base_asset(fake: FakeBinance, client: Client, streams) -> None:
    spot, pro = await client("binance"), await client("binance", pro=True)
    await pro.authenticate()  # userDataStream.subscribe.signature, answered
    trades = streams(pro.watch_my_trades)

    order = await spot.create_order(SPOT_BTC, "market", "buy", 0.01)
    await eventually(lambda: len(trades.items) == 1, "the streamed events")

    assert order["fee"] == {"cost": 0.000004, "currency": "BTC"}
    balance = await spot.fetch_balance()
    assert (balance["BTC"]["total"], balance["USDT"]["total"]) == (0.009996, 9400)
    [streamed] = trades.items
    assert (streamed["fee"]["currency"], streamed["fee"]["cost"], streamed["info"]["e"]) == (
        "BTC",
        0.000004,
        "executionReport",
    )
    [history] = await spot.fetch_my_trades(SPOT_BTC)
    assert (history["info"]["commissionAsset"], history["info"]["commission"]) == ("BTC", "0.000004")

    with pytest.raises(ccxt.InsufficientFunds, match="insufficient balance"):  # -2010, matched by message
        await spot.create_order(SPOT_BTC, "market", "sell", 0.01)  # only 0.009996 held
    await spot.create_order(SPOT_BTC, "limit", "sell", 0.00999, 70000)  # rests and locks its BTC
    with pytest.raises(ccxt.InsufficientFunds):
        await spot.create_order(SPOT_BTC, "market", "sell", 0.0001)


async def test_spot_user_data_arrives_through_the_websocket_api(fake: FakeBinance) -> None:
    """The subscribe request and the event wrapper on the wire, as ccxt 4.5 expects them."""
    async with aiohttp.ClientSession() as session, session.ws_connect(f"ws://127.0.0.1:{fake.port}/ws-api/v3") as ws:
        signer = ccxt_pro.binance({"apiKey": KEY, "secret": SECRET})
        try:
            params = signer.sign_params({})
        finally:
            await signer.close()
        await ws.send_str(json.dumps({"id": "7", "method": "userDataStream.subscribe.signature", "params": params}))
        answer = json.loads((await ws.receive(timeout=5)).data)
        await fake.master_trade(KEY, "BTCUSDT", "BUY", D("0.01"), market="spot")
        new = json.loads((await ws.receive(timeout=5)).data)
        trade = json.loads((await ws.receive(timeout=5)).data)

    assert answer == {"id": "7", "status": 200, "result": {"subscriptionId": 0}}
    assert new["subscriptionId"] == 0 and (new["event"]["x"], new["event"]["t"]) == ("NEW", -1)
    assert (trade["event"]["x"], trade["event"]["X"], trade["event"]["N"]) == ("TRADE", "FILLED", "BTC")


# --------------------------------------------------------------------------- 6. trade history, income


async def test_user_trades_need_a_symbol_a_short_window_and_a_small_limit(fake: FakeBinance, client: Client) -> None:
    rest, spot = await client(), await client("binance")
    now = rest.milliseconds()

    with pytest.raises(ccxt.BadRequest, match="-1102"):
        await rest.fapiPrivateGetUserTrades({})
    with pytest.raises(ccxt.BadRequest, match="-1127"):
        await rest.fapiPrivateGetUserTrades({"symbol": "BTCUSDT", "startTime": now - 8 * DAY_MS, "endTime": now})
    with pytest.raises(ccxt.BadRequest, match="-1130"):
        await rest.fapiPrivateGetUserTrades({"symbol": "BTCUSDT", "limit": 1001})
    with pytest.raises(ccxt.BadRequest, match="-1128"):
        await rest.fapiPrivateGetUserTrades({"symbol": "BTCUSDT", "fromId": 1, "startTime": now})
    with pytest.raises(ccxt.BadRequest, match="-1127"):
        await spot.privateGetMyTrades({"symbol": "BTCUSDT", "startTime": now - DAY_MS - 1000, "endTime": now})

    for _ in range(3):
        await rest.create_order(PERP, "market", "buy", 0.01)
    ids = [int(t["id"]) for t in await rest.fetch_my_trades(PERP)]
    assert len(ids) == 3 and ids == sorted(ids)


async def test_income_history_names_the_symbols_an_account_traded(fake: FakeBinance, client: Client) -> None:
    rest = await client()
    await rest.create_order(PERP, "market", "buy", 0.01)
    await rest.create_order("ETH/USDT:USDT", "market", "buy", 0.1)
    fake.set_mark_price("BTCUSDT", D("61000"))
    await rest.create_order(PERP, "market", "sell", 0.01, None, {"reduceOnly": True})

    commissions = await rest.fapiPrivateGetIncome({"incomeType": "COMMISSION"})
    [pnl] = await rest.fapiPrivateGetIncome({"incomeType": "REALIZED_PNL"})

    assert {row["symbol"] for row in commissions} == {"BTCUSDT", "ETHUSDT"} and len(commissions) == 3
    assert (pnl["symbol"], pnl["income"], pnl["asset"]) == ("BTCUSDT", "10", "USDT")


# --------------------------------------------------------------------------- 7. listen keys


async def test_an_expired_listen_key_announces_itself_and_goes_silent(
    fake: FakeBinance, client: Client, streams
) -> None:
    rest, pro = await client(), await client(pro=True)
    trades = streams(pro.watch_my_trades)
    await eventually(lambda: fake.open_websockets == 1, "the user-data socket")
    key = (await rest.fapiPrivatePostListenKey())["listenKey"]  # the active key: the one ccxt uses
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"ws://127.0.0.1:{fake.port}/private/ws?listenKey={key}") as raw:
            expired = await fake.expire_listen_key(KEY)
            event = json.loads((await raw.receive(timeout=5)).data)
            await fake.master_trade(KEY, "BTCUSDT", "BUY", D("0.01"))
            with pytest.raises(TimeoutError):
                await raw.receive(timeout=0.3)

    assert expired == key and set(event) == {"e", "E", "listenKey"}
    assert (event["e"], event["listenKey"]) == ("listenKeyExpired", key)
    assert trades.items == []  # ccxt's socket on the same key hears nothing more
    with pytest.raises(ccxt.AuthenticationError, match="-1125"):
        await rest.fapiPrivatePutListenKey()
    assert (await rest.fapiPrivatePostListenKey())["listenKey"] != key


# --------------------------------------------------------------------------- 8. order-count limit


async def test_order_count_is_reported_and_limited() -> None:
    async with FakeBinance(order_limit_10s=2) as fake:
        fake.add_account(KEY, SECRET)
        rest = ccxt_async.binanceusdm(
            {"apiKey": KEY, "secret": SECRET, "enableRateLimit": False, "options": {"fetchCurrencies": False}}
        )
        rest.urls["api"].update(fake.url_overrides())
        try:
            info = await rest.fapiPublicGetExchangeInfo()
            await rest.load_markets()
            await rest.create_order(PERP, "market", "buy", 0.01)
            await rest.create_order(PERP, "market", "buy", 0.01)
            counted = dict(rest.last_response_headers)
            with pytest.raises(ccxt.DDoSProtection, match="-1015"):
                await rest.create_order(PERP, "market", "buy", 0.01)
            refused = dict(rest.last_response_headers)
        finally:
            await rest.close()

    assert {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 2} in info["rateLimits"]
    assert (counted["X-MBX-ORDER-COUNT-10S"], counted["X-MBX-ORDER-COUNT-1M"]) == ("2", "2")
    assert int(refused["Retry-After"]) >= 1 and "X-MBX-USED-WEIGHT-1M" in refused


async def test_request_weight_is_counted_per_ip_with_each_endpoints_documented_weight() -> None:
    """USD-M New Order weighs 0 on the IP limit, Get Current Position Mode 30, Account V3 5 (each
    endpoint's page); the answer carries the IP's weight; another IP (an egress proxy leaving from
    127.0.0.7) has its own count."""
    async with FakeBinance() as fake:
        fake.add_account(KEY, SECRET)
        proxy = EgressProxy("127.0.0.7")
        await proxy.start()
        clients = []
        for proxied in (False, True):
            rest = ccxt_async.binanceusdm(
                {"apiKey": KEY, "secret": SECRET, "enableRateLimit": False, "options": {"fetchCurrencies": False}}
            )
            if proxied:
                rest.httpsProxy = proxy.url
            rest.urls["api"].update(fake.url_overrides())
            clients.append(rest)
        direct, through = clients
        try:
            await direct.load_markets()  # exchangeInfo: 1
            await direct.create_order(PERP, "market", "buy", 0.01)  # 0
            after_order = int(direct.last_response_headers["X-MBX-USED-WEIGHT-1M"])
            await direct.fapiPrivateGetPositionSideDual()  # 30
            after_mode = int(direct.last_response_headers["X-MBX-USED-WEIGHT-1M"])
            await through.fapiPrivateV3GetAccount()  # 5, from another IP
            other_ip = int(through.last_response_headers["X-MBX-USED-WEIGHT-1M"])
        finally:
            for rest in clients:
                await rest.close()
            await proxy.close()

    assert (after_order, after_mode, other_ip) == (1, 31, 5)
    assert fake.weights.used("127.0.0.1") == 31 and fake.weights.used("127.0.0.7") == 5


async def test_over_the_weight_limit_a_429_with_retry_after_then_a_418_ban_for_not_backing_off() -> None:
    """Over the IP's limit: 429 -1003 with Retry-After; a client that sends again before it has
    passed is banned: 418 with Retry-After until the ban ends, for every request of that IP (its
    orders too); another IP is not affected."""
    async with FakeBinance(weight_limit=60, ban_seconds=30) as fake:
        fake.weights.grace = 0  # no request is still on its way here: the next one did not back off
        fake.add_account(KEY, SECRET)
        proxy = EgressProxy("127.0.0.8")
        await proxy.start()
        rest = ccxt_async.binanceusdm(
            {"apiKey": KEY, "secret": SECRET, "enableRateLimit": False, "options": {"fetchCurrencies": False}}
        )
        rest.urls["api"].update(fake.url_overrides())
        other = ccxt_async.binanceusdm(
            {"apiKey": KEY, "secret": SECRET, "enableRateLimit": False, "options": {"fetchCurrencies": False}}
        )
        other.httpsProxy = proxy.url
        other.urls["api"].update(fake.url_overrides())
        try:
            published = await _exchange_info(fake)  # 1
            await rest.load_markets()  # 1
            await rest.fapiPrivateGetPositionSideDual()  # 32 of 60
            with pytest.raises(ccxt.DDoSProtection) as limited:
                await rest.fapiPrivateGetPositionSideDual()
            too_much = dict(rest.last_response_headers)
            with pytest.raises(ccxt.DDoSProtection) as banned:
                await rest.create_order(PERP, "market", "buy", 0.01)  # weight 0, but it did not back off
            ban = dict(rest.last_response_headers)
            assert await other.fapiPrivateGetPositionSideDual() == {"dualSidePosition": False}
        finally:
            await rest.close()
            await other.close()
            await proxy.close()

    assert '"code":-1003' in str(limited.value).replace(" ", "") and "current limit is 60" in str(limited.value)
    assert 1 <= int(too_much["Retry-After"]) <= 60 and too_much["X-MBX-USED-WEIGHT-1M"] == "32"
    assert "IP banned until" in str(banned.value) and 1 <= int(ban["Retry-After"]) <= 30
    assert fake.weights.refused[("127.0.0.1", 429)] == 1 and fake.weights.refused[("127.0.0.1", 418)] == 1
    assert fake.order_requests == []  # the banned order never reached the order handling
    assert {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 60} in published


async def _exchange_info(fake: FakeBinance) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"{fake.base_url}/api/v3/exchangeInfo") as response:
        spot = await response.json()
    async with aiohttp.ClientSession() as http, http.get(f"{fake.base_url}/fapi/v1/exchangeInfo") as response:
        futures = await response.json()
    assert spot["rateLimits"][0]["limit"] == 6000
    return list(futures["rateLimits"])


# --------------------------------------------------------------------------- 9. timing and late acceptance


async def test_an_order_accepted_late_reaches_the_matching_engine_later_and_fills_as_usual(
    fake: FakeBinance, client: Client, streams
) -> None:
    rest, pro = await client(), await client(pro=True)
    trades = streams(pro.watch_my_trades)
    await eventually(lambda: fake.open_websockets == 1, "the user-data socket")
    fake.accept_late_next(delay=0.8)

    with pytest.raises(ccxt.RequestTimeout, match="-1007"):
        await rest.create_order(PERP, "market", "buy", 0.01, None, {"clientOrderId": "late-1"})
    [late] = fake.late_orders
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):  # not in the matching engine yet
        await rest.fetch_order(None, PERP, {"clientOrderId": "late-1"})
    await eventually(lambda: late.outcome != "queued", "the late order reaching the matching engine")

    found = await rest.fetch_order(None, PERP, {"clientOrderId": "late-1"})
    assert late.outcome == "placed" and (found["status"], found["filled"]) == ("closed", 0.01)
    assert found["timestamp"] <= late.deadline_ms  # placed inside the request's window
    await eventually(lambda: len(trades.items) == 1, "the streamed trade")
    [position] = await rest.fetch_positions([PERP])
    assert position["contracts"] == 0.01


async def test_an_order_accepted_late_is_never_placed_past_its_recv_window(fake: FakeBinance, client: Client) -> None:
    rest = await client()
    fake.accept_late_next(delay=0.6)

    with pytest.raises(ccxt.RequestTimeout):
        await rest.create_order(PERP, "market", "buy", 0.01, None, {"clientOrderId": "late-2", "recvWindow": 300})
    [late] = fake.late_orders
    await eventually(lambda: late.outcome != "queued", "the late order reaching the matching engine")

    assert late.outcome == "expired"
    assert fake.server_time_ms() > late.deadline_ms
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        await rest.fetch_order(None, PERP, {"clientOrderId": "late-2"})
    assert await rest.fetch_positions([PERP]) == []  # nothing was ever placed


async def test_a_request_reaching_binance_after_its_recv_window_is_refused(fake: FakeBinance, client: Client) -> None:
    rest = await client()
    now = fake.server_time_ms()

    with pytest.raises(ccxt.InvalidNonce, match="-1021"):  # timestamp + recvWindow already past
        await rest.create_order(PERP, "market", "buy", 0.01, None, {"timestamp": now - 2000, "recvWindow": 1000})
    with pytest.raises(ccxt.InvalidNonce, match="-1021"):  # signed more than 1 s ahead of the server
        await rest.create_order(PERP, "market", "buy", 0.01, None, {"timestamp": now + 5000})
    with pytest.raises(ccxt.BaseError, match="-1131"):  # the longest window Binance takes is 60 s
        await rest.create_order(PERP, "market", "buy", 0.01, None, {"recvWindow": 60_001})
    rest.options["recvWindow"] = None  # ccxt sends 10000 unless told otherwise: now none is sent
    with pytest.raises(ccxt.InvalidNonce, match="-1021"):  # absent: 5000 ms
        await rest.create_order(PERP, "market", "buy", 0.01, None, {"timestamp": fake.server_time_ms() - 6000})
    assert "recvWindow" not in fake.order_requests[-1].params

    await rest.create_order(PERP, "market", "buy", 0.01, None, {"timestamp": fake.server_time_ms() - 4000})
    [position] = await rest.fetch_positions([PERP])
    assert position["contracts"] == 0.01  # only the last one was placed


@pytest.mark.parametrize(
    ("exchange_id", "symbol", "path", "code"),
    [("binanceusdm", PERP, "/fapi/v1/order", "-4116"), ("binance", SPOT_BTC, "/api/v3/order", "-2010")],
)
async def test_a_client_id_waiting_for_the_matching_engine_is_a_duplicate(
    fake: FakeBinance, client: Client, exchange_id: str, symbol: str, path: str, code: str
) -> None:
    rest = await client(exchange_id)
    fake.accept_late_next("POST", path, delay=0.8)
    with pytest.raises(ccxt.RequestTimeout):
        await rest.create_order(symbol, "market", "buy", 0.01, None, {"clientOrderId": "queued"})

    with pytest.raises(ccxt.BaseError, match=code):
        await rest.create_order(symbol, "market", "buy", 0.01, None, {"clientOrderId": "queued"})
    [late] = fake.late_orders
    await eventually(lambda: late.outcome != "queued", "the late order reaching the matching engine")

    assert late.outcome == "placed"
    orders = fake.accounts[KEY].orders.values()
    assert [o.client_order_id for o in orders].count("queued") == 1


async def test_a_share_of_orders_is_accepted_late_as_the_seed_decides() -> None:
    patterns = []
    for _ in range(2):
        async with FakeBinance(seed=7) as fake:
            fake.add_account(KEY, SECRET)
            fake.accept_late(0.5, (0.05, 0.1))
            rest = ccxt_async.binanceusdm(
                {"apiKey": KEY, "secret": SECRET, "enableRateLimit": False, "options": {"fetchCurrencies": False}}
            )
            rest.urls["api"].update(fake.url_overrides())
            try:
                await rest.load_markets()
                pattern = []
                for n in range(12):
                    try:
                        await rest.create_order(PERP, "market", "buy", 0.01, None, {"clientOrderId": f"share-{n}"})
                        pattern.append("answered")
                    except ccxt.RequestTimeout:
                        pattern.append("late")
                await eventually(lambda: all(late.outcome == "placed" for late in fake.late_orders), "the late orders")
                [position] = await rest.fetch_positions([PERP])
            finally:
                await rest.close()
        assert pattern.count("late") == len(fake.late_orders) and 0 < pattern.count("late") < 12
        assert position["contracts"] == pytest.approx(0.12)  # every order placed once, the late ones too
        patterns.append(pattern)
    assert patterns[0] == patterns[1]


async def test_a_reduce_only_order_larger_than_the_position_is_rejected_never_a_flip(
    fake: FakeBinance, client: Client
) -> None:
    rest = await client()
    await rest.create_order(PERP, "market", "buy", 0.06)

    with pytest.raises(ccxt.ExchangeError, match="-2022"):
        await rest.create_order(PERP, "market", "sell", 0.1, None, {"reduceOnly": True})
    positions = await rest.fetch_positions([PERP])
    assert [D(p["info"]["positionAmt"]) for p in positions] == [D("0.06")]

    await rest.create_order(PERP, "market", "sell", 0.06, None, {"reduceOnly": True})
    assert await rest.fetch_positions([PERP]) == []


async def test_quantities_above_the_market_or_limit_maximum_are_rejected(fake: FakeBinance, client: Client) -> None:
    fake.accounts[KEY].futures_wallet = D("100000000")
    rest = await client()
    market = rest.market(PERP)
    assert (market["limits"]["market"]["max"], market["limits"]["amount"]["max"]) == (120, 1000)

    with pytest.raises(ccxt.ExchangeError, match="-4005"):
        await rest.create_order(PERP, "market", "buy", 150)
    with pytest.raises(ccxt.ExchangeError, match="-4005"):
        await rest.create_order(PERP, "limit", "buy", 1001, 50_000)
    await rest.create_order(PERP, "market", "buy", 120)
    await rest.create_order(PERP, "limit", "buy", 150, 50_000)  # LOT_SIZE allows it: it rests
    spot = await client("binance")
    with pytest.raises(ccxt.InvalidOrder, match="MARKET_LOT_SIZE"):
        await spot.create_order(SPOT_BTC, "market", "buy", 101)


async def test_the_minimum_notional_is_waived_for_reduce_only_orders_only(fake: FakeBinance, client: Client) -> None:
    rest = await client()
    await rest.create_order(PERP, "market", "buy", 0.003)  # 180 USDT at 60,000

    with pytest.raises(ccxt.ExchangeError, match="-4164"):
        await rest.create_order(PERP, "market", "sell", 0.001)  # closes, but is not reduce-only
    await rest.create_order(PERP, "market", "sell", 0.001, None, {"reduceOnly": True})
