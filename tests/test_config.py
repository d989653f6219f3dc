"""Settings from the environment: defaults, parsing, one-line errors naming the variable, and
the vault key policy of each mode."""

from __future__ import annotations

import os
import re
import stat
from decimal import Decimal
from pathlib import Path

import pytest

from copytrade.app import DEV_KEY_FILE, load_vault
from copytrade.config import Mode, Settings, load_settings
from core.errors import ConfigError, VaultError
from core.vault import generate_key

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
    """No variable from the outer environment and no .env file leaks into a test."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.chdir(tmp_path)


def config_error(monkeypatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "\n" not in message
    return message


# -- load_settings --------------------------------------------------------------------------------


def test_defaults_are_paper_mode_on_a_local_sqlite_file():
    settings = load_settings()
    assert settings.mode is Mode.PAPER and settings.is_paper
    assert settings.database_url.startswith("sqlite:///")
    assert settings.secret_key is None
    assert settings.old_secret_keys == [] and settings.admin_ids == []
    assert settings.telegram_bot_token is None
    assert settings.port == 8080
    assert settings.max_fill_age_seconds == Decimal(30)
    assert settings.log_level == "INFO"


def test_admin_ids_are_split_on_commas_and_spaces_trimmed(monkeypatch):
    monkeypatch.setenv("ADMIN_IDS", "1, 2,3")
    assert load_settings().admin_ids == [1, 2, 3]


def test_empty_admin_ids_is_no_admins(monkeypatch):
    monkeypatch.setenv("ADMIN_IDS", "")
    assert load_settings().admin_ids == []


def test_telegram_ids_above_32_bits_are_accepted_as_admin_ids(monkeypatch):
    monkeypatch.setenv("ADMIN_IDS", "7000000000")
    assert load_settings().admin_ids == [7_000_000_000]


@pytest.mark.parametrize("value", ["abc", "1,abc", "1.5", "1;2"])
def test_non_numeric_admin_ids_raise_naming_admin_ids(monkeypatch, value):
    assert config_error(monkeypatch, ADMIN_IDS=value).startswith("ADMIN_IDS")


def test_old_secret_keys_are_split_on_commas(monkeypatch):
    monkeypatch.setenv("COPYTRADE_OLD_SECRET_KEYS", " a , b,,c ")
    assert load_settings().old_secret_keys == ["a", "b", "c"]


@pytest.mark.parametrize("value", ["not a url", "mysql://x/y", "postgresql://host"])
def test_bad_database_url_raises_naming_database_url(monkeypatch, value):
    assert config_error(monkeypatch, DATABASE_URL=value).startswith("DATABASE_URL")


def test_database_url_error_does_not_echo_a_password(monkeypatch):
    message = config_error(monkeypatch, DATABASE_URL="mysql://admin:hunter2secret@db/prod")
    assert "hunter2secret" not in message


@pytest.mark.parametrize("value", ["postgresql://u@127.0.0.1:5432/db", "postgres://u@h/db", "sqlite:///x/y.db"])
def test_supported_database_urls_are_accepted(monkeypatch, value):
    monkeypatch.setenv("DATABASE_URL", value)
    assert load_settings().database_url == value


def test_unknown_mode_raises_naming_copytrade_mode(monkeypatch):
    message = config_error(monkeypatch, COPYTRADE_MODE="banana")
    assert message.startswith("COPYTRADE_MODE")


@pytest.mark.parametrize("mode", list(Mode))
def test_each_mode_is_accepted(monkeypatch, mode):
    monkeypatch.setenv("COPYTRADE_MODE", mode.value)
    assert load_settings().mode is mode


@pytest.mark.parametrize("value", ["0", "65536", "70000", "-1", "abc"])
def test_port_out_of_range_raises_naming_port(monkeypatch, value):
    assert config_error(monkeypatch, PORT=value).startswith("PORT")


@pytest.mark.parametrize("value", ["1", "65535"])
def test_port_limits_are_accepted(monkeypatch, value):
    monkeypatch.setenv("PORT", value)
    assert load_settings().port == int(value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOG_LEVEL", "loud"),
        ("MAX_FILL_AGE_SECONDS", "0"),
        ("MAX_CONCURRENT_ORDERS", "0"),
        ("PER_ACCOUNT_CONCURRENCY", "x"),
    ],
)
def test_other_bad_values_raise_naming_their_variable(monkeypatch, name, value):
    assert config_error(monkeypatch, **{name: value}).startswith(name)


def test_log_level_is_case_insensitive(monkeypatch):
    monkeypatch.setenv("LOG_LEVEL", "debug")
    assert load_settings().log_level == "DEBUG"


def test_a_dotenv_file_in_the_working_directory_is_read(tmp_path):
    (tmp_path / ".env").write_text("ADMIN_IDS=5,6\nCOPYTRADE_MODE=testnet\n")
    settings = load_settings()
    assert settings.admin_ids == [5, 6] and settings.mode is Mode.TESTNET


def test_the_environment_wins_over_the_dotenv_file(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text("COPYTRADE_MODE=live\n")
    monkeypatch.setenv("COPYTRADE_MODE", "paper")
    assert load_settings().mode is Mode.PAPER


def _env_example_names() -> list[str]:
    text = (Path(__file__).resolve().parents[1] / ".env.example").read_text()
    return [line.lstrip("# ").split("=", 1)[0] for line in text.splitlines() if re.match(r"#? ?[A-Z_]+=", line)]


def test_every_empty_setting_in_a_dotenv_file_means_unset(tmp_path):
    """``cp .env.example .env`` leaves ``NAME=`` lines: each is the default, never an error."""
    names = _env_example_names()
    assert "COPYTRADE_VENUE_URLS" in names and "TELEGRAM_BOT_TOKEN" in names
    (tmp_path / ".env").write_text("".join(f"{name}=\n" for name in names))
    assert load_settings().model_dump() == Settings().model_dump()


def test_every_empty_setting_in_the_environment_means_unset(monkeypatch):
    for name in _env_example_names():
        monkeypatch.setenv(name, "")
    assert load_settings().model_dump() == Settings().model_dump()


def test_malformed_venue_urls_in_a_dotenv_file_is_one_line_naming_the_variable(tmp_path):
    (tmp_path / ".env").write_text("COPYTRADE_VENUE_URLS={binanceusdm\n")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith("COPYTRADE_VENUE_URLS: is not valid JSON")


# -- load_vault -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [Mode.LIVE, Mode.TESTNET])
def test_live_and_testnet_without_a_secret_key_refuse_naming_the_variable(tmp_path, mode):
    settings = Settings(mode=mode, data_dir=tmp_path / "data")
    with pytest.raises(ConfigError, match="^COPYTRADE_SECRET_KEY"):
        load_vault(settings)
    assert not (tmp_path / "data" / DEV_KEY_FILE).exists()


def test_live_mode_with_an_empty_secret_key_refuses(tmp_path):
    with pytest.raises(ConfigError, match="COPYTRADE_SECRET_KEY"):
        load_vault(Settings(mode=Mode.LIVE, secret_key="", data_dir=tmp_path))


def test_live_mode_with_a_secret_key_uses_it_and_writes_no_key_file(tmp_path):
    key = generate_key()
    vault = load_vault(Settings(mode=Mode.LIVE, secret_key=key, data_dir=tmp_path))
    blob = vault.encrypt({"k": "v"}, owner_id=1, credential_id="c")
    assert load_vault(Settings(mode=Mode.LIVE, secret_key=key, data_dir=tmp_path)).decrypt(
        blob, owner_id=1, credential_id="c"
    ) == {"k": "v"}
    assert not (tmp_path / DEV_KEY_FILE).exists()


def test_live_mode_with_a_malformed_secret_key_raises_vault_error(tmp_path):
    with pytest.raises(VaultError, match="COPYTRADE_SECRET_KEY"):
        load_vault(Settings(mode=Mode.LIVE, secret_key="short", data_dir=tmp_path))


def test_paper_mode_without_a_key_generates_a_private_dev_key_and_reuses_it(tmp_path):
    data_dir = tmp_path / "nested" / "data"
    settings = Settings(mode=Mode.PAPER, data_dir=data_dir)
    first = load_vault(settings)
    path = data_dir / DEV_KEY_FILE
    assert path.exists()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    content = path.read_text()

    blob = first.encrypt({"api_key": "x"}, owner_id=3, credential_id="c3")
    second = load_vault(settings)
    assert path.read_text() == content
    assert second.decrypt(blob, owner_id=3, credential_id="c3") == {"api_key": "x"}
    assert second.needs_rotation(blob) is False


def test_paper_mode_dev_key_is_used_together_with_old_keys(tmp_path):
    old = generate_key()
    from core.vault import Vault

    blob = Vault(old).encrypt({"a": "b"}, owner_id=1, credential_id="c")
    vault = load_vault(Settings(mode=Mode.PAPER, data_dir=tmp_path, old_secret_keys=[old]))
    assert vault.decrypt(blob, owner_id=1, credential_id="c") == {"a": "b"}
    assert vault.needs_rotation(blob)


def test_settings_data_dir_is_a_path(monkeypatch, tmp_path):
    monkeypatch.setenv("COPYTRADE_DATA_DIR", str(tmp_path / "d"))
    assert load_settings().data_dir == Path(tmp_path / "d")


@pytest.mark.parametrize("written", ["LIVE", " Testnet ", "Paper"])
def test_the_mode_may_be_written_in_any_case(monkeypatch, written):
    monkeypatch.setenv("COPYTRADE_MODE", written)
    assert load_settings().mode is Mode(written.strip().lower())
