"""Users, credentials, masters and follows: the rows the services read and change.

Queries that may find nothing return ``None``; callers say "not found" in words. Credential
rows leave this module as ``CredentialView`` (no ciphertext) except through ``sealed_credential``,
which only the venue registry and key rotation use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from core.errors import UserError
from core.model import FollowStatus, utcnow
from storage.db import Database
from storage.models import CopyOrder, Credential, Follow, FollowPosition, Master, MasterStatus, User


@dataclass(frozen=True, slots=True)
class CredentialView:
    """What may be shown about a credential: never the key or the secret."""

    id: str
    user_id: int
    venue: str
    label: str
    environment: str
    key_fingerprint: str
    last_validated_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SealedCredential:
    id: str
    user_id: int
    venue: str
    environment: str
    ciphertext: bytes


@dataclass(frozen=True, slots=True)
class MasterView:
    id: int
    name: str
    description: str
    venue: str
    status: MasterStatus
    credential_id: str | None
    followers: int


def _view(row: Credential) -> CredentialView:
    return CredentialView(
        row.id,
        row.user_id,
        row.venue,
        row.label,
        row.environment,
        row.key_fingerprint,
        row.last_validated_at,
        row.created_at,
    )


class AccountStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- users --------------------------------------------------------------------------------

    async def ensure_user(self, telegram_id: int | None, display_name: str = "") -> User:
        async with self.db.session() as session:
            if telegram_id is not None:
                existing = (
                    (await session.execute(select(User).where(User.telegram_id == telegram_id))).scalars().first()
                )
                if existing is not None:
                    if display_name and existing.display_name != display_name:
                        existing.display_name = display_name[:128]
                        session.add(existing)
                    return existing
            user = User(telegram_id=telegram_id, display_name=display_name[:128])
            session.add(user)
            await session.flush()
            return user

    async def user(self, user_id: int) -> User | None:
        async with self.db.session() as session:
            return await session.get(User, user_id)

    async def user_by_telegram_id(self, telegram_id: int) -> User | None:
        async with self.db.session() as session:
            return (await session.execute(select(User).where(User.telegram_id == telegram_id))).scalars().first()

    # -- credentials --------------------------------------------------------------------------

    async def add_credential(self, row: Credential) -> CredentialView:
        try:
            async with self.db.session() as session:
                session.add(row)
                await session.flush()
                return _view(row)
        except IntegrityError:
            raise UserError(f"you already have an account labelled {row.label!r}; choose another label") from None

    async def credentials(self, user_id: int) -> list[CredentialView]:
        async with self.db.session() as session:
            rows = await session.execute(
                select(Credential).where(Credential.user_id == user_id).order_by(Credential.created_at)
            )
            return [_view(r) for r in rows.scalars()]

    async def credential(self, credential_id: str) -> CredentialView | None:
        async with self.db.session() as session:
            row = await session.get(Credential, credential_id)
            return _view(row) if row else None

    async def sealed_credential(self, credential_id: str) -> SealedCredential | None:
        async with self.db.session() as session:
            row = await session.get(Credential, credential_id)
            return SealedCredential(row.id, row.user_id, row.venue, row.environment, row.ciphertext) if row else None

    async def sealed_credentials(self, credential_ids: Sequence[str]) -> list[SealedCredential]:
        """Many at once (bounded IN lists); ids that no longer exist are left out."""
        found: list[SealedCredential] = []
        ids = list(credential_ids)
        columns = (Credential.id, Credential.user_id, Credential.venue, Credential.environment, Credential.ciphertext)
        async with self.db.session() as session:
            for start in range(0, len(ids), 500):
                rows = await session.execute(select(*columns).where(Credential.id.in_(ids[start : start + 500])))
                found += [SealedCredential(*row) for row in rows]
        return found

    async def sealed_credential_ids(self) -> list[str]:
        async with self.db.session() as session:
            return list((await session.execute(select(Credential.id).order_by(Credential.id))).scalars())

    async def replace_ciphertext(self, credential_id: str, old: bytes, new: bytes) -> bool:
        """Compare-and-swap, so a rotation never overwrites a blob changed meanwhile."""
        async with self.db.session() as session:
            result = await session.execute(
                update(Credential)
                .where(Credential.id == credential_id, Credential.ciphertext == old)
                .values(ciphertext=new)
            )
            return bool(result.rowcount)

    async def mark_validated(self, credential_id: str) -> None:
        async with self.db.session() as session:
            await session.execute(
                update(Credential).where(Credential.id == credential_id).values(last_validated_at=utcnow())
            )

    async def delete_credential(self, credential_id: str) -> None:
        async with self.db.session() as session:
            row = await session.get(Credential, credential_id)
            if row is not None:
                await session.delete(row)

    # -- masters ------------------------------------------------------------------------------

    async def add_master(self, master: Master) -> MasterView:
        try:
            async with self.db.session() as session:
                session.add(master)
                await session.flush()
                assert master.id is not None
                return MasterView(
                    master.id, master.name, master.description, master.venue, master.status, master.credential_id, 0
                )
        except IntegrityError:
            raise UserError(f"a master named {master.name!r} already exists") from None

    async def masters(self, *, include_hidden: bool = False) -> list[MasterView]:
        statuses = [MasterStatus.ACTIVE, MasterStatus.HIDDEN] if include_hidden else [MasterStatus.ACTIVE]
        async with self.db.session() as session:
            followers = (
                select(Follow.master_id, func.count(Follow.id).label("n"))
                .where(Follow.status == FollowStatus.ACTIVE)
                .group_by(Follow.master_id)
                .subquery()
            )
            rows = await session.execute(
                select(Master, func.coalesce(followers.c.n, 0))
                .outerjoin(followers, followers.c.master_id == Master.id)
                .where(Master.status.in_(statuses))
                .order_by(Master.id)
            )
            return [
                MasterView(m.id, m.name, m.description, m.venue, m.status, m.credential_id, n) for m, n in rows.all()
            ]

    async def master(self, master_id: int) -> Master | None:
        async with self.db.session() as session:
            return await session.get(Master, master_id)

    async def set_master_status(self, master_id: int, status: MasterStatus) -> bool:
        async with self.db.session() as session:
            result = await session.execute(update(Master).where(Master.id == master_id).values(status=status))
            return bool(result.rowcount)

    # -- follows ------------------------------------------------------------------------------

    async def add_follow(self, follow: Follow) -> Follow:
        try:
            async with self.db.session() as session:
                session.add(follow)
                await session.flush()
                return follow
        except IntegrityError:
            raise UserError("already following this master with this account (error 80005)") from None

    async def follow(self, follow_id: int) -> Follow | None:
        async with self.db.session() as session:
            return await session.get(Follow, follow_id)

    async def follow_for(self, master_id: int, credential_id: str) -> Follow | None:
        async with self.db.session() as session:
            rows = await session.execute(
                select(Follow).where(Follow.master_id == master_id, Follow.credential_id == credential_id)
            )
            return rows.scalars().first()

    async def follows_of_user(self, user_id: int, *, include_stopped: bool = False) -> list[Follow]:
        async with self.db.session() as session:
            query = select(Follow).where(Follow.user_id == user_id)
            if not include_stopped:
                query = query.where(Follow.status != FollowStatus.STOPPED)
            return list((await session.execute(query.order_by(Follow.id))).scalars())

    async def masters_using(self, credential_id: str) -> list[Master]:
        async with self.db.session() as session:
            return list((await session.execute(select(Master).where(Master.credential_id == credential_id))).scalars())

    async def follows_using(self, credential_id: str) -> list[Follow]:
        async with self.db.session() as session:
            rows = await session.execute(
                select(Follow).where(Follow.credential_id == credential_id, Follow.status != FollowStatus.STOPPED)
            )
            return list(rows.scalars())

    async def update_follow(self, follow_id: int, changes: dict[str, Any]) -> Follow | None:
        async with self.db.session() as session:
            row = await session.get(Follow, follow_id)
            if row is None:
                return None
            for name, value in changes.items():
                setattr(row, name, value)
            row.updated_at = utcnow()
            session.add(row)
            await session.flush()
            return row

    async def set_follow_status(self, follow_ids: Sequence[int], status: FollowStatus, reason: str | None) -> int:
        if not follow_ids:
            return 0
        async with self.db.session() as session:
            result = await session.execute(
                update(Follow)
                .where(Follow.id.in_(follow_ids))
                .values(status=status, status_reason=reason, updated_at=utcnow())
            )
            return int(result.rowcount or 0)

    async def pause_all_active(self, reason: str) -> tuple[int, set[int]]:
        """Pause every active follow; returns how many, and the masters they copy."""
        async with self.db.session() as session:
            rows = await session.execute(
                update(Follow)
                .where(Follow.status == FollowStatus.ACTIVE)
                .values(status=FollowStatus.PAUSED, status_reason=reason[:300], updated_at=utcnow())
                .returning(Follow.master_id)
            )
            master_ids = list(rows.scalars())
            return len(master_ids), set(master_ids)

    async def clear_positions(self, follow_id: int, *, simulated: bool | None = None) -> None:
        """Forget the follow's copied positions: the simulated ones, the real ones, or (None) both."""
        async with self.db.session() as session:
            query = select(FollowPosition).where(FollowPosition.follow_id == follow_id)
            if simulated is not None:
                query = query.where(FollowPosition.simulated == simulated)
            rows = await session.execute(query)
            for row in rows.scalars():
                await session.delete(row)

    async def copy_history(self, user_id: int, *, limit: int = 20, offset: int = 0) -> list[CopyOrder]:
        async with self.db.session() as session:
            rows = await session.execute(
                select(CopyOrder)
                .where(CopyOrder.user_id == user_id)
                .order_by(CopyOrder.created_at.desc())
                .limit(limit)
                .offset(offset)
            )
            return list(rows.scalars())

    # -- added for the Telegram front end (read models, broadcasts, closing positions) ---------

    async def set_blocked(self, user_id: int, blocked: bool) -> None:
        """The user blocked (or unblocked) the bot: broadcasts skip blocked users."""
        async with self.db.session() as session:
            await session.execute(update(User).where(User.id == user_id).values(blocked_bot=blocked))

    async def broadcast_recipients(self, master_id: int | None = None) -> list[tuple[int, int]]:
        """``(user_id, telegram_id)`` of every reachable user, or of the followers of one master
        (active or paused follows), ordered by user id."""
        async with self.db.session() as session:
            query = select(User.id, User.telegram_id).where(User.telegram_id.is_not(None), User.blocked_bot == False)  # noqa: E712
            if master_id is not None:
                followers = select(Follow.user_id).where(
                    Follow.master_id == master_id, Follow.status != FollowStatus.STOPPED
                )
                query = query.where(User.id.in_(followers))
            rows = await session.execute(query.order_by(User.id))
            return [(int(user_id), int(telegram_id)) for user_id, telegram_id in rows.all()]

    async def follow_positions_of(self, follow_id: int) -> list[FollowPosition]:
        """The copied positions of one follow that are still open."""
        async with self.db.session() as session:
            rows = await session.execute(
                select(FollowPosition)
                .where(
                    FollowPosition.follow_id == follow_id,
                    FollowPosition.simulated == False,
                    FollowPosition.quantity != Decimal(0),
                )  # noqa: E712
                .order_by(FollowPosition.symbol)
            )
            return list(rows.scalars())

    async def reduce_follow_position(
        self, follow_id: int, symbol: str, signed_quantity: Decimal, price: Decimal | None
    ) -> None:
        """Apply a closing order placed outside the engine (``/stop`` → close positions)."""
        async with self.db.session() as session:
            row = await session.get(FollowPosition, (follow_id, symbol, False))
            if row is None:
                return
            before = row.quantity
            row.quantity = before + signed_quantity
            if price is not None and row.entry_price is not None and before != 0:
                closed = min(abs(signed_quantity), abs(before))
                row.realized_pnl += (price - row.entry_price) * closed * (1 if before > 0 else -1)
            if row.quantity == 0:
                row.entry_price = None
            row.updated_at = utcnow()
            session.add(row)

    async def set_follow_reason(self, follow_id: int, reason: str | None) -> None:
        async with self.db.session() as session:
            await session.execute(
                update(Follow).where(Follow.id == follow_id).values(status_reason=reason and reason[:300])
            )

    async def copy_counts_since(self, user_id: int | None, since: datetime) -> dict[str, int]:
        """Copy orders created since ``since`` by status value (every user when ``user_id`` is None)."""
        async with self.db.session() as session:
            query = select(CopyOrder.status, func.count()).where(CopyOrder.created_at >= since)
            if user_id is not None:
                query = query.where(CopyOrder.user_id == user_id)
            rows = await session.execute(query.group_by(CopyOrder.status))
            return {getattr(status, "value", str(status)): int(n) for status, n in rows.all()}

    async def copy_history_count(self, user_id: int) -> int:
        async with self.db.session() as session:
            return int(
                (
                    await session.execute(
                        select(func.count()).select_from(CopyOrder).where(CopyOrder.user_id == user_id)
                    )
                ).scalar_one()
            )

    async def counts(self) -> dict[str, int]:
        """Totals for the admin's /stats."""
        async with self.db.session() as session:
            out = {
                "users": (
                    await session.execute(select(func.count()).select_from(User).where(User.telegram_id.is_not(None)))
                ).scalar_one(),
                "blocked": (
                    await session.execute(select(func.count()).select_from(User).where(User.blocked_bot == True))
                ).scalar_one(),  # noqa: E712
                "credentials": (await session.execute(select(func.count()).select_from(Credential))).scalar_one(),
            }
            for status, n in (await session.execute(select(Master.status, func.count()).group_by(Master.status))).all():
                out[f"masters_{getattr(status, 'value', status)}"] = n
            for status, n in (await session.execute(select(Follow.status, func.count()).group_by(Follow.status))).all():
                out[f"follows_{getattr(status, 'value', status)}"] = n
            return {k: int(v) for k, v in out.items()}
