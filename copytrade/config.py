"""Every setting, read from the environment in one place (12-factor).

A missing or malformed value raises ``ConfigError`` whose message names the variable; the
CLI prints it as one line, never a traceback. The bot token is checked first, and what the other
checks need (SQLAlchemy's URL parser, the venues' tables) is imported only when they run, so a
mistyped token is refused in a fraction of a second, before any network call.
"""

from __future__ import annotations

import enum
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.errors import ConfigError
from core.venues.egress import IPNetwork, parse_networks

#: a Bot API token: the bot's numeric id, a colon, then URL-safe characters
#: (https://core.telegram.org/bots/api#authorizing-your-bot)
BOT_TOKEN_SHAPE = re.compile(r"[0-9]+:[A-Za-z0-9_-]+")
#: what a token of another shape is told (never the value: it is a secret)
BAD_BOT_TOKEN = (
    "TELEGRAM_BOT_TOKEN: is not a bot token (expected <digits>:<letters, digits, - and _> as @BotFather gives "
    "it, without quotes, spaces or a 'bot' prefix)"
)


def _default_exchanges() -> list[str]:
    from core.venues.ccxt.constants import DEFAULT_EXCHANGES

    return list(DEFAULT_EXCHANGES)


class Mode(enum.StrEnum):
    PAPER = "paper"  # simulated venues only; nothing leaves the process
    TESTNET = "testnet"  # exchanges' sandbox endpoints
    LIVE = "live"  # real money


class Settings(BaseSettings):
    #: an empty value (``NAME=`` in .env.example) means "unset": the default applies
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True, env_ignore_empty=True
    )

    telegram_bot_token: str | None = Field(default=None, validation_alias="TELEGRAM_BOT_TOKEN")
    telegram_api_base_url: str | None = Field(default=None, validation_alias="TELEGRAM_API_BASE_URL")
    webhook_url: str | None = Field(default=None, validation_alias="WEBHOOK_URL")
    port: int = Field(default=8080, validation_alias="PORT", ge=1, le=65535)
    database_url: str = Field(default="sqlite:///data/copytrade.db", validation_alias="DATABASE_URL")
    secret_key: str | None = Field(default=None, validation_alias="COPYTRADE_SECRET_KEY")
    old_secret_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="COPYTRADE_OLD_SECRET_KEYS"
    )
    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list, validation_alias="ADMIN_IDS")
    mode: Mode = Field(default=Mode.PAPER, validation_alias="COPYTRADE_MODE")
    data_dir: Path = Field(default=Path("data"), validation_alias="COPYTRADE_DATA_DIR")
    max_fill_age_seconds: Decimal = Field(default=Decimal(30), validation_alias="MAX_FILL_AGE_SECONDS", gt=0)
    max_concurrent_orders: int = Field(default=500, validation_alias="MAX_CONCURRENT_ORDERS", ge=1)
    per_account_concurrency: int = Field(default=2, validation_alias="PER_ACCOUNT_CONCURRENCY", ge=1)
    risk_check_seconds: float = Field(default=10, validation_alias="RISK_CHECK_SECONDS", gt=0)
    reconcile_seconds: float = Field(default=300, validation_alias="RECONCILE_SECONDS", gt=0)
    #: follower accounts with open copies whose order updates are streamed (the rest are polled)
    order_stream_cap: int = Field(default=200, validation_alias="ORDER_STREAM_CAP", ge=0)
    #: paper mode with a bot token: seconds between the simulated masters' trades (0: they never trade);
    #: at 15 s a new follower's first copied entry comes within a minute in ~97% of cases
    #: (simulated: 400 runs of a master that had traded 50 times)
    paper_trade_seconds: float = Field(default=15, validation_alias="PAPER_TRADE_SECONDS", ge=0)
    #: scaled out (``copytrade run --role ...``): the Redis that carries fills, signals and notifications
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    redis_prefix: str = Field(default="copytrade", validation_alias="REDIS_PREFIX", min_length=1)
    shard_lease_seconds: float = Field(default=10, validation_alias="SHARD_LEASE_SECONDS", gt=0)
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    log_format: str = Field(default="text", validation_alias="LOG_FORMAT")
    ccxt_exchanges: Annotated[list[str], NoDecode] = Field(
        default_factory=_default_exchanges, validation_alias="COPYTRADE_CCXT_EXCHANGES"
    )
    #: JSON, parsed by ``_parse_venue_urls`` (NoDecode: a malformed value is one line naming the variable)
    venue_urls: Annotated[dict[str, dict[str, Any]], NoDecode] = Field(
        default_factory=dict, validation_alias="COPYTRADE_VENUE_URLS"
    )
    #: ranges an account's egress proxy may be in besides public addresses (core/venues/egress.py)
    egress_allow: Annotated[tuple[IPNetwork, ...], NoDecode] = Field(
        default=(), validation_alias="COPYTRADE_EGRESS_ALLOW"
    )
    angelone_rest_url: str | None = Field(default=None, validation_alias="ANGELONE_REST_URL")
    angelone_ws_url: str | None = Field(default=None, validation_alias="ANGELONE_WS_URL")
    angelone_scrip_master_url: str | None = Field(default=None, validation_alias="ANGELONE_SCRIP_MASTER_URL")
    angelone_public_ip: str | None = Field(default=None, validation_alias="ANGELONE_PUBLIC_IP")
    angelone_product: str = Field(default="INTRADAY", validation_alias="ANGELONE_PRODUCT")

    @model_validator(mode="before")
    @classmethod
    def _bot_token_first(cls, data: Any) -> Any:
        """Before every other setting: a mistyped token is one line, not a network error later."""
        if isinstance(data, dict):
            token = data.get("TELEGRAM_BOT_TOKEN", data.get("telegram_bot_token"))
            if isinstance(token, str) and not BOT_TOKEN_SHAPE.fullmatch(token):
                raise ValueError(BAD_BOT_TOKEN)
        return data

    @field_validator("mode", mode="before")
    @classmethod
    def _mode_in_any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_admin_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            try:
                return [int(p) for p in parts]
            except ValueError:
                raise ValueError("must be a comma-separated list of numeric Telegram user ids") from None
        return value

    @field_validator("old_secret_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                "is not a database URL (expected sqlite:///path.db or postgresql://user@host/db)"
            ) from None
        backend = url.get_backend_name()
        if backend not in ("sqlite", "postgresql", "postgres"):
            raise ValueError(f"backend {backend!r} is not supported (use sqlite or postgresql)")
        if backend != "sqlite" and not url.database:
            raise ValueError("names no database")
        return value

    @field_validator("ccxt_exchanges", mode="before")
    @classmethod
    def _check_exchanges(cls, value: object) -> object:
        if isinstance(value, str):
            value = [p.strip().lower() for p in value.split(",") if p.strip()]
        from core.venues.ccxt.driver import check_exchange_ids

        return check_exchange_ids(value)  # type: ignore[arg-type]

    @field_validator("egress_allow", mode="before")
    @classmethod
    def _parse_egress_allow(cls, value: object) -> object:
        if isinstance(value, str | list | tuple):
            return parse_networks(value)
        return value

    @field_validator("venue_urls", mode="before")
    @classmethod
    def _parse_venue_urls(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return {}
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"is not valid JSON ({exc.msg} at character {exc.pos})") from None
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise ValueError('must map exchange ids to URL objects, e.g. {"binanceusdm": {"fapiPrivate": "https://…"}}')
        return value

    @field_validator("angelone_product")
    @classmethod
    def _check_product(cls, value: str) -> str:
        from core.venues.angelone.constants import ProductType

        upper = value.upper()
        if upper not in ProductType.__members__:
            raise ValueError(f"must be one of {', '.join(ProductType.__members__)}")
        return upper

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return upper

    @field_validator("log_format")
    @classmethod
    def _check_log_format(cls, value: str) -> str:
        lower = value.strip().lower()
        if lower not in ("text", "json"):
            raise ValueError("must be text or json")
        return lower

    def secrets(self) -> list[str]:
        """Every secret the settings hold, for the log redactor."""
        from sqlalchemy.engine import make_url

        password = make_url(self.database_url).password if "://" in self.database_url else None
        redis_password = make_url(self.redis_url).password if self.redis_url and "://" in self.redis_url else None
        return [
            v for v in (self.telegram_bot_token, self.secret_key, *self.old_secret_keys, password, redis_password) if v
        ]

    @property
    def is_paper(self) -> bool:
        return self.mode is Mode.PAPER

    @property
    def angelone_enabled(self) -> bool:
        """Angel One has no sandbox: it exists in live mode, or wherever its URL points elsewhere."""
        return self.mode is Mode.LIVE or (self.mode is Mode.TESTNET and bool(self.angelone_rest_url))


#: maps a field name to the environment variable a user sets, for error messages
_ENV_NAMES = {name: (field.validation_alias or name.upper()) for name, field in Settings.model_fields.items()}


def load_settings(**overrides: object) -> Settings:
    """Read the environment (and ``.env``); raise ``ConfigError`` naming the bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        if not first["loc"]:  # a check of the whole settings: its message names the variable
            raise ConfigError(message) from None
        location = str(first["loc"][0])
        variable = _ENV_NAMES.get(location, location)
        raise ConfigError(f"{variable}: {message}") from None
