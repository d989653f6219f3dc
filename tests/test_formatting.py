from decimal import Decimal as D

import pytest

from bot.formatting import format_copy_result, format_follow_paused, slippage_pct, split_message
from bot.start import looks_like_a_secret
from core.copying.config import FollowPaused
from core.model import CopyResult, CopyStatus, Fill, Side, Skip, SkipReason

FILL = Fill(1, "v", "t", "o", "BTC/USDT:USDT", Side.BUY, D("0.2"), D("60000"))


def result(**kw) -> CopyResult:
    return CopyResult(follow_id=1, user_id=1, master_id=1, client_order_id="c", fill=FILL, **kw)


def test_filled_copy_shows_quantities_prices_slippage_and_latency():
    text = format_copy_result(
        result(
            status=CopyStatus.FILLED,
            side=Side.BUY,
            filled_quantity=D("0.100"),
            average_price=D("60060"),
            latency_ms=42.4,
        )
    )
    assert "bought 0.1 BTC/USDT:USDT @ 60060" in text
    assert "master 60000" in text and "slippage 0.10%" in text and "42 ms" in text


def test_slippage_is_positive_when_the_follower_paid_more_or_sold_for_less():
    assert slippage_pct(result(status=CopyStatus.FILLED, side=Side.BUY, average_price=D(60060))) == D("0.10")
    assert slippage_pct(result(status=CopyStatus.FILLED, side=Side.SELL, average_price=D(60060))) == D("-0.10")
    assert slippage_pct(result(status=CopyStatus.FILLED, side=Side.SELL, average_price=D(59940))) == D("0.10")


def test_skip_explains_the_reason_in_plain_words():
    text = format_copy_result(
        result(status=CopyStatus.SKIPPED, skip=Skip(SkipReason.BELOW_MIN_NOTIONAL, "60 USDT, minimum is 100 USDT"))
    )
    assert text.startswith("⏭ Not copied: your share of the trade is below the exchange's minimum order value")
    assert "minimum is 100 USDT" in text


def test_failure_says_what_happened_and_what_to_do():
    text = format_copy_result(result(status=CopyStatus.FAILED, error="margin is insufficient"))
    assert "❌ Copy failed: margin is insufficient" in text and "Check your balance" in text


def test_pending_promises_no_duplicate():
    text = format_copy_result(result(status=CopyStatus.PENDING, side=Side.SELL, requested_quantity=D("0.2")))
    assert "never sent twice" in text


def test_pause_notice_tells_how_to_resume():
    assert "/resume" in format_follow_paused(FollowPaused(3, 1, "the exchange refused your key"))


def test_split_message_keeps_every_part_under_the_limit_and_loses_nothing():
    text = "\n".join(f"line {i} " + "x" * 50 for i in range(300)) + "\n" + "y" * 9000
    parts = split_message(text, 4096)
    assert all(len(p) <= 4096 for p in parts)
    assert "".join(parts) == text


@pytest.mark.parametrize(
    "text",
    [
        "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A",  # Binance key
        "JBSWY3DPEHPK3PXP2ZQ7",  # a TOTP seed
        "0a1b2c3d-4e5f-6789-abcd-ef0123456789",  # OKX-style
        "AKIAABCDEF0123456789XYZ",
    ],
)
def test_pasted_keys_look_like_secrets(text):
    assert looks_like_a_secret(text)


@pytest.mark.parametrize("text", ["internationalization", "BTCUSDTPERPETUALS", "1234567890123456", "hello there"])
def test_long_words_symbols_and_numbers_are_not_taken_for_secrets(text):
    assert not looks_like_a_secret(text)


def test_a_copy_cancelled_with_nothing_filled_says_so_and_why():
    text = format_copy_result(
        result(
            status=CopyStatus.CANCELED,
            side=Side.BUY,
            requested_quantity=D("0.2"),
            error="the master cancelled its order",
        )
    )
    assert text.startswith("❎ Cancelled, nothing filled: buy 0.2 BTC/USDT:USDT (the master cancelled its order)")
