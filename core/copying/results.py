"""Named constructors for what the copier records and reports: ``CopyResult`` (what a follower is
told), ``CopyDraft`` (the journal row written before a send or as a final skip) and the ``Fill``
a result carries. Every result of the copier is built here, in one shape per outcome."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from core.journal import CopyDraft, Transition
from core.model import (
    CopyResult,
    CopyStatus,
    Fill,
    FollowSettings,
    OrderIntent,
    OrderOrigin,
    OrderState,
    Side,
    Skip,
)
from core.records import CopyOrderRecord, MasterFillRecord

#: ``CopyResult.error_code`` of a copy that waits behind an earlier one's unknown outcome
WAITING = "waiting"


def joined(*notes: str | None) -> str | None:
    """The reasons recorded on an order, in one line."""
    return "; ".join(n for n in notes if n) or None


def journaled_fill(row: MasterFillRecord) -> Fill:
    """The ``Fill`` a journal row records (resuming after a restart, another process's fill)."""
    return Fill(
        master_id=row.master_id,
        venue=row.venue,
        trade_id=row.trade_id,
        order_id=row.order_id,
        symbol=row.symbol,
        side=row.side,
        quantity=row.quantity,
        price=row.price,
        order_type=row.order_type,
        reduce_only=row.reduce_only,
        executed_at=row.executed_at,
        product=row.product,
        position_side=row.position_side,
    )


def journaled_intent(
    follow: FollowSettings, fill: Fill, row: CopyOrderRecord, side: Side, quantity: Decimal, *, derivative: bool
) -> OrderIntent:
    """The order a pending copy row was journaled as (its ``side`` and requested ``quantity``), to be
    looked up and, only when proven absent, sent as planned — with the follow's leverage and margin."""
    return OrderIntent(
        follow_id=follow.follow_id,
        client_order_id=row.client_order_id,
        symbol=row.symbol,
        side=side,
        quantity=quantity,
        order_type=row.order_type,
        price=row.limit_price,
        reduce_only=row.reduce_only,
        reference_price=fill.price,
        leverage=follow.leverage if derivative else None,
        margin_mode=follow.margin_mode if derivative else None,
        product=follow.product or fill.product,
        position_side=row.position_side,
        protected=row.protected,
    )


def direct_fill(
    master_id: int,
    cid: str,
    origin: OrderOrigin,
    symbol: str,
    side: Side | None,
    quantity: Decimal | None,
    price: Decimal,
) -> Fill:
    """The stand-in ``Fill`` a direct order's result carries (there is no master execution)."""
    return Fill(master_id, "copytrade", cid, origin, symbol, side or Side.BUY, quantity or Decimal(1), price)


@dataclass(frozen=True, slots=True)
class Subject:
    """Whose order a result is about: one follow's order ``client_order_id``, copying ``fill`` (or
    standing in for it: a direct order)."""

    follow_id: int
    user_id: int
    master_id: int
    fill: Fill
    client_order_id: str
    origin: OrderOrigin = OrderOrigin.COPY

    @classmethod
    def of(
        cls, follow: FollowSettings, fill: Fill, client_order_id: str, origin: OrderOrigin = OrderOrigin.COPY
    ) -> Subject:
        return cls(follow.follow_id, follow.user_id, fill.master_id, fill, client_order_id, origin)

    def _result(
        self,
        status: CopyStatus,
        intent: OrderIntent | None,
        *,
        skip: Skip | None = None,
        error: str | None = None,
        error_code: str | None = None,
        latency_ms: float | None = None,
        state: OrderState | None = None,
    ) -> CopyResult:
        return CopyResult(
            self.follow_id,
            self.user_id,
            self.master_id,
            self.client_order_id,
            self.fill,
            status,
            side=intent.side if intent is not None else None,
            requested_quantity=intent.quantity if intent is not None else None,
            skip=skip,
            error=error,
            error_code=error_code,
            latency_ms=latency_ms,
            origin=self.origin,
            state=state,
        )

    def skipped(self, skip: Skip, intent: OrderIntent | None = None, *, state: OrderState | None = None) -> CopyResult:
        return self._result(CopyStatus.SKIPPED, intent, skip=skip, state=state)

    def failed(
        self,
        message: str,
        code: str,
        intent: OrderIntent | None = None,
        *,
        latency_ms: float | None = None,
        state: OrderState | None = None,
    ) -> CopyResult:
        return self._result(
            CopyStatus.FAILED, intent, error=message, error_code=code, latency_ms=latency_ms, state=state
        )

    def written_off(self, side: Side, quantity: Decimal, reason: str) -> CopyResult:
        """A write-off (closed outside the copier), recorded under this subject: never sent."""
        return CopyResult(
            self.follow_id,
            self.user_id,
            self.master_id,
            self.client_order_id,
            self.fill,
            CopyStatus.WRITTEN_OFF,
            side=side,
            requested_quantity=quantity,
            error=reason,
            origin=self.origin,
        )

    def pending(self, intent: OrderIntent | None = None, *, error: str | None = None) -> CopyResult:
        """Sent (or being sent) with an outcome not known here: the row stays pending."""
        return self._result(CopyStatus.PENDING, intent, error=error, state=OrderState.PENDING)

    def from_row(self, row: CopyOrderRecord) -> CopyResult:
        """What the journal already holds for this order (recorded before: the row is the truth)."""
        return CopyResult(
            self.follow_id,
            self.user_id,
            self.master_id,
            row.client_order_id,
            self.fill,
            row.status,
            side=row.side,
            requested_quantity=row.requested_quantity,
            filled_quantity=row.filled_quantity,
            average_price=row.average_price,
            venue_order_id=row.venue_order_id,
            error=row.reason,
            origin=row.origin,
            state=row.state,
        )


def waiting(follow: FollowSettings, fill: Fill) -> CopyResult:
    """Not copied yet, nothing recorded: the fill stays unplanned and is copied later."""
    return Subject.of(follow, fill, "")._result(
        CopyStatus.PENDING,
        None,
        error="waiting for the outcome of an earlier copy before sizing this one",
        error_code=WAITING,
    )


def from_transition(transition: Transition, fill: Fill, *, latency_ms: float | None = None) -> CopyResult:
    """What a recorded change of an order tells its follower."""
    return CopyResult(
        follow_id=transition.follow_id,
        user_id=transition.user_id,
        master_id=fill.master_id,
        client_order_id=transition.client_order_id,
        fill=fill,
        status=transition.status,
        side=transition.side,
        requested_quantity=transition.requested_quantity,
        filled_quantity=transition.filled_quantity,
        average_price=transition.average_price,
        venue_order_id=transition.venue_order_id,
        fee=transition.fee,
        error=transition.reason if transition.status is not CopyStatus.FILLED else None,
        latency_ms=latency_ms,
        origin=transition.origin,
        state=transition.state,
    )


def draft(
    follow: FollowSettings,
    fill: Fill,
    fill_id: int | None,
    intent: OrderIntent,
    status: CopyStatus,
    skip: Skip | None = None,
    *,
    origin: OrderOrigin = OrderOrigin.COPY,
    reason: str | None = None,
    attempt: int = 0,
) -> CopyDraft:
    """The journal row of an order decided for ``follow`` (pending before its send, or a dry run)."""
    return CopyDraft(
        client_order_id=intent.client_order_id,
        fill_id=fill_id,
        follow_id=follow.follow_id,
        user_id=follow.user_id,
        symbol=fill.symbol,
        side=intent.side,
        order_type=intent.order_type,
        reduce_only=intent.reduce_only,
        status=status,
        requested_quantity=intent.quantity,
        master_price=fill.price,
        limit_price=intent.price,
        reason_code=skip.reason.value if skip else None,
        reason=str(skip) if skip else reason,
        dry_run=follow.dry_run and origin is OrderOrigin.COPY,
        origin=origin,
        position_side=intent.position_side,
        protected=intent.protected,
        attempt=attempt,
    )


def unsent_draft(
    follow: FollowSettings,
    fill: Fill,
    fill_id: int | None,
    cid: str,
    status: CopyStatus,
    reason_code: str,
    reason: str,
    *,
    origin: OrderOrigin = OrderOrigin.COPY,
    side: Side | None = None,
    quantity: Decimal | None = None,
) -> CopyDraft:
    """The journal row of an order that was never sent (skipped, or failed before sending)."""
    return CopyDraft(
        client_order_id=cid,
        fill_id=fill_id,
        follow_id=follow.follow_id,
        user_id=follow.user_id,
        symbol=fill.symbol,
        side=side,
        order_type=fill.order_type,
        reduce_only=False,
        status=status,
        requested_quantity=quantity,
        master_price=fill.price,
        reason_code=reason_code,
        reason=reason,
        origin=origin,
        dry_run=follow.dry_run and status is CopyStatus.SKIPPED,
    )
