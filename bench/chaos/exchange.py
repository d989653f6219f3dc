"""The fake Binance of the chaos campaign, in a process of its own that outlives the copier.

``python -m bench.chaos.exchange --seed S`` prints its port on the first line of stdout and serves
until stdin closes (the harness dies → the exchange goes too). It is tests/fakes/binance.py (strict:
client ids unique among open orders only, "status unknown" answered after accepting the order) plus
a control API under ``/__chaos/``:

- ``POST /__chaos/accounts {"keys": [[api_key, secret], ...]}``: futures accounts with a large wallet;
- ``POST /__chaos/trade {"api_key", "symbol", "side", "quantity", "fills", "reduce_only"}``: a master
  execution (in ``fills`` pieces) pushed on the account's user-data sockets; answers its trade ids;
- ``POST /__chaos/faults {"rate", "late"}``: from now on each new futures order of a follower is
  accepted late with probability ``late`` (default 0: see ``ACCEPTED_LATE``), else faulted with
  probability ``rate`` (see ``FAULTS``), drawn from the process's seeded random generator;
- ``POST /__chaos/drop``: every user-data socket closed; ``POST /__chaos/expire {"api_key"}``:
  ``listenKeyExpired`` on that account's futures stream (then silence on it);
- ``POST /__chaos/double {"api_key", "client_order_id", "symbol", "side", "quantity"}``: an order
  executed under an existing copy's client id (the checks' own test: they must see it);
- ``GET /__chaos/state``: every account's orders (by client id), trades and positions, the faults
  injected (with the client order id each hit), what became of each order accepted late and the
  master's open user-data sockets.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.fakes.binance import FakeBinance, text

ORDER_PATH = "/fapi/v1/order"

#: the faults injected on the order path, each as Binance documents it (docs/research/binance.md §1, §7)
FAULTS = (
    "503_after",  # HTTP 503 "Unknown error": the order was accepted, the status is unknown
    "-1000_after",  # UNKNOWN, answered after accepting the order (the worst case)
    "-1006_after",  # "Unexpected response ... Execution status unknown", after accepting
    "timeout",  # accepted, the answer held past the client's timeout
    "429",  # -1003 too many requests, with Retry-After; nothing placed
    "-1021",  # the server clock jumps ahead: signed requests refused until the client resyncs
    "-2019",  # "Margin is insufficient": a plain rejection, the copy fails with its reason
)
#: drawn apart from ``FAULTS`` (and only when switched on, so that a campaign without it draws the
#: same faults as before): the answer is -1007 "Send status unknown; execution status unknown." at
#: once, and the order reaches the matching engine ``LATE_DELAY`` seconds later — never after the
#: request's ``timestamp + recvWindow`` (docs/research/binance.md §1, §9; FakeBinance.accept_late_next)
ACCEPTED_LATE = "accepted_late"
LATE_DELAY = (0.5, 3.0)


class ChaosBinance(FakeBinance):
    def __init__(self, *, seed: int, timeout_s: float, skew_s: float) -> None:
        super().__init__(seed=seed)
        self.fault_rate = 0.0
        self.late_rate = 0.0
        self.timeout_s = timeout_s
        self.skew_s = skew_s
        self.faults: list[dict[str, Any]] = []

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/__chaos/"):
            return await self._control(request)
        if request.method == "POST" and request.path == ORDER_PATH:
            if self.late_rate and self.random.random() < self.late_rate:
                await self._inject_late(request)
            elif self.fault_rate and self.random.random() < self.fault_rate:
                await self._inject(request)
        return await super()._dispatch(request)

    async def _inject_late(self, request: web.Request) -> None:
        body = await request.text()
        params = dict(request.query)
        params.update(parse_qsl(body, keep_blank_values=True))
        self.accept_late_next("POST", ORDER_PATH, delay=LATE_DELAY)
        self.faults.append(
            {"kind": ACCEPTED_LATE, "client_order_id": params.get("newClientOrderId"), "at": time.time()}
        )

    async def _inject(self, request: web.Request) -> None:
        body = await request.text()  # aiohttp keeps it: the handler reads it again
        params = dict(request.query)
        params.update(parse_qsl(body, keep_blank_values=True))
        kind = self.random.choice(FAULTS)
        if kind.endswith("_after"):
            status, code = (503, 0) if kind == "503_after" else (500, int(kind.removesuffix("_after")))
            self.fail_after_processing_next("POST", ORDER_PATH, status=status, code=code, msg="chaos: status unknown")
        elif kind == "timeout":
            self.delay_next("POST", ORDER_PATH, self.timeout_s)
        elif kind == "429":
            self.fail_next(
                "POST",
                ORDER_PATH,
                status=429,
                code=-1003,
                msg="Too many requests; chaos.",
                headers={"Retry-After": "1"},
            )
        elif kind == "-1021":
            self.skew_clock(5_000, self.skew_s)
        else:
            self.fail_next("POST", ORDER_PATH, status=400, code=-2019, msg="Margin is insufficient.")
        self.faults.append({"kind": kind, "client_order_id": params.get("newClientOrderId"), "at": time.time()})

    async def _control(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else {}
        if request.path == "/__chaos/accounts":
            for key, secret in body["keys"]:
                self.add_account(key, secret, futures_wallet=Decimal("100000000"))
            return web.json_response({"accounts": len(self.accounts)})
        if request.path == "/__chaos/trade":
            account = self.accounts[body["api_key"]]
            before = len(account.trades)
            order = await self.master_trade(
                body["api_key"],
                body["symbol"],
                body["side"],
                Decimal(body["quantity"]),
                fills=[Decimal(q) for q in body.get("fills") or [body["quantity"]]],
                reduce_only=bool(body.get("reduce_only")),
            )
            trades = [t.trade_id for t in account.trades[before:] if t.order_id == order.order_id]
            return web.json_response({"order_id": order.order_id, "trade_ids": trades})
        if request.path == "/__chaos/drop":  # every user-data socket closed (a network cut)
            await self.drop_websockets()
            return web.json_response({})
        if request.path == "/__chaos/expire":  # listenKeyExpired on the account's futures stream
            if self.accounts[body["api_key"]].listen_key("futures") is None:
                return web.json_response({"listen_key": None})  # already expired, not renewed yet
            return web.json_response({"listen_key": await self.expire_listen_key(body["api_key"])})
        if request.path == "/__chaos/double":  # the harness's self-check: a copy placed a second time
            order = await self.master_trade(body["api_key"], body["symbol"], body["side"], Decimal(body["quantity"]))
            order.client_order_id = body["client_order_id"]
            return web.json_response({"order_id": order.order_id})
        if request.path == "/__chaos/faults":
            self.fault_rate = float(body["rate"])
            self.late_rate = float(body.get("late", 0.0))
            return web.json_response({"rate": self.fault_rate, "late": self.late_rate})
        if request.path == "/__chaos/state":
            return web.json_response(self._state(request.query.get("master", "")))
        return web.json_response({"error": f"no control route {request.path}"}, status=404)

    def _state(self, master_key: str) -> dict[str, Any]:
        master = self.accounts.get(master_key)
        master_sockets = sum(
            1
            for ws, session in self._sockets.items()
            if master is not None and session.api_key == master.api_key and not session.expired and not ws.closed
        )
        return {
            "master_sockets": master_sockets,
            "faults": self.faults,
            "late_orders": [
                {"client_order_id": late.client_order_id, "outcome": late.outcome} for late in self.late_orders
            ],
            "accounts": {
                key: {
                    "orders": [
                        {
                            "order_id": o.order_id,
                            "client_order_id": o.client_order_id,
                            "symbol": o.symbol,
                            "side": o.side,
                            "type": o.type,
                            "quantity": text(o.quantity),
                            "executed": text(o.executed),
                            "status": o.status,
                            "reduce_only": o.reduce_only,
                            "algo": o.algo,
                            "time_ms": o.time_ms,
                        }
                        for o in account.orders.values()
                    ],
                    "trades": [
                        {
                            "trade_id": t.trade_id,
                            "order_id": t.order_id,
                            "symbol": t.symbol,
                            "side": t.side,
                            "quantity": text(t.quantity),
                            "time_ms": t.time_ms,
                        }
                        for t in account.trades
                    ],
                    "positions": {
                        symbol: text(account.signed_position(symbol))
                        for symbol in sorted({s for s, _ in account.positions})
                    },
                }
                for key, account in self.accounts.items()
            },
        }


async def serve(seed: int, timeout_s: float, skew_s: float) -> None:
    server = ChaosBinance(seed=seed, timeout_s=timeout_s, skew_s=skew_s)
    await server.start()
    print(server.port, flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the harness closes our stdin (or dies)
    await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=11.0, help="seconds a 'timeout' fault holds the answer")
    parser.add_argument("--skew", type=float, default=3.0, help="seconds a '-1021' clock jump lasts")
    args = parser.parse_args()
    asyncio.run(serve(args.seed, args.timeout, args.skew))


if __name__ == "__main__":
    main()
