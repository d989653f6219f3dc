"""``python -m bench --compare REF``: the same benchmarks on another git revision, in the same run.

A figure measured on a busy machine says little alone; the same benchmark run back to back on
two revisions, on the same machine under the same load, says which one is faster. The other
revision is exported with ``git archive`` into a temporary directory and run from there with
this interpreter and its installed libraries (its own source first on ``sys.path``); the two
revisions then run alternately, ``rounds`` times each (reference first), and each key's ratio
is the median of this revision's figures over the median of the reference's. Above 1 means this
revision's figure is higher: slower for a time, more for memory, faster for a speed-up.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: this checkout: the bench package's parent
HERE = Path(__file__).resolve().parent.parent


class CompareError(Exception):
    """The reference revision cannot be exported or its benchmark fails (the message says why)."""


@dataclass(frozen=True)
class Side:
    """One revision under measurement: where its source is, what it is called."""

    label: str
    root: Path


def revision_of(ref: str, repository: Path = HERE) -> str:
    """``ref`` as a full commit hash (``CompareError`` when git does not know it)."""
    done = subprocess.run(
        ["git", "-C", str(repository), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise CompareError(f"--compare: {ref!r} is not a commit of {repository}")
    return done.stdout.strip()


def export(commit: str, into: Path, repository: Path = HERE) -> Path:
    """The tree of ``commit`` under ``into`` (no checkout: the working tree stays as it is)."""
    archive = into / "tree.tar"
    with archive.open("wb") as out:
        done = subprocess.run(["git", "-C", str(repository), "archive", commit], stdout=out, stderr=subprocess.PIPE)
    if done.returncode != 0:
        raise CompareError(f"--compare: git archive {commit[:12]} failed: {done.stderr.decode().strip()}")
    root = into / commit[:12]
    with tarfile.open(archive) as tree:
        tree.extractall(root, filter="data")
    archive.unlink()
    return root


def run_side(side: Side, bench_args: Sequence[str]) -> dict[str, Any]:
    """One ``python -m bench --json`` in ``side``'s tree; its headline figures."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(side.root), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--json", *bench_args],
        cwd=side.root,
        env=environment,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise CompareError(f"the benchmark on {side.label} failed (exit {done.returncode}):\n{tail}")
    try:
        figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise CompareError(f"the benchmark on {side.label} printed no JSON: {done.stdout[-300:]!r}") from None
    return figures


def ratios(reference: list[dict[str, Any]], current: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per key both revisions measured as a number: each side's median and current / reference."""
    rows = []
    for key in reference[0]:
        before = [run[key] for run in reference if _number(run.get(key))]
        after = [run[key] for run in current if _number(run.get(key))]
        if not before or not after:
            continue
        median_before, median_after = statistics.median(before), statistics.median(after)
        ratio = None if median_before == 0 else round(median_after / median_before, 3)
        rows.append({"key": key, "reference": median_before, "current": median_after, "ratio": ratio})
    return rows


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def compare(
    ref: str,
    bench_args: Sequence[str],
    *,
    rounds: int = 1,
    note: Callable[[str], None] = lambda text: None,
    repository: Path = HERE,
) -> dict[str, Any]:
    """Run the benchmarks on ``ref`` and on this checkout alternately; the figures and ratios."""
    commit = revision_of(ref, repository)
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as scratch:
        reference = Side(f"{ref} ({commit[:12]})", export(commit, Path(scratch), repository))
        current = Side("this checkout", repository)
        runs: dict[str, list[dict[str, Any]]] = {reference.label: [], current.label: []}
        for number in range(1, rounds + 1):
            for side in (reference, current):
                note(f"round {number}/{rounds}: {side.label}")
                runs[side.label].append(run_side(side, bench_args))
    return {
        "reference": {"ref": ref, "commit": commit, "runs": runs[reference.label]},
        "current": {"commit": _head(repository), "runs": runs[current.label]},
        "rounds": rounds,
        "ratios": ratios(runs[reference.label], runs[current.label]),
    }


def _head(repository: Path) -> str | None:
    done = subprocess.run(["git", "-C", str(repository), "rev-parse", "HEAD"], capture_output=True, text=True)
    if done.returncode != 0:
        return None
    return done.stdout.strip()


def format_comparison(result: dict[str, Any]) -> str:
    width = max([len(row["key"]) for row in result["ratios"]] + [len("figure")])
    reference = result["reference"]
    lines = [
        f"reference {reference['ref']} ({reference['commit'][:12]}) vs this checkout, "
        f"{result['rounds']} round(s) each, alternately; ratio = this / reference",
        f"{'figure'.ljust(width)}  {'reference':>12}  {'this':>12}  ratio",
        "-" * (width + 40),
    ]
    for row in result["ratios"]:
        ratio = "n/a" if row["ratio"] is None else f"{row['ratio']:.3f}"
        lines.append(f"{row['key'].ljust(width)}  {row['reference']:>12}  {row['current']:>12}  {ratio}")
    if not result["ratios"]:
        lines.append("(no figure measured on both revisions)")
    return "\n".join(lines)
