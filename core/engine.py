"""``CopyEngine.on_fill``: journal → plan per follow → place concurrently → record → notify.

Guarantees:
- **At most once.** The fill is journaled (unique per venue trade id) before anything is
  sent; each copy order has a deterministic client order id and a journal row written before
  it is sent. A duplicate delivery places nothing; a restart asks the venue by client order id
  before sending anything it may already have sent.
- **Never silently dropped.** Every follow gets a recorded result for every leg: placed,
  filled, skipped with a reason, or failed with the venue's answer.
- **Isolation.** Each follow is planned and sent in its own task, bounded per account; a slow
  or failing follower delays only its own next order in the same symbol (orders of one follow
  and symbol stay in fill order so that an exit is sized after the entry it closes).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from core.errors import (
    AuthenticationError,
    InvalidOrder,
    NotFound,
    OrderStatusUnknown,
    PermissionDenied,
    RateLimited,
    TemporaryError,
    UnknownSymbol,
    VaultError,
    VenueError,
    error_code,
)
from core.journal import (
    CopyDraft,
    CopyJournal,
    JournalEntry,
    OpenCopy,
    PositionChange,
    ReportedOrder,
    Transition,
)
from core.model import (
    DEFAULT_PRICE_PROTECTION_PCT,
    CopyResult,
    CopyStatus,
    EntrySides,
    Fill,
    FillStatus,
    FollowSettings,
    MarketRules,
    OrderIntent,
    OrderOrigin,
    OrderReport,
    OrderState,
    OrderType,
    PositionSide,
    RemainderAction,
    Side,
    SizingMode,
    Skip,
    SkipReason,
    SlippageAction,
    plain,
    utcnow,
)
from core.observe import EngineObserver, NullObserver
from core.records import CopyOrderRecord, MasterFillRecord
from core.risk import cap_to_max_position, check_filters
from core.sizing import (
    Leg,
    LegPlan,
    Sized,
    fit_to_market,
    one_way_note,
    raw_entry_quantity,
    round_price,
    size_exit,
    split_legs,
)
from core.venues.base import OrderChange, Venue

log = logging.getLogger(__name__)

ZERO = Decimal(0)


class VenueProvider(Protocol):
    async def venue_for(self, credential_id: str) -> Venue:
        """The long-lived adapter for one stored credential (decrypted once, then cached)."""
        ...

    async def open_many(self, credential_ids: Sequence[str], *, warm_up: bool = False) -> None:
        """Open the adapters not open yet in one go (a cold start must not read each key apart);
        with ``warm_up``, also fetch what their first order needs."""
        ...


@dataclass(frozen=True, slots=True)
class FollowPaused:
    """Published when the engine pauses a follow on its own (e.g. the venue rejected the key)."""

    follow_id: int
    user_id: int
    reason: str


Notify = Callable[[CopyResult | FollowPaused], None]


@dataclass(frozen=True, slots=True)
class EngineConfig:
    max_fill_age: timedelta = timedelta(seconds=30)
    max_concurrent_orders: int = 500
    per_account_concurrency: int = 2
    retry_delays: tuple[float, ...] = (0.25, 0.5, 1.0)  # temporary errors, rate limits, lost answers
    follows_ttl: float = 30.0  # seconds; settings changes also invalidate explicitly
    #: how long a protected limit (a market copy sent as a limit) rests before its unfilled remainder
    #: is re-priced or cancelled: a marketable limit fills at once unless the price ran past it, so
    #: seconds, not the follow's maximum resting time (which is for copies of the master's limits).
    #: Checked by each tracking pass (every 10 s by default): a window ends 10-20 s after the send.
    protected_window: timedelta = timedelta(seconds=10)


@dataclass(frozen=True, slots=True)
class FillOutcome:
    fill: Fill
    duplicate: bool = False
    ignored: bool = False  # not an execution (NEW, CANCELED, ...)
    results: tuple[CopyResult, ...] = ()


def client_order_id(fill: Fill, follow_id: int, leg_index: int) -> str:
    """Deterministic per (master fill, follow, leg): 32 chars of [0-9a-z], valid on every venue."""
    digest = hashlib.sha256(f"{fill.venue}|{fill.trade_id}|{follow_id}|{leg_index}".encode()).hexdigest()
    return "ct" + digest[:30]


def copied_order_type(fill: Fill) -> tuple[OrderType, Decimal | None]:
    """The order type and limit price a follower uses for a master *execution*.

    A stop or take-profit that executed has already triggered: re-placing it as a stop would
    trigger at once or be refused, so its market variant is copied (a stop-limit keeps its limit).
    """
    if fill.order_type is OrderType.LIMIT:
        return OrderType.LIMIT, fill.limit_price or fill.price
    if fill.order_type is OrderType.STOP_LIMIT:
        return OrderType.LIMIT, fill.limit_price or fill.price
    return OrderType.MARKET, None


def protected_limit(intent: OrderIntent, reference: Decimal, protection_pct: Decimal, tick: Decimal) -> OrderIntent:
    """A market order as a LIMIT with DAY validity, for a venue that takes no market or IOC order
    (``Venue.takes_market_orders``): at the reference price (the master's fill price, or the last
    price) moved by ``protection_pct`` in the direction that lets the order execute at once, rounded
    onto the tick in the follower's favour. It rests for ``EngineConfig.protected_window``, then its
    unfilled remainder is re-priced or cancelled (``CopyEngine._end_protected``)."""
    move = reference * protection_pct / 100
    price = reference + move if intent.side is Side.BUY else reference - move
    return replace(
        intent,
        order_type=OrderType.LIMIT,
        price=round_price(price, tick, intent.side),
        time_in_force=None,
        protected=True,
    )


def reprice_order_id(client_order_id: str, attempt: int) -> str:
    """The client order id of a protected limit's ``attempt``-th re-send, derived from the order
    it replaces: a restart re-deciding the same re-send finds it instead of sending it twice."""
    return "cr" + hashlib.sha256(f"{client_order_id}|reprice|{attempt}".encode()).hexdigest()[:30]


def within_limit(price: Decimal, master_price: Decimal, limit_pct: Decimal, side: Side) -> bool:
    """Whether a buy at ``price`` pays at most ``limit_pct`` % more than the master's price (a sell:
    receives at most that much less)."""
    move = master_price * limit_pct / 100
    return price <= master_price + move if side is Side.BUY else price >= master_price - move


@dataclass(frozen=True, slots=True)
class DirectOrder:
    """An order the copier places on its own for one follow (see ``CopyEngine.place_direct``)."""

    symbol: str
    side: Side
    quantity: Decimal
    origin: OrderOrigin  # never COPY: that is a copy of a master fill
    client_order_id: str
    reference_price: Decimal
    reduce_only: bool = False
    position_side: PositionSide = PositionSide.BOTH  # the copied position it moves (closing a hedge leg)
    note: str | None = None  # why it does something else than asked (a one-way account's net effect)


def direct_order_id(*parts: object) -> str:
    """A deterministic client order id for an order the copier decides itself: the same
    decision (same follow, symbol, reason and position) always gets the same id."""
    return "cx" + hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:30]


def _journaled_fill(row: MasterFillRecord) -> Fill:
    """The ``Fill`` a journal row records (resuming after a restart)."""
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


#: a hedge-mode master's fill may meet copies of either of its legs (and of one-way days before)
_SIDES = (PositionSide.LONG, PositionSide.SHORT, PositionSide.BOTH)


def _copied_side(follow: FollowSettings, fill: Fill) -> PositionSide:
    """The follower's copied position a copy of ``fill`` moves: the master's side (reversed for a
    reversed follow), so each of a hedge-mode master's legs is sized against its own copy."""
    return fill.position_side.reversed if follow.reverse else fill.position_side


def _direct_fill(
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


def _unsent(
    follow: FollowSettings,
    fill: Fill,
    fill_id: int | None,
    cid: str,
    status: CopyStatus,
    reason_code: str,
    reason: str,
    *,
    origin: OrderOrigin = OrderOrigin.COPY,
) -> CopyDraft:
    """The journal row of a copy that was never sent (skipped, or failed before sending)."""
    return CopyDraft(
        client_order_id=cid,
        fill_id=fill_id,
        follow_id=follow.follow_id,
        user_id=follow.user_id,
        symbol=fill.symbol,
        side=None,
        order_type=fill.order_type,
        reduce_only=False,
        status=status,
        requested_quantity=None,
        master_price=fill.price,
        reason_code=reason_code,
        reason=reason,
        origin=origin,
        dry_run=follow.dry_run and status is CopyStatus.SKIPPED,
    )


#: ``CopyResult.error_code`` of a copy that waits behind an earlier one's unknown outcome
WAITING = "waiting"


class _LeaseLost(Exception):
    """The sender's lease on a pending copy ran out and another process claimed it."""


@dataclass
class _FollowCache:
    follows: list[FollowSettings]
    loaded_at: float


@dataclass
class CopyEngine:
    journal: CopyJournal
    venues: VenueProvider
    notify: Notify
    config: EngineConfig = field(default_factory=EngineConfig)
    clock: Callable[[], datetime] = utcnow
    master_equity: Callable[[int], Awaitable[Decimal | None]] | None = None
    #: called after a follow's real position moved (take-profit / stop-loss upkeep, loss limit)
    after_position_change: Callable[[FollowSettings, str], Awaitable[None]] | None = None
    #: manual confirmation: a copy of a follow with ``confirm_seconds`` is handed here, sized and
    #: ready, instead of being sent (``core.confirmations``); it comes back through ``copy_confirmed``
    offer_copy: Callable[[FollowSettings, Fill, int, OrderIntent], Awaitable[CopyResult]] | None = None
    #: told of acknowledgements, outcomes, retries and journal commits (the service's metrics)
    observer: EngineObserver = field(default_factory=NullObserver)

    def __post_init__(self) -> None:
        self._follows: dict[int, _FollowCache] = {}
        self._master_locks: dict[int, asyncio.Lock] = {}
        self._account_slots: dict[str, asyncio.Semaphore] = {}
        self._order_slots = asyncio.Semaphore(self.config.max_concurrent_orders)
        #: the follows' copied positions, by (follow, symbol, position side): one BOTH row for a
        #: one-way master's copies, a LONG and a SHORT row for a hedge-mode master's legs
        self._positions: dict[tuple[int, str, PositionSide], Decimal] = {}
        self._tails: dict[tuple[int, str], asyncio.Task[list[CopyResult]]] = {}
        #: client order ids whose send awaits its answer in this process: settling and tracking
        #: leave them to the sender (several processes would hold a lease per row instead)
        self._in_flight: set[str] = set()
        self._planning: set[int] = set()  # journaled fills whose copies on_fill is still planning
        #: copies journaled pending whose outcome is unknown here (a lost answer, a crashed
        #: sender, another process's send), by (follow, symbol): the follower's position there is
        #: uncertain until they are settled, so that follow's later fills wait (``_must_wait``)
        self._unknown: dict[tuple[int, str], set[str]] = {}
        #: the first fill each (follow, symbol) was made to wait with: later ones wait behind it,
        #: so copies keep the master's order; the fills stay unplanned and the settle job
        #: (``resume``) copies them once the unknown outcomes are settled
        self._waiting: dict[tuple[int, str], int] = {}

    # -- public -------------------------------------------------------------------------------

    async def on_fill(self, fill: Fill) -> FillOutcome:
        """Copy one master execution to every active follow of that master."""
        if not fill.status.is_execution:
            cancelled: tuple[CopyResult, ...] = ()
            if fill.status in (FillStatus.CANCELED, FillStatus.EXPIRED):
                cancelled = tuple(await self.cancel_copies_of_master_order(fill.master_id, fill.order_id))
            return FillOutcome(fill, ignored=True, results=cancelled)
        received = time.monotonic()
        lock = self._master_locks.setdefault(fill.master_id, asyncio.Lock())
        async with lock:
            started = time.monotonic()
            entry = await self.journal.journal_fill(fill)
            self.observer.journal_committed("fill", time.monotonic() - started)
            if entry is None:
                return FillOutcome(fill, duplicate=True)
            self._planning.add(entry.fill_id)
            try:
                tasks = await self._start_copies(fill, entry, received)
            except BaseException:
                self._planning.discard(entry.fill_id)
                raise
        try:
            results = [result for batch in await asyncio.gather(*tasks) for result in batch]
            if not any(r.error_code == WAITING for r in results):
                await self.journal.mark_planned(entry.fill_id)
            for result in results:
                if result.error_code != WAITING:
                    self.observer.copy_outcome(result.status.value, result.reason_code)
        finally:
            self._planning.discard(entry.fill_id)
        return FillOutcome(fill, results=tuple(results))

    def invalidate_follows(self, master_id: int | None = None) -> None:
        """Settings changed: the next fill reloads follows (all masters when ``None``)."""
        if master_id is None:
            self._follows.clear()
        else:
            self._follows.pop(master_id, None)

    def _net_position(self, follow_id: int, symbol: str) -> Decimal:
        """The follow's copied position in ``symbol``, every side together (what a one-way account holds)."""
        return sum((q for (f, sym, _), q in self._positions.items() if f == follow_id and sym == symbol), ZERO)

    def forget_positions(self, follow_id: int) -> None:
        """The follow's copied positions changed outside the engine (reconciliation, reset)."""
        for key in [k for k in self._positions if k[0] == follow_id]:  # every symbol and side
            del self._positions[key]

    async def resume(self) -> list[CopyResult]:
        """After a restart, and periodically: copy the fills not fully planned (a crash mid
        fan-out; fills that waited), in fill order — a pending copy of such a fill is looked up
        and sent only if the venue does not have it — then settle every other copy left pending
        by asking its venue for the client order id. Copies another live process is sending are
        left to it, and a follow's later fills wait behind outcomes still unknown. Nothing is
        sent twice."""
        pending = [p for p in await self.journal.pending_copies() if p.client_order_id not in self._in_flight]
        for copy in pending:  # until settled, they make the follow's later fills wait
            self._unknown.setdefault((copy.follow_id, copy.symbol), set()).add(copy.client_order_id)
        results: list[CopyResult] = []
        replans: list[tuple[int, list[asyncio.Task[list[CopyResult]]]]] = []
        for journaled in await self.journal.unplanned_fills():
            assert journaled.id is not None
            if journaled.id in self._planning:  # on_fill is planning it right now
                continue
            fill = _journaled_fill(journaled)
            entry = JournalEntry(journaled.id, journaled.master_position_before)
            # every fill's copies queued now, in fill order: each follow's queue keeps that order,
            # and one follow's slow send does not hold the other follows' later fills
            replans.append((journaled.id, await self._start_copies(fill, entry, time.monotonic())))
        for fill_id, tasks in replans:
            replanned = [r for batch in await asyncio.gather(*tasks) for r in batch]
            results += [r for r in replanned if r.error_code != WAITING]
            if not any(r.error_code == WAITING for r in replanned):
                await self.journal.mark_planned(fill_id)
        done = {r.client_order_id for r in results}
        for copy in pending:
            cid, key = copy.client_order_id, (copy.follow_id, copy.symbol)
            if cid in done:
                continue
            settled = await self._settle_owned(copy.credential_id, cid)
            if settled is not None:
                if settled.status is not CopyStatus.PENDING:
                    self._unknown.get(key, set()).discard(cid)
                results.append(settled)
        return results

    async def _settle_owned(self, credential_id: str | None, cid: str) -> CopyResult | None:
        """Settle one pending copy if no task of this process and no other process (its lease)
        is sending or settling it; ``None`` when it was not ours to settle or is no longer pending."""
        if cid in self._in_flight:
            return None
        self._in_flight.add(cid)  # before any await: no other task of this process takes it meanwhile
        try:
            if not await self.journal.claim_pending(cid):  # another process sends it
                return None
            row = await self.journal.copy_order(cid)
            if row is None or row.status is not CopyStatus.PENDING:
                return None
            fill_row = await self.journal.fill(row.fill_id) if row.fill_id is not None else None
            return await self._settle_pending(credential_id, row.follow_id, row.user_id, fill_row, row)
        finally:
            self._in_flight.discard(cid)

    async def copy_journaled(self, fill_id: int, accept: Callable[[str], bool]) -> list[CopyResult] | None:
        """Copy a fill another process journaled (an executor shard of a scaled-out deployment) to
        the follows whose follower account ``accept`` takes; ``None`` when the journal has no such
        fill. Safe to run again for the same fill after a crash anywhere: a copy already recorded
        is not sent again, and one journaled as pending is looked up on its venue before any
        resend (the same path as ``resume``). Copies of this fill still pending afterwards are
        settled by asking their venue under this process's lease (``_settle_pending``)."""
        row = await self.journal.fill(fill_id)
        if row is None:
            return None
        fill = _journaled_fill(row)
        entry = JournalEntry(fill_id, row.master_position_before)
        tasks = await self._start_copies(fill, entry, time.monotonic(), accept)
        results = [r for batch in await asyncio.gather(*tasks) for r in batch]
        for pending in await self.journal.pending_copies():
            if pending.fill_id != fill_id or pending.credential_id is None or not accept(pending.credential_id):
                continue
            settled = await self._settle_owned(pending.credential_id, pending.client_order_id)
            if settled is not None:
                results.append(settled)
        return results

    async def warm_up(self, accept: Callable[[str], bool] | None = None) -> None:
        """At start: open and warm every active follow's venue before the first fill needs it
        (a cold ccxt account costs a position-mode request and ~3 ms of CPU to build); with
        ``accept``, only the follower accounts it takes (an executor shard's)."""
        credential_ids = await self.journal.active_follow_credentials()
        if accept is not None:
            credential_ids = [c for c in credential_ids if accept(c)]
        await self.venues.open_many(credential_ids, warm_up=True)

    async def drain(self) -> None:
        """Wait for every copy in flight (shutdown)."""
        while self._tails:
            await asyncio.gather(*list(self._tails.values()), return_exceptions=True)

    # -- manual confirmation ------------------------------------------------------------------

    async def copy_confirmed(self, follow: FollowSettings, fill_id: int, cid: str) -> CopyResult:
        """The follower confirmed the offered copy ``cid`` of the journaled fill ``fill_id``. It
        takes the path of every copy, sized now and journaled under the same client order id
        before it is sent: a second confirmation, or one after the offer was recorded as not
        confirmed, finds the journaled row and sends nothing."""
        fill, leg = await self._offered_leg(follow, fill_id, cid)
        await self._load_positions([follow], fill)
        master_equity = fill.master_equity
        if master_equity is None and self.master_equity and follow.sizing_mode is SizingMode.EQUITY_RATIO:
            master_equity = await self.master_equity(fill.master_id)
        key = (follow.follow_id, fill.symbol)
        previous = self._tails.get(key)

        async def after_previous() -> list[CopyResult]:
            if previous is not None:
                await asyncio.wait([previous])  # keep this follow's orders in order
            result = await self._copy_leg(
                follow, fill, fill_id, leg, cid, False, master_equity, time.monotonic(), confirmed=True
            )
            if result.filled_quantity > 0 and not follow.dry_run:
                await self._position_changed(follow, fill.symbol)
            return [result]

        task = asyncio.create_task(after_previous())
        self._queue_last(key, task)
        [result] = await task
        return result

    async def record_unconfirmed(self, follow: FollowSettings, fill_id: int, cid: str, detail: str) -> CopyResult:
        """The offered copy ``cid`` was declined or not answered in time: recorded skipped (not
        confirmed), unless a confirmation journaled it first (then nothing changes)."""
        fill, _ = await self._offered_leg(follow, fill_id, cid)
        return await self._record_skip(follow, fill, fill_id, cid, Skip(SkipReason.NOT_CONFIRMED, detail))

    async def _offered_leg(self, follow: FollowSettings, fill_id: int, cid: str) -> tuple[Fill, LegPlan]:
        journaled = await self.journal.fill(fill_id)
        if journaled is None:
            raise NotFound(f"no journaled fill {fill_id}")
        fill = _journaled_fill(journaled)
        for index, leg in enumerate(split_legs(fill, journaled.master_position_before)):
            if client_order_id(fill, follow.follow_id, index) == cid:
                return fill, leg
        raise NotFound(f"no copy {cid} of fill {fill_id} for follow {follow.follow_id}")

    # -- planning -----------------------------------------------------------------------------

    async def _start_copies(
        self, fill: Fill, entry: JournalEntry, received: float, accept: Callable[[str], bool] | None = None
    ) -> list[asyncio.Task[list[CopyResult]]]:
        follows = await self._active_follows(fill.master_id)
        if accept is not None:
            follows = [f for f in follows if accept(f.credential_id)]
        stale = self.clock() - fill.executed_at > self.config.max_fill_age
        master_equity = fill.master_equity
        if (
            master_equity is None
            and self.master_equity
            and any(f.sizing_mode is SizingMode.EQUITY_RATIO for f in follows)
        ):
            master_equity = await self.master_equity(fill.master_id)
        await self._load_positions(follows, fill)
        legs = split_legs(fill, entry.master_position_before)
        tasks = []
        for follow in follows:
            key = (follow.follow_id, fill.symbol)
            previous = self._tails.get(key)
            task = asyncio.create_task(
                self._copy_for_follow(follow, fill, entry.fill_id, legs, stale, master_equity, received, previous)
            )
            self._queue_last(key, task)
            tasks.append(task)
        return tasks

    async def _load_positions(self, follows: Sequence[FollowSettings], fill: Fill) -> None:
        """The copied positions in the fill's symbol of the follows not known yet, from the journal."""
        sides = _SIDES if fill.position_side is not PositionSide.BOTH else (PositionSide.BOTH,)
        for simulated, side in itertools.product((False, True), sides):
            # dry-run follows size exits against their simulated ledger
            missing = [
                f.follow_id
                for f in follows
                if f.dry_run is simulated and (f.follow_id, fill.symbol, side) not in self._positions
            ]
            if missing:
                known = await self.journal.follow_positions(
                    missing, fill.symbol, simulated=simulated, position_side=side
                )
                for follow_id in missing:
                    self._positions.setdefault((follow_id, fill.symbol, side), known.get(follow_id, ZERO))

    def _queue_last(self, key: tuple[int, str], task: asyncio.Task[list[CopyResult]]) -> None:
        """``task`` is now the last of this follow's work in this symbol (the next one waits for
        it); forgotten once done unless a later one took its place."""
        self._tails[key] = task

        def forget(done: asyncio.Task[list[CopyResult]]) -> None:
            if self._tails.get(key) is done:
                del self._tails[key]

        task.add_done_callback(forget)

    async def _active_follows(self, master_id: int) -> list[FollowSettings]:
        cached = self._follows.get(master_id)
        if cached is None or time.monotonic() - cached.loaded_at > self.config.follows_ttl:
            cached = _FollowCache(await self.journal.active_follows(master_id), time.monotonic())
            self._follows[master_id] = cached
            try:  # once per load, not per fill: venues not open yet are opened in one go
                await self.venues.open_many([f.credential_id for f in cached.follows])
            except Exception:  # only a shortcut: each copy opens its venue itself and records why not
                log.exception("opening the venues of master %s's followers in one go failed", master_id)
        return cached.follows

    async def _copy_for_follow(
        self,
        follow: FollowSettings,
        fill: Fill,
        fill_id: int,
        legs: list[LegPlan],
        stale: bool,
        master_equity: Decimal | None,
        received: float,
        previous: asyncio.Task[list[CopyResult]] | None,
    ) -> list[CopyResult]:
        if previous is not None:
            await asyncio.wait([previous])  # keep this follow's orders in fill order
        key = (follow.follow_id, fill.symbol)
        if await self._must_wait(follow, key, fill_id):
            first = self._waiting.setdefault(key, fill_id)
            self._waiting[key] = min(first, fill_id)
            return [self._waiting_result(follow, fill)]
        if self._waiting.get(key) == fill_id:
            del self._waiting[key]
        results = []
        for index, leg in enumerate(legs):
            cid = client_order_id(fill, follow.follow_id, index)
            try:
                result = await self._copy_leg(follow, fill, fill_id, leg, cid, stale, master_equity, received)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must cost one follower one order, never the others
                log.exception("copy for follow %s failed unexpectedly", follow.follow_id)
                result = await self._record_failure(
                    follow, fill, fill_id, cid, f"internal error: {type(exc).__name__}", received
                )
            results.append(result)
            if result.filled_quantity > 0 and not follow.dry_run:
                await self._position_changed(follow, fill.symbol)
        return results

    async def _must_wait(self, follow: FollowSettings, key: tuple[int, str], fill_id: int) -> bool:
        """Whether this follow's copy of fill ``fill_id`` must wait: an earlier fill of it waits,
        or one of its copies in this symbol has an outcome still unknown (settled here first
        when it can be: the venue is asked)."""
        first = self._waiting.get(key)
        if first is not None and first < fill_id:
            waiting = await self.journal.fill(first)
            if waiting is not None and not waiting.planned:
                return True
            del self._waiting[key]  # copied meanwhile (by another process's settle job)
        for cid in list(self._unknown.get(key, ())):
            row = await self.journal.copy_order(cid)
            if row is not None and row.fill_id == fill_id:
                continue  # a copy of this very fill: planning it looks it up before any send
            if row is not None and row.status is CopyStatus.PENDING:
                await self._settle_owned(follow.credential_id, cid)
                row = await self.journal.copy_order(cid)
            if row is None or row.status is not CopyStatus.PENDING:
                self._unknown[key].discard(cid)
        unknown = self._unknown.get(key, set())
        if not unknown:
            self._unknown.pop(key, None)
        for cid in unknown:
            row = await self.journal.copy_order(cid)
            if row is None or row.fill_id != fill_id:
                return True
        return False

    @staticmethod
    def _waiting_result(follow: FollowSettings, fill: Fill) -> CopyResult:
        """Not copied yet, nothing recorded: the fill stays unplanned and is copied later."""
        return CopyResult(
            follow.follow_id,
            follow.user_id,
            fill.master_id,
            "",
            fill,
            CopyStatus.PENDING,
            error="waiting for the outcome of an earlier copy before sizing this one",
            error_code=WAITING,
        )

    async def _position_changed(self, follow: FollowSettings, symbol: str) -> None:
        if self.after_position_change is None:
            return
        try:
            await self.after_position_change(follow, symbol)
        except asyncio.CancelledError:
            raise
        except Exception:  # protection upkeep must never break copying; the watcher retries
            log.exception("upkeep after a position change of follow %s failed", follow.follow_id)

    async def _copy_leg(
        self,
        follow: FollowSettings,
        fill: Fill,
        fill_id: int,
        leg: LegPlan,
        cid: str,
        stale: bool,
        master_equity: Decimal | None,
        received: float,
        *,
        confirmed: bool = False,
    ) -> CopyResult:
        if stale and leg.leg is Leg.ENTRY:  # a late exit still closes its share of the copy, now
            age = (self.clock() - fill.executed_at).total_seconds()
            return await self._record_skip(follow, fill, fill_id, cid, Skip(SkipReason.STALE_FILL, f"{age:.0f}s old"))
        if leg.leg is Leg.ENTRY:
            rejected = check_filters(follow, fill)  # exits of copied positions are always copied
            if rejected is not None:
                return await self._record_skip(follow, fill, fill_id, cid, rejected)
        try:
            venue = await self.venues.venue_for(follow.credential_id)
            rules = await venue.market(fill.symbol)
        except UnknownSymbol as exc:
            return await self._record_skip(follow, fill, fill_id, cid, Skip(SkipReason.UNKNOWN_SYMBOL, str(exc)))
        except (VenueError, VaultError) as exc:
            return await self._record_failure(follow, fill, fill_id, cid, str(exc), received, exc)
        position_side = _copied_side(follow, fill)
        sized = await self._size(follow, fill, leg, rules, venue, master_equity, position_side)
        if isinstance(sized, Skip):
            return await self._record_skip(follow, fill, fill_id, cid, sized)
        net = self._net_position(follow.follow_id, fill.symbol)
        note = None
        if position_side is not PositionSide.BOTH and not await venue.hedge_mode():
            note = one_way_note(leg.leg, position_side, net, sized.quantity * sized.side.sign)
        if (
            leg.leg is Leg.ENTRY
            and follow.entry_sides is not EntrySides.BOTH
            and (sized.side is Side.BUY) != (follow.entry_sides is EntrySides.LONG)
        ):
            return await self._record_skip(
                follow, fill, fill_id, cid, Skip(SkipReason.SIDE_FILTERED, f"{follow.entry_sides} entries only")
            )
        order_type, limit = copied_order_type(fill)
        intent = OrderIntent(
            follow_id=follow.follow_id,
            client_order_id=cid,
            symbol=fill.symbol,
            side=sized.side,
            quantity=sized.quantity,
            order_type=order_type,
            price=round_price(limit, rules.price_tick, sized.side) if limit is not None else None,
            reduce_only=leg.leg is Leg.EXIT and rules.derivative and note is None,
            reference_price=fill.price,
            leverage=follow.leverage if rules.derivative else None,
            margin_mode=follow.margin_mode if rules.derivative else None,
            product=follow.product or fill.product,
            position_side=position_side,
        )
        if leg.leg is Leg.ENTRY and follow.slippage_pct is not None and intent.order_type is OrderType.MARKET:
            guarded = await self._slippage_guard(follow, fill, intent, venue, rules)
            if isinstance(guarded, Skip):
                return await self._record_skip(follow, fill, fill_id, cid, guarded)
            intent = guarded
        intent = self._order_for_venue(follow, venue, intent, fill.price, rules)
        if follow.confirm_seconds is not None and not confirmed and self.offer_copy is not None:
            return await self.offer_copy(follow, fill, fill_id, intent)
        if follow.dry_run:
            return await self._record_dry_run(follow, fill, fill_id, intent, rules)
        existing = await self.journal.begin_copies(
            [replace(self._draft(follow, fill, fill_id, intent, CopyStatus.PENDING), reason=note)]
        )
        if cid in existing:  # planned by an earlier run: never send before asking the venue
            row = await self.journal.copy_order(cid)
            assert row is not None
            if row.status is not CopyStatus.PENDING or cid in self._in_flight:
                return self._result_from_row(follow, fill, row)
            self._in_flight.add(cid)  # before any await: no other task of this process takes it meanwhile
            try:
                if not await self.journal.claim_pending(cid):  # another process's send may be in flight
                    self._unknown.setdefault((follow.follow_id, fill.symbol), set()).add(cid)
                    return self._result_from_row(follow, fill, row)
                try:
                    found = await self._lookup(venue, intent)
                except OrderStatusUnknown as exc:
                    return await self._finish_failure(follow, fill, intent, str(exc), received, exc)
                if found is not None:
                    return await self._acknowledged(follow, fill, intent, found, received)
            finally:
                self._in_flight.discard(cid)
        return await self._send(follow, fill, venue, intent, received)

    async def _size(
        self,
        follow: FollowSettings,
        fill: Fill,
        leg: LegPlan,
        rules: MarketRules,
        venue: Venue,
        master_equity: Decimal | None,
        position_side: PositionSide,
    ) -> Sized | Skip:
        position = self._positions.get((follow.follow_id, fill.symbol, position_side), ZERO)
        if leg.leg is Leg.EXIT:
            fallback: Decimal | None = None
            if leg.exit_fraction is None:
                untracked = await self._raw_entry(follow, fill, leg.master_quantity, venue, master_equity)
                if isinstance(untracked, Skip):
                    return untracked
                fallback = untracked
            return size_exit(leg, position, rules, fill.price, fallback_quantity=fallback)
        raw = await self._raw_entry(follow, fill, leg.master_quantity, venue, master_equity)
        if isinstance(raw, Skip):
            return raw
        quantity = fit_to_market(raw, rules, fill.price)
        if isinstance(quantity, Skip):
            return quantity
        side = fill.side.opposite if follow.reverse else fill.side
        if follow.max_position_notional is not None:
            same_direction = position if (position > 0) == (side is Side.BUY) else ZERO
            quantity, capped = cap_to_max_position(
                quantity,
                same_direction,
                fill.price,
                follow.max_position_notional,
                step=rules.quantity_step,
                contract_size=rules.contract_size,
            )
            if capped is not None:
                return capped
            refit = fit_to_market(quantity * rules.contract_size, rules, fill.price)
            if isinstance(refit, Skip):
                return Skip(SkipReason.MAX_POSITION, f"what fits under the limit is too small: {refit.detail}")
            quantity = refit
        if follow.max_total_notional is not None:
            used = await self.journal.copied_notional(follow.follow_id)
            quantity, capped = cap_to_max_position(
                quantity,
                used / fill.price,
                fill.price,
                follow.max_total_notional,
                step=rules.quantity_step,
                contract_size=Decimal(1),
            )
            if capped is not None:
                return Skip(SkipReason.MAX_POSITION, f"all copied positions together: {capped.detail}")
            refit = fit_to_market(quantity * rules.contract_size, rules, fill.price)
            if isinstance(refit, Skip):
                return Skip(SkipReason.MAX_POSITION, f"what fits under the total limit is too small: {refit.detail}")
            quantity = refit
        return Sized(side, quantity)

    async def _slippage_guard(
        self, follow: FollowSettings, fill: Fill, intent: OrderIntent, venue: Venue, rules: MarketRules
    ) -> OrderIntent | Skip:
        """Skip a market copy (or send it as a limit at the guard price: IOC, or a protected limit
        where the venue takes no IOC) when the follower's price has moved against them by more
        than the follow's limit since the master's fill."""
        assert follow.slippage_pct is not None
        try:
            now = await venue.price(fill.symbol)
        except VenueError as exc:
            return Skip(SkipReason.SLIPPAGE, f"the price could not be read to check it ({exc})")
        adverse = (now - fill.price) / fill.price * 100 * (1 if intent.side is Side.BUY else -1)
        if adverse <= follow.slippage_pct:
            return intent
        if follow.slippage_action is not SlippageAction.LIMIT:
            return Skip(
                SkipReason.SLIPPAGE,
                f"{adverse:.2f}% from the master's {fill.price} (now {now}), your limit is {follow.slippage_pct}%",
            )
        move = fill.price * follow.slippage_pct / 100
        guard = fill.price + move if intent.side is Side.BUY else fill.price - move
        return replace(
            intent,
            order_type=OrderType.LIMIT,
            price=round_price(guard, rules.price_tick, intent.side),
            time_in_force="IOC" if venue.takes_market_orders else None,  # else it rests, like a protected limit
            protected=not venue.takes_market_orders,
        )

    @staticmethod
    def _order_for_venue(
        follow: FollowSettings, venue: Venue, intent: OrderIntent, reference: Decimal, rules: MarketRules
    ) -> OrderIntent:
        """The order as the follower's venue takes it: a market order becomes a protected limit
        where the venue takes no market orders (Angel One since April 2026)."""
        if venue.takes_market_orders or intent.order_type is not OrderType.MARKET:
            return intent
        protection = follow.price_protection_pct or DEFAULT_PRICE_PROTECTION_PCT
        return protected_limit(intent, reference, protection, rules.price_tick)

    async def _raw_entry(
        self, follow: FollowSettings, fill: Fill, master_quantity: Decimal, venue: Venue, master_equity: Decimal | None
    ) -> Decimal | Skip:
        follower_equity = None
        if follow.sizing_mode is SizingMode.EQUITY_RATIO:
            try:
                follower_equity = await venue.equity()
            except VenueError as exc:
                return Skip(SkipReason.NO_EQUITY, f"balance unavailable: {exc}")
        return raw_entry_quantity(
            follow.sizing_mode,
            follow.sizing_value,
            master_quantity,
            fill.price,
            follower_equity=follower_equity,
            master_equity=master_equity,
        )

    # -- sending ------------------------------------------------------------------------------

    async def _send(
        self,
        follow: FollowSettings,
        fill: Fill,
        venue: Venue,
        intent: OrderIntent,
        received: float,
        *,
        origin: OrderOrigin = OrderOrigin.COPY,
    ) -> CopyResult:
        """Send, then record the venue's answer. The order is in flight, owned by this call, from
        before the send until its answer is recorded: nothing else settles or tracks it."""
        self._in_flight.add(intent.client_order_id)
        try:
            slots = self._account_slots.setdefault(
                follow.credential_id, asyncio.Semaphore(self.config.per_account_concurrency)
            )
            try:
                async with self._order_slots, slots:
                    report = await self._place_with_retries(venue, intent)
            except _LeaseLost as lost:  # another process settles this copy now: it records and notifies
                log.warning("%s", lost)
                return self._outcome_unknown(follow, fill, intent, origin)
            except VenueError as exc:
                return await self._finish_failure(follow, fill, intent, str(exc), received, exc, origin=origin)
            self.observer.copy_acknowledged(venue.name, time.monotonic() - received)
            return await self._acknowledged(follow, fill, intent, report, received, origin=origin)
        finally:
            self._in_flight.discard(intent.client_order_id)

    async def _acknowledged(
        self,
        follow: FollowSettings,
        fill: Fill,
        intent: OrderIntent,
        report: OrderReport,
        received: float,
        *,
        origin: OrderOrigin = OrderOrigin.COPY,
    ) -> CopyResult:
        """Record the first answer to a send (or to the look-up that found the order)."""
        nothing_filled = report.state.is_terminal and report.filled_quantity == 0
        if nothing_filled and report.state is not OrderState.REJECTED and intent.time_in_force == "IOC":
            skip = Skip(SkipReason.SLIPPAGE, f"nothing filled at or better than the guard price {intent.price} (IOC)")
            reported = ReportedOrder(report, (time.monotonic() - received) * 1000, reason=str(skip))
            transition = (await self.journal.record_reports([reported]))[0]
            result = CopyResult(
                follow.follow_id,
                follow.user_id,
                fill.master_id,
                intent.client_order_id,
                fill,
                CopyStatus.SKIPPED,
                side=intent.side,
                requested_quantity=intent.quantity,
                venue_order_id=report.venue_order_id,
                skip=skip,
                origin=origin,
                state=report.state,
            )
            if transition is not None:
                self.notify(result)
            return result
        if nothing_filled and report.state is OrderState.REJECTED:
            rejected = InvalidOrder(
                report.reason or f"the exchange rejected or cancelled order {report.venue_order_id}"
            )
            return await self._finish_failure(follow, fill, intent, str(rejected), received, rejected, origin=origin)
        reported = ReportedOrder(report, (time.monotonic() - received) * 1000)
        started = time.monotonic()
        transition = (await self.journal.record_reports([reported]))[0]
        self.observer.journal_committed("report", time.monotonic() - started)
        if transition is None:  # recorded before by a report that won: the row is the truth
            row = await self.journal.copy_order(intent.client_order_id)
            assert row is not None
            return replace(self._result_from_row(follow, fill, row), origin=origin)
        result = self._transition_result(transition, fill, latency_ms=reported.latency_ms)
        self._moved(transition)
        if self._notable(transition):
            self.notify(result)
        return result

    def _transition_result(self, transition: Transition, fill: Fill, *, latency_ms: float | None = None) -> CopyResult:
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

    def _moved(self, transition: Transition) -> None:
        """Keep the engine's copy of the position in step with what the journal recorded."""
        if transition.ledger_quantity:
            key = (transition.follow_id, transition.symbol, transition.position_side)
            if key in self._positions:
                self._positions[key] += transition.ledger_quantity

    @staticmethod
    def _notable(transition: Transition) -> bool:
        """Followers hear of an order's first answer and of its end; fills in between are
        recorded (and move the ledger) silently."""
        return transition.state_before is OrderState.PENDING or transition.state.is_terminal

    async def _place_with_retries(self, venue: Venue, intent: OrderIntent) -> OrderReport:
        """Retry only what surely did not execute: after any answer that may hide an accepted
        order (lost, timed out, a 5xx), ask the venue by client order id first and resend only
        when it says twice, a retry delay apart, that the id does not exist (Binance documents
        such an order as possibly still being processed; a resend of a *filled* order's id would
        be accepted as a second order — client ids are unique among open orders only)."""
        delays = iter(self.config.retry_delays)
        leased_at = time.monotonic()  # the journal leased the pending row just before the send
        while True:
            if time.monotonic() - leased_at >= self.journal.lease_seconds / 2:
                # retries took long: before sending again, make sure no other process has
                # started settling this copy (its lease would have run out there)
                if not await self.journal.claim_pending(intent.client_order_id):
                    raise _LeaseLost(f"copy {intent.client_order_id} is settled by another process; not re-sent here")
                leased_at = time.monotonic()
            try:
                return await venue.place_order(intent)
            except RateLimited as exc:  # refused before it reached the matching engine
                delay = next(delays, None)
                if delay is None:
                    raise
                delay = max(delay, exc.retry_after or 0)
                self.observer.order_retried(venue.name, "rate_limited")
            except (OrderStatusUnknown, TemporaryError):
                found = await self._lookup(venue, intent)
                if found is None:  # the venue may still be processing it: ask once more before concluding
                    await asyncio.sleep(self.config.retry_delays[0] if self.config.retry_delays else 0)
                    found = await self._lookup(venue, intent)
                if found is not None:
                    return found
                delay = next(delays, None)
                if delay is None:
                    raise
                self.observer.order_retried(venue.name, "unknown_outcome")
            await asyncio.sleep(delay)

    async def _lookup(self, venue: Venue, intent: OrderIntent) -> OrderReport | None:
        for delay in (0, *self.config.retry_delays):
            if delay:
                await asyncio.sleep(delay)
            try:
                return await venue.fetch_order(intent.client_order_id, intent.symbol)
            except (TemporaryError, RateLimited, OrderStatusUnknown):
                continue
        raise OrderStatusUnknown(
            f"order {intent.client_order_id} may have been placed and could not be looked up; it stays pending"
        )

    # -- recording ----------------------------------------------------------------------------
    #
    # Whoever records an outcome notifies it, once: a skip or failure when its row is new, a
    # venue report when it won the journal's compare-and-set (``record_reports``).

    def _draft(
        self,
        follow: FollowSettings,
        fill: Fill,
        fill_id: int,
        intent: OrderIntent,
        status: CopyStatus,
        skip: Skip | None = None,
    ) -> CopyDraft:
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
            reason=str(skip) if skip else None,
            dry_run=follow.dry_run,
            position_side=intent.position_side,
            protected=intent.protected,
        )

    async def _record_skip(self, follow: FollowSettings, fill: Fill, fill_id: int, cid: str, skip: Skip) -> CopyResult:
        draft = _unsent(follow, fill, fill_id, cid, CopyStatus.SKIPPED, skip.reason.value, str(skip))
        existing = await self.journal.begin_copies([draft])
        result = CopyResult(follow.follow_id, follow.user_id, fill.master_id, cid, fill, CopyStatus.SKIPPED, skip=skip)
        if cid not in existing:
            self.notify(result)
        return result

    async def _record_dry_run(
        self, follow: FollowSettings, fill: Fill, fill_id: int, intent: OrderIntent, rules: MarketRules
    ) -> CopyResult:
        """Sized and recorded, never sent; the simulated position moves as if filled at the master's
        price so that later exits are sized the same way they would be live."""
        skip = Skip(SkipReason.DRY_RUN, f"would {intent.side.value} {intent.quantity} {rules.base}")
        existing = await self.journal.begin_copies(
            [self._draft(follow, fill, fill_id, intent, CopyStatus.SKIPPED, skip)]
        )
        result = CopyResult(
            follow.follow_id,
            follow.user_id,
            fill.master_id,
            intent.client_order_id,
            fill,
            CopyStatus.SKIPPED,
            side=intent.side,
            requested_quantity=intent.quantity,
            skip=skip,
        )
        if intent.client_order_id not in existing:
            key = (follow.follow_id, fill.symbol, intent.position_side)
            signed = intent.quantity * intent.side.sign
            self._positions[key] = self._positions.get(key, ZERO) + signed
            change = PositionChange(
                follow.follow_id, fill.symbol, signed, fill.price, simulated=True, position_side=intent.position_side
            )
            await self.journal.finish_copies([result], [change])
            self.notify(result)
        return result

    async def _record_failure(
        self,
        follow: FollowSettings,
        fill: Fill,
        fill_id: int | None,
        cid: str,
        message: str,
        received: float,
        exc: Exception | None = None,
        *,
        origin: OrderOrigin = OrderOrigin.COPY,
    ) -> CopyResult:
        code = error_code(exc) if exc is not None else "internal_error"
        draft = _unsent(follow, fill, fill_id, cid, CopyStatus.FAILED, code, message, origin=origin)
        existing = await self.journal.begin_copies([draft])
        result = CopyResult(
            follow.follow_id,
            follow.user_id,
            fill.master_id,
            cid,
            fill,
            CopyStatus.FAILED,
            error=message,
            error_code=code,
            latency_ms=(time.monotonic() - received) * 1000,
            origin=origin,
        )
        if cid in existing:  # an earlier attempt recorded this order: its row is the truth
            return result
        await self.journal.finish_copies([result], [])
        self.notify(result)
        await self._pause_if_key_rejected(follow, exc)
        return result

    async def _finish_failure(
        self,
        follow: FollowSettings,
        fill: Fill,
        intent: OrderIntent,
        message: str,
        received: float,
        exc: VenueError,
        *,
        origin: OrderOrigin = OrderOrigin.COPY,
    ) -> CopyResult:
        if isinstance(exc, OrderStatusUnknown):
            # Not knowing is not failing: the row stays pending, the settle job looks it up.
            pending = replace(self._outcome_unknown(follow, fill, intent, origin), error=message)
            self.notify(pending)
            return pending
        result = CopyResult(
            follow.follow_id,
            follow.user_id,
            fill.master_id,
            intent.client_order_id,
            fill,
            CopyStatus.FAILED,
            side=intent.side,
            requested_quantity=intent.quantity,
            error=message,
            error_code=error_code(exc),
            latency_ms=(time.monotonic() - received) * 1000,
            origin=origin,
            state=OrderState.REJECTED,
        )
        await self.journal.finish_copies([result], [])
        self.notify(result)
        await self._pause_if_key_rejected(follow, exc)
        return result

    def _outcome_unknown(
        self, follow: FollowSettings, fill: Fill, intent: OrderIntent, origin: OrderOrigin
    ) -> CopyResult:
        """A sent copy whose outcome is not known here: its row stays pending, and the follow's
        later fills in its symbol wait until it is settled (``_must_wait``)."""
        self._unknown.setdefault((follow.follow_id, fill.symbol), set()).add(intent.client_order_id)
        return CopyResult(
            follow.follow_id,
            follow.user_id,
            fill.master_id,
            intent.client_order_id,
            fill,
            CopyStatus.PENDING,
            side=intent.side,
            requested_quantity=intent.quantity,
            origin=origin,
            state=OrderState.PENDING,
        )

    async def _pause_if_key_rejected(self, follow: FollowSettings, exc: Exception | None) -> None:
        if isinstance(exc, (AuthenticationError, PermissionDenied, VaultError)):
            reason = f"the exchange refused your key ({exc})"
            if await self.journal.pause_follow(follow.follow_id, reason):
                self.invalidate_follows(follow.master_id)
                self.notify(FollowPaused(follow.follow_id, follow.user_id, reason))

    async def _fill_of(self, follow_id: int, fill_id: int | None, row: CopyOrderRecord) -> Fill:
        """The master fill a copy order copies, or the stand-in of an order the copier placed."""
        fill_row = await self.journal.fill(fill_id) if fill_id is not None else None
        if fill_row is not None:
            return _journaled_fill(fill_row)
        master_id = await self.journal.master_id_of_follow(follow_id)
        return _direct_fill(
            master_id if master_id is not None else 0,
            row.client_order_id,
            row.origin,
            row.symbol,
            row.side,
            row.requested_quantity,
            row.master_price,
        )

    async def _settle_pending(
        self,
        credential_id: str | None,
        follow_id: int,
        user_id: int,
        fill_row: MasterFillRecord | None,
        row: CopyOrderRecord,
    ) -> CopyResult:
        fill = await self._fill_of(follow_id, fill_row.id if fill_row is not None else None, row)
        base = CopyResult(
            follow_id,
            user_id,
            fill.master_id,
            row.client_order_id,
            fill,
            CopyStatus.PENDING,
            side=row.side,
            requested_quantity=row.requested_quantity,
            origin=row.origin,
        )
        if credential_id is None:  # the follow's key was removed: its venue cannot be asked
            result = replace(
                base,
                status=CopyStatus.FAILED,
                error_code="key_removed",
                error="your exchange key was removed before this order's outcome was known: it may have been "
                "placed, check your exchange account (copytrade can no longer follow it)",
                state=OrderState.REJECTED,
            )
            await self.journal.finish_copies([result], [])
            self.notify(result)
            return result
        try:
            venue = await self.venues.venue_for(credential_id)
            report = await venue.fetch_order(row.client_order_id, row.symbol)
            if report is None:  # the venue may still be processing it: ask once more, as the sender does
                await asyncio.sleep(self.config.retry_delays[0] if self.config.retry_delays else 0)
                report = await venue.fetch_order(row.client_order_id, row.symbol)
        except (VenueError, VaultError) as exc:
            return replace(base, error=f"still pending: {exc}")
        if report is None and fill_row is not None:
            return await self._send_interrupted(venue, fill, row, base)
        if report is None:
            result = replace(
                base,
                status=CopyStatus.FAILED,
                error_code="interrupted",
                error="interrupted before the exchange received the order; not re-sent",
                state=OrderState.REJECTED,
            )
            await self.journal.finish_copies([result], [])
            self.notify(result)
            return result
        return await self._record_tracked(ReportedOrder(report), fill) or base

    async def _send_interrupted(self, venue: Venue, fill: Fill, row: CopyOrderRecord, base: CopyResult) -> CopyResult:
        """A copy of a master fill journaled but never received by the venue (it said so twice, a
        retry delay apart, and the row is ours: leased): sent now, as planned — the follow's later
        fills waited behind it, so the position it was sized against has not moved — unless the
        follow has stopped since or it is an entry gone stale (recorded with the reason)."""
        follow = await self._follow(row.follow_id)
        age = (self.clock() - fill.executed_at).total_seconds()
        if follow is None or row.side is None or not row.requested_quantity:
            unsent = replace(
                base,
                status=CopyStatus.FAILED,
                error_code="interrupted",
                error="interrupted before the exchange received it; not sent since the follow is no longer active",
                state=OrderState.REJECTED,
            )
        elif not row.reduce_only and age > self.config.max_fill_age.total_seconds():
            skip = Skip(SkipReason.STALE_FILL, f"{age:.0f}s old when the interrupted copy could be sent again")
            unsent = replace(base, status=CopyStatus.SKIPPED, skip=skip)
        else:
            try:
                derivative = (await venue.market(row.symbol)).derivative
            except VenueError as exc:
                return replace(base, error=f"still pending: {exc}")
            intent = OrderIntent(
                follow_id=follow.follow_id,
                client_order_id=row.client_order_id,
                symbol=row.symbol,
                side=row.side,
                quantity=row.requested_quantity,
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
            return await self._send(follow, fill, venue, intent, time.monotonic(), origin=row.origin)
        await self.journal.finish_copies([unsent], [])
        self.notify(unsent)
        return unsent

    async def _record_tracked(self, reported: ReportedOrder, fill: Fill | None = None) -> CopyResult | None:
        """Record a report found by settling or tracking (not by the sender): notified and followed
        by the position upkeep when it won the compare-and-set; ``None`` when it changed nothing
        (then nothing else is read: a tracking pass over unchanged orders costs one write attempt)."""
        transition = (await self.journal.record_reports([reported]))[0]
        if transition is None:
            return None
        follow_id, symbol = transition.follow_id, transition.symbol
        if fill is None:
            row = await self.journal.copy_order(transition.client_order_id)
            assert row is not None  # it was just recorded
            fill = await self._fill_of(follow_id, transition.fill_id, row)
        result = self._transition_result(transition, fill)
        self._moved(transition)
        if self._notable(transition):
            self.notify(result)
        if transition.ledger_quantity:
            follow = await self._follow(follow_id)
            if follow is not None:
                await self._position_changed(follow, symbol)
        return result

    async def _follow(self, follow_id: int) -> FollowSettings | None:
        master_id = await self.journal.master_id_of_follow(follow_id)
        if master_id is None:
            return None
        return next((f for f in await self._active_follows(master_id) if f.follow_id == follow_id), None)

    # -- following orders to their end ----------------------------------------------------------

    async def track(self, accept: Callable[[str], bool] | None = None) -> list[CopyResult]:
        """One pass over every sent order still open on its venue (not in flight here): ask the
        venue by client order id and record what changed; cancel those past their follow's
        maximum resting time (what filled is kept, the order is recorded expired). A protected
        limit past its short window (``EngineConfig.protected_window``) is cancelled too, and its
        unfilled remainder re-priced where the follow asks for it (``_end_protected``). With
        ``accept``, only the orders of the follower accounts it takes (an executor shard's)."""
        now = self.clock()
        results: list[CopyResult] = []

        async def follow_one(open_copy: OpenCopy) -> None:
            work: Callable[[], Awaitable[CopyResult | None]]
            if open_copy.protected:
                if now - open_copy.created_at >= self.config.protected_window:
                    work = functools.partial(self._end_protected, open_copy)
                else:
                    work = functools.partial(self._follow_order, open_copy, cancel=False, reason=None)
            else:
                resting = open_copy.max_resting_minutes
                expired = resting is not None and now - open_copy.created_at >= timedelta(minutes=resting)
                reason = f"cancelled after resting {resting} min, the follow's maximum" if expired else None
                work = functools.partial(self._follow_order, open_copy, cancel=expired, reason=reason, expired=expired)
            result = await self._chained(open_copy.follow_id, open_copy.symbol, work)
            if result is not None:
                results.append(result)

        await asyncio.gather(
            *(
                follow_one(c)
                for c in await self.journal.open_copies()
                if c.client_order_id not in self._in_flight
                and (accept is None or (c.credential_id is not None and accept(c.credential_id)))
            )
        )
        return results

    async def cancel_copies_of_master_order(
        self, master_id: int, order_id: str, accept: Callable[[str], bool] | None = None
    ) -> list[CopyResult]:
        """The master cancelled (or the venue expired) one of its orders: cancel its copies still
        resting (with ``accept``, only on the follower accounts it takes). What filled is kept."""
        results = []
        for open_copy in await self.journal.open_copies_of_master_order(master_id, order_id):
            if open_copy.client_order_id in self._in_flight:
                continue
            if accept is not None and (open_copy.credential_id is None or not accept(open_copy.credential_id)):
                continue
            result = await self._chained(
                open_copy.follow_id,
                open_copy.symbol,
                functools.partial(self._follow_order, open_copy, cancel=True, reason="the master cancelled its order"),
            )
            if result is not None:
                results.append(result)
        return results

    async def on_order_change(self, credential_id: str, change: OrderChange) -> CopyResult | None:
        """A follower's venue pushed an update of one of its orders: if it is an open copy (not
        one in flight here, not the follower's own order), read it and record what changed."""
        if change.client_order_id in self._in_flight:
            return None
        row = await self.journal.copy_order(change.client_order_id)
        if row is None or row.state is None or row.state.is_terminal:
            return None
        open_copy = OpenCopy(
            row.client_order_id, row.follow_id, credential_id, row.symbol, row.state, self.clock(), None
        )
        return await self._chained(
            row.follow_id, row.symbol, functools.partial(self._follow_order, open_copy, cancel=False, reason=None)
        )

    async def _follow_order(
        self, open_copy: OpenCopy, *, cancel: bool, reason: str | None, expired: bool = False
    ) -> CopyResult | None:
        read = await self._read_open(open_copy, cancel=cancel)
        if read is None:
            return None
        return await self._record_tracked(ReportedOrder(read[1], reason=reason if cancel else None, expired=expired))

    async def _read_open(self, open_copy: OpenCopy, *, cancel: bool) -> tuple[Venue, OrderReport, bool] | None:
        """Cancel (with ``cancel``) and read an open order by client order id: the venue, its report
        and whether this call cancelled it; ``None`` when the venue could not be asked or does not
        show it (a hiccup: asked again later)."""
        if open_copy.credential_id is None:
            return None
        slots = self._account_slots.setdefault(
            open_copy.credential_id, asyncio.Semaphore(self.config.per_account_concurrency)
        )
        try:
            venue = await self.venues.venue_for(open_copy.credential_id)
            async with slots:
                cancelled = cancel and await venue.cancel_order(open_copy.client_order_id, open_copy.symbol)
                report = await venue.fetch_order(open_copy.client_order_id, open_copy.symbol)
        except (VenueError, VaultError) as exc:
            log.warning("following order %s: %s", open_copy.client_order_id, exc)
            return None
        return None if report is None else (venue, report, cancelled)

    # -- protected limits: the unfilled remainder after the window ------------------------------

    async def _end_protected(self, open_copy: OpenCopy) -> CopyResult | None:
        """A protected limit's window ended: cancel it and read what filled. Once it is over on the
        venue (never before: two live orders for one remainder could both fill), its remainder is
        sent again at a fresh protected price (the last price, ``Venue.price``, moved by the price
        protection) when the follow re-prices, has attempts left and that price stays within the
        follow's slippage limit from the master's fill price (its price protection when it sets no
        slippage limit); otherwise what filled is kept and the order recorded expired. The re-send
        is journaled before the order it replaces is recorded, under a client order id derived from
        it, and looked up before it is sent: a restart between the two never sends it twice."""
        read = await self._read_open(open_copy, cancel=True)
        if read is None:
            return None
        venue, report, cancelled = read
        for delay in self.config.retry_delays if cancelled else ():
            if report.state.is_terminal:
                break
            await asyncio.sleep(delay)  # a venue may take a moment to show an accepted cancellation
            try:
                report = await venue.fetch_order(open_copy.client_order_id, open_copy.symbol) or report
            except VenueError as exc:
                log.warning("reading cancelled order %s: %s", open_copy.client_order_id, exc)
        if not report.state.is_terminal:  # the cancellation is not effective yet: the next pass ends it
            return await self._record_tracked(ReportedOrder(report))
        resend_id = reprice_order_id(open_copy.client_order_id, open_copy.attempt + 1)
        if not cancelled and not (
            report.state is OrderState.CANCELED and await self.journal.copy_order(resend_id) is not None
        ):  # it ended on its own (filled, rejected, or cancelled by the follower): recorded as it is
            return await self._record_tracked(ReportedOrder(report))
        # cancelled here, or by a run that journaled its re-send and stopped before recording it
        row = await self.journal.copy_order(open_copy.client_order_id)
        assert row is not None and row.side is not None and row.requested_quantity is not None  # a sent order
        window = f"not filled within its {self.config.protected_window.total_seconds():g} s window"
        follow = await self._follow(open_copy.follow_id)
        remainder = row.requested_quantity - report.filled_quantity
        if remainder <= 0:
            return await self._record_tracked(ReportedOrder(report))
        if follow is None:
            return await self._record_tracked(
                ReportedOrder(report, reason=f"{window}; the follow is not active", expired=True)
            )
        if follow.remainder_action is not RemainderAction.REPRICE:
            reason = f"{window}; the rest was cancelled (what filled is kept)"
            return await self._record_tracked(ReportedOrder(report, reason=reason, expired=True))
        if row.attempt >= follow.reprice_attempts:
            reason = f"{window}; the rest was cancelled after {row.attempt} re-prices, the follow's maximum"
            return await self._record_tracked(ReportedOrder(report, reason=reason, expired=True))
        fill = await self._fill_of(follow.follow_id, row.fill_id, row)
        resend = await self._repriced(follow, venue, row, fill, remainder, resend_id)
        if isinstance(resend, str):
            return await self._record_tracked(ReportedOrder(report, reason=f"{window}; {resend}", expired=True))
        draft = replace(
            self._draft(follow, fill, 0, resend, CopyStatus.PENDING),
            fill_id=row.fill_id,
            origin=row.origin,
            attempt=row.attempt + 1,
        )
        existing = await self.journal.begin_copies([draft])
        reason = (
            f"{window}; the rest ({plain(remainder)}) was sent again at {plain(resend.price or ZERO)} "
            f"(re-price {row.attempt + 1} of {follow.reprice_attempts})"
        )
        await self._record_tracked(ReportedOrder(report, reason=reason, expired=True))
        return await self._send_once(follow, fill, venue, resend, existing, origin=row.origin)

    async def _repriced(
        self,
        follow: FollowSettings,
        venue: Venue,
        row: CopyOrderRecord,
        fill: Fill,
        remainder: Decimal,
        client_order_id: str,
    ) -> OrderIntent | str:
        """The re-send of a protected limit's remainder at a fresh protected price, or why not."""
        assert row.side is not None
        try:
            rules = await venue.market(row.symbol)
            last = await venue.price(row.symbol)
        except VenueError as exc:
            return f"the rest was cancelled: the price could not be read to re-price it ({exc})"
        protection = follow.price_protection_pct or DEFAULT_PRICE_PROTECTION_PCT
        limit = follow.slippage_pct if follow.slippage_pct is not None else protection
        intent = OrderIntent(
            follow_id=follow.follow_id,
            client_order_id=client_order_id,
            symbol=row.symbol,
            side=row.side,
            quantity=remainder,
            reduce_only=row.reduce_only,
            reference_price=row.master_price,
            leverage=follow.leverage if rules.derivative else None,
            margin_mode=follow.margin_mode if rules.derivative else None,
            product=follow.product or fill.product,
            position_side=row.position_side,
        )
        intent = protected_limit(intent, last, protection, rules.price_tick)
        assert intent.price is not None
        if not within_limit(intent.price, row.master_price, limit, row.side):
            return (
                f"the rest was cancelled: a fresh price of {plain(intent.price)} (last {plain(last)}) is more "
                f"than {plain(limit)} % from the master's {plain(row.master_price)}"
            )
        return intent

    async def _send_once(
        self,
        follow: FollowSettings,
        fill: Fill,
        venue: Venue,
        intent: OrderIntent,
        existing: set[str],
        *,
        origin: OrderOrigin,
    ) -> CopyResult:
        """Send a journaled order unless an earlier run did: an id journaled before is looked up
        on the venue first and sent only when the venue has no such order."""
        received = time.monotonic()
        cid = intent.client_order_id
        if cid in existing:
            row = await self.journal.copy_order(cid)
            assert row is not None
            if row.status is not CopyStatus.PENDING or cid in self._in_flight:
                return replace(self._result_from_row(follow, fill, row), origin=origin)
            self._in_flight.add(cid)
            try:
                try:
                    found = await self._lookup(venue, intent)
                except OrderStatusUnknown as exc:
                    return await self._finish_failure(follow, fill, intent, str(exc), received, exc, origin=origin)
                if found is not None:
                    return await self._acknowledged(follow, fill, intent, found, received, origin=origin)
            finally:
                self._in_flight.discard(cid)
        return await self._send(follow, fill, venue, intent, received, origin=origin)

    # -- orders the copier places itself ------------------------------------------------------

    async def place_direct(self, follow: FollowSettings, order: DirectOrder) -> CopyResult:
        """Send an order the copier decided itself (take-profit, stop-loss, sync, opening the
        master's positions, closing on the loss limit) through the same path as a copy: journaled
        as pending first, never sent twice, recorded and notified. It waits for this follow's
        copies in flight in the same symbol, so that it acts on the position they leave."""
        result = await self._chained(follow.follow_id, order.symbol, lambda: self._direct(follow, order))
        assert result is not None
        return result

    async def record_venue_fill(
        self,
        follow: FollowSettings,
        order: DirectOrder,
        *,
        filled: Decimal,
        price: Decimal,
        fee: Decimal,
        venue_order_id: str,
    ) -> CopyResult:
        """An order resting on the venue for this follow (a take-profit or stop-loss) executed:
        journal it as filled, move the copied position and notify — once, however often seen."""
        result = await self._chained(
            follow.follow_id, order.symbol, lambda: self._venue_fill(follow, order, filled, price, fee, venue_order_id)
        )
        assert result is not None
        return result

    async def record_direct_skip(self, follow: FollowSettings, order: DirectOrder, skip: Skip) -> CopyResult:
        """An order the copier decided but cannot send (e.g. a remainder below the venue's
        minimum): recorded with its reason and notified, like any skipped copy."""
        fill = _direct_fill(
            follow.master_id,
            order.client_order_id,
            order.origin,
            order.symbol,
            order.side,
            order.quantity,
            order.reference_price,
        )
        draft = CopyDraft(
            client_order_id=order.client_order_id,
            fill_id=None,
            follow_id=follow.follow_id,
            user_id=follow.user_id,
            symbol=order.symbol,
            side=order.side,
            order_type=OrderType.MARKET,
            reduce_only=order.reduce_only,
            status=CopyStatus.SKIPPED,
            requested_quantity=order.quantity,
            master_price=order.reference_price,
            reason_code=skip.reason.value,
            reason=str(skip),
            origin=order.origin,
        )
        existing = await self.journal.begin_copies([draft])
        result = CopyResult(
            follow.follow_id,
            follow.user_id,
            follow.master_id,
            order.client_order_id,
            fill,
            CopyStatus.SKIPPED,
            side=order.side,
            requested_quantity=order.quantity,
            skip=skip,
            origin=order.origin,
        )
        if order.client_order_id not in existing:
            self.notify(result)
        return result

    async def _chained(
        self, follow_id: int, symbol: str, work: Callable[[], Awaitable[CopyResult | None]]
    ) -> CopyResult | None:
        """Run ``work`` after this follow's copies in flight in ``symbol``, in the same queue."""
        key = (follow_id, symbol)
        previous = self._tails.get(key)

        async def after_previous() -> list[CopyResult]:
            if previous is not None:
                await asyncio.wait([previous])
            result = await work()
            return [] if result is None else [result]

        task = asyncio.create_task(after_previous())
        self._queue_last(key, task)
        done = await task
        return done[0] if done else None

    async def _venue_fill(
        self,
        follow: FollowSettings,
        order: DirectOrder,
        filled: Decimal,
        price: Decimal,
        fee: Decimal,
        venue_order_id: str,
    ) -> CopyResult:
        fill = _direct_fill(
            follow.master_id,
            order.client_order_id,
            order.origin,
            order.symbol,
            order.side,
            order.quantity,
            order.reference_price,
        )
        intent = OrderIntent(
            follow.follow_id,
            order.client_order_id,
            order.symbol,
            order.side,
            order.quantity,
            reduce_only=order.reduce_only,
            position_side=order.position_side,
        )
        draft = replace(
            self._draft(follow, fill, 0, intent, CopyStatus.PENDING), fill_id=None, origin=order.origin, dry_run=False
        )
        if order.client_order_id in await self.journal.begin_copies([draft]):
            row = await self.journal.copy_order(order.client_order_id)
            assert row is not None
            if row.status is not CopyStatus.PENDING:
                return replace(self._result_from_row(follow, fill, row), origin=order.origin)
        report = OrderReport(venue_order_id, order.client_order_id, OrderState.FILLED, filled, price, fee)
        transition = (await self.journal.record_reports([ReportedOrder(report)]))[0]
        if transition is None:  # recorded before: the row is the truth
            row = await self.journal.copy_order(order.client_order_id)
            assert row is not None
            return replace(self._result_from_row(follow, fill, row), origin=order.origin)
        self._moved(transition)
        result = self._transition_result(transition, fill)
        self.notify(result)
        return result

    async def _direct(self, follow: FollowSettings, order: DirectOrder) -> CopyResult:
        received = time.monotonic()
        fill = _direct_fill(
            follow.master_id,
            order.client_order_id,
            order.origin,
            order.symbol,
            order.side,
            order.quantity,
            order.reference_price,
        )
        try:
            venue = await self.venues.venue_for(follow.credential_id)
            rules = await venue.market(order.symbol)
        except (VenueError, VaultError) as exc:
            return await self._record_failure(
                follow, fill, None, order.client_order_id, str(exc), received, exc, origin=order.origin
            )
        intent = OrderIntent(
            follow_id=follow.follow_id,
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            quantity=order.quantity,
            reduce_only=order.reduce_only and rules.derivative,
            reference_price=order.reference_price,
            leverage=follow.leverage if rules.derivative else None,
            margin_mode=follow.margin_mode if rules.derivative else None,
            position_side=order.position_side,
            product=follow.product,
        )
        intent = self._order_for_venue(follow, venue, intent, order.reference_price, rules)
        draft = replace(
            self._draft(follow, fill, 0, intent, CopyStatus.PENDING),
            fill_id=None,
            origin=order.origin,
            dry_run=False,
            reason=order.note,
        )
        existing = await self.journal.begin_copies([draft])
        result: CopyResult | None = None
        if order.client_order_id in existing:  # decided before (a retried job): never send twice
            row = await self.journal.copy_order(order.client_order_id)
            assert row is not None
            if row.status is not CopyStatus.PENDING or order.client_order_id in self._in_flight:
                return replace(self._result_from_row(follow, fill, row), origin=order.origin)
            self._in_flight.add(order.client_order_id)  # before any await (see ``_copy_leg``)
            try:
                if not await self.journal.claim_pending(order.client_order_id):  # another process sends it
                    return replace(self._result_from_row(follow, fill, row), origin=order.origin)
                found = await self._lookup(venue, intent)
            except OrderStatusUnknown as exc:
                result = await self._finish_failure(follow, fill, intent, str(exc), received, exc, origin=order.origin)
            else:
                if found is not None:
                    result = await self._acknowledged(follow, fill, intent, found, received, origin=order.origin)
            finally:
                self._in_flight.discard(order.client_order_id)
        if result is None:
            result = await self._send(follow, fill, venue, intent, received, origin=order.origin)
        return result

    def _result_from_row(self, follow: FollowSettings, fill: Fill, row: CopyOrderRecord) -> CopyResult:
        return CopyResult(
            follow.follow_id,
            follow.user_id,
            fill.master_id,
            row.client_order_id,
            fill,
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
