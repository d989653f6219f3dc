"""What every request passes before any work is done for it, in the HTTP front door, a process of
its own (``copytrade/http/front.py``): a token bucket per client address, the shape and checksum of
an API token and a bucket per presented token (neither needs the database), a body size limit per
route enforced while the body is read, a time limit per request, and the security headers of
every answer.

A request refused here costs no database query and not one instruction of the service's process,
where the copier runs. The bucket per user, which needs the token looked up, is the service's
(``copytrade/http/api.py``), over the same ``Rate`` and the same buckets.

The limits travel to the front door as data (``Limits``, a few numbers), and each process keeps its
own buckets for them. Behind a reverse proxy, the client address is the one uvicorn takes from
``X-Forwarded-For`` in the front door when the proxy is listed in FORWARDED_ALLOW_IPS."""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Protocol

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from copytrade.http.envelope import Code, envelope
from core.api_tokens import well_formed

#: requests one client address may make: a burst, then a steady rate per second
ADDRESS_BURST = 60
ADDRESS_PER_SECOND = 20.0
#: requests one API token (and one user, over all their tokens) may make
TOKEN_BURST = 20
TOKEN_PER_SECOND = 5.0
#: the most keys a table of buckets holds; past it the least recently seen is forgotten
MAX_BUCKETS = 50_000
#: the REST API's bodies are a few settings: 16 KiB is far above any of them
API_BODY_LIMIT = 16 * 1024
#: a Telegram update: a message is at most 4,096 characters (Bot API sendMessage), with its
#: entities, reply markup and the replied-to message well under 1 MiB
WEBHOOK_BODY_LIMIT = 1024 * 1024
#: routes without a body (health, readiness, metrics, the docs) accept none
NO_BODY = 0
#: seconds a request may take from its first byte read to its answer
REQUEST_TIMEOUT_SECONDS = 15.0

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
)
#: JSON answers run nothing; /docs runs the Swagger UI served from this server (its page has one inline script)
API_CSP = b"default-src 'none'; frame-ancestors 'none'"
DOCS_CSP = (
    b"default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; frame-ancestors 'none'"
)


class Buckets(Protocol):
    """Token buckets by key: in the process (``TokenBuckets``), or shared through Redis."""

    async def take(self, key: str) -> float:
        """0 when the request may go (one token taken); else the seconds until it may."""
        ...


@dataclass
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """One bucket per key: ``burst`` requests at once, refilled at ``per_second``; at most
    ``max_keys`` keys, the least recently seen forgotten first (memory stays bounded under a flood
    of made-up keys; a forgotten key starts full again)."""

    def __init__(
        self,
        burst: int,
        per_second: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_BUCKETS,
    ) -> None:
        self.burst, self.per_second, self._clock, self._max_keys = burst, per_second, clock, max_keys
        self._buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    async def take(self, key: Hashable) -> float:
        """0 when the request may go (one token taken); else the seconds until it may."""
        return self.take_now(key)

    def take_now(self, key: Hashable) -> float:
        """``take`` without a wait: these buckets are in the process's memory."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.per_second)
            bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.per_second


@dataclass(frozen=True)
class Rate:
    """``burst`` requests at once, refilled at ``per_second``."""

    burst: int
    per_second: float

    def buckets(self) -> TokenBuckets:
        return TokenBuckets(self.burst, self.per_second)


@dataclass(frozen=True)
class Limits:
    """The rates of the HTTP surface: per client address and per presented token (in the front door,
    before any lookup), per user (in the service, once the token is found: a user's several tokens
    share one rate, and a token made after another was revoked is no fresh burst)."""

    per_address: Rate = Rate(ADDRESS_BURST, ADDRESS_PER_SECOND)
    per_token: Rate = Rate(TOKEN_BURST, TOKEN_PER_SECOND)
    per_user: Rate = Rate(TOKEN_BURST, TOKEN_PER_SECOND)

    @classmethod
    def unlimited(cls) -> Limits:
        """For a fuzzer sending thousands of requests at once."""
        return cls(*(Rate(10**9, 1e9) for _ in range(3)))

    def as_json(self) -> dict[str, list[float]]:
        return {name: [rate.burst, rate.per_second] for name, rate in self.__dict__.items()}

    @classmethod
    def from_json(cls, data: dict[str, list[float]]) -> Limits:
        return cls(**{name: Rate(int(burst), float(per_second)) for name, (burst, per_second) in data.items()})


class _BodyTooLarge(Exception):
    """A body went past its route's limit while being read: the rest is never read."""


def retry_after(wait: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(wait)))}


class Guard:
    """ASGI middleware, outermost: refuses before any work what may not go on, and adds the
    security headers to every answer. ``body_limit(path)`` is the bytes a route's body may have;
    ``api_prefixes`` are the paths that need an API token."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        per_address: Buckets,
        per_token: Buckets,
        body_limit: Callable[[str], int],
        api_prefixes: tuple[str, ...],
        timeout: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        self.app, self.per_address, self.per_token = app, per_address, per_token
        self.body_limit, self.api_prefixes, self.timeout = body_limit, api_prefixes, timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        started = False
        csp = DOCS_CSP if path == "/docs" else API_CSP

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"]
                message = {**message, "headers": [*headers, *SECURITY_HEADERS, (b"content-security-policy", csp)]}
            await send(message)

        refusal = await self._refusal(scope, path)
        if refusal is not None:
            await refusal(scope, receive, sending)
            return
        limit = self.body_limit(path)
        read = 0

        async def receiving() -> Message:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > limit:
                    raise _BodyTooLarge
            return message

        try:
            async with asyncio.timeout(self.timeout):
                await self.app(scope, receiving, sending)
        except _BodyTooLarge:
            if not started:
                await _too_large(limit)(scope, receive, sending)
        except TimeoutError:
            if not started:
                await envelope(Code.UNAVAILABLE, "the request took too long", status=503)(scope, receive, sending)

    async def _refusal(self, scope: Scope, path: str) -> ASGIApp | None:
        """The answer to a request refused before anything is read of its body, or ``None``."""
        wait = await self.per_address.take(client_address(scope))
        if wait:
            return envelope(
                Code.TOO_MANY_REQUESTS, "too many requests from this address", status=429, headers=retry_after(wait)
            )
        headers = Headers(scope=scope)
        limit = self.body_limit(path)
        length = headers.get("content-length")
        if length is not None and (not length.isascii() or not length.isdigit() or int(length) > limit):
            return _too_large(limit)
        if headers.get("transfer-encoding") and limit == NO_BODY:
            return _too_large(limit)
        if not path.startswith(self.api_prefixes):
            return None
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return envelope(
                Code.UNAUTHORIZED, "send an API token: Authorization: Bearer <token> (/apitoken)", status=401
            )
        token = value.strip()
        if not well_formed(token):
            return envelope(Code.UNAUTHORIZED, "unknown or revoked API token", status=401)
        wait = await self.per_token.take(hashlib.sha256(token.encode()).hexdigest())
        if wait:
            return envelope(
                Code.TOO_MANY_REQUESTS, "too many requests with this token", status=429, headers=retry_after(wait)
            )
        return None


def client_address(scope: Scope) -> str:
    """The client's address as the server saw it (after FORWARDED_ALLOW_IPS' proxies); "" if none."""
    client = scope.get("client")
    return str(client[0]) if client else ""


def _too_large(limit: int) -> ASGIApp:
    what = "no body" if limit == NO_BODY else f"a body of at most {limit} bytes"
    return envelope(Code.PAYLOAD_TOO_LARGE, f"this route takes {what}", status=413)
