"""Domain events and value types shared by the engine, venues, storage and bot.

Plain frozen dataclasses with ``Decimal`` for every price and quantity: a float never
enters the money path. Venue adapters convert at their edge.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal


def utcnow() -> datetime:
    return datetime.now(UTC)


def plain(value: Decimal) -> str:
    """A Decimal as people write it: no exponent, no trailing zeros (10, 0.5)."""
    return format(value.normalize(), "f")


class Side(enum.StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class PositionSide(enum.StrEnum):
    """Which of an account's positions in a symbol an execution belongs to (Binance USD-M
    ``positionSide``): one net position in one-way mode, a long and a short in hedge mode."""

    BOTH = "both"  # one-way mode: one net position
    LONG = "long"  # hedge mode: the long position (kept positive)
    SHORT = "short"  # hedge mode: the short position (kept negative)

    @classmethod
    def of(cls, raw: object) -> PositionSide:
        """Binance's ``ps`` / ``positionSide`` (LONG, SHORT, BOTH, absent) as a PositionSide."""
        return {"LONG": cls.LONG, "SHORT": cls.SHORT}.get(str(raw or "").upper(), cls.BOTH)

    @property
    def reversed(self) -> PositionSide:
        """The side a reversed copy moves: a master's long is a reversed follower's short."""
        return {PositionSide.LONG: PositionSide.SHORT, PositionSide.SHORT: PositionSide.LONG}.get(self, self)


def venue_side(position_side: PositionSide, quantity: Decimal, hedged: bool) -> PositionSide:
    """The venue position a copied position of signed ``quantity`` counts in: the net (BOTH) on a
    one-way account; on a hedge-mode one its own side, or for a BOTH copy the side of its sign
    (its orders were sent as opening / closing that side)."""
    if not hedged:
        return PositionSide.BOTH
    if position_side is PositionSide.BOTH:
        return PositionSide.LONG if quantity > 0 else PositionSide.SHORT
    return position_side


def drift_label(symbol: str, position_side: PositionSide) -> str:
    """How a drift is named (stored, shown, synced): the symbol, and a hedge leg's side."""
    return symbol if position_side is PositionSide.BOTH else f"{symbol} {position_side.value}"


class OrderType(enum.StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP_MARKET = "stop_market"
    STOP_LIMIT = "stop_limit"
    TAKE_PROFIT_MARKET = "take_profit_market"


class FillStatus(enum.StrEnum):
    """Status of the master's order at the moment of the execution report."""

    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_execution(self) -> bool:
        return self in (FillStatus.PARTIALLY_FILLED, FillStatus.FILLED)


class SizingMode(enum.StrEnum):
    COEFFICIENT = "coefficient"  # follower qty = master qty x value
    EQUITY_RATIO = "equity_ratio"  # master qty x follower equity / master equity x value
    FIXED_NOTIONAL = "fixed_notional"  # value in quote currency per entry
    FIXED_QUANTITY = "fixed_quantity"  # value in base units (or shares) per entry


class FollowStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    STOPPED = "stopped"


class MasterStatus(enum.StrEnum):
    ACTIVE = "active"
    HIDDEN = "hidden"  # still copied, not listed in /masters
    RETIRED = "retired"  # no longer copied or listed


class SlippageAction(enum.StrEnum):
    """What happens to a market copy whose price moved past the follow's slippage limit."""

    SKIP = "skip"
    #: a limit order at the limit price: IOC where the venue takes IOC orders, else a protected
    #: limit that rests for a short window (``EngineConfig.protected_window``)
    LIMIT = "limit"


class RemainderAction(enum.StrEnum):
    """What happens to the unfilled remainder of a protected limit (a market copy sent as a
    limit) when its resting window ends."""

    REPRICE = "reprice"  # cancelled and sent again at a fresh protected price, within the slippage limit
    CANCEL = "cancel"  # cancelled; what filled is kept and the order recorded expired


class OversizeAction(enum.StrEnum):
    """What happens to a copy larger than the venue takes in one order (``MarketRules.max_order_quantity``)."""

    SPLIT = "split"  # sent as several orders, each within the maximum, each with its own derived client id
    CAP = "cap"  # an entry sent at the maximum, the rest not copied (recorded); exits are always split


class ClosedMarketAction(enum.StrEnum):
    """What happens to a copy while its market is closed (outside the session, a holiday)."""

    SKIP = "skip"  # recorded skipped: market closed
    #: sent as an after-market order where the venue takes one (Angel One's variety AMO): it waits
    #: for the next open
    AFTER_MARKET = "after_market"


class EntrySides(enum.StrEnum):
    """Which of the master's entries are copied (exits always are)."""

    BOTH = "both"
    LONG = "long"
    SHORT = "short"


class MarginMode(enum.StrEnum):
    """Margin mode of copied futures orders; a follow without one keeps the exchange's default."""

    CROSS = "cross"
    ISOLATED = "isolated"


class OrderOrigin(enum.StrEnum):
    """Why a copy order exists: a copy of a master fill, or an order the copier placed itself."""

    COPY = "copy"
    TAKE_PROFIT = "take_profit"
    STOP_LOSS = "stop_loss"
    SYNC = "sync"  # brings the venue back to the copy history
    OPEN = "open"  # opens the master's positions when a follow starts
    CLOSE = "close"  # closes the copied positions (/stop, the daily loss limit)
    WRITE_OFF = "write_off"  # closed outside the copier: taken off the copied position, never sent


class CopyStatus(enum.StrEnum):
    """A copy order's outcome as the follower sees it (derived from its ``OrderState``)."""

    PENDING = "pending"  # journaled, being sent; resolved on restart by client order id
    PLACED = "placed"  # resting on the venue (acknowledged or partially filled)
    FILLED = "filled"  # something executed and the order is over (filled, or the rest cancelled)
    CANCELED = "canceled"  # cancelled or expired on the venue with nothing filled
    SKIPPED = "skipped"
    FAILED = "failed"
    OFFERED = "offered"  # manual confirmation: waiting for the follower's answer, nothing journaled yet
    WRITTEN_OFF = "written_off"  # a write-off (``OrderOrigin.WRITE_OFF``): recorded, never sent


class OrderState(enum.StrEnum):
    """Where a sent order is in its life on the venue. Terminal states never change; the
    cumulative filled quantity never decreases (see ``core.ledger``)."""

    PENDING = "pending"  # journaled, the send has no answer yet
    ACKNOWLEDGED = "acknowledged"  # accepted, nothing filled
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"

    @property
    def is_terminal(self) -> bool:
        return self in (OrderState.FILLED, OrderState.CANCELED, OrderState.EXPIRED, OrderState.REJECTED)

    def copy_status(self, filled: Decimal) -> CopyStatus:
        """The follower-facing status of an order in this state with ``filled`` executed."""
        if self is OrderState.PENDING:
            return CopyStatus.PENDING
        if not self.is_terminal:
            return CopyStatus.PLACED
        if filled > 0:
            return CopyStatus.FILLED
        return CopyStatus.FAILED if self is OrderState.REJECTED else CopyStatus.CANCELED


class FeeStatus(enum.StrEnum):
    """Whether an order's commission is in its recorded fees. A venue whose order answers carry
    no commission (Binance USD-M) reports a fill with its fee still to come
    (``OrderReport.fee_pending``); the fee is completed afterwards, off the send path, exactly once."""

    COUNTED = "counted"  # every commission the venue charged so far is in ``fee``
    PENDING = "pending"  # filled, its commission not known yet: it comes as a fee-only report
    MISSING = "missing"  # it never came: not counted, and the order's reason says why


class SkipReason(enum.StrEnum):
    """Why an order was not sent. Each one is recorded and shown to the follower."""

    SYMBOL_NOT_ALLOWED = "symbol_not_allowed"
    SYMBOL_BLOCKED = "symbol_blocked"
    ORDER_TYPE_FILTERED = "order_type_filtered"
    UNKNOWN_SYMBOL = "unknown_symbol"
    BELOW_MIN_QUANTITY = "below_min_quantity"
    BELOW_MIN_NOTIONAL = "below_min_notional"
    NO_POSITION_TO_EXIT = "no_position_to_exit"
    MAX_POSITION = "max_position"
    NO_EQUITY = "no_equity"
    STALE_FILL = "stale_fill"
    DRY_RUN = "dry_run"
    SIDE_FILTERED = "side_filtered"
    SLIPPAGE = "slippage"
    NOT_CONFIRMED = "not_confirmed"
    FOLLOW_STOPPED = "follow_stopped"
    MARKET_CLOSED = "market_closed"
    PRICE_BAND = "price_band"


SKIP_EXPLANATIONS: dict[SkipReason, str] = {
    SkipReason.SYMBOL_NOT_ALLOWED: "the symbol is not on your allow list",
    SkipReason.SYMBOL_BLOCKED: "the symbol is on your block list",
    SkipReason.ORDER_TYPE_FILTERED: "you chose not to copy this order type",
    SkipReason.UNKNOWN_SYMBOL: "your exchange does not list this symbol",
    SkipReason.BELOW_MIN_QUANTITY: "your share of the trade is below the exchange's minimum quantity",
    SkipReason.BELOW_MIN_NOTIONAL: "your share of the trade is below the exchange's minimum order value",
    SkipReason.NO_POSITION_TO_EXIT: "the master reduced a position you do not hold a copy of",
    SkipReason.MAX_POSITION: "the order would exceed your maximum position",
    SkipReason.NO_EQUITY: "your account equity could not be used for sizing",
    SkipReason.STALE_FILL: "the master's fill arrived too late to copy safely",
    SkipReason.DRY_RUN: "dry run is on: the order was sized and recorded, not sent",
    SkipReason.SIDE_FILTERED: "you chose to copy only the other side's entries",
    SkipReason.SLIPPAGE: "the price on your exchange moved too far from the master's fill",
    SkipReason.NOT_CONFIRMED: "not confirmed",
    SkipReason.FOLLOW_STOPPED: "the follow was stopped or paused before this copy could be sent",
    SkipReason.MARKET_CLOSED: "the market was closed for this order",
    SkipReason.PRICE_BAND: "the order's price is outside the exchange's price band for the day",
}


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of a master's order (a partial fill is its own Fill with its own trade id).

    ``quantity`` is this execution's increment, never the order's cumulative filled quantity.
    """

    master_id: int
    venue: str
    trade_id: str
    order_id: str
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    order_type: OrderType = OrderType.MARKET
    status: FillStatus = FillStatus.FILLED
    reduce_only: bool = False
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    executed_at: datetime = field(default_factory=utcnow)
    master_equity: Decimal | None = None
    product: str | None = None  # venue-specific product of the master's order (Angel One: INTRADAY, ...)
    #: the master's position this execution moves: LONG or SHORT for a hedge-mode master
    position_side: PositionSide = PositionSide.BOTH

    def __post_init__(self) -> None:
        for name in ("quantity", "price"):
            value = getattr(self, name)
            if not isinstance(value, Decimal):
                raise TypeError(f"Fill.{name} must be a Decimal, got {type(value).__name__}")
        if self.quantity <= 0:
            raise ValueError(f"Fill.quantity must be positive, got {self.quantity}")
        if self.price <= 0:
            raise ValueError(f"Fill.price must be positive, got {self.price}")

    @property
    def signed_quantity(self) -> Decimal:
        return self.quantity * self.side.sign


class MasterOrderChange(enum.StrEnum):
    """What happened to a master's order other than an execution, as its copies must follow it."""

    CANCELED = "canceled"  # the master cancelled the rest of it
    EXPIRED = "expired"  # the venue ended the rest of it (time in force, self-trade prevention, ...)
    AMENDED = "amended"  # the master moved its price (Binance futures "Modify Order", Angel One modifyOrder)


@dataclass(frozen=True, slots=True)
class MasterOrderEvent:
    """A master's order was cancelled, expired or amended. Its copies still resting follow it: a
    cancellation or expiry cancels them (what filled is kept), an amended price replaces them at
    that price. A changed quantity alone changes no copy: copies are of the master's executions,
    which an amendment never changes (an amendment below what executed is a cancellation)."""

    master_id: int
    order_id: str
    symbol: str
    change: MasterOrderChange
    #: the order's limit price after an amendment (None for a cancellation or an expiry)
    price: Decimal | None = None
    at: datetime = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        if self.change is MasterOrderChange.AMENDED and (self.price is None or self.price <= 0):
            raise ValueError("an amended master order carries its new price")


#: what a master's stream yields: an execution, or a change of one of its orders
MasterEvent = Fill | MasterOrderEvent


@dataclass(frozen=True, slots=True)
class MarketRules:
    """A venue's trading rules for one symbol (lot step, tick, minimums, the most one order may ask
    for). An order above its maximum is split into several, or capped (``OversizeAction``)."""

    symbol: str
    base: str
    quote: str
    quantity_step: Decimal
    price_tick: Decimal
    min_quantity: Decimal = Decimal(0)
    min_notional: Decimal = Decimal(0)
    #: the most one order may ask for, in order units (Binance LOT_SIZE ``maxQty``; NSE's freeze quantity)
    max_quantity: Decimal | None = None
    contract_size: Decimal = Decimal(1)
    derivative: bool = False
    #: the most one MARKET order may ask for where the venue bounds it apart (Binance MARKET_LOT_SIZE)
    max_market_quantity: Decimal | None = None

    def max_order_quantity(self, order_type: OrderType) -> Decimal | None:
        """The most one order of ``order_type`` may ask for, on the step (``None``: no limit): a
        market order within both maximums, any other within the lot maximum."""
        limits = [self.max_quantity]
        if order_type is OrderType.MARKET:
            limits.append(self.max_market_quantity)
        known = [limit for limit in limits if limit is not None and limit > 0]
        if not known:
            return None
        lowest = min(known)
        if self.quantity_step > 0:
            lowest = (lowest // self.quantity_step) * self.quantity_step
        return lowest


#: the price protection of a market copy sent as a limit when the follow sets none (``core.engine.protected_limit``)
DEFAULT_PRICE_PROTECTION_PCT = Decimal(1)
#: how long a copy of a master's limit may rest unfilled when the follow sets nothing: the copy is at
#: the master's price, so on a liquid market it fills within seconds or minutes of the master's own
#: execution; one still open an hour later is waiting for the price to come back, and would open the
#: follower's position at a moment the master did not choose (or after the master has left)
DEFAULT_MAX_RESTING_MINUTES = 60
#: how often a protected limit's unfilled remainder is re-sent at a fresh price when the follow sets nothing
DEFAULT_REPRICE_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """An order the engine decided to send for one follow, already rounded to the venue's rules."""

    follow_id: int
    client_order_id: str
    symbol: str
    side: Side
    quantity: Decimal
    order_type: OrderType = OrderType.MARKET
    price: Decimal | None = None
    stop_price: Decimal | None = None
    reduce_only: bool = False
    reference_price: Decimal | None = None  # master's fill price, for slippage and notional
    leverage: int | None = None  # futures: applied before the first order of the symbol
    margin_mode: MarginMode | None = None  # futures: applied like the leverage
    time_in_force: str | None = None  # "IOC": fill what is possible now, cancel the rest
    #: a LIMIT standing in for a market order where the venue takes none (``core.engine.protected_limit``):
    #: it rests for a short window, then its remainder is re-priced or cancelled (the follow's choice)
    protected: bool = False
    product: str | None = None  # venue-specific product to copy (Angel One), else the venue's default
    #: the follower's copied position the order moves (LONG / SHORT: a hedge-mode master's leg);
    #: a hedge-mode account sends it as ``positionSide``, a one-way account nets it
    position_side: PositionSide = PositionSide.BOTH
    #: while the market is closed, send it as an after-market order where the venue takes one (the
    #: follow's ``closed_market_action``); otherwise it is not sent then (``NotAdmitted``)
    after_market: bool = False
    #: set by the order sender only: the moment, on the venue's clock, after which the venue must
    #: refuse this request (``Venue.send_window``); the adapter signs the request so that it does
    send_deadline: datetime | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.quantity, Decimal):
            raise TypeError("OrderIntent.quantity must be a Decimal")
        if self.quantity <= 0:
            raise ValueError("OrderIntent.quantity must be positive")


@dataclass(frozen=True, slots=True)
class Execution:
    """One execution of a copy order as the venue reported it (where the venue gives them)."""

    trade_id: str
    quantity: Decimal  # gross, in base units
    price: Decimal


@dataclass(frozen=True, slots=True)
class OrderReport:
    """What a venue says about one order at one moment: an answer to a send, a look-up or a
    stream event. Quantities and fees are *cumulative* over the order's life, so a late,
    repeated or out-of-order report is recognised (its filled quantity is not above the one
    recorded) and changes nothing.

    ``fee`` is every fee so far converted to the quote currency; ``base_fee`` is the part paid
    in the base asset (Binance spot takes a buy's commission from the coin received), which
    the holding does not receive.

    ``fee_pending``: the report carries a fill whose commission the venue did not give with it
    (``fee`` leaves it out); a later report of the same fill brings it (``FeeStatus``).
    """

    venue_order_id: str
    client_order_id: str
    state: OrderState
    filled_quantity: Decimal = Decimal(0)
    average_price: Decimal | None = None
    fee: Decimal = Decimal(0)
    base_fee: Decimal = Decimal(0)
    reason: str | None = None
    executions: tuple[Execution, ...] = ()
    fee_pending: bool = False

    @property
    def status(self) -> CopyStatus:
        return self.state.copy_status(self.filled_quantity)


@dataclass(frozen=True, slots=True)
class Skip:
    reason: SkipReason
    detail: str

    def __str__(self) -> str:
        return f"{SKIP_EXPLANATIONS[self.reason]} ({self.detail})" if self.detail else SKIP_EXPLANATIONS[self.reason]


@dataclass(frozen=True, slots=True)
class CopyResult:
    """The outcome of copying one master fill for one follow: what the follower is notified of."""

    follow_id: int
    user_id: int
    master_id: int
    client_order_id: str
    fill: Fill
    status: CopyStatus
    side: Side | None = None
    requested_quantity: Decimal | None = None
    filled_quantity: Decimal = Decimal(0)
    average_price: Decimal | None = None
    venue_order_id: str | None = None
    fee: Decimal = Decimal(0)
    skip: Skip | None = None
    error: str | None = None
    error_code: str | None = None  # e.g. insufficient_funds, authentication
    latency_ms: float | None = None  # a measurement, not money
    origin: OrderOrigin = OrderOrigin.COPY
    state: OrderState | None = None  # the order's life on the venue; None when never sent

    @property
    def reason_code(self) -> str | None:
        return self.skip.reason.value if self.skip is not None else self.error_code

    @property
    def reason(self) -> str | None:
        if self.skip is not None:
            return str(self.skip)
        return self.error


@dataclass(frozen=True, slots=True)
class FollowSettings:
    """The engine's read-only view of one follow (a storage row, without anything secret)."""

    follow_id: int
    user_id: int
    master_id: int
    credential_id: str
    sizing_mode: SizingMode = SizingMode.COEFFICIENT
    sizing_value: Decimal = Decimal(1)
    reverse: bool = False
    max_position_notional: Decimal | None = None
    allowed_symbols: frozenset[str] = frozenset()
    blocked_symbols: frozenset[str] = frozenset()
    order_types: frozenset[OrderType] = frozenset()  # empty: every type is copied
    dry_run: bool = False
    leverage: int | None = None
    take_profit_pct: Decimal | None = None
    stop_loss_pct: Decimal | None = None
    daily_loss_limit: Decimal | None = None
    max_total_notional: Decimal | None = None
    slippage_pct: Decimal | None = None
    slippage_action: SlippageAction = SlippageAction.SKIP
    margin_mode: MarginMode | None = None
    entry_sides: EntrySides = EntrySides.BOTH
    close_on_daily_loss: bool = False
    auto_sync: bool = False
    #: a resting copy of a master's limit is cancelled after this many minutes (None: it rests until
    #: filled, or the master cancels or moves its order)
    max_resting_minutes: int | None = DEFAULT_MAX_RESTING_MINUTES
    confirm_seconds: int | None = None  # manual confirmation: each copy offered, waiting this long for an answer
    price_protection_pct: Decimal | None = None  # market copies as protected limits (venues without market orders)
    product: str | None = None  # overrides the master's product type (Angel One: INTRADAY, DELIVERY, ...)
    remainder_action: RemainderAction = RemainderAction.REPRICE  # a protected limit's remainder after its window
    reprice_attempts: int = DEFAULT_REPRICE_ATTEMPTS  # at most this many re-sends of one protected limit
    oversize_action: OversizeAction = OversizeAction.SPLIT  # a copy above the venue's maximum per order
    closed_market_action: ClosedMarketAction = ClosedMarketAction.SKIP  # a copy while its market is closed
