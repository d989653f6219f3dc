"""The copy-trading REST API v1, in the shape of seed 004 (a Bitget-style copy-trading API):
``/api/v1/copytrading/…`` with every answer in the envelope ``{code, msg, requestTime, data}``.

This module only translates: query and body → one ``core.services.Services`` call → JSON.
Every rule (ownership, validation, bounds) is the core's, the same as the bot's; a user only ever
reaches their own follows because every call passes the token's user to the core.

Authentication: ``Authorization: Bearer <token>`` with a token made by ``/apitoken`` in
Telegram; ``read`` tokens may only GET, ``trade`` tokens may also POST. Each token is
rate-limited (a token bucket held by this app instance)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from core.api_tokens import ApiTokens, ApiTokenView, TokenScope
from core.errors import (
    AlreadyFollowing,
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

if TYPE_CHECKING:
    from copytrade.app import App

log = logging.getLogger(__name__)

PREFIX = "/api/v1/copytrading"
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
#: requests a token may make: a burst, then a steady rate per second
RATE_BURST = 20
RATE_PER_SECOND = 5.0

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
    TOO_MANY_REQUESTS = "40029"
    INTERNAL = "50000"
    VENUE_UNAVAILABLE = "50003"


def _now_ms() -> int:
    return int(time.time() * 1000)


def envelope(
    code: str, msg: str, data: Any = None, *, status: int = 200, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"code": code, "msg": msg, "requestTime": _now_ms(), "data": data}, status_code=status, headers=headers
    )


class ApiError(Exception):
    def __init__(self, status: int, code: str, msg: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg, self.headers = status, code, msg, headers


#: core errors → (HTTP status, code); the first matching class wins, most specific first
_ERRORS: tuple[tuple[type[Exception], int, str], ...] = (
    (UnknownMaster, 400, Code.INVALID_TRADER),
    (InvalidFollowSettings, 400, Code.INVALID_SETTINGS),
    (AlreadyFollowing, 400, Code.ALREADY_FOLLOWING),
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


@dataclass
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """One bucket per API token: ``burst`` requests at once, refilled at ``per_second``."""

    def __init__(
        self, burst: int = RATE_BURST, per_second: float = RATE_PER_SECOND, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst, self.per_second, self._clock = burst, per_second, clock
        self._buckets: dict[int, _Bucket] = {}

    def take(self, token_id: int) -> float:
        """0 when the request may go; else the seconds until it may."""
        now = self._clock()
        bucket = self._buckets.setdefault(token_id, _Bucket(float(self.burst), now))
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.per_second)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.per_second


@dataclass(frozen=True)
class Caller:
    token: ApiTokenView

    @property
    def user_id(self) -> int:
        return self.token.user_id


def _authenticator(tokens: ApiTokens, buckets: TokenBuckets, scope: TokenScope):
    async def authenticate(request: Request) -> Caller:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiError(401, Code.UNAUTHORIZED, "send an API token: Authorization: Bearer <token> (/apitoken)")
        view = await tokens.authenticate(value.strip())
        if view is None:
            raise ApiError(401, Code.UNAUTHORIZED, "unknown or revoked API token")
        wait = buckets.take(view.id)
        if wait:
            raise ApiError(
                429, Code.TOO_MANY_REQUESTS, "too many requests with this token", {"Retry-After": str(math.ceil(wait))}
            )
        if scope is TokenScope.TRADE and view.scope is not TokenScope.TRADE:
            raise ApiError(403, Code.FORBIDDEN, "this token may only read; create a trade token with /apitoken")
        return Caller(view)

    return authenticate


# -- request bodies -----------------------------------------------------------------------------

Number = Annotated[str, Field(max_length=40, examples=["100"])]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SettingsBody(_Body):
    copyAmount: Number | None = Field(default=None, description="quote currency per copied entry (fixed notional)")
    coefficient: Number | None = Field(default=None, description="follower quantity = master quantity × this")
    leverage: Number | None = None
    marginMode: Literal["isolated", "cross"] | None = None
    takeProfit: Number | None = Field(default=None, description="take-profit in %")
    stopLoss: Number | None = Field(default=None, description="stop-loss in %")


class FollowBody(SettingsBody):
    traderId: str = Field(max_length=20, description="the master's id (GET /traders)")
    accountId: str | None = Field(
        default=None, max_length=32, description="your exchange account; optional when you have only one"
    )


class StopBody(_Body):
    followId: str = Field(max_length=20)
    closePositions: bool = Field(default=False, description="also close the positions this follow opened")


class UpdateBody(SettingsBody):
    followId: str = Field(max_length=20)


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


def _id(value: str, what: str, error: type[UserError] = NotFound) -> int:
    text = value.strip()
    if not text.isdigit() or len(text) > 18:
        raise error(f"no such {what}")
    return int(text)


# -- answers ------------------------------------------------------------------------------------


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(plain_decimal(value))


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


def _millis(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC)


# -- the routes ---------------------------------------------------------------------------------


def add_api(http: FastAPI, service: App, *, buckets: TokenBuckets | None = None) -> None:
    """The API's routes and its error handling (every error in the envelope) on ``http``."""
    services = service.services
    tokens = service.api_tokens
    limits = buckets or TokenBuckets()
    reader = Depends(_authenticator(tokens, limits, TokenScope.READ))
    trader = Depends(_authenticator(tokens, limits, TokenScope.TRADE))
    router = APIRouter(prefix=PREFIX, tags=["copytrading"])

    @router.get("/traders", summary="Masters you can copy, ranked")
    async def traders(
        caller: Caller = reader,
        pageSize: PageSize = DEFAULT_PAGE_SIZE,
        pageNo: PageNo = 1,
        sortBy: SortBy = "profit",
        sortType: Literal["asc", "desc"] = "desc",
    ) -> JSONResponse:
        ranked = await services.ranked_masters(SORT_KEYS[sortBy], descending=sortType == "desc")
        start = (pageNo - 1) * pageSize
        page = [_trader(s) for s in ranked[start : start + pageSize]]
        return envelope(SUCCESS, "success", _page(page, len(ranked), pageNo, pageSize))

    @router.get("/trader/detail", summary="One master: statistics and open positions")
    async def trader_detail(traderId: Annotated[str, Query(max_length=20)], caller: Caller = reader) -> JSONResponse:
        try:
            stats = await services.master_statistics(_id(traderId, "trader", UnknownMaster))
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

    @router.post("/follow", summary="Start copying a master")
    async def follow(body: FollowBody, caller: Caller = trader) -> JSONResponse:
        master_id = _id(body.traderId, "trader", UnknownMaster)
        account = body.accountId
        if account is None:
            accounts = await services.accounts_of(caller.user_id)
            if len(accounts) != 1:
                raise InvalidFollowSettings(
                    "give accountId: " + (", ".join(a.id for a in accounts) or "connect an exchange account first")
                )
            account = accounts[0].id
        row = await services.follow(caller.user_id, master_id, account, _settings(body))
        return envelope(SUCCESS, "success", _follow(row))

    @router.post("/stop", summary="Stop copying (optionally closing the copied positions)")
    async def stop(body: StopBody, caller: Caller = trader) -> JSONResponse:
        row, closed = await services.stop_follow(
            caller.user_id, _id(body.followId, "follow"), close_positions=body.closePositions
        )
        data = {"followId": str(row.id), "status": row.status.value, "closingOrders": len(closed)}
        return envelope(SUCCESS, "success", data)

    @router.post("/updateSettings", summary="Change a follow's settings")
    async def update_settings(body: UpdateBody, caller: Caller = trader) -> JSONResponse:
        changes = _settings(body)
        if not changes:
            raise InvalidFollowSettings("nothing to change: give at least one setting")
        row = await services.update_follow(caller.user_id, _id(body.followId, "follow"), changes)
        return envelope(SUCCESS, "success", _follow(row))

    @router.get("/follows", summary="Your follows")
    async def follows(caller: Caller = reader) -> JSONResponse:
        rows = await services.follows_of(caller.user_id)
        return envelope(SUCCESS, "success", [_follow(row) for row in rows])

    @router.get("/history", summary="A follow's copy orders, newest first")
    async def history(
        followId: Annotated[str, Query(max_length=20)],
        caller: Caller = reader,
        startTime: Millis = None,
        endTime: Millis = None,
        pageSize: PageSize = DEFAULT_PAGE_SIZE,
        pageNo: PageNo = 1,
    ) -> JSONResponse:
        follow_id = _id(followId, "follow")
        since, until = _millis(startTime), _millis(endTime)
        if since is not None and until is not None and until <= since:
            raise UserError("endTime must be after startTime")
        rows = await services.copy_history(
            caller.user_id,
            limit=pageSize,
            offset=(pageNo - 1) * pageSize,
            follow_id=follow_id,
            since=since,
            until=until,
        )
        total = await services.copy_history_count(caller.user_id, follow_id=follow_id, since=since, until=until)
        return envelope(SUCCESS, "success", _page([_order(r) for r in rows], total, pageNo, pageSize))

    @router.get("/positions", summary="A follow's copied open positions")
    async def positions(followId: Annotated[str, Query(max_length=20)], caller: Caller = reader) -> JSONResponse:
        follow_id = _id(followId, "follow")
        await services.own_follow(caller.user_id, follow_id)
        for status in await services.follow_statuses(caller.user_id):
            if status.view.follow.id == follow_id:
                return envelope(SUCCESS, "success", [_position(p) for p in status.positions if p.quantity])
        return envelope(SUCCESS, "success", [])  # a stopped follow holds no copied positions

    http.include_router(router)
    _add_error_handlers(http)


def _add_error_handlers(http: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return envelope(exc.code, exc.msg, status=exc.status, headers=exc.headers)

    async def core_error(request: Request, exc: Exception) -> JSONResponse:
        status, code = error_status(exc)
        return envelope(code, str(exc), status=status)

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
        message = f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid request"))
        return envelope(Code.BAD_REQUEST, message, status=400)

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
