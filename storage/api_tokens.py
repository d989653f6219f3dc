"""API tokens (``core.api_tokens.ApiTokenRepository``): hashes only."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlmodel import col

from core.api_tokens import ApiTokenView, TokenScope
from core.model import utcnow
from storage.accounts import rowcount
from storage.db import Database
from storage.models import ApiToken


def _view(row: ApiToken) -> ApiTokenView:
    assert row.id is not None
    return ApiTokenView(row.id, row.user_id, row.label, row.scope, row.shown, row.created_at)


class ApiTokenStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_api_token(
        self, user_id: int, token_hash: str, shown: str, scope: TokenScope, label: str
    ) -> ApiTokenView:
        async with self.db.session() as session:
            row = ApiToken(user_id=user_id, token_hash=token_hash, shown=shown, scope=scope, label=label)
            session.add(row)
            await session.flush()
            return _view(row)

    async def api_tokens_of(self, user_id: int) -> Sequence[ApiTokenView]:
        async with self.db.session() as session:
            rows = await session.execute(
                select(ApiToken)
                .where(col(ApiToken.user_id) == user_id, col(ApiToken.revoked_at).is_(None))
                .order_by(col(ApiToken.id))
            )
            return [_view(row) for row in rows.scalars()]

    async def api_token_by_hash(self, token_hash: str) -> ApiTokenView | None:
        async with self.db.session() as session:
            rows = await session.execute(
                select(ApiToken).where(col(ApiToken.token_hash) == token_hash, col(ApiToken.revoked_at).is_(None))
            )
            row = rows.scalars().first()
            return _view(row) if row is not None else None

    async def revoke_api_token(self, user_id: int, token_id: int) -> bool:
        async with self.db.session() as session:
            result = await session.execute(
                update(ApiToken)
                .where(
                    col(ApiToken.id) == token_id,
                    col(ApiToken.user_id) == user_id,
                    col(ApiToken.revoked_at).is_(None),
                )
                .values(revoked_at=utcnow())
            )
            return rowcount(result) == 1
