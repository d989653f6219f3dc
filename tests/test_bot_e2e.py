"""End to end: the real bot (python-telegram-bot v22, real handlers, real core and SQLite) against
the telegram-test-api Bot API emulator on 127.0.0.1 (tests/fakes/telegram.py)."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

import pytest

from copytrade.paper_setup import create_paper_master
from core.model import FollowStatus, OrderIntent, Side
from tests.fakes.telegram import BotHarness, BotMessage, ChatUser, Emulator, emulator_mark, fresh_id

pytestmark = [emulator_mark(), pytest.mark.e2e]

ADMIN = fresh_id()


@pytest.fixture(scope="session")
def emulator():
    server = Emulator()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def bot(emulator, tmp_path):
    async with BotHarness(emulator, tmp_path, admin_ids=(ADMIN,)) as harness:
        yield harness


async def start(user: ChatUser) -> None:
    await user.send("/start")
    await user.expect("Welcome to copytrade")


async def test_start_welcomes_explains_risks_and_registers_commands(bot):
    user = bot.user("Ann")
    await user.send("/start")
    welcome = await user.expect("Welcome to copytrade")
    assert "Risks" in welcome.text and "withdraw" in welcome.text and "/connect" in welcome.text
    assert await bot.app.accounts.user_by_telegram_id(user.id) is not None
    await user.send("/help")
    help_text = (await user.expect("Commands:")).text
    for command in (
        "/connect",
        "/keys",
        "/masters",
        "/follow",
        "/settings",
        "/pause",
        "/resume",
        "/stop",
        "/status",
        "/history",
    ):
        assert command in help_text
    assert "/broadcast" not in help_text  # admin commands only for admins
    names = {c["command"] for c in bot.proxy.commands["default"]}
    assert {"start", "connect", "follow", "settings", "stop", "history"} <= names
    await user.send("/frobnicate")
    await user.expect("I don't know the command /frobnicate")


async def said_once(user: ChatUser, text: str, within: float = 15.0) -> None:
    """``text`` is in exactly one bot message of the chat (the push and the answer never both say it)."""
    deadline = asyncio.get_running_loop().time() + within
    while not any(text in m.text for m in await user.messages()):
        assert asyncio.get_running_loop().time() < deadline, f"no bot message says {text!r}"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # a second copy would be queued right behind the first
    assert sum(text in m.text for m in await user.messages()) == 1


async def connect_paper(user: ChatUser, key: str, *, balance: str | None = None) -> None:
    """The user's first account (a first account is named without a question)."""
    await user.send("/connect")
    await user.expect("Which exchange")
    await user.press("Paper trading")
    await user.expect("Send your API key")
    await user.send(key)
    await user.expect("Got the API key")
    await user.expect("starting balance")
    if balance is None:
        await user.press("Skip")
    else:
        await user.send(balance)
    await user.expect("Connected and stored encrypted")


async def test_connect_deletes_every_secret_message_and_stores_the_key_encrypted(bot):
    user = bot.user("Ben")
    await start(user)
    app = bot.app
    owner = await app.accounts.user_by_telegram_id(user.id)
    first = await app.services.paper_account(owner.id)  # a second account is named by the user
    await user.send("/connect")
    venues = await user.expect("Which exchange")
    assert [text for text, _ in venues.buttons] == [
        "Paper trading (simulated)",
        "Cancel",
    ]  # only what this deployment has
    await user.press("Paper trading")
    await user.expect("Send your API key")
    await user.send("paper-secret-key-0001")
    await user.expect("Got the API key (message deleted)")
    await user.expect("starting balance")
    await user.send("2500")
    await user.expect("Got the starting balance")
    await user.expect("Name this account")
    await user.send("my paper")
    done = await user.expect("Connected and stored encrypted")
    assert "my paper" in done.text and "paper-secret-key-0001" not in done.text
    own = await user.own_texts()
    assert "paper-secret-key-0001" not in own and "2500" not in own  # deleted from the chat
    assert "my paper" in own  # ordinary messages stay
    [view] = [v for v in await app.services.accounts_of(owner.id) if v.id != first.id]
    sealed = await app.accounts.sealed_credential(view.id)
    assert b"paper-secret-key-0001" not in sealed.ciphertext
    assert app.vault.decrypt(sealed.ciphertext, owner_id=owner.id, credential_id=view.id) == {
        "api_key": "paper-secret-key-0001",
        "balance": "2500",
    }
    await user.send("/keys")
    listing = await user.expect("Your exchange accounts")
    assert "my paper" in listing.text and "paper-secret-key-0001" not in listing.text
    await user.press("Remove my paper")
    await user.expect("Remove my paper?")
    await user.press("Yes, remove")
    await user.expect("Removed my paper")
    assert [v.id for v in await app.services.accounts_of(owner.id)] == [first.id]


async def test_connect_refuses_a_key_the_venue_rejects_and_stores_nothing(bot):
    from core.errors import AuthenticationError

    registry = bot.app.venues
    real_factory = registry._factories["paper"]

    async def refusing(account):
        venue = await real_factory(account)
        if account.secrets["api_key"].startswith("revoked"):

            async def validate():
                raise AuthenticationError("invalid API key")

            venue.validate = validate
        return venue

    registry._factories["paper"] = refusing
    user = bot.user("Cid")
    await start(user)
    await user.send("/connect")
    await user.press("Paper trading")
    await user.expect("Send your API key")
    await user.send("has spaces in it")
    await user.expect("does not look like")
    await user.send("revoked-key-123")
    await user.expect("Got the API key")
    await user.press("Skip")
    refused = await user.expect("refused this key")
    assert "invalid API key" in refused.text and "Nothing was stored" in refused.text
    assert "revoked-key-123" not in await user.own_texts()
    owner = await bot.app.accounts.user_by_telegram_id(user.id)
    assert await bot.app.services.accounts_of(owner.id) == []


async def paper_master(bot, name: str = "Paper Trend"):
    """A master on the paper exchange whose fills the engine watches; returns (master, its venue)."""
    master, key = await create_paper_master(bot.app.services, name, "100000")
    await bot.app.start_listener(master.id)
    return master, await bot.app.venues.venue_for(key.id)


async def master_trades(
    venue, cid: str, side: Side, quantity: str, symbol: str = "BTC/USDT:USDT", reduce_only: bool = False
) -> None:
    await venue.place_order(OrderIntent(0, cid, symbol, side, Decimal(quantity), reduce_only=reduce_only))


async def follow_master(user: ChatUser, master_name: str) -> None:
    await user.send("/follow")
    await user.expect("Which master")
    await user.press(master_name)
    await user.expect(f"Copy {master_name} on ")
    await user.press("Customize")
    await user.expect("How should your order size be computed")
    await user.press("Coefficient")
    await user.expect("Send the value")
    await user.send("1")
    await user.expect("Take-profit")
    await user.press("No take-profit")
    await user.expect("Stop-loss")
    await user.press("No stop-loss")
    await user.expect("Please check and confirm")
    await user.press("Confirm")
    await user.expect("✅ Following")


async def test_follow_end_to_end_rejects_bad_input_and_notifies_the_copied_fill(bot):
    master, master_venue = await paper_master(bot)
    user = bot.user("Dee")
    await start(user)
    await user.send("/follow")
    await user.expect("Connect an exchange account first")
    await connect_paper(user, "dee-paper-key")
    await user.send("/masters")
    listing = await user.expect("Masters by followers")
    assert "Paper Trend — paper, 0 follower(s)" in listing.text
    await user.press("Paper Trend")
    chart = await user.expect("Paper Trend", kind="photo")
    assert bot.proxy.files[chart.photo].content.startswith(b"\x89PNG")
    detail = await user.expect("👤 Paper Trend")
    assert (
        "simulated master trader" in detail.text and "Win rate: — (no closed round trip yet)" in detail.text
    )  # no made-up statistics
    await user.press("Follow")
    offer = await user.expect("Copy Paper Trend on ")
    assert [t for t, _ in offer.buttons] == ["✅ Follow with recommended settings", "⚙️ Customize"]
    await user.press("Customize")
    await user.press("Coefficient")
    await user.expect("Send the value")
    for bad, answer in (
        ("abc", "must be a number"),
        ("0", "more than 0"),
        ("1e9", "no thousands separators, comma or exponent"),
        ("101", "at most 100"),
    ):
        await user.send(bad)
        assert answer in (await user.expect("coefficient")).text
    await user.send("1")
    await user.expect("Take-profit")
    await user.send("500")
    assert "at most 100" in (await user.expect("take-profit")).text
    await user.send("5")
    await user.expect("Stop-loss")
    await user.press("No stop-loss")
    summary = await user.expect("Please check and confirm")
    assert (
        "coefficient × 1" in summary.text
        and "Take-profit: 5 %" in summary.text
        and "of your own entry price" in summary.text
    )
    assert "not active" not in summary.text and "positions the master already holds are not copied" in summary.text
    await user.press("Confirm")
    await user.expect("✅ Following")
    owner = await bot.app.accounts.user_by_telegram_id(user.id)
    [follow] = await bot.app.services.follows_of(owner.id)
    assert follow.take_profit_pct == Decimal(5) and follow.status is FollowStatus.ACTIVE

    await user.send("/follow")  # the same master with the same (only) account
    await user.press("Paper Trend")
    assert "error 80005" in (await user.expect("already following")).text

    await master_trades(master_venue, "m-1", Side.BUY, "0.01")
    copied = await user.expect("✅ Copied", within=15)
    assert (
        "bought 0.01 BTC/USDT:USDT" in copied.text
        and "Paper Trend: master buy 0.01" in copied.text
        and "slippage" in copied.text
    )
    await user.send("/status")
    status = await user.expect("Your follows")
    assert "Paper Trend" in status.text and "long 0.01" in status.text and "1 filled" in status.text
    await user.send("/history")
    history = await user.expect("Copy history")
    assert "buy 0.01 BTC/USDT:USDT — filled @" in history.text


async def test_settings_changes_apply_and_stop_closes_the_copied_positions(bot):
    master, master_venue = await paper_master(bot)
    user = bot.user("Eve")
    await start(user)
    await connect_paper(user, "eve-paper-key")
    await follow_master(user, "Paper Trend")

    await user.send("/settings")
    view = await user.expect("Sizing: coefficient × 1")
    dialogue = len(await user.messages())  # every press and typed value below edits this one message
    await user.press("Reverse: off", view)
    await user.expect("Reverse: on")
    await user.press("Reverse: on")
    await user.expect("Reverse: off")
    await user.press("Risk")
    await user.press("Max position")
    await user.expect("maximum position value")
    await user.send("lots")
    await user.expect("max position must be a number")  # the one new message: what was wrong
    await user.send("5000")
    assert "Max position: 5000" in (await user.expect("Saved")).text
    assert len(await user.messages()) == dialogue + 1
    await user.press("Back")
    await user.press("Sizing")
    await user.expect("Choose the mode")
    await user.press("Fixed order value")
    await user.expect("Send the value")
    await user.send("-5")
    await user.expect("more than 0")
    await user.send("700")
    saved = await user.expect("Saved")
    assert "700 (quote currency) per entry" in saved.text
    assert "Also changed:\n• Max position: 5000" in saved.text  # the other screens' changes in sight
    await user.press("Orders")
    await user.press("Block list")
    await user.send("NOPE")
    await user.expect("NOPE is not traded")
    await user.send("SOL")
    assert "Block list: SOL" in (await user.expect("Saved")).text
    await user.press("Block list")
    await user.press("Clear (off)")
    assert "Block list: none" in (await user.expect("Cleared")).text
    await user.press("Dry run: off")
    await user.expect("Dry run: on")
    await user.press("Dry run: on")
    await user.expect("Dry run: off")
    assert len(await user.messages()) == dialogue + 3  # the two refused values, and nothing else

    await master_trades(master_venue, "m-1", Side.BUY, "0.01")  # the next fill uses the new sizing: 700 USDT
    copied = await user.expect("✅ Copied", within=15)
    assert "bought 0.011 BTC/USDT:USDT" in copied.text  # 700 / 60000 rounded down to the 0.001 step
    await master_trades(master_venue, "m-2", Side.BUY, "0.02")
    await user.expect("✅ Copied", within=15)

    await user.send("/stop")
    await user.press("Paper Trend")
    question = await user.expect("What about the positions")
    assert [t for t, _ in question.buttons] == ["Keep positions", "Close positions", "Don't stop"]
    await user.press("Close positions")
    stopped = await user.expect("stopped")
    assert "1 order(s) sent to close your copied positions" in stopped.text and "sold" not in stopped.text
    await said_once(user, "🔒 Closing your copied position: sold 0.022 BTC/USDT:USDT @ 60000")
    owner = await bot.app.accounts.user_by_telegram_id(user.id)
    [view] = await bot.app.services.accounts_of(owner.id)
    follower_venue = await bot.app.venues.venue_for(view.id)
    assert await follower_venue.positions() == []
    [follow] = await bot.app.services.follow_views(owner.id, include_stopped=True)
    assert follow.follow.status is FollowStatus.STOPPED
    assert await bot.app.accounts.follow_positions_of(follow.follow.id) == []
    await master_trades(master_venue, "m-3", Side.BUY, "0.01")  # no longer copied
    await user.send("/status")
    assert "not following anyone" in (await user.expect("following")).text


async def test_admin_commands_and_buttons_refuse_non_admins(bot):
    master, master_venue = await paper_master(bot)
    user = bot.user("Fay")
    await start(user)
    await connect_paper(user, "fay-paper-key")
    await follow_master(user, "Paper Trend")
    for command in ("/stats", "/pauseall", "/broadcast", "/addmaster"):
        await user.send(command)
        await user.expect("administrators only")
    last = (await user.messages())[-1]
    for forged in ("pa:ok", f"am:r:{master.id}", f"am:ry:{master.id}", f"am:h:{master.id}", "bc:ok"):
        await user.press_data(forged, last)
    for _ in range(4):  # bc:ok outside a broadcast dialogue is an expired button
        await user.expect("administrators only")
    await user.expect("no longer valid")
    owner = await bot.app.accounts.user_by_telegram_id(user.id)
    [follow] = await bot.app.services.follows_of(owner.id)
    assert follow.status is FollowStatus.ACTIVE  # the kill switch was not pulled
    assert [m.name for m in await bot.app.services.masters()] == ["Paper Trend"]  # neither hidden nor retired


async def test_buttons_carrying_another_users_ids_or_tampered_data_change_nothing(bot):
    await paper_master(bot)
    alice, mallory = bot.user("Alice"), bot.user("Mallory")
    await start(alice)
    await connect_paper(alice, "alice-paper-key")
    await follow_master(alice, "Paper Trend")
    owner = await bot.app.accounts.user_by_telegram_id(alice.id)
    [follow] = await bot.app.services.follows_of(owner.id)
    [key] = await bot.app.services.accounts_of(owner.id)
    await start(mallory)
    await connect_paper(mallory, "mallory-paper-key")
    last = (await mallory.messages())[-1]
    for data, answer in (
        (f"se:t:{follow.id}:rv", "no such follow"),
        (f"se:e:{follow.id}:mp", "no such follow"),
        (f"st:c:{follow.id}", "no such follow"),
        (f"pz:f:{follow.id}", "no such follow"),
        (f"ky:ok:{key.id}", "no such exchange account"),
        (f"fw:c:1:{key.id}", "no such exchange account"),
        (f"fq:r:1:{key.id}", "no such exchange account"),
        (f"fq:a:1:{key.id}", "no such exchange account"),
        ("se:t:1;DROP:rv", "no longer valid"),
        ("st:k", "no longer valid"),
        ("totally-unknown", "no longer valid"),
    ):
        await mallory.press_data(data, last)
        await mallory.expect(answer)
    [after] = await bot.app.services.follows_of(owner.id)
    assert after.status is FollowStatus.ACTIVE and after.reverse is False
    assert [k.id for k in await bot.app.services.accounts_of(owner.id)] == [key.id]


@pytest.mark.slow
async def test_broadcast_to_200_users_completes_under_the_rate_limiter(bot):
    admin = bot.user("Admin", ADMIN)
    await start(admin)
    recipients = [fresh_id() for _ in range(200)]
    for telegram_id in recipients:
        await bot.app.services.register_user(telegram_id, "bulk user")
    blocked = set(recipients[:3])
    bot.proxy.blocked_chats |= blocked
    bot.proxy.retry_once[recipients[10]] = 1  # Telegram answers 429 retry_after=1 once
    await admin.send("/broadcast")
    await admin.expect("Who should receive")
    await admin.press("Everyone")
    await admin.expect("Send the message text")
    await admin.send("Maintenance tonight at 22:00 UTC")
    preview = await admin.expect("Send this to everyone (201 user(s))")
    assert "Maintenance tonight" in preview.text
    await admin.press("Send")
    progress = await admin.expect("Sending… 0/201")
    final = await admin.wait_text(progress.message_id, "Broadcast finished", within=40)  # the progress, edited
    assert "Delivered: 198" in final and "Blocked the bot: 3" in final and "Failed: 0" in final
    assert sum("Broadcast finished" in m.text for m in await admin.messages()) == 1  # the tally once
    assert bot.proxy.too_many_requests == 0  # never over Telegram's limit
    sends = [p for m, p in bot.proxy.calls if m == "sendMessage" and int(p["chat_id"]) == recipients[10]]
    assert len(sends) == 2  # the 429 was retried after retry_after, once
    assert {t for _, t in await bot.app.accounts.broadcast_recipients()} == (set(recipients) - blocked) | {ADMIN}


async def test_admin_adds_a_master_manages_it_and_pulls_the_kill_switch(bot):
    admin = bot.user("Admin", ADMIN)
    await start(admin)
    await admin.send("/help")
    assert "/broadcast" in (await admin.expect("Commands:")).text
    await admin.send("/addmaster")
    await admin.press("Paper trading")
    await admin.expect("API key")
    await admin.send("master-read-only-key")
    await admin.expect("Got it (message deleted)")
    await admin.press("Skip")
    await admin.expect("Public name")
    await admin.send("x")
    await admin.expect("2 to 64 characters")
    await admin.send("Trend Rider")
    await admin.expect("Description")
    await admin.send("BTC trend following, 3x leverage at most")
    await admin.press("Register")
    await admin.expect("registered")
    assert "master-read-only-key" not in await admin.own_texts()
    [master] = await bot.app.services.masters()
    assert master.name == "Trend Rider" and master.description.startswith("BTC trend")
    assert bot.app.listeners.health[master.id] is not None  # its fills are watched

    follower = bot.user("Gus")
    await start(follower)
    await connect_paper(follower, "gus-paper-key")
    await follow_master(follower, "Trend Rider")

    await admin.send("/masters")
    await admin.press("Trend Rider")
    await admin.expect("👤 Trend Rider")
    await admin.press("Hide")
    await admin.expect("hidden from /masters")
    assert await bot.app.services.masters() == []
    await follower.send("/masters")
    await follower.expect("No masters are listed yet")

    await admin.send("/stats")
    stats = await admin.expect("📊 Stats")
    assert "Follows: 1 active" in stats.text and "Masters: 0 active, 1 hidden" in stats.text
    assert (
        "Copies, last 7 days" in stats.text and "Active follows: 1" in stats.text and f"#{master.id} up" in stats.text
    )
    await admin.send("/pauseall")
    await admin.press("Pause everything")
    await admin.expect("1 follow(s) paused")
    owner = await bot.app.accounts.user_by_telegram_id(follower.id)
    [follow] = await bot.app.services.follows_of(owner.id)
    assert follow.status is FollowStatus.PAUSED
    await follower.send("/resume")
    await follower.press("Trend Rider")
    await follower.expect("resumed")


async def skip_digest(bot, user: ChatUser, needle: str, attempts: int = 100) -> BotMessage:
    """Run the skip-digest job until its message arrives (the skip may still be on its way to the
    notifier when the job first runs); bounded."""
    for _ in range(attempts):
        await bot.scheduler.get_job("skip-digests").func()
        try:
            return await user.expect(needle, within=0.2)
        except AssertionError:
            continue
    raise AssertionError(f"no digest saying {needle!r}")


async def test_skips_failures_and_a_rejected_key_are_notified_with_what_to_do(bot):
    from core.errors import AuthenticationError

    master, master_venue = await paper_master(bot)
    user = bot.user("Hal")
    await start(user)
    await connect_paper(user, "hal-paper-key")
    await follow_master(user, "Paper Trend")
    await user.send("/settings")
    await user.press("Orders")
    await user.press("Allow list")
    await user.expect("Send the symbols to copy")
    await user.send("ETH")
    await user.expect("Allow list: ETH")
    await master_trades(master_venue, "m-1", Side.BUY, "0.01")
    skipped = await skip_digest(bot, user, "Not copied, nothing for you to do (1)")  # the follower's own filter
    assert "the symbol is not on your allow list (BTC/USDT:USDT)" in skipped.text
    owner = await bot.app.accounts.user_by_telegram_id(user.id)
    [key] = await bot.app.services.accounts_of(owner.id)
    follower_venue = await bot.app.venues.venue_for(key.id)
    follower_venue.fail_next(AuthenticationError("API key revoked"))
    await master_trades(master_venue, "m-2", Side.BUY, "0.1", symbol="ETH/USDT:USDT")
    mark = user.cursor
    await user.expect("❌ Copy failed", within=15)
    user.cursor = mark  # the pause notice and the failure may arrive in either order
    await user.expect("⏸ Copying paused", within=15)
    texts = [m.text for m in await user.messages() if m.message_id > mark]
    assert any("❌ Copy failed: API key revoked" in t for t in texts)
    assert any("refused your key" in t and "/resume" in t for t in texts)
    await user.send("/history")
    history = await user.expect("Copy history")
    assert (
        "not copied — the symbol is not on your allow list" in history.text
        and "failed — API key revoked" in history.text
    )


async def test_bad_input_everywhere_gets_a_specific_answer_and_changes_nothing(bot):
    user = bot.user("Ivy")
    await user.send("/status")
    await user.expect("Send /start first")
    await start(user)
    await user.send("hello there")
    await user.expect("not expecting a message")
    await user.send("AKIAABCDEF0123456789XYZ")  # a pasted key outside /connect
    await user.expect("looked like a key")
    assert "AKIAABCDEF0123456789XYZ" not in await user.own_texts()
    await user.send("/cancel")
    await user.expect("Nothing to cancel")
    await user.send("/connect")
    venues = await user.expect("Which exchange")
    await user.send("/cancel")
    await user.expect("Cancelled; nothing was stored")
    await user.press("Paper trading", venues)  # a button of the cancelled dialogue
    await user.expect("no longer valid")
    await user.send("/settings")
    await user.expect("not following anyone")
    await user.send("/stop")
    await user.expect("Nothing to stop")
    await user.send("/history")
    await user.expect("No copies yet")
    await user.send("/keys")
    await user.expect("No exchange accounts connected yet")


async def test_webhook_mode_registers_the_url_with_a_secret_and_serves_updates(emulator, tmp_path):
    import asyncio

    import aiohttp

    from bot.app import serve, webhook_secret
    from copytrade.app import build_app
    from copytrade.config import load_settings
    from copytrade.http.server import start_http_server
    from core.vault import generate_key
    from tests.fakes.telegram import BotApiProxy, free_port

    proxy = BotApiProxy(emulator.url)
    await proxy.start()
    port = free_port()
    token = f"{fresh_id()}:webhook"
    settings = load_settings(
        telegram_bot_token=token,
        telegram_api_base_url=proxy.base_url,
        webhook_url=f"http://127.0.0.1:{port}/telegram-hook",
        port=port,
        database_url=f"sqlite:///{tmp_path / 'w.db'}",
        secret_key=generate_key(),
        mode="paper",
        data_dir=tmp_path,
    )
    app = await build_app(settings)
    http = await start_http_server(app, host="127.0.0.1")  # the service's one server, on $PORT
    assert http.webhook is not None and http.webhook.path == "/telegram-hook"
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, stop, on_webhook_ready=http.webhook.attach))
    try:
        for _ in range(200):
            if "setWebhook" in proxy.methods():
                break
            await asyncio.sleep(0.02)
        [params] = [p for m, p in proxy.calls if m == "setWebhook"]
        assert params["url"] == f"http://127.0.0.1:{port}/telegram-hook" and params["secret_token"] == webhook_secret(
            token
        )
        user_id = fresh_id()
        update = {
            "update_id": 1,
            "message": {
                "message_id": 1,
                "date": 1,
                "text": "/start",
                "chat": {"id": user_id, "type": "private"},
                "from": {"id": user_id, "is_bot": False, "first_name": "Web"},
                "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
            },
        }
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{port}/telegram-hook", json=update) as response:
                assert response.status == 403  # no secret: not from Telegram
            wrong = {"X-Telegram-Bot-Api-Secret-Token": webhook_secret("1:another-bot")}
            async with session.post(f"http://127.0.0.1:{port}/telegram-hook", json=update, headers=wrong) as response:
                assert response.status == 403
            headers = {"X-Telegram-Bot-Api-Secret-Token": webhook_secret(token)}
            async with session.post(
                f"http://127.0.0.1:{port}/telegram-hook", data=b"not json", headers=headers
            ) as response:
                assert response.status == 400
            async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200  # the same port serves health
            async with session.post(f"http://127.0.0.1:{port}/telegram-hook", json=update, headers=headers) as response:
                assert response.status == 200
        for _ in range(200):
            if await app.accounts.user_by_telegram_id(user_id) is not None:
                break
            await asyncio.sleep(0.02)
        assert await app.accounts.user_by_telegram_id(user_id) is not None
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await http.stop()
        await app.close()
        await proxy.stop()


async def test_copytrade_run_with_a_token_serves_the_bot_and_stops_cleanly_on_sigterm(emulator, tmp_path):
    import asyncio
    import os
    import signal
    import sys

    import aiohttp

    from core.vault import generate_key
    from tests.fakes.telegram import BotApiProxy, free_port

    proxy = BotApiProxy(emulator.url)
    await proxy.start()
    port = free_port()
    token = f"{fresh_id()}:cli"
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": token,
        "TELEGRAM_API_BASE_URL": proxy.base_url,
        "COPYTRADE_MODE": "paper",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "COPYTRADE_SECRET_KEY": generate_key(),
        "COPYTRADE_DATA_DIR": str(tmp_path),
        "ADMIN_IDS": "",
        "LOG_LEVEL": "WARNING",
        "PAPER_TRADE_SECONDS": "1",
        "PORT": str(port),
    }
    env.pop("WEBHOOK_URL", None)  # polling
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "copytrade",
        "run",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        for _ in range(600):
            if "getUpdates" in proxy.methods() or process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        assert "setMyCommands" in proxy.methods() and "getUpdates" in proxy.methods()
        async with aiohttp.ClientSession() as session:
            user = ChatUser(session, emulator.url, token, name="Cli")
            await start(user)
            # paper mode: a simulated master is there to follow, and it trades on the scheduler
            await user.press("Try with a paper account")
            listing = await user.expect("Which master do you want to copy?")
            assert [t for t, _ in listing.buttons] == ["Paper Trend"]
            await user.press("Paper Trend")
            await user.press("Follow with recommended settings")
            await user.expect("✅ Following")
            await user.expect("Paper Trend: master", within=30)  # the first master trade after following
            # polling mode still binds $PORT (a Heroku web dyno is killed otherwise)
            for path in ("/healthz", "/readyz", "/metrics"):
                async with session.get(f"http://127.0.0.1:{port}{path}") as response:
                    assert response.status == 200, path
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, output.decode(errors="replace")
        assert b"Traceback" not in output
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await proxy.stop()


async def test_masters_are_paginated_and_a_broadcast_can_target_one_masters_followers(bot):
    for n in range(10):
        await create_paper_master(bot.app.services, f"Master {n:02d}", "1000")
    user = bot.user("Jo")
    await start(user)
    await user.send("/masters")
    first = await user.expect("Masters by followers (page 1/2)")
    assert "8. Master 07" in first.text and "Master 08" not in first.text
    await user.press("Next ▶")
    second = await user.expect("(page 2/2)")
    assert "9. Master 08" in second.text and "10. Master 09" in second.text
    assert [t for t, _ in second.buttons][:3] == ["Master 08", "Master 09", "◀ Previous"]
    assert "• followers" in [t for t, _ in second.buttons]  # the sort buttons follow

    await connect_paper(user, "jo-paper-key")
    await follow_master(user, "Master 03")
    outsider = bot.user("Kim")
    await start(outsider)
    admin = bot.user("Admin", ADMIN)
    await start(admin)
    await admin.send("/broadcast")
    await admin.press("Followers of Master 03 (1)")
    await admin.expect("Send the message text")
    await admin.send("Master 03 pauses trading this week")
    await admin.expect("(1 user(s))")
    await admin.press("Send")
    progress = await admin.expect("Sending…")
    assert "Delivered: 1" in await admin.wait_text(progress.message_id, "Broadcast finished")
    await user.expect("Master 03 pauses trading this week")
    assert not any("pauses trading" in m.text for m in await outsider.messages())


# -- issue 6: risk settings, /sync, opening the master's positions, risk notices ----------------


async def follower_venue(bot, user: ChatUser):
    owner = await bot.app.accounts.user_by_telegram_id(user.id)
    [key] = await bot.app.services.accounts_of(owner.id)
    return owner, await bot.app.venues.venue_for(key.id)


async def test_risk_settings_refuse_bad_values_and_save_good_ones_with_buttons_where_finite(bot):
    await paper_master(bot)
    user = bot.user("Lea")
    await start(user)
    await connect_paper(user, "lea-paper-key")
    await follow_master(user, "Paper Trend")
    owner = await bot.app.accounts.user_by_telegram_id(user.id)
    [before] = await bot.app.services.follows_of(owner.id)

    await user.send("/settings")
    view = await user.expect("Take-profit: off")
    assert "not active" not in view.text
    await user.press("Risk", view)
    risk = await user.expect("Slippage limit: off")
    await user.press("Slippage limit", risk)
    assert "how far your exchange's price may be" in (await user.expect("Send the slippage limit")).text
    await user.send("80")
    assert "slippage limit % must be more than 0 and at most 50, got 80" in (await user.expect("slippage limit")).text
    [unchanged] = await bot.app.services.follows_of(owner.id)
    assert unchanged.slippage_pct is None and unchanged.updated_at == before.updated_at  # nothing was changed
    await user.send("0.5")
    assert "Slippage limit: 0.5 % — skip the copy" in (await user.expect("Saved")).text
    await user.press("Slippage action: skip")
    choices = await user.expect("When the price moved past your slippage limit")
    assert [t for t, _ in choices.buttons] == ["• Skip the copy", "Send a limit order at the limit", "◀ Back"]
    await user.press("Send a limit order", choices)
    assert (
        "Slippage limit: 0.5 % — limit order at the allowed price (cancelled at once"
        in (await user.expect("Saved")).text
    )
    await user.press("Max total position")
    await user.expect("maximum value of all copied positions together")
    await user.send("-3")
    await user.expect("max total position must be more than 0")
    await user.send("5000")
    assert "Max total position: 5000" in (await user.expect("Saved")).text
    await user.press("Daily loss limit")
    prompt = await user.expect("Send the daily loss limit")
    assert "the follow is paused" in prompt.text and "close on loss limit" in prompt.text
    await user.send("200")
    await user.expect("Daily loss limit: 200 — pauses the follow\n")
    await user.press("Close on loss limit: off")
    assert (
        "Daily loss limit: 200 — pauses the follow and closes the copied positions" in (await user.expect("Saved")).text
    )
    await user.press("Auto-sync: off")
    assert "Auto-sync: on" in (await user.expect("Saved")).text
    await user.press("Back")
    await user.press("Orders")
    await user.press("Entries: both")
    await user.press("Long only")
    assert "Entries copied: long only" in (await user.expect("Saved")).text
    await user.press("Back")
    await user.press("Venue")
    await user.press("Margin: default")
    await user.press("Isolated")
    assert "Margin mode: isolated" in (await user.expect("Saved")).text
    await user.press("Back")
    await user.press("Stop-loss")
    assert "resting reduce-only order" in (await user.expect("Send the stop-loss")).text
    await user.send("100")
    await user.expect("stop-loss % must be below 100")
    await user.send("3")
    assert "stop-loss: 3 % (of your own entry price" in (await user.expect("Saved")).text

    [after] = await bot.app.services.follows_of(owner.id)
    assert (after.slippage_pct, after.slippage_action, after.entry_sides, after.margin_mode) == (
        Decimal("0.5"),
        "limit",
        "long",
        "isolated",
    )
    assert (
        after.max_total_notional,
        after.daily_loss_limit,
        after.close_on_daily_loss,
        after.auto_sync,
        after.stop_loss_pct,
    ) == (Decimal(5000), Decimal(200), True, True, Decimal(3))
    last = (await user.messages())[-1]
    await user.press_data(f"se:v:{after.id}:es:sideways", last)  # a value the buttons never offer
    await user.expect("no longer valid")
    assert (await bot.app.services.follows_of(owner.id))[0].entry_sides == "long"


async def test_sync_shows_the_drift_asks_then_brings_the_exchange_in_line_and_notices_reach_the_user(bot):
    from core.errors import InvalidOrder
    from storage.journal import follow_settings

    master, master_venue = await paper_master(bot)
    user = bot.user("Max")
    await start(user)
    await connect_paper(user, "max-paper-key")
    await follow_master(user, "Paper Trend")
    await user.send("/sync")
    await user.expect("your exchange matches your copy history; nothing to sync")
    owner, venue = await follower_venue(bot, user)
    [follow] = await bot.app.services.follows_of(owner.id)
    last = (await user.messages())[-1]
    await bot.app.services.update_follow(owner.id, follow.id, {"dry_run": "on"})
    await user.press_data(f"sy:f:{follow.id}", last)
    await user.expect("dry run is on for this follow")
    await bot.app.services.update_follow(owner.id, follow.id, {"dry_run": "off"})
    await master_trades(master_venue, "m-1", Side.BUY, "0.01")
    await user.expect("✅ Copied", within=15)
    await venue.place_order(
        OrderIntent(0, "manual-1", "BTC/USDT:USDT", Side.BUY, Decimal("0.05"))
    )  # a trade made by hand

    await user.send("/sync")
    preview = await user.expect("disagrees with your copy history")
    assert "BTC/USDT:USDT: copies say 0.01, your exchange shows 0.06 → sell 0.05" in preview.text
    assert [t for t, _ in preview.buttons] == ["🔁 Sync now", "Leave it"]
    await user.press("Leave it", preview)
    await user.expect("Nothing was sent")
    await user.send("/status")
    status = await user.expect("Your follows")
    assert "⚖️ BTC/USDT:USDT: copies say 0.01, your exchange shows 0.06" in status.text and "long 0.01" in status.text
    await user.press("Sync now", preview)
    done = await user.expect("🔁 Sync:")
    assert "1 order(s) sent to bring your exchange in line" in done.text
    assert "✅ Your exchange now matches your copy history" in done.text and "sold" not in done.text
    await said_once(user, "🔁 Sync with your copy history: sold 0.05 BTC/USDT:USDT")
    assert [(p.symbol, p.quantity) for p in await venue.positions()] == [("BTC/USDT:USDT", Decimal("0.01"))]
    assert await bot.app.journal.drifts(follow.id) == []
    await user.send("/status")
    assert "⚖️" not in (await user.expect("Your follows")).text
    # the drift /sync showed was not sent a second time as a notice
    assert not any("disagrees with your copy history (follow #" in m.text for m in await user.messages())

    # the periodic reconciliation and the risk controls reach the user through the notifier
    await venue.place_order(OrderIntent(0, "manual-2", "BTC/USDT:USDT", Side.BUY, Decimal("0.02")))
    await bot.app.risk.reconcile_all()
    notice = await user.expect(f"disagrees with your copy history (follow #{follow.id})")
    assert "copies say 0.01, your exchange shows 0.03" in notice.text and "/sync" in notice.text
    await bot.app.services.update_follow(owner.id, follow.id, {"stop_loss_pct": "3"})
    venue.fail_next(InvalidOrder("stop orders are disabled for this account"))
    await bot.app.risk.protect(follow_settings(await bot.app.accounts.follow(follow.id)), "BTC/USDT:USDT")
    refused = await user.expect("⚠️ your stop-loss order for BTC/USDT:USDT was refused")
    assert "stop orders are disabled" in refused.text and f"(follow #{follow.id})" in refused.text


async def test_follow_can_copy_the_masters_open_positions_at_once(bot):
    master, _ = await paper_master(bot)
    await bot.app.journal.set_master_position(master.id, "BTC/USDT:USDT", Decimal("0.02"))
    await bot.app.journal.set_master_position(
        master.id, "SOL/USDT:USDT", Decimal("-0.3")
    )  # below the minimum of 1 at coefficient 1
    user = bot.user("Ned")
    await start(user)
    await connect_paper(user, "ned-paper-key")
    await user.send("/follow")
    await user.press("Paper Trend")
    await user.press("Customize")
    await user.press("Coefficient")
    await user.expect("Send the value")
    await user.send("1")
    await user.press("No take-profit")
    await user.press("No stop-loss")
    question = await user.expect("holds open positions now")
    assert "BTC/USDT:USDT long 0.02, SOL/USDT:USDT short 0.3" in question.text
    assert [t for t, _ in question.buttons] == ["📥 Copy the master's open positions now", "Only new trades", "Cancel"]
    await user.press("Copy the master's open positions now", question)
    summary = await user.expect("Please check and confirm")
    assert "The master's open positions are copied at your sizing as soon as you confirm" in summary.text
    await user.press("Confirm")
    await user.expect("✅ Following")
    opened = await user.expect("📥 The master's open positions:", within=15)
    assert "1 order(s) sent to open the master's positions" in opened.text
    assert "⏭ Not opened: your share of the trade is below the exchange's minimum quantity" in opened.text
    await said_once(user, "📥 Opening the master's position: bought 0.02 BTC/USDT:USDT @ 60000")
    owner, venue = await follower_venue(bot, user)
    assert [(p.symbol, p.quantity) for p in await venue.positions()] == [("BTC/USDT:USDT", Decimal("0.02"))]
    [follow] = await bot.app.services.follows_of(owner.id)
    assert [(p.symbol, p.quantity) for p in await bot.app.accounts.follow_positions_of(follow.id)] == [
        ("BTC/USDT:USDT", Decimal("0.02"))
    ]


async def test_only_new_trades_leaves_the_masters_positions_alone(bot):
    master, _ = await paper_master(bot)
    await bot.app.journal.set_master_position(master.id, "BTC/USDT:USDT", Decimal("0.02"))
    user = bot.user("Oda")
    await start(user)
    await connect_paper(user, "oda-paper-key")
    await user.send("/follow")
    await user.press("Paper Trend")
    await user.press("Customize")
    await user.press("Coefficient")
    await user.expect("Send the value")
    await user.send("1")
    await user.press("No take-profit")
    await user.press("No stop-loss")
    await user.press("Only new trades")
    assert "positions the master already holds are not copied" in (await user.expect("Please check and confirm")).text
    await user.press("Confirm")
    await user.expect("✅ Following")
    _, venue = await follower_venue(bot, user)
    assert await venue.positions() == [] and venue.place_calls == 0


# -- issue 8: /masters ranking and detail, /pnl, /export, /summary ------------------------------


async def wait_fills(bot, master_id: int, count: int) -> None:
    import asyncio

    for _ in range(300):
        if bot.app.listeners.health[master_id].fills >= count:
            break
        await asyncio.sleep(0.02)
    await bot.app.listeners.idle()
    await bot.app.engine.drain()


async def test_masters_sort_by_any_statistic_and_a_masters_page_has_every_number_and_the_chart(bot):
    bot.app.services.reports.refresher.settle_seconds = (
        0  # count fills at once (the scheduler waits a little for late commits)
    )
    bot.app.services.reports.refresher.refresh_interval = 0
    await paper_master(bot, "Beta Quiet")
    alpha, alpha_venue = await paper_master(bot, "Alpha Gains")
    await master_trades(alpha_venue, "a-1", Side.BUY, "0.01")
    bot.app.paper.set_price("BTC/USDT:USDT", Decimal(61000))
    await master_trades(alpha_venue, "a-2", Side.SELL, "0.01")
    await wait_fills(bot, alpha.id, 2)
    user = bot.user("Pia")
    await start(user)
    await user.send("/masters")
    by_followers = await user.expect("Masters by followers (page 1/1)")
    assert by_followers.text.index("1. Beta Quiet") < by_followers.text.index(
        "2. Alpha Gains"
    )  # a tie: the older first
    assert "PnL +0.00 · win rate — · max drawdown 0.00" in by_followers.text  # Beta: no trade yet
    assert "PnL +10.00 · win rate 100.0 % · max drawdown 0.00" in by_followers.text
    await user.press("PnL", by_followers)
    by_pnl = await user.expect("Masters by PnL (page 1/1)")
    assert by_pnl.text.index("1. Alpha Gains") < by_pnl.text.index("2. Beta Quiet")
    assert "• PnL" in [t for t, _ in by_pnl.buttons]
    await user.press("win rate", by_pnl)
    by_wins = await user.expect("Masters by win rate")
    assert "1. Alpha Gains" in by_wins.text
    await user.press("Alpha Gains", by_wins)
    chart = await user.expect("Alpha Gains", kind="photo")
    assert bot.proxy.files[chart.photo].content.startswith(b"\x89PNG") and bot.proxy.files[chart.photo].kind == "photo"
    detail = await user.expect("👤 Alpha Gains")
    for part in (
        "Realized PnL: +10.00",
        "Win rate: 100.0 % (1 won, 0 lost of 1 round trips)",
        "Max drawdown: 0.00",
        "Trading days: 1 · fills: 2",
        "Open positions: none",
        "Profit factor: — (no losing round trip yet)",
    ):
        assert part in detail.text, part
    assert [t for t, _ in detail.buttons] == ["➕ Follow", "◀ Back"]
    await user.press("Back", detail)
    assert "1. Alpha Gains" in (await user.expect("Masters by win rate")).text
    await user.press_data("ms:l:astrology:0", detail)
    await user.expect("no longer valid")


async def test_pnl_sends_a_chart_and_the_numbers_and_refuses_a_bad_period(bot):
    master, master_venue = await paper_master(bot)
    user = bot.user("Quinn")
    await start(user)
    await user.send("/pnl")
    await user.expect("not followed anyone yet")
    await connect_paper(user, "quinn-paper-key")
    await follow_master(user, "Paper Trend")
    await master_trades(master_venue, "m-1", Side.BUY, "0.01")
    await user.expect("✅ Copied", within=15)
    await user.send("/pnl 5x")
    assert (
        "the period is a number of days, weeks, months or years (7d, 4w, 3m, 1y), today or all"
        in (await user.expect("⚠️")).text
    )
    await user.send("/pnl 7d")
    photo = await user.expect("Your PnL over the last 7d", kind="photo")
    assert bot.proxy.files[photo.photo].content.startswith(b"\x89PNG")
    numbers = await user.expect("💰 PnL over the last 7d")
    assert (
        "Paper Trend → paper" in numbers.text
        and "Copies: 1 filled" in numbers.text
        and "BTC/USDT:USDT: long 0.01 @ 60000" in numbers.text
    )
    assert "Total:" in numbers.text
    await user.send("/pnl")
    await user.expect("Your PnL over the last 30d", kind="photo")


async def test_export_sends_the_copy_log_as_a_document_and_admin_scopes_are_for_admins(bot):
    import csv
    import io
    import json

    from core.export import COLUMNS

    master, master_venue = await paper_master(bot)
    user = bot.user("Rae")
    await start(user)
    await user.send("/export")
    await user.expect("Nothing to export yet: your copy log is empty")
    await connect_paper(user, "rae-paper-key")
    await follow_master(user, "Paper Trend")
    await master_trades(master_venue, "m-1", Side.BUY, "0.01")
    await user.expect("✅ Copied", within=15)
    await user.send("/export")
    message = await user.expect("Your copy log: 1 row(s)", kind="document")
    assert message.document["file_name"].startswith("copylog-") and message.document["file_name"].endswith(".csv")
    rows = list(csv.reader(io.StringIO(bot.proxy.files[message.document["file_id"]].content.decode("utf-8"))))
    assert rows[0] == list(COLUMNS) and len(rows) == 2
    record = dict(zip(rows[0], rows[1], strict=True))
    assert (record["symbol"], record["side"], record["filled_quantity"], record["status"], record["master"]) == (
        "BTC/USDT:USDT",
        "buy",
        "0.01",
        "filled",
        "Paper Trend",
    )
    await user.send("/export json")
    as_json = await user.expect("Your copy log", kind="document")
    assert as_json.document["file_name"].endswith(".json")
    json.loads(bot.proxy.files[as_json.document["file_id"]].content)
    await user.send("/export xml")
    assert "Usage: /export [csv|json]" in (await user.expect("⚠️")).text
    for forbidden in ("/export all", f"/export master {master.id}"):
        await user.send(forbidden)
        await user.expect("administrators only")
    assert sum(1 for f in bot.proxy.files.values() if f.kind == "document") == 2  # nothing else was sent

    admin = bot.user("Admin", ADMIN)
    await start(admin)
    await admin.send("/export all")
    everything = await admin.expect("Every master's copy log", kind="document")
    assert everything.document["file_name"].startswith("copylog-all")
    await admin.send(f"/export master {master.id} json")
    await admin.expect(f"Master #{master.id}'s copy log", kind="document")
    await admin.send("/export master 999")
    await admin.expect("no master with id 999")


async def test_summary_on_and_off_and_the_due_summary_is_delivered_once(bot):
    user = bot.user("Sol")
    await start(user)
    await user.send("/summary")
    assert "Daily summary: off" in (await user.expect("Usage: /summary on")).text
    await user.send("/summary on 25:99")
    await user.expect("the time is HH:MM in UTC")
    await user.send("/summary sometimes")
    await user.expect("Usage: /summary on [HH:MM] (UTC) or /summary off")
    await user.send("/summary on 00:00")
    await user.expect("Saved. 🗓 Daily summary: on, every day at 00:00 UTC")
    owner = await bot.app.accounts.user_by_telegram_id(user.id)
    setting = await bot.app.services.daily_summary_setting(owner.id)
    assert setting.enabled and setting.minute_of_day == 0

    job = bot.scheduler.get_job("daily-summaries")  # what the service's scheduler runs every minute
    await job.func()
    delivered = await user.expect("🗓 Daily summary for")
    assert "No copies yesterday." in delivered.text
    await job.func()  # once a day only
    await user.send("/summary off")
    await user.expect("Saved. 🗓 Daily summary: off")
    assert sum("Daily summary for" in m.text for m in await user.messages()) == 1
    assert not (await bot.app.services.daily_summary_setting(owner.id)).enabled

    gone = bot.user("Tod")  # turned it on, then blocked the bot
    await start(gone)
    await gone.send("/summary on 00:00")
    await gone.expect("Saved.")
    bot.proxy.blocked_chats.add(gone.id)
    await job.func()
    assert (await bot.app.accounts.user_by_telegram_id(gone.id)).blocked_bot  # no more attempts until they /start again


async def test_a_masters_page_keeps_its_numbers_and_follow_button_when_the_chart_upload_fails(bot):
    alpha, alpha_venue = await paper_master(bot, "Alpha Gains")
    await master_trades(alpha_venue, "a-1", Side.BUY, "0.01")
    await wait_fills(bot, alpha.id, 1)
    bot.proxy.refused_methods.add("sendPhoto")
    user = bot.user("Quinn")
    await start(user)
    await user.send("/masters")
    await user.press("Alpha Gains", await user.expect("Masters by followers"))
    detail = await user.expect("👤 Alpha Gains")
    assert [t for t, _ in detail.buttons] == ["➕ Follow", "◀ Back"]
    assert "sendPhoto" in bot.proxy.methods()  # the chart was tried, and refused


# -- issue 16: the first five minutes -------------------------------------------------------------


async def simulated_master_trades_until_copied(bot, user: ChatUser, steps: int) -> BotMessage:
    """Runs the paper-trading job (as the scheduler does every PAPER_TRADE_SECONDS) ``steps``
    times, then the first copy notification the user got."""
    from core.venues.paper.trader import SIMULATED_MASTERS_JOB

    job = bot.scheduler.get_job(SIMULATED_MASTERS_JOB)
    bot.app.simulated_masters.rng = random.Random(16)  # a fixed sequence of trades
    for _ in range(steps):
        await job.func()
    return await user.expect("✅ Copied", within=15)


async def test_a_new_user_follows_in_four_interactions_and_gets_a_paper_copy(bot):
    await paper_master(bot)
    user = bot.user("Newt")
    await user.send("/start")
    welcome = await user.expect("Welcome to copytrade")
    assert [t for t, _ in welcome.buttons] == ["🧪 Try with a paper account", "🔑 Connect my exchange"]
    await user.press("Try with a paper account")
    await user.expect("Your paper account is ready with 10,000 USDT")
    await user.press("Paper Trend")
    offer = await user.expect("Copy Paper Trend on paper with the recommended settings?")
    assert "equity ratio" in offer.text.lower()
    await user.press("Follow with recommended settings")
    await user.expect("✅ Following")
    assert user.interactions == 4  # ≤ 6: /start, paper account, the master, confirm
    owner = await bot.app.accounts.user_by_telegram_id(user.id)
    [follow] = await bot.app.services.follows_of(owner.id)
    assert follow.status is FollowStatus.ACTIVE and follow.sizing_mode.value == "equity_ratio"
    [account] = await bot.app.services.accounts_of(owner.id)
    assert account.venue == "paper" and await (await bot.app.venues.venue_for(account.id)).equity() == Decimal(10_000)
    # four trades: one minute of the simulated master at the default PAPER_TRADE_SECONDS=15
    copied = await simulated_master_trades_until_copied(bot, user, steps=4)
    assert "Paper Trend: master" in copied.text
    assert user.interactions == 4


async def test_a_shared_follow_link_reaches_an_active_follow_in_three_interactions(bot):
    master, _ = await paper_master(bot)
    user = bot.user("Lin")
    await user.send(f"/start follow-{master.id}")
    await user.expect("Welcome to copytrade")
    await user.expect("To copy Paper Trend you need an exchange account")
    await user.press("Try with a paper account")
    offer = await user.expect("Copy Paper Trend on paper with the recommended settings?")
    await user.press("Follow with recommended settings", offer)
    await user.expect("✅ Following")
    assert user.interactions == 3
    await user.press("Follow with recommended settings", offer)  # pressed again: nothing doubles
    assert "error 80005" in (await user.expect("already following")).text
    owner = await bot.app.accounts.user_by_telegram_id(user.id)
    assert len(await bot.app.services.follows_of(owner.id)) == 1


async def test_a_follow_link_to_an_unknown_master_says_so(bot):
    user = bot.user("Uma")
    await user.send("/start follow-999")
    await user.expect("Welcome to copytrade")
    await user.expect("no such master")


async def test_trying_a_paper_account_twice_keeps_one_account(bot):
    await paper_master(bot)
    user = bot.user("Tom")
    await user.send("/start")
    welcome = await user.expect("Welcome to copytrade")
    await user.press("Try with a paper account", welcome)
    await user.expect("Your paper account is ready with 10,000 USDT")
    await user.press("Try with a paper account", welcome)
    await user.expect("Your paper account is ready with 10,000 USDT")
    owner = await bot.app.accounts.user_by_telegram_id(user.id)
    assert len(await bot.app.services.accounts_of(owner.id)) == 1


async def test_manual_confirmation_offers_each_copy_with_copy_and_skip_buttons(bot):
    master, master_venue = await paper_master(bot)
    user = bot.user("Mia")
    await user.send(f"/start follow-{master.id}")
    await user.press("Try with a paper account")
    await user.press("Follow with recommended settings")
    await user.expect("✅ Following")
    owner = await bot.app.accounts.user_by_telegram_id(user.id)
    [follow] = await bot.app.services.follows_of(owner.id)
    await bot.app.services.update_follow(owner.id, follow.id, {"confirm_seconds": "60"})
    await master_trades(master_venue, "m-1", Side.BUY, "0.5")
    offer = await user.expect("✋ Paper Trend bought 0.5 BTC/USDT:USDT @ 60,000 — copy: buy 0.05 BTC/USDT:USDT?")
    assert [t for t, _ in offer.buttons] == ["✅ Copy", "⏭ Skip"] and "within 60 s" in offer.text
    _, venue = await follower_venue(bot, user)
    assert venue.place_calls == 0
    await user.press("Copy", offer)
    copied = await user.expect("✅ Copied")
    assert "bought 0.05 BTC/USDT:USDT" in copied.text
    await user.press("Copy", offer)  # twice: placed once
    await user.expect("already confirmed; it is sent once")
    assert venue.place_calls == 1

    await master_trades(master_venue, "m-2", Side.BUY, "0.5")
    second = await user.expect("✋ Paper Trend bought")
    await user.press("Skip", second)
    skipped = await user.expect("⏭ Not copied: not confirmed (you chose Skip)")
    assert "master buy 0.5" in skipped.text and venue.place_calls == 1


async def test_a_masters_own_account_following_another_master_is_warned(bot):
    await paper_master(bot)
    user = bot.user("Max")
    await user.send("/start")
    await user.press("Try with a paper account")
    await user.expect("Your paper account is ready with 10,000 USDT")
    owner = await bot.app.accounts.user_by_telegram_id(user.id)
    [account] = await bot.app.services.accounts_of(owner.id)
    await bot.app.services.add_master("Max Alpha", "paper", owner_id=owner.id, credential_id=account.id)
    await user.press("Paper Trend")
    offer = await user.expect("Copy Paper Trend on paper with the recommended settings?")
    assert "⚠️ This account is the master account of Max Alpha" in offer.text
    await user.press("Customize", offer)
    await user.press("Coefficient")
    await user.send("1")
    await user.press("No take-profit")
    await user.press("No stop-loss")
    summary = await user.expect("Please check and confirm")
    assert "master account of Max Alpha" in summary.text


async def test_an_ordinary_account_gets_no_master_warning(bot):
    master, _ = await paper_master(bot)
    user = bot.user("Ola")
    await user.send(f"/start follow-{master.id}")
    await user.press("Try with a paper account")
    offer = await user.expect("Copy Paper Trend on paper with the recommended settings?")
    assert "⚠️" not in offer.text


async def test_with_a_key_a_shared_link_reaches_an_active_follow_in_five_interactions(bot):
    master, _ = await paper_master(bot)
    user = bot.user("Kai")
    await user.send(f"/start follow-{master.id}")
    need = await user.expect("To copy Paper Trend you need an exchange account")
    assert [t for t, _ in need.buttons] == ["🧪 Try with a paper account", "🔑 Connect my exchange"]
    await user.press("Connect my exchange", need)
    await user.press("Paper trading")  # the venue, asked once
    prompt = await user.expect("Send your API key")
    assert "API key and starting balance in USDT in one message" in prompt.text
    await user.send("kai-paper-key-0001 2500")  # every field in one message
    await user.expect("Got the API key and starting balance in USDT (message deleted)")
    await user.expect("Connected and stored encrypted")
    offer = await user.expect("Copy Paper Trend on paper 1 with the recommended settings?")
    await user.press("Follow with recommended settings", offer)
    await user.expect("✅ Following")
    assert user.interactions == 5  # link, connect, venue, the fields, confirm
    assert "kai-paper-key-0001 2500" not in await user.own_texts()  # deleted from the chat
    owner, venue = await follower_venue(bot, user)
    assert await venue.equity() == Decimal(2500)
    assert len(await bot.app.services.follows_of(owner.id)) == 1


async def test_with_a_key_a_new_user_reaches_an_active_follow_in_six_interactions(bot):
    await paper_master(bot)
    user = bot.user("Lou")
    await user.send("/start")
    await user.press("Connect my exchange")
    await user.press("Paper trading")
    await user.send("lou-paper-key-0001 10000")  # the key and the optional balance in one message
    await user.expect("Connected and stored encrypted")  # a first account: no name asked
    listing = await user.expect("Which master do you want to copy?")
    assert [t for t, _ in listing.buttons] == ["Paper Trend"]
    await user.press("Paper Trend", listing)
    await user.press("Follow with recommended settings")
    await user.expect("✅ Following")
    assert user.interactions == 6  # /start, connect, venue, key, master, confirm


async def test_more_values_than_fields_are_refused_and_nothing_is_kept(bot):
    user = bot.user("Rex")
    await start(user)
    await user.send("/connect")
    await user.press("Paper trading")
    await user.expect("Send your API key")
    await user.send("one two three")
    await user.expect("does not look like a API key")
    assert "one two three" not in await user.own_texts()


# -- the newcomer's first messages --------------------------------------------------------------


async def test_a_newcomers_first_message_after_following_is_an_offer_and_unactionable_skips_wait_for_the_digest(bot):
    master, master_venue = await paper_master(bot)
    await master_trades(master_venue, "m-held", Side.BUY, "0.5")  # the master holds a long before anyone follows
    await wait_fills(bot, master.id, 1)
    user = bot.user("Nova")
    await user.send("/start")
    await user.expect("Welcome to copytrade")
    await user.press("Try with a paper account")
    await user.expect("Your paper account is ready with 10,000 USDT")
    await user.press("Paper Trend")
    offer = await user.expect("Copy Paper Trend on paper with the recommended settings?")
    await user.press("Follow with recommended settings", offer)
    following = await user.expect("✅ Following")
    # the same message offers the master's open position, at the size it would open (equity ratio:
    # 10,000 of the follower against the master's 100,000)
    assert "Paper Trend holds open positions now" in following.text
    assert "• buy 0.05 BTC/USDT:USDT" in following.text
    assert [t for t, _ in following.buttons] == ["📥 Copy the open positions now", "⚙️ All settings"]

    await master_trades(master_venue, "m-exit", Side.SELL, "0.25", reduce_only=True)  # an exit not held by the copy
    await master_trades(master_venue, "m-entry", Side.BUY, "0.1")  # an entry: copied
    copied = await user.expect("✅ Copied", within=15)
    assert "bought 0.01 BTC/USDT:USDT" in copied.text
    after = [m.text for m in await user.messages() if m.message_id > following.message_id]
    assert after[0].startswith("✅ Copied") and not any("Not copied" in text for text in after), after

    digest = await skip_digest(bot, user, "Not copied, nothing for you to do (1)")
    assert "Paper Trend: 1× the master reduced a position you do not hold a copy of (BTC/USDT:USDT)" in digest.text

    await user.press("Copy the open positions now", following)
    opened = await user.expect("📥 The master's open positions:", within=15)
    assert "1 order(s) sent to open the master's positions" in opened.text
    _, venue = await follower_venue(bot, user)
    assert [(p.symbol, p.quantity) for p in await venue.positions()] == [("BTC/USDT:USDT", Decimal("0.045"))]


async def test_the_follow_summary_is_at_most_8_lines_with_all_settings_one_tap_away(bot):
    await paper_master(bot)
    user = bot.user("Sum")
    await start(user)
    await user.press("Try with a paper account")
    await user.press("Paper Trend")
    offer = await user.expect("Copy Paper Trend on paper with the recommended settings?")
    summary = offer.text.split("\n\n")[1]
    assert len(summary.splitlines()) <= 8, summary
    assert "Price protection" not in offer.text and "Product type" not in offer.text  # Angel One only
    await user.press("Follow with recommended settings", offer)
    following = await user.expect("✅ Following")
    assert len(following.text.split("\n\n")[1].splitlines()) <= 8, following.text
    await user.press("All settings", following)
    first = await user.expect("Reverse: off")
    assert first.message_id > following.message_id  # "Following" and its offer stay as they were
    assert [t for t, _ in first.buttons] == [
        "📏 Sizing",
        "🔁 Reverse: off",
        "🎯 Take-profit",
        "🛑 Stop-loss",
        "⏸ Pause copying",
        "🚦 Risk",
        "📋 Orders",
        "🏦 Venue",
    ]
    screens = {}
    for name, needle in (("Risk", "Auto-sync"), ("Orders", "Block list"), ("Venue", "Margin mode")):
        await user.press(name, first)
        screens[name] = await user.expect(needle)
        assert screens[name].message_id == first.message_id  # the same message, edited
        assert len(screens[name].buttons) <= 8 and screens[name].buttons[-1][0] == "◀ Back"
        await user.press("Back", screens[name])
        await user.expect("Reverse: off")
    venue = screens["Venue"]
    assert "Price protection" not in venue.text and "Market closed" not in venue.text  # Angel One only
    assert [t for t, _ in venue.buttons] == ["⚙ Margin: default", "Large orders: split", "◀ Back"]
    assert len(following.text.split("\n\n")[1].splitlines()) <= 8


async def test_an_admin_needs_no_start_before_stats_and_a_slow_reply_shows_a_working_sign(bot):
    admin = bot.user("Boss", ADMIN)
    await admin.send("/stats")  # the first thing this admin ever sends
    await admin.expect("Copies, last 7 days")
    await admin.send("/pnl")
    await admin.expect("You have not followed anyone yet", within=60)  # the first /pnl loads the chart library
    actions = [p["action"] for m, p in bot.proxy.calls if m == "sendChatAction" and int(p["chat_id"]) == admin.id]
    assert actions == ["upload_photo"]


async def test_a_hidden_master_takes_no_new_follower_through_the_bot(bot):
    """Hidden after its offer was shown: the offer's button and the shared link both refuse it."""
    from core.model import MasterStatus

    master, _ = await paper_master(bot)
    user = bot.user("Hal")
    await user.send(f"/start follow-{master.id}")
    await user.press("Try with a paper account")
    offer = await user.expect("Copy Paper Trend on paper with the recommended settings?")
    await bot.app.services.set_master_status(master.id, MasterStatus.HIDDEN)
    await user.press("Follow with recommended settings", offer)
    await user.expect("no such master")
    owner = await bot.app.accounts.user_by_telegram_id(user.id)
    assert await bot.app.services.follows_of(owner.id) == []


async def test_the_follow_dialogue_answers_each_press_in_place(bot):
    """Each button of /follow edits the dialogue's message; only a typed value gets the next
    question as a new message (below the user's answer)."""
    await paper_master(bot)
    user = bot.user("Ina")
    await start(user)
    await connect_paper(user, "ina-paper-key")
    listing = await user.expect("Which master")  # what a new account is offered next
    before = len(await user.messages())
    await user.press("Paper Trend", listing)
    await user.press("Customize", await user.expect("Copy Paper Trend on "))
    await user.press("Cancel", await user.expect("How should your order size be computed"))
    cancelled = await user.expect("Cancelled; nothing was changed")
    assert cancelled.message_id == listing.message_id and len(await user.messages()) == before

    await user.send("/follow")
    listing = await user.expect("Which master")
    before = len(await user.messages())
    await user.press("Paper Trend", listing)
    offer = await user.expect("Copy Paper Trend on ")
    assert offer.message_id == listing.message_id
    await user.press("Customize")
    await user.expect("How should your order size be computed")
    await user.press("Coefficient")
    await user.expect("Send the value")
    await user.send("1")
    question = await user.expect("Take-profit")
    await user.press("No take-profit")
    await user.expect("Stop-loss")
    await user.press("No stop-loss")
    await user.expect("Please check and confirm")
    await user.press("Confirm")
    following = await user.expect("✅ Following")
    assert following.message_id == question.message_id
    assert len(await user.messages()) == before + 1  # it was 7 new messages, one per step
