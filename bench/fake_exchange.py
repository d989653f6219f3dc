"""The fake Binance (tests/fakes/binance.py) in a process of its own, for the client benchmarks.

Run apart so that the server's work (HMAC checks, JSON, matching) is not charged to the client
whose latency and CPU are measured. ``python -m bench.fake_exchange --latency 0.02`` prints its
port on the first line of stdout and serves until stdin closes. Besides Binance's routes it
answers a small control API under ``/__bench/``:

- ``POST /__bench/accounts {"prefix", "count"}``: add ``count`` accounts ``<prefix>-<i>``
  (secret ``secret-<prefix>-<i>``) with a large futures wallet;
- ``POST /__bench/trade {"api_key", "symbol", "side", "quantity"}``: a master execution, pushed
  on the account's user-data sockets; answers the ``time.time_ns()`` each event was sent at;
- ``GET /__bench/stats``: request counts per path, the server's CPU seconds, the request weight
  charged per client IP and the 429 / 418 answers;
- ``GET /__bench/orders?prefix=P``: the client order ids of every (non-algo) order of each
  account whose key starts with ``P`` (duplicates and missing copies are counted from them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]


def account_key(prefix: str, index: int) -> tuple[str, str]:
    return f"{prefix}-{index:06d}", f"secret-{prefix}-{index:06d}"


def _server_class() -> type:
    from tests.fakes.binance import FakeBinance

    class BenchBinance(FakeBinance):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.sent_ns: list[int] = []

        async def _dispatch(self, request: web.Request) -> web.StreamResponse:
            if request.path.startswith("/__bench/"):
                return await self._control(request)
            return await super()._dispatch(request)

        async def _push_execution(self, account: Any, order: Any, trade: Any) -> None:
            self.sent_ns.append(time.time_ns())
            await super()._push_execution(account, order, trade)

        async def _control(self, request: web.Request) -> web.StreamResponse:
            body = await request.json() if request.can_read_body else {}
            if request.path == "/__bench/accounts":
                for index in range(int(body["count"])):
                    key, secret = account_key(body["prefix"], index)
                    self.add_account(key, secret, futures_wallet=Decimal("100000000"))
                self.request_log.clear()  # unbounded otherwise
                return web.json_response({"accounts": len(self.accounts)})
            if request.path == "/__bench/trade":
                self.sent_ns.clear()
                await self.master_trade(body["api_key"], body["symbol"], body["side"], Decimal(body["quantity"]))
                return web.json_response({"sent_ns": self.sent_ns})
            if request.path == "/__bench/stats":
                self.request_log.clear()
                return web.json_response(
                    {
                        "requests": {f"{m} {p}": c for (m, p), c in self.requests.items()},
                        "cpu_s": time.process_time(),
                        "open_websockets": self.open_websockets,
                        # request weight charged per client IP and host, and the 429 / 418 answers
                        "weight": {f"{ip} {market}": w for (ip, market), w in self.weights.charged.items()},
                        "refused": {f"{ip} {status}": n for (ip, status), n in self.weights.refused.items()},
                    }
                )
            if request.path == "/__bench/orders":
                prefix = request.query.get("prefix", "")
                return web.json_response(
                    {
                        key: [o.client_order_id for o in account.orders.values() if not o.algo]
                        for key, account in self.accounts.items()
                        if key.startswith(prefix)
                    }
                )
            return web.json_response({"error": f"no control route {request.path}"}, status=404)

    return BenchBinance


async def serve(latency: float) -> None:
    server = _server_class()(latency=latency)
    await server.start()
    print(server.port, flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin (or dies)
    await server.stop()


class FakeExchangeProcess:
    """Parent side: start, control and stop the fake exchange process."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.port = 0
        self._process: asyncio.subprocess.Process | None = None
        self._http: aiohttp.ClientSession | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_overrides(self) -> dict[str, Any]:
        """The same ``urls['api']`` overrides the tests use, pointing at this process."""
        from tests.fakes.binance import FakeBinance

        fake = FakeBinance()
        fake.port = self.port
        return fake.url_overrides()

    async def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.fake_exchange",
            "--latency",
            str(self.latency),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=str(ROOT),
            env=env,
        )
        assert self._process.stdout is not None
        line = await asyncio.wait_for(self._process.stdout.readline(), timeout=60)
        if not line.strip():
            raise RuntimeError("the fake exchange process did not start")
        self.port = int(line)
        self._http = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self._process is not None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                await asyncio.wait_for(self._process.wait(), timeout=10)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        assert self._http is not None
        async with self._http.request(method, f"{self.base_url}/__bench/{path}", json=body) as response:
            response.raise_for_status()
            return await response.json()

    async def add_accounts(self, prefix: str, count: int) -> None:
        await self._call("POST", "accounts", {"prefix": prefix, "count": count})

    async def trade(self, api_key: str, symbol: str, side: str, quantity: str) -> list[int]:
        return (
            await self._call(
                "POST", "trade", {"api_key": api_key, "symbol": symbol, "side": side, "quantity": quantity}
            )
        )["sent_ns"]

    async def stats(self) -> dict[str, Any]:
        return await self._call("GET", "stats")

    async def orders(self, prefix: str) -> dict[str, list[str]]:
        """Client order ids placed on each account whose key starts with ``prefix``."""
        assert self._http is not None
        async with self._http.get(f"{self.base_url}/__bench/orders", params={"prefix": prefix}) as response:
            response.raise_for_status()
            return dict(await response.json())


@contextlib.asynccontextmanager
async def fake_exchange(latency: float) -> AsyncIterator[FakeExchangeProcess]:
    process = FakeExchangeProcess(latency)
    await process.start()
    try:
        yield process
    finally:
        await process.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds every REST request waits before it is handled"
    )
    args = parser.parse_args()
    asyncio.run(serve(args.latency))


if __name__ == "__main__":
    main()
