"""Logging for the service: one redacting filter on every handler, so no secret reaches a log line.

Two nets, because either alone leaks:

* **known values** — the bot token, the secret keys, the database password and every credential
  the vault opens are registered as they appear, and masked wherever they occur (a library's
  DEBUG dump of request headers or bodies, an exception text, a traceback);
* **shapes** — what a secret looks like in the places libraries print them: a Telegram token,
  ``X-MBX-APIKEY``/``Authorization``/``X-PrivateKey`` headers, ``signature=``, ``apiKey``,
  ``secret``, ``password``, ``pin``, ``totp`` and token fields in query strings, JSON or dict
  reprs, and passwords in URLs — for values not registered yet (a key being validated).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Iterable

MASK = "***"

#: the shortest value masked by value: shorter ones (a 4-digit PIN) are left to the shape rules,
#: or every "2024" in every log line would be masked
MIN_SECRET_LENGTH = 6

_SHAPES = (
    # a Telegram bot token: <bot id>:<35 characters>; a REST API token (core.api_tokens): ctk_<43 characters>
    re.compile(r"\d{5,}:[A-Za-z0-9_-]{30,}|\bctk_[A-Za-z0-9_-]{20,}"),
    # header-like and field-like secrets in headers, query strings, JSON and dict reprs
    re.compile(
        r"(?i)(\b(?:x-mbx-apikey|x-privatekey|x-telegram-bot-api-secret-token|authorization|signature|api[_-]?key"
        r"|secret(?:_key)?|totp(?:_secret)?|password|passwd|pin|jwt(?:token)?|refresh(?:_?token)?|feed_?token"
        r"|access_?token|listen_?key)\b['\"]?\s*[:=]\s*['\"]?(?:bearer\s+)?)[^\s'\",&}\]]+"
    ),
    # a password in a URL: scheme://user:password@host
    re.compile(r"(://[^/\s:@]+:)[^@\s/]+(@)"),
)


#: a run of key characters: a registered key-like value is masked where it stands as a whole run
#: (a secret glued to further letters or digits is left to the shape rules)
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


class SecretRedactor(logging.Filter):
    """Masks secrets in every record it sees (message, arguments, exception and stack text)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()  # SmartAPI calls log from worker threads
        #: key-like values (letters, digits, ``_``, ``-``: exchange keys and secrets, TOTP seeds),
        #: matched as whole tokens by one set look-up each — a log line costs the same with 30,000
        #: registered values as with three (a substring scan per value took ~8 ms a line there)
        self._tokens: set[str] = set()
        #: the rest (passwords with other characters, proxy URLs), longest first; few
        self._others: tuple[str, ...] = ()

    def add(self, values: Iterable[str | None]) -> None:
        """Register secret values to mask from now on (idempotent)."""
        fresh = {v.strip() for v in values if v and len(v.strip()) >= MIN_SECRET_LENGTH}
        with self._lock:
            for value in fresh:
                if _TOKEN.fullmatch(value):
                    self._tokens.add(value)
                elif value not in self._others:
                    self._others = tuple(sorted((*self._others, value), key=len, reverse=True))

    def redact(self, text: str) -> str:
        for value in self._others:
            if value in text:
                text = text.replace(value, MASK)
        if self._tokens:
            tokens = self._tokens
            text = _TOKEN.sub(lambda m: MASK if m.group(0) in tokens else m.group(0), text)
        text = _SHAPES[0].sub(MASK, text)
        text = _SHAPES[1].sub(lambda m: m.group(1) + MASK, text)
        return _SHAPES[2].sub(lambda m: m.group(1) + MASK + m.group(2), text)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info:
            formatter = logging.Formatter()
            record.exc_text = self.redact(formatter.formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line (``LOG_FORMAT=json``), for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str, *, json_lines: bool = False, redactor: SecretRedactor) -> None:
    """The root handler (stderr) with the redactor; libraries' loggers propagate to it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(redactor)
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # a handler that fails must not print the record's raw exception (logging's handleError does)
    logging.raiseExceptions = False
    for noisy in ("alembic", "apscheduler", "uvicorn"):  # uvicorn: start/stop lines (copytrade.http logs access)
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # aiosqlite's DEBUG lines name each call with its statement's parameters (an API token's hash)
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
