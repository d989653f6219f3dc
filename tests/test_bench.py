"""The benchmark suite runs end to end at small sizes and reports its fixed keys (no timing is
asserted: the figures belong to the machine; docs/benchmarks.md has a full run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import KEYS, main
from copytrade.cli import main as copytrade_main
from tests.fakes.telegram import emulator_mark

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(300)
@emulator_mark()
@pytest.mark.e2e
@pytest.mark.slow
def test_quick_run_of_every_benchmark_prints_the_fixed_keys(tmp_path):
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", "--report", str(report)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    headline = json.loads(done.stdout)
    assert list(headline) == list(KEYS)
    assert headline.pop("not_run") == {}
    assert all(isinstance(value, (int, float)) and value >= 0 for value in headline.values()), headline
    assert headline["scaleout_duplicates"] == 0 and headline["scaleout_missing"] == 0
    assert headline["notify_429s"] == 0  # the pacer never goes over Telegram's 30 a second
    details = json.loads(report.read_text())
    assert details["quick"] is True and details["headline"] == {**headline, "not_run": {}}
    assert details["ccxt"]["baseline"]["followers"] == 10
    assert (
        details["ccxt"]["server_requests"]["POST /fapi/v1/order"] >= 10 * 3
    )  # every copy and the baseline's orders reached the fake
    assert details["memory"]["runs"][0]["markets_shared"] is True


def test_a_benchmark_left_out_reports_null(capsys):
    assert main(["--quick", "--json", "--only", "engine"]) == 0
    headline = json.loads(capsys.readouterr().out)
    assert headline["engine_ms_per_follower"] > 0
    assert {key for key, value in headline.items() if value is None} == set(KEYS) - {
        "engine_ms_per_follower",
        "not_run",
    }
    assert headline["not_run"] == {}


def test_a_benchmark_that_cannot_run_is_named_with_its_reason_and_the_others_are_still_reported(capsys, monkeypatch):
    monkeypatch.setenv("TEST_REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    assert main(["--quick", "--json", "--only", "engine,scaleout", "--scaleout-followers", "4"]) == 0
    headline = json.loads(capsys.readouterr().out)
    assert headline["engine_ms_per_follower"] > 0
    assert headline["scaleout_speedup"] is None
    assert list(headline["not_run"]) == ["scaleout"] and "ConnectionError" in headline["not_run"]["scaleout"]


def test_unknown_benchmark_and_negative_delay_are_refused(capsys):
    assert main(["--only", "engine,warp"]) == 2
    assert "unknown benchmark warp" in capsys.readouterr().err
    assert main(["--rtt", "-1"]) == 2
    assert "--rtt" in capsys.readouterr().err


def test_copytrade_bench_hands_its_arguments_to_the_suite(capsys):
    with pytest.raises(SystemExit) as exit_info:
        copytrade_main(["bench", "--help"])
    assert exit_info.value.code == 0
    assert "--quick" in capsys.readouterr().out


def _git(repository: Path, *argv: str) -> None:
    subprocess.run(["git", "-C", str(repository), *argv], check=True, capture_output=True)


def _figure_printer(repository: Path, figure: float) -> None:
    (repository / "bench").mkdir(exist_ok=True)
    (repository / "bench" / "__init__.py").write_text("")
    (repository / "bench" / "__main__.py").write_text(
        f"import json\nprint(json.dumps({{'engine_ms_per_follower': {figure}, 'not_run': {{}}}}))\n"
    )


def test_compare_runs_the_reference_revision_from_its_own_source_and_gives_the_ratio(tmp_path):
    """Each side runs its own code, not the installed package: the reference's figure is its own."""
    from bench.compare import compare

    repository = tmp_path / "repo"
    repository.mkdir()
    _git(repository, "init", "-q")
    _figure_printer(repository, 0.5)
    _git(repository, "add", "-A")
    _git(repository, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "slower")
    _figure_printer(repository, 0.25)  # this checkout: uncommitted, twice as fast
    result = compare("HEAD", [], rounds=2, repository=repository)
    assert [run["engine_ms_per_follower"] for run in result["reference"]["runs"]] == [0.5, 0.5]
    assert [run["engine_ms_per_follower"] for run in result["current"]["runs"]] == [0.25, 0.25]
    assert result["ratios"] == [{"key": "engine_ms_per_follower", "reference": 0.5, "current": 0.25, "ratio": 0.5}]


def test_compare_with_an_unknown_revision_is_one_clear_error(capsys):
    assert main(["--compare", "no-such-revision", "--only", "engine"]) == 2
    assert "'no-such-revision' is not a commit" in capsys.readouterr().err
