"""``python -m bench`` (or ``copytrade bench``): run the benchmarks, print the results.

Without ``--json``: a table of the headline figures against the product's targets, then every
measurement as JSON. With ``--json``: one JSON object with the fixed keys below and nothing else
(``--report FILE`` writes every measurement as well). A benchmark left out with ``--only`` has
``null`` for its keys. ``--quick`` runs every benchmark at small sizes (the keys keep their
names; a smoke check, not a measurement).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCHMARKS = ("engine", "ccxt", "detect", "memory", "notify")

#: the ``--json`` keys, in order, with the target each is read against
KEYS: dict[str, str] = {
    "engine_ms_per_follower": "<= 0.1 ms per follower (10,000 followers <= 1 s)",
    "ccxt_1000_p50_ms": "<= 1000 ms with 20 ms RTT",
    "ccxt_1000_p99_ms": "(reported)",
    "speedup_vs_sequential_100": ">= 20x",
    "detect_p99_ms": "<= 5 ms on loopback",
    "rss_mb_per_account": "<= 0.3 MB per idle account",
    "notify_1000_s": "<= 1.1 x N/30 s (36.7 s for 1,000)",
    "notify_429s": "0",
}


@dataclass(frozen=True)
class Sizes:
    engine: tuple[int, ...]
    ccxt: tuple[int, ...]
    baseline: int
    repetitions: int
    detect_events: int
    memory: tuple[int, ...]
    notify: int


FULL = Sizes(
    engine=(100, 1_000, 10_000),
    ccxt=(100, 1_000),
    baseline=100,
    repetitions=5,
    detect_events=200,
    memory=(1_000, 10_000),
    notify=1_000,
)
QUICK = Sizes(engine=(50,), ccxt=(10,), baseline=10, repetitions=2, detect_events=5, memory=(20,), notify=40)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks of the copy fan-out: engine overhead, the real ccxt client path against a local fake "
        "Binance with a round-trip delay, a sequential baseline, websocket detection, memory per account and "
        "Telegram notification fan-out. See README, Benchmarks.",
    )
    parser.add_argument("--json", action="store_true", help="print only one JSON object with the fixed keys")
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: checks every benchmark runs (seconds, not minutes)"
    )
    parser.add_argument(
        "--only", default=",".join(BENCHMARKS), help=f"comma-separated subset of {','.join(BENCHMARKS)} (default: all)"
    )
    parser.add_argument(
        "--rtt",
        type=float,
        default=0.02,
        help="seconds the fake exchange waits before answering each REST request (default 0.02)",
    )
    parser.add_argument("--report", type=Path, default=None, help="also write every measurement as JSON to this file")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="write pyinstrument profiles of the engine and ccxt runs here (pip install pyinstrument)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        print(
            f"bench: error: --only: unknown benchmark {', '.join(unknown)} (choose from {', '.join(BENCHMARKS)})",
            file=sys.stderr,
        )
        return 2
    if args.rtt < 0:
        print("bench: error: --rtt must be zero or more seconds", file=sys.stderr)
        return 2
    if args.profile is not None:
        os.environ["BENCH_PROFILE"] = str(args.profile)
    sizes = QUICK if args.quick else FULL
    report = asyncio.run(run(chosen, sizes, args.rtt, progress=not args.json))
    headline = headline_figures(report)
    if args.report is not None:
        args.report.write_text(json.dumps({"headline": headline, **report}, indent=2) + "\n")
    if args.json:
        print(json.dumps(headline))
    else:
        print(format_table(headline, quick=args.quick))
        print(json.dumps(report, indent=2))
    return 0


async def run(chosen: list[str], sizes: Sizes, rtt: float, *, progress: bool) -> dict[str, Any]:
    from bench.ccxt_path import run_ccxt_path
    from bench.detection import run_detection
    from bench.engine_overhead import run_engine_overhead
    from bench.memory import run_memory
    from bench.notify import run_notify

    def note(text: str) -> None:
        if progress:
            print(f"[bench] {text}", file=sys.stderr, flush=True)

    report: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "quick": sizes is QUICK,
    }
    started = time.perf_counter()
    if "engine" in chosen:
        report["engine"] = []
        for n in sizes.engine:
            note(f"engine overhead, {n} followers")
            report["engine"].append(await run_engine_overhead(n, sizes.repetitions))
    if "ccxt" in chosen:
        note(
            f"ccxt client path, {', '.join(map(str, sizes.ccxt))} followers, RTT {rtt * 1000:.0f} ms; "
            f"sequential baseline at {sizes.baseline}"
        )
        report["ccxt"] = await run_ccxt_path(list(sizes.ccxt), sizes.repetitions, rtt=rtt, baseline_n=sizes.baseline)
    if "detect" in chosen:
        note(f"detection, {sizes.detect_events} websocket events")
        report["detect"] = await run_detection(sizes.detect_events)
    if "memory" in chosen:
        note(f"memory, {', '.join(map(str, sizes.memory))} idle accounts")
        report["memory"] = await run_memory(list(sizes.memory))
    if "notify" in chosen:
        note(f"notification fan-out, {sizes.notify} messages at Telegram's 30/s")
        report["notify"] = await run_notify(sizes.notify)
    report["wall_s"] = round(time.perf_counter() - started, 1)
    return report


def headline_figures(report: dict[str, Any]) -> dict[str, Any]:
    """The fixed ``--json`` keys from a report; ``None`` for what was not run."""
    figures: dict[str, Any] = dict.fromkeys(KEYS)
    if report.get("engine"):
        largest = max(report["engine"], key=lambda run: run["followers"])
        figures["engine_ms_per_follower"] = round(largest["handed_ms"]["p50"] / largest["followers"], 4)
    ccxt = report.get("ccxt")
    if ccxt and ccxt["runs"]:
        largest = max(ccxt["runs"], key=lambda run: run["followers"])
        figures["ccxt_1000_p50_ms"] = largest["fill_to_last_ack_ms"]["p50"]
        figures["ccxt_1000_p99_ms"] = largest["fill_to_last_ack_ms"]["p99"]
    if ccxt and ccxt.get("baseline"):
        figures["speedup_vs_sequential_100"] = ccxt["baseline"]["speedup_p50"]
    if report.get("detect"):
        figures["detect_p99_ms"] = report["detect"]["ws_sent_to_engine_ms"]["p99"]
    if report.get("memory"):
        largest = max(report["memory"]["runs"], key=lambda run: run["accounts"])
        figures["rss_mb_per_account"] = largest["connected_mb_per_account"]
    if report.get("notify"):
        figures["notify_1000_s"] = report["notify"]["total_s"]
        figures["notify_429s"] = report["notify"]["http_429s"]
    return figures


def format_table(headline: dict[str, Any], *, quick: bool) -> str:
    width = max(map(len, KEYS))
    lines = ["figure".ljust(width) + "  measured      target", "-" * (width + 50)]
    for key, target in KEYS.items():
        value = headline[key]
        shown = "not run" if value is None else str(value)
        lines.append(f"{key.ljust(width)}  {shown:<12}  {target}")
    if quick:
        lines.append("(--quick: small sizes; the figures are not comparable with the targets)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
