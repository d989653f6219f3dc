"""``python -m bench.chaos`` (or ``copytrade chaos``): one seeded chaos campaign, then its figures.

With ``--json``: one JSON object with the fixed keys (``kills``, ``fills``, ``expected``, ``placed``,
``duplicates``, ``missing``, ``ledger_mismatches``, ``implied_mismatches``, ``unreasoned``,
``double_notified``, ``faults_injected``, ``refused``) and nothing else on stdout. A failing campaign
(any of duplicates, missing, ledger_mismatches, implied_mismatches, unreasoned, double_notified above 0)
prints, on stderr, its seed and the first offending (fill, follow) with its timeline, and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.chaos.campaign import KEYS, Options, run_campaign

FAILURES = ("duplicates", "missing", "ledger_mismatches", "implied_mismatches", "unreasoned", "double_notified")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos",
        description="Chaos campaign: the real `copytrade run` against a fake Binance process, SIGKILLed at random "
        "points and restarted, with faults injected on the order path; checks every (master execution, follow) "
        "against the exchange, the ledger against the venue, each follower's position against what the master's "
        "trades imply, reasons and notifications.",
    )
    parser.add_argument("--kills", type=int, default=10, help="SIGKILLs of the copier (default 10)")
    parser.add_argument(
        "--faults", type=float, default=0.1, help="share of order requests answered with a fault (default 0.1)"
    )
    parser.add_argument(
        "--late-accepts",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of order requests accepted late: answered -1007 'send status unknown' at once, the order "
        "placed 0.5-3 s later, never after the request's timestamp + recvWindow (default 0: none)",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--followers", type=int, default=3, help="follower accounts (default 3)")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite", help="default sqlite")
    parser.add_argument(
        "--timeout-fault",
        type=float,
        default=11.0,
        help="seconds a 'timeout' fault holds the answer; above the client's 10 s (default 11)",
    )
    parser.add_argument("--skew", type=float, default=3.0, help="seconds a -1021 clock jump lasts (default 3)")
    parser.add_argument("--workdir", type=Path, help="keep the copier's log and the SQLite database in this directory")
    parser.add_argument("--json", action="store_true", help="print only one JSON object with the fixed keys")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = Options(
        kills=args.kills,
        faults=args.faults,
        late_accepts=args.late_accepts,
        seed=args.seed,
        followers=args.followers,
        database=args.database,
        timeout_fault_s=args.timeout_fault,
        skew_s=args.skew,
        workdir=args.workdir,
    )
    result = asyncio.run(run_campaign(options, echo=(lambda _: None) if args.json else print))
    figures = {key: result[key] for key in KEYS}
    failed = any(figures[key] for key in FAILURES)
    if args.json:
        print(json.dumps(figures))
    else:
        print(json.dumps(figures, indent=2))
    if failed:
        print(f"chaos campaign FAILED (seed {args.seed}); first offender and its timeline:", file=sys.stderr)
        for line in result["timeline"]:
            print(f"  {line}", file=sys.stderr)
        print(f"{len(result['offenders'])} offender(s) in all", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
