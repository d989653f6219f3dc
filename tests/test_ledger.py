"""core.ledger: the one average-cost function, and the compare-and-set rule of an order's life."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.ledger import Holding, OrderProgress, advance, apply_execution, fee_in_quote, ledger_quantity, write_off
from core.model import OrderReport, OrderState, PositionSide, Side
from core.stats import CopyExecution, replay

quantities = st.integers(1, 10_000).map(lambda n: D(n) / 1000)
prices = st.integers(1, 1_000_000).map(lambda n: D(n) / 100)
fees = st.integers(0, 1000).map(lambda n: D(n) / 100)
signed = st.tuples(quantities, st.sampled_from([1, -1])).map(lambda t: t[0] * t[1])
executions = st.lists(st.tuples(signed, prices, fees), max_size=30)


def run(steps) -> tuple[Holding, D]:
    holding, realized = Holding(), D(0)
    for quantity, price, fee in steps:
        holding, gained = apply_execution(holding, quantity, price, fee)
        realized += gained
    return holding, realized


@given(executions)
def test_the_quantity_is_the_sum_of_the_signed_executions_and_fees_add_up(steps):
    holding, realized = run(steps)
    assert holding.quantity == sum((q for q, _, _ in steps), D(0))
    assert holding.fees == sum((f for _, _, f in steps), D(0))
    assert holding.realized_pnl == realized
    assert (holding.entry_price is None) == (holding.quantity == 0)


@given(quantities, prices, prices, fees, fees, st.sampled_from([1, -1]))
def test_a_round_trip_realizes_the_price_difference_times_the_quantity_less_fees(qty, entry, exit_, fee_in, fee_out, d):
    holding, realized = run([(qty * d, entry, fee_in), (-qty * d, exit_, fee_out)])
    assert holding == Holding(D(0), None, (exit_ - entry) * qty * d, fee_in + fee_out)
    assert realized - holding.fees == (exit_ - entry) * qty * d - fee_in - fee_out


@given(executions, signed, prices, st.integers(1, 999))
def test_splitting_an_execution_in_two_gives_the_same_holding(before, quantity, price, per_mille):
    first = quantity * per_mille / 1000
    whole, whole_realized = run([*before, (quantity, price, D(0))])
    split, split_realized = run([*before, (first, price, D(0)), (quantity - first, price, D(0))])
    assert split.quantity == whole.quantity and split.fees == whole.fees
    assert abs(split.realized_pnl - whole.realized_pnl) < D("1e-20")
    assert abs(split_realized - whole_realized) < D("1e-20")
    if whole.entry_price is None:
        assert split.entry_price is None
    else:
        assert split.entry_price is not None and abs(split.entry_price - whole.entry_price) < D("1e-20")


#: an execution, or a write-off (closed outside the copier) of this quantity, at most what is held
with_write_offs = st.lists(
    st.one_of(st.tuples(signed, prices, fees), quantities.map(lambda q: ("write_off", q))), max_size=30
)


def written_off(holding: Holding, asked: D) -> D:
    """The write-off of ``asked`` (at most what is held), signed against the holding."""
    return -min(asked, abs(holding.quantity)) * (1 if holding.quantity > 0 else -1)


def run_with_write_offs(steps) -> tuple[Holding, D, D]:
    """The holding, the PnL the executions realized, and the signed total written off."""
    holding, realized, written = Holding(), D(0), D(0)
    for step in steps:
        if step[0] == "write_off":
            if holding.quantity == 0:
                continue
            quantity = written_off(holding, step[1])
            after = write_off(holding, quantity)
            assert after.entry_price == (holding.entry_price if after.quantity != 0 else None)
            assert (after.realized_pnl, after.fees) == (holding.realized_pnl, holding.fees)
            assert abs(after.quantity) < abs(holding.quantity) and after.quantity * holding.quantity >= 0
            holding, written = after, written + quantity
            continue
        quantity, price, fee = step
        holding, gained = apply_execution(holding, quantity, price, fee)
        realized += gained
    return holding, realized, written


@given(with_write_offs)
def test_write_offs_keep_the_ledger_invariants_and_realize_nothing(steps):
    holding, realized, written = run_with_write_offs(steps)
    executed = [s for s in steps if s[0] != "write_off"]
    assert holding.quantity == sum((q for q, _, _ in executed), D(0)) + written
    assert holding.fees == sum((f for _, _, f in executed), D(0))  # a write-off pays no fee
    assert holding.realized_pnl == realized  # and realizes nothing: its price is not the copier's to know
    assert (holding.entry_price is None) == (holding.quantity == 0)


@given(with_write_offs)
def test_a_replay_of_executions_and_write_offs_gives_the_ledgers_holding(steps):
    holding, _, _ = run_with_write_offs(steps)
    rows, replayed = [], Holding()
    at = datetime(2026, 12, 8, tzinfo=UTC)
    for step in steps:  # as the journal stores them: each with the signed change it made
        if step[0] == "write_off":
            if replayed.quantity == 0:
                continue
            quantity, price, fee, off = written_off(replayed, step[1]), D(1), D(0), True
            replayed = write_off(replayed, quantity)
        else:
            (quantity, price, fee), off = step, False
            replayed, _ = apply_execution(replayed, quantity, price, fee)
        side = Side.BUY if quantity > 0 else Side.SELL
        rows.append(CopyExecution(at, "BTC", side, abs(quantity), price, fee, written_off=off))
    ledger = replay(rows)
    assert ledger.positions.get(("BTC", PositionSide.BOTH), Holding()) == holding
    assert sum(ledger.realized_by_day.values(), D(0)) == holding.realized_pnl


def test_a_write_off_never_opens_reverses_or_grows_a_holding():
    long = Holding(D("0.1"), D(60000))
    assert write_off(long, D("-0.04")) == Holding(D("0.06"), D(60000))
    assert write_off(long, D("-0.1")) == Holding()
    for wrong in (D("0.01"), D("-0.11"), D(0)):
        with pytest.raises(ValueError):
            write_off(long, wrong)
    with pytest.raises(ValueError):
        write_off(Holding(), D("-0.01"))


def test_a_reversal_opens_the_remainder_at_the_execution_price():
    holding, realized = run([(D("0.2"), D(100), D(0)), (D("-0.5"), D(110), D(0))])
    assert (holding.quantity, holding.entry_price, realized) == (D("-0.3"), D(110), D(2))


def test_a_spot_buy_holds_the_net_quantity_and_pays_the_base_fee_in_the_quote():
    assert ledger_quantity(Side.BUY, D("0.01"), D("0.00001")) == D("0.00999")
    assert ledger_quantity(Side.SELL, D("0.01")) == D("-0.01")
    assert fee_in_quote(D("0.00001"), "BTC", base="BTC", quote="USDT", price=D(60000)) == D("0.6")
    assert fee_in_quote(D("0.24"), "USDT", base="BTC", quote="USDT", price=D(60000)) == D("0.24")
    assert fee_in_quote(D("0.001"), "BNB", base="BTC", quote="USDT", price=D(60000)) is None


def test_a_fee_in_a_third_coin_counts_at_that_coins_price_and_nets_the_realized_pnl():
    fee = fee_in_quote(D("0.0004"), "BNB", base="BTC", quote="USDT", price=D(60000), coin_price=D(600))
    assert fee == D("0.24")
    holding, _ = apply_execution(Holding(), D("0.01"), D(60000), fee)
    holding, realized = apply_execution(holding, D("-0.01"), D(61000), fee)
    assert holding.realized_pnl - holding.fees == D(10) - D("0.48")


# -- an order's life -----------------------------------------------------------------------------


def report(state: OrderState, filled: str, average: str | None = None, fee: str = "0") -> OrderReport:
    return OrderReport("v1", "c1", state, D(filled), D(average) if average else None, D(fee))


def test_a_fill_after_the_acknowledgement_adds_its_increment_at_its_own_price():
    acknowledged = advance(OrderProgress(OrderState.PENDING), report(OrderState.ACKNOWLEDGED, "0"))
    assert acknowledged is not None and acknowledged.increment is None
    partial = advance(acknowledged.progress, report(OrderState.PARTIALLY_FILLED, "0.4", "100", "0.04"))
    assert partial is not None and partial.increment is not None
    assert (partial.increment.quantity, partial.increment.price, partial.increment.fee) == (D("0.4"), D(100), D("0.04"))
    filled = advance(partial.progress, report(OrderState.FILLED, "1", "106", "0.1"))
    assert filled is not None and filled.increment is not None
    assert (filled.increment.quantity, filled.increment.price, filled.increment.fee) == (D("0.6"), D(110), D("0.06"))
    assert filled.progress.state is OrderState.FILLED


def test_terminal_orders_never_change_and_older_reports_are_no_ops():
    done = OrderProgress(OrderState.CANCELED, D("0.4"), D(100))
    assert advance(done, report(OrderState.FILLED, "1", "100")) is None
    partial = OrderProgress(OrderState.PARTIALLY_FILLED, D("0.4"), D(100))
    assert advance(partial, report(OrderState.ACKNOWLEDGED, "0")) is None
    assert advance(partial, report(OrderState.PARTIALLY_FILLED, "0.4", "100")) is None
    assert advance(partial, report(OrderState.PARTIALLY_FILLED, "0.2", "100")) is None


def test_a_commission_that_comes_after_the_fill_is_added_once_and_moves_no_quantity():
    answered = replace(report(OrderState.FILLED, "1", "100"), fee_pending=True)  # a futures answer: no fee
    filled = advance(OrderProgress(OrderState.PENDING), answered)
    assert filled is not None and filled.progress.fee_pending and filled.progress.fee == 0
    pending_again = advance(filled.progress, answered)
    assert pending_again is None  # the same answer again brings nothing
    late = advance(filled.progress, report(OrderState.FILLED, "1", "100", "0.04"))
    assert late is not None and late.increment is not None
    assert (late.increment.quantity, late.increment.fee, late.progress.fee) == (0, D("0.04"), D("0.04"))
    assert (late.progress.state, late.progress.filled_quantity, late.progress.fee_pending) == (
        OrderState.FILLED,
        D(1),
        False,
    )
    assert advance(late.progress, report(OrderState.FILLED, "1", "100", "0.04")) is None  # counted once


cumulative = st.lists(st.integers(1, 100), min_size=1, max_size=8).map(
    lambda steps: [sum(steps[: i + 1]) for i in range(len(steps))]
)


@given(cumulative, st.data())
def test_any_order_of_repeated_reports_counts_each_unit_once(fills, data):
    total = fills[-1]
    reports = [report(OrderState.PARTIALLY_FILLED, str(f), "100") for f in fills[:-1]]
    reports.append(report(OrderState.FILLED, str(total), "100"))
    delivered = data.draw(st.lists(st.sampled_from(reports), min_size=1, max_size=20))
    progress, counted, seen = OrderProgress(OrderState.ACKNOWLEDGED), D(0), D(0)
    for item in delivered:
        step = advance(progress, item)
        if step is None:
            continue
        assert step.progress.filled_quantity >= progress.filled_quantity
        assert not progress.state.is_terminal
        counted += step.increment.quantity if step.increment else D(0)
        progress = step.progress
        seen = max(seen, item.filled_quantity)
    assert counted == progress.filled_quantity == seen
    assert progress.state.is_terminal == (progress.filled_quantity == total)
