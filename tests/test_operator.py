"""An operator's first hour, as processes: the shipped ``.env.example`` copied as it is, the service
stopped by a signal (as a container's first process too), a malformed bot token refused offline,
and the compose file keeping what paper mode must find again after a recreate."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.telegram import free_port

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _environment(**extra: str) -> dict[str, str]:
    """The machine's environment without any copytrade setting (the test's own come from .env
    or ``extra``), and a free port for the HTTP server."""
    names = {line.split("=", 1)[0].lstrip("# ").strip() for line in (ROOT / ".env.example").read_text().splitlines()}
    return {
        **{k: v for k, v in os.environ.items() if k not in names and k.lower() not in names},
        "PORT": str(free_port()),
        **extra,
    }


def _copytrade(cwd: Path, *argv: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "copytrade", *argv],
        cwd=cwd,
        env=_environment(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# -- .env.example as shipped ------------------------------------------------------------------------


@pytest.fixture
def fresh_clone(tmp_path: Path) -> Path:
    """A working directory after the README's first step: ``cp .env.example .env``."""
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    return tmp_path


def test_the_shipped_env_example_works_for_migrate(fresh_clone):
    done = _copytrade(fresh_clone, "migrate")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("database at revision "), done.stdout


def test_the_shipped_env_example_works_for_demo(fresh_clone):
    done = _copytrade(fresh_clone, "demo", "--json", "--followers", "2", "--fills", "3")
    assert done.returncode == 0, done.stderr
    assert '"fills": 3' in done.stdout


def test_the_shipped_env_example_works_for_run(fresh_clone):
    done = _copytrade(fresh_clone, "run", "--max-fills", "1", "--interval", "0.05", "--seed", "1")
    assert done.returncode == 0, done.stderr
    assert "copytrade (paper): 1 master fills; copies:" in done.stdout
