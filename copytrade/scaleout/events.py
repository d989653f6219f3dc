"""Notifications as JSON between processes (executors → bot role), decoded by their declared
types: only the known event classes are ever built (no pickle: whoever can write to Redis must
not be able to run code in the bot)."""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from core.copying.config import FollowPaused
from core.model import CopyResult
from core.notifications import Event
from core.risk_service import DriftFound, RiskNotice

EVENT_TYPES: dict[str, type[Any]] = {cls.__name__: cls for cls in (CopyResult, FollowPaused, DriftFound, RiskNotice)}


class EventDecodeError(ValueError):
    """A notification on the stream that is not one of the known event types (never built)."""


def encode_event(event: Event) -> str:
    return json.dumps({"type": type(event).__name__, "event": _plain(event)}, separators=(",", ":"))


def decode_event(text: str) -> Event:
    try:
        document = json.loads(text)
        cls = EVENT_TYPES[document["type"]]
        return typing.cast(Event, _typed(document["event"], cls))
    except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
        raise EventDecodeError(f"not a notification: {type(exc).__name__}: {exc}") from None


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _typed(value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        (actual,) = [o for o in options if o is not type(None)]
        return _typed(value, actual)
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_typed(v, args[0]) for v in value)
        return tuple(_typed(v, a) for v, a in zip(value, args, strict=True))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        fields = {f.name for f in dataclasses.fields(hint) if f.init}
        return hint(**{name: _typed(value[name], hints[name]) for name in fields if name in value})
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)
    if hint is Decimal:
        return Decimal(value)
    if hint is datetime:
        return datetime.fromisoformat(value)
    if hint in (int, str, bool, float):
        if hint is float and isinstance(value, int):
            return float(value)
        if not isinstance(value, hint):
            raise TypeError(f"expected {hint.__name__}, got {type(value).__name__}")
        return value
    raise TypeError(f"cannot decode a {hint!r}")
