"""/apitoken through the real bot and the Bot API emulator: a token is shown once, listed only
by its first characters, opens the API until it is revoked; bad input is one clear message."""

from __future__ import annotations

import re

import pytest

from core.api_tokens import MAX_TOKENS_PER_USER
from tests.fakes.telegram import BotHarness, Emulator, emulator_mark

pytestmark = [emulator_mark(), pytest.mark.e2e]


@pytest.fixture(scope="module")
def emulator():
    server = Emulator()
    server.start()
    yield server
    server.stop()


async def test_apitoken_creates_lists_and_revokes_a_token(emulator, tmp_path):
    async with BotHarness(emulator, tmp_path) as bot:
        user = bot.user("Tia")
        await user.send("/start")
        await user.expect("Welcome to copytrade")
        await user.send("/apitoken")
        assert "No API tokens yet." in (await user.expect("Your API tokens:")).text

        await user.send("/apitoken new trade laptop")
        created = (await user.expect("API token #")).text
        shown = re.search(r"ctk_[A-Za-z0-9_-]+", created)
        assert shown is not None
        token = shown.group(0)
        owner = await bot.app.services.user_by_telegram_id(user.id)
        view = await bot.app.api_tokens.authenticate(token)
        assert view is not None and view.user_id == owner.id and view.scope.value == "trade"

        await user.send("/apitoken")
        listing = (await user.expect("Your API tokens:")).text
        assert f"#{view.id} laptop — trade — {token[:10]}…" in listing and token not in listing

        await user.send(f"/apitoken revoke {view.id}")
        await user.expect(f"API token #{view.id} revoked")
        assert await bot.app.api_tokens.authenticate(token) is None


async def test_apitoken_refuses_bad_input_and_changes_nothing(emulator, tmp_path):
    async with BotHarness(emulator, tmp_path) as bot:
        user = bot.user("Uma")
        await user.send("/start")
        await user.expect("Welcome to copytrade")
        owner = await bot.app.services.user_by_telegram_id(user.id)
        await user.send("/apitoken new admin")
        await user.expect("the scope must be read or trade")
        await user.send("/apitoken revoke 77")
        await user.expect("no API token 77 of yours")
        await user.send("/apitoken frobnicate")
        await user.expect("Usage: /apitoken")
        assert list(await bot.app.api_tokens.of_user(owner.id)) == []
        for _ in range(MAX_TOKENS_PER_USER):
            await bot.app.api_tokens.create(owner.id, "read")
        await user.send("/apitoken new read")
        await user.expect(f"you already have {MAX_TOKENS_PER_USER} API tokens")
        assert len(await bot.app.api_tokens.of_user(owner.id)) == MAX_TOKENS_PER_USER
