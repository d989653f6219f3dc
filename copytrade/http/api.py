"""The copy-trading REST API v1, in the shape of seed 004 (a Bitget-style copy-trading API):
``/api/v1/copytrading/…`` with every answer in the envelope ``{code, msg, requestTime, data}``.

This module only translates: query and body → one ``core.services.Services`` call → JSON.
Every rule (ownership, validation, bounds) is the core's, the same as the bot's; a user only ever
reaches their own follows because every call passes the token's user to the core.

Authentication: ``Authorization: Bearer <token>`` with a token made by ``/apitoken`` in
Telegram; ``read`` tokens may only GET, ``trade`` tokens may also POST. Before any of this, the
front door's guard (``copytrade/http/front.py``, ``limits.py``) has limited the client address and
the presented token and refused malformed tokens and oversized bodies; here, once the token is
found, the user is limited over all their tokens.

The routes run in the HTTP server's loop; what they need of the service runs in the core loop
(``CoreLoop.run``), and the answer is serialised back in the HTTP loop.

Bitget's documented paths for the same API, ``/api/mix/v1/copytrading/…``, are a second mount of
the same routes (not in the schema twice)."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict
from starlette.exceptions import HTTPException

from copytrade.http.core_loop import CoreLoop
from copytrade.http.envelope import SUCCESS, Code, envelope
from copytrade.http.limits import Buckets, retry_after
from core.api_tokens import ApiTokens, ApiTokenView, TokenScope
from core.errors import (
    AlreadyFollowing,
    FollowStopped,
    InsufficientFunds,
    InvalidFollowSettings,
    NotFound,
    OrderStatusUnknown,
    RateLimited,
    TemporaryError,
    UnknownMaster,
    UserError,
    VenueError,
)
from core.model import PositionSide, SizingMode
from core.numbers import plain_decimal
from core.records import CopyOrderRecord, FollowRecord, PositionRecord
from core.reports.masters import MasterStatistics
from core.validation import LEVERAGE_MAX, MAX_DECIMAL_PLACES, SIZING_LIMITS, STOP_LOSS_MAX, TAKE_PROFIT_MAX

if TYPE_CHECKING:
    from copytrade.app import App

log = logging.getLogger(__name__)

PREFIX = "/api/v1/copytrading"
#: Bitget's documented paths for the same API (seed 004): the same routes, mounted again
BITGET_PREFIX = "/api/mix/v1/copytrading"
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
#: an id as the API takes it: ASCII digits only (``"²".isdigit()`` is true; ``int("²")`` fails)
ID_PATTERN = r"^[0-9]{1,18}$"
#: an amount as the API takes it: a plain ASCII decimal (no separators, no exponent, no other digits)
NUMBER_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,18})?$"


def _above_zero(high: Decimal, *, below: bool = False) -> str:
    """A regular expression (no lookaround) of the plain decimals more than 0 and at most
    ``high``, a power of ten (``below``: less than it), with at most MAX_DECIMAL_PLACES places:
    the schema says exactly what the core accepts."""
    digits = len(str(int(high))) - 1
    assert high == 10**digits, high
    places = MAX_DECIMAL_PLACES
    fraction = rf"(?:\.[0-9]{{1,{places}}})?"
    small = "|".join(rf"0\.0{{{zeros}}}[1-9][0-9]{{0,{places - 1 - zeros}}}" for zeros in range(places))
    whole = rf"[1-9][0-9]{{0,{digits - 1}}}{fraction}"
    top = "" if below else rf"|1{'0' * digits}(?:\.0{{1,{places}}})?"
    return f"(?:{whole}|{small}{top})"


#: each setting's values, as the core bounds them (core/validation.py); "0" turns take-profit or
#: stop-loss off
COPY_AMOUNT_PATTERN = f"^{_above_zero(SIZING_LIMITS[SizingMode.FIXED_NOTIONAL][1])}$"
COEFFICIENT_PATTERN = f"^{_above_zero(SIZING_LIMITS[SizingMode.COEFFICIENT][1])}$"
assert LEVERAGE_MAX == 125
LEVERAGE_PATTERN = r"^(?:[1-9][0-9]?|1[01][0-9]|12[0-5])$"
TAKE_PROFIT_PATTERN = f"^(?:0|{_above_zero(TAKE_PROFIT_MAX)})$"
STOP_LOSS_PATTERN = f"^(?:0|{_above_zero(STOP_LOSS_MAX, below=True)})$"
_RANGES = {
    COPY_AMOUNT_PATTERN: f"more than 0 and at most {SIZING_LIMITS[SizingMode.FIXED_NOTIONAL][1]}",
    COEFFICIENT_PATTERN: f"more than 0 and at most {SIZING_LIMITS[SizingMode.COEFFICIENT][1]}",
    LEVERAGE_PATTERN: f"a whole number from 1 to {LEVERAGE_MAX}",
    TAKE_PROFIT_PATTERN: f"0 (off), or more than 0 and at most {TAKE_PROFIT_MAX}",
    STOP_LOSS_PATTERN: f"0 (off), or more than 0 and below {STOP_LOSS_MAX}",
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, msg: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg, self.headers = status, code, msg, headers


#: core errors → (HTTP status, code); the first matching class wins, most specific first
_ERRORS: tuple[tuple[type[Exception], int, str], ...] = (
    (UnknownMaster, 404, Code.INVALID_TRADER),
    (InvalidFollowSettings, 400, Code.INVALID_SETTINGS),
    (AlreadyFollowing, 409, Code.ALREADY_FOLLOWING),
    (FollowStopped, 409, Code.CONFLICT),
    (NotFound, 404, Code.NOT_FOUND),
    (UserError, 400, Code.BAD_REQUEST),
    (InsufficientFunds, 400, Code.INSUFFICIENT_BALANCE),
    (RateLimited, 503, Code.VENUE_UNAVAILABLE),
    (TemporaryError, 503, Code.VENUE_UNAVAILABLE),
    (OrderStatusUnknown, 503, Code.VENUE_UNAVAILABLE),
    (VenueError, 400, Code.BAD_REQUEST),
)


def error_status(exc: Exception) -> tuple[int, str]:
    for kind, status, code in _ERRORS:
        if isinstance(exc, kind):
            return status, code
    return 500, Code.INTERNAL


# -- authentication and rate limit --------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    token: ApiTokenView

    @property
    def user_id(self) -> int:
        return self.token.user_id


#: the bearer scheme in the schema (the Authorize button of /docs); the guard has checked the header
_BEARER = HTTPBearer(auto_error=False, description="a token made with /apitoken in Telegram")


def _authenticator(tokens: ApiTokens, core: CoreLoop, per_user: Buckets, scope: TokenScope):
    async def authenticate(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    ) -> Caller:
        if credentials is None or not credentials.credentials.strip():
            raise ApiError(401, Code.UNAUTHORIZED, "send an API token: Authorization: Bearer <token> (/apitoken)")
        view = await core.run(tokens.authenticate(credentials.credentials.strip()))
        if view is None:
            raise ApiError(401, Code.UNAUTHORIZED, "unknown or revoked API token")
        wait = await per_user.take(str(view.user_id))
        if wait:
            raise ApiError(429, Code.TOO_MANY_REQUESTS, "too many requests by this user", retry_after(wait))
        if scope is TokenScope.TRADE and view.scope is not TokenScope.TRADE:
            raise ApiError(403, Code.FORBIDDEN, "this token may only read; create a trade token with /apitoken")
        return Caller(view)

    return authenticate


# -- request bodies -----------------------------------------------------------------------------


def _number(pattern: str, example: str, meaning: str) -> Any:
    return Field(
        default=None,
        pattern=pattern,
        examples=[example],
        description=f"{meaning}: a plain decimal (digits and a dot), {_RANGES[pattern]}",
    )


Id = Annotated[str, Field(pattern=ID_PATTERN, examples=["1"])]
_SETTINGS = ("copyAmount", "coefficient", "leverage", "marginMode", "takeProfit", "stopLoss")
#: copyAmount and coefficient are two sizings: one at most
_ONE_SIZING: JsonDict = {
    "not": {
        "properties": {"copyAmount": {"type": "string"}, "coefficient": {"type": "string"}},
        "required": ["copyAmount", "coefficient"],
    }
}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SettingsBody(_Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_ONE_SIZING)

    copyAmount: str | None = _number(COPY_AMOUNT_PATTERN, "100", "quote currency per copied entry (fixed notional)")
    coefficient: str | None = _number(COEFFICIENT_PATTERN, "1", "follower quantity = master quantity × this")
    leverage: str | None = _number(LEVERAGE_PATTERN, "5", "leverage")
    marginMode: Literal["isolated", "cross"] | None = None
    takeProfit: str | None = _number(TAKE_PROFIT_PATTERN, "10", "take-profit in %")
    stopLoss: str | None = _number(STOP_LOSS_PATTERN, "5", "stop-loss in %")


class FollowBody(SettingsBody):
    traderId: Id = Field(description="the master's id (GET /traders)")
    accountId: str | None = Field(
        default=None, max_length=32, description="your exchange account; optional when you have only one"
    )


class StopBody(_Body):
    followId: Id
    closePositions: bool = Field(default=False, strict=True, description="also close the positions this follow opened")


class UpdateBody(SettingsBody):
    #: and at least one setting to change
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            **_ONE_SIZING,
            "anyOf": [{"required": [name], "properties": {name: {"not": {"type": "null"}}}} for name in _SETTINGS],
        },
    )

    followId: Id


def _settings(body: SettingsBody) -> dict[str, Any]:
    """The body's settings under the core's names (values stay text: the core parses them)."""
    out: dict[str, Any] = {}
    if body.copyAmount is not None and body.coefficient is not None:
        raise InvalidFollowSettings("give copyAmount or coefficient, not both")
    if body.copyAmount is not None:
        out.update(sizing_mode=SizingMode.FIXED_NOTIONAL, sizing_value=body.copyAmount)
    if body.coefficient is not None:
        out.update(sizing_mode=SizingMode.COEFFICIENT, sizing_value=body.coefficient)
    for field, name in (
        ("leverage", "leverage"),
        ("marginMode", "margin_mode"),
        ("takeProfit", "take_profit_pct"),
        ("stopLoss", "stop_loss_pct"),
    ):
        value = getattr(body, field)
        if value is not None:
            out[name] = value
    return out


def _id(value: str) -> int:
    """An id the schema's pattern has let through (ASCII digits, at most 18)."""
    if not re.fullmatch(ID_PATTERN, value):
        raise UserError("an id is 1 to 18 digits 0-9")
    return int(value)


# -- answers ------------------------------------------------------------------------------------


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(plain_decimal(value), "f")  # 0.000000000000000001, never 1E-18


def _ms(value: datetime | None) -> int | None:
    if value is None:
        return None
    return int((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp() * 1000)


def _trader(stats: MasterStatistics) -> dict[str, Any]:
    return {
        "traderId": str(stats.master_id),
        "nickName": stats.name,
        "description": stats.description,
        "venue": stats.venue,
        "status": stats.status.value,
        "followersCount": stats.followers,
        "totalProfit": _text(stats.realized_pnl),
        "monthlyProfit": _text(stats.pnl_30d),
        "winRate": _text(stats.win_rate),
        "tradingDays": stats.trading_days,
    }


def _follow(row: FollowRecord) -> dict[str, Any]:
    return {
        "followId": str(row.id),
        "traderId": str(row.master_id),
        "accountId": row.credential_id,
        "status": row.status.value,
        "copyAmount": _text(row.sizing_value) if row.sizing_mode is SizingMode.FIXED_NOTIONAL else None,
        "coefficient": _text(row.sizing_value) if row.sizing_mode is SizingMode.COEFFICIENT else None,
        "sizingMode": row.sizing_mode.value,
        "sizingValue": _text(row.sizing_value),
        "leverage": None if row.leverage is None else str(row.leverage),
        "marginMode": row.margin_mode,
        "takeProfit": _text(row.take_profit_pct),
        "stopLoss": _text(row.stop_loss_pct),
    }


def _order(row: CopyOrderRecord) -> dict[str, Any]:
    return {
        "orderId": row.client_order_id,
        "followId": str(row.follow_id),
        "symbol": row.symbol,
        "side": row.side.value if row.side is not None else None,
        "size": _text(row.filled_quantity),
        "requestedSize": _text(row.requested_quantity),
        "price": _text(row.average_price),
        "masterPrice": _text(row.master_price),
        "fee": _text(row.fee),
        "status": row.status.value,
        "reason": row.reason_code,
        "origin": row.origin.value,
        "createTime": _ms(row.created_at),
        "closeTime": _ms(row.completed_at),
    }


def _position(row: PositionRecord) -> dict[str, Any]:
    net_side = "long" if row.quantity > 0 else "short"
    return {
        "symbol": row.symbol,
        "side": net_side if row.position_side is PositionSide.BOTH else row.position_side.value,
        "size": _text(abs(row.quantity)),
        "entryPrice": _text(row.entry_price),
        "realizedPnl": _text(row.realized_pnl),
        "simulated": row.simulated,
        "updateTime": _ms(row.updated_at),
    }


def _page(items: Sequence[dict[str, Any]], total: int, page_no: int, page_size: int) -> dict[str, Any]:
    return {
        "totalPage": math.ceil(total / page_size) if total else 0,
        "totalNum": total,
        "currentPage": page_no,
        "pageSize": page_size,
        "list": list(items),
    }


#: the seed's sort fields (and a few more) → ``core.reports.masters.RANK_KEYS``
SORT_KEYS = {
    "profit": "pnl",
    "monthlyProfit": "pnl_30d",
    "followers": "followers",
    "winRate": "win_rate",
    "drawdown": "drawdown",
    "sharpe": "sharpe",
    "trades": "trades",
}
SortBy = Literal["profit", "monthlyProfit", "followers", "winRate", "drawdown", "sharpe", "trades"]
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
PageNo = Annotated[int, Query(ge=1, le=1_000_000)]
Millis = Annotated[int | None, Query(ge=0, le=253_402_300_799_999)]  # up to the year 9999
IdQuery = Annotated[str, Query(pattern=ID_PATTERN, examples=["1"])]


class ErrorEnvelope(BaseModel):
    """Every answer but a success: ``data`` is null."""

    code: str = Field(examples=[Code.BAD_REQUEST])
    msg: str
    requestTime: int
    data: None = None


class Envelope(BaseModel):
    code: Literal["00000"]
    msg: str
    requestTime: int
    data: Any


def _answers(*statuses: int, links: dict[str, Any] | None = None) -> dict[int | str, dict[str, Any]]:
    """The schema's answers of a route: its success (with its OpenAPI ``links`` to the routes its
    answer feeds) and these errors, each in the envelope."""
    meaning = {
        400: "bad input (the message says which field and why)",
        401: "no API token, or an unknown or revoked one",
        403: "a read token on a route that trades",
        404: "no such trader or follow (of yours)",
        409: "already following this trader with this account (80005), or the follow is stopped (40009)",
        413: "a body larger than the API takes",
        429: "too many requests from this address, with this token or by this user (Retry-After)",
        503: "the venue or the service is unavailable for now; try again",
    }
    out: dict[int | str, dict[str, Any]] = {200: {"model": Envelope, "description": "success"}}
    if links:
        out[200]["links"] = links
    for status in (400, 401, 429, 503, *statuses):
        out[status] = {"model": ErrorEnvelope, "description": meaning[status]}
    return out


#: what a new follow's answer feeds (the stateful phase of schemathesis follows these)
_FOLLOWED = "$response.body#/data/followId"
_FOLLOW_LINKS = {
    "history": {"operationId": "history", "parameters": {"followId": _FOLLOWED}},
    "positions": {"operationId": "positions", "parameters": {"followId": _FOLLOWED}},
    "updateSettings": {"operationId": "updateSettings", "requestBody": {"followId": _FOLLOWED, "leverage": "3"}},
    "stop": {"operationId": "stop", "requestBody": {"followId": _FOLLOWED}},
}


def _millis(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC)


# -- the routes ---------------------------------------------------------------------------------


def add_api(http: FastAPI, service: App, *, core: CoreLoop, per_user: Buckets) -> None:
    """The API's routes and its error handling (every error in the envelope) on ``http``;
    ``core``: the service's loop, where each route's work runs."""
    services = service.services
    reader = Depends(_authenticator(service.api_tokens, core, per_user, TokenScope.READ))
    trader = Depends(_authenticator(service.api_tokens, core, per_user, TokenScope.TRADE))
    router = APIRouter(tags=["copytrading"])

    @router.get("/traders", summary="Masters you can copy, ranked", responses=_answers())
    async def traders(
        caller: Caller = reader,
        pageSize: PageSize = DEFAULT_PAGE_SIZE,
        pageNo: PageNo = 1,
        sortBy: SortBy = "profit",
        sortType: Literal["asc", "desc"] = "desc",
    ) -> JSONResponse:
        ranked = await core.run(services.ranked_masters(SORT_KEYS[sortBy], descending=sortType == "desc"))
        start = (pageNo - 1) * pageSize
        page = [_trader(s) for s in ranked[start : start + pageSize]]
        return envelope(SUCCESS, "success", _page(page, len(ranked), pageNo, pageSize))

    @router.get("/trader/detail", summary="One master: statistics and open positions", responses=_answers(404))
    async def trader_detail(traderId: IdQuery, caller: Caller = reader) -> JSONResponse:
        try:
            stats = await core.run(services.master_statistics(_id(traderId)))
        except NotFound as exc:
            raise UnknownMaster(str(exc)) from None
        data = _trader(stats) | {
            "statistics": {
                "totalTrades": stats.round_trips,
                "winningTrades": stats.wins,
                "losingTrades": stats.losses,
                "averageHoldingTime": _text(Decimal(stats.avg_holding.total_seconds()) / 3600)
                if stats.avg_holding is not None
                else None,
                "maxDrawdown": _text(stats.max_drawdown),
                "maxDrawdownPct": _text(stats.max_drawdown_pct),
                "sharpeRatio": None if stats.sharpe is None else f"{stats.sharpe:.4f}",
                "profitFactor": _text(stats.profit_factor),
            },
            "positions": [
                {"symbol": symbol, "side": "long" if quantity > 0 else "short", "size": _text(abs(quantity))}
                for symbol, quantity in stats.open_positions
            ],
        }
        return envelope(SUCCESS, "success", data)

    async def _follow_now(user_id: int, master_id: int, account: str | None, settings: dict[str, Any]) -> FollowRecord:
        if account is None:
            accounts = await services.accounts_of(user_id)
            if len(accounts) != 1:
                raise InvalidFollowSettings(
                    "give accountId: " + (", ".join(a.id for a in accounts) or "connect an exchange account first")
                )
            account = accounts[0].id
        return await services.follow(user_id, master_id, account, settings)

    @router.post(
        "/follow",
        summary="Start copying a master",
        operation_id="follow",
        responses=_answers(403, 404, 409, 413, links=_FOLLOW_LINKS),
    )
    async def follow(body: FollowBody, caller: Caller = trader) -> JSONResponse:
        settings = _settings(body)
        row = await core.run(_follow_now(caller.user_id, _id(body.traderId), body.accountId, settings))
        return envelope(SUCCESS, "success", _follow(row))

    @router.post(
        "/stop",
        summary="Stop copying (optionally closing the copied positions)",
        operation_id="stop",
        responses=_answers(403, 404, 413),
    )
    async def stop(body: StopBody, caller: Caller = trader) -> JSONResponse:
        row, closed = await core.run(
            services.stop_follow(caller.user_id, _id(body.followId), close_positions=body.closePositions)
        )
        data = {"followId": str(row.id), "status": row.status.value, "closingOrders": len(closed)}
        return envelope(SUCCESS, "success", data)

    @router.post(
        "/updateSettings",
        summary="Change a follow's settings",
        operation_id="updateSettings",
        responses=_answers(403, 404, 409, 413),
    )
    async def update_settings(body: UpdateBody, caller: Caller = trader) -> JSONResponse:
        changes = _settings(body)
        if not changes:
            raise InvalidFollowSettings("nothing to change: give at least one setting")
        row = await core.run(services.update_follow(caller.user_id, _id(body.followId), changes))
        return envelope(SUCCESS, "success", _follow(row))

    @router.get("/follows", summary="Your follows", responses=_answers())
    async def follows(caller: Caller = reader) -> JSONResponse:
        rows = await core.run(services.follows_of(caller.user_id))
        return envelope(SUCCESS, "success", [_follow(row) for row in rows])

    async def _history(
        user_id: int, follow_id: int, limit: int, offset: int, since: datetime | None, until: datetime | None
    ) -> tuple[Sequence[CopyOrderRecord], int]:
        rows = await services.copy_history(
            user_id, limit=limit, offset=offset, follow_id=follow_id, since=since, until=until
        )
        total = await services.copy_history_count(user_id, follow_id=follow_id, since=since, until=until)
        return rows, total

    @router.get(
        "/history", summary="A follow's copy orders, newest first", operation_id="history", responses=_answers(404)
    )
    async def history(
        followId: IdQuery,
        caller: Caller = reader,
        startTime: Millis = None,
        endTime: Millis = None,
        pageSize: PageSize = DEFAULT_PAGE_SIZE,
        pageNo: PageNo = 1,
    ) -> JSONResponse:
        since, until = _millis(startTime), _millis(endTime)  # an interval ending before it starts holds nothing
        rows, total = await core.run(
            _history(caller.user_id, _id(followId), pageSize, (pageNo - 1) * pageSize, since, until)
        )
        return envelope(SUCCESS, "success", _page([_order(r) for r in rows], total, pageNo, pageSize))

    async def _positions(user_id: int, follow_id: int) -> list[PositionRecord]:
        await services.own_follow(user_id, follow_id)
        for status in await services.follow_statuses(user_id):
            if status.view.follow.id == follow_id:
                return [p for p in status.positions if p.quantity]
        return []  # a stopped follow holds no copied positions

    @router.get(
        "/positions", summary="A follow's copied open positions", operation_id="positions", responses=_answers(404)
    )
    async def positions(followId: IdQuery, caller: Caller = reader) -> JSONResponse:
        rows = await core.run(_positions(caller.user_id, _id(followId)))
        return envelope(SUCCESS, "success", [_position(p) for p in rows])

    http.include_router(router, prefix=PREFIX)
    http.include_router(router, prefix=BITGET_PREFIX, include_in_schema=False)
    _add_error_handlers(http)
    _document_errors_only_as_sent(http)


def _add_error_handlers(http: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return envelope(exc.code, exc.msg, status=exc.status, headers=exc.headers)

    async def core_error(request: Request, exc: Exception) -> JSONResponse:
        status, code = error_status(exc)
        return envelope(code, str(exc), status=status)

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        code, message = _invalid(exc)
        return envelope(code, message, status=400)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        code = {404: Code.NOT_FOUND, 405: Code.METHOD_NOT_ALLOWED}.get(exc.status_code, Code.BAD_REQUEST)
        if exc.status_code >= 500:
            code = Code.INTERNAL
        return envelope(code, str(exc.detail), status=exc.status_code, headers=getattr(exc, "headers", None))

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return envelope(Code.INTERNAL, "internal error (logged)", status=500)

    http.add_exception_handler(ApiError, api_error)
    http.add_exception_handler(Exception, unexpected)
    http.add_exception_handler(UserError, core_error)
    http.add_exception_handler(VenueError, core_error)
    http.add_exception_handler(RequestValidationError, invalid_request)
    http.add_exception_handler(HTTPException, http_error)


def _invalid(exc: RequestValidationError) -> tuple[str, str]:
    """The code and one clear sentence for the first thing wrong with a request: a setting out of
    its range is the seed's invalid settings (80002), anything else a bad request."""
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
    given = first.get("input")
    shown = f", got {given[:20]!r}" if isinstance(given, str) else ""
    pattern = (first.get("ctx") or {}).get("pattern")
    if pattern == ID_PATTERN:
        return Code.BAD_REQUEST, f"{where} must be an id: 1 to 18 digits 0-9{shown}"
    if pattern in _RANGES:
        if isinstance(given, str) and re.fullmatch(NUMBER_PATTERN, given):
            return Code.INVALID_SETTINGS, f"{where} must be {_RANGES[pattern]}{shown}"
        return Code.BAD_REQUEST, (
            f"{where} must be a plain number such as 1000 or 0.5: digits 0-9 and a dot, no thousands "
            f"separators, comma or exponent{shown}"
        )
    message = str(first.get("msg", "invalid request"))
    return Code.BAD_REQUEST, f"{where}: {message}" if where else message


def _document_errors_only_as_sent(http: FastAPI) -> None:
    """FastAPI documents a 422 for every route with inputs; this API answers bad input with 400 in
    the envelope (``_answers``), never 422: the schema is rid of it."""
    build = http.openapi

    def openapi() -> dict[str, Any]:
        if http.openapi_schema is None:
            schema = build()
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            http.openapi_schema = schema
        return http.openapi_schema

    http.openapi = openapi  # type: ignore[method-assign]
