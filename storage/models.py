"""Every table. The only plaintext about a credential is its venue, label and a fingerprint."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, LargeBinary, UniqueConstraint
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from core.api_tokens import TokenScope
from core.model import (
    DEFAULT_MAX_RESTING_MINUTES,
    DEFAULT_REPRICE_ATTEMPTS,
    ClosedMarketAction,
    CopyStatus,
    EntrySides,
    FeeStatus,
    FollowStatus,
    MarginMode,
    MasterStatus,
    OrderOrigin,
    OrderState,
    OrderType,
    OversizeAction,
    PositionSide,
    RemainderAction,
    Side,
    SizingMode,
    SlippageAction,
    utcnow,
)
from storage.types import ExactDecimal, UTCDateTime


def _enum(enum_cls: type[enum.Enum], length: int = 32) -> SAEnum:
    """Stored as the enum's value in a VARCHAR: no native enum types to migrate."""
    return SAEnum(
        enum_cls,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
    )


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    telegram_id: int | None = Field(default=None, unique=True, index=True, sa_type=BigInteger)  # exceeds 2**31
    display_name: str = Field(default="", max_length=128)
    blocked_bot: bool = False  # the user blocked the bot: skip them in broadcasts
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Credential(SQLModel, table=True):
    __tablename__ = "credentials"

    id: str = Field(primary_key=True, max_length=32)  # random hex; part of the vault's associated data
    user_id: int = Field(foreign_key="users.id", index=True)
    venue: str = Field(max_length=32)
    label: str = Field(max_length=64)
    environment: str = Field(default="live", max_length=16)  # paper / testnet / live
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    key_fingerprint: str = Field(max_length=16)
    last_validated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    __table_args__ = (UniqueConstraint("user_id", "label", name="uq_credential_user_label"),)


class Master(SQLModel, table=True):
    __tablename__ = "masters"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True)
    description: str = Field(default="", max_length=500)
    venue: str = Field(max_length=32)
    credential_id: str | None = Field(default=None, foreign_key="credentials.id")
    status: MasterStatus = Field(default=MasterStatus.ACTIVE, sa_type=_enum(MasterStatus))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Follow(SQLModel, table=True):
    """The settings of one follower account copying one master."""

    __tablename__ = "follows"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    master_id: int = Field(foreign_key="masters.id", index=True)
    # NULL once the key is removed: a stopped follow keeps its history, the secret is gone
    credential_id: str | None = Field(default=None, foreign_key="credentials.id", ondelete="SET NULL", nullable=True)
    sizing_mode: SizingMode = Field(default=SizingMode.COEFFICIENT, sa_type=_enum(SizingMode))
    sizing_value: Decimal = Field(default=Decimal(1), sa_type=ExactDecimal)
    reverse: bool = False
    take_profit_pct: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    stop_loss_pct: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    max_position_notional: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    daily_loss_limit: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    leverage: int | None = None
    allowed_symbols: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    blocked_symbols: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    order_types: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # empty: all
    dry_run: bool = False
    max_total_notional: Decimal | None = Field(default=None, sa_type=ExactDecimal)  # all symbols together
    slippage_pct: Decimal | None = Field(default=None, sa_type=ExactDecimal)  # guard on market copies
    slippage_action: SlippageAction = Field(default=SlippageAction.SKIP, sa_type=_enum(SlippageAction, 8))
    margin_mode: MarginMode | None = Field(default=None, sa_type=_enum(MarginMode, 16))  # futures
    entry_sides: EntrySides = Field(default=EntrySides.BOTH, sa_type=_enum(EntrySides, 8))
    close_on_daily_loss: bool = False
    auto_sync: bool = False  # reconciliation fixes drift by itself instead of only reporting it
    # a resting limit copy is cancelled after this long; None ("off") is stored as NULL: the column has no
    # INSERT default, which the ORM would put in place of an explicit None
    max_resting_minutes: int | None = Field(
        default=DEFAULT_MAX_RESTING_MINUTES, sa_column=Column(Integer, nullable=True)
    )
    confirm_seconds: int | None = None  # manual confirmation: each copy waits this long for Copy or Skip
    price_protection_pct: Decimal | None = Field(default=None, sa_type=ExactDecimal)  # protected limits
    product: str | None = Field(default=None, max_length=16)  # overrides the master's product type
    # a protected limit's unfilled remainder after its window: re-priced (at most reprice_attempts times) or cancelled
    remainder_action: RemainderAction = Field(default=RemainderAction.REPRICE, sa_type=_enum(RemainderAction, 8))
    reprice_attempts: int = DEFAULT_REPRICE_ATTEMPTS
    # a copy above the venue's maximum per order: split into parts, or (an entry) capped at the maximum
    oversize_action: OversizeAction = Field(default=OversizeAction.SPLIT, sa_type=_enum(OversizeAction, 8))
    # a copy while its market is closed: skipped (market_closed) or sent as an after-market order
    closed_market_action: ClosedMarketAction = Field(
        default=ClosedMarketAction.SKIP, sa_type=_enum(ClosedMarketAction, 16)
    )
    status: FollowStatus = Field(default=FollowStatus.ACTIVE, sa_type=_enum(FollowStatus))
    status_reason: str | None = Field(default=None, max_length=300)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    __table_args__ = (UniqueConstraint("master_id", "credential_id", name="uq_follow_master_credential"),)


class MasterFill(SQLModel, table=True):
    """The journal: every master execution, written before anything is placed."""

    __tablename__ = "master_fills"

    id: int | None = Field(default=None, primary_key=True)
    master_id: int = Field(foreign_key="masters.id", index=True)
    venue: str = Field(max_length=32)
    trade_id: str = Field(max_length=64)
    order_id: str = Field(max_length=64)
    symbol: str = Field(max_length=64)
    side: Side = Field(sa_type=_enum(Side))
    quantity: Decimal = Field(sa_type=ExactDecimal)
    price: Decimal = Field(sa_type=ExactDecimal)
    order_type: OrderType = Field(sa_type=_enum(OrderType))
    reduce_only: bool = False
    product: str | None = Field(default=None, max_length=16)  # the master's product type (Angel One), copied
    # the master's position the fill moved (LONG / SHORT in hedge mode) and that position before it
    position_side: PositionSide = Field(default=PositionSide.BOTH, sa_type=_enum(PositionSide))
    master_position_before: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)
    executed_at: datetime = Field(sa_type=UTCDateTime)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    planned: bool = False  # every follow's copy order row exists (resume re-plans when False)

    __table_args__ = (
        UniqueConstraint("venue", "trade_id", name="uq_master_fill_venue_trade"),
        Index("ix_master_fills_master_executed", "master_id", "executed_at"),
    )


class CopyOrder(SQLModel, table=True):
    """One order for one follow — a copy of a master fill, or an order the copier placed on its
    own (take-profit, stop-loss, sync, opening the master's positions, /stop close) — with its
    outcome: placed, filled, skipped or failed, and the reason."""

    __tablename__ = "copy_orders"

    client_order_id: str = Field(primary_key=True, max_length=36)
    fill_id: int | None = Field(
        default=None, foreign_key="master_fills.id", index=True, nullable=True
    )  # None: not a copy
    origin: OrderOrigin = Field(default=OrderOrigin.COPY, sa_type=_enum(OrderOrigin, 16))
    # the copied position its executions move: LONG / SHORT for a hedge-mode master's legs
    position_side: PositionSide = Field(default=PositionSide.BOTH, sa_type=_enum(PositionSide))
    realized_pnl: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)  # of the copied position, fees excluded
    follow_id: int = Field(foreign_key="follows.id", index=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    symbol: str = Field(max_length=64)
    side: Side | None = Field(default=None, sa_type=_enum(Side))
    order_type: OrderType = Field(default=OrderType.MARKET, sa_type=_enum(OrderType))
    reduce_only: bool = False
    status: CopyStatus = Field(sa_type=_enum(CopyStatus), index=True)
    # the order's life on the venue; None for a copy never sent (skipped, dry run)
    state: OrderState | None = Field(default=None, sa_type=_enum(OrderState, 20), index=True)
    reason_code: str | None = Field(default=None, max_length=32)
    reason: str | None = Field(default=None, max_length=500)
    requested_quantity: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    filled_quantity: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)
    average_price: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    limit_price: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    # a protected limit (a market order sent as a limit): rests a short window, then re-priced or cancelled;
    # ``attempt`` counts its re-sends (0: the first send), each with a client order id derived from the one before
    protected: bool = False
    attempt: int = 0
    master_price: Decimal = Field(sa_type=ExactDecimal)
    fee: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)  # cumulative, in the quote currency
    base_fee: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)  # the part paid in the base asset
    #: whether ``fee`` has every commission: PENDING while a fill's commission is still to come
    #: (completed once, off the send path), MISSING when it never came (``reason`` says why)
    fee_status: FeeStatus = Field(default=FeeStatus.COUNTED, sa_type=_enum(FeeStatus, 8), index=True)
    venue_order_id: str | None = Field(default=None, max_length=64)
    dry_run: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    latency_ms: float | None = None  # fill received -> venue answered; a measurement, not money
    #: a pending row belongs to the process sending it until ``lease_until`` (renewed before each
    #: resend): another process's settle job leaves it alone until then (``claim_pending``)
    lease_owner: str | None = Field(default=None, max_length=32)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    #: the fence: every claim of a pending row takes the next epoch; a send goes out only while
    #: the sender's epoch is still the row's (``JournalStore.fence_send``), all on the database clock
    claim_epoch: int = 0
    #: set by the fence before the latest send: when it began (database clock), and the deadline
    #: on the venue's clock after which the venue refuses that request (None: the venue has none)
    send_started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    send_deadline: datetime | None = Field(default=None, sa_type=UTCDateTime)


class CopyExecution(SQLModel, table=True):
    """An execution of a copy order, recorded once: keyed by the order's cumulative filled
    quantity after it (what every venue reports), with the venue's trade id where it gave one.
    The copied position moves in the same transaction that inserts it, and only then."""

    __tablename__ = "copy_executions"

    id: int | None = Field(default=None, primary_key=True)
    client_order_id: str = Field(foreign_key="copy_orders.client_order_id", max_length=36)
    filled_after: Decimal = Field(sa_type=ExactDecimal)  # the order's cumulative filled quantity after it
    trade_id: str | None = Field(default=None, max_length=64)
    follow_id: int = Field(foreign_key="follows.id", index=True)
    symbol: str = Field(max_length=64)
    side: Side = Field(sa_type=_enum(Side))
    quantity: Decimal = Field(sa_type=ExactDecimal)  # gross, as executed
    ledger_quantity: Decimal = Field(sa_type=ExactDecimal)  # signed change of the holding (net of base fees)
    price: Decimal = Field(sa_type=ExactDecimal)
    fee: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)  # in the quote currency
    moved_ledger: bool = True  # False for sync orders: they move the venue to the ledger
    # a write-off (closed outside the copier, never executed by it): moves the ledger through
    # ``core.ledger.write_off`` — no PnL, no fee; ``price`` is the entry price it left at
    written_off: bool = False
    realized_pnl: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    __table_args__ = (UniqueConstraint("client_order_id", "filled_after", name="uq_copy_execution_order_fill"),)


class ProtectiveOrder(SQLModel, table=True):
    """A take-profit or stop-loss order resting on the venue for one follow's copied position."""

    __tablename__ = "protective_orders"

    client_order_id: str = Field(primary_key=True, max_length=36)
    follow_id: int = Field(foreign_key="follows.id", index=True)
    symbol: str = Field(max_length=64)
    kind: str = Field(max_length=16)  # take_profit | stop_loss
    side: Side = Field(sa_type=_enum(Side))
    quantity: Decimal = Field(sa_type=ExactDecimal)
    trigger_price: Decimal = Field(sa_type=ExactDecimal)
    status: CopyStatus = Field(sa_type=_enum(CopyStatus))  # PLACED while resting; FILLED, FAILED once done
    venue_order_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PositionDrift(SQLModel, table=True):
    """The last reconciliation's finding for one follow and symbol: what the copy history says
    the follower holds, and what the venue says."""

    __tablename__ = "position_drifts"

    follow_id: int = Field(foreign_key="follows.id", primary_key=True)
    symbol: str = Field(primary_key=True, max_length=64)
    expected: Decimal = Field(sa_type=ExactDecimal)
    actual: Decimal = Field(sa_type=ExactDecimal)
    detected_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class MasterPosition(SQLModel, table=True):
    """The master's position per symbol and position side, from the journal: tells entries from
    exits. One-way masters have one net row (BOTH); hedge-mode masters a LONG (>= 0) and a SHORT
    (<= 0) row, so opening a short while long is an entry, not an exit of the long."""

    __tablename__ = "master_positions"

    master_id: int = Field(foreign_key="masters.id", primary_key=True)
    symbol: str = Field(primary_key=True, max_length=64)
    position_side: PositionSide = Field(default=PositionSide.BOTH, primary_key=True, sa_type=_enum(PositionSide))
    quantity: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)


class MasterCheckpoint(SQLModel, table=True):
    """Where a master's stream history is known complete: every execution before ``recovered_until``
    is journaled. Written at the stream's first start (with the venue's positions as the master's)
    and moved forward by recoveries that found nothing missing."""

    __tablename__ = "master_checkpoints"

    master_id: int = Field(foreign_key="masters.id", primary_key=True)
    recovered_until: datetime = Field(sa_type=UTCDateTime)


class FollowPosition(SQLModel, table=True):
    """What the copies opened for one follow: exits are sized against this, not the whole account,
    so a follower's own manual position in the same symbol is never closed by a copy."""

    __tablename__ = "follow_positions"

    follow_id: int = Field(foreign_key="follows.id", primary_key=True)
    symbol: str = Field(primary_key=True, max_length=64)
    # dry-run copies move a ledger of their own: simulated and real positions never mix
    simulated: bool = Field(default=False, primary_key=True)
    # a hedge-mode master's legs are copied into a LONG and a SHORT position, each exited on its own
    position_side: PositionSide = Field(default=PositionSide.BOTH, primary_key=True, sa_type=_enum(PositionSide))
    quantity: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)
    entry_price: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    realized_pnl: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)
    fees: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)  # in the quote currency
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# -- statistics, equity snapshots and daily summaries (issue 8) -------------------------------


class MasterStats(SQLModel, table=True):
    """A master's trading statistics, kept incrementally from the journal (``master_fills``):
    every fill with an id up to ``last_fill_id`` has been counted, each exactly once."""

    __tablename__ = "master_stats"

    master_id: int = Field(foreign_key="masters.id", primary_key=True)
    last_fill_id: int = 0
    fills: int = 0
    round_trips: int = 0
    wins: int = 0
    losses: int = 0
    untracked_closes: int = 0  # round trips closed whose opening the journal never saw (no known cost)
    realized_pnl: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)  # gross: master fills carry no fee
    gross_profit: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)
    gross_loss: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)  # a positive amount
    peak_pnl: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)
    max_drawdown: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)  # on the realized PnL curve
    holding_seconds: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)  # summed over closed round trips
    first_fill_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_fill_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class MasterStatsLot(SQLModel, table=True):
    """The open round trip of a master in one symbol, as the statistics see it (average cost)."""

    __tablename__ = "master_stats_lots"

    master_id: int = Field(foreign_key="masters.id", primary_key=True)
    symbol: str = Field(primary_key=True, max_length=64)
    quantity: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)  # signed
    entry_price: Decimal | None = Field(default=None, sa_type=ExactDecimal)  # None: cost unknown
    opened_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    trip_pnl: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)  # realized so far in this round trip


class MasterDailyPnl(SQLModel, table=True):
    """A master's realized PnL, fills and closed round trips per UTC day."""

    __tablename__ = "master_daily_pnl"

    master_id: int = Field(foreign_key="masters.id", primary_key=True)
    day: date = Field(primary_key=True)
    realized_pnl: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)
    fills: int = 0
    round_trips: int = 0


class EquitySnapshot(SQLModel, table=True):
    """Account equity of a master (``scope`` "master", ``subject_id`` = master id) or of a
    follow's account (``scope`` "follow", ``subject_id`` = follow id), one row per UTC day
    (a later snapshot the same day replaces the earlier one)."""

    __tablename__ = "equity_snapshots"

    id: int | None = Field(default=None, primary_key=True)
    scope: str = Field(max_length=16)
    subject_id: int
    day: date
    equity: Decimal = Field(sa_type=ExactDecimal)
    taken_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    __table_args__ = (UniqueConstraint("scope", "subject_id", "day", name="uq_equity_snapshot_subject_day"),)


class DailySummarySetting(SQLModel, table=True):
    """A user's daily summary message: off by default; sent once a day at ``minute_of_day`` UTC."""

    __tablename__ = "daily_summary_settings"

    user_id: int = Field(foreign_key="users.id", primary_key=True)
    enabled: bool = False
    minute_of_day: int = 8 * 60  # minutes after midnight UTC
    last_sent_on: date | None = None
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# -- the paper world (simulated venue), kept across restarts ------------------------------------


class PaperAccount(SQLModel, table=True):
    """One paper account (its id is the credential id that opens it): cash and totals."""

    __tablename__ = "paper_accounts"

    account_id: str = Field(primary_key=True, max_length=64)
    balance: Decimal = Field(sa_type=ExactDecimal)
    leverage: int = 10
    realized_pnl: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)
    fees_paid: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PaperHolding(SQLModel, table=True):
    """A paper account's position in one symbol."""

    __tablename__ = "paper_holdings"

    account_id: str = Field(foreign_key="paper_accounts.account_id", primary_key=True, max_length=64)
    symbol: str = Field(primary_key=True, max_length=64)
    quantity: Decimal = Field(sa_type=ExactDecimal)
    entry_price: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    realized_pnl: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)
    fees: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)


class PaperOrder(SQLModel, table=True):
    """An order a paper account booked, resting or done (a client order id is accepted once)."""

    __tablename__ = "paper_orders"

    account_id: str = Field(foreign_key="paper_accounts.account_id", primary_key=True, max_length=64)
    client_order_id: str = Field(primary_key=True, max_length=64)
    venue_order_id: int = Field(index=True, sa_type=BigInteger)
    symbol: str = Field(max_length=64)
    side: Side = Field(sa_type=_enum(Side))
    quantity: Decimal = Field(sa_type=ExactDecimal)
    order_type: OrderType = Field(sa_type=_enum(OrderType))
    price: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    stop_price: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    reduce_only: bool = False
    time_in_force: str | None = Field(default=None, max_length=8)
    state: OrderState = Field(sa_type=_enum(OrderState))
    filled: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)
    average_price: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    fee: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)


class PaperPrice(SQLModel, table=True):
    """The paper market's last price per symbol."""

    __tablename__ = "paper_prices"

    symbol: str = Field(primary_key=True, max_length=64)
    price: Decimal = Field(sa_type=ExactDecimal)


class ApiToken(SQLModel, table=True):
    """A REST API token: only its SHA-256 hash is stored (``core.api_tokens``)."""

    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    token_hash: str = Field(max_length=64, unique=True)
    shown: str = Field(max_length=16)
    scope: TokenScope = Field(sa_type=_enum(TokenScope, 8))
    label: str = Field(max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
