"""The journal and the copy ledger as core sees them: the contracts and the values they carry.

``CopyJournal`` is what ``CopyEngine`` needs (master fills, copy orders, follows, and the copied
positions exits are sized against); ``RiskLedger`` is what ``RiskService`` needs (copied
positions, resting take-profit / stop-loss orders, drifts, the master's positions). Both are
Protocols: ``storage.journal.JournalStore`` satisfies them structurally, and core never imports
storage.

What core *writes* crosses as frozen dataclasses defined here. What core only *reads* back from
a row (a journaled fill, a copy order, a copied position, a drift) is a Protocol of exactly the
attributes it reads, as read-only properties: storage hands over its rows unchanged, so its other
readers (the bot, the statistics) keep every column, and core can neither depend on a column it
does not name nor write to a row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from core.model import (
    CopyResult,
    CopyStatus,
    Fill,
    FollowSettings,
    OrderOrigin,
    OrderReport,
    OrderState,
    OrderType,
    PositionSide,
    Side,
)
from core.records import CopyOrderRecord, DriftRecord, MasterFillRecord, PositionRecord

# -- values core writes --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A master fill as journaled: its id, and the master's position in its symbol before it."""

    fill_id: int
    master_position_before: Decimal


@dataclass(frozen=True, slots=True)
class CopyDraft:
    """A copy order row written before sending (pending) or as a final skip."""

    client_order_id: str
    fill_id: int | None  # None for orders the copier places itself (take-profit, sync, ...)
    follow_id: int
    user_id: int
    symbol: str
    side: Side | None
    order_type: OrderType
    reduce_only: bool
    status: CopyStatus
    requested_quantity: Decimal | None
    master_price: Decimal
    limit_price: Decimal | None = None
    reason_code: str | None = None
    reason: str | None = None
    dry_run: bool = False
    origin: OrderOrigin = OrderOrigin.COPY
    position_side: PositionSide = PositionSide.BOTH  # the copied position its executions move
    protected: bool = False  # a protected limit (``OrderIntent.protected``)
    attempt: int = 0  # a protected limit's re-send number (0: the first send)


@dataclass(frozen=True, slots=True)
class PositionChange:
    """A dry run's simulated fill applied to its simulated ledger (real positions move only on
    recorded executions: ``CopyJournal.record_reports``)."""

    follow_id: int
    symbol: str
    signed_quantity: Decimal
    price: Decimal
    simulated: bool = False
    client_order_id: str | None = None  # the order whose fill this is: gets the realized PnL
    position_side: PositionSide = PositionSide.BOTH


@dataclass(frozen=True, slots=True)
class WriteOff:
    """What the ledger held beyond the venue's position when an order closing it was bounded by it
    (closed outside the copier: by hand, a liquidation), taken off the copied position as a journal
    entry of its own (``OrderOrigin.WRITE_OFF``, never sent). ``expected``: the copied position
    (signed) it was computed against; ``side``: the side that closes it."""

    client_order_id: str  # ``ids.write_off_id`` of the order whose decision found it
    fill_id: int | None  # the master fill whose exit found it (None: an order the copier decided)
    follow_id: int
    user_id: int
    symbol: str
    position_side: PositionSide  # the copied position it comes off
    side: Side
    quantity: Decimal  # > 0, at most ``abs(expected)``
    expected: Decimal
    reference_price: Decimal  # the master's price, or the order's: shown beside it, never PnL
    reason: str
    drift_label: str  # the drift it resolves (``model.drift_label``): no longer stored once written off
    #: the take-profit / stop-loss orders of the symbol the venue showed still resting after the
    #: position was read (so none of them closed what is missing); any other resting one blocks it
    untriggered: tuple[str, ...] = ()

    @property
    def signed_quantity(self) -> Decimal:
        return self.quantity * self.side.sign


@dataclass(frozen=True, slots=True)
class ReportedOrder:
    """A venue's report about one journaled order, to be recorded."""

    report: OrderReport
    latency_ms: float | None = None  # master fill received -> this answer (the first answer only)
    reason: str | None = None  # why the order ended, in words (e.g. the follow's max resting time)
    expired: bool = False  # the copier cancelled it on its own rule: recorded as EXPIRED, not CANCELED


@dataclass(frozen=True, slots=True)
class Transition:
    """A recorded change of one order: the journal's answer to the report that won its
    compare-and-set. Only the one who gets it notifies, so a copy is notified once per change."""

    client_order_id: str
    follow_id: int
    user_id: int
    fill_id: int | None
    origin: OrderOrigin
    symbol: str
    side: Side | None
    requested_quantity: Decimal | None
    master_price: Decimal
    venue_order_id: str | None
    state_before: OrderState | None
    state: OrderState
    status: CopyStatus
    filled_quantity: Decimal  # cumulative
    average_price: Decimal | None
    fee: Decimal  # cumulative, quote
    reason: str | None
    executed: Decimal  # gross quantity this transition added
    ledger_quantity: Decimal  # signed change of the copied position (zero when it moves no ledger)
    realized_pnl: Decimal  # realized by this transition's executions
    position_side: PositionSide = PositionSide.BOTH  # the copied position it moved


@dataclass(frozen=True, slots=True)
class OpenCopy:
    """A sent order not in a terminal state: the tracker follows it to its end."""

    client_order_id: str
    follow_id: int
    credential_id: str | None  # None once the follow's key was removed
    symbol: str
    state: OrderState
    created_at: datetime
    max_resting_minutes: int | None
    protected: bool = False  # a protected limit: its window is short (``EngineConfig.protected_window``)
    attempt: int = 0  # its re-send number


@dataclass(frozen=True, slots=True)
class FeeToCome:
    """A sent order recorded with a fill whose commission has not come yet (``FeeStatus.PENDING``):
    what the journal holds of it, to be completed by a fee-only report of the same fill."""

    client_order_id: str
    follow_id: int
    credential_id: str | None  # None once the follow's key was removed
    symbol: str
    venue_order_id: str | None
    state: OrderState
    filled_quantity: Decimal
    average_price: Decimal | None
    fee: Decimal
    base_fee: Decimal
    since: datetime  # when the order ended (when it was sent, while it is still open)

    def report(self) -> OrderReport:
        """The order as recorded, its fee still to come: the venue completes it."""
        return OrderReport(
            self.venue_order_id or "",
            self.client_order_id,
            self.state,
            self.filled_quantity,
            self.average_price,
            self.fee,
            self.base_fee,
            fee_pending=True,
        )


#: the epoch of a pending row's first claim: the writer that inserts it holds it
FIRST_EPOCH = 1


@dataclass(frozen=True, slots=True)
class Claim:
    """A writer's claim on one pending copy: the row's epoch when it was taken. Every claim takes
    the next epoch, so a later claim (another process's, after the lease ran out) supersedes it."""

    client_order_id: str
    epoch: int


@dataclass(frozen=True, slots=True)
class SendFence:
    """Asked of the journal immediately before every send of a pending copy."""

    claim: Claim
    #: the venue-clock deadline the request will be signed with (None: the venue has none)
    deadline: datetime | None
    #: a copy of a master fill goes out only while its follow is active (a stop fences it)
    follow_active: bool


@dataclass(frozen=True, slots=True)
class PendingCopy:
    """A copy order journaled as pending whose outcome was never recorded (a crash mid-send)."""

    client_order_id: str
    follow_id: int
    credential_id: str | None  # None once the follow's key was removed
    symbol: str
    fill_id: int | None


@dataclass(frozen=True, slots=True)
class ProtectiveOrder:
    """A take-profit or stop-loss order for one follow's copied position, resting on the venue.

    ``RiskService`` decides it and journals it before sending; the journal gives it back while
    it rests (status PENDING or PLACED)."""

    client_order_id: str
    follow_id: int
    symbol: str
    kind: OrderOrigin  # TAKE_PROFIT or STOP_LOSS
    side: Side
    quantity: Decimal
    trigger_price: Decimal
    status: CopyStatus


# -- the contracts -------------------------------------------------------------------------------


class CopyJournal(Protocol):
    """The engine's journal: the order of its writes is what makes copying at most once."""

    async def journal_fill(self, fill: Fill) -> JournalEntry | None:
        """Record the master's execution before anything is placed; ``None`` for a repeat
        delivery of the same trade. Raises ``NotFound`` for an unknown or retired master."""
        ...

    async def mark_planned(self, fill_id: int) -> None:
        """Every follow of the fill has its copy order row: a restart need not re-plan it."""
        ...

    async def unplanned_fills(self) -> Sequence[MasterFillRecord]:
        """Fills journaled before a crash whose copies were not all planned, oldest first."""
        ...

    async def fill(self, fill_id: int) -> MasterFillRecord | None: ...

    async def active_follows(self, master_id: int) -> list[FollowSettings]: ...

    async def active_follow_credentials(self) -> list[str]:
        """The credential of every active follow, of every master."""
        ...

    async def master_id_of_follow(self, follow_id: int) -> int | None: ...

    async def pause_follow(self, follow_id: int, reason: str) -> bool:
        """Pause an active follow; False if it was not active."""
        ...

    async def follow_positions(
        self,
        follow_ids: Sequence[int],
        symbol: str,
        *,
        simulated: bool = False,
        position_side: PositionSide = PositionSide.BOTH,
    ) -> dict[int, Decimal]:
        """The copied (or, for dry runs, simulated) position of each follow in ``symbol`` on
        ``position_side`` (LONG / SHORT: the copies of a hedge-mode master's legs)."""
        ...

    async def copied_notional(self, follow_id: int) -> Decimal:
        """What the follow's copied positions cost, all symbols together."""
        ...

    @property
    def lease_seconds(self) -> float:
        """How long a pending copy this journal inserts or claims stays its writer's alone."""
        ...

    async def begin_copies(self, drafts: Sequence[CopyDraft]) -> set[str]:
        """Journal copy orders before sending; returns the ids journaled before (never resend
        those without asking the venue). A new pending row is claimed by this journal's writer
        (``FIRST_EPOCH``) for ``lease_seconds``: another process's settle job leaves it alone
        meanwhile."""
        ...

    async def claim_pending(self, client_order_id: str) -> Claim | None:
        """Claim a pending copy whose lease is free, run out or this writer's own, for
        ``lease_seconds`` (on the database's clock): ``None`` when the row is no longer pending or
        another writer's lease on it is still running (its send may be in flight there)."""
        ...

    async def fence_send(self, fence: SendFence) -> bool:
        """One conditional write immediately before a send: granted only while ``fence.claim`` is
        still the row's current claim (and its follow active, where asked); records when the send
        began and its deadline, and renews the lease. ``False``: superseded — do not send."""
        ...

    async def finish_copies(self, results: Sequence[CopyResult], position_changes: Sequence[PositionChange]) -> None:
        """Store outcomes that executed nothing (failed, skipped, still pending) and move dry
        runs' simulated positions."""
        ...

    async def record_reports(self, reports: Sequence[ReportedOrder]) -> list[Transition | None]:
        """Record venue reports, each atomically: the order's new state and cumulative fill
        (compare-and-set: a terminal order never changes, the filled quantity never decreases),
        its new executions, and the copied position they move (unless the order's origin moves
        no ledger). ``None`` for a report that changed nothing."""
        ...

    async def open_copies(self) -> Sequence[OpenCopy]:
        """Every sent order not in a terminal state (acknowledged or partially filled)."""
        ...

    async def open_copies_of_master_order(self, master_id: int, order_id: str) -> Sequence[OpenCopy]:
        """The open copies of one order of the master (cancelled there: cancelled here)."""
        ...

    async def pending_copies(self) -> Sequence[PendingCopy]: ...

    async def fees_to_come(self) -> Sequence[FeeToCome]:
        """Every sent order whose recorded fill still waits for its commission, oldest first."""
        ...

    async def record_missing_fee(self, client_order_id: str, reason: str) -> bool:
        """The commission of an order waiting for it never came: marked ``FeeStatus.MISSING`` with
        ``reason``; False when it was no longer waiting (it came meanwhile)."""
        ...

    async def copy_order(self, client_order_id: str) -> CopyOrderRecord | None: ...

    async def record_drift(self, follow_id: int, label: str, expected: Decimal, actual: Decimal) -> None:
        """Store one drift found while copying (an exit bounded by the venue's position whose
        write-off must wait), beside the others the last reconciliation found (the next one
        replaces them all)."""
        ...

    async def protective_orders(self, follow_id: int, symbol: str | None = None) -> Sequence[ProtectiveOrder]:
        """The follow's take-profit / stop-loss orders resting on the venue (of ``symbol``)."""
        ...

    async def write_off(self, entry: WriteOff) -> bool:
        """Record ``entry`` and move the copied position by it (``core.ledger.write_off``), in one
        transaction, only while the ledger is complete: its position is still ``entry.expected`` and
        no order of the follow in that symbol may still execute unrecorded (a copy pending, resting
        or partially filled; a take-profit or stop-loss resting on the venue, unless the venue
        showed it still resting: ``entry.untriggered``), since its execution could be what the
        venue shows missing. Drops the stored drift it resolves. True when it was
        recorded now; False when recorded before or when it must wait (the caller records the drift)."""
        ...


class RiskLedger(Protocol):
    """The risk controls' view of the ledger: copied positions and what protects them."""

    async def all_active_follows(self) -> list[FollowSettings]: ...

    async def pause_follow(self, follow_id: int, reason: str) -> bool:
        """Pause an active follow; False if it was not active."""
        ...

    async def real_positions(self, follow_id: int) -> Sequence[PositionRecord]:
        """The follow's open copied positions (not the simulated ones of a dry run)."""
        ...

    async def realized_since(self, follow_id: int, since: datetime) -> Decimal:
        """PnL realized by the follow's orders completed since ``since``, fees deducted."""
        ...

    async def protective_orders(self, follow_id: int, symbol: str | None = None) -> Sequence[ProtectiveOrder]:
        """The follow's take-profit / stop-loss orders still resting, oldest first."""
        ...

    async def follows_with_resting_protection(self) -> dict[int, set[str]]:
        """Follow id -> symbols with a take-profit / stop-loss order still resting."""
        ...

    async def save_protective_order(self, order: ProtectiveOrder) -> bool:
        """Journal a protective order before it is sent; False if that id exists already."""
        ...

    async def set_protective_status(
        self, client_order_id: str, status: CopyStatus, venue_order_id: str | None = None
    ) -> None: ...

    async def master_symbols(self, master_id: int) -> set[str]: ...

    async def master_positions(self, master_id: int) -> dict[str, Decimal]:
        """The master's open positions (non-zero), by symbol."""
        ...

    async def master_legs(self, master_id: int) -> dict[tuple[str, PositionSide], Decimal]:
        """The master's open positions (non-zero) per (symbol, position side)."""
        ...

    async def replace_drifts(
        self, follow_id: int, drifts: dict[str, tuple[Decimal, Decimal]]
    ) -> dict[str, tuple[Decimal, Decimal]]:
        """Store this reconciliation's drifts (symbol -> (expected, actual)); returns the previous ones."""
        ...

    async def drifts(self, follow_id: int) -> Sequence[DriftRecord]: ...
