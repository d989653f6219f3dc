"""The copy log behind ``/export`` (a follower's own follows) and the admin's export (one master
or all): every master fill since each follow began, with what was done for it, as CSV or JSON
(``core.export`` writes the files)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.errors import NotFound, UserError
from core.export import ExportFile, build_export
from core.model import utcnow
from core.reports.collaborators import Clock
from core.stores import AccountRepository, StatsRepository


@dataclass
class ExportService:
    store: StatsRepository
    accounts: AccountRepository
    clock: Clock = utcnow

    async def export_user_log(
        self,
        user_id: int,
        *,
        follow_id: int | None = None,
        fmt: str = "csv",
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> ExportFile:
        """The copy log of the user's own follows (only ``follow_id`` when given; another user's
        follow id is "not found"). Every master fill since each follow began, with what was done."""
        _check_format(fmt)
        follows = await self.store.follows_of(user_id)
        if follow_id is not None:
            follows = [f for f in follows if f.id == follow_id]
            if not follows:
                raise NotFound("no such follow")
        ids = [f.id for f in follows if f.id is not None]
        now = self.clock()
        name = f"copylog-follow{follow_id}" if follow_id is not None else "copylog"
        return await build_export(
            self.store.export_rows(follow_ids=ids, since=since, until=until),
            fmt=fmt,
            scope=f"user {user_id}" + (f", follow {follow_id}" if follow_id else ""),
            basename=f"{name}-{now:%Y%m%d-%H%M}",
            generated_at=now,
        )

    async def export_admin_log(
        self,
        *,
        master_id: int | None = None,
        fmt: str = "csv",
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> ExportFile:
        """Admins only (the caller checks the role): one master's log, or every master's."""
        _check_format(fmt)
        if master_id is not None and await self.accounts.master(master_id) is None:
            raise NotFound(f"no master with id {master_id}")
        now = self.clock()
        name = f"copylog-master{master_id}" if master_id is not None else "copylog-all"
        return await build_export(
            self.store.export_rows(master_id=master_id, since=since, until=until),
            fmt=fmt,
            scope=f"master {master_id}" if master_id is not None else "all",
            basename=f"{name}-{now:%Y%m%d-%H%M}",
            generated_at=now,
        )


def _check_format(fmt: str) -> None:
    if fmt not in ("csv", "json"):
        raise UserError("the export format is csv or json")
