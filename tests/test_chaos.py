"""The chaos campaign (issue 15), short and seeded: the real `copytrade run` process against the
fake Binance process, SIGKILLed at random points and restarted, with faults on the order path."""

from __future__ import annotations

import pytest

from bench.chaos.campaign import KEYS, Options, run_campaign
from copytrade.cli import main as copytrade_main


def test_copytrade_chaos_hands_its_arguments_to_the_campaign(capsys):
    with pytest.raises(SystemExit) as exit_info:
        copytrade_main(["chaos", "--help"])
    assert exit_info.value.code == 0
    assert "--kills" in capsys.readouterr().out


@pytest.mark.e2e
@pytest.mark.slow
async def test_a_killed_and_faulted_copier_places_each_copy_once_and_its_ledger_equals_the_venue():
    result = await run_campaign(Options(kills=10, faults=0.25, seed=15, followers=3, timeout_fault_s=10.5))
    figures = {key: result[key] for key in KEYS}
    assert figures["kills"] >= 10 and figures["faults_injected"] > 0, figures
    assert figures["fills"] > 0 and figures["placed"] > 0, figures
    failures = {k: figures[k] for k in ("duplicates", "missing", "ledger_mismatches", "unreasoned", "double_notified")}
    assert failures == dict.fromkeys(failures, 0), "\n".join([str(figures), *result["timeline"]])


@pytest.mark.e2e
@pytest.mark.slow
async def test_the_campaign_catches_a_copy_placed_twice_and_prints_its_timeline():
    result = await run_campaign(Options(kills=1, faults=0, seed=3, followers=1, double_one_copy=True))
    assert result["duplicates"] == 1
    assert result["ledger_mismatches"] >= 1  # the venue moved, the ledger did not
    offender = result["timeline"][0]
    assert offender.startswith("offender: duplicates trade=") and "x2" in offender
    assert any(line.startswith("copy row:") for line in result["timeline"])
    assert any("planted a second order" in line for line in result["timeline"])
