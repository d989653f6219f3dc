"""A real Bot API emulator for end-to-end bot tests: the npm package ``telegram-test-api``
(installed by scripts/test, pinned to 4.2.1) on 127.0.0.1, behind a small aiohttp proxy that
fixes what python-telegram-bot v22 cannot read from it and adds Telegram's flood control.

Fixed by the proxy (observed with 4.2.1): getMe lacks ``is_bot``; sendMessage returns ``date``
in milliseconds and no ``from``; callback updates lack ``chat_instance``;
editMessageText / editMessageReplyMarkup / answerCallbackQuery / deleteMessage return ``null``
instead of ``true``; setMyCommands / getMyCommands / deleteMyCommands are missing; getUpdates
ignores ``timeout`` (the proxy long-polls briefly, so the bot's normal polling works).

Added by the proxy: Telegram's limit of 30 messages per second (no more than 30 in any second;
excess sends get 429 with ``retry_after``), chats that blocked the bot (403), and one-off 429s; and
``sendPhoto`` / ``sendDocument``, which the emulator lacks: the uploaded file (multipart, as
python-telegram-bot sends it) is kept in ``BotApiProxy.files`` under a new file id, and the
emulator stores a message carrying the caption as its text and a Telegram-shaped ``photo`` or
``document`` field, so the chat shows it like any other message.

``ChatUser`` plays a Telegram user through the emulator's client API: sends text and commands,
presses inline buttons, and reads the chat as a user sees it (edits applied, deleted messages
gone).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import socket
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "node_modules" / "telegram-test-api"
PINNED_VERSION = "4.2.1"
BOT_USER = {"id": 666, "is_bot": True, "first_name": "copytrade test bot", "username": "TestNameBot"}

_LAUNCHER = """
const TelegramServer = require(process.argv[1]);
const server = new TelegramServer({host: '127.0.0.1', port: Number(process.argv[2]), storeTimeout: 3600});
server.start().then(() => console.log('ready'));
process.on('SIGTERM', () => server.stop().then(() => process.exit(0)));
"""


#: the actions sendChatAction accepts (https://core.telegram.org/bots/api#sendchataction)
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def emulator_available() -> str | None:
    """``None`` when the emulator can run, else why not (for a skip message)."""
    if shutil.which("node") is None:
        return "node is not installed"
    manifest = PACKAGE / "package.json"
    if not manifest.exists():
        return f"telegram-test-api is not installed (npm install --no-save telegram-test-api@{PINNED_VERSION})"
    version = json.loads(manifest.read_text())["version"]
    if version != PINNED_VERSION:
        return f"telegram-test-api {version} is installed, the tests are pinned to {PINNED_VERSION}"
    return None


#: set by scripts/test (and so in CI): a missing emulator fails the run instead of skipping tests
REQUIRE_ENV = "COPYTRADE_REQUIRE_EMULATOR"


def emulator_mark() -> pytest.MarkDecorator:
    """Skip a test that needs the emulator on a machine without it, unless the test command
    requires it: then the run fails at collection, so CI can never go green by skipping."""
    missing = emulator_available()
    if missing is not None and os.environ.get(REQUIRE_ENV):
        raise RuntimeError(f"the Telegram end-to-end tests need the Bot API emulator: {missing}")
    return pytest.mark.skipif(missing is not None, reason=f"Bot API emulator: {missing}")


class Emulator:
    """The node process, started once per test session."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20) -> None:
        self._process = subprocess.Popen(
            ["node", "-e", _LAUNCHER, str(PACKAGE), str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "NODE_ENV": "test"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"telegram-test-api exited: {self._process.stdout.read().decode(errors='replace')}")  # type: ignore[union-attr]
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("telegram-test-api did not start")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
            self._process = None


@dataclass(frozen=True)
class UploadedFile:
    """A photo or document the bot sent, as the proxy received it."""

    kind: str  # "photo" or "document"
    file_id: str
    filename: str
    mime_type: str
    content: bytes


@dataclass
class FloodControl:
    """Telegram's global limit for one bot, read strictly: at most ``limit`` messages in any
    ``window`` seconds; the one over it is refused (429, retry_after) and does not count."""

    limit: int = 30
    window: float = 1.0
    accepted: deque[float] = field(default_factory=deque)

    def allow(self) -> bool:
        now = time.monotonic()
        while self.accepted and now - self.accepted[0] >= self.window:
            self.accepted.popleft()
        if len(self.accepted) >= self.limit:
            return False
        self.accepted.append(now)
        return True


class BotApiProxy:
    """What the bot talks to (``base_url``); forwards to the emulator with the fixes above."""

    def __init__(self, emulator_url: str) -> None:
        self.emulator_url = emulator_url
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.commands: dict[str, list[dict[str, str]]] = {}  # scope (json) -> commands
        self.blocked_chats: set[int] = set()
        self.retry_once: dict[int, int] = {}  # chat id -> retry_after for its next send
        self.refused_methods: set[str] = set()  # answered 400 as Telegram answers a refused upload
        self.flood = FloodControl()
        self.too_many_requests = 0  # 429s caused by exceeding the rate (not injected ones)
        self.sent_messages = 0
        self.files: dict[str, UploadedFile] = {}  # file id -> what the bot uploaded
        self._file_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    def methods(self) -> list[str]:
        return [method for method, _ in self.calls]

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _params(self, request: web.Request) -> dict[str, Any]:
        """The request's parameters; an uploaded file stays a ``web.FileField``."""
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
        elif request.can_read_body:
            params.update({k: v for k, v in (await request.post()).items() if isinstance(v, (str, web.FileField))})
        return params

    def _store_upload(self, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        """Keep the uploaded file; the message body the emulator stores in its place."""
        upload = params.get(kind)
        if not isinstance(upload, web.FileField):
            raise web.HTTPBadRequest(text=f"{kind} must be an uploaded file in this emulator")
        content = upload.file.read()
        file_id = f"{kind}-{next(self._file_ids)}"
        filename = upload.filename or kind
        mime = upload.content_type or "application/octet-stream"
        self.files[file_id] = UploadedFile(kind, file_id, filename, mime, content)
        body: dict[str, object] = {k: v for k, v in params.items() if k not in (kind, "caption") and isinstance(v, str)}
        body["text"] = params.get("caption") or ""
        if kind == "photo":
            body["photo"] = [
                {"file_id": file_id, "file_unique_id": file_id, "width": 800, "height": 450, "file_size": len(content)}
            ]
        else:
            body["document"] = {
                "file_id": file_id,
                "file_unique_id": file_id,
                "file_name": filename,
                "mime_type": mime,
                "file_size": len(content),
            }
        return body

    async def _forward(self, token: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
        assert self._session is not None
        async with self._session.post(f"{self.emulator_url}/bot{token}/{method}", json=params) as response:
            return await response.json(content_type=None)

    async def _handle(self, request: web.Request) -> web.Response:
        token, method = request.match_info["token"], request.match_info["method"]
        params = await self._params(request)
        self.calls.append((method, params))
        if method in ("setMyCommands", "deleteMyCommands", "getMyCommands"):
            scope = str(params.get("scope") or "default")
            if method == "setMyCommands":
                commands = params["commands"]
                self.commands[scope] = json.loads(commands) if isinstance(commands, str) else commands
                return web.json_response({"ok": True, "result": True})
            if method == "deleteMyCommands":
                self.commands.pop(scope, None)
                return web.json_response({"ok": True, "result": True})
            return web.json_response({"ok": True, "result": self.commands.get(scope, [])})
        if method == "sendChatAction":
            # https://core.telegram.org/bots/api#sendchataction: True, for one of the listed actions only
            if params.get("action") not in CHAT_ACTIONS or "chat_id" not in params:
                return web.json_response(
                    {"ok": False, "error_code": 400, "description": "Bad Request: wrong parameter action in request"},
                    status=400,
                )
            return web.json_response({"ok": True, "result": True})
        if method in self.refused_methods:
            return web.json_response(
                {"ok": False, "error_code": 400, "description": "Bad Request: failed to get HTTP URL content"},
                status=400,
            )
        if method in ("sendMessage", "sendPhoto", "sendDocument"):
            chat_id = int(params["chat_id"])
            if chat_id in self.blocked_chats:
                return web.json_response(
                    {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"},
                    status=403,
                )
            if chat_id in self.retry_once:
                retry_after = self.retry_once.pop(chat_id)
                return self._too_many(retry_after)
            if not self.flood.allow():
                self.too_many_requests += 1
                return self._too_many(1)
            self.sent_messages += 1
        if method == "getUpdates":
            return web.json_response(await self._get_updates(token, params))
        if method in ("sendPhoto", "sendDocument"):
            params = self._store_upload("photo" if method == "sendPhoto" else "document", params)
            method = "sendMessage"
        answer = await self._forward(token, method, params)
        if "ok" not in answer:  # the emulator's own error shape
            return web.json_response(
                {"ok": False, "error_code": 400, "description": f"Bad Request: {answer.get('message')}"}, status=400
            )
        if answer.get("ok") and method == "getMe":
            answer["result"] = {**answer["result"], **BOT_USER}
        if answer.get("ok") and method == "sendMessage":
            result = answer["result"]
            if result.get("date", 0) > 10**11:
                result["date"] //= 1000
            result.setdefault("from", BOT_USER)
        if (
            answer.get("ok")
            and answer.get("result") is None
            and method
            in (
                "editMessageText",
                "editMessageReplyMarkup",
                "answerCallbackQuery",
                "deleteMessage",
                "setWebhook",
            )
        ):
            answer["result"] = True
        return web.json_response(answer)

    @staticmethod
    def _too_many(retry_after: int) -> web.Response:
        return web.json_response(
            {
                "ok": False,
                "error_code": 429,
                "description": f"Too Many Requests: retry after {retry_after}",
                "parameters": {"retry_after": retry_after},
            },
            status=429,
        )

    async def _get_updates(self, token: str, params: dict[str, Any]) -> dict[str, Any]:
        wait = min(float(params.get("timeout") or 0), 0.5)
        deadline = time.monotonic() + wait
        while True:
            answer = await self._forward(token, "getUpdates", {})
            if answer.get("result") or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.02)
        for update in answer.get("result") or []:
            query = update.get("callback_query")
            if query is not None:
                query.setdefault("chat_instance", str(query["from"]["id"]))
        return answer


_ids = itertools.count(int(time.time() * 1000) % 10**9 * 10 + 7_000_000_000)


def fresh_id() -> int:
    """A Telegram user/chat id never used before in this session (unread updates persist)."""
    return next(_ids)


@dataclass
class BotMessage:
    message_id: int
    text: str  # a photo's or document's caption
    buttons: list[tuple[str, str]]  # (text, callback data)
    photo: str | None = None  # file id of a photo (BotApiProxy.files)
    document: dict[str, Any] | None = None  # file_id, file_name, mime_type, file_size


class ChatUser:
    """One Telegram user in a private chat with the bot, driven through the emulator."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        emulator_url: str,
        token: str,
        user_id: int | None = None,
        name: str = "Tester",
    ) -> None:
        self.session = session
        self.url = emulator_url
        self.token = token
        self.id = user_id or fresh_id()
        self.name = name
        self.cursor = 0  # message id of the last bot message consumed by expect()
        #: what each bot message said at the last match or press: a message edited since (a
        #: dialogue answered in place) is new to expect() again
        self.seen: dict[int, str] = {}
        self.last_expected = 0  # message id of the last message expect() returned (maybe an edited one)
        self.interactions = 0  # every message sent and every button pressed (deleted ones included)

    @property
    def _from(self) -> dict[str, Any]:
        return {"id": self.id, "is_bot": False, "first_name": self.name, "username": f"u{self.id}"}

    @property
    def _chat(self) -> dict[str, Any]:
        return {"id": self.id, "type": "private", "first_name": self.name, "username": f"u{self.id}"}

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        async with self.session.post(f"{self.url}/{path}", json=body) as response:
            response.raise_for_status()
            return await response.json(content_type=None)

    async def send(self, text: str) -> None:
        self.interactions += 1
        body = {"botToken": self.token, "from": self._from, "chat": self._chat, "text": text, "date": int(time.time())}
        if text.startswith("/"):
            length = len(text.split()[0])
            body["entities"] = [{"offset": 0, "length": length, "type": "bot_command"}]
            await self._post("sendCommand", body)
        else:
            await self._post("sendMessage", body)

    async def _history(self) -> list[dict[str, Any]]:
        return (await self._post("getUpdatesHistory", {"token": self.token}))["result"]

    async def messages(self) -> list[BotMessage]:
        """The bot's messages in this chat as the user sees them now (edits applied)."""
        out = []
        for item in await self._history():
            message = item.get("message") or {}
            if "chat_id" not in message or str(message["chat_id"]) != str(self.id):
                continue
            markup = message.get("reply_markup") or {}
            if isinstance(markup, str):
                markup = json.loads(markup)
            buttons = [
                (b["text"], b.get("callback_data", "")) for row in markup.get("inline_keyboard", []) for b in row
            ]
            photo = message.get("photo") or None
            out.append(
                BotMessage(
                    int(item["messageId"]),
                    str(message.get("text", "")),
                    buttons,
                    photo[-1]["file_id"] if photo else None,
                    message.get("document") or None,
                )
            )
        return sorted(out, key=lambda m: m.message_id)

    async def own_texts(self) -> list[str]:
        """What the user's own messages in the chat still say (deleted ones are gone)."""
        out = []
        for item in await self._history():
            message = item.get("message") or {}
            if "callbackQuery" in item or (message.get("chat") or {}).get("id") != self.id:
                continue
            out.append(message.get("text", ""))
        return out

    async def expect(
        self, needle: str | Callable[[str], bool], within: float = 10.0, *, kind: str | None = None
    ) -> BotMessage:
        """The next bot message (after the last one expected, or one edited since the last match
        or press) whose text contains ``needle``; with ``kind`` ("photo" or "document") only such
        a message, ``needle`` in its caption."""
        match = needle if callable(needle) else (lambda text: needle in text)
        deadline = time.monotonic() + within
        seen: list[str] = []
        while True:
            seen = []
            messages = await self.messages()
            for message in messages:
                edited = message.message_id in self.seen and self.seen[message.message_id] != message.text
                if message.message_id > self.cursor or edited:
                    seen.append(message.text)
                    if kind == "photo" and message.photo is None or kind == "document" and message.document is None:
                        continue
                    if match(message.text):
                        self.cursor = max(self.cursor, message.message_id)
                        self.last_expected = message.message_id
                        self.seen = {m.message_id: m.text for m in messages}
                        return message
            if time.monotonic() > deadline:
                raise AssertionError(f"no bot message matching {needle!r}; new messages: {seen!r}")
            await asyncio.sleep(0.05)

    async def wait_text(self, message_id: int, needle: str, within: float = 20.0) -> str:
        """Wait until message ``message_id`` (edited in place) contains ``needle``."""
        deadline = time.monotonic() + within
        while True:
            for message in await self.messages():
                if message.message_id == message_id and needle in message.text:
                    return message.text
            if time.monotonic() > deadline:
                raise AssertionError(f"message {message_id} never contained {needle!r}")
            await asyncio.sleep(0.1)

    async def press(self, label: str, message: BotMessage | None = None, within: float = 10.0) -> None:
        """Press the inline button whose text contains ``label`` on ``message`` (default: the
        newest bot message from the last one expected on that has such a button, or the last one
        expected itself when it was an edited one; waits for it)."""
        deadline = time.monotonic() + within
        while True:
            messages = await self.messages()
            candidates = (
                [message]
                if message
                else [
                    m for m in reversed(messages) if m.message_id >= self.cursor or m.message_id == self.last_expected
                ]
            )
            for candidate in candidates:
                for text, data in candidate.buttons:
                    if label in text:
                        self.cursor = max(self.cursor, candidate.message_id)
                        self.seen = {m.message_id: m.text for m in messages}
                        await self.press_data(data, candidate)
                        return
            if time.monotonic() > deadline:
                raise AssertionError(f"no button {label!r} in {[c.buttons for c in candidates][:3]!r}")
            await asyncio.sleep(0.05)

    async def press_data(self, data: str, message: BotMessage) -> None:
        """Send a callback query with any data — including data the bot never offered."""
        self.interactions += 1
        await self._post(
            "sendCallback",
            {
                "botToken": self.token,
                "from": self._from,
                "data": data,
                "message": {
                    "message_id": message.message_id,
                    "date": int(time.time()),
                    "chat": self._chat,
                    "from": BOT_USER,
                    "text": message.text,
                },
            },
        )


class BotHarness:
    """The real bot (``bot.app.serve``) over a real ``App`` on a fresh SQLite
    database, polling the emulator through the proxy; one per test, with its own bot token.
    ``scheduler`` is handed to the bot as the service's scheduler but never started: a test runs
    a job itself (``scheduler.get_job(id).func()``), so nothing fires on its own."""

    def __init__(self, emulator: Emulator, tmp_path: Path, *, admin_ids: tuple[int, ...] = ()) -> None:
        self.emulator = emulator
        self.tmp_path = tmp_path
        self.admin_ids = admin_ids
        self.token = f"{fresh_id()}:test-{os.urandom(6).hex()}"
        self.proxy = BotApiProxy(emulator.url)
        self.app: Any = None
        self.scheduler: Any = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> BotHarness:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        from bot.app import serve
        from copytrade.app import build_app
        from copytrade.config import load_settings
        from core.vault import generate_key

        await self.proxy.start()
        settings = load_settings(
            telegram_bot_token=self.token,
            telegram_api_base_url=self.proxy.base_url,
            webhook_url=None,
            database_url=f"sqlite:///{self.tmp_path / 'bot.db'}",
            secret_key=generate_key(),
            mode="paper",
            admin_ids=list(self.admin_ids),
            data_dir=self.tmp_path,
        )
        self.app = await build_app(settings)
        self.session = aiohttp.ClientSession()
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self._task = asyncio.create_task(serve(self.app, self._stop, polling_timeout=1, scheduler=self.scheduler))
        deadline = time.monotonic() + 10
        while "getUpdates" not in self.proxy.methods():
            if self._task.done():
                self._task.result()
            if time.monotonic() > deadline:
                raise RuntimeError("the bot did not start polling")
            await asyncio.sleep(0.02)
        return self

    def user(self, name: str = "Tester", user_id: int | None = None) -> ChatUser:
        assert self.session is not None
        return ChatUser(self.session, self.emulator.url, self.token, user_id, name)

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        try:
            if self._task is not None:
                await asyncio.wait_for(self._task, 15)
        finally:
            if self.app is not None:
                await self.app.close()
            if self.session is not None:
                await self.session.close()
            await self.proxy.stop()
