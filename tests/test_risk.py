from decimal import Decimal as D

import pytest

from core.model import Fill, FollowSettings, OrderType, Side, Skip, SkipReason
from core.risk import cap_to_max_position, check_filters, normalise_symbol_list, symbol_aliases


def settings(**kw) -> FollowSettings:
    return FollowSettings(follow_id=1, user_id=1, master_id=1, credential_id="c", **kw)


def fill(symbol="BTC/USDT:USDT", order_type=OrderType.MARKET) -> Fill:
    return Fill(1, "v", "t", "o", symbol, Side.BUY, D(1), D(100), order_type=order_type)


def reason_of(skip: Skip | None) -> SkipReason | None:
    return skip.reason if skip is not None else None


@pytest.mark.parametrize(
    "symbol, alias",
    [
        ("BTC/USDT:USDT", "BTC"),
        ("BTC/USDT:USDT", "BTCUSDT"),
        ("BTC/USDT:USDT", "BTC/USDT"),
        ("eth/usdt", "ETH"),
        ("NFO:NIFTY24DEC24000CE", "NIFTY"),
        ("NFO:NIFTY24DEC24000CE", "NIFTY24DEC24000CE"),
        ("NSE:SBIN-EQ", "SBIN"),
    ],
)
def test_symbol_answers_to_the_names_users_type(symbol, alias):
    assert alias in symbol_aliases(symbol)


def test_alias_of_one_underlying_does_not_match_another():
    assert "NIFTY" not in symbol_aliases("NFO:BANKNIFTY24DEC50000CE")
    assert "ETH" not in symbol_aliases("BTC/USDT:USDT")


def test_allow_list_admits_listed_symbol_only():
    allow = settings(allowed_symbols=normalise_symbol_list(["btc"]))
    assert check_filters(allow, fill()) is None
    assert reason_of(check_filters(allow, fill("ETH/USDT:USDT"))) is SkipReason.SYMBOL_NOT_ALLOWED


def test_block_list_wins_over_allow_list():
    both = settings(allowed_symbols=frozenset({"BTC"}), blocked_symbols=frozenset({"BTC"}))
    assert reason_of(check_filters(both, fill())) is SkipReason.SYMBOL_BLOCKED


def test_order_type_filter_groups_stop_variants():
    only_stops = settings(order_types=frozenset({OrderType.STOP_MARKET}))
    assert check_filters(only_stops, fill(order_type=OrderType.TAKE_PROFIT_MARKET)) is None
    assert check_filters(only_stops, fill(order_type=OrderType.STOP_LIMIT)) is None
    assert reason_of(check_filters(only_stops, fill(order_type=OrderType.LIMIT))) is SkipReason.ORDER_TYPE_FILTERED


def test_no_filters_copy_everything():
    assert check_filters(settings(), fill("NFO:X", OrderType.LIMIT)) is None


def test_max_position_passes_an_order_that_fits_exactly():
    assert cap_to_max_position(D(2), D(3), D(100), D(500), step=D(1)) == (D(2), None)


def test_max_position_reduces_an_order_one_step_over():
    quantity, skip = cap_to_max_position(D(3), D(3), D(100), D(500), step=D(1))
    assert (quantity, skip) == (D(2), None)


def test_max_position_skips_when_already_at_the_limit():
    quantity, skip = cap_to_max_position(D(1), D(5), D(100), D(500), step=D(1))
    assert quantity == 0 and reason_of(skip) is SkipReason.MAX_POSITION


def test_max_position_counts_contract_size():
    quantity, skip = cap_to_max_position(D(10), D(0), D(10), D(500), step=D(1), contract_size=D(10))
    assert (quantity, skip) == (D(5), None)
