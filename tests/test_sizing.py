from decimal import Decimal as D
from fractions import Fraction as F

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from core.model import Fill, MarketRules, OrderType, PositionSide, Side, SizingMode, Skip, SkipReason
from core.sizing import (
    Leg,
    LegPlan,
    Sized,
    cap_exit,
    fit_to_market,
    one_way_note,
    raw_entry_quantity,
    round_down,
    round_price,
    size_exit,
    split_legs,
    split_quantity,
)

BTC = MarketRules("BTC/USDT:USDT", "BTC", "USDT", D("0.001"), D("0.1"), D("0.001"), D("100"), derivative=True)
SPOT = MarketRules("ETH/USDT", "ETH", "USDT", D("0.0001"), D("0.01"), D("0.0001"), D("5"))


def fill(side=Side.BUY, qty="1", price="100", reduce_only=False) -> Fill:
    return Fill(1, "v", "t1", "o1", "BTC/USDT:USDT", side, D(qty), D(price), reduce_only=reduce_only)


# -- legs -------------------------------------------------------------------------------------


def test_fill_into_flat_position_is_an_entry():
    assert split_legs(fill(Side.SELL, "2"), D(0)) == [LegPlan(Leg.ENTRY, D(2))]


def test_fill_adding_to_position_is_an_entry():
    assert split_legs(fill(Side.BUY, "1"), D(3)) == [LegPlan(Leg.ENTRY, D(1))]


def test_partial_exit_carries_the_fraction_of_the_master_position():
    assert split_legs(fill(Side.SELL, "1"), D(4)) == [LegPlan(Leg.EXIT, D(1), F("0.25"))]


def test_full_exit_has_fraction_one():
    assert split_legs(fill(Side.BUY, "4"), D(-4)) == [LegPlan(Leg.EXIT, D(4), F(1))]


def test_reversal_splits_into_exit_then_entry():
    assert split_legs(fill(Side.SELL, "5"), D(2)) == [LegPlan(Leg.EXIT, D(2), F(1)), LegPlan(Leg.ENTRY, D(3))]


def test_reduce_only_never_opens_even_when_untracked():
    assert split_legs(fill(Side.SELL, "1", reduce_only=True), D(0)) == [LegPlan(Leg.EXIT, D(1), None)]
    assert split_legs(fill(Side.SELL, "5", reduce_only=True), D(2)) == [LegPlan(Leg.EXIT, D(2), F(1))]


# -- entry quantities --------------------------------------------------------------------------


def test_coefficient_multiplies_master_quantity():
    assert raw_entry_quantity(SizingMode.COEFFICIENT, D("0.5"), D("0.3"), D(100)) == D("0.15")


def test_equity_ratio_scales_by_follower_over_master_equity():
    # seed 002: master 10,000 places 500; a 1,000 follower gets 10 %
    assert raw_entry_quantity(
        SizingMode.EQUITY_RATIO, D(1), D(5), D(100), follower_equity=D(1000), master_equity=D(10000)
    ) == D("0.5")


def test_equity_ratio_without_equity_is_a_skip():
    result = raw_entry_quantity(SizingMode.EQUITY_RATIO, D(1), D(5), D(100), follower_equity=D(0), master_equity=D(10))
    assert isinstance(result, Skip) and result.reason is SkipReason.NO_EQUITY
    result = raw_entry_quantity(SizingMode.EQUITY_RATIO, D(1), D(5), D(100), follower_equity=D(10), master_equity=None)
    assert isinstance(result, Skip) and result.reason is SkipReason.NO_EQUITY


def test_fixed_notional_divides_by_price():
    assert raw_entry_quantity(SizingMode.FIXED_NOTIONAL, D(500), D(9), D(250)) == D(2)


def test_fixed_quantity_ignores_master_size():
    assert raw_entry_quantity(SizingMode.FIXED_QUANTITY, D(50), D(9), D(250)) == D(50)


# -- rounding and minimums ---------------------------------------------------------------------


def test_round_down_to_step():
    assert round_down(D("0.12345"), D("0.001")) == D("0.123")
    assert round_down(D("7"), D("5")) == D("5")


def test_limit_price_rounds_in_the_followers_favour():
    assert round_price(D("100.07"), D("0.1"), Side.BUY) == D("100.0")
    assert round_price(D("100.07"), D("0.1"), Side.SELL) == D("100.1")


def test_quantity_below_minimum_is_a_skip_with_numbers():
    result = fit_to_market(D("0.0004"), BTC, D(60000))
    assert isinstance(result, Skip) and result.reason is SkipReason.BELOW_MIN_QUANTITY
    assert "0.0004" in result.detail and "0.001" in result.detail


def test_a_skip_shows_the_unrounded_share_quantized_for_reading():
    result = fit_to_market(D("0.094") / D("95"), BTC, D(60000))  # 0.000989473684210526315789473684... BTC
    assert isinstance(result, Skip)
    assert result.detail == "0.0009895 BTC rounds to 0, minimum is 0.001"


def test_notional_below_minimum_is_a_skip_with_numbers():
    result = fit_to_market(D("0.0015"), BTC, D(60000))  # rounds to 0.001 = 60 USDT < 100
    assert isinstance(result, Skip) and result.reason is SkipReason.BELOW_MIN_NOTIONAL
    assert "60" in result.detail and "100" in result.detail


def test_exactly_at_the_minimum_notional_is_sent():
    assert fit_to_market(D("0.002"), BTC, D(50000)) == D("0.002")


def test_one_step_below_minimum_notional_is_skipped():
    assert isinstance(fit_to_market(D("0.001"), BTC, D("99999.9")), Skip)


def test_reduce_only_derivative_exit_is_exempt_from_min_notional_but_spot_is_not():
    assert fit_to_market(D("0.001"), BTC, D(60000), reduce_only=True) == D("0.001")
    assert isinstance(fit_to_market(D("0.0001"), SPOT, D(3000), reduce_only=True), Skip)


def test_contract_size_converts_base_units_to_contracts():
    rules = MarketRules("X/USD:BTC", "X", "USD", D(1), D("0.5"), D(1), D(0), contract_size=D(100), derivative=True)
    assert fit_to_market(D(250), rules, D(10)) == D(2)


def test_sizing_keeps_a_quantity_above_the_venue_maximum_for_the_planner_to_split():
    rules = MarketRules("X/USDT", "X", "USDT", D(1), D("0.01"), D(1), D(0), max_quantity=D(10))
    assert fit_to_market(D(15), rules, D(1)) == D(15)  # never silently capped: split or capped with a reason


def test_a_market_order_is_bounded_by_both_maximums_a_limit_by_the_lot_maximum():
    rules = MarketRules(
        "BTC/USDT:USDT", "BTC", "USDT", D("0.001"), D("0.1"), max_quantity=D(1000), max_market_quantity=D(120)
    )
    assert rules.max_order_quantity(OrderType.MARKET) == D(120)
    assert rules.max_order_quantity(OrderType.LIMIT) == D(1000)
    assert BTC.max_order_quantity(OrderType.MARKET) is None


def test_150_within_120_is_split_in_two_equal_parts():
    assert split_quantity(D(150), D(120), D("0.001")) == [D(75), D(75)]
    assert split_quantity(D("240.001"), D(120), D("0.001")) == [D("80.001"), D(80), D(80)]
    assert split_quantity(D(120), D(120), D("0.001")) == [D(120)]


@given(
    steps=st.integers(1, 10**7),
    max_steps=st.integers(1, 10**6),
    step=st.sampled_from([D("0.001"), D(1), D("0.5"), D("0.00001")]),
)
def test_a_split_is_the_fewest_parts_within_the_maximum_summing_exactly(steps, max_steps, step):
    assume(steps <= max_steps * 100)  # up to a hundred parts
    quantity, maximum = steps * step, max_steps * step
    parts = split_quantity(quantity, maximum, step)
    assert sum(parts, D(0)) == quantity
    assert all(0 < part <= maximum and part % step == 0 for part in parts)
    assert len(parts) == -(-steps // max_steps)  # the fewest possible
    assert max(parts) - min(parts) <= step  # as equal as the step allows


def test_an_exit_is_bounded_by_what_the_venue_shows_held():
    assert cap_exit(Sized(Side.SELL, D("0.1")), D("0.06"), BTC) == Sized(Side.SELL, D("0.06"))
    assert cap_exit(Sized(Side.SELL, D("0.05")), D("0.06"), BTC) == Sized(Side.SELL, D("0.05"))
    nothing = cap_exit(Sized(Side.SELL, D("0.1")), D("0.0004"), BTC)
    assert isinstance(nothing, Skip) and nothing.reason is SkipReason.NO_POSITION_TO_EXIT
    assert "shows 0.0004 BTC of the 0.1 BTC" in nothing.detail


# -- exits ---------------------------------------------------------------------------------------


def test_partial_exit_closes_the_same_fraction_of_the_followers_position():
    assert size_exit(LegPlan(Leg.EXIT, D(1), F("0.5")), D("0.3"), BTC, D(60000)) == Sized(Side.SELL, D("0.15"))


def test_full_exit_closes_everything_even_off_step_dust():
    assert size_exit(LegPlan(Leg.EXIT, D(1), F(1)), D("-0.0037"), BTC, D(60000)) == Sized(Side.BUY, D("0.0037"))


def test_exit_without_a_copied_position_is_a_skip():
    result = size_exit(LegPlan(Leg.EXIT, D(1), F("0.5")), D(0), BTC, D(60000))
    assert isinstance(result, Skip) and result.reason is SkipReason.NO_POSITION_TO_EXIT


def test_untracked_reduce_only_exit_is_capped_by_the_position():
    result = size_exit(LegPlan(Leg.EXIT, D(5), None), D("0.2"), BTC, D(60000), fallback_quantity=D(5))
    assert result == Sized(Side.SELL, D("0.2"))


# -- properties ------------------------------------------------------------------------------

steps = st.sampled_from([D("1"), D("0.1"), D("0.001"), D("0.00001"), D("5")])
quantities = st.decimals(min_value=D("0.00001"), max_value=D("10000"), places=5, allow_nan=False, allow_infinity=False)
prices = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2, allow_nan=False, allow_infinity=False)
coefficients = st.decimals(min_value=D("0.001"), max_value=D("100"), places=3, allow_nan=False, allow_infinity=False)


@given(quantities, coefficients, prices, steps, st.decimals(min_value=D(0), max_value=D(1000), places=2))
def test_entry_is_never_above_the_masters_proportion_and_never_below_the_minimum(qty, k, price, step, min_notional):
    rules = MarketRules("S", "B", "Q", step, D("0.01"), step, min_notional)
    raw = raw_entry_quantity(SizingMode.COEFFICIENT, k, qty, price)
    assert isinstance(raw, D)  # the coefficient mode needs no equity: never a skip
    result = fit_to_market(raw, rules, price)
    if isinstance(result, Skip):
        assert result.reason in (SkipReason.BELOW_MIN_QUANTITY, SkipReason.BELOW_MIN_NOTIONAL)
        return
    assert isinstance(result, D)
    assert result <= qty * k  # never above the master's proportion
    assert result >= rules.min_quantity and result * price >= min_notional  # never below the venue minimum
    assert result % step == 0  # on the step
    assert qty * k - result < step  # and as close as the step allows


@given(quantities, st.decimals(min_value=D("0.0001"), max_value=D(1), places=4), steps, prices)
def test_partial_exit_is_never_more_than_the_fraction_of_the_position(position, fraction, step, price):
    rules = MarketRules("S", "B", "Q", step, D("0.01"), step, D(0), derivative=True)
    position = round_down(position, step)
    assume(position > 0)
    result = size_exit(LegPlan(Leg.EXIT, D(1), F(fraction)), position, rules, price)
    if isinstance(result, Skip):
        assert position * fraction < step
        return
    assert result.side is Side.SELL
    assert result.quantity <= position
    assert result.quantity <= position * fraction or fraction == 1
    assert isinstance(result.quantity, D)


@given(
    st.decimals(min_value=D("0.01"), max_value=D(100), places=2),
    st.decimals(min_value=D("0.01"), max_value=D(100), places=2),
)
def test_a_partial_then_full_exit_leaves_no_position(position, first_fraction_pct):
    fraction = min(first_fraction_pct / 100, D(1))
    rules = MarketRules("S", "B", "Q", D("0.01"), D("0.01"), D("0.01"), D(0), derivative=True)
    remaining = position
    first = size_exit(LegPlan(Leg.EXIT, D(1), F(fraction)), remaining, rules, D(10))
    if isinstance(first, Sized):
        remaining -= first.quantity
    if remaining:
        last = size_exit(LegPlan(Leg.EXIT, D(1), F(1)), remaining, rules, D(10))
        assert isinstance(last, Sized)
        remaining -= last.quantity
    assert remaining == 0


@pytest.mark.parametrize("mode", list(SizingMode))
def test_no_mode_ever_produces_a_float(mode):
    raw = raw_entry_quantity(mode, D("1.5"), D("0.3"), D("123.45"), follower_equity=D(1000), master_equity=D(5000))
    assert isinstance(raw, D)
    assert isinstance(fit_to_market(raw, SPOT, D("123.45")), (D, Skip))


# -- exits land on the exact proportional target (issue 13, item 9) ---------------------------


def test_a_third_of_the_masters_position_closes_exactly_a_third_of_the_followers():
    """0.001/0.003 is 0.333…3 in Decimal; times 0.003 it was 0.000999…, one step short, rounded to 0."""
    legs = split_legs(fill(Side.SELL, "0.001"), D("0.003"))
    assert size_exit(legs[0], D("0.003"), BTC, D(60000)) == Sized(Side.SELL, D("0.001"))


def test_closing_a_position_in_equal_parts_never_skips_a_part():
    master, follower = D("0.007"), D("0.007")
    for _ in range(7):
        (leg,) = split_legs(fill(Side.SELL, "0.001"), master)
        sized = size_exit(leg, follower, BTC, D(60000))
        assert sized == Sized(Side.SELL, D("0.001"))
        master, follower = master - D("0.001"), follower - sized.quantity
    assert master == follower == 0


@given(
    st.integers(min_value=1, max_value=10_000),
    st.integers(min_value=1, max_value=10_000),
    st.integers(min_value=1, max_value=50),
)
def test_a_proportional_exit_is_the_exact_share_rounded_down_to_the_step(held_steps, closed_steps, ratio):
    """Master and follower in the same proportion: the follower closes exactly ``ratio`` times the master."""
    assume(closed_steps <= held_steps)
    step = D("0.001")
    master_held, master_closed = held_steps * step, closed_steps * step
    (leg, *_) = split_legs(fill(Side.SELL, str(master_closed)), master_held)
    result = size_exit(leg, master_held * ratio, BTC, D(60000))
    assert result == Sized(Side.SELL, master_closed * ratio)


@pytest.mark.parametrize(
    ("leg", "side", "net", "signed", "effect"),
    [
        (Leg.ENTRY, PositionSide.LONG, "0.2", "0.1", None),  # adds to the long, as the leg does
        (Leg.EXIT, PositionSide.LONG, "0.2", "-0.1", None),  # reduces the long, as the leg does
        (Leg.ENTRY, PositionSide.SHORT, "0.2", "-0.1", "reduces its long"),
        (Leg.ENTRY, PositionSide.SHORT, "0.2", "-0.2", "closes its long"),
        (Leg.ENTRY, PositionSide.SHORT, "0.2", "-0.3", "closes its long and goes short"),
        (Leg.EXIT, PositionSide.SHORT, "0", "0.1", "goes long"),
        (Leg.EXIT, PositionSide.SHORT, "0.1", "0.1", "adds to its long"),
        (Leg.EXIT, PositionSide.LONG, "0.1", "-0.3", "closes its long and goes short"),
    ],
)
def test_a_one_way_follower_is_told_the_net_effect_of_a_hedge_leg(leg, side, net, signed, effect):
    note = one_way_note(leg, side, D(net), D(signed))
    if effect is None:
        assert note is None
    else:
        assert note is not None and note.startswith(f"the master {'opened' if leg is Leg.ENTRY else 'reduced'} its")
        assert note.endswith(f"your one-way account {effect}")
