"""Queries for statistics, PnL, exports and daily summaries: the only SQL of that feature.

The master statistics state (``master_stats``, ``master_stats_lots``, ``master_daily_pnl``) is
written with a compare-and-swap on ``master_stats.last_fill_id``: two updaters (the scheduler's
job and an on-demand refresh, or two processes) never count a fill twice — the loser's
transaction is rolled back and it simply reloads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, false, func, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from core.model import CopyStatus, FollowStatus, Side, utcnow
from core.records import CopyEvent, ExportRow
from core.stats import CopyExecution, DayStats, Lot, StatFill, StatsState
from storage.accounts import rowcount
from storage.db import Database
from storage.models import CopyExecution as ExecutionRow
from storage.models import (
    CopyOrder,
    Credential,
    DailySummarySetting,
    EquitySnapshot,
    Follow,
    FollowPosition,
    Master,
    MasterDailyPnl,
    MasterFill,
    MasterPosition,
    MasterStats,
    MasterStatsLot,
    MasterStatus,
    User,
)

ZERO = Decimal(0)

_STATE_FIELDS = (
    "fills",
    "round_trips",
    "wins",
    "losses",
    "untracked_closes",
    "realized_pnl",
    "gross_profit",
    "gross_loss",
    "peak_pnl",
    "max_drawdown",
    "holding_seconds",
    "first_fill_at",
    "last_fill_at",
)


#: copy orders that may carry an execution (a rejection after a partial fill is stored as filled)
_EXECUTED = (CopyStatus.FILLED, CopyStatus.PLACED)


class _Conflict(Exception):
    """Another updater saved this master's statistics first."""


class StatsStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- master statistics state -----------------------------------------------------------------

    async def master_ids(self) -> list[int]:
        async with self.db.session() as session:
            ids = (await session.execute(select(col(Master.id)).order_by(col(Master.id)))).scalars()
            return [master_id for master_id in ids if master_id is not None]

    async def last_fill_id(self, master_id: int) -> int:
        async with self.db.session() as session:
            row = await session.get(MasterStats, master_id)
            return row.last_fill_id if row else 0

    async def fills_after(self, master_id: int, after_id: int, limit: int) -> list[tuple[StatFill, datetime]]:
        """The master's journaled fills with ``id > after_id`` in id order, with their receive time."""
        async with self.db.session() as session:
            rows = await session.execute(
                select(
                    col(MasterFill.id),
                    col(MasterFill.symbol),
                    col(MasterFill.side),
                    col(MasterFill.quantity),
                    col(MasterFill.price),
                    col(MasterFill.executed_at),
                    col(MasterFill.master_position_before),
                    col(MasterFill.received_at),
                )
                .where(col(MasterFill.master_id) == master_id, col(MasterFill.id) > after_id)
                .order_by(col(MasterFill.id))
                .limit(limit)
            )
            out = []
            for fill_id, symbol, side, quantity, price, executed_at, before, received_at in rows.all():
                assert fill_id is not None  # a stored row
                out.append((StatFill(fill_id, symbol, side, quantity, price, executed_at, before), received_at))
            return out

    async def load_state(self, master_id: int, days: set[date]) -> StatsState:
        """The saved state with every open lot and the given days' rows."""
        async with self.db.session() as session:
            row = await session.get(MasterStats, master_id)
            state = StatsState()
            if row is not None:
                state.last_fill_id = row.last_fill_id
                for name in _STATE_FIELDS:
                    setattr(state, name, getattr(row, name))
            lots = await session.execute(select(MasterStatsLot).where(col(MasterStatsLot.master_id) == master_id))
            for lot in lots.scalars():
                state.lots[lot.symbol] = Lot(lot.quantity, lot.entry_price, lot.opened_at, lot.trip_pnl)
            if days:
                found = await session.execute(
                    select(MasterDailyPnl).where(
                        col(MasterDailyPnl.master_id) == master_id, col(MasterDailyPnl.day).in_(sorted(days))
                    )
                )
                for day in found.scalars():
                    state.days[day.day] = DayStats(day.realized_pnl, day.fills, day.round_trips)
            return state

    async def save_state(self, master_id: int, expected_last_fill_id: int, state: StatsState) -> bool:
        """Write ``state`` if nobody saved since ``expected_last_fill_id`` was read; False otherwise.

        Every open lot is rewritten (flat symbols deleted) and every day in ``state.days`` upserted.
        """
        values: dict[str, Any] = {name: getattr(state, name) for name in _STATE_FIELDS}
        values.update(last_fill_id=state.last_fill_id, updated_at=utcnow())
        try:
            async with self.db.session() as session:
                swapped = await session.execute(
                    update(MasterStats)
                    .where(
                        col(MasterStats.master_id) == master_id, col(MasterStats.last_fill_id) == expected_last_fill_id
                    )
                    .values(**values)
                )
                if not rowcount(swapped):
                    if expected_last_fill_id != 0 or await session.get(MasterStats, master_id) is not None:
                        raise _Conflict
                    session.add(MasterStats(master_id=master_id, **values))
                    await session.flush()  # a concurrent first insert fails here
                await session.execute(delete(MasterStatsLot).where(col(MasterStatsLot.master_id) == master_id))
                for symbol, lot in sorted(state.lots.items()):
                    session.add(
                        MasterStatsLot(
                            master_id=master_id,
                            symbol=symbol,
                            quantity=lot.quantity,
                            entry_price=lot.entry_price,
                            opened_at=lot.opened_at,
                            trip_pnl=lot.trip_pnl,
                        )
                    )
                if state.days:
                    existing = await session.execute(
                        select(MasterDailyPnl).where(
                            col(MasterDailyPnl.master_id) == master_id, col(MasterDailyPnl.day).in_(sorted(state.days))
                        )
                    )
                    rows = {row.day: row for row in existing.scalars()}
                    for day, stats in state.days.items():
                        row = rows.get(day) or MasterDailyPnl(master_id=master_id, day=day)
                        row.realized_pnl, row.fills, row.round_trips = (
                            stats.realized_pnl,
                            stats.fills,
                            stats.round_trips,
                        )
                        session.add(row)
        except (_Conflict, IntegrityError):
            return False
        return True

    async def reset_state(self, master_id: int) -> None:
        """Forget a master's statistics (a full recompute follows)."""
        async with self.db.session() as session:
            await session.execute(delete(MasterStatsLot).where(col(MasterStatsLot.master_id) == master_id))
            await session.execute(delete(MasterDailyPnl).where(col(MasterDailyPnl.master_id) == master_id))
            await session.execute(delete(MasterStats).where(col(MasterStats.master_id) == master_id))

    async def master_stats(self, master_ids: Sequence[int] | None = None) -> dict[int, MasterStats]:
        async with self.db.session() as session:
            query = select(MasterStats)
            if master_ids is not None:
                query = query.where(col(MasterStats.master_id).in_(list(master_ids)))
            return {row.master_id: row for row in (await session.execute(query)).scalars()}

    async def master_daily(
        self, master_ids: Sequence[int], since: date | None = None
    ) -> dict[int, list[MasterDailyPnl]]:
        """Daily rows per master, in day order."""
        out: dict[int, list[MasterDailyPnl]] = {m: [] for m in master_ids}
        if not master_ids:
            return out
        async with self.db.session() as session:
            query = select(MasterDailyPnl).where(col(MasterDailyPnl.master_id).in_(list(master_ids)))
            if since is not None:
                query = query.where(col(MasterDailyPnl.day) >= since)
            for row in (
                await session.execute(query.order_by(col(MasterDailyPnl.master_id), col(MasterDailyPnl.day)))
            ).scalars():
                out[row.master_id].append(row)
        return out

    async def master_open_positions(self, master_ids: Sequence[int]) -> dict[int, list[tuple[str, Decimal]]]:
        """The journal's positions (non-zero) per master: a hedge-mode master's long and short apart."""
        out: dict[int, list[tuple[str, Decimal]]] = {m: [] for m in master_ids}
        if not master_ids:
            return out
        async with self.db.session() as session:
            rows = await session.execute(
                select(col(MasterPosition.master_id), col(MasterPosition.symbol), col(MasterPosition.quantity))
                .where(col(MasterPosition.master_id).in_(list(master_ids)))
                .order_by(col(MasterPosition.master_id), col(MasterPosition.symbol))
            )
            for master_id, symbol, quantity in rows.all():
                if quantity != 0:  # compared here: SQLite keeps these columns as text
                    out[master_id].append((symbol, quantity))
        return out

    async def last_prices(self, symbols: Sequence[str]) -> dict[str, Decimal]:
        """The most recent journaled master fill price of each symbol (a mark of last resort)."""
        out: dict[str, Decimal] = {}
        async with self.db.session() as session:
            for symbol in sorted(set(symbols)):
                found = await session.execute(
                    select(col(MasterFill.price))
                    .where(col(MasterFill.symbol) == symbol)
                    .order_by(col(MasterFill.executed_at).desc(), col(MasterFill.id).desc())
                    .limit(1)
                )
                price = found.scalars().first()
                if price is not None:
                    out[symbol] = price
        return out

    # -- equity snapshots ----------------------------------------------------------------------------

    async def save_snapshot(self, scope: str, subject_id: int, day: date, equity: Decimal, taken_at: datetime) -> None:
        """One row per subject and day: a later snapshot the same day replaces the earlier one."""
        for _attempt in range(2):
            try:
                async with self.db.session() as session:
                    found = await session.execute(
                        select(EquitySnapshot).where(
                            col(EquitySnapshot.scope) == scope,
                            col(EquitySnapshot.subject_id) == subject_id,
                            col(EquitySnapshot.day) == day,
                        )
                    )
                    row = found.scalars().first()
                    if row is None:
                        session.add(
                            EquitySnapshot(
                                scope=scope, subject_id=subject_id, day=day, equity=equity, taken_at=taken_at
                            )
                        )
                    else:
                        row.equity, row.taken_at = equity, taken_at
                        session.add(row)
                return
            except IntegrityError:
                continue  # a concurrent first snapshot of the day: update it instead

    async def snapshots(
        self, scope: str, subject_ids: Sequence[int], since: date | None = None
    ) -> dict[int, list[tuple[date, Decimal]]]:
        out: dict[int, list[tuple[date, Decimal]]] = {s: [] for s in subject_ids}
        if not subject_ids:
            return out
        async with self.db.session() as session:
            query = select(col(EquitySnapshot.subject_id), col(EquitySnapshot.day), col(EquitySnapshot.equity)).where(
                col(EquitySnapshot.scope) == scope, col(EquitySnapshot.subject_id).in_(list(subject_ids))
            )
            if since is not None:
                query = query.where(col(EquitySnapshot.day) >= since)
            for subject_id, day, equity in (
                await session.execute(query.order_by(col(EquitySnapshot.subject_id), col(EquitySnapshot.day)))
            ).all():
                out[subject_id].append((day, equity))
        return out

    async def snapshot_targets(self) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
        """``(master_id, credential_id)`` of masters not retired and ``(follow_id, credential_id)`` of
        follows not stopped, each with a key."""
        async with self.db.session() as session:
            masters = await session.execute(
                select(col(Master.id), col(Master.credential_id))
                .where(col(Master.credential_id).is_not(None), col(Master.status) != MasterStatus.RETIRED)
                .order_by(col(Master.id))
            )
            follows = await session.execute(
                select(col(Follow.id), col(Follow.credential_id))
                .where(col(Follow.credential_id).is_not(None), col(Follow.status) != FollowStatus.STOPPED)
                .order_by(col(Follow.id))
            )
            return (
                [(a, b) for a, b in masters.all() if a is not None and b is not None],
                [(a, b) for a, b in follows.all() if a is not None and b is not None],
            )

    # -- follows --------------------------------------------------------------------------------------

    async def follows_of(self, user_id: int) -> list[Follow]:
        async with self.db.session() as session:
            return list(
                (
                    await session.execute(select(Follow).where(col(Follow.user_id) == user_id).order_by(col(Follow.id)))
                ).scalars()
            )

    async def labels(self, credential_ids: Sequence[str]) -> dict[str, str]:
        ids = [c for c in set(credential_ids) if c]
        if not ids:
            return {}
        async with self.db.session() as session:
            rows = await session.execute(
                select(col(Credential.id), col(Credential.label)).where(col(Credential.id).in_(ids))
            )
            return {cid: label for cid, label in rows.all()}

    async def master_names(self, master_ids: Sequence[int] | None = None) -> dict[int, str]:
        async with self.db.session() as session:
            query = select(col(Master.id), col(Master.name))
            if master_ids is not None:
                query = query.where(col(Master.id).in_(list(master_ids)))
            return {mid: name for mid, name in (await session.execute(query)).all() if mid is not None}

    async def follow_executions(self, follow_id: int, *, simulated: bool) -> list[CopyExecution]:
        """The follow's executions in the order they moved its ledger: the venue's reports stored
        in ``copy_executions`` (the rows ``follow_positions`` was built from, so a replay gives the
        same positions and realized PnL; sync orders, which move the venue to the ledger, are left
        out as the ledger leaves them out; write-offs are in, marked, as they moved it), or for
        ``simulated`` the dry-run copies (requested quantity at the master's price, no fee)."""
        if not simulated:
            return await self._executions(follow_id)
        async with self.db.session() as session:
            rows = await session.execute(
                select(CopyOrder, col(MasterFill.executed_at))
                .outerjoin(MasterFill, col(MasterFill.id) == col(CopyOrder.fill_id))
                .where(
                    col(CopyOrder.follow_id) == follow_id,
                    col(CopyOrder.side).is_not(None),
                    col(CopyOrder.dry_run) == true(),
                    col(CopyOrder.reason_code) == "dry_run",
                )
                .order_by(  # written in the order the follow's orders were sized (per follow and symbol)
                    col(CopyOrder.created_at), col(CopyOrder.reduce_only).desc(), col(CopyOrder.client_order_id)
                )
            )
            out = []
            for copy, executed_at in rows.all():
                assert copy.side is not None  # selected with a side
                if copy.requested_quantity is not None and copy.requested_quantity > 0:
                    at = executed_at or copy.created_at
                    out.append(
                        CopyExecution(
                            at,
                            copy.symbol,
                            copy.side,
                            copy.requested_quantity,
                            copy.master_price,
                            ZERO,
                            copy.position_side,
                        )
                    )
            return out

    async def _executions(self, follow_id: int) -> list[CopyExecution]:
        async with self.db.session() as session:
            rows = await session.execute(
                select(ExecutionRow, col(CopyOrder.position_side))
                .join(CopyOrder, col(CopyOrder.client_order_id) == col(ExecutionRow.client_order_id))
                .where(col(ExecutionRow.follow_id) == follow_id, col(ExecutionRow.moved_ledger) == true())
                .order_by(col(ExecutionRow.id))  # the order they were recorded, and moved the ledger, in
            )
            return [
                CopyExecution(
                    row.recorded_at,
                    row.symbol,
                    Side.BUY if row.ledger_quantity >= 0 else Side.SELL,
                    abs(row.ledger_quantity),
                    row.price,
                    row.fee,
                    position_side,
                    row.written_off,
                )
                for row, position_side in rows.all()
            ]

    async def follow_positions(self, follow_id: int) -> list[FollowPosition]:
        async with self.db.session() as session:
            rows = await session.execute(
                select(FollowPosition)
                .where(col(FollowPosition.follow_id) == follow_id)
                .order_by(col(FollowPosition.symbol))
            )
            return list(rows.scalars())

    async def follow_copy_counts(self, follow_id: int, since: datetime | None) -> dict[str, int]:
        async with self.db.session() as session:
            query = select(col(CopyOrder.status), func.count()).where(col(CopyOrder.follow_id) == follow_id)
            if since is not None:
                query = query.where(col(CopyOrder.created_at) >= since)
            rows = await session.execute(query.group_by(col(CopyOrder.status)))
            return {getattr(s, "value", str(s)): int(n) for s, n in rows.all()}

    async def entry_ratio(self, follow_id: int, since: datetime | None) -> Decimal | None:
        """Σ follower filled quantity / Σ master quantity over the follow's filled copies: the
        sizing the follow actually got (used as the scale of modes other than a coefficient)."""
        async with self.db.session() as session:
            query = (
                select(col(CopyOrder.filled_quantity), col(MasterFill.quantity))
                .join(MasterFill, col(MasterFill.id) == col(CopyOrder.fill_id))
                .where(
                    col(CopyOrder.follow_id) == follow_id,
                    col(CopyOrder.dry_run) == false(),
                    col(CopyOrder.status).in_(_EXECUTED),
                )
            )
            if since is not None:
                query = query.where(col(CopyOrder.created_at) >= since)
            rows = [r for r in (await session.execute(query)).all() if r[0] > 0]
        follower = sum((r[0] for r in rows), ZERO)
        master = sum((r[1] for r in rows), ZERO)
        return follower / master if master > 0 else None

    # -- copy log (export) -------------------------------------------------------------------------

    async def export_rows(
        self,
        *,
        follow_ids: Sequence[int] | None = None,
        master_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        batch: int = 2000,
    ) -> AsyncIterator[ExportRow]:
        """The copy log in time order.

        ``follow_ids`` given: for each of those follows, every fill of its master since the follow
        was created, with the follow's copy orders (or none), and the orders the copier placed
        for it on its own. Otherwise every fill (of ``master_id``, or of every master) with every
        copy order of it, fills nobody copied, and the copier's own orders of those follows.
        """
        if follow_ids is not None:
            for follow_id in follow_ids:
                async for row in self._follow_rows(follow_id, since, until, batch):
                    yield row
            return
        names = await self.master_names()
        own = await self._own_orders(master_id=master_id, since=since, until=until)
        labels = await self.labels([credential_id for _, credential_id, _ in own if credential_id])
        pending = [
            ExportRow(
                None,
                mid,
                names.get(mid, f"master #{mid}"),
                copy,
                copy.follow_id,
                copy.user_id,
                labels.get(cid or "", "removed account"),
            )
            for copy, cid, mid in own
        ]
        after = 0
        while True:
            async with self.db.session() as session:
                query = select(MasterFill).where(col(MasterFill.id) > after)
                if master_id is not None:
                    query = query.where(col(MasterFill.master_id) == master_id)
                if since is not None:
                    query = query.where(col(MasterFill.executed_at) >= since)
                if until is not None:
                    query = query.where(col(MasterFill.executed_at) <= until)
                fills = list((await session.execute(query.order_by(col(MasterFill.id)).limit(batch))).scalars())
                if not fills:
                    break
                copies = await session.execute(
                    select(CopyOrder, col(Follow.credential_id))
                    .join(Follow, col(Follow.id) == col(CopyOrder.follow_id))
                    .where(col(CopyOrder.fill_id).in_([f.id for f in fills]))
                    .order_by(
                        col(CopyOrder.fill_id),
                        col(CopyOrder.follow_id),
                        col(CopyOrder.reduce_only).desc(),
                        col(CopyOrder.client_order_id),
                    )
                )
                by_fill: dict[int, list[tuple[CopyOrder, str | None]]] = {}
                for copy, credential_id in copies.all():
                    by_fill.setdefault(copy.fill_id or 0, []).append((copy, credential_id))
            labels.update(
                await self.labels([c for pairs in by_fill.values() for _, c in pairs if c and c not in labels])
            )
            for fill in fills:
                while pending and pending[0].at < fill.executed_at:
                    yield pending.pop(0)
                name = names.get(fill.master_id, f"master #{fill.master_id}")
                pairs = by_fill.get(fill.id or 0, [])
                if not pairs:
                    yield ExportRow(fill, fill.master_id, name, None, None, None, None)
                for copy, credential_id in pairs:
                    yield ExportRow(
                        fill,
                        fill.master_id,
                        name,
                        copy,
                        copy.follow_id,
                        copy.user_id,
                        labels.get(credential_id or "", "removed account"),
                    )
            after = fills[-1].id or 0
        for row in pending:
            yield row

    async def _own_orders(
        self,
        *,
        follow_id: int | None = None,
        master_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[tuple[CopyOrder, str | None, int]]:
        """Orders the copier placed on its own (no master fill), with the follow's key and master."""
        async with self.db.session() as session:
            query = (
                select(CopyOrder, col(Follow.credential_id), col(Follow.master_id))
                .join(Follow, col(Follow.id) == col(CopyOrder.follow_id))
                .where(col(CopyOrder.fill_id).is_(None))
            )
            if follow_id is not None:
                query = query.where(col(CopyOrder.follow_id) == follow_id)
            if master_id is not None:
                query = query.where(col(Follow.master_id) == master_id)
            if since is not None:
                query = query.where(col(CopyOrder.created_at) >= since)
            if until is not None:
                query = query.where(col(CopyOrder.created_at) <= until)
            rows = await session.execute(query.order_by(col(CopyOrder.created_at), col(CopyOrder.client_order_id)))
            return [(copy, credential_id, int(mid)) for copy, credential_id, mid in rows.all()]

    async def _follow_rows(
        self, follow_id: int, since: datetime | None, until: datetime | None, batch: int
    ) -> AsyncIterator[ExportRow]:
        async with self.db.session() as session:
            follow = await session.get(Follow, follow_id)
            if follow is None:
                return
            master = await session.get(Master, follow.master_id)
            credential = await session.get(Credential, follow.credential_id) if follow.credential_id else None
        name = master.name if master else f"master #{follow.master_id}"
        label = credential.label if credential else "removed account"
        pending = [
            ExportRow(None, follow.master_id, name, copy, follow_id, follow.user_id, label)
            for copy, _, _ in await self._own_orders(follow_id=follow_id, since=since, until=until)
        ]
        after = 0
        while True:
            async with self.db.session() as session:
                copied = select(col(CopyOrder.fill_id)).where(
                    col(CopyOrder.follow_id) == follow_id, col(CopyOrder.fill_id).is_not(None)
                )
                query = select(MasterFill).where(
                    col(MasterFill.master_id) == follow.master_id,
                    col(MasterFill.id) > after,
                    (col(MasterFill.received_at) >= follow.created_at) | col(MasterFill.id).in_(copied),
                )
                if since is not None:
                    query = query.where(col(MasterFill.executed_at) >= since)
                if until is not None:
                    query = query.where(col(MasterFill.executed_at) <= until)
                fills = list((await session.execute(query.order_by(col(MasterFill.id)).limit(batch))).scalars())
                if not fills:
                    break
                copies = await session.execute(
                    select(CopyOrder)
                    .where(col(CopyOrder.follow_id) == follow_id, col(CopyOrder.fill_id).in_([f.id for f in fills]))
                    .order_by(col(CopyOrder.fill_id), col(CopyOrder.reduce_only).desc(), col(CopyOrder.client_order_id))
                )
                by_fill: dict[int, list[CopyOrder]] = {}
                for copy in copies.scalars():
                    by_fill.setdefault(copy.fill_id or 0, []).append(copy)
            for fill in fills:
                while pending and pending[0].at < fill.executed_at:
                    yield pending.pop(0)
                for order in by_fill.get(fill.id or 0) or (None,):
                    yield ExportRow(fill, follow.master_id, name, order, follow_id, follow.user_id, label)
            after = fills[-1].id or 0
        for row in pending:
            yield row

    # -- admin statistics -----------------------------------------------------------------------------

    async def copy_events(self, since: datetime, until: datetime) -> list[CopyEvent]:
        async with self.db.session() as session:
            rows = await session.execute(
                select(
                    col(CopyOrder.created_at),
                    col(CopyOrder.status),
                    col(CopyOrder.reason_code),
                    col(CopyOrder.latency_ms),
                ).where(col(CopyOrder.created_at) >= since, col(CopyOrder.created_at) < until)
            )
            return [CopyEvent(*row) for row in rows.all()]

    async def follow_status_counts(self) -> dict[str, int]:
        async with self.db.session() as session:
            rows = await session.execute(select(col(Follow.status), func.count()).group_by(col(Follow.status)))
            return {getattr(s, "value", str(s)): int(n) for s, n in rows.all()}

    async def user_copy_events(self, user_id: int, since: datetime, until: datetime) -> list[tuple[CopyOrder, str]]:
        """The user's copy orders created in [since, until) with their master's name."""
        async with self.db.session() as session:
            rows = await session.execute(
                select(CopyOrder, col(Master.name))
                .join(Follow, col(Follow.id) == col(CopyOrder.follow_id))
                .join(Master, col(Master.id) == col(Follow.master_id))
                .where(
                    col(CopyOrder.user_id) == user_id,
                    col(CopyOrder.created_at) >= since,
                    col(CopyOrder.created_at) < until,
                )
                .order_by(col(CopyOrder.created_at))
            )
            return [(copy, name) for copy, name in rows.all()]

    # -- daily summaries -----------------------------------------------------------------------------

    async def summary_setting(self, user_id: int) -> DailySummarySetting:
        """The user's setting, or the default one (off) when they never chose."""
        async with self.db.session() as session:
            return await session.get(DailySummarySetting, user_id) or DailySummarySetting(user_id=user_id)

    async def set_summary(self, user_id: int, *, enabled: bool, minute_of_day: int | None) -> DailySummarySetting:
        async with self.db.session() as session:
            row = await session.get(DailySummarySetting, user_id)
            if row is None:
                row = DailySummarySetting(user_id=user_id)
            row.enabled = enabled
            if minute_of_day is not None:
                row.minute_of_day = minute_of_day
            row.updated_at = utcnow()
            session.add(row)
            await session.flush()
            return row

    async def summaries_due(self, today: date, minute_of_day: int) -> list[tuple[int, int]]:
        """``(user_id, telegram_id)`` of reachable users whose summary time has come today and who
        have not had today's summary."""
        async with self.db.session() as session:
            rows = await session.execute(
                select(col(User.id), col(User.telegram_id))
                .join(DailySummarySetting, col(DailySummarySetting.user_id) == col(User.id))
                .where(
                    col(DailySummarySetting.enabled) == true(),
                    col(DailySummarySetting.minute_of_day) <= minute_of_day,
                    (col(DailySummarySetting.last_sent_on).is_(None)) | (col(DailySummarySetting.last_sent_on) < today),
                    col(User.telegram_id).is_not(None),
                    col(User.blocked_bot) == false(),
                )
                .order_by(col(User.id))
            )
            return [(a, b) for a, b in rows.all() if a is not None and b is not None]

    async def claim_summary(self, user_id: int, today: date) -> bool:
        """Mark today's summary as taken; False when another caller took it first."""
        async with self.db.session() as session:
            result = await session.execute(
                update(DailySummarySetting)
                .where(
                    col(DailySummarySetting.user_id) == user_id,
                    (col(DailySummarySetting.last_sent_on).is_(None)) | (col(DailySummarySetting.last_sent_on) < today),
                )
                .values(last_sent_on=today)
            )
            return bool(rowcount(result))
