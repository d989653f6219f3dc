"""The chaos campaign (issue 15), short and seeded: the real `copytrade run` process against the
fake Binance process, SIGKILLed at random points and restarted, with faults on the order path."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from bench.chaos.__main__ import FAILURES
from bench.chaos.campaign import KEYS, Options, implied_move, run_campaign
from copytrade.cli import main as copytrade_main


def test_copytrade_chaos_hands_its_arguments_to_the_campaign(capsys):
    with pytest.raises(SystemExit) as exit_info:
        copytrade_main(["chaos", "--help"])
    assert exit_info.value.code == 0
    assert "--kills" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("coefficient", "master", "side", "quantity", "reduce_only", "held", "implied"),
    [
        ("0.5", "0", "BUY", "0.005", False, "0", "0.002"),  # 0.0025 rounds down to the step
        ("0.5", "0", "BUY", "0.003", False, "0", "0"),  # 0.001 BTC is 60 USDT, under the 100 minimum
        ("1", "0.003", "SELL", "0.001", True, "0.003", "-0.001"),  # a third of 0.003 is 0.001, not one step short
        ("1.5", "0.009", "SELL", "0.002", True, "0.013", "-0.002"),  # 0.013 x 2/9 = 0.00288...
        ("2", "0.002", "SELL", "0.002", True, "0.004", "-0.004"),  # a full exit closes everything
        ("0.5", "0.004", "SELL", "0.006", False, "0.002", "-0.002"),  # reversal: closes, the new 0.001 is too small
        ("2", "-0.004", "BUY", "0.007", False, "-0.008", "0.014"),  # reversal: closes 0.008, opens 0.006
        ("1", "0.005", "SELL", "0.001", True, "0", "0"),  # nothing copied to exit
    ],
)
def test_the_campaign_model_of_what_the_masters_trade_implies(
    coefficient, master, side, quantity, reduce_only, held, implied
):
    move = implied_move(D(coefficient), D(master), side, D(quantity), reduce_only, D(held))
    assert move == D(implied)


# The campaigns are bounded by counts (kills, followers, the seeded master trades), not by time:
# every wait inside returns as soon as what it waits for holds, and its deadline only turns a hang
# into an error. A campaign takes one to three minutes (each "timeout" fault holds an answer past
# the client's 10 s), longer on a busy machine; the pytest timeout is far above that.
@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_a_killed_and_faulted_copier_places_each_copy_once_and_its_ledger_equals_the_venue():
    result = await run_campaign(
        Options(kills=10, faults=0.25, seed=15, followers=3, timeout_fault_s=10.5, settle_timeout_s=600)
    )
    figures = {key: result[key] for key in KEYS}
    assert figures["kills"] >= 10 and figures["faults_injected"] > 0, figures
    assert figures["fills"] > 0 and figures["placed"] > 0, figures
    failures = {k: figures[k] for k in FAILURES}
    assert failures == dict.fromkeys(failures, 0), "\n".join([str(figures), *result["timeline"]])


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_the_campaign_catches_a_copy_placed_twice_and_prints_its_timeline():
    result = await run_campaign(
        Options(kills=1, faults=0, seed=3, followers=1, double_one_copy=True, settle_timeout_s=600)
    )
    assert result["duplicates"] == 1
    assert result["ledger_mismatches"] >= 1  # the venue moved, the ledger did not
    assert result["implied_mismatches"] >= 1  # and further than the master's trade implies
    offender = result["timeline"][0]
    assert offender.startswith("offender: duplicates trade=") and "x2" in offender
    assert any(line.startswith("copy row:") for line in result["timeline"])
    assert any("planted a second order" in line for line in result["timeline"])
