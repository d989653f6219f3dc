"""Per-user API tokens for the REST API: created and revoked in Telegram (``/apitoken``), stored
only as a SHA-256 hash (a token is 256 random bits: a hash without salt or stretching is enough,
and a stolen database yields no usable token), scoped ``read`` or ``trade``.

The plain token is shown once, at creation, and never stored or logged."""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from core.errors import NotFound, UserError

#: recognisable in a leaked paste, and by the log redactor (``copytrade/logs.py``)
TOKEN_PREFIX = "ctk_"
#: characters of the token shown in listings, after the prefix (enough to tell tokens apart)
SHOWN_CHARACTERS = 6
MAX_TOKENS_PER_USER = 5
_LABEL = re.compile(r"^[\w .@#-]{1,32}$", re.UNICODE)


class TokenScope(enum.StrEnum):
    READ = "read"  # traders, history, positions
    TRADE = "trade"  # also follow, stop, update settings


@dataclass(frozen=True, slots=True)
class ApiTokenView:
    """A token as its owner and the API see it: never the token itself."""

    id: int
    user_id: int
    label: str
    scope: TokenScope
    shown: str  # the prefix and the first characters, e.g. ctk_Ab3xYz…
    created_at: datetime


class ApiTokenRepository(Protocol):
    async def create_api_token(
        self, user_id: int, token_hash: str, shown: str, scope: TokenScope, label: str
    ) -> ApiTokenView: ...

    async def api_tokens_of(self, user_id: int) -> Sequence[ApiTokenView]: ...

    async def api_token_by_hash(self, token_hash: str) -> ApiTokenView | None:
        """The live (not revoked) token with this hash."""
        ...

    async def revoke_api_token(self, user_id: int, token_id: int) -> bool:
        """Revoke one of the user's live tokens; ``False``: no such live token of theirs."""
        ...


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ApiTokens:
    def __init__(self, repository: ApiTokenRepository) -> None:
        self._repository = repository

    async def create(self, user_id: int, scope: str, label: str = "") -> tuple[str, ApiTokenView]:
        """A new token: the plain value (shown once) and its stored view."""
        try:
            parsed = TokenScope(scope.strip().lower())
        except ValueError:
            raise UserError("the scope must be read or trade") from None
        label = label.strip() or parsed.value
        if not _LABEL.match(label):
            raise UserError("the label must be 1 to 32 letters, digits, spaces or . @ # -")
        if len(await self._repository.api_tokens_of(user_id)) >= MAX_TOKENS_PER_USER:
            raise UserError(f"you already have {MAX_TOKENS_PER_USER} API tokens; revoke one first")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        shown = token[: len(TOKEN_PREFIX) + SHOWN_CHARACTERS] + "…"
        view = await self._repository.create_api_token(user_id, token_hash(token), shown, parsed, label)
        return token, view

    async def of_user(self, user_id: int) -> Sequence[ApiTokenView]:
        return await self._repository.api_tokens_of(user_id)

    async def revoke(self, user_id: int, token_id: int) -> None:
        if not await self._repository.revoke_api_token(user_id, token_id):
            raise NotFound(f"no API token {token_id} of yours")

    async def authenticate(self, token: str) -> ApiTokenView | None:
        """The live token this value is; ``None`` for anything else (unknown, revoked, malformed)."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            return None
        return await self._repository.api_token_by_hash(token_hash(token))
