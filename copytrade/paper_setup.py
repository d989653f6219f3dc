"""Paper accounts for the demo and the headless paper run, created through the same services
a Telegram user goes through (keys sealed in the vault, follows validated)."""

from __future__ import annotations

import re
from typing import Any

from core.records import CredentialView, FollowRecord, MasterView
from core.services import Services

PAPER_MASTER_NAME = "Paper Trend"

#: the followers `copytrade run` starts with in paper mode: (name, balance, settings)
DEFAULT_FOLLOWERS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("Alice (x1)", "20000", {"sizing_value": "1"}),
    ("Bob (equity ratio)", "5000", {"sizing_mode": "equity_ratio", "sizing_value": "1"}),
    (
        "Carol (BTC only, 500 USDT)",
        "10000",
        {"sizing_mode": "fixed_notional", "sizing_value": "500", "allowed_symbols": "BTC"},
    ),
)


def _paper_key(role: str, name: str) -> str:
    return f"paper-{role}-" + re.sub(r"\W+", "-", name).strip("-").lower()


async def create_paper_master(services: Services, name: str, balance: str) -> tuple[MasterView, CredentialView]:
    owner = await services.register_user(None, f"{name} (master)")
    assert owner.id is not None
    key = await services.connect_account(
        owner.id, "paper", "master", {"api_key": _paper_key("master", name), "balance": balance}, environment="paper"
    )
    master = await services.add_master(
        name, "paper", owner_id=owner.id, credential_id=key.id, description="simulated master trader"
    )
    return master, key


async def add_paper_follower(
    services: Services, master_id: int, name: str, balance: str, settings: dict[str, Any]
) -> tuple[FollowRecord, CredentialView]:
    user = await services.register_user(None, name)
    assert user.id is not None
    key = await services.connect_account(
        user.id, "paper", "main", {"api_key": _paper_key("follower", name), "balance": balance}, environment="paper"
    )
    follow = await services.follow(user.id, master_id, key.id, {"sizing_mode": "coefficient", **settings})
    return follow, key


async def ensure_paper_setup(app, *, followers: bool = True) -> tuple[int, str]:
    """The paper master, its id and key id; created on first run, with the default followers
    when ``followers`` (the headless run; the bot's users follow it themselves)."""
    for master in await app.services.masters(include_hidden=True):
        if master.name == PAPER_MASTER_NAME and master.credential_id:
            return master.id, master.credential_id
    master, key = await create_paper_master(app.services, PAPER_MASTER_NAME, "100000")
    for name, balance, settings in DEFAULT_FOLLOWERS if followers else ():
        await add_paper_follower(app.services, master.id, name, balance, settings)
    return master.id, key.id
