"""Master statistics: hand-computed fixtures, incremental updates equal to a full recompute
(property tests, in memory and through the database), percentages from equity snapshots and the
ranking behind /masters."""

from __future__ import annotations

import asyncio
import copy
import itertools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlmodel import col

from core.errors import UserError
from core.model import Fill, Side
from core.reports import Reports, build_reports
from core.stats import (
    DayStats,
    Period,
    RoundTrip,
    StatFill,
    StatsState,
    apply_fills,
    max_drawdown,
    max_drawdown_pct,
    parse_period,
    percentile,
    profit_factor,
    sharpe_ratio,
    win_rate,
)
from storage.accounts import AccountStore
from storage.db import Database
from storage.journal import JournalStore
from storage.models import Credential, Follow, Master, MasterDailyPnl, MasterStats, MasterStatsLot
from storage.stats import StatsStore

UTC = UTC
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
_ids = itertools.count(1)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 1, day, hour, minute, tzinfo=UTC)


#: a sequence with known results (see test_hand_computed_statistics)
FIXTURE = [
    # symbol, side, quantity, price, executed_at, position before
    (BTC, Side.BUY, "1", "100", at(1, 10), "0"),  # BTC long 1 @ 100
    (BTC, Side.SELL, "1", "110", at(1, 12), "1"),  # closed: +10, held 2 h
    (ETH, Side.SELL, "2", "50", at(2, 9), "0"),  # ETH short 2 @ 50
    (ETH, Side.BUY, "1", "60", at(2, 15), "-2"),  # partial close: -10
    (ETH, Side.BUY, "3", "45", at(3, 9), "-1"),  # closes the short (+5, round trip -5, held 24 h), long 2 @ 45
    (ETH, Side.SELL, "2", "50", at(4, 21), "2"),  # closed: +10, held 36 h
]


def stat_fills(rows=FIXTURE) -> list[StatFill]:
    return [
        StatFill(i, s, side, D(qty), D(price), when, D(before))
        for i, (s, side, qty, price, when, before) in enumerate(rows, 1)
    ]


# -- pure computations ---------------------------------------------------------------------------


def test_hand_computed_statistics():
    trips: list[RoundTrip] = []
    state = apply_fills(StatsState(), stat_fills(), trips)
    assert [(t.symbol, t.pnl) for t in trips] == [(BTC, D(10)), (ETH, D(-5)), (ETH, D(10))]
    assert (state.round_trips, state.wins, state.losses, state.fills) == (3, 2, 1, 6)
    assert state.realized_pnl == D(15)
    assert (state.gross_profit, state.gross_loss) == (D(20), D(5))
    assert win_rate(state.wins, state.round_trips) == D(2) / D(3)
    assert profit_factor(state.gross_profit, state.gross_loss) == D(4)
    assert state.max_drawdown == D(10)  # realized curve 10, 0, 5, 15: from the peak of 10 down to 0
    assert state.holding_seconds / state.round_trips == D((2 + 24 + 36) * 3600) / 3  # 20 h 40 min
    assert {d: (s.realized_pnl, s.fills, s.round_trips) for d, s in state.days.items()} == {
        date(2025, 1, 1): (D(10), 2, 1),
        date(2025, 1, 2): (D(-10), 2, 0),
        date(2025, 1, 3): (D(5), 1, 1),
        date(2025, 1, 4): (D(10), 1, 1),
    }
    assert state.lots == {}
    assert state.untracked_closes == 0
    # Sharpe of the daily realized PnL [10, -10, 5, 10]: mean 3.75, sample sd 9.4648 → × √365
    assert sharpe_ratio([10.0, -10.0, 5.0, 10.0]) == pytest.approx(7.569446, rel=1e-6)


def test_a_position_the_journal_did_not_see_open_realizes_nothing():
    fills = [
        StatFill(1, BTC, Side.SELL, D(1), D(100), at(1, 10), D(3)),  # the master held 3 before the journal started
        StatFill(2, BTC, Side.SELL, D(2), D(90), at(1, 11), D(2)),  # flat: closes a position of unknown cost
        StatFill(3, BTC, Side.BUY, D(1), D(80), at(1, 12), D(0)),
        StatFill(4, BTC, Side.SELL, D(1), D(85), at(1, 13), D(1)),
    ]
    state = apply_fills(StatsState(), fills)
    assert state.untracked_closes == 1
    assert (state.round_trips, state.wins, state.realized_pnl) == (1, 1, D(5))


def test_a_reversal_closes_one_round_trip_and_opens_the_next_at_the_fill_price():
    fills = [
        StatFill(1, BTC, Side.BUY, D(2), D(100), at(1, 10), D(0)),
        StatFill(2, BTC, Side.SELL, D(3), D(120), at(1, 11), D(2)),  # +40, short 1 @ 120
        StatFill(3, BTC, Side.BUY, D(1), D(125), at(1, 12), D(-1)),  # -5
    ]
    trips: list[RoundTrip] = []
    state = apply_fills(StatsState(), fills, trips)
    assert [t.pnl for t in trips] == [D(40), D(-5)]
    assert trips[1].opened_at == at(1, 11)
    assert state.max_drawdown == D(5)


def test_average_cost_when_adding_to_a_position():
    fills = [
        StatFill(1, BTC, Side.BUY, D(1), D(100), at(1, 10), D(0)),
        StatFill(2, BTC, Side.BUY, D(2), D(130), at(1, 11), D(1)),  # average 120
        StatFill(3, BTC, Side.SELL, D(3), D(110), at(1, 12), D(3)),
    ]
    state = apply_fills(StatsState(), fills)
    assert state.realized_pnl == D(-30)
    assert profit_factor(state.gross_profit, state.gross_loss) == D(0)


def test_metric_helpers():
    assert win_rate(0, 0) is None
    assert profit_factor(D(5), D(0)) is None
    assert max_drawdown([D(5), D(2), D(8), D(1), D(4)]) == D(7)
    assert max_drawdown_pct([D(1000), D(1100), D(990), D(1089)]) == D("0.1")
    assert sharpe_ratio([1.0]) is None and sharpe_ratio([2.0, 2.0]) is None
    assert percentile([], 50) is None
    assert percentile([float(v) for v in range(1, 101)], 50) == 50.0
    assert percentile([float(v) for v in range(1, 101)], 99) == 99.0
    assert percentile([5.0], 99) == 5.0


def test_periods_are_whole_utc_days():
    now = datetime(2025, 3, 10, 15, 30, tzinfo=UTC)
    assert parse_period("7d", now).start == datetime(2025, 3, 4, tzinfo=UTC)
    assert parse_period(None, now).start == datetime(2025, 2, 9, tzinfo=UTC)  # 30 days
    assert parse_period("today", now).start == datetime(2025, 3, 10, tzinfo=UTC)
    assert parse_period("all", now) == Period("all", None, now)
    assert parse_period("2w", now).first_day == date(2025, 2, 25)
    for bad in ("x", "0d", "-3d", "d", "99999d"):
        with pytest.raises(UserError):
            parse_period(bad, now)


# -- incremental == full recompute (in memory, with the database's partial loading) -------------------

fill_rows = st.lists(
    st.tuples(
        st.sampled_from([BTC, ETH]),
        st.sampled_from([Side.BUY, Side.SELL]),
        st.decimals(min_value=D("0.001"), max_value=D(5), places=3),
        st.decimals(min_value=D(1), max_value=D(1000), places=2),
        st.integers(min_value=0, max_value=30 * 60),  # minutes after the previous fill
        st.booleans(),  # True: the journaled position disagrees (exposure from outside the journal)
    ),
    min_size=1,
    max_size=40,
)


def build_fills(rows) -> list[StatFill]:
    positions: dict[str, D] = {}
    moment = at(1, 0)
    out = []
    for index, (symbol, side, quantity, price, minutes, outside) in enumerate(rows, 1):
        moment += timedelta(minutes=minutes)
        before = positions.get(symbol, D(0)) + (D("0.5") if outside else D(0))
        out.append(StatFill(index, symbol, side, quantity, price, moment, before))
        positions[symbol] = before + quantity * side.sign
    return out


def chunked(items: list, cuts: list[int]) -> list[list]:
    bounds = sorted({min(c, len(items)) for c in cuts} | {0, len(items)})
    return [items[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@given(rows=fill_rows, cuts=st.lists(st.integers(min_value=0, max_value=40), max_size=8))
@settings(max_examples=300, deadline=None)
def test_any_chunking_gives_the_full_recompute(rows, cuts):
    fills = build_fills(rows)
    full = apply_fills(StatsState(), fills)

    saved_days: dict[date, DayStats] = {}
    saved = StatsState()
    for chunk in chunked(fills, cuts):
        # as storage does: the saved totals and lots, and only the days this chunk touches
        state = copy.deepcopy(saved)
        touched = {f.executed_at.date() for f in chunk}
        state.days = {d: copy.deepcopy(s) for d, s in saved_days.items() if d in touched}
        apply_fills(state, chunk)
        saved_days.update(copy.deepcopy(state.days))
        state.days = {}
        saved = state
    saved.days = saved_days
    assert saved == full


# -- through the database --------------------------------------------------------------------------


async def make_master(db: Database, name: str | None = None, *, followers: int = 0) -> int:
    accounts = AccountStore(db)
    master = await accounts.add_master(Master(name=name or f"master {next(_ids)}", venue="paper"))
    for _ in range(followers):
        user = await accounts.ensure_user(None, "f")
        assert user.id is not None
        async with db.session() as session:
            credential = Credential(
                id=f"c{next(_ids):031d}",
                user_id=user.id,
                venue="paper",
                label="k",
                ciphertext=b"x",
                key_fingerprint="f",
            )
            session.add(credential)
            await session.flush()
            session.add(Follow(user_id=user.id, master_id=master.id, credential_id=credential.id))
    return master.id


async def journal_rows(journal: JournalStore, master_id: int, rows=FIXTURE) -> None:
    for symbol, side, qty, price, when, _before in rows:
        n = next(_ids)
        fill = Fill(master_id, "paper:m", f"t{n}", f"o{n}", symbol, side, D(qty), D(price), executed_at=when)
        assert await journal.journal_fill(fill) is not None


async def stored_state(db: Database, master_id: int):
    async with db.session() as session:
        stats = await session.get(MasterStats, master_id)
        lots = (
            await session.execute(
                select(MasterStatsLot)
                .where(col(MasterStatsLot.master_id) == master_id)
                .order_by(col(MasterStatsLot.symbol))
            )
        ).scalars()
        days = (
            await session.execute(
                select(MasterDailyPnl)
                .where(col(MasterDailyPnl.master_id) == master_id)
                .order_by(col(MasterDailyPnl.day))
            )
        ).scalars()
        head = stats.model_dump(exclude={"updated_at"}) if stats else None
        return head, [lot.model_dump() for lot in lots], [day.model_dump() for day in days]


def service(db: Database, **options) -> Reports:
    return build_reports(StatsStore(db), AccountStore(db), None, settle_seconds=0, **options)


async def test_statistics_from_the_journal_match_the_hand_computed_fixture(db, journal):
    master_id = await make_master(db, followers=2)
    await journal_rows(journal, master_id)
    stats = service(db, clock=lambda: at(20, 12))
    assert await stats.refresher.update_master_stats(master_id) == 6
    assert await stats.refresher.update_master_stats(master_id) == 0  # nothing new: nothing counted twice
    detail = await stats.masters.master_detail(master_id)
    assert (detail.round_trips, detail.wins, detail.losses, detail.fills, detail.followers) == (3, 2, 1, 6, 2)
    assert detail.realized_pnl == D(15) and detail.pnl_30d == D(15)
    assert detail.win_rate == D(2) / D(3) and detail.profit_factor == D(4)
    assert detail.max_drawdown == D(10)
    assert detail.avg_holding == timedelta(hours=20, minutes=40)
    assert detail.trading_days == 4
    assert detail.sharpe == pytest.approx(7.569446, rel=1e-6) and detail.sharpe_source == "daily_realized_pnl"
    assert detail.realized_pnl_pct is None and detail.max_drawdown_pct is None  # no equity snapshot yet
    assert detail.open_positions == ()
    assert detail.fees_included is False


@pytest.mark.parametrize("batch_sizes", [[1], [2, 1, 3], [5, 5], [4]])
async def test_incremental_updates_in_any_batches_equal_a_full_recompute(db, journal, batch_sizes):
    master_id = await make_master(db)
    stats = service(db)
    rows = FIXTURE + [(BTC, Side.BUY, "0.5", "200", at(5, 1), "0"), (BTC, Side.BUY, "0.25", "203", at(5, 2), "0.5")]
    await journal_rows(journal, master_id, rows[:3])
    sizes = itertools.cycle(batch_sizes)
    await stats.refresher.update_master_stats(master_id, batch_size=next(sizes), max_batches=1)
    await journal_rows(journal, master_id, rows[3:])  # more fills arrive between updates
    while await stats.refresher.update_master_stats(master_id, batch_size=next(sizes), max_batches=1):
        pass
    incremental = await stored_state(db, master_id)
    assert await stats.refresher.recompute_master_stats(master_id) == len(rows)
    assert await stored_state(db, master_id) == incremental
    assert incremental[0]["fills"] == len(rows)
    assert [lot["symbol"] for lot in incremental[1]] == [BTC]
    assert incremental[1][0]["entry_price"] == D("201")  # (0.5 × 200 + 0.25 × 203) / 0.75


@pytest.mark.slow
@given(rows=fill_rows, sizes=st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=6))
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
def test_property_database_chunking_equals_recompute(tmp_path_factory, migrated_sqlite, rows, sizes):
    url = migrated_sqlite(tmp_path_factory.mktemp("stats") / "p.db")

    async def scenario() -> None:
        db = Database(url)
        try:
            journal = JournalStore(db)
            master_id = await make_master(db)
            for fill in build_fills(rows):
                n = next(_ids)
                await journal.journal_fill(
                    Fill(
                        master_id,
                        "paper:m",
                        f"t{n}",
                        f"o{n}",
                        fill.symbol,
                        fill.side,
                        fill.quantity,
                        fill.price,
                        executed_at=fill.executed_at,
                    )
                )
            stats = service(db)
            for size in itertools.cycle(sizes):
                if not await stats.refresher.update_master_stats(master_id, batch_size=size, max_batches=1):
                    break
            incremental = await stored_state(db, master_id)
            await stats.refresher.recompute_master_stats(master_id)
            assert await stored_state(db, master_id) == incremental
            # the journal knows the true positions: the same as the pure fold without outside exposure
            expected = apply_fills(StatsState(), build_fills([(*row[:5], False) for row in rows]))
            assert (incremental[0]["realized_pnl"], incremental[0]["round_trips"]) == (
                expected.realized_pnl,
                expected.round_trips,
            )
        finally:
            await db.dispose()

    asyncio.run(scenario())


async def test_concurrent_updaters_never_count_a_fill_twice(db, journal):
    master_id = await make_master(db)
    await journal_rows(journal, master_id)
    first, second = service(db), service(db)  # two processes: separate locks
    counted = await asyncio.gather(
        *(s.refresher.update_master_stats(master_id, batch_size=2) for s in (first, second, first, second))
    )
    assert sum(counted) == 6
    head, _lots, _days = await stored_state(db, master_id)
    assert head["fills"] == 6 and head["realized_pnl"] == D(15)


async def test_fills_younger_than_the_settle_time_wait_for_the_next_pass(db, journal):
    master_id = await make_master(db)
    await journal_rows(journal, master_id)
    stats = build_reports(StatsStore(db), AccountStore(db), None, settle_seconds=60).refresher
    assert await stats.update_master_stats(master_id) == 0
    stats.settle_seconds = 0
    assert await stats.update_master_stats(master_id) == 6


async def test_percentages_and_sharpe_come_from_equity_snapshots(db, journal):
    master_id = await make_master(db)
    await journal_rows(journal, master_id)
    store = StatsStore(db)
    for day, equity in ((1, "1000"), (2, "1100"), (3, "990"), (4, "1089")):
        await store.save_snapshot("master", master_id, date(2025, 1, day), D(equity), at(day, 23))
    await store.save_snapshot(
        "master", master_id, date(2025, 1, 4), D(1089), at(4, 23, 55)
    )  # same day: replaced, not added
    stats = service(db, clock=lambda: at(5, 12))
    detail = await stats.masters.master_detail(master_id)
    assert detail.sharpe_source == "equity_snapshots"
    assert detail.sharpe == pytest.approx(5.515131, rel=1e-6)  # returns +10 %, -10 %, +10 %
    assert detail.max_drawdown_pct == D("0.1")
    assert detail.realized_pnl_pct == D(15) / D(1000)
    assert detail.pnl_30d_pct == D(15) / D(1000)
    assert (detail.equity, detail.equity_day) == (D(1089), date(2025, 1, 4))


async def test_masters_rank_by_any_statistic_with_unknown_values_last(db, journal):
    good = await make_master(db, "Good", followers=1)
    bad = await make_master(db, "Bad", followers=3)
    idle = await make_master(db, "Idle")
    await journal_rows(journal, good)
    await journal_rows(
        journal, bad, [(BTC, Side.BUY, "1", "100", at(1, 10), "0"), (BTC, Side.SELL, "1", "70", at(1, 11), "1")]
    )
    stats = service(db, clock=lambda: at(10, 0))
    names = lambda items: [s.name for s in items if s.master_id in (good, bad, idle)]  # noqa: E731
    assert names(await stats.masters.ranked_masters("followers")) == ["Bad", "Good", "Idle"]
    assert names(await stats.masters.ranked_masters("pnl")) == ["Good", "Idle", "Bad"]  # idle: 0 realized
    assert names(await stats.masters.ranked_masters("win_rate")) == ["Good", "Bad", "Idle"]  # idle has no round trip
    assert names(await stats.masters.ranked_masters("drawdown")) == ["Idle", "Good", "Bad"]  # smallest first
    assert names(await stats.masters.ranked_masters("profit_factor")) == ["Good", "Bad", "Idle"]
    assert names(await stats.masters.ranked_masters("pnl", descending=False)) == ["Bad", "Idle", "Good"]
    with pytest.raises(UserError):
        await stats.masters.ranked_masters("luck")


async def test_open_positions_are_the_journals(db, journal):
    master_id = await make_master(db)
    await journal_rows(journal, master_id, FIXTURE[:3])
    detail = await service(db).masters.master_detail(master_id)
    assert detail.open_positions == ((ETH, D(-2)),)
    assert detail.round_trips == 1


async def test_update_all_masters(db, journal):
    a, b = await make_master(db), await make_master(db)
    await journal_rows(journal, a)
    await journal_rows(journal, b, FIXTURE[:2])
    assert await service(db).refresher.update_all_master_stats() == 8


async def test_a_follows_pnl_replays_its_executions_in_the_order_they_moved_its_ledger(h):
    """A limit copy rests while a later market copy fills and is partly exited; the limit fills
    last. The replay behind /pnl follows the executions as the venue reported them (not the
    order the copies were created in), so its realized PnL is the ledger's."""
    from core.model import OrderType
    from core.stats import parse_period, replay
    from storage.models import CopyExecution as ExecutionRow
    from storage.models import FollowPosition

    follow_id, _ = await h.add_follower()
    h.exchange.set_price(BTC, D(60000))
    await h.engine.on_fill(h.fill(Side.BUY, "0.1", price="59000", order_type=OrderType.LIMIT, limit_price=D(59000)))
    await h.engine.on_fill(h.fill(Side.BUY, "0.1"))  # fills at 60,000; the limit still rests
    h.exchange.set_price(BTC, D(61000))
    await h.engine.on_fill(h.fill(Side.SELL, "0.1"))  # the master closes half: the follower sells 0.05 of 0.1
    h.exchange.set_price(BTC, D(59000))
    await h.engine.track()  # the resting limit filled at 59,000
    ledger = replay(await StatsStore(h.db).follow_executions(follow_id, simulated=False))
    async with h.db.session() as session:
        recorded = (
            await session.execute(select(ExecutionRow).where(col(ExecutionRow.follow_id) == follow_id))
        ).scalars()
        realized = sum((row.realized_pnl for row in recorded), D(0))
        [position] = (
            await session.execute(select(FollowPosition).where(col(FollowPosition.follow_id) == follow_id))
        ).scalars()
    assert realized == D(50)  # (61,000 - 60,000) x 0.05: the limit's 59,000 was not held yet
    assert ledger.realized(parse_period("all", datetime.now(UTC))) == realized
    holding = ledger.positions[(BTC, position.position_side)]
    assert holding.quantity == position.quantity == D("0.15")
    assert abs(holding.entry_price - position.entry_price) < D("1e-15")  # the column keeps 18 places
