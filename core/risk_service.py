"""The controls that act between master fills: take-profit / stop-loss, the daily loss limit,
reconciliation of copied positions with the venue, and opening the master's positions for a
new follow. Every order they decide goes through the order path's direct orders
(``core.copying.direct``: journaled first, deterministic client order id, never sent twice,
recorded and notified); every protective order they place or cancel, through its sender.

Take-profit and stop-loss are set in percent of the follower's own average entry price. Where
the venue holds conditional orders (``Venue.supports_conditional_orders``) they rest there,
reduce-only, resized whenever the copied position changes and cancelled when it closes; a
triggered one is recorded like a copy. Elsewhere ``watch`` compares the venue's price with the
levels and closes the position when one is crossed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from core.copying.config import FollowPaused
from core.copying.copier import MasterEquity
from core.copying.direct import DirectOrder
from core.copying.ids import direct_order_id
from core.copying.path import OrderPath
from core.errors import UnknownSymbol, VaultError, VenueError
from core.journal import ProtectiveOrder, RiskLedger
from core.model import (
    CopyResult,
    CopyStatus,
    FollowSettings,
    OrderIntent,
    OrderOrigin,
    OrderReport,
    OrderState,
    OrderType,
    PositionSide,
    Side,
    SizingMode,
    Skip,
    SkipReason,
    drift_label,
    utcnow,
    venue_side,
)
from core.records import PositionRecord
from core.sizing import Leg, fit_to_market, one_way_note, raw_entry_quantity, round_down
from core.venues.base import Venue

log = logging.getLogger(__name__)

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class DriftFound:
    """Published when reconciliation finds the venue disagreeing with the copy history."""

    follow_id: int
    user_id: int
    drifts: tuple[tuple[str, Decimal, Decimal], ...]  # (symbol, expected, actual)
    synced: bool  # auto-sync sent orders to fix it


@dataclass(frozen=True, slots=True)
class RiskNotice:
    """Something the follower must know about their protection (e.g. a refused stop-loss)."""

    follow_id: int
    user_id: int
    text: str


def protection_levels(
    quantity: Decimal, entry: Decimal, take_profit_pct: Decimal | None, stop_loss_pct: Decimal | None, tick: Decimal
) -> tuple[Decimal | None, Decimal | None]:
    """Trigger prices for a position of signed ``quantity`` entered at ``entry``, on the tick.

    Each level is rounded towards the entry price, so it never triggers later than asked.
    """
    long = quantity > 0

    def on_tick(price: Decimal, rounding: str) -> Decimal:
        return (price / tick).to_integral_value(rounding=rounding) * tick if tick > 0 else price

    take_profit = stop_loss = None
    if take_profit_pct is not None:
        move = entry * take_profit_pct / 100
        take_profit = on_tick(entry + move, ROUND_FLOOR) if long else on_tick(entry - move, ROUND_CEILING)
    if stop_loss_pct is not None:
        move = entry * stop_loss_pct / 100
        stop_loss = on_tick(entry - move, ROUND_CEILING) if long else on_tick(entry + move, ROUND_FLOOR)
    return take_profit, stop_loss


def crossed(
    quantity: Decimal, price: Decimal, take_profit: Decimal | None, stop_loss: Decimal | None
) -> OrderOrigin | None:
    """Which level ``price`` has reached for a position of signed ``quantity`` (None: neither)."""
    long = quantity > 0
    if take_profit is not None and (price >= take_profit if long else price <= take_profit):
        return OrderOrigin.TAKE_PROFIT
    if stop_loss is not None and (price <= stop_loss if long else price >= stop_loss):
        return OrderOrigin.STOP_LOSS
    return None


def _closing_side(quantity: Decimal) -> Side:
    """The side of an order that closes a position of signed ``quantity``."""
    return Side.SELL if quantity > 0 else Side.BUY


def _closed_leg(legs: Sequence[PositionRecord], side: Side) -> PositionSide:
    """Which copied position (of one symbol) an order on ``side`` that closes one belongs to: the
    leg it closes (a SELL the long one, a BUY the short one). A protective order journals no
    position side, and a follow holds one leg of each sign per symbol (a long and a short), so
    its closing side names the leg."""
    for position in legs:
        if _closing_side(position.quantity) is side:
            return position.position_side
    return PositionSide.BOTH  # no copy left to close: a one-way record of what the venue did


@dataclass(frozen=True, slots=True)
class _NetLeg:
    """A one-way account's net of its copies of a hedge-mode master's legs in one symbol, as the
    position its take-profit / stop-loss protect (the venue holds only the net)."""

    symbol: str
    quantity: Decimal
    entry_price: Decimal | None
    position_side: PositionSide
    updated_at: datetime
    simulated: bool = False
    realized_pnl: Decimal = ZERO


def _net_leg(legs: Sequence[PositionRecord]) -> list[PositionRecord]:
    """The net of one symbol's legs on a one-way account, protected as one position: its size is
    the net, its entry price the entry of the leg on the net's side (the net is what is left of
    that leg), and a triggered close is booked against that leg."""
    net = sum((leg.quantity for leg in legs), ZERO)
    kept = next((leg for leg in legs if net != 0 and (leg.quantity > 0) == (net > 0)), None)
    if kept is None:
        return []
    updated = max(leg.updated_at for leg in legs)
    return [_NetLeg(kept.symbol, net, kept.entry_price, kept.position_side, updated)]


def _protected(follow: FollowSettings) -> bool:
    return follow.take_profit_pct is not None or follow.stop_loss_pct is not None


class RiskService:
    def __init__(
        self,
        journal: RiskLedger,
        path: OrderPath,
        notify: Callable[[FollowPaused | DriftFound | RiskNotice], None],
        *,
        master_equity: MasterEquity | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        """``path``: the copier's order path — every order placed or cancelled here goes through
        its sender, every order decided here through its direct orders."""
        self.journal = journal
        self.path = path
        self.notify = notify
        self.master_equity = master_equity
        self.clock = clock

    async def _venue(self, follow: FollowSettings) -> Venue:
        return await self.path.venues.venue_for(follow.credential_id)

    # -- after every change of a follow's copied position ----------------------------------------

    async def after_position_change(self, follow: FollowSettings, symbol: str) -> None:
        """The engine's hook: keep resting TP/SL in step, then check the loss limit. A follow
        with neither costs nothing here (this runs after every filled copy)."""
        if _protected(follow):
            await self.protect(follow, symbol)
        await self.check_daily_loss(follow)

    async def protect(self, follow: FollowSettings, symbol: str) -> None:
        """Make the venue's resting take-profit / stop-loss match the copied positions in
        ``symbol``: each leg (a hedge-mode follower's long and short) has its own, told apart by
        the side that closes it (a SELL closes the long, a BUY the short)."""
        try:
            venue = await self._venue(follow)
        except (VenueError, VaultError):
            return
        if not venue.supports_conditional_orders:
            return  # the price watcher covers this venue
        while await self._protect_once(follow, venue, symbol):
            pass  # an order fired before it could be cancelled: its fill moved the position, derive again

    async def _protect_once(self, follow: FollowSettings, venue: Venue, symbol: str) -> bool:
        """One pass of ``protect``; True when it found a protective order that had fired (and
        recorded its fill) instead of cancelling it: the resting orders are then derived again."""
        legs = [p for p in await self.journal.real_positions(follow.follow_id) if p.symbol == symbol]
        if len(legs) > 1 and not await venue.hedge_mode():
            legs = _net_leg(legs)
        desired: dict[tuple[OrderOrigin, Side], tuple[Decimal, Decimal, PositionRecord]] = {}
        if follow.take_profit_pct or follow.stop_loss_pct:
            for position in legs:
                if position.entry_price is None:
                    continue
                rules = await venue.market(symbol)
                take_profit, stop_loss = protection_levels(
                    position.quantity,
                    position.entry_price,
                    follow.take_profit_pct,
                    follow.stop_loss_pct,
                    rules.price_tick,
                )
                close_side = _closing_side(position.quantity)
                for kind, trigger in ((OrderOrigin.TAKE_PROFIT, take_profit), (OrderOrigin.STOP_LOSS, stop_loss)):
                    if trigger is not None and trigger > 0:
                        desired[(kind, close_side)] = (abs(position.quantity), trigger, position)
        for order in await self.journal.protective_orders(follow.follow_id, symbol):
            wanted = desired.get((order.kind, order.side))
            if wanted is not None and wanted[:2] == (order.quantity, order.trigger_price):
                del desired[(order.kind, order.side)]  # already resting as wanted
                continue
            if await self._cancel(follow, venue, order):
                return True
        for (kind, close_side), (quantity, trigger, position) in desired.items():
            await self._place_protective(follow, venue, position, kind, close_side, quantity, trigger)
        return False

    async def _cancel(self, follow: FollowSettings, venue: Venue, order: ProtectiveOrder) -> bool:
        """Cancel a resting protective order. One the venue no longer holds is read: if it fired
        (a stop reached just before a resize), its fill is recorded and True returned; if it ended
        otherwise it is marked failed; if it still shows open, the watch looks at it again."""
        try:
            if await self.path.sender.cancel(venue, follow.credential_id, order.client_order_id, order.symbol):
                await self.journal.set_protective_status(order.client_order_id, CopyStatus.FAILED)
                return False
            report = await venue.fetch_order(order.client_order_id, order.symbol)
        except VenueError as exc:
            log.warning("cancelling %s %s failed: %s", order.kind, order.client_order_id, exc)
            return False
        if report is not None and report.status is CopyStatus.FILLED:
            price = report.average_price or order.trigger_price
            await self._record_triggered(
                follow, order, report.filled_quantity, price, report.fee, report.venue_order_id
            )
            return True
        if report is None or report.state.is_terminal:
            await self.journal.set_protective_status(order.client_order_id, CopyStatus.FAILED)
        return False

    async def _place_protective(
        self,
        follow: FollowSettings,
        venue: Venue,
        position: PositionRecord,
        kind: OrderOrigin,
        side: Side,
        quantity: Decimal,
        trigger: Decimal,
    ) -> None:
        symbol = position.symbol
        version = position.updated_at.isoformat()  # one id per state of the position: a retry reuses it
        leg = () if position.position_side is PositionSide.BOTH else (position.position_side,)
        cid = direct_order_id("protect", follow.follow_id, symbol, kind, quantity, trigger, version, *leg)
        order = ProtectiveOrder(
            client_order_id=cid,
            follow_id=follow.follow_id,
            symbol=symbol,
            kind=kind,
            side=side,
            quantity=quantity,
            trigger_price=trigger,
            status=CopyStatus.PENDING,
        )
        if not await self.journal.save_protective_order(order):
            return  # decided before: the existing row is the truth
        order_type = OrderType.TAKE_PROFIT_MARKET if kind is OrderOrigin.TAKE_PROFIT else OrderType.STOP_MARKET
        intent = OrderIntent(
            follow.follow_id,
            cid,
            symbol,
            side,
            quantity,
            order_type=order_type,
            stop_price=trigger,
            reduce_only=True,  # a hedge-mode account sends the leg's positionSide instead
            position_side=position.position_side,
        )
        try:
            ack = await self.path.sender.place_resting(venue, follow.credential_id, intent)
        except VenueError as exc:
            await self.journal.set_protective_status(cid, CopyStatus.FAILED)
            label = kind.replace("_", "-")
            self.notify(
                RiskNotice(follow.follow_id, follow.user_id, f"your {label} order for {symbol} was refused: {exc}")
            )
            return
        await self.journal.set_protective_status(cid, ack.status, ack.venue_order_id)
        if ack.status is CopyStatus.FILLED:
            await self._record_triggered(
                follow, order, ack.filled_quantity, ack.average_price or trigger, ack.fee, ack.venue_order_id
            )
            await self.protect(follow, symbol)  # the sibling order goes, or is resized

    async def _record_triggered(
        self,
        follow: FollowSettings,
        order: ProtectiveOrder,
        filled: Decimal,
        price: Decimal,
        fee: Decimal,
        venue_order_id: str,
    ) -> None:
        legs = [p for p in await self.journal.real_positions(follow.follow_id) if p.symbol == order.symbol]
        direct = DirectOrder(
            order.symbol,
            order.side,
            order.quantity,
            order.kind,
            order.client_order_id,
            order.trigger_price,
            reduce_only=True,
            position_side=_closed_leg(legs, order.side),
        )
        report = OrderReport(venue_order_id, order.client_order_id, OrderState.FILLED, filled, price, fee)
        await self.path.direct.record_venue_fill(follow, direct, report)
        await self.journal.set_protective_status(order.client_order_id, CopyStatus.FILLED)

    # -- the periodic watch -------------------------------------------------------------------

    async def watch(self) -> list[CopyResult]:
        """One pass over every active follow: resting TP/SL that triggered, levels crossed on
        venues without conditional orders, and the daily loss limit."""
        results: list[CopyResult] = []
        leftovers = await self.journal.follows_with_resting_protection()
        for follow in await self.journal.all_active_follows():
            if not (_protected(follow) or follow.daily_loss_limit is not None or follow.follow_id in leftovers):
                continue
            try:
                if follow.follow_id in leftovers and not _protected(follow):
                    for symbol in leftovers[follow.follow_id]:
                        await self.protect(follow, symbol)  # TP/SL switched off: cancel what rests
                results += await self._watch_follow(follow)
            except (VenueError, VaultError) as exc:
                log.warning("risk watch of follow %s: %s", follow.follow_id, exc)
        return results

    async def _watch_follow(self, follow: FollowSettings) -> list[CopyResult]:
        results: list[CopyResult] = []
        if follow.dry_run:
            return results
        positions = await self.journal.real_positions(follow.follow_id)
        if positions and (follow.take_profit_pct is not None or follow.stop_loss_pct is not None):
            venue = await self._venue(follow)
            if venue.supports_conditional_orders:  # once per symbol: its orders protect every leg
                for symbol in sorted({position.symbol for position in positions}):
                    await self._check_resting(follow, venue, symbol)
            else:
                for position in positions:
                    result = await self._close_if_crossed(follow, venue, position)
                    if result is not None:
                        results.append(result)
        await self.check_daily_loss(follow)
        return results

    async def _check_resting(self, follow: FollowSettings, venue: Venue, symbol: str) -> None:
        for order in await self.journal.protective_orders(follow.follow_id, symbol):
            ack = await venue.fetch_order(order.client_order_id, symbol)
            if ack is None:
                continue
            if ack.status is CopyStatus.FILLED:
                await self._record_triggered(
                    follow,
                    order,
                    ack.filled_quantity,
                    ack.average_price or order.trigger_price,
                    ack.fee,
                    ack.venue_order_id,
                )
                await self.protect(follow, symbol)  # the sibling order goes, or is resized
            elif ack.state.is_terminal:  # cancelled, expired or rejected on the venue
                await self.journal.set_protective_status(order.client_order_id, CopyStatus.FAILED)
                await self.protect(follow, symbol)  # cancelled or expired on the venue: put it back

    async def _close_if_crossed(
        self, follow: FollowSettings, venue: Venue, position: PositionRecord
    ) -> CopyResult | None:
        if position.entry_price is None:
            return None
        rules = await venue.market(position.symbol)
        take_profit, stop_loss = protection_levels(
            position.quantity, position.entry_price, follow.take_profit_pct, follow.stop_loss_pct, rules.price_tick
        )
        price = await venue.price(position.symbol)
        kind = crossed(position.quantity, price, take_profit, stop_loss)
        if kind is None:
            return None
        cid = direct_order_id(kind, follow.follow_id, position.symbol, position.quantity, position.entry_price)
        results = await self._close(follow, venue, position, kind, cid, price)
        return results[0] if results else None

    # -- daily loss limit -----------------------------------------------------------------------

    async def daily_pnl(self, follow: FollowSettings) -> Decimal:
        """Realized (fees deducted) since 00:00 UTC plus unrealized at the venue's prices."""
        now = self.clock()
        midnight = datetime.combine(now.astimezone(UTC).date(), time(0), tzinfo=UTC)
        pnl = await self.journal.realized_since(follow.follow_id, midnight)
        positions = await self.journal.real_positions(follow.follow_id)
        if positions:
            venue = await self._venue(follow)
            for position in positions:
                if position.entry_price is None:
                    continue
                try:
                    price = await venue.price(position.symbol)
                except VenueError:
                    continue  # counted at the next check
                rules = await venue.market(position.symbol)
                pnl += (price - position.entry_price) * position.quantity * rules.contract_size
        return pnl

    async def check_daily_loss(self, follow: FollowSettings) -> bool:
        """Pause the follow (and close its positions if it says so) once today's loss reaches
        the limit; True when it was paused now."""
        if follow.daily_loss_limit is None:
            return False
        pnl = await self.daily_pnl(follow)
        if pnl > -follow.daily_loss_limit:
            return False
        reason = f"daily loss limit reached: {pnl.quantize(Decimal('0.01'))} today, limit {follow.daily_loss_limit}"
        if not await self.journal.pause_follow(follow.follow_id, reason):
            return False
        self.path.follows.invalidate(follow.master_id)
        self.notify(FollowPaused(follow.follow_id, follow.user_id, reason))
        if follow.close_on_daily_loss:
            await self.close_positions(follow, origin=OrderOrigin.CLOSE)
        return True

    async def close_positions(self, follow: FollowSettings, *, origin: OrderOrigin) -> list[CopyResult]:
        """Close every copied position of the follow with reduce-only market orders."""
        results = []
        venue = await self._venue(follow)
        positions = await self.journal.real_positions(follow.follow_id)
        # a one-way account holds the net of the copies of a hedge master's legs: a close larger
        # than that net is sent without reduce-only (Binance may cut or refuse it), the next one reduces
        nets: dict[str, Decimal] = {}
        for position in positions:
            nets[position.symbol] = nets.get(position.symbol, ZERO) + position.quantity
        hedged = await venue.hedge_mode()
        for position in positions:
            for order in await self.journal.protective_orders(follow.follow_id, position.symbol):
                await self._cancel(follow, venue, order)
            cid = direct_order_id(
                origin, follow.follow_id, position.symbol, position.quantity, position.updated_at.isoformat()
            )
            price = position.entry_price or await venue.price(position.symbol)
            net = nets[position.symbol]
            reduces = hedged or ((net > 0) == (position.quantity > 0) and abs(position.quantity) <= abs(net))
            results += await self._close(follow, venue, position, origin, cid, price, reduce_only=reduces)
            nets[position.symbol] = net - position.quantity
        return results

    async def _close(
        self,
        follow: FollowSettings,
        venue: Venue,
        position: PositionRecord,
        origin: OrderOrigin,
        cid: str,
        price: Decimal,
        *,
        reduce_only: bool = True,
    ) -> list[CopyResult]:
        """Close a copied position with a reduce-only market order on the venue's step (bounded by
        what the venue shows held, the rest written off; split within the venue's maximum per
        order: ``DirectOrders``); what is below the step or the minimum is reported (recorded as a
        skip), never sent unrounded."""
        rules = await venue.market(position.symbol)
        held = abs(position.quantity)
        quantity = round_down(held, rules.quantity_step)
        side = Side.SELL if position.quantity > 0 else Side.BUY
        results = []
        if quantity >= max(rules.min_quantity, rules.quantity_step):
            order = DirectOrder(
                position.symbol,
                side,
                quantity,
                origin,
                cid,
                price,
                reduce_only=reduce_only,
                position_side=position.position_side,
                closes=position.quantity if reduce_only else None,  # bounded by the venue, the rest written off
            )
            results += await self.path.direct.place(follow, order)
        else:
            quantity = ZERO
        remainder = held - quantity
        if remainder > 0:
            leftover = DirectOrder(
                position.symbol,
                side,
                remainder,
                origin,
                direct_order_id(cid, "remainder"),
                price,
                reduce_only=reduce_only,
                position_side=position.position_side,
            )
            minimum = max(rules.min_quantity, rules.quantity_step)
            skip = Skip(
                SkipReason.BELOW_MIN_QUANTITY,
                f"{remainder} {rules.base} is below the step or minimum {minimum}; close it on your exchange",
            )
            results.append(await self.path.direct.record_skip(follow, leftover, skip))
        return results

    # -- reconciliation -------------------------------------------------------------------------

    async def reconcile(self, follow: FollowSettings) -> dict[str, tuple[Decimal, Decimal]]:
        """Compare the venue's positions with the copy history; record and report the drift
        (missed copy, manual trade, TP/SL hit elsewhere, liquidation). Auto-sync fixes it.

        A hedge-mode account is compared per position side (its long and its short, as the venue
        keeps them), a one-way account by its net. Drifts are keyed by ``drift_label``."""
        venue = await self._venue(follow)
        drifts = {
            drift_label(symbol, side): sizes for (symbol, side), sizes in (await self._drifts(follow, venue)).items()
        }
        previous = await self.journal.replace_drifts(follow.follow_id, drifts)
        if drifts and drifts != previous:
            synced = follow.auto_sync
            if synced:
                await self.sync(follow)
            self.notify(
                DriftFound(follow.follow_id, follow.user_id, tuple((s, w, h) for s, (w, h) in drifts.items()), synced)
            )
        return drifts

    async def _drifts(
        self, follow: FollowSettings, venue: Venue
    ) -> dict[tuple[str, PositionSide], tuple[Decimal, Decimal]]:
        """(symbol, position side) -> (what the copies hold, what the venue holds), where they
        differ by a step or more. The side is the venue's: LONG / SHORT on a hedge-mode account
        (a copy kept as BOTH counts on the side its sign names), BOTH (the net) on a one-way one.
        Where the venue's position is a coin balance (spot) it holds what the copies bought up to
        that balance, never more."""
        hedged = await venue.hedge_mode()
        expected: dict[tuple[str, PositionSide], Decimal] = {}
        for copied in await self.journal.real_positions(follow.follow_id):
            key = (copied.symbol, venue_side(copied.position_side, copied.quantity, hedged))
            expected[key] = expected.get(key, ZERO) + copied.quantity
        watched = {symbol for symbol, _ in expected} | await self.journal.master_symbols(follow.master_id)
        actual: dict[tuple[str, PositionSide], Decimal] = {}
        balances: set[tuple[str, PositionSide]] = set()
        for held in await venue.positions():
            if held.symbol in watched:
                key = (held.symbol, venue_side(held.position_side, held.quantity, hedged))
                actual[key] = actual.get(key, ZERO) + held.quantity
                if held.balance:
                    balances.add(key)
        drifts: dict[tuple[str, PositionSide], tuple[Decimal, Decimal]] = {}
        for key in sorted(set(expected) | set(actual)):
            want, have = expected.get(key, ZERO), actual.get(key, ZERO)
            if key in balances:
                # a spot balance is the user's own coins too: the copies' share of it is at most
                # what they bought, so only a shortfall is a drift and nothing of the rest is sold
                have = max(ZERO, min(have, want))
            if abs(want - have) >= (await venue.market(key[0])).quantity_step:
                drifts[key] = (want, have)
        return drifts

    async def reconcile_all(self) -> int:
        count = 0
        for follow in await self.journal.all_active_follows():
            if follow.dry_run:
                continue
            try:
                count += bool(await self.reconcile(follow))
            except (VenueError, VaultError) as exc:
                log.warning("reconciling follow %s: %s", follow.follow_id, exc)
        return count

    async def sync(self, follow: FollowSettings) -> list[CopyResult]:
        """Bring the venue in line with the copy history with market orders (``/sync``): for
        each drift the last check found, the difference as the venue shows it now, on the
        position side it concerns (a hedge-mode account's ``positionSide``). Sync orders move
        no copied position: the copy history is the target."""
        venue = await self._venue(follow)
        found = {drift.symbol for drift in await self.journal.drifts(follow.follow_id)}
        results = []
        for (symbol, position_side), (want, have) in (await self._drifts(follow, venue)).items():
            if drift_label(symbol, position_side) not in found:
                continue  # appeared since the check: the next one reports it first
            delta = want - have
            rules = await venue.market(symbol)
            quantity = round_down(abs(delta), rules.quantity_step)
            if quantity <= 0:
                continue
            side = Side.BUY if delta > 0 else Side.SELL
            reduces = have != 0 and (have > 0) != (delta > 0) and quantity <= abs(have)
            leg = () if position_side is PositionSide.BOTH else (position_side,)
            cid = direct_order_id(OrderOrigin.SYNC, follow.follow_id, symbol, want, have, *leg)
            price = await venue.price(symbol)
            order = DirectOrder(
                symbol, side, quantity, OrderOrigin.SYNC, cid, price, reduce_only=reduces, position_side=position_side
            )
            results += await self.path.direct.place(follow, order)
        await self.journal.replace_drifts(follow.follow_id, {})
        return results

    # -- a new follow takes over the master's open positions ---------------------------------------

    async def open_master_positions(self, follow: FollowSettings) -> list[CopyResult | Skip]:
        """Open the master's current positions at the follow's proportion (an entry each). A
        hedge-mode master's long and short are two entries: a hedge-mode follower opens each on
        its side; a one-way follower sends both (its copied ledger keeps the legs apart, as live
        copies do) and holds their net, with the reason recorded on the copy."""
        outcomes: list[CopyResult | Skip] = []
        async for order in self._opening_orders(follow):
            # an order above the venue's maximum is sent in parts, a result each
            outcomes += [order] if isinstance(order, Skip) else await self.path.direct.place(follow, order)
        return outcomes

    async def plan_open_positions(self, follow: FollowSettings) -> list[DirectOrder | Skip]:
        """The orders ``open_master_positions`` would send now, each with its size, or why not;
        nothing is sent (the follow's offer shows them)."""
        return [order async for order in self._opening_orders(follow)]

    async def _opening_orders(self, follow: FollowSettings) -> AsyncIterator[DirectOrder | Skip]:
        """One order (or skip) per master leg, each made once the previous one was placed (a
        one-way follower's note reads the copied position the previous leg moved)."""
        venue = await self._venue(follow)
        master_equity = None
        if follow.sizing_mode is SizingMode.EQUITY_RATIO and self.master_equity is not None:
            master_equity = await self.master_equity(follow.master_id)
        legs = await self.journal.master_legs(follow.master_id)
        hedged = any(side is not PositionSide.BOTH for _, side in legs) and await venue.hedge_mode()
        for (symbol, master_side), master_quantity in sorted(legs.items()):
            try:
                rules = await venue.market(symbol)
                price = await venue.price(symbol)
                follower_equity = await venue.equity() if follow.sizing_mode is SizingMode.EQUITY_RATIO else None
            except VenueError as exc:
                reason = SkipReason.UNKNOWN_SYMBOL if isinstance(exc, UnknownSymbol) else SkipReason.NO_EQUITY
                yield Skip(reason, f"{symbol}: {exc}")
                continue
            raw = raw_entry_quantity(
                follow.sizing_mode,
                follow.sizing_value,
                abs(master_quantity),
                price,
                follower_equity=follower_equity,
                master_equity=master_equity,
            )
            quantity = raw if isinstance(raw, Skip) else fit_to_market(raw, rules, price)
            if isinstance(quantity, Skip):
                yield quantity
                continue
            side = Side.BUY if master_quantity > 0 else Side.SELL
            position_side = master_side
            if follow.reverse:
                side, position_side = side.opposite, master_side.reversed
            note = None
            if position_side is not PositionSide.BOTH and not hedged:
                copied = await self.journal.real_positions(follow.follow_id)
                net = sum((p.quantity for p in copied if p.symbol == symbol), ZERO)
                note = one_way_note(Leg.ENTRY, position_side, net, quantity * side.sign)
            leg = () if master_side is PositionSide.BOTH else (master_side,)
            cid = direct_order_id(OrderOrigin.OPEN, follow.follow_id, symbol, master_quantity, *leg)
            yield DirectOrder(
                symbol, side, quantity, OrderOrigin.OPEN, cid, price, position_side=position_side, note=note
            )


def register_risk_jobs(
    scheduler: AsyncIOScheduler, risk: RiskService, *, watch_seconds: float, reconcile_seconds: float
) -> None:
    """The risk watch (TP/SL triggers and price levels, loss limits) and reconciliation, on the
    service's ``AsyncIOScheduler``."""
    scheduler.add_job(
        risk.watch,
        "interval",
        seconds=watch_seconds,
        id="risk-watch",
        replace_existing=True,
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        risk.reconcile_all,
        "interval",
        seconds=reconcile_seconds,
        id="reconcile",
        replace_existing=True,
        max_instances=1,
        coalesce=True,
    )
