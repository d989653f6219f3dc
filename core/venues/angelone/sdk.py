"""smartapi-python 1.5.5, imported and subclassed safely.

The SDK is synchronous and has two hazards this module contains:

* importing it calls a public IP-lookup service with no timeout, so ``import_smartapi`` refuses
  network access for the duration of the import;
* its logger writes request bodies and headers (PIN, TOTP, API key, JWT) to ``./logs`` on any
  error, so the SDK's own constructors (which set that file up) are never run and its module
  loggers are replaced by a muted one.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

import requests
import websocket

from core.venues.egress import PUBLIC_ONLY, EgressPolicy

log = logging.getLogger(__name__)


class SmartApiSdk(NamedTuple):
    SmartConnect: type[Any]
    SmartWebSocketOrderUpdate: type[Any]
    exceptions: ModuleType


_SDK_IMPORT_LOCK = threading.Lock()
_MUTED_SDK_LOGGER_NAME = "copytrade.smartapi.muted"


def _refuse_network(*args: Any, **kwargs: Any) -> Any:
    raise requests.ConnectionError("network access is refused while smartapi-python is imported")


@contextlib.contextmanager
def _network_refused() -> Iterator[None]:
    """Refuse HTTP and name lookups for the import only (smartConnect.py runs an IP lookup at class
    definition; it falls back to fixed addresses when the lookup fails)."""
    patched = [(requests, "get"), (socket, "gethostbyname"), (socket, "getaddrinfo"), (socket, "create_connection")]
    originals = [getattr(module, name) for module, name in patched]
    for module, name in patched:
        setattr(module, name, _refuse_network)
    try:
        yield
    finally:
        for (module, name), original in zip(patched, originals, strict=True):
            setattr(module, name, original)


def _muted_logger() -> logging.Logger:
    muted = logging.getLogger(_MUTED_SDK_LOGGER_NAME)
    muted.propagate = False
    muted.disabled = True
    if not muted.handlers:
        muted.addHandler(logging.NullHandler())
    return muted


def import_smartapi() -> SmartApiSdk:
    """Import smartapi-python without network access and with its loggers muted.

    The SDK logs full requests (credentials included) through logzero; its modules' ``logger`` is
    swapped for a disabled logger, so nothing of it reaches a handler or a file.
    """
    with _SDK_IMPORT_LOCK:
        if "SmartApi.smartConnect" not in sys.modules:
            import logzero

            was_disabled = logzero.logger.disabled
            logzero.logger.disabled = True  # the failed lookup is logged at import; nothing to say
            try:
                with _network_refused():
                    importlib.import_module("SmartApi.smartConnect")
            finally:
                logzero.logger.disabled = was_disabled
        connect_module = sys.modules["SmartApi.smartConnect"]
        order_update_module = importlib.import_module("SmartApi.smartWebSocketOrderUpdate")
        exceptions = importlib.import_module("SmartApi.smartExceptions")
        muted = _muted_logger()
        for module in (connect_module, order_update_module):
            setattr(module, "logger", muted)  # noqa: B010 (the SDK's module global, not a typed attribute)
        logging.getLogger(connect_module.__name__).setLevel(logging.CRITICAL)  # its debug request log
    return SmartApiSdk(connect_module.SmartConnect, order_update_module.SmartWebSocketOrderUpdate, exceptions)


SDK = import_smartapi()


class QuietSmartConnect(SDK.SmartConnect):  # type: ignore[misc,name-defined]
    """SmartConnect without its constructor's side effects (a ``./logs`` folder and a logzero file
    handler that records credentials) and with a configurable REST root and public IP header."""

    def __init__(
        self,
        api_key: str,
        *,
        root: str,
        timeout: float,
        public_ip: str | None,
        proxy: str | None = None,
        egress: EgressPolicy = PUBLIC_ONLY,
    ) -> None:
        self.debug = False
        self.api_key = api_key
        self.privateKey = api_key
        self.session_expiry_hook = None
        self.disable_ssl = False
        self.access_token = None
        self.refresh_token = None
        self.feed_token = None
        self.userId = None
        self._proxy = proxy
        self._egress = egress
        self.root = root
        self.timeout = timeout
        self.Authorization = None
        self.reqsession = requests
        if public_ip:
            self.clientPublicIp = public_ip

    @property
    def proxies(self) -> dict[str, str]:
        """What the SDK passes to requests as ``proxies``, read at each request: the account's
        egress proxy, resolved and checked then (``EgressPolicy.pinned``: ``EgressRefused``, and
        nothing sent, when it may not be connected to)."""
        if self._proxy is None:
            return {}
        pinned = self._egress.pinned(self._proxy)
        return {"http": pinned, "https": pinned}

    def getProfile(self, refreshToken: str | None = None) -> Any:  # noqa: N802 (SDK name)
        """The API identifies the user by the Authorization header. The SDK also sends the refresh
        token as a query string, which would put it in URLs and urllib3's debug log."""
        return self._getRequest("api.user.profile")


class OrderUpdateSocket(SDK.SmartWebSocketOrderUpdate):  # type: ignore[misc,name-defined]
    """SmartAPI's order-update websocket with callbacks instead of logging, no ``./logs`` folder,
    verified TLS (the SDK turns certificate checks off), through the account's egress proxy when it
    has one, and no built-in retry: the listener owns reconnection and its backoff. ``connect()``
    blocks until the socket closes: run it in a thread."""

    def __init__(
        self,
        url: str,
        *,
        auth_token: str,
        api_key: str,
        client_code: str,
        feed_token: str,
        on_open: Callable[[], object],
        on_message: Callable[[str], object],
        on_close: Callable[[], object],
        proxy: str | None = None,
    ) -> None:
        self.WEBSOCKET_URI = url
        self._proxy = urlsplit(proxy) if proxy else None
        self.auth_token = auth_token
        self.api_key = api_key
        self.client_code = client_code
        self.feed_token = feed_token
        self.wsapp: websocket.WebSocketApp | None = None
        self._notify_open = on_open
        self._notify_message = on_message
        self._notify_close = on_close
        self._closing = threading.Event()

    def connect(self) -> None:
        if self._closing.is_set():
            return
        headers = {
            "Authorization": self.auth_token,
            "x-api-key": self.api_key,
            "x-client-code": self.client_code,
            "x-feed-token": self.feed_token,
        }
        self.wsapp = app = websocket.WebSocketApp(
            self.WEBSOCKET_URI,
            header=headers,
            on_open=self.on_open,
            on_message=self.on_message,
            on_error=self.on_error,
            on_close=self.on_close,
        )
        proxy = self._proxy
        if proxy is None:
            app.run_forever(ping_interval=self.HEARTBEAT_INTERVAL_SECONDS)
            return
        auth = (unquote(proxy.username or ""), unquote(proxy.password or "")) if proxy.username else None
        app.run_forever(  # an HTTP(S) proxy's CONNECT tunnel, as websocket-client opens it
            ping_interval=self.HEARTBEAT_INTERVAL_SECONDS,
            http_proxy_host=proxy.hostname,
            http_proxy_port=proxy.port or (443 if proxy.scheme == "https" else 80),
            http_proxy_auth=auth,
            proxy_type="http",
        )

    def on_open(self, wsapp: Any) -> None:
        if self._closing.is_set():
            wsapp.close()
            return
        self._notify_open()

    def on_message(self, wsapp: Any, message: Any) -> None:
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        self._notify_message(message)

    def on_error(self, wsapp: Any, error: Exception) -> None:
        # the error text may echo the handshake; only its type is kept
        log.info("Angel One order-update socket error: %s", type(error).__name__)

    def on_close(self, wsapp: Any, close_status_code: Any, close_msg: Any) -> None:
        self._notify_close()

    def retry_connect(self) -> None:
        """Disabled: the SDK's version sleeps 10 s in the socket thread and recurses."""

    def close_connection(self) -> None:
        """End the connection from any thread, without waiting: the socket is shut down under the
        thread running ``connect``, which then sees it closed and returns. The SDK's version
        (``wsapp.close()``) runs the close handshake from the calling thread: it sends a close frame
        and reads the answer on a socket the ``connect`` thread is reading too, so it can wait
        behind that thread's blocked read for as long as the peer stays silent."""
        self._closing.set()
        app = self.wsapp
        if app is None:
            return
        app.keep_running = False
        connection = app.sock
        raw = connection.sock if connection is not None else None  # None until the TCP connection exists
        if raw is not None:
            with contextlib.suppress(OSError):  # already closed
                raw.shutdown(socket.SHUT_RDWR)
