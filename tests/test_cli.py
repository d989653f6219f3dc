"""The ``copytrade`` command, run in-process: exit codes, one-line errors, migrations, the demo,
key rotation and the headless paper run."""

from __future__ import annotations

import asyncio
import base64
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from copytrade.app import build_app
from copytrade.cli import DEMO_JSON_KEYS, main
from copytrade.config import Settings
from core.errors import VaultError
from core.vault import Vault, generate_key
from storage.db import create_sync_engine
from storage.migrate import head_revision
from tests.fakes.telegram import free_port

ENV_VARS = (
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_API_BASE_URL",
    "WEBHOOK_URL",
    "PORT",
    "DATABASE_URL",
    "COPYTRADE_SECRET_KEY",
    "COPYTRADE_OLD_SECRET_KEYS",
    "ADMIN_IDS",
    "COPYTRADE_MODE",
    "COPYTRADE_DATA_DIR",
    "MAX_FILL_AGE_SECONDS",
    "MAX_CONCURRENT_ORDERS",
    "PER_ACCOUNT_CONCURRENCY",
    "LOG_LEVEL",
    "ANGELONE_REST_URL",
    "ANGELONE_WS_URL",
    "ANGELONE_SCRIP_MASTER_URL",
    "ANGELONE_PUBLIC_IP",
    "ANGELONE_PRODUCT",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("PORT", str(free_port()))  # `copytrade run` serves HTTP: never on a shared port
    monkeypatch.chdir(tmp_path)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("copytrade: error: ")
    return lines[0]


def raw_ciphertext(database_url: str, credential_id: str) -> tuple[int, bytes]:
    engine = create_sync_engine(database_url)
    try:
        with engine.connect() as connection:
            user_id, blob = connection.execute(
                text("SELECT user_id, ciphertext FROM credentials WHERE id = :id"), {"id": credential_id}
            ).one()
    finally:
        engine.dispose()
    return user_id, bytes(blob)


def seal_one_credential(database_url: str, key: str, data_dir: Path) -> str:
    """A database holding one paper credential sealed under ``key``; returns its id."""

    async def setup() -> str:
        app = await build_app(Settings(database_url=database_url, secret_key=key, data_dir=data_dir))
        try:
            user = await app.services.register_user(1001, "rotating user")
            assert user.id is not None
            view = await app.services.connect_account(
                user.id, "paper", "main", {"api_key": "paper-key-rotate", "balance": "5000"}, environment="paper"
            )
            return view.id
        finally:
            await app.close()

    return asyncio.run(setup())


# -- gen-key --------------------------------------------------------------------------------------


def test_gen_key_prints_a_valid_key(capsys):
    assert main(["gen-key"]) == 0
    out = capsys.readouterr().out
    key = out.strip()
    assert out.count("\n") == 1
    assert len(base64.urlsafe_b64decode(key)) == 32
    Vault(key)


def test_gen_key_prints_a_new_key_each_time(capsys):
    main(["gen-key"])
    main(["gen-key"])
    first, second = capsys.readouterr().out.split()
    assert first != second


# -- configuration errors -------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["migrate"], ["rotate-key"], ["run"], ["demo", "--json"]])
def test_malformed_database_url_exits_2_with_one_line_naming_it(monkeypatch, capsys, command):
    monkeypatch.setenv("DATABASE_URL", "not a url")
    assert main(command) == 2
    assert one_line_error(capsys).startswith("copytrade: error: DATABASE_URL")
    assert capsys.readouterr().out == ""


def test_live_mode_without_a_key_exits_2_with_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("COPYTRADE_MODE", "live")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'live.db'}")
    assert main(["run"]) == 2
    assert one_line_error(capsys).startswith("copytrade: error: COPYTRADE_SECRET_KEY")
    assert not (tmp_path / "data" / "dev-secret.key").exists()


def test_rotate_key_in_live_mode_without_a_key_exits_2(monkeypatch, capsys):
    monkeypatch.setenv("COPYTRADE_MODE", "live")
    assert main(["rotate-key"]) == 2
    assert "COPYTRADE_SECRET_KEY" in one_line_error(capsys)


def test_malformed_secret_key_exits_2_with_one_line(monkeypatch, capsys):
    monkeypatch.setenv("COPYTRADE_SECRET_KEY", "too-short")
    assert main(["run", "--max-fills", "1"]) == 2
    assert "COPYTRADE_SECRET_KEY" in one_line_error(capsys)


def test_bad_admin_ids_exit_2_with_one_line(monkeypatch, capsys):
    monkeypatch.setenv("ADMIN_IDS", "abc")
    assert main(["migrate"]) == 2
    assert one_line_error(capsys).startswith("copytrade: error: ADMIN_IDS")


def test_unreachable_database_is_one_line_with_the_password_hidden(monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", "postgresql://copier:hunter2secret@127.0.0.1:1/copytrade")
    assert main(["migrate"]) == 2
    line = one_line_error(capsys)
    assert line.startswith("copytrade: error: DATABASE_URL")
    assert "hunter2secret" not in line
    assert "127.0.0.1" in line


def test_unusable_data_dir_error_names_copytrade_data_dir(monkeypatch, capsys, tmp_path):
    (tmp_path / "afile").write_text("not a directory")
    monkeypatch.setenv("COPYTRADE_DATA_DIR", str(tmp_path / "afile" / "data"))
    assert main(["run", "--max-fills", "1"]) == 2
    line = one_line_error(capsys)
    assert line.startswith("copytrade: error: COPYTRADE_DATA_DIR")
    assert "DATABASE_URL" not in line


@pytest.mark.parametrize("argv", [["demo", "--followers", "0"], ["run", "--interval", "-1"], ["nope"], []])
def test_bad_arguments_exit_2(argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2


# -- migrate --------------------------------------------------------------------------------------


def test_migrate_creates_the_schema_and_prints_the_revision(monkeypatch, capsys, sqlite_url):
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    assert main(["migrate"]) == 0
    out = capsys.readouterr().out
    assert head_revision() in out
    assert main(["migrate"]) == 0  # again: a no-op
    assert head_revision() in capsys.readouterr().out


def test_migrate_uses_the_default_sqlite_file_in_the_working_directory(capsys, tmp_path):
    assert main(["migrate"]) == 0
    assert (tmp_path / "data" / "copytrade.db").exists()


# -- demo -----------------------------------------------------------------------------------------


def test_demo_json_prints_one_summary_object_and_copies_every_fill_once(capsys):
    assert main(["demo", "--json", "--followers", "14", "--fills", "12", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1
    summary = json.loads(out)
    assert set(summary) == set(DEMO_JSON_KEYS)  # every key printed is described in --help
    assert summary["fills"] == 12
    assert summary["duplicates"] == 0
    assert summary["placed"] > 0
    assert summary.get("pending", 0) == 0
    assert {"dry_run", "symbol_not_allowed", "insufficient_funds", "authentication_error"} <= set(summary["by_reason"])
    assert summary["redelivered_fills_ignored"] == 12


def test_demo_help_describes_every_json_key(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for key, meaning in DEMO_JSON_KEYS.items():
        assert f"{key}: {meaning}" in help_text


def test_run_with_an_unreachable_database_exits_2_with_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "postgresql://copier:hunter2secret@127.0.0.1:1/copytrade")
    monkeypatch.setenv("COPYTRADE_SECRET_KEY", generate_key())
    assert main(["run", "--max-fills", "1"]) == 2
    line = one_line_error(capsys)
    assert line.startswith("copytrade: error: DATABASE_URL: cannot open postgresql://copier:***@127.0.0.1:1/")
    assert "hunter2secret" not in line


# -- rotate-key -----------------------------------------------------------------------------------


def test_rotate_key_reseals_credentials_under_the_new_key(monkeypatch, capsys, sqlite_url, tmp_path):
    key_a, key_b = generate_key(), generate_key()
    credential_id = seal_one_credential(sqlite_url, key_a, tmp_path)
    user_id, before = raw_ciphertext(sqlite_url, credential_id)
    assert Vault(key_a).can_open(before)

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("COPYTRADE_SECRET_KEY", key_b)
    monkeypatch.setenv("COPYTRADE_OLD_SECRET_KEYS", key_a)
    assert main(["rotate-key"]) == 0
    captured = capsys.readouterr()
    assert "re-encrypted 1" in captured.out
    assert "Traceback" not in captured.err

    _, after = raw_ciphertext(sqlite_url, credential_id)
    assert after != before
    secrets = Vault(key_b).decrypt(after, owner_id=user_id, credential_id=credential_id)
    assert secrets["api_key"] == "paper-key-rotate"
    assert not Vault(key_a).can_open(after)
    assert b"paper-key-rotate" not in after

    # a second rotation has nothing left to do
    assert main(["rotate-key"]) == 0
    assert "re-encrypted 0" in capsys.readouterr().out

    # the new key alone now starts the app
    async def start_with_new_key_only() -> None:
        app = await build_app(Settings(database_url=sqlite_url, secret_key=key_b, data_dir=tmp_path))
        await app.close()

    asyncio.run(start_with_new_key_only())


def test_rotate_key_without_the_old_key_reports_failure_and_changes_nothing(monkeypatch, capsys, sqlite_url, tmp_path):
    key_a, key_c = generate_key(), generate_key()
    credential_id = seal_one_credential(sqlite_url, key_a, tmp_path)
    _, before = raw_ciphertext(sqlite_url, credential_id)
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("COPYTRADE_SECRET_KEY", key_c)
    assert main(["rotate-key"]) == 1
    captured = capsys.readouterr()
    assert "re-encrypted 0" in captured.out and "1 could not be opened" in captured.out
    assert credential_id in captured.err
    assert raw_ciphertext(sqlite_url, credential_id)[1] == before


def test_a_wrong_key_fails_closed_at_start(monkeypatch, capsys, sqlite_url, tmp_path):
    key_a, key_c = generate_key(), generate_key()
    seal_one_credential(sqlite_url, key_a, tmp_path)

    async def start() -> None:
        app = await build_app(Settings(database_url=sqlite_url, secret_key=key_c, data_dir=tmp_path))
        await app.close()

    with pytest.raises(VaultError, match="COPYTRADE_SECRET_KEY"):
        asyncio.run(start())

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("COPYTRADE_SECRET_KEY", key_c)
    assert main(["run", "--max-fills", "1", "--interval", "0.05"]) == 2
    assert "COPYTRADE_SECRET_KEY does not match" in one_line_error(capsys)


# -- run (headless paper) -------------------------------------------------------------------------


def test_run_in_paper_mode_without_a_token_copies_and_exits(capsys, tmp_path):
    assert main(["run", "--max-fills", "2", "--interval", "0.05", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert sum(1 for line in out.splitlines() if line.startswith("master: ")) == 2
    assert "✅ Copied" in out
    assert re.search(r"^copytrade \(paper\): 2 master fills; copies: \d+ filled", out, re.MULTILINE), out
    assert (tmp_path / "data" / "dev-secret.key").exists()


def test_headless_run_prints_only_the_skips_a_follower_can_act_on_unless_verbose(capsys, tmp_path, monkeypatch):
    from core.model import SKIP_EXPLANATIONS
    from core.notifications import DIGESTED_SKIPS

    unactionable = tuple(SKIP_EXPLANATIONS[reason] for reason in DIGESTED_SKIPS)
    argv = ["run", "--max-fills", "12", "--interval", "0.01", "--seed", "1"]
    assert main(argv) == 0
    quiet = capsys.readouterr().out
    hidden = re.search(r"\((\d+) skips a follower cannot act on not shown\)", quiet)
    assert hidden, quiet
    assert not [line for line in quiet.splitlines() if line.startswith("→") and any(u in line for u in unactionable)]
    (tmp_path / "verbose").mkdir()
    monkeypatch.chdir(tmp_path / "verbose")  # a fresh database: the same master trades
    assert main([*argv, "--verbose"]) == 0
    verbose = capsys.readouterr().out
    shown = [line for line in verbose.splitlines() if line.startswith("→") and any(u in line for u in unactionable)]
    assert shown and "not shown" not in verbose  # (how many varies: copies fill at the price they meet)


def _count_rows(tmp_path: Path, *tables: str) -> tuple[int, ...]:
    engine = create_sync_engine(f"sqlite:///{tmp_path / 'data' / 'copytrade.db'}")
    try:
        with engine.connect() as connection:
            return tuple(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() for table in tables)
    finally:
        engine.dispose()


def test_run_twice_reuses_the_paper_master_and_its_followers(capsys, tmp_path):
    assert main(["run", "--max-fills", "1", "--interval", "0.05", "--seed", "1"]) == 0
    assert main(["run", "--max-fills", "1", "--interval", "0.05", "--seed", "2"]) == 0
    assert _count_rows(tmp_path, "masters", "follows", "credentials") == (1, 3, 4)


def test_run_a_second_time_journals_the_new_master_fills(capsys, tmp_path):
    assert main(["run", "--max-fills", "2", "--interval", "0.05", "--seed", "1"]) == 0
    assert _count_rows(tmp_path, "master_fills") == (2,)
    capsys.readouterr()
    assert main(["run", "--max-fills", "2", "--interval", "0.05", "--seed", "2"]) == 0
    assert _count_rows(tmp_path, "master_fills") == (4,)


TOKEN = "123456789:AAEhBOweik6ad6PsVMRx4fQp7Tg8eGA4Qxq"


class _RefusingBotApi(http.server.BaseHTTPRequestHandler):
    """Answers every Bot API call as Telegram answers a revoked or mistyped token."""

    def do_POST(self) -> None:
        body = json.dumps({"ok": False, "error_code": 401, "description": "Unauthorized"}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads stderr, where the server would log each request."""


@pytest.fixture
def refusing_bot_api() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RefusingBotApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/bot"
    finally:
        server.shutdown()
        thread.join(5)


def _run_cli_process(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``copytrade run`` as its own process (as an operator starts it; no state shared with
    the tests that ran before in this one)."""
    return subprocess.run(
        [sys.executable, "-m", "copytrade", "run"],
        cwd=tmp_path,
        env={
            **{k: v for k, v in os.environ.items() if k not in ENV_VARS},
            "COPYTRADE_SECRET_KEY": generate_key(),
            "PORT": str(free_port()),  # its HTTP server never on a port another process holds
            **env,
        },
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_a_refused_bot_token_is_one_line_without_the_token(tmp_path, refusing_bot_api):
    done = _run_cli_process(tmp_path, TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_BASE_URL=refusing_bot_api)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("copytrade: error: TELEGRAM_BOT_TOKEN: Telegram refused the token")
    assert TOKEN.split(":")[1] not in done.stderr + done.stdout


def test_an_unreachable_bot_api_is_one_line_without_the_token(tmp_path):
    done = _run_cli_process(
        tmp_path, TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_BASE_URL=f"http://127.0.0.1:{free_port()}/bot"
    )
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("copytrade: error: TELEGRAM_BOT_TOKEN: the Telegram Bot API cannot be reached")
    assert TOKEN.split(":")[1] not in done.stderr + done.stdout
