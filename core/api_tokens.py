"""Per-user API tokens for the REST API: created and revoked in Telegram (``/apitoken``), stored
only as a SHA-256 hash (a token is 256 random bits: a hash without salt or stretching is enough,
and a stolen database yields no usable token), scoped ``read`` or ``trade``.

A token carries a checksum of its random part (``ctk_<43 random characters><6 of checksum>``), so that
a made-up or mistyped token is told apart without a database query (``well_formed``). The checksum is
not secret: it filters garbage, it proves nothing; a token is only ever proven by its stored hash.
Tokens issued before the checksum (``ctk_<43 random characters>``) keep working: a value of that
shape cannot be told apart without a lookup, so the HTTP server's guard limits the client address
before it is looked up (``copytrade/http/limits.py``).

The plain token is shown once, at creation, and never stored or logged."""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
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
_RANDOM_CHARACTERS = 43  # secrets.token_urlsafe(32): 256 bits
_CHECKSUM_CHARACTERS = 6
TOKEN_LENGTH = len(TOKEN_PREFIX) + _RANDOM_CHARACTERS + _CHECKSUM_CHARACTERS
#: a token made before tokens carried a checksum: the prefix and the random part only
LEGACY_TOKEN_LENGTH = len(TOKEN_PREFIX) + _RANDOM_CHARACTERS
_URLSAFE = re.compile(r"[A-Za-z0-9_-]+")
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


def _checksum(random_part: str) -> str:
    digest = hashlib.sha256(f"{TOKEN_PREFIX}checksum|{random_part}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:_CHECKSUM_CHARACTERS]


def new_token() -> str:
    random_part = secrets.token_urlsafe(32)
    assert len(random_part) == _RANDOM_CHARACTERS
    return TOKEN_PREFIX + random_part + _checksum(random_part)


def well_formed(token: str) -> bool:
    """The shape and checksum of a token, checked without storage: ``False`` is surely no token.
    ``True`` for a checksummed token whose checksum matches, and for any value of the old shape
    (no checksum to check: only the lookup tells)."""
    if len(token) not in (TOKEN_LENGTH, LEGACY_TOKEN_LENGTH) or not token.startswith(TOKEN_PREFIX):
        return False
    body = token[len(TOKEN_PREFIX) :]
    if not _URLSAFE.fullmatch(body):
        return False
    if len(token) == LEGACY_TOKEN_LENGTH:
        return True
    random_part, check = body[:_RANDOM_CHARACTERS], body[_RANDOM_CHARACTERS:]
    return hmac.compare_digest(check, _checksum(random_part))


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
        token = new_token()
        shown = token[: len(TOKEN_PREFIX) + SHOWN_CHARACTERS] + "…"
        view = await self._repository.create_api_token(user_id, token_hash(token), shown, parsed, label)
        return token, view

    async def of_user(self, user_id: int) -> Sequence[ApiTokenView]:
        return await self._repository.api_tokens_of(user_id)

    async def revoke(self, user_id: int, token_id: int) -> None:
        if not await self._repository.revoke_api_token(user_id, token_id):
            raise NotFound(f"no API token {token_id} of yours")

    async def authenticate(self, token: str) -> ApiTokenView | None:
        """The live token this value is; ``None`` for anything else (unknown, revoked, malformed:
        the last without a database query, unless it has the old shape without a checksum)."""
        if not well_formed(token):
            return None
        return await self._repository.api_token_by_hash(token_hash(token))
