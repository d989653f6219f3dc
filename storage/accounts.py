"""Users, credentials, masters and follows: the rows the services read and change.

Queries that may find nothing return ``None``; callers say "not found" in words. Credential
rows leave this module as ``CredentialView`` (no ciphertext) except through ``sealed_credential``,
which only the venue registry and key rotation use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CursorResult, Result, false, func, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from core.errors import UserError
from core.follow_settings import SETTING_FIELDS
from core.model import FollowSettings, FollowStatus, MasterStatus, utcnow
from core.records import CredentialView, MasterView
from storage.db import Database
from storage.journal import follow_settings
from storage.models import CopyOrder, Credential, Follow, FollowPosition, Master, User


@dataclass(frozen=True, slots=True)
class SealedCredential:
    id: str
    user_id: int
    venue: str
    environment: str
    ciphertext: bytes


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE matched (``session.execute`` types its result generally)."""
    return result.rowcount if isinstance(result, CursorResult) else 0


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
                    (await session.execute(select(User).where(col(User.telegram_id) == telegram_id))).scalars().first()
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
            return (await session.execute(select(User).where(col(User.telegram_id) == telegram_id))).scalars().first()

    # -- credentials --------------------------------------------------------------------------

    async def add_credential(self, row: Credential) -> CredentialView:
        try:
            async with self.db.session() as session:
                session.add(row)
                await session.flush()
                return _view(row)
        except IntegrityError:
            raise UserError(f"you already have an account labelled {row.label!r}; choose another label") from None

    async def create_credential(
        self,
        *,
        credential_id: str,
        user_id: int,
        venue: str,
        label: str,
        environment: str,
        ciphertext: bytes,
        key_fingerprint: str,
    ) -> CredentialView:
        return await self.add_credential(
            Credential(
                id=credential_id,
                user_id=user_id,
                venue=venue,
                label=label,
                environment=environment,
                ciphertext=ciphertext,
                key_fingerprint=key_fingerprint,
            )
        )

    async def credentials(self, user_id: int) -> list[CredentialView]:
        async with self.db.session() as session:
            rows = await session.execute(
                select(Credential).where(col(Credential.user_id) == user_id).order_by(col(Credential.created_at))
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
        columns = (
            col(Credential.id),
            col(Credential.user_id),
            col(Credential.venue),
            col(Credential.environment),
            col(Credential.ciphertext),
        )
        async with self.db.session() as session:
            for start in range(0, len(ids), 500):
                rows = await session.execute(select(*columns).where(col(Credential.id).in_(ids[start : start + 500])))
                found += [SealedCredential(*row) for row in rows]
        return found

    async def sealed_credential_ids(self) -> list[str]:
        async with self.db.session() as session:
            return list((await session.execute(select(col(Credential.id)).order_by(col(Credential.id)))).scalars())

    async def replace_ciphertext(self, credential_id: str, old: bytes, new: bytes) -> bool:
        """Compare-and-swap, so a rotation never overwrites a blob changed meanwhile."""
        async with self.db.session() as session:
            result = await session.execute(
                update(Credential)
                .where(col(Credential.id) == credential_id, col(Credential.ciphertext) == old)
                .values(ciphertext=new)
            )
            return bool(rowcount(result))

    async def mark_validated(self, credential_id: str) -> None:
        async with self.db.session() as session:
            await session.execute(
                update(Credential).where(col(Credential.id) == credential_id).values(last_validated_at=utcnow())
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

    async def create_master(self, *, name: str, venue: str, credential_id: str | None, description: str) -> MasterView:
        return await self.add_master(
            Master(name=name, venue=venue, credential_id=credential_id, description=description)
        )

    async def masters(self, *, include_hidden: bool = False) -> list[MasterView]:
        statuses = [MasterStatus.ACTIVE, MasterStatus.HIDDEN] if include_hidden else [MasterStatus.ACTIVE]
        async with self.db.session() as session:
            followers = (
                select(col(Follow.master_id), func.count(col(Follow.id)).label("n"))
                .where(col(Follow.status) == FollowStatus.ACTIVE)
                .group_by(col(Follow.master_id))
                .subquery()
            )
            rows = await session.execute(
                select(Master, func.coalesce(followers.c.n, 0))
                .outerjoin(followers, followers.c.master_id == col(Master.id))
                .where(col(Master.status).in_(statuses))
                .order_by(col(Master.id))
            )
            return [
                MasterView(m.id, m.name, m.description, m.venue, m.status, m.credential_id, n) for m, n in rows.all()
            ]

    async def master(self, master_id: int) -> Master | None:
        async with self.db.session() as session:
            return await session.get(Master, master_id)

    async def set_master_status(self, master_id: int, status: MasterStatus) -> bool:
        async with self.db.session() as session:
            result = await session.execute(update(Master).where(col(Master.id) == master_id).values(status=status))
            return bool(rowcount(result))

    # -- follows ------------------------------------------------------------------------------

    async def add_follow(self, follow: Follow) -> Follow:
        try:
            async with self.db.session() as session:
                session.add(follow)
                await session.flush()
                return follow
        except IntegrityError:
            raise UserError("already following this master with this account (error 80005)") from None

    def draft_follow(self, user_id: int, master_id: int, credential_id: str, settings: Mapping[str, Any]) -> Follow:
        """A follow with ``settings`` over the defaults, not stored (a preview, or a row to add)."""
        return Follow(user_id=user_id, master_id=master_id, credential_id=credential_id, **settings)

    async def create_follow(
        self, user_id: int, master_id: int, credential_id: str, settings: Mapping[str, Any]
    ) -> Follow:
        return await self.add_follow(self.draft_follow(user_id, master_id, credential_id, settings))

    async def restart_follow(self, follow_id: int, settings: Mapping[str, Any]) -> Follow | None:
        """A stopped follow copies again: every setting back to its default, then ``settings``."""
        async with self.db.session() as session:
            row = await session.get(Follow, follow_id)
            if row is None:
                return None
            fresh = Follow(user_id=row.user_id, master_id=row.master_id, credential_id=row.credential_id, **settings)
            for name in SETTING_FIELDS:
                setattr(row, name, getattr(fresh, name))
            row.status = FollowStatus.ACTIVE
            row.status_reason = None
            row.updated_at = utcnow()
            session.add(row)
            await session.flush()
            return row

    async def follow_settings(self, follow_id: int) -> FollowSettings | None:
        """What the engine and the risk controls work from (the follow must have a key)."""
        row = await self.follow(follow_id)
        return follow_settings(row) if row is not None else None

    async def follow(self, follow_id: int) -> Follow | None:
        async with self.db.session() as session:
            return await session.get(Follow, follow_id)

    async def follow_for(self, master_id: int, credential_id: str) -> Follow | None:
        async with self.db.session() as session:
            rows = await session.execute(
                select(Follow).where(col(Follow.master_id) == master_id, col(Follow.credential_id) == credential_id)
            )
            return rows.scalars().first()

    async def follows_of_user(self, user_id: int, *, include_stopped: bool = False) -> list[Follow]:
        async with self.db.session() as session:
            query = select(Follow).where(col(Follow.user_id) == user_id)
            if not include_stopped:
                query = query.where(col(Follow.status) != FollowStatus.STOPPED)
            return list((await session.execute(query.order_by(col(Follow.id)))).scalars())

    async def masters_using(self, credential_id: str) -> list[Master]:
        async with self.db.session() as session:
            return list(
                (await session.execute(select(Master).where(col(Master.credential_id) == credential_id))).scalars()
            )

    async def follows_using(self, credential_id: str) -> list[Follow]:
        async with self.db.session() as session:
            rows = await session.execute(
                select(Follow).where(
                    col(Follow.credential_id) == credential_id, col(Follow.status) != FollowStatus.STOPPED
                )
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
                .where(col(Follow.id).in_(follow_ids))
                .values(status=status, status_reason=reason, updated_at=utcnow())
            )
            return rowcount(result)

    async def pause_all_active(self, reason: str) -> tuple[int, set[int]]:
        """Pause every active follow; returns how many, and the masters they copy."""
        async with self.db.session() as session:
            rows = await session.execute(
                update(Follow)
                .where(col(Follow.status) == FollowStatus.ACTIVE)
                .values(status=FollowStatus.PAUSED, status_reason=reason[:300], updated_at=utcnow())
                .returning(col(Follow.master_id))
            )
            master_ids = list(rows.scalars())
            return len(master_ids), set(master_ids)

    async def clear_positions(self, follow_id: int, *, simulated: bool | None = None) -> None:
        """Forget the follow's copied positions: the simulated ones, the real ones, or (None) both."""
        async with self.db.session() as session:
            query = select(FollowPosition).where(col(FollowPosition.follow_id) == follow_id)
            if simulated is not None:
                query = query.where(col(FollowPosition.simulated) == simulated)
            rows = await session.execute(query)
            for row in rows.scalars():
                await session.delete(row)

    @staticmethod
    def _history_filter(
        user_id: int, follow_id: int | None, since: datetime | None, until: datetime | None
    ) -> list[Any]:
        where: list[Any] = [col(CopyOrder.user_id) == user_id]
        if follow_id is not None:
            where.append(col(CopyOrder.follow_id) == follow_id)
        if since is not None:
            where.append(col(CopyOrder.created_at) >= since)
        if until is not None:
            where.append(col(CopyOrder.created_at) < until)
        return where

    async def copy_history(
        self,
        user_id: int,
        *,
        limit: int = 20,
        offset: int = 0,
        follow_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[CopyOrder]:
        async with self.db.session() as session:
            rows = await session.execute(
                select(CopyOrder)
                .where(*self._history_filter(user_id, follow_id, since, until))
                .order_by(col(CopyOrder.created_at).desc(), col(CopyOrder.client_order_id))
                .limit(limit)
                .offset(offset)
            )
            return list(rows.scalars())

    # -- added for the Telegram front end (read models, broadcasts, closing positions) ---------

    async def set_blocked(self, user_id: int, blocked: bool) -> None:
        """The user blocked (or unblocked) the bot: broadcasts skip blocked users."""
        async with self.db.session() as session:
            await session.execute(update(User).where(col(User.id) == user_id).values(blocked_bot=blocked))

    async def broadcast_recipients(self, master_id: int | None = None) -> list[tuple[int, int]]:
        """``(user_id, telegram_id)`` of every reachable user, or of the followers of one master
        (active or paused follows), ordered by user id."""
        async with self.db.session() as session:
            query = select(col(User.id), col(User.telegram_id)).where(
                col(User.telegram_id).is_not(None), col(User.blocked_bot) == false()
            )
            if master_id is not None:
                followers = select(col(Follow.user_id)).where(
                    col(Follow.master_id) == master_id, col(Follow.status) != FollowStatus.STOPPED
                )
                query = query.where(col(User.id).in_(followers))
            rows = await session.execute(query.order_by(col(User.id)))
            return [(a, b) for a, b in rows.all() if a is not None and b is not None]

    async def follow_positions_of(self, follow_id: int) -> list[FollowPosition]:
        """The copied positions of one follow that are still open."""
        async with self.db.session() as session:
            rows = await session.execute(
                select(FollowPosition)
                .where(
                    col(FollowPosition.follow_id) == follow_id,
                    col(FollowPosition.simulated) == false(),
                    col(FollowPosition.quantity) != Decimal(0),
                )
                .order_by(col(FollowPosition.symbol))
            )
            return list(rows.scalars())

    async def copy_counts_since(self, user_id: int | None, since: datetime) -> dict[str, int]:
        """Copy orders created since ``since`` by status value (every user when ``user_id`` is None)."""
        async with self.db.session() as session:
            query = select(col(CopyOrder.status), func.count()).where(col(CopyOrder.created_at) >= since)
            if user_id is not None:
                query = query.where(col(CopyOrder.user_id) == user_id)
            rows = await session.execute(query.group_by(col(CopyOrder.status)))
            return {getattr(status, "value", str(status)): int(n) for status, n in rows.all()}

    async def copy_history_count(
        self,
        user_id: int,
        *,
        follow_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        async with self.db.session() as session:
            where = self._history_filter(user_id, follow_id, since, until)
            return int((await session.execute(select(func.count()).select_from(CopyOrder).where(*where))).scalar_one())

    async def counts(self) -> dict[str, int]:
        """Totals for the admin's /stats."""
        async with self.db.session() as session:
            out = {
                "users": (
                    await session.execute(
                        select(func.count()).select_from(User).where(col(User.telegram_id).is_not(None))
                    )
                ).scalar_one(),
                "blocked": (
                    await session.execute(select(func.count()).select_from(User).where(col(User.blocked_bot) == true()))
                ).scalar_one(),
                "credentials": (await session.execute(select(func.count()).select_from(Credential))).scalar_one(),
            }
            for status, n in (
                await session.execute(select(col(Master.status), func.count()).group_by(col(Master.status)))
            ).all():
                out[f"masters_{getattr(status, 'value', status)}"] = n
            for follow_status, n in (
                await session.execute(select(col(Follow.status), func.count()).group_by(col(Follow.status)))
            ).all():
                out[f"follows_{getattr(follow_status, 'value', follow_status)}"] = n
            return {k: int(v) for k, v in out.items()}
