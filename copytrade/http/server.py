"""The service's one HTTP server (ASGI, FastAPI on uvicorn), bound to $PORT in every mode:
``/healthz``, ``/readyz``, ``/metrics``, the Telegram webhook (when WEBHOOK_URL is set), and the
copy-trading REST API under ``/api/v1/copytrading`` (``copytrade/http/api.py``).

$PORT is held by the front door, a process of its own (``copytrade/http/front.py``): a flood of
requests is read, parsed, limited and refused there (``copytrade/http/limits.py``), never in the
service's process, where the copier runs. What it admits reaches the ASGI app built here on a
private unix socket, served in a thread of the service with its own event loop; what a request
needs of the service is carried over to the service's loop (``CoreLoop``).

Access is logged by this module with the path only, never the query string or a header: an API
token or a webhook secret cannot reach a log line from here (uvicorn's own access log is off)."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import swagger_ui_bundle
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.app import webhook_secret
from copytrade.http.api import BITGET_PREFIX, PREFIX
from copytrade.http.core_loop import CoreLoop
from copytrade.http.front import PEER_HEADER, READY, FrontConfig
from copytrade.http.limits import Limits
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
#: the front door's connections to the service (front.INNER_CONNECTIONS) and a margin
MAX_CONNECTIONS = 100
#: seconds an idle keep-alive connection from the front door stays open
KEEP_ALIVE_SECONDS = 60
#: seconds the server gets to start in its thread, and the front door in its process
START_TIMEOUT_SECONDS = 20.0
#: seconds the front door gets to stop on SIGTERM before it is killed (its requests in flight end first)
FRONT_STOP_SECONDS = 10.0
#: seconds a thread may hold the GIL while another waits for it (Python's default is 5 ms): with the
#: HTTP thread busy under a flood, the copier's loop waits at most this long each time it wakes
#: (tests/test_http_flood.py: p50 1.8x the quiet latency with 5 ms, within 1.2x with 0.5 ms)
GIL_SWITCH_SECONDS = 0.0005
#: the Swagger UI of /docs, from the installed swagger-ui-bundle package (no CDN)
DOCS_ASSETS = "/docs-assets"


class TelegramWebhook:
    """The webhook route's target: posts carry Telegram's secret header; each update goes on the
    application's update queue (python-telegram-bot's custom-webhook pattern, ``updater=None``),
    in the core loop where the bot runs."""

    def __init__(self, url: str, token: str) -> None:
        self.path = urlparse(url).path or "/"
        self.secret = webhook_secret(token)
        self._application: Application | None = None

    def attach(self, application: Application) -> None:
        self._application = application

    async def receive(self, request: Request, core: CoreLoop) -> Response:
        from telegram import Update

        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            return PlainTextResponse("forbidden", status_code=403)
        application = self._application
        if application is None:  # Telegram retries a failed delivery
            return PlainTextResponse("the bot is starting", status_code=503)
        try:
            data = json.loads(await request.body())
        except ValueError:
            return PlainTextResponse("not a Telegram update", status_code=400)
        # an update is an object with an integer update_id (Bot API: Update); [], "x", null are not
        if not isinstance(data, dict) or type(data.get("update_id")) is not int:
            return PlainTextResponse("not a Telegram update", status_code=400)
        try:
            update = Update.de_json(data, application.bot)
        except (ValueError, TypeError, KeyError, AttributeError):
            return PlainTextResponse("not a Telegram update", status_code=400)
        await core.call(application.update_queue.put_nowait, update)
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


class FromFrontDoor:
    """The client's address is the one the front door saw and sent in ``PEER_HEADER`` (only the
    front door reaches this app: its socket is in a directory only this user may open)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            peer = next((v.decode("latin-1") for k, v in scope["headers"] if k == PEER_HEADER.encode()), "")
            scope = {**scope, "client": (peer, 0) if peer else None}
        await self.app(scope, receive, send)


class AccessLog:
    """One line per request: method, path (no query string), status, milliseconds, client address."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500
        logged = False

        def line() -> None:
            nonlocal logged
            if not logged:
                logged = True
                elapsed = (time.monotonic() - started) * 1000
                client = scope.get("client") or ("-",)
                log.info("%s %s %d %.1fms %s", scope["method"], scope["path"], status, elapsed, client[0])

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                line()  # before the client can have the whole answer
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            line()


def service_sources(service: App) -> ServiceSources:
    return ServiceSources(
        listener_health=lambda: service.listeners.health,
        notification_backlog=service.notifications.pending,
        notifications_dropped=lambda: service.notifications.dropped,
    )


@dataclass(frozen=True)
class FrontRules:
    """What the front door applies before a request reaches the app: the limits, the webhook's path."""

    limits: Limits
    webhook_path: str | None


def build_http_app(
    service: App,
    metrics: Metrics,
    *,
    core: CoreLoop | None = None,
    limits: Limits | None = None,
    webhook: TelegramWebhook | None = None,
    readiness: Readiness | None = None,
) -> FastAPI:
    """The ASGI app over a built service; the REST API's routes included. ``core``: the service's
    loop (the running one unless given), where the work of each request runs."""
    from copytrade.http.api import add_api

    core = core or CoreLoop.current()
    limits = limits or Limits()
    ready = readiness or Readiness(service.db.ping, service_sources(service))
    http = FastAPI(
        title="copytrade",
        version="1",
        description="Copy trading: the REST API (v1). Authorize with a token made by /apitoken in Telegram.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        redirect_slashes=False,  # a redirect would be built from the Host header the client sent
    )
    http.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")

    @http.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="copytrade API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )

    @http.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @http.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        reasons = await core.run(ready.reasons())
        if reasons:
            return JSONResponse({"status": "not ready", "reasons": reasons}, status_code=503)
        return JSONResponse({"status": "ready"})

    @http.get("/metrics", include_in_schema=False)
    async def metrics_route() -> Response:
        return Response(await core.call(metrics.exposition), media_type=CONTENT_TYPE_LATEST)

    if webhook is not None:

        async def telegram(request: Request) -> Response:
            return await webhook.receive(request, core)

        http.add_api_route(webhook.path, telegram, methods=["POST"], include_in_schema=False)
    add_api(http, service, core=core, per_user=limits.per_user.buckets())
    http.add_middleware(AccessLog)
    http.add_middleware(FromFrontDoor)
    # the rules the front door applies before anything reaches this app (HttpServer passes them on)
    http.state.front_door = FrontRules(limits, webhook.path if webhook is not None else None)
    return http


class _OwnSignals(uvicorn.Server):
    """The service, not uvicorn, owns SIGTERM/SIGINT: it drains in its own order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


class HttpServer:
    """The service's HTTP surface: the front door (``copytrade/http/front.py``) in a process of its own
    on ``host:port``, and uvicorn serving the ASGI app to it on a private unix socket, in a thread of
    the service with its own event loop."""

    def __init__(
        self, asgi: FastAPI, *, host: str, port: int, metrics: Metrics, webhook: TelegramWebhook | None = None
    ) -> None:
        self.metrics = metrics
        self.webhook = webhook
        self._host, self._port = host, port
        self._rules: FrontRules = asgi.state.front_door
        config = uvicorn.Config(
            asgi,
            lifespan="off",
            access_log=False,
            log_config=None,
            server_header=False,
            date_header=False,
            proxy_headers=False,  # the client's address is the front door's PEER_HEADER
            limit_concurrency=MAX_CONNECTIONS,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        )
        self._server = _OwnSignals(config)
        self._bound_port: int | None = None
        self._private: str | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._front: asyncio.subprocess.Process | None = None
        self._front_watch: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The bound port (the one asked for, or the one the system chose for port 0)."""
        assert self._bound_port is not None, "not started"
        return self._bound_port

    @property
    def front_pid(self) -> int:
        """The front door's process id."""
        assert self._front is not None, "not started"
        return self._front.pid

    async def start(self) -> None:
        """Bind $PORT (an ``OSError`` if it is taken), serve the app on the private socket in the
        server's thread, then start the front door on the bound port."""
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        public = socket.socket(family, socket.SOCK_STREAM)
        try:
            public.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            public.bind((self._host, self._port))
            public.listen(self._server.config.backlog)
            self._bound_port = int(public.getsockname()[1])
            try:
                await self._start_inner()
                await self._start_front(public)
            except BaseException:
                await self.stop()
                raise
        finally:
            public.close()  # the front door holds its own copy: only it accepts on $PORT

    async def _start_inner(self) -> None:
        self._private = tempfile.mkdtemp(prefix="copytrade-http-")  # mode 0700: this user only
        inner = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            inner.bind(os.path.join(self._private, "service.sock"))
            inner.listen(self._server.config.backlog)
            inner.setblocking(False)
        except OSError:
            inner.close()
            raise
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_SECONDS))
        self._thread = threading.Thread(target=self._serve, args=(inner,), name="http-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive():
                if self._failure is not None:
                    raise self._failure
                raise RuntimeError("the HTTP server stopped while starting")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the HTTP server did not start within {START_TIMEOUT_SECONDS:.0f} s")
            await asyncio.sleep(0.01)

    async def _start_front(self, public: socket.socket) -> None:
        assert self._private is not None
        config = FrontConfig(
            fd=public.fileno(),
            inner=os.path.join(self._private, "service.sock"),
            limits=self._rules.limits,
            api_prefixes=(PREFIX, BITGET_PREFIX),
            webhook_path=self._rules.webhook_path,
        )
        front = self._front = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "copytrade.http.front",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            pass_fds=(public.fileno(),),
        )
        assert front.stdin is not None and front.stdout is not None
        front.stdin.write(config.to_line())  # stdin stays open: its end tells the front door the service is gone
        await front.stdin.drain()
        try:
            line = await asyncio.wait_for(front.stdout.readline(), START_TIMEOUT_SECONDS)
        except TimeoutError:
            raise RuntimeError(f"the HTTP front door did not start within {START_TIMEOUT_SECONDS:.0f} s") from None
        if line.strip().decode() != READY:
            raise RuntimeError("the HTTP front door stopped while starting (its error is above)")
        self._front_watch = asyncio.create_task(self._watch_front(front), name="http-front-door")

    @staticmethod
    async def _watch_front(front: asyncio.subprocess.Process) -> None:
        code = await front.wait()
        log.error("the HTTP front door exited (status %s): $PORT is not served; copying goes on", code)

    def _serve(self, sock: socket.socket) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[sock]))
        except BaseException as exc:  # handed to start() or stop(), which raise it in the service's loop
            self._failure = exc

    async def stop(self) -> None:
        """The front door first (its requests in flight answered), then the app's server."""
        if self._front_watch is not None:
            self._front_watch.cancel()
            self._front_watch = None
        front, self._front = self._front, None
        if front is not None and front.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                front.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(front.wait(), FRONT_STOP_SECONDS)
            except TimeoutError:
                log.warning("the HTTP front door did not stop within %.0f s: killed", FRONT_STOP_SECONDS)
                front.kill()
                await front.wait()
        if front is not None and front.stdin is not None:
            front.stdin.close()
        if self._thread is not None:
            self._server.should_exit = True
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None
        if self._failure is not None:
            raise self._failure


async def start_http_server(
    service: App, *, host: str = "0.0.0.0", port: int | None = None, limits: Limits | None = None
) -> HttpServer:
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
        build_http_app(service, metrics, limits=limits, webhook=webhook),
        host=host,
        port=settings.port if port is None else port,
        metrics=metrics,
        webhook=webhook,
    )
    await server.start()
    log.debug("HTTP server listening on %s:%s", host, server.port)  # a bad setting after this is still one line
    return server
