"""The documentation stays whole: every relative link in README.md and docs/*.md reaches a file
(and a heading, when it names one), and the README names every setting and every command."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from bench.__main__ import build_parser as bench_parser
from bench.chaos.__main__ import build_parser as chaos_parser
from copytrade.cli import build_parser
from copytrade.config import Settings

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    headings = re.findall(r"^#+\s+(.+?)\s*$", text, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_a_file_and_its_heading(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(target)
    assert not broken, broken


def test_the_readme_names_every_setting_and_every_variable_of_env_example():
    readme = (ROOT / "README.md").read_text()
    variables = {str(field.validation_alias) for field in Settings.model_fields.values()}
    example = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), flags=re.M))
    assert example <= variables  # .env.example lists nothing the settings do not read
    missing = sorted(v for v in variables | example if f"`{v}`" not in readme)
    assert not missing, missing


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [o for action in parser._actions for o in action.option_strings if o.startswith("--") and o != "--help"]


def test_the_readme_names_every_command_and_option():
    readme = (ROOT / "README.md").read_text()
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    commands: dict[str, argparse.ArgumentParser] = subparsers.choices
    # bench and chaos hand their arguments to their own parsers (python -m bench, python -m bench.chaos)
    delegated = {"bench": (bench_parser(), "benchmarks.md"), "chaos": (chaos_parser(), "chaos.md")}
    for name, sub in commands.items():
        assert f"copytrade {name}" in readme, name
        parser, page = delegated.get(name, (sub, None))
        for option in _options(parser):
            assert option in readme, f"copytrade {name} {option}"
            if page:
                assert f"`{option}" in (ROOT / "docs" / page).read_text(), f"docs/{page}: {option}"
