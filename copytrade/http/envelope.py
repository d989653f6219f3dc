"""Every answer of the REST API, errors included, in the seed's envelope
``{code, msg, requestTime, data}``; the codes."""

from __future__ import annotations

import time
from typing import Any

from fastapi.responses import JSONResponse

SUCCESS = "00000"


class Code:
    """The envelope's ``code``: the seed's 800xx for copy trading, HTTP-like 4xxxx/5xxxx otherwise."""

    INVALID_TRADER = "80001"
    INVALID_SETTINGS = "80002"
    INSUFFICIENT_BALANCE = "80003"
    ALREADY_FOLLOWING = "80005"
    BAD_REQUEST = "40000"
    UNAUTHORIZED = "40001"
    FORBIDDEN = "40003"
    NOT_FOUND = "40004"
    METHOD_NOT_ALLOWED = "40005"
    CONFLICT = "40009"
    PAYLOAD_TOO_LARGE = "40013"
    TOO_MANY_REQUESTS = "40029"
    INTERNAL = "50000"
    VENUE_UNAVAILABLE = "50003"
    UNAVAILABLE = "50004"


def _now_ms() -> int:
    return int(time.time() * 1000)


def envelope(
    code: str, msg: str, data: Any = None, *, status: int = 200, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"code": code, "msg": msg, "requestTime": _now_ms(), "data": data}, status_code=status, headers=headers
    )
