"""An operator's first hour, as processes: the shipped ``.env.example`` copied as it is, the service
stopped by a signal (as a container's first process too), a malformed bot token refused offline,
and the compose file keeping what paper mode must find again after a recreate."""

from __future__ import annotations

import http.server
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
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


# -- stopping on a signal -----------------------------------------------------------------------------


def _unshare_prefix() -> list[str] | str:
    """How to start a process as PID 1 of a new PID namespace here, or why it cannot be."""
    if shutil.which("unshare") is None:
        return "no unshare on this machine"
    for prefix in (["unshare", "--pid", "--fork"], ["unshare", "--map-root-user", "--pid", "--fork"]):
        probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            return prefix
    return "no new PID namespace on this machine: " + probe.stderr.strip()


class Running:
    """``copytrade run`` started in the background, its output read line by line."""

    def __init__(
        self, cwd: Path, argv: list[str], prefix: list[str] | None = None, ignore_sigint: bool = False, **env: str
    ):
        def ignoring_sigint() -> None:  # as a script started with `trap '' INT` or `nohup … &` does
            signal.signal(signal.SIGINT, signal.SIG_IGN)

        self.process = subprocess.Popen(
            [*(prefix or []), sys.executable, "-m", "copytrade", *argv],
            cwd=cwd,
            env=_environment(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=ignoring_sigint if ignore_sigint else None,
        )
        self.lines: list[str] = []
        self._unread: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._wrapped = prefix is not None

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._unread.put(line)
        self._unread.put("")  # the end of the output

    def wait_for(self, text: str, within: float = 90) -> None:
        """Read the output until a line contains ``text`` (bounded: fails after ``within`` s)."""
        while not any(text in line for line in self.lines):
            try:
                line = self._unread.get(timeout=within)
            except queue.Empty:
                raise AssertionError(f"no {text!r} within {within}s: {self.lines}") from None
            assert line, f"exited before {text!r}: {self.lines}"
            self.lines.append(line)

    def pid_of_copytrade(self) -> int:
        """The copytrade process itself (under ``unshare --fork``, the child of unshare)."""
        if not self._wrapped:
            return self.process.pid
        [child] = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        return int(child)

    def stopped(self, signum: int, within: float = 10) -> tuple[int, str]:
        """Send ``signum`` to copytrade; its exit status and whole output once it exited (bounded)."""
        os.kill(self.pid_of_copytrade(), signum)
        try:
            self.process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(10)
        while not self._unread.empty():
            self.lines.append(self._unread.get())
        output = "".join(self.lines)
        assert self.process.returncode != -signal.SIGKILL, f"still running {within}s after the signal:\n{output}"
        return self.process.returncode, output


def _paper_run(tmp_path: Path, **kwargs) -> Running:
    return Running(tmp_path, ["run", "--interval", "0.2", "--seed", "3"], **kwargs)


SUMMARY = "copytrade (paper): "


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_headless_paper_run_stops_on_a_signal_with_its_summary(tmp_path, signum):
    running = _paper_run(tmp_path)
    running.wait_for("master: ")
    code, output = running.stopped(signum)
    assert code == 0, output
    assert re.search(r"^copytrade \(paper\): \d+ master fills; copies:", output, re.MULTILINE), output
    assert "Traceback" not in output, output


def test_headless_paper_run_as_pid_1_stops_on_sigterm_with_its_summary(tmp_path):
    """As a container's first process: the kernel delivers SIGTERM to PID 1 only when it has a handler."""
    prefix = _unshare_prefix()
    if isinstance(prefix, str):
        pytest.skip(prefix)
    running = _paper_run(tmp_path, prefix=prefix)
    running.wait_for("master: ")
    status = Path(f"/proc/{running.pid_of_copytrade()}/status").read_text()
    assert re.search(r"^NSpid:\s+\d+\s+1$", status, re.MULTILINE), status  # PID 1 in its namespace
    code, output = running.stopped(signal.SIGTERM)
    assert code == 0, output
    assert re.search(r"^copytrade \(paper\): \d+ master fills; copies:", output, re.MULTILINE), output


def test_ctrl_c_stops_a_run_started_with_sigint_ignored(tmp_path):
    running = _paper_run(tmp_path, ignore_sigint=True)
    running.wait_for("master: ")
    code, output = running.stopped(signal.SIGINT)
    assert code == 0, output
    assert SUMMARY in output


def test_headless_testnet_copier_stops_on_sigterm_with_a_summary_line(tmp_path):
    from core.vault import generate_key

    running = Running(
        tmp_path,
        ["run"],
        COPYTRADE_MODE="testnet",
        COPYTRADE_SECRET_KEY=generate_key(),
        DATABASE_URL=f"sqlite:///{tmp_path / 'testnet.db'}",
    )
    running.wait_for("master stream(s) watched")
    code, output = running.stopped(signal.SIGTERM)
    assert code == 0, output
    assert "stopped; copies: " in output and "Traceback" not in output


# -- a malformed bot token ----------------------------------------------------------------------------


class _CountingBotApi(http.server.BaseHTTPRequestHandler):
    """A Bot API that counts the requests it gets (a malformed token must cause none)."""

    requests: list[str] = []

    def do_POST(self) -> None:
        self.requests.append(self.path)
        self.send_response(500)
        self.end_headers()

    do_GET = do_POST

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.mark.parametrize(
    "token",
    [
        "bot123456789:AAEhBOweik6ad6PsVMRx4fQp7Tg8eGA4Qxq",  # pasted with the URL's "bot" prefix
        "123456789 AAEhBOweik6ad6PsVMRx4fQp7Tg8eGA4Qxq",  # no colon
        '"123456789:AAEhBOweik6ad6PsVMRx4fQp7Tg8eGA4Qxq"',  # quoted
        "123456789:AAEhBOweik6ad6Ps VMRx4fQp7Tg8eGA4Qxq",  # a space inside
        "AAEhBOweik6ad6PsVMRx4fQp7Tg8eGA4Qxq",  # the secret part only
    ],
)
def test_a_malformed_bot_token_exits_2_before_any_network_call_with_the_token_masked(tmp_path, token):
    _CountingBotApi.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CountingBotApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        done = _copytrade(
            tmp_path,
            "run",
            TELEGRAM_BOT_TOKEN=token,
            TELEGRAM_API_BASE_URL=f"http://127.0.0.1:{server.server_address[1]}/bot",
        )
    finally:
        server.shutdown()
        thread.join(5)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("copytrade: error: TELEGRAM_BOT_TOKEN: is not a bot token"), line
    assert "AAEhBOweik6ad6Ps" not in done.stderr + done.stdout
    assert _CountingBotApi.requests == []
    assert not (tmp_path / "data").exists()  # nothing written either
