"""Done means (issue 17): ``copytrade run`` as its own process, at LOG_LEVEL=DEBUG, in webhook mode
against the Bot API emulator — every endpoint of the running service is hit (webhook, health,
readiness, metrics, every API route with the right user's token and the wrong user's), then the
process stops on SIGTERM and its whole log is searched for every secret it knew or was sent."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import sys

import aiohttp
import pytest

from bot.app import webhook_secret
from copytrade.app import build_app
from copytrade.config import load_settings
from copytrade.http.api import PREFIX
from copytrade.paper_setup import create_paper_master
from core.vault import generate_key
from tests.fakes.telegram import BotApiProxy, ChatUser, Emulator, emulator_mark, free_port, fresh_id

pytestmark = [emulator_mark(), pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def emulator():
    server = Emulator()
    server.start()
    yield server
    server.stop()


async def _prepare(env: dict[str, str], tmp_path, ann_id: int, bob_id: int):
    """The database the process will run on: a paper master, Ann following it with a paper key,
    Bob with a key of his own, and an API token each (made as /apitoken makes them)."""
    settings = load_settings(
        telegram_bot_token=env["TELEGRAM_BOT_TOKEN"],
        database_url=env["DATABASE_URL"],
        secret_key=env["COPYTRADE_SECRET_KEY"],
        mode="paper",
        data_dir=tmp_path,
    )
    app = await build_app(settings)
    try:
        master, _ = await create_paper_master(app.services, "Ace", "100000")
        ann = (await app.services.register_user(ann_id, "Ann")).id
        bob = (await app.services.register_user(bob_id, "Bob")).id
        assert ann is not None and bob is not None
        keys = {}
        for user in (ann, bob):
            keys[user] = "PK" + secrets.token_hex(20)
            await app.services.connect_account(
                user, "paper", "main", {"api_key": keys[user], "balance": "10000"}, environment="paper"
            )
        [ann_account] = await app.services.accounts_of(ann)
        follow = await app.services.follow(ann, master.id, ann_account.id, {"sizing_value": "1"})
        ann_token, _ = await app.api_tokens.create(ann, "trade")
        bob_token, _ = await app.api_tokens.create(bob, "trade")
    finally:
        await app.close()
    return master.id, follow.id, list(keys.values()), ann_token, bob_token


async def _json(session: aiohttp.ClientSession, method: str, url: str, **kwargs) -> tuple[int, dict]:
    async with session.request(method, url, **kwargs) as response:
        return response.status, await response.json()


async def test_the_running_service_serves_every_endpoint_and_logs_no_secret_at_debug(emulator, tmp_path):
    proxy = BotApiProxy(emulator.url)
    await proxy.start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    bot_token = f"{fresh_id()}:AAE{secrets.token_urlsafe(24)}"
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("WEBHOOK_URL", "ADMIN_IDS")},
        "TELEGRAM_BOT_TOKEN": bot_token,
        "TELEGRAM_API_BASE_URL": proxy.base_url,
        "WEBHOOK_URL": f"{base}/telegram/hook",
        "PORT": str(port),
        "COPYTRADE_MODE": "paper",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'service.db'}",
        "COPYTRADE_SECRET_KEY": generate_key(),
        "COPYTRADE_DATA_DIR": str(tmp_path),
        "LOG_LEVEL": "DEBUG",
    }
    ann_id, bob_id = fresh_id(), fresh_id()
    master_id, follow_id, paper_keys, ann_token, bob_token = await _prepare(env, tmp_path, ann_id, bob_id)
    log_path = tmp_path / "service.log"
    log_file = await asyncio.to_thread(open, log_path, "wb")  # handed to the child, closed below
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "copytrade", "run", env=env, cwd=tmp_path, stdout=log_file, stderr=log_file
        )
    finally:
        log_file.close()
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(600):  # until it listens and has told Telegram its webhook
                if process.returncode is not None:
                    raise AssertionError(log_path.read_text())
                try:
                    async with session.get(f"{base}/healthz") as response:
                        if response.status == 200 and "setWebhook" in proxy.methods():
                            break
                except aiohttp.ClientConnectorError:
                    pass
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the service never listened")
            [webhook] = [params for method, params in proxy.calls if method == "setWebhook"]
            assert webhook["url"] == f"{base}/telegram/hook"

            # health, readiness (the paper master's stream connects), metrics
            for _ in range(200):
                status, body = await _json(session, "GET", f"{base}/readyz")
                if status == 200:
                    break
                await asyncio.sleep(0.05)
            assert (status, body) == (200, {"status": "ready"})
            for _ in range(200):  # ready may come a moment before every stream counts as connected
                async with session.get(f"{base}/metrics") as response:
                    metrics = await response.text()
                values = dict(line.split() for line in metrics.splitlines() if line.startswith("copytrade_listeners"))
                if values.get("copytrade_listeners_connected") == values.get("copytrade_listeners"):
                    break
                await asyncio.sleep(0.05)
            # every paper master's stream watched and connected
            assert response.status == 200 and float(values["copytrade_listeners"]) >= 1
            assert values["copytrade_listeners_connected"] == values["copytrade_listeners"], values

            # the webhook: refused without Telegram's secret, served with it (the bot answers Ann)
            update = {
                "update_id": 1,
                "message": {
                    "message_id": 1,
                    "date": 1,
                    "text": "/start",
                    "chat": {"id": ann_id, "type": "private"},
                    "from": {"id": ann_id, "is_bot": False, "first_name": "Ann"},
                    "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
                },
            }
            async with session.post(f"{base}/telegram/hook", json=update) as response:
                assert response.status == 403
            secret = {"X-Telegram-Bot-Api-Secret-Token": webhook_secret(bot_token)}
            async with session.post(f"{base}/telegram/hook", json=update, headers=secret) as response:
                assert response.status == 200
            await ChatUser(session, emulator.url, bot_token, ann_id, "Ann").expect("Welcome to copytrade", within=20)

            # every API route: Ann's token reaches her follow; Bob's never does
            ann = {"Authorization": f"Bearer {ann_token}"}
            bob = {"Authorization": f"Bearer {bob_token}"}
            api = f"{base}{PREFIX}"
            fid = str(follow_id)
            status, body = await _json(session, "GET", f"{api}/traders", headers=ann)
            assert status == 200 and body["data"]["list"][0]["traderId"] == str(master_id)
            status, body = await _json(session, "GET", f"{api}/trader/detail?traderId={master_id}", headers=bob)
            assert status == 200 and body["data"]["nickName"] == "Ace"
            # a token in the query string as well: it must not reach the log either
            status, body = await _json(session, "GET", f"{api}/history?followId={fid}&token={ann_token}", headers=ann)
            assert status == 200 and body["data"]["totalNum"] == 0
            status, body = await _json(session, "GET", f"{api}/positions?followId={fid}", headers=ann)
            assert (status, body["data"]) == (200, [])
            status, body = await _json(session, "GET", f"{api}/follows", headers=ann)
            assert [f["followId"] for f in body["data"]] == [fid]
            for method, path, payload in (
                ("GET", f"/history?followId={fid}", None),
                ("GET", f"/positions?followId={fid}", None),
                ("POST", "/updateSettings", {"followId": fid, "leverage": "4"}),
                ("POST", "/stop", {"followId": fid}),
            ):
                status, body = await _json(session, method, api + path, headers=bob, json=payload)
                assert (status, body["code"]) == (404, "40004"), (path, body)
            status, body = await _json(
                session, "POST", f"{api}/updateSettings", headers=ann, json={"followId": fid, "leverage": "4"}
            )
            assert (status, body["data"]["leverage"]) == (200, "4")
            status, body = await _json(session, "POST", f"{api}/follow", headers=ann, json={"traderId": str(master_id)})
            assert (status, body["code"]) == (409, "80005")  # already following
            status, body = await _json(session, "POST", f"{api}/stop", headers=ann, json={"followId": fid})
            assert (status, body["data"]["status"]) == (200, "stopped")
            status, body = await _json(session, "POST", f"{api}/follow", headers=bob, json={"traderId": str(master_id)})
            assert (status, body["data"]["status"]) == (200, "active")

        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
        assert process.returncode == 0, log_path.read_text()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await proxy.stop()

    log = log_path.read_text()
    assert " DEBUG " in log and f"GET {PREFIX}/history 200" in log  # a DEBUG run, access logged
    assert "Traceback" not in log
    known = {
        "bot token": bot_token,
        "bot token's secret part": bot_token.split(":")[1],
        "COPYTRADE_SECRET_KEY": env["COPYTRADE_SECRET_KEY"],
        "webhook secret": webhook_secret(bot_token),
        "Ann's API token": ann_token,
        "Bob's API token": bob_token,
        **{f"paper key {n}": key for n, key in enumerate(paper_keys)},
    }
    leaked = {name for name, value in known.items() if value in log}
    assert not leaked, json.dumps(sorted(leaked))
