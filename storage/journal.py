"""The copy journal: master fills, copy orders and the positions copies opened.

Order of writes is what makes copying safe:
1. ``journal_fill`` inserts the master fill (unique per venue + trade id) before anything is
   placed; a second delivery of the same trade finds the row and is reported as a duplicate.
2. ``begin_copies`` inserts one row per copy order (primary key: the deterministic client
   order id) with status *pending* — or the final *skipped* — before the order is sent.
3. ``record_reports`` records what the venue says about a sent order: its state and cumulative
   fill with a compare-and-set (a terminal order never changes, the filled quantity never
   decreases), the new executions (``copy_executions``, unique per order and cumulative fill),
   and — in the same transaction, only for new executions — the follow's copied position,
   through ``core.ledger``. ``finish_copies`` stores outcomes that executed nothing. A fill
   recorded with its commission still to come (``fee_status`` pending) takes one fee-only report
   later: the compare-and-set includes ``fee_status``, so it is counted once.
On restart, pending rows are resolved by asking the venue for the client order id.

Concurrent ``begin_copies``/``finish_copies`` calls are group-committed: one transaction
carries every write that arrived while the previous one was running, and each caller
resumes only once its own rows are durable.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import CursorResult, bindparam, exists, false, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.errors import NotFound
from core.follow_settings import FOLLOW_SETTINGS
from core.journal import (
    FIRST_EPOCH,
    Claim,
    CopyDraft,
    FeeToCome,
    JournalEntry,
    OpenCopy,
    PendingCopy,
    PositionChange,
    ProtectiveOrder,
    ReportedOrder,
    SendFence,
    Transition,
    WriteOff,
)
from core.ledger import Holding, OrderProgress, advance, apply_execution, ledger_quantity, write_off
from core.model import (
    CopyResult,
    CopyStatus,
    FeeStatus,
    Fill,
    FollowSettings,
    FollowStatus,
    OrderOrigin,
    OrderState,
    OrderType,
    PositionSide,
    Side,
    utcnow,
)
from storage.db import Database
from storage.models import (
    CopyExecution,
    CopyOrder,
    Follow,
    FollowPosition,
    Master,
    MasterCheckpoint,
    MasterFill,
    MasterPosition,
    MasterStatus,
    PositionDrift,
)
from storage.models import ProtectiveOrder as ProtectiveOrderRow

ZERO = Decimal(0)
#: a pending copy stays its sender's for this long after each send attempt: well above one
#: attempt (the venues' clients time out after 10 s), so another process never settles a copy
#: whose send may still be in flight; a crashed process's rows wait at most this long
SEND_LEASE_SECONDS = 30.0
_RESTING = (CopyStatus.PENDING, CopyStatus.PLACED)  # a protective order still on the venue
_OPEN = (OrderState.ACKNOWLEDGED, OrderState.PARTIALLY_FILLED)  # a sent order the venue still works
#: origins whose executions move the copied position; sync orders move the venue to the ledger
_NOT_LEDGER = frozenset({OrderOrigin.SYNC})


def follow_settings(row: Follow) -> FollowSettings:
    """The engine's view of a follow row: every setting of the table, loaded as the engine reads it."""
    assert row.id is not None and row.credential_id is not None, "an active follow always has a key"
    return FollowSettings(
        follow_id=row.id,
        user_id=row.user_id,
        master_id=row.master_id,
        credential_id=row.credential_id,
        **{setting.name: setting.load(getattr(row, setting.name)) for setting in FOLLOW_SETTINGS},
    )


@dataclass
class _Submission:
    drafts: Sequence[CopyDraft] = ()
    results: Sequence[CopyResult] = ()
    position_changes: Sequence[PositionChange] = ()
    reports: Sequence[ReportedOrder] = ()
    claims: Sequence[str] = ()  # pending copies whose lease this writer takes (each a new epoch)
    fences: Sequence[SendFence] = ()  # sends to fence: granted only while their claim is current
    write_offs: Sequence[WriteOff] = ()
    future: asyncio.Future[None] | None = None
    already: set[str] = field(default_factory=set)  # drafts' ids that existed before
    claimed: dict[str, int] = field(default_factory=dict)  # the claims granted, with their epochs
    fenced: set[str] = field(default_factory=set)  # the fences granted
    transitions: list[Transition | None] = field(default_factory=list)  # one per report
    written_off: set[str] = field(default_factory=set)  # the write-offs recorded


@dataclass(frozen=True, slots=True)
class _Lease:
    """Who writes through this journal (one id per process) and how long its pending rows stay its own."""

    owner: str
    duration: timedelta


class _LostRace(Exception):
    """A compare-and-set found a copy order changed by another writer: the batch is redone."""


class _CopyWriter:
    """Group commit for the hot path: every submission waiting while a transaction runs goes
    into the next one, written with one SELECT, one multi-row INSERT and one executemany UPDATE.
    Each submitter resumes when its own rows are durable; a failing batch is retried one
    submission at a time so that only the bad one sees the error."""

    def __init__(self, db: Database, lease: _Lease) -> None:
        self._db = db
        self._lease = lease
        self._queue: list[_Submission] = []
        self._running: asyncio.Task[None] | None = None

    async def _claim(self, session: AsyncSession, client_order_id: str, now: datetime) -> int | None:
        """Take the next epoch of a pending row whose lease is free, run out or already this
        writer's: one conditional UPDATE, so of two writers claiming at once exactly one wins, and
        any send fenced with an older epoch is refused from then on."""
        claimed = await session.execute(
            update(_COPY_ORDERS)
            .where(
                _COPY_ORDERS.c.client_order_id == client_order_id,
                _COPY_ORDERS.c.status == CopyStatus.PENDING.value,
                or_(
                    _COPY_ORDERS.c.lease_until.is_(None),
                    _COPY_ORDERS.c.lease_until < now,
                    _COPY_ORDERS.c.lease_owner == self._lease.owner,
                ),
            )
            .values(
                lease_owner=self._lease.owner,
                lease_until=now + self._lease.duration,
                claim_epoch=_COPY_ORDERS.c.claim_epoch + 1,
            )
        )
        assert isinstance(claimed, CursorResult)  # an UPDATE's result counts its rows
        if claimed.rowcount != 1:
            return None
        epoch = await session.execute(
            select(_COPY_ORDERS.c.claim_epoch).where(_COPY_ORDERS.c.client_order_id == client_order_id)
        )
        return int(epoch.scalar_one())

    async def _fence(self, session: AsyncSession, fence: SendFence, now: datetime) -> bool:
        """Grant a send only while its claim is the row's current one (and, for a copy of a master
        fill, while its follow is active): record when it began and its venue deadline first."""
        conditions = [
            _COPY_ORDERS.c.client_order_id == fence.claim.client_order_id,
            _COPY_ORDERS.c.status == CopyStatus.PENDING.value,
            _COPY_ORDERS.c.claim_epoch == fence.claim.epoch,
        ]
        if fence.follow_active:
            conditions.append(
                exists().where(
                    _FOLLOWS.c.id == _COPY_ORDERS.c.follow_id, _FOLLOWS.c.status == FollowStatus.ACTIVE.value
                )
            )
        fenced = await session.execute(
            update(_COPY_ORDERS)
            .where(*conditions)
            .values(
                lease_owner=self._lease.owner,
                lease_until=now + self._lease.duration,
                send_started_at=now,
                send_deadline=fence.deadline,
            )
        )
        assert isinstance(fenced, CursorResult)
        return fenced.rowcount == 1

    async def submit(self, submission: _Submission) -> _Submission:
        submission.future = asyncio.get_running_loop().create_future()
        self._queue.append(submission)
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._drain())
        await submission.future
        return submission

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                existing = await self._write(batch)
            except Exception:
                for submission in batch:
                    await self._write_alone(submission)
                continue
            claimed: set[str] = set()  # within a batch the first submission owns an id
            for submission in batch:
                assert submission.future is not None
                ids = {d.client_order_id for d in submission.drafts}
                submission.already = (ids & existing) | (ids & claimed)
                claimed |= ids
                if not submission.future.done():
                    submission.future.set_result(None)

    async def _write_alone(self, submission: _Submission) -> None:
        assert submission.future is not None
        for attempt in range(3):  # a lost compare-and-set is redone on the rows as they are now
            try:
                submission.already = await self._write([submission])
            except _LostRace:
                if attempt < 2:
                    continue
                submission.future.set_exception(_LostRace("copy orders kept changing under this write"))
                return
            except Exception as exc:  # handed to the submitter, who decides
                if not submission.future.done():
                    submission.future.set_exception(exc)
                return
            break
        if not submission.future.done():
            submission.future.set_result(None)

    async def _write(self, batch: list[_Submission]) -> set[str]:
        drafts = [d for s in batch for d in s.drafts]
        results = [r for s in batch for r in s.results]
        changes = [c for s in batch for c in s.position_changes]
        reports = [r for s in batch for r in s.reports]
        write_offs = [w for s in batch for w in s.write_offs]
        async with self._db.session() as session:
            now = await self._db.now(session)  # leases and fences on the database's clock, never a host's
            for submission in batch:  # in the group commit: a hundred claims cost one transaction
                for cid in submission.claims:
                    epoch = await self._claim(session, cid, now)
                    if epoch is not None:
                        submission.claimed[cid] = epoch
                submission.fenced = {
                    f.claim.client_order_id for f in submission.fences if await self._fence(session, f, now)
                }
            if self._db.is_sqlite and (changes or reports or write_offs):
                # the write lock before the positions are read: another process's writer waits
                # here instead of saving a position moved from the same stale read (PostgreSQL:
                # the read locks the rows, ``_Positions.load``)
                await session.execute(_SQLITE_WRITE_LOCK)
            existing = await _insert_new_drafts(session, drafts, now, self._lease) if drafts else set()
            if results:
                await session.execute(_RESULT_UPDATE, [_result_params(r, now) for r in results])
            if changes:
                await _move_positions(session, changes, now)
            transitions = await _record_reports(session, reports, now) if reports else []
            written_off = await _write_offs(session, write_offs, now) if write_offs else set()
        position = 0
        for submission in batch:
            submission.written_off = {w.client_order_id for w in submission.write_offs} & written_off
            submission.transitions = transitions[position : position + len(submission.reports)]
            position += len(submission.reports)
        return existing


_COPY_ORDERS = CopyOrder.metadata.tables[CopyOrder.__tablename__]  # SQLAlchemy Core on the hot path
_FOLLOWS = Follow.metadata.tables[Follow.__tablename__]
#: a write that changes nothing: on SQLite it begins the transaction holding the database's write lock
_SQLITE_WRITE_LOCK = update(_COPY_ORDERS).where(false()).values(lease_owner=_COPY_ORDERS.c.lease_owner)
_RESULT_UPDATE = (  # outcomes that executed nothing: never over an order the venue reported on
    update(_COPY_ORDERS)
    .where(
        _COPY_ORDERS.c.client_order_id == bindparam("b_cid"),
        _COPY_ORDERS.c.filled_quantity == ZERO,
        or_(_COPY_ORDERS.c.state.is_(None), _COPY_ORDERS.c.state == OrderState.PENDING.value),
    )
    .values(
        status=bindparam("b_status"),
        state=bindparam("b_state"),
        filled_quantity=bindparam("b_filled"),
        average_price=bindparam("b_price"),
        venue_order_id=bindparam("b_venue_order_id"),
        reason_code=bindparam("b_reason_code"),
        reason=bindparam("b_reason"),
        fee=bindparam("b_fee"),
        completed_at=bindparam("b_completed_at"),
        latency_ms=bindparam("b_latency_ms"),
    )
)


def _result_params(result: CopyResult, now: datetime) -> dict[str, Any]:
    return {
        "b_cid": result.client_order_id,
        "b_status": result.status,
        "b_state": result.state,
        "b_filled": result.filled_quantity,
        "b_price": result.average_price,
        "b_venue_order_id": result.venue_order_id,
        "b_reason_code": result.reason_code,
        "b_reason": (result.reason or None) and result.reason[:500],
        "b_fee": result.fee,
        "b_completed_at": now,
        "b_latency_ms": result.latency_ms,
    }


async def _insert_new_drafts(
    session: AsyncSession, drafts: Sequence[CopyDraft], now: datetime, lease: _Lease
) -> set[str]:
    ids = [d.client_order_id for d in drafts]
    existing: set[str] = set()
    for start in range(0, len(ids), 500):  # bounded IN lists
        rows = await session.execute(
            select(col(CopyOrder.client_order_id)).where(col(CopyOrder.client_order_id).in_(ids[start : start + 500]))
        )
        existing |= set(rows.scalars())
    fresh: dict[str, dict[str, Any]] = {}
    for draft in drafts:
        if draft.client_order_id in existing or draft.client_order_id in fresh:
            continue
        fresh[draft.client_order_id] = {
            "client_order_id": draft.client_order_id,
            "fill_id": draft.fill_id,
            "follow_id": draft.follow_id,
            "user_id": draft.user_id,
            "symbol": draft.symbol,
            "side": draft.side,
            "order_type": draft.order_type,
            "reduce_only": draft.reduce_only,
            "status": draft.status,
            "state": OrderState.PENDING if draft.status is CopyStatus.PENDING else None,
            "reason_code": draft.reason_code,
            "reason": draft.reason[:500] if draft.reason else None,
            "requested_quantity": draft.requested_quantity,
            "filled_quantity": ZERO,
            "average_price": None,
            "limit_price": draft.limit_price,
            "protected": draft.protected,
            "attempt": draft.attempt,
            "master_price": draft.master_price,
            "fee": ZERO,
            "base_fee": ZERO,
            "venue_order_id": None,
            "dry_run": draft.dry_run,
            "origin": draft.origin,
            "position_side": draft.position_side,
            "realized_pnl": ZERO,
            "created_at": now,
            "completed_at": now if draft.status is CopyStatus.SKIPPED else None,
            "latency_ms": None,
            "lease_owner": lease.owner if draft.status is CopyStatus.PENDING else None,
            "lease_until": now + lease.duration if draft.status is CopyStatus.PENDING else None,
            "claim_epoch": FIRST_EPOCH if draft.status is CopyStatus.PENDING else 0,
            "send_started_at": None,
            "send_deadline": None,
        }
    if fresh:
        await session.execute(insert(_COPY_ORDERS), list(fresh.values()))
    return existing


class JournalStore:
    def __init__(self, db: Database, *, lease_seconds: float = SEND_LEASE_SECONDS) -> None:
        self.db = db
        self._lease = _Lease(uuid.uuid4().hex, timedelta(seconds=lease_seconds))
        self._writes = _CopyWriter(db, self._lease)

    @property
    def lease_seconds(self) -> float:
        return self._lease.duration.total_seconds()

    # -- master fills -----------------------------------------------------------------------

    async def journal_fill(self, fill: Fill) -> JournalEntry | None:
        """Record the master's execution; ``None`` when this venue trade id was seen before.

        Raises ``NotFound`` (writing nothing) for an unknown or retired master.
        """
        try:
            async with self.db.session() as session:
                master = await session.get(Master, fill.master_id)
                if master is None or master.status is MasterStatus.RETIRED:
                    raise NotFound(f"no active master with id {fill.master_id}: fill {fill.trade_id} not copied")
                duplicate = await session.execute(
                    select(col(MasterFill.id)).where(
                        col(MasterFill.venue) == fill.venue, col(MasterFill.trade_id) == fill.trade_id
                    )
                )
                if duplicate.scalars().first() is not None:
                    return None
                position = await session.get(MasterPosition, (fill.master_id, fill.symbol, fill.position_side))
                before = position.quantity if position else ZERO
                row = MasterFill(
                    master_id=fill.master_id,
                    venue=fill.venue,
                    trade_id=fill.trade_id,
                    order_id=fill.order_id,
                    symbol=fill.symbol,
                    side=fill.side,
                    quantity=fill.quantity,
                    price=fill.price,
                    order_type=fill.order_type,
                    reduce_only=fill.reduce_only,
                    product=fill.product,
                    position_side=fill.position_side,
                    master_position_before=before,
                    executed_at=fill.executed_at,
                )
                session.add(row)
                if position is None:
                    session.add(
                        MasterPosition(
                            master_id=fill.master_id,
                            symbol=fill.symbol,
                            position_side=fill.position_side,
                            quantity=fill.signed_quantity,
                        )
                    )
                else:
                    position.quantity = before + fill.signed_quantity
                    session.add(position)
                await session.flush()
                assert row.id is not None
                return JournalEntry(row.id, before)
        except IntegrityError:
            return None  # another process journaled the same trade a moment earlier

    async def mark_planned(self, fill_id: int) -> None:
        async with self.db.session() as session:
            await session.execute(update(MasterFill).where(col(MasterFill.id) == fill_id).values(planned=True))

    async def last_fill_time(self, master_id: int) -> datetime | None:
        """The execution time of the master's newest journaled fill."""
        async with self.db.session() as session:
            result = await session.execute(
                select(col(MasterFill.executed_at))
                .where(col(MasterFill.master_id) == master_id)
                .order_by(col(MasterFill.executed_at).desc())
                .limit(1)
            )
            return result.scalars().first()

    async def master_order_progress(
        self, master_id: int, order_ids: Sequence[str]
    ) -> dict[str, tuple[Decimal, Decimal]]:
        """Of these venue order ids of the master, those with journaled fills: the quantity
        journaled for each and its average price (a listener replaying the order book after a
        restart emits only what is beyond it)."""
        totals: dict[str, tuple[Decimal, Decimal]] = {}
        async with self.db.session() as session:
            for start in range(0, len(order_ids), 500):  # bounded IN lists
                rows = await session.execute(
                    select(col(MasterFill.order_id), col(MasterFill.quantity), col(MasterFill.price)).where(
                        col(MasterFill.master_id) == master_id,
                        col(MasterFill.order_id).in_(order_ids[start : start + 500]),
                    )
                )
                for order_id, quantity, price in rows.all():
                    filled, value = totals.get(order_id, (ZERO, ZERO))
                    totals[order_id] = (filled + quantity, value + quantity * price)
        return {order_id: (filled, value / filled) for order_id, (filled, value) in totals.items() if filled > 0}

    async def stream_checkpoint(self, master_id: int) -> datetime | None:
        """Where gap recovery starts: the later of the master's newest journaled fill and its
        saved checkpoint; ``None`` when the master's stream never started."""
        async with self.db.session() as session:
            saved = await session.get(MasterCheckpoint, master_id)
        newest = await self.last_fill_time(master_id)
        known = [t for t in (newest, saved.recovered_until if saved else None) if t is not None]
        return max(known, default=None)

    async def save_stream_checkpoint(self, master_id: int, recovered_until: datetime) -> None:
        """Every execution before ``recovered_until`` is journaled; a checkpoint never moves back."""
        async with self.db.session() as session:
            row = await session.get(MasterCheckpoint, master_id)
            if row is None:
                session.add(MasterCheckpoint(master_id=master_id, recovered_until=recovered_until))
            elif recovered_until > row.recovered_until:
                row.recovered_until = recovered_until
                session.add(row)

    async def start_master_stream(
        self, master_id: int, quantities: dict[tuple[str, PositionSide], Decimal], recovered_until: datetime
    ) -> None:
        """A master's first stream: its positions (by symbol and position side: a hedge-mode
        master's long and short apart) are the venue's, its history starts here (one transaction,
        so a crash never leaves positions without the checkpoint that vouches for them)."""
        quantities = dict(quantities)
        async with self.db.session() as session:
            rows = await session.execute(select(MasterPosition).where(col(MasterPosition.master_id) == master_id))
            for row in rows.scalars():
                row.quantity = quantities.pop((row.symbol, row.position_side), ZERO)
                session.add(row)
            for (symbol, side), quantity in quantities.items():
                session.add(MasterPosition(master_id=master_id, symbol=symbol, position_side=side, quantity=quantity))
            session.add(MasterCheckpoint(master_id=master_id, recovered_until=recovered_until))

    async def set_master_position(
        self, master_id: int, symbol: str, quantity: Decimal, position_side: PositionSide = PositionSide.BOTH
    ) -> None:
        """Seed the master's position from the venue, so a first sell is seen as an exit."""
        async with self.db.session() as session:
            row = await session.get(MasterPosition, (master_id, symbol, position_side))
            if row is None:
                session.add(
                    MasterPosition(master_id=master_id, symbol=symbol, position_side=position_side, quantity=quantity)
                )
            else:
                row.quantity = quantity
                session.add(row)

    # -- follows ------------------------------------------------------------------------------

    async def active_follows(self, master_id: int) -> list[FollowSettings]:
        async with self.db.session() as session:
            rows = await session.execute(
                select(Follow)
                .where(col(Follow.master_id) == master_id, col(Follow.status) == FollowStatus.ACTIVE)
                .order_by(col(Follow.id))
            )
            return [follow_settings(row) for row in rows.scalars()]

    async def active_follow_credentials(self) -> list[str]:
        """The credential of every active follow, of every master (warming venues up at start)."""
        async with self.db.session() as session:
            rows = await session.execute(
                select(col(Follow.credential_id))
                .where(col(Follow.status) == FollowStatus.ACTIVE)
                .distinct()
                .order_by(col(Follow.credential_id))
            )
            return [credential_id for credential_id in rows.scalars() if credential_id is not None]  # always set

    async def pause_follow(self, follow_id: int, reason: str) -> bool:
        """Pause an active follow (e.g. its key was rejected); False if it was not active."""
        async with self.db.session() as session:
            result = await session.execute(
                update(Follow)
                .where(col(Follow.id) == follow_id, col(Follow.status) == FollowStatus.ACTIVE)
                .values(status=FollowStatus.PAUSED, status_reason=reason[:300], updated_at=utcnow())
            )
            assert isinstance(result, CursorResult)  # an UPDATE's result counts its rows
            return bool(result.rowcount)

    async def follow_positions(
        self,
        follow_ids: Sequence[int],
        symbol: str,
        *,
        simulated: bool = False,
        position_side: PositionSide = PositionSide.BOTH,
    ) -> dict[int, Decimal]:
        """The copied (or, for dry runs, simulated) position of each follow in ``symbol`` on
        ``position_side``."""
        if not follow_ids:
            return {}
        async with self.db.session() as session:
            rows = await session.execute(
                select(col(FollowPosition.follow_id), col(FollowPosition.quantity)).where(
                    col(FollowPosition.follow_id).in_(follow_ids),
                    col(FollowPosition.symbol) == symbol,
                    col(FollowPosition.simulated) == simulated,
                    col(FollowPosition.position_side) == position_side,
                )
            )
            return {follow_id: quantity for follow_id, quantity in rows.all()}

    # -- copy orders --------------------------------------------------------------------------

    async def begin_copies(self, drafts: Sequence[CopyDraft]) -> set[str]:
        """Insert copy rows; return the client order ids that already existed (not re-inserted).

        An existing id means an earlier run planned this copy: the caller must look the order
        up instead of sending it again.
        """
        return (await self._writes.submit(_Submission(drafts=drafts))).already

    async def claim_pending(self, client_order_id: str) -> Claim | None:
        """Take this process's claim on a pending copy (see ``CopyJournal.claim_pending``): one
        conditional UPDATE, so of two processes claiming at once exactly one wins."""
        epoch = (await self._writes.submit(_Submission(claims=[client_order_id]))).claimed.get(client_order_id)
        return None if epoch is None else Claim(client_order_id, epoch)

    async def fence_send(self, fence: SendFence) -> bool:
        """Whether a send may go out now (see ``CopyJournal.fence_send``)."""
        cid = fence.claim.client_order_id
        return cid in (await self._writes.submit(_Submission(fences=[fence]))).fenced

    async def finish_copies(self, results: Sequence[CopyResult], position_changes: Sequence[PositionChange]) -> None:
        """Store outcomes that executed nothing (failed, skipped, still pending) and move dry runs'
        simulated positions. Never changes an order the venue has reported on."""
        await self._writes.submit(_Submission(results=results, position_changes=position_changes))

    async def record_reports(self, reports: Sequence[ReportedOrder]) -> list[Transition | None]:
        """Record venue reports (see the module's docstring); ``None`` for one that changed nothing."""
        return (await self._writes.submit(_Submission(reports=reports))).transitions

    async def write_off(self, entry: WriteOff) -> bool:
        """Take what was closed outside the copier off the ledger (see ``CopyJournal.write_off``)."""
        return entry.client_order_id in (await self._writes.submit(_Submission(write_offs=[entry]))).written_off

    async def open_copies(self) -> list[OpenCopy]:
        """Every sent order the venue still works (acknowledged or partially filled), oldest first."""
        return await self._open_copies(col(CopyOrder.state).in_(_OPEN))

    async def open_copies_of_master_order(self, master_id: int, order_id: str) -> list[OpenCopy]:
        """The open copies of one of the master's orders (its fills' copies still resting)."""
        fills = select(col(MasterFill.id)).where(
            col(MasterFill.master_id) == master_id, col(MasterFill.order_id) == order_id
        )
        return await self._open_copies(col(CopyOrder.state).in_(_OPEN), col(CopyOrder.fill_id).in_(fills))

    async def _open_copies(self, *where: Any) -> list[OpenCopy]:
        async with self.db.session() as session:
            rows = await session.execute(
                select(
                    col(CopyOrder.client_order_id),
                    col(CopyOrder.follow_id),
                    col(Follow.credential_id),
                    col(CopyOrder.symbol),
                    col(CopyOrder.state),
                    col(CopyOrder.created_at),
                    col(Follow.max_resting_minutes),
                    col(CopyOrder.protected),
                    col(CopyOrder.attempt),
                )
                .join(Follow, col(Follow.id) == col(CopyOrder.follow_id))
                .where(*where)
                .order_by(col(CopyOrder.created_at))
            )
            return [
                OpenCopy(cid, follow_id, credential_id, symbol, state, created_at, resting, protected, attempt)
                for cid, follow_id, credential_id, symbol, state, created_at, resting, protected, attempt in rows.all()
                if state is not None  # the query selects open states only
            ]

    async def pending_copies(self) -> list[PendingCopy]:
        """Copy orders journaled as pending whose outcome was never recorded (a crash mid-send)."""
        async with self.db.session() as session:
            rows = await session.execute(
                select(
                    col(CopyOrder.client_order_id),
                    col(CopyOrder.follow_id),
                    col(Follow.credential_id),
                    col(CopyOrder.symbol),
                    col(CopyOrder.fill_id),
                )
                .join(Follow, col(Follow.id) == col(CopyOrder.follow_id))
                .where(col(CopyOrder.status) == CopyStatus.PENDING)
            )
            return [PendingCopy(*row) for row in rows.all()]

    async def fees_to_come(self) -> list[FeeToCome]:
        """Sent orders whose recorded fill still waits for its commission, oldest first."""
        async with self.db.session() as session:
            rows = await session.execute(
                select(
                    col(CopyOrder.client_order_id),
                    col(CopyOrder.follow_id),
                    col(Follow.credential_id),
                    col(CopyOrder.symbol),
                    col(CopyOrder.venue_order_id),
                    col(CopyOrder.state),
                    col(CopyOrder.filled_quantity),
                    col(CopyOrder.average_price),
                    col(CopyOrder.fee),
                    col(CopyOrder.base_fee),
                    col(CopyOrder.completed_at),
                    col(CopyOrder.created_at),
                )
                .join(Follow, col(Follow.id) == col(CopyOrder.follow_id))
                .where(col(CopyOrder.fee_status) == FeeStatus.PENDING)
                .order_by(col(CopyOrder.created_at))
            )
            return [
                FeeToCome(*row[:5], OrderState(row.state), *row[6:10], row.completed_at or row.created_at)
                for row in rows.all()
            ]

    async def record_missing_fee(self, client_order_id: str, reason: str) -> bool:
        """Mark a commission that never came (see ``CopyJournal``): one conditional UPDATE."""
        async with self.db.session() as session:
            result = await session.execute(
                update(CopyOrder)
                .where(
                    col(CopyOrder.client_order_id) == client_order_id,
                    col(CopyOrder.fee_status) == FeeStatus.PENDING,
                )
                .values(fee_status=FeeStatus.MISSING, reason=reason[:500])
            )
            assert isinstance(result, CursorResult)  # an UPDATE's result counts its rows
            return bool(result.rowcount)

    async def master_id_of_follow(self, follow_id: int) -> int | None:
        async with self.db.session() as session:
            follow = await session.get(Follow, follow_id)
            return follow.master_id if follow else None

    async def all_active_follows(self) -> list[FollowSettings]:
        async with self.db.session() as session:
            rows = await session.execute(
                select(Follow).where(col(Follow.status) == FollowStatus.ACTIVE).order_by(col(Follow.id))
            )
            return [follow_settings(row) for row in rows.scalars()]

    async def real_positions(self, follow_id: int) -> list[FollowPosition]:
        """The follow's open copied positions (not the simulated ones of a dry run)."""
        async with self.db.session() as session:
            rows = await session.execute(
                select(FollowPosition).where(
                    col(FollowPosition.follow_id) == follow_id,
                    col(FollowPosition.simulated) == False,  # noqa: E712
                    col(FollowPosition.quantity) != ZERO,
                )
            )
            return list(rows.scalars())

    async def copied_notional(self, follow_id: int) -> Decimal:
        """What the follow's copied positions cost, all symbols together (for the total cap)."""
        return sum((abs(p.quantity) * (p.entry_price or ZERO) for p in await self.real_positions(follow_id)), ZERO)

    async def realized_since(self, follow_id: int, since: datetime) -> Decimal:
        """PnL realized by the follow's orders completed since ``since``, fees deducted."""
        async with self.db.session() as session:
            rows = await session.execute(
                select(col(CopyOrder.realized_pnl), col(CopyOrder.fee)).where(
                    col(CopyOrder.follow_id) == follow_id,
                    col(CopyOrder.completed_at) >= since,
                    col(CopyOrder.dry_run) == False,  # noqa: E712
                )
            )
            return sum((realized - fee for realized, fee in rows.all()), ZERO)

    # -- take-profit / stop-loss orders resting on venues ---------------------------------------

    async def protective_orders(
        self, follow_id: int, symbol: str | None = None, *, resting_only: bool = True
    ) -> list[ProtectiveOrder]:
        async with self.db.session() as session:
            query = select(ProtectiveOrderRow).where(col(ProtectiveOrderRow.follow_id) == follow_id)
            if symbol is not None:
                query = query.where(col(ProtectiveOrderRow.symbol) == symbol)
            if resting_only:
                query = query.where(col(ProtectiveOrderRow.status).in_(_RESTING))
            rows = await session.execute(query.order_by(col(ProtectiveOrderRow.created_at)))
            return [
                ProtectiveOrder(
                    client_order_id=row.client_order_id,
                    follow_id=row.follow_id,
                    symbol=row.symbol,
                    kind=OrderOrigin(row.kind),
                    side=row.side,
                    quantity=row.quantity,
                    trigger_price=row.trigger_price,
                    status=row.status,
                )
                for row in rows.scalars()
            ]

    async def follows_with_resting_protection(self) -> dict[int, set[str]]:
        """Follow id -> symbols with a take-profit / stop-loss order still resting (one query)."""
        async with self.db.session() as session:
            rows = await session.execute(
                select(col(ProtectiveOrderRow.follow_id), col(ProtectiveOrderRow.symbol)).where(
                    col(ProtectiveOrderRow.status).in_(_RESTING)
                )
            )
            found: dict[int, set[str]] = {}
            for follow_id, symbol in rows.all():
                found.setdefault(follow_id, set()).add(symbol)
            return found

    async def save_protective_order(self, order: ProtectiveOrder) -> bool:
        """Journal a protective order before it is sent; False if that id exists already."""
        try:
            async with self.db.session() as session:
                if await session.get(ProtectiveOrderRow, order.client_order_id) is not None:
                    return False
                session.add(
                    ProtectiveOrderRow(
                        client_order_id=order.client_order_id,
                        follow_id=order.follow_id,
                        symbol=order.symbol,
                        kind=order.kind,
                        side=order.side,
                        quantity=order.quantity,
                        trigger_price=order.trigger_price,
                        status=order.status,
                    )
                )
            return True
        except IntegrityError:
            return False

    async def set_protective_status(
        self, client_order_id: str, status: CopyStatus, venue_order_id: str | None = None
    ) -> None:
        async with self.db.session() as session:
            values: dict[str, Any] = {"status": status, "updated_at": utcnow()}
            if venue_order_id is not None:
                values["venue_order_id"] = venue_order_id
            await session.execute(
                update(ProtectiveOrderRow)
                .where(col(ProtectiveOrderRow.client_order_id) == client_order_id)
                .values(**values)
            )

    # -- reconciliation -----------------------------------------------------------------------

    async def master_symbols(self, master_id: int) -> set[str]:
        async with self.db.session() as session:
            rows = await session.execute(
                select(col(MasterPosition.symbol)).where(col(MasterPosition.master_id) == master_id)
            )
            return set(rows.scalars())

    async def master_positions(self, master_id: int) -> dict[str, Decimal]:
        """The master's net position by symbol (a hedge-mode master's long plus its short)."""
        async with self.db.session() as session:
            rows = await session.execute(
                select(col(MasterPosition.symbol), col(MasterPosition.quantity)).where(
                    col(MasterPosition.master_id) == master_id
                )
            )
            net: dict[str, Decimal] = {}
            for symbol, quantity in rows.all():
                net[symbol] = net.get(symbol, ZERO) + quantity
            return {symbol: quantity for symbol, quantity in net.items() if quantity != 0}

    async def master_legs(self, master_id: int) -> dict[tuple[str, PositionSide], Decimal]:
        """The master's open positions per (symbol, position side): a hedge-mode master's long
        and short apart, a one-way master's net as BOTH."""
        async with self.db.session() as session:
            rows = await session.execute(
                select(
                    col(MasterPosition.symbol), col(MasterPosition.position_side), col(MasterPosition.quantity)
                ).where(col(MasterPosition.master_id) == master_id, col(MasterPosition.quantity) != ZERO)
            )
            return {(symbol, PositionSide(side)): quantity for symbol, side, quantity in rows.all()}

    async def replace_drifts(
        self, follow_id: int, drifts: dict[str, tuple[Decimal, Decimal]]
    ) -> dict[str, tuple[Decimal, Decimal]]:
        """Store this reconciliation's drifts (symbol -> (expected, actual)); returns the previous ones."""
        async with self.db.session() as session:
            rows = list(
                (
                    await session.execute(select(PositionDrift).where(col(PositionDrift.follow_id) == follow_id))
                ).scalars()
            )
            previous = {row.symbol: (row.expected, row.actual) for row in rows}
            for row in rows:
                await session.delete(row)
            await session.flush()
            for symbol, (expected, actual) in drifts.items():
                session.add(PositionDrift(follow_id=follow_id, symbol=symbol, expected=expected, actual=actual))
            return previous

    async def record_drift(self, follow_id: int, label: str, expected: Decimal, actual: Decimal) -> None:
        """One drift found while copying, stored beside the others (see ``CopyJournal.record_drift``)."""
        async with self.db.session() as session:
            row = await session.get(PositionDrift, (follow_id, label))
            if row is None:
                session.add(PositionDrift(follow_id=follow_id, symbol=label, expected=expected, actual=actual))
            else:
                row.expected, row.actual, row.detected_at = expected, actual, utcnow()

    async def drifts(self, follow_id: int) -> list[PositionDrift]:
        async with self.db.session() as session:
            rows = await session.execute(
                select(PositionDrift)
                .where(col(PositionDrift.follow_id) == follow_id)
                .order_by(col(PositionDrift.symbol))
            )
            return list(rows.scalars())

    async def copy_order(self, client_order_id: str) -> CopyOrder | None:
        async with self.db.session() as session:
            return await session.get(CopyOrder, client_order_id)

    async def fill(self, fill_id: int) -> MasterFill | None:
        async with self.db.session() as session:
            return await session.get(MasterFill, fill_id)

    async def unplanned_fills(self) -> list[MasterFill]:
        async with self.db.session() as session:
            rows = await session.execute(
                select(MasterFill).where(col(MasterFill.planned) == False).order_by(col(MasterFill.id))  # noqa: E712
            )
            return list(rows.scalars())


_POSITIONS = FollowPosition.metadata.tables[FollowPosition.__tablename__]
_EXECUTIONS = CopyExecution.metadata.tables[CopyExecution.__tablename__]
_POSITION_UPDATE = (
    update(_POSITIONS)
    .where(
        _POSITIONS.c.follow_id == bindparam("b_follow_id"),
        _POSITIONS.c.symbol == bindparam("b_symbol"),
        _POSITIONS.c.simulated == bindparam("b_simulated"),
        _POSITIONS.c.position_side == bindparam("b_position_side"),
    )
    .values(
        quantity=bindparam("b_quantity"),
        entry_price=bindparam("b_entry_price"),
        realized_pnl=bindparam("b_realized_pnl"),
        fees=bindparam("b_fees"),
        updated_at=bindparam("b_updated_at"),
    )
)
_REPORT_UPDATE = (  # compare-and-set: only over the state and fill this report was applied to
    update(_COPY_ORDERS)
    .where(
        _COPY_ORDERS.c.client_order_id == bindparam("b_cid"),
        _COPY_ORDERS.c.state == bindparam("b_state_before"),
        _COPY_ORDERS.c.filled_quantity == bindparam("b_filled_before"),
        _COPY_ORDERS.c.fee_status == bindparam("b_fee_status_before"),  # a fee-only report counts once
    )
    .values(
        state=bindparam("b_state"),
        status=bindparam("b_status"),
        filled_quantity=bindparam("b_filled"),
        average_price=bindparam("b_price"),
        fee=bindparam("b_fee"),
        base_fee=bindparam("b_base_fee"),
        fee_status=bindparam("b_fee_status"),
        venue_order_id=bindparam("b_venue_order_id"),
        reason=bindparam("b_reason"),
        realized_pnl=bindparam("b_realized"),
        completed_at=bindparam("b_completed_at"),
        latency_ms=bindparam("b_latency_ms"),
    )
)

_PositionKey = tuple[int, str, bool, PositionSide]  # follow, symbol, simulated, position side


@dataclass(slots=True)
class _Positions:
    """The ``follow_positions`` rows a batch moves, as plain values (no ORM tracking: a fill for
    10,000 followers moves 10,000 rows), moved by ``core.ledger.apply_execution``."""

    holdings: dict[_PositionKey, Holding]
    stored: set[_PositionKey]
    touched: set[_PositionKey]

    @classmethod
    async def load(cls, session: AsyncSession, keys: set[tuple[int, str]]) -> _Positions:
        follow_ids = sorted({k[0] for k in keys})
        symbols = sorted({k[1] for k in keys})
        holdings: dict[_PositionKey, Holding] = {}
        columns = (
            _POSITIONS.c.follow_id,
            _POSITIONS.c.symbol,
            _POSITIONS.c.simulated,
            _POSITIONS.c.position_side,
            _POSITIONS.c.quantity,
            _POSITIONS.c.entry_price,
            _POSITIONS.c.realized_pnl,
            _POSITIONS.c.fees,
        )
        for start in range(0, len(follow_ids), 500):
            found = await session.execute(
                select(*columns)
                .where(_POSITIONS.c.follow_id.in_(follow_ids[start : start + 500]), _POSITIONS.c.symbol.in_(symbols))
                .order_by(*columns[:4])  # rows locked in one order by every writer: no deadlock
                .with_for_update()  # until this transaction commits: no lost update from another process
            )
            for follow_id, symbol, simulated, side, quantity, entry_price, realized_pnl, fees in found:
                key = (follow_id, symbol, bool(simulated), PositionSide(side))
                holdings[key] = Holding(quantity, entry_price, realized_pnl, fees)
        return cls(holdings, set(holdings), set())

    def apply(self, key: _PositionKey, signed: Decimal, price: Decimal, fee: Decimal) -> Decimal:
        """Move one position by an execution; returns the PnL it realized."""
        holding, realized = apply_execution(self.holdings.get(key, Holding()), signed, price, fee)
        self.holdings[key] = holding
        self.touched.add(key)
        return realized

    async def save(self, session: AsyncSession, now: datetime) -> None:
        updates, inserts = [], []
        for key in sorted(self.touched):
            follow_id, symbol, simulated, position_side = key
            holding = self.holdings[key]
            if key in self.stored:
                updates.append(
                    {
                        "b_follow_id": follow_id,
                        "b_symbol": symbol,
                        "b_simulated": simulated,
                        "b_position_side": position_side,
                        "b_quantity": holding.quantity,
                        "b_entry_price": holding.entry_price,
                        "b_realized_pnl": holding.realized_pnl,
                        "b_fees": holding.fees,
                        "b_updated_at": now,
                    }
                )
            else:
                inserts.append(
                    {
                        "follow_id": follow_id,
                        "symbol": symbol,
                        "simulated": simulated,
                        "position_side": position_side,
                        "quantity": holding.quantity,
                        "entry_price": holding.entry_price,
                        "realized_pnl": holding.realized_pnl,
                        "fees": holding.fees,
                        "updated_at": now,
                    }
                )
        if updates:
            await session.execute(_POSITION_UPDATE, updates)
        if inserts:
            await session.execute(insert(_POSITIONS), inserts)


async def _move_positions(session: AsyncSession, changes: Sequence[PositionChange], now: datetime) -> None:
    """Apply dry runs' simulated fills in order."""
    positions = await _Positions.load(session, {(c.follow_id, c.symbol) for c in changes})
    for change in changes:
        key = (change.follow_id, change.symbol, change.simulated, change.position_side)
        positions.apply(key, change.signed_quantity, change.price, ZERO)
    await positions.save(session, now)


_REPORTED_COLUMNS = (
    _COPY_ORDERS.c.client_order_id,
    _COPY_ORDERS.c.follow_id,
    _COPY_ORDERS.c.user_id,
    _COPY_ORDERS.c.fill_id,
    _COPY_ORDERS.c.origin,
    _COPY_ORDERS.c.position_side,
    _COPY_ORDERS.c.symbol,
    _COPY_ORDERS.c.side,
    _COPY_ORDERS.c.requested_quantity,
    _COPY_ORDERS.c.master_price,
    _COPY_ORDERS.c.venue_order_id,
    _COPY_ORDERS.c.state,
    _COPY_ORDERS.c.filled_quantity,
    _COPY_ORDERS.c.average_price,
    _COPY_ORDERS.c.fee,
    _COPY_ORDERS.c.base_fee,
    _COPY_ORDERS.c.fee_status,
    _COPY_ORDERS.c.reason,
    _COPY_ORDERS.c.realized_pnl,
    _COPY_ORDERS.c.latency_ms,
)


@dataclass(slots=True)
class _Order:
    """One copy order while a batch records reports about it (its row as first read, then as
    each report leaves it)."""

    row: Any
    progress: OrderProgress
    venue_order_id: str | None
    reason: str | None
    realized: Decimal
    latency_ms: float | None
    read_state: OrderState
    read_filled: Decimal
    read_fee_status: FeeStatus
    changed: bool = False


async def _record_reports(
    session: AsyncSession, reports: Sequence[ReportedOrder], now: datetime
) -> list[Transition | None]:
    """Apply reports in order to their orders, insert the new executions, move the copied positions
    they belong to, and write each changed order back with a compare-and-set on what was read."""
    ids = sorted({r.report.client_order_id for r in reports})
    orders: dict[str, _Order] = {}
    for start in range(0, len(ids), 500):
        rows = await session.execute(
            select(*_REPORTED_COLUMNS).where(_COPY_ORDERS.c.client_order_id.in_(ids[start : start + 500]))
        )
        for row in rows:
            if row.state is None:
                continue  # never sent (skipped, dry run): nothing a venue could report on
            state = OrderState(row.state)
            fee_status = FeeStatus(row.fee_status)
            pending = fee_status is FeeStatus.PENDING
            orders[row.client_order_id] = _Order(
                row,
                OrderProgress(state, row.filled_quantity, row.average_price, row.fee, row.base_fee, pending),
                row.venue_order_id,
                row.reason,
                row.realized_pnl,
                row.latency_ms,
                state,
                row.filled_quantity,
                fee_status,
            )
    positions = await _Positions.load(session, {(o.row.follow_id, o.row.symbol) for o in orders.values()})
    transitions: list[Transition | None] = []
    executions: list[dict[str, Any]] = []
    late_fees: dict[tuple[str, Decimal], Decimal] = {}  # (order, its execution's filled_after) -> fee added
    for reported in reports:
        report = reported.report
        order = orders.get(report.client_order_id)
        if order is None:
            transitions.append(None)
            continue
        if reported.expired and report.state is OrderState.CANCELED:
            report = replace(report, state=OrderState.EXPIRED)
        step = advance(order.progress, report)
        if step is None:
            transitions.append(None)
            continue
        row = order.row
        side = Side(row.side) if row.side is not None else None
        origin = OrderOrigin(row.origin)
        moves = origin not in _NOT_LEDGER
        executed = signed = realized = ZERO
        if step.increment is not None and side is not None and not step.increment.quantity:
            # a commission that came after its fill: the position's fees and the last execution's
            key = (row.follow_id, row.symbol, False, PositionSide(row.position_side))
            if moves:
                positions.apply(key, ZERO, step.increment.price, step.increment.fee)
            late_key = (row.client_order_id, step.progress.filled_quantity)
            late_fees[late_key] = late_fees.get(late_key, ZERO) + step.increment.fee
        elif step.increment is not None and side is not None:
            increment = step.increment
            executed = increment.quantity
            signed = ledger_quantity(side, increment.quantity, increment.base_fee)
            if moves:
                key = (row.follow_id, row.symbol, False, PositionSide(row.position_side))
                realized = positions.apply(key, signed, increment.price, increment.fee)
            executions.append(
                {
                    "client_order_id": row.client_order_id,
                    "filled_after": step.progress.filled_quantity,
                    "trade_id": _trade_id(report, order.progress.filled_quantity),
                    "follow_id": row.follow_id,
                    "symbol": row.symbol,
                    "side": side,
                    "quantity": increment.quantity,
                    "ledger_quantity": signed,
                    "price": increment.price,
                    "fee": increment.fee,
                    "moved_ledger": moves,
                    "written_off": False,
                    "realized_pnl": realized,
                    "recorded_at": now,
                }
            )
        state_before = order.progress.state
        order.progress = step.progress
        order.venue_order_id = report.venue_order_id or order.venue_order_id
        order.reason = reported.reason or report.reason or order.reason
        order.realized += realized
        if order.latency_ms is None:
            order.latency_ms = reported.latency_ms
        order.changed = True
        transitions.append(
            Transition(
                client_order_id=row.client_order_id,
                follow_id=row.follow_id,
                user_id=row.user_id,
                fill_id=row.fill_id,
                origin=origin,
                symbol=row.symbol,
                side=side,
                requested_quantity=row.requested_quantity,
                master_price=row.master_price,
                venue_order_id=order.venue_order_id,
                state_before=state_before,
                state=step.progress.state,
                status=step.progress.state.copy_status(step.progress.filled_quantity),
                filled_quantity=step.progress.filled_quantity,
                average_price=step.progress.average_price,
                fee=step.progress.fee,
                reason=order.reason,
                executed=executed,
                ledger_quantity=signed if moves else ZERO,
                realized_pnl=realized,
                position_side=PositionSide(row.position_side),
            )
        )
    changed = [o for o in orders.values() if o.changed]
    if not changed:
        return transitions
    if executions:
        await session.execute(insert(_EXECUTIONS), executions)
    await _add_late_fees(session, late_fees)
    result = await session.execute(
        _REPORT_UPDATE,
        [
            {
                "b_cid": o.row.client_order_id,
                "b_state_before": o.read_state,
                "b_filled_before": o.read_filled,
                "b_fee_status_before": o.read_fee_status,
                "b_state": o.progress.state,
                "b_status": o.progress.state.copy_status(o.progress.filled_quantity),
                "b_filled": o.progress.filled_quantity,
                "b_price": o.progress.average_price,
                "b_fee": o.progress.fee,
                "b_base_fee": o.progress.base_fee,
                "b_fee_status": _fee_status(o),
                "b_venue_order_id": o.venue_order_id,
                "b_reason": o.reason[:500] if o.reason else None,
                "b_realized": o.realized,
                "b_completed_at": now if o.progress.state.is_terminal else None,
                "b_latency_ms": o.latency_ms,
            }
            for o in changed
        ],
    )
    if isinstance(result, CursorResult) and result.rowcount not in (-1, len(changed)):
        raise _LostRace(f"{len(changed) - result.rowcount} copy orders changed while their reports were recorded")
    await positions.save(session, now)
    return transitions


def _fee_status(order: _Order) -> FeeStatus:
    if order.progress.fee_pending:
        return FeeStatus.PENDING
    return FeeStatus.COUNTED if order.read_fee_status is FeeStatus.PENDING else order.read_fee_status


async def _add_late_fees(session: AsyncSession, late_fees: dict[tuple[str, Decimal], Decimal]) -> None:
    """Commissions that came after their fill, added to the execution they were charged for (the
    last one recorded: the statistics' replay counts them there)."""
    for (client_order_id, filled_after), fee in sorted(late_fees.items()):
        where = (
            _EXECUTIONS.c.client_order_id == client_order_id,
            _EXECUTIONS.c.filled_after == filled_after,
        )
        recorded = (await session.execute(select(_EXECUTIONS.c.fee).where(*where))).scalar_one_or_none()
        if recorded is not None:
            await session.execute(update(_EXECUTIONS).where(*where).values(fee=recorded + fee))


_PROTECTIVE = ProtectiveOrderRow.metadata.tables[ProtectiveOrderRow.__tablename__]
_DRIFTS = PositionDrift.metadata.tables[PositionDrift.__tablename__]
#: an order of the follow that may still execute unrecorded: pending, resting or partially filled
_UNSETTLED = (OrderState.PENDING, *_OPEN)


async def _write_offs(session: AsyncSession, entries: Sequence[WriteOff], now: datetime) -> set[str]:
    """Record each write-off whose ledger is complete (``CopyJournal.write_off``): a ``copy_orders``
    row of its own (never sent: no state), the execution that moves the copied position through
    ``core.ledger.write_off`` (``copy_executions.written_off``, so a replay of the executions moves
    it the same way), and the stored drift it resolves gone. Returns the ids recorded."""
    ids = [e.client_order_id for e in entries]
    known = set(
        (
            await session.execute(select(_COPY_ORDERS.c.client_order_id).where(_COPY_ORDERS.c.client_order_id.in_(ids)))
        ).scalars()
    )
    positions = await _Positions.load(session, {(e.follow_id, e.symbol) for e in entries})
    recorded: set[str] = set()
    orders, executions = [], []
    for entry in entries:
        if entry.client_order_id in known or entry.client_order_id in recorded:
            continue
        key = (entry.follow_id, entry.symbol, False, entry.position_side)
        holding = positions.holdings.get(key, Holding())
        if holding.quantity != entry.expected or await _may_still_execute(session, entry):
            continue  # the ledger moved, or may be missing an execution: the venue's shortfall is not proven
        positions.holdings[key] = write_off(holding, entry.signed_quantity)
        positions.touched.add(key)
        recorded.add(entry.client_order_id)
        orders.append(
            {
                "client_order_id": entry.client_order_id,
                "fill_id": entry.fill_id,
                "follow_id": entry.follow_id,
                "user_id": entry.user_id,
                "symbol": entry.symbol,
                "side": entry.side,
                "order_type": OrderType.MARKET,
                "reduce_only": False,
                "status": CopyStatus.WRITTEN_OFF,
                "state": None,
                "reason_code": OrderOrigin.WRITE_OFF.value,
                "reason": entry.reason[:500],
                "requested_quantity": entry.quantity,
                "filled_quantity": ZERO,
                "average_price": None,
                "limit_price": None,
                "protected": False,
                "attempt": 0,
                "master_price": entry.reference_price,
                "fee": ZERO,
                "base_fee": ZERO,
                "venue_order_id": None,
                "dry_run": False,
                "origin": OrderOrigin.WRITE_OFF,
                "position_side": entry.position_side,
                "realized_pnl": ZERO,
                "created_at": now,
                "completed_at": now,
                "latency_ms": None,
                "lease_owner": None,
                "lease_until": None,
                "claim_epoch": 0,
                "send_started_at": None,
                "send_deadline": None,
            }
        )
        executions.append(
            {
                "client_order_id": entry.client_order_id,
                "filled_after": entry.quantity,
                "trade_id": None,
                "follow_id": entry.follow_id,
                "symbol": entry.symbol,
                "side": entry.side,
                "quantity": entry.quantity,
                "ledger_quantity": entry.signed_quantity,
                "price": holding.entry_price if holding.entry_price is not None else entry.reference_price,
                "fee": ZERO,
                "moved_ledger": True,
                "written_off": True,
                "realized_pnl": ZERO,
                "recorded_at": now,
            }
        )
    if not recorded:
        return recorded
    await session.execute(insert(_COPY_ORDERS), orders)
    await session.execute(insert(_EXECUTIONS), executions)
    for entry in entries:
        if entry.client_order_id in recorded:
            await session.execute(
                _DRIFTS.delete().where(_DRIFTS.c.follow_id == entry.follow_id, _DRIFTS.c.symbol == entry.drift_label)
            )
    await positions.save(session, now)
    return recorded


async def _may_still_execute(session: AsyncSession, entry: WriteOff) -> bool:
    """Whether an order of the follow in the write-off's symbol may still execute without the
    ledger knowing yet: a copy or direct order pending, resting or partially filled, or a
    take-profit / stop-loss resting on the venue that the venue did not show untriggered after the
    position was read (it may have triggered there unseen)."""
    copies = select(_COPY_ORDERS.c.client_order_id).where(
        _COPY_ORDERS.c.follow_id == entry.follow_id,
        _COPY_ORDERS.c.symbol == entry.symbol,
        _COPY_ORDERS.c.state.in_([s.value for s in _UNSETTLED]),
    )
    protective = select(_PROTECTIVE.c.client_order_id).where(
        _PROTECTIVE.c.follow_id == entry.follow_id,
        _PROTECTIVE.c.symbol == entry.symbol,
        _PROTECTIVE.c.status.in_([s.value for s in _RESTING]),
        _PROTECTIVE.c.client_order_id.not_in(entry.untriggered),
    )
    found = await session.execute(copies.union_all(protective).limit(1))
    return found.first() is not None


def _trade_id(report: Any, filled_before: Decimal) -> str | None:
    """The venue's trade id for an increment made of exactly one reported execution."""
    if len(report.executions) != 1:
        return None
    execution = report.executions[0]
    return str(execution.trade_id) if execution.quantity == report.filled_quantity - filled_before else None
