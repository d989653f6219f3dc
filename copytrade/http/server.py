"""The service's one HTTP server (ASGI, FastAPI on uvicorn), bound to $PORT in every mode:
``/healthz``, ``/readyz``, ``/metrics``, the Telegram webhook (when WEBHOOK_URL is set), and the
copy-trading REST API under ``/api/v1/copytrading`` (``copytrade/http/api.py``).

Access is logged by this module with the path only, never the query string or a header: an API
token or a webhook secret cannot reach a log line from here (uvicorn's own access log is off)."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.app import webhook_secret
from copytrade.http.metrics import Metrics, ServiceSources

if TYPE_CHECKING:
    from telegram.ext import Application

    from copytrade.app import App

log = logging.getLogger("copytrade.http")

#: notifications waiting for Telegram beyond which the service reports itself not ready: at
#: ~29 messages a second this is several minutes of backlog, a sign the sender is stuck
READY_BACKLOG_LIMIT = 10_000
#: a database that does not answer within this many seconds is unreachable for readiness
READY_DATABASE_TIMEOUT = 2.0
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
#: seconds requests in flight get to finish when the service stops (fly.toml's kill_timeout counts it)
SHUTDOWN_GRACE_SECONDS = 5


class TelegramWebhook:
    """The webhook route's target: posts carry Telegram's secret header; each update goes on the
    application's update queue (python-telegram-bot's custom-webhook pattern, ``updater=None``)."""

    def __init__(self, url: str, token: str) -> None:
        self.path = urlparse(url).path or "/"
        self.secret = webhook_secret(token)
        self._application: Application | None = None

    def attach(self, application: Application) -> None:
        self._application = application

    async def receive(self, request: Request) -> Response:
        from telegram import Update

        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            return PlainTextResponse("forbidden", status_code=403)
        if self._application is None:  # Telegram retries a failed delivery
            return PlainTextResponse("the bot is starting", status_code=503)
        try:
            data = json.loads(await request.body())
            update = Update.de_json(data, self._application.bot)
        except (ValueError, TypeError, KeyError):
            return PlainTextResponse("not a Telegram update", status_code=400)
        if update is None:
            return PlainTextResponse("not a Telegram update", status_code=400)
        await self._application.update_queue.put(update)
        return Response(status_code=200)


class Readiness:
    """Ready: the database answers, every master's stream is connected, and the notification
    backlog is under its bound. Otherwise 503 with each reason."""

    def __init__(
        self,
        ping_database: Callable[[], Awaitable[None]],
        sources: ServiceSources,
        backlog_limit: int = READY_BACKLOG_LIMIT,
    ) -> None:
        self._ping = ping_database
        self._sources = sources
        self._backlog_limit = backlog_limit

    async def reasons(self) -> list[str]:
        reasons = []
        try:
            await asyncio.wait_for(self._ping(), READY_DATABASE_TIMEOUT)
        except Exception as exc:  # any failure to answer is "not reachable"; its type is enough
            reasons.append(f"database not reachable ({type(exc).__name__})")
        down = sorted(m for m, health in self._sources.listener_health().items() if not health.running)
        if down:
            reasons.append("master streams not connected: " + ", ".join(str(m) for m in down))
        backlog = self._sources.notification_backlog()
        if backlog >= self._backlog_limit:
            reasons.append(f"notification backlog {backlog} at or over {self._backlog_limit}")
        return reasons


class AccessLog:
    """One line per request: method, path (no query string), status, milliseconds."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            log.info("%s %s %d %.1fms", scope["method"], scope["path"], status, (time.monotonic() - started) * 1000)


def service_sources(service: App) -> ServiceSources:
    return ServiceSources(
        listener_health=lambda: service.listeners.health,
        notification_backlog=service.notifications.pending,
        notifications_dropped=lambda: service.notifications.dropped,
    )


def build_http_app(
    service: App,
    metrics: Metrics,
    *,
    webhook: TelegramWebhook | None = None,
    readiness: Readiness | None = None,
) -> FastAPI:
    """The ASGI app over a built service; the REST API's routes included."""
    from copytrade.http.api import add_api

    ready = readiness or Readiness(service.db.ping, service_sources(service))
    http = FastAPI(
        title="copytrade",
        version="1",
        description="Copy trading: health, metrics and the REST API (v1).",
        docs_url="/docs",
        openapi_url="/openapi.json",
    )

    @http.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @http.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        reasons = await ready.reasons()
        if reasons:
            return JSONResponse({"status": "not ready", "reasons": reasons}, status_code=503)
        return JSONResponse({"status": "ready"})

    @http.get("/metrics", include_in_schema=False)
    async def metrics_route() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    if webhook is not None:
        http.add_api_route(webhook.path, webhook.receive, methods=["POST"], include_in_schema=False)
    add_api(http, service)
    http.add_middleware(AccessLog)
    return http


class _OwnSignals(uvicorn.Server):
    """The service, not uvicorn, owns SIGTERM/SIGINT: it drains in its own order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


class HttpServer:
    """uvicorn serving the ASGI app on ``host:port`` inside the service's event loop."""

    def __init__(
        self, asgi: FastAPI, *, host: str, port: int, metrics: Metrics, webhook: TelegramWebhook | None = None
    ) -> None:
        self.metrics = metrics
        self.webhook = webhook
        config = uvicorn.Config(
            asgi,
            host=host,
            port=port,
            lifespan="off",
            access_log=False,
            log_config=None,
            server_header=False,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        )
        self._server = _OwnSignals(config)
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The bound port (the one asked for, or the one the system chose for port 0)."""
        assert self._socket is not None, "not started"
        return int(self._socket.getsockname()[1])

    async def start(self) -> None:
        """Bind (an ``OSError`` if the port is taken), then serve in the background."""
        config = self._server.config
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((config.host, config.port))
            sock.listen(config.backlog)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="http-server")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # serving failed: raise its error
                raise RuntimeError("the HTTP server stopped while starting")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._task = None
        if self._socket is not None:
            self._socket.close()


async def start_http_server(service: App, *, host: str = "0.0.0.0", port: int | None = None) -> HttpServer:
    """Watch the service with its metrics (the engine reports to them), build the ASGI app and its server on
    $PORT, and start it. With WEBHOOK_URL and a bot token, the webhook route is on it;
    ``server.webhook.attach(application)`` once the bot has started."""
    settings = service.settings
    metrics = service.metrics  # the engine reports to them since the service was built
    metrics.watch(service_sources(service))
    webhook = None
    if settings.webhook_url and settings.telegram_bot_token:
        webhook = TelegramWebhook(settings.webhook_url, settings.telegram_bot_token)
    server = HttpServer(
        build_http_app(service, metrics, webhook=webhook),
        host=host,
        port=settings.port if port is None else port,
        metrics=metrics,
        webhook=webhook,
    )
    await server.start()
    log.debug("HTTP server listening on %s:%s", host, server.port)  # a bad setting after this is still one line
    return server
