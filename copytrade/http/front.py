"""The HTTP front door: a process of its own that holds the public port ($PORT), applies every rule
that needs no service state (``copytrade/http/limits.py``: buckets per client address and per
presented token, the token's shape and checksum, body limits while reading, a time limit, the
security headers), and forwards only what it admitted to the service's ASGI app on a private
listener, a unix socket in a directory only this user may open.

Why a process: a flood of requests costs CPU to read, parse and refuse. In a thread of the service
that CPU is taken under the service's interpreter lock, so the copier waits for it (measured: the
median copy latency 2x the quiet one under a 2,000-request flood). In a process of its own it is
spent beside the copier, never in its way.

Started by the service (``HttpServer.start``) as ``python -m copytrade.http.front`` with the bound
public socket passed as a file descriptor (so a port already taken is the service's ``OSError``, at
once) and its configuration as one JSON line on standard input. It answers ``ready`` on standard
output once it serves. It stops on SIGTERM (the service sends it when it stops), and on its own
when its standard input ends, which is when the service exited however it did (even killed). It
ignores SIGINT: a Ctrl-C reaches every process of the terminal's group, and the service stops
the front door in its own order.

The client's address, as the front door saw it (after FORWARDED_ALLOW_IPS' proxies), goes to the
service in ``PEER_HEADER``, replacing any such header the client sent."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import uvicorn
from starlette.types import Message, Receive, Scope, Send
from yarl import URL

from copytrade.http.envelope import Code, envelope
from copytrade.http.limits import (
    API_BODY_LIMIT,
    NO_BODY,
    REQUEST_TIMEOUT_SECONDS,
    WEBHOOK_BODY_LIMIT,
    Guard,
    Limits,
    client_address,
)

log = logging.getLogger("copytrade.http.front")

#: the header carrying the client's address from the front door to the service
PEER_HEADER = "x-copytrade-peer"
#: connections served at once; past it uvicorn answers 503 at once
MAX_CONNECTIONS = 500
#: seconds an idle keep-alive connection stays open
KEEP_ALIVE_SECONDS = 5
#: seconds requests in flight get to finish when the front door stops
SHUTDOWN_GRACE_SECONDS = 5
#: connections kept open to the service (requests beyond them wait for one)
INNER_CONNECTIONS = 64
#: headers of one hop (RFC 9110 §7.6.1), never forwarded either way
_HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)
#: nor, of a request: its length (set again for the body sent, read whole) and the peer header, the front's own
_NOT_FORWARDED = _HOP_BY_HOP | {b"content-length", PEER_HEADER.encode()}
READY = "ready"
#: the front door's CPU priority below the service's (nice(2)): when both want the CPU, as under a
#: flood, the kernel runs the copier first; the front door has the CPU whenever the copier waits
NICENESS = 10


@dataclass(frozen=True)
class FrontConfig:
    """What the front door is told at start: the public socket's descriptor, the service's private
    listener, the limits, the paths that take an API token, and the webhook's path (if any)."""

    fd: int
    inner: str
    limits: Limits
    api_prefixes: tuple[str, ...]
    webhook_path: str | None = None
    timeout: float = REQUEST_TIMEOUT_SECONDS

    def to_line(self) -> bytes:
        fields = {**self.__dict__, "limits": self.limits.as_json(), "api_prefixes": list(self.api_prefixes)}
        return json.dumps(fields).encode() + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> FrontConfig:
        data = json.loads(line)
        data["limits"] = Limits.from_json(data["limits"])
        data["api_prefixes"] = tuple(data["api_prefixes"])
        return cls(**data)

    def body_limit(self, path: str) -> int:
        """The bytes a route's body may have: the API's, the webhook's, none elsewhere."""
        if path.startswith(self.api_prefixes):
            return API_BODY_LIMIT
        if self.webhook_path is not None and path == self.webhook_path:
            return WEBHOOK_BODY_LIMIT
        return NO_BODY


class Forward:
    """ASGI app: the admitted request, its body read whole (the guard bounds it), sent to the
    service; the service's answer streamed back as it comes."""

    def __init__(self, inner: str) -> None:
        self._inner = inner
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=self._inner, limit=INNER_CONNECTIONS),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                timeout=aiohttp.ClientTimeout(total=None),  # the guard's time limit is the request's
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in scope["headers"]
            if name.lower() not in _NOT_FORWARDED
        ]
        headers.append((PEER_HEADER, client_address(scope)))
        target = scope.get("raw_path") or scope["path"].encode()
        if scope["query_string"]:
            target += b"?" + scope["query_string"]
        url = URL("http://service" + target.decode("latin-1"), encoded=True)
        try:
            async with self._client().request(
                scope["method"], url, headers=headers, data=bytes(body), allow_redirects=False
            ) as answer:
                started: Message = {
                    "type": "http.response.start",
                    "status": answer.status,
                    "headers": [(k.lower(), v) for k, v in answer.raw_headers if k.lower() not in _HOP_BY_HOP],
                }
                await send(started)
                async for chunk in answer.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except aiohttp.ClientConnectionError:
            log.warning("the service did not answer a forwarded request")
            await envelope(Code.UNAVAILABLE, "the service is not answering; try again shortly", status=503)(
                scope, receive, send
            )


class _FrontServer(uvicorn.Server):
    """SIGTERM stops the front door; SIGINT is the service's to act on (see the module's docstring)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop)
        try:
            yield
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    def _stop(self) -> None:
        self.should_exit = True


async def _watch_parent(server: uvicorn.Server) -> None:
    """Stop once standard input ends: the service that holds its other end is gone."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    await reader.read()
    server.should_exit = True


async def _announce_ready(server: uvicorn.Server) -> None:
    while not server.started:
        if server.should_exit:
            return
        await asyncio.sleep(0.005)
    sys.stdout.write(READY + "\n")
    sys.stdout.flush()


def build_front(config: FrontConfig) -> tuple[Guard, Forward]:
    forward = Forward(config.inner)
    guard = Guard(
        forward,
        per_address=config.limits.per_address.buckets(),
        per_token=config.limits.per_token.buckets(),
        body_limit=config.body_limit,
        api_prefixes=config.api_prefixes,
        timeout=config.timeout,
    )
    return guard, forward


async def serve(config: FrontConfig) -> None:
    guard, forward = build_front(config)
    sock = socket.socket(fileno=config.fd)
    server = _FrontServer(
        uvicorn.Config(
            guard,
            lifespan="off",
            access_log=False,
            log_config=None,
            server_header=False,
            date_header=False,
            limit_concurrency=MAX_CONNECTIONS,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        )
    )
    tasks: list[asyncio.Task[Any]] = [
        asyncio.create_task(_watch_parent(server)),
        asyncio.create_task(_announce_ready(server)),
    ]
    try:
        await server.serve(sockets=[sock])
    finally:
        for task in tasks:
            task.cancel()
        await forward.close()
        sock.close()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = FrontConfig.from_line(sys.stdin.buffer.readline())
    os.nice(NICENESS)
    asyncio.run(serve(config))


if __name__ == "__main__":
    main()
