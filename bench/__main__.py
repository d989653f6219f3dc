"""``python -m bench`` (or ``copytrade bench``): run the benchmarks, print the results.

Without ``--json``: a table of the headline figures against the product's targets, then every
measurement as JSON. With ``--json``: one JSON object with the fixed keys below and nothing else
(``--report FILE`` writes every measurement as well). A benchmark left out with ``--only`` has
``null`` for its keys. ``--quick`` runs every benchmark at small sizes (the keys keep their
names; a smoke check, not a measurement). A benchmark that cannot run here (the notification
part without the Bot API emulator, the scale-out part without Redis or PostgreSQL) does not stop
the others: its keys are ``null`` and ``not_run`` names it with the reason.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

BENCHMARKS = ("engine", "ccxt", "detect", "memory", "notify", "scaleout")

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
    "scaleout_followers": "10,000",
    "scaleout_1_shard_p50_ms": "(reported) one executor process",
    "scaleout_2_shards_p50_ms": "(reported) two executor processes",
    "scaleout_speedup": ">= 1.6 on 2 cores",
    "scaleout_duplicates": "0 (a replica killed mid fan-out)",
    "scaleout_missing": "0 (a replica killed mid fan-out)",
    "not_run": "{} (each benchmark that could not run, with the reason)",
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
    scaleout: int


FULL = Sizes(
    engine=(100, 1_000, 10_000),
    ccxt=(100, 1_000),
    baseline=100,
    repetitions=5,
    detect_events=200,
    memory=(1_000, 10_000),
    notify=1_000,
    scaleout=10_000,
)
QUICK = Sizes(
    engine=(50,), ccxt=(10,), baseline=10, repetitions=2, detect_events=5, memory=(20,), notify=40, scaleout=40
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks of the copy fan-out: engine overhead, the real ccxt client path against a local fake "
        "Binance with a round-trip delay, a sequential baseline, websocket detection, memory per account and "
        "Telegram notification fan-out. See docs/benchmarks.md.",
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
    parser.add_argument(
        "--scaleout-followers",
        type=int,
        default=None,
        help="followers of the scale-out benchmark (default 10,000; 40 with --quick)",
    )
    parser.add_argument("--report", type=Path, default=None, help="also write every measurement as JSON to this file")
    parser.add_argument(
        "--compare",
        metavar="REF",
        default=None,
        help="also run the same benchmarks on git revision REF, alternately with this checkout, and print each "
        "figure's ratio (this / REF): a regression guard on a machine whose absolute figures are noisy",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="with --compare: runs of each revision, alternately (default 1; the ratio is of the medians)",
    )
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
    if args.scaleout_followers is not None and args.scaleout_followers < 2:
        print("bench: error: --scaleout-followers must be at least 2", file=sys.stderr)
        return 2
    if args.rounds < 1:
        print("bench: error: --rounds must be at least 1", file=sys.stderr)
        return 2
    if args.compare is not None:
        return _compare(args)
    if args.profile is not None:
        os.environ["BENCH_PROFILE"] = str(args.profile)
    sizes = QUICK if args.quick else FULL
    if args.scaleout_followers is not None:
        sizes = replace(sizes, scaleout=args.scaleout_followers)
    report = asyncio.run(run(chosen, sizes, args.rtt, progress=not args.json))
    headline = headline_figures(report)
    if args.report is not None:
        args.report.write_text(json.dumps({"headline": headline, **report}, indent=2) + "\n")
    if args.json:
        print(json.dumps(headline))
    else:
        print(format_table(headline, quick=args.quick or sizes.scaleout != FULL.scaleout))
        print(json.dumps(report, indent=2))
    return 0


def _compare(args: argparse.Namespace) -> int:
    """``--compare REF``: the chosen benchmarks on REF and on this checkout, alternately."""
    from bench.compare import CompareError, compare, format_comparison

    # only what was given: an older revision may not know a newer option's default
    given = ["--only", args.only, "--rtt", str(args.rtt)]
    if args.quick:
        given.append("--quick")
    if args.scaleout_followers is not None:
        given += ["--scaleout-followers", str(args.scaleout_followers)]

    def note(text: str) -> None:
        if not args.json:
            print(f"[bench] {text}", file=sys.stderr, flush=True)

    try:
        result = compare(args.compare, given, rounds=args.rounds, note=note)
    except CompareError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    if args.report is not None:
        args.report.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["ratios"]) if args.json else format_comparison(result))
    return 0


async def run(chosen: list[str], sizes: Sizes, rtt: float, *, progress: bool) -> dict[str, Any]:
    from bench.ccxt_path import run_ccxt_path
    from bench.detection import run_detection
    from bench.engine_overhead import run_engine_overhead
    from bench.memory import run_memory
    from bench.notify import run_notify
    from bench.scaleout import run_scaleout

    def note(text: str) -> None:
        if progress:
            print(f"[bench] {text}", file=sys.stderr, flush=True)

    report: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "quick": sizes is QUICK,
        "not_run": {},
    }

    async def part(name: str, what: str, measure: Callable[[], Awaitable[Any]]) -> None:
        """One benchmark; one that cannot run is reported with its reason, the others go on."""
        if name not in chosen:
            return
        note(what)
        try:
            report[name] = await measure()
        except Exception as exc:
            report["not_run"][name] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            note(f"{name} not run: {report['not_run'][name]}")
            if progress:
                traceback.print_exc(file=sys.stderr)

    async def engine() -> list[dict[str, Any]]:
        return [await run_engine_overhead(n, sizes.repetitions) for n in sizes.engine]

    started = time.perf_counter()
    await part("engine", f"engine overhead, {', '.join(map(str, sizes.engine))} followers", engine)
    await part(
        "ccxt",
        f"ccxt client path, {', '.join(map(str, sizes.ccxt))} followers, RTT {rtt * 1000:.0f} ms; "
        f"sequential baseline at {sizes.baseline}",
        lambda: run_ccxt_path(list(sizes.ccxt), sizes.repetitions, rtt=rtt, baseline_n=sizes.baseline),
    )
    detect = sizes.detect_events
    await part("detect", f"detection, {detect} websocket events", lambda: run_detection(detect))
    await part(
        "memory", f"memory, {', '.join(map(str, sizes.memory))} idle accounts", lambda: run_memory(list(sizes.memory))
    )
    await part(
        "notify", f"notification fan-out, {sizes.notify} messages at Telegram's 30/s", lambda: run_notify(sizes.notify)
    )
    await part(
        "scaleout",
        f"scale-out, {sizes.scaleout} followers: 1 executor shard, then 2 (one replica killed mid fan-out)",
        lambda: run_scaleout(sizes.scaleout, sizes.repetitions if sizes is QUICK else 3, rtt=rtt),
    )
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
    scaleout = report.get("scaleout")
    if scaleout:
        figures["scaleout_followers"] = scaleout["followers"]
        figures["scaleout_1_shard_p50_ms"] = scaleout["one_shard_ms"]["p50"]
        figures["scaleout_2_shards_p50_ms"] = scaleout["two_shards_ms"]["p50"]
        figures["scaleout_speedup"] = scaleout["speedup_p50"]
        figures["scaleout_duplicates"] = scaleout["duplicates"]
        figures["scaleout_missing"] = scaleout["missing"]
    figures["not_run"] = dict(report.get("not_run", {}))
    return figures


def format_table(headline: dict[str, Any], *, quick: bool) -> str:
    width = max(map(len, KEYS))
    lines = ["figure".ljust(width) + "  measured      target", "-" * (width + 50)]
    for key, target in KEYS.items():
        if key == "not_run":
            continue
        value = headline[key]
        shown = "not run" if value is None else str(value)
        lines.append(f"{key.ljust(width)}  {shown:<12}  {target}")
    for name, reason in headline["not_run"].items():
        lines.append(f"not run: {name}: {reason}")
    if quick:
        lines.append("(small sizes: the figures are not comparable with the targets)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
