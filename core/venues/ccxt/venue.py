"""Any ccxt exchange as a follower (or master) ``Venue``; Binance USD-M futures and spot first.

One ccxt ``async_support`` instance (``ccxt.pro`` when ``streaming=True``) per account, its
HTTP session reused until ``close()``. Markets are loaded once per (exchange id, sandbox) by a
``CcxtMarketsCache`` object and shared with every other account on that venue.

Money path: quantities and prices go through ccxt's truncating ``amount_to_precision`` /
``price_to_precision`` and are re-checked against the market's minimum amount and cost before
anything is sent; every number crossing this module's edge becomes a ``Decimal``.
``place_order`` is never retried here: a timeout, a dropped connection or a 5xx while placing
raises ``OrderStatusUnknown`` and the engine looks the order up by client order id first.
Read calls are retried on ``TemporaryError`` with a short backoff.

URL overrides (tests, proxies, regional hosts): ``url_overrides`` is merged into ccxt's
``exchange.urls['api']`` after sandbox mode is applied. Keys are ccxt's API section names, the
values base URLs; websocket bases sit under ``'ws'``. For Binance::

    {
        "public": "http://host/api/v3", "private": "http://host/api/v3", "sapi": "http://host/sapi/v1",
        "fapiPublic": "http://host/fapi/v1", "fapiPrivate": "http://host/fapi/v1",
        "fapiPublicV2": "http://host/fapi/v2", "fapiPrivateV2": "http://host/fapi/v2",
        "fapiPublicV3": "http://host/fapi/v3", "fapiPrivateV3": "http://host/fapi/v3",
        "ws": {"linear": "ws://host/ws", "spot": "ws://host/ws", "ws-api": {"spot": "ws://host/ws-api/v3"}},
    }

(ccxt.pro derives the futures user-data URL from ``ws.linear`` as ``…/private/ws?listenKey=…``.)

Sandbox: Binance retired its futures testnet, so ``sandbox=True`` selects Binance's demo
trading environment for the Binance family and ccxt's ``set_sandbox_mode`` elsewhere.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any, TypeVar

import ccxt
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
from ccxt.base.decimal_to_precision import TRUNCATE

from core import errors
from core import retry as retrying
from core.ledger import fee_in_quote
from core.model import Execution, MarketRules, OrderIntent, OrderReport, OrderState, OrderType, PositionSide, Side
from core.venues.base import Position, SendWindow, Venue
from core.venues.ccxt.constants import (
    BINANCE_FAMILY,
    BINANCE_SEND_WINDOW,
    COMMON_OPTIONS,
    CONDITIONAL_ORDER_VENUES,
    EXCHANGE_OPTIONS,
    FEE_COIN_PRICE_SECONDS,
    INVALID_TIMESTAMP,
    LISTEN_KEY_KEEPALIVE_SECONDS,
    MAX_RECV_WINDOW_MS,
    MIN_RECV_WINDOW_MS,
    ORDER_DOES_NOT_EXIST,
    POSITION_SIDE_MISMATCH,
    STREAMING_OPTIONS,
    TRADES_PAGE,
    UNKNOWN_ORDER_SENT,
)
from core.venues.ccxt.egress import egress_session
from core.venues.ccxt.errors import binance_code, map_ccxt_error, retry_after_seconds
from core.venues.ccxt.executions import StreamedExecutions
from core.venues.ccxt.markets import CcxtMarketsCache
from core.venues.ccxt.orders import CcxtOrderEvents
from core.venues.ccxt.throttler import AccountRequests, LeakyBucketThrottler, WeightBudgets, weighed
from core.venues.egress import PUBLIC_ONLY, EgressPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")
ZERO = Decimal(0)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND = timedelta(milliseconds=1)
RETRIED_READ_ERRORS = (errors.TemporaryError, errors.RateLimited)


@dataclass(frozen=True, slots=True)
class FuturesSettings:
    """Per-symbol account settings applied once before the first order of that symbol.

    ``hedge_mode`` None asks the venue once (Binance ``positionSide/dual``).
    """

    leverage: int | None = None
    margin_mode: str | None = None  # "cross" or "isolated"
    hedge_mode: bool | None = None


def to_decimal(value: Any) -> Decimal | None:
    """ccxt numbers are floats or strings; ``str`` first keeps the shortest exact decimal form."""
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _attached(order: Mapping[str, Any], trades: list[dict[str, Any]]) -> dict[str, Any]:
    """ccxt's order with its executions and their fees in place of the order's own (none)."""
    return {**order, "trades": trades, "fees": [t["fee"] for t in trades if t.get("fee")], "fee": None}


def _deep_merge(target: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _in_own_decimal_context(function: Callable[..., str]) -> Callable[..., str]:
    """ccxt's ``decimal_to_precision`` sets the *shared* decimal context to round half up and to
    trap underflow (ccxt/base/decimal_to_precision.py): every later Decimal operation of the
    process would inherit it. Run it in a private copy instead."""

    @functools.wraps(function)
    def isolated(*args: Any, **kwargs: Any) -> str:
        with localcontext():
            return function(*args, **kwargs)

    return isolated


class CcxtVenue(Venue):
    """One account on one ccxt exchange."""

    def __init__(
        self,
        exchange: Any,
        *,
        markets_cache: CcxtMarketsCache,
        sandbox: bool = False,
        settings: FuturesSettings = FuturesSettings(),
        quote_currency: str = "USDT",
        symbol_map: Mapping[str, str] | None = None,
        read_retries: int = 2,
        retry_backoff: float = 0.25,
        listen_key_keepalive_seconds: float = LISTEN_KEY_KEEPALIVE_SECONDS,
        weights: WeightBudgets | None = None,
        egress_proxy: str | None = None,
        egress: EgressPolicy = PUBLIC_ONLY,
    ) -> None:
        self.exchange = exchange
        self._weights = weights
        self._egress_proxy = egress_proxy
        self._egress = egress  # where that proxy may be: the account's order stream is held to it too
        self.name: str = exchange.id
        self.sandbox = sandbox
        self.settings = settings
        self.quote_currency = quote_currency
        self.symbol_map = dict(symbol_map or {})
        self._markets_cache = markets_cache
        self._markets_ready = False
        self._read_retries = read_retries
        self._retry_backoff = retrying.ExponentialBackoff(retry_backoff)
        self._applied: dict[str, FuturesSettings] = {}
        self._symbol_locks: dict[str, asyncio.Lock] = {}
        self._hedge_mode: bool | None = settings.hedge_mode
        self._key_worked = False  # a signed call succeeded: a later -2015 is a temporary ban
        self._coin_prices: dict[str, tuple[Decimal, float]] = {}  # fee coin -> (price in the quote, read at)
        self._listen_key_keepalive = listen_key_keepalive_seconds  # of this account's order stream
        self._streamed = StreamedExecutions()  # what this account's order stream pushed (``order_events``)
        # constants.py says why only the Binance family has one
        self.send_window: SendWindow | None = BINANCE_SEND_WINDOW if self.name in BINANCE_FAMILY else None

    @classmethod
    def create(
        cls,
        exchange_id: str,
        api_key: str,
        secret: str,
        *,
        markets_cache: CcxtMarketsCache,
        password: str | None = None,
        egress_proxy: str | None = None,
        egress: EgressPolicy = PUBLIC_ONLY,
        sandbox: bool = False,
        url_overrides: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        streaming: bool = False,
        timeout_ms: int = 10_000,
        enable_rate_limit: bool = True,
        settings: FuturesSettings = FuturesSettings(),
        weights: WeightBudgets | None = None,
        **venue_kwargs: Any,
    ) -> CcxtVenue:
        """Build the ccxt instance for one account. ``streaming`` uses ccxt.pro (a master feed).

        A Binance account spends the request-weight budget of its egress IP in ``weights`` (shared
        by every account built with the same object; a private one without it) instead of ccxt's
        own per-account pacing (``throttler.py``); ``enable_rate_limit`` is for other exchanges.

        An ``egress_proxy`` must be where ``egress`` allows (``EgressRefused``): an address is
        checked here, a name each time it is connected to (``core/venues/ccxt/egress.py``)."""
        module = ccxt_pro if streaming else ccxt_async
        exchange_class = getattr(module, exchange_id, None)
        if exchange_class is None:
            raise errors.ConfigError(f"ccxt{' pro' if streaming else ''} has no exchange {exchange_id!r}")
        binance = exchange_id in BINANCE_FAMILY
        if binance:
            exchange_class = weighed(exchange_class)
            weights = weights if weights is not None else WeightBudgets()
        merged_options: dict[str, Any] = {}
        _deep_merge(merged_options, COMMON_OPTIONS)
        _deep_merge(merged_options, EXCHANGE_OPTIONS.get(exchange_id, {}))
        if streaming:
            _deep_merge(merged_options, STREAMING_OPTIONS)
        _deep_merge(merged_options, options or {})
        config: dict[str, Any] = {
            "apiKey": api_key,
            "secret": secret,
            "enableRateLimit": enable_rate_limit and not binance,
            "timeout": timeout_ms,
            "options": merged_options,
        }
        if password:
            config["password"] = password
        if egress_proxy:  # ccxt's per-instance proxies: REST (aiohttp's proxy) and websockets
            egress.check_literal(egress_proxy)
            config["httpsProxy"] = egress_proxy
            config["wssProxy"] = egress_proxy
        exchange = exchange_class(config)
        exchange.decimal_to_precision = _in_own_decimal_context(exchange.decimal_to_precision)
        if exchange.verify and exchange.ssl_context is None:
            exchange.ssl_context = markets_cache.ssl_context(exchange.cafile)
        if egress_proxy:
            # ccxt never builds a session of its own for this instance (not even after close):
            # every connection goes through the checked resolver, and ``close`` closes it
            exchange.session = egress_session(egress, exchange.ssl_context or exchange.verify)
            exchange.own_session = False
        if binance and weights is not None:
            exchange.weighed_requests = AccountRequests(
                exchange_id,
                weights.budget(exchange_id, sandbox=sandbox, egress=egress_proxy),
                weights.limits(exchange_id, sandbox=sandbox),
            )
        elif enable_rate_limit and exchange.throttler is not None:
            exchange.throttler = LeakyBucketThrottler(exchange.tokenBucket, exchange.asyncio_loop)
        if sandbox:
            if exchange_id in BINANCE_FAMILY:
                exchange.enable_demo_trading(True)
            else:
                exchange.set_sandbox_mode(True)
        if url_overrides:
            _deep_merge(exchange.urls["api"], url_overrides)
        return cls(
            exchange,
            markets_cache=markets_cache,
            sandbox=sandbox,
            settings=settings,
            weights=weights,
            egress_proxy=egress_proxy,
            egress=egress,
            **venue_kwargs,
        )

    # ------------------------------------------------------------------ markets

    async def warm_up(self) -> None:
        """Markets, and on Binance the account's HTTP session and connection opened with the
        lightest request there is (ping, weight 1): a thousand accounts connecting at their first
        order would do it after the send deadlines were stamped (measured: most of them missed it).
        Binance's position mode costs 30 of the IP's weight a read (2,400 a minute on USD-M: 80
        accounts' worth), so it is never read here: orders learn it (``_order_in_hedge_mode``)."""
        await self.ensure_markets()
        if self.name in BINANCE_FAMILY:
            ping = self.exchange.fapiPublicGetPing if self._is_derivatives_venue() else self.exchange.publicGetPing
            await self._call(ping, retry=True, public=True)

    async def ensure_markets(self) -> None:
        if not self._markets_ready:
            await self._call(
                lambda: self._markets_cache.attach(self.exchange, sandbox=self.sandbox), retry=True, public=True
            )
            self._markets_ready = True

    async def market(self, symbol: str) -> MarketRules:
        await self.ensure_markets()
        market = self._ccxt_market(symbol)
        precision, limits = market.get("precision") or {}, market.get("limits") or {}
        amount_limits, cost_limits = limits.get("amount") or {}, limits.get("cost") or {}
        market_limits = limits.get("market") or {}  # Binance's MARKET_LOT_SIZE (ccxt binance.py 3896)
        return MarketRules(
            symbol=market["symbol"],
            base=market["base"],
            quote=market["quote"],
            quantity_step=self._step(precision.get("amount")),
            price_tick=self._step(precision.get("price")),
            min_quantity=to_decimal(amount_limits.get("min")) or ZERO,
            min_notional=to_decimal(cost_limits.get("min")) or ZERO,
            max_quantity=to_decimal(amount_limits.get("max")),
            contract_size=to_decimal(market.get("contractSize")) or Decimal(1),
            derivative=bool(market.get("contract")),
            max_market_quantity=to_decimal(market_limits.get("max")),
        )

    async def symbols(self) -> frozenset[str]:
        await self.ensure_markets()
        return frozenset(self.exchange.markets or {})

    async def follower_symbol(self, master_symbol: str) -> str:
        """The symbol on this venue for a master's unified symbol (explicit map first)."""
        await self.ensure_markets()
        symbol = self.symbol_map.get(master_symbol, master_symbol)
        self._ccxt_market(symbol)
        return symbol

    def _ccxt_market(self, symbol: str) -> dict[str, Any]:
        markets = self.exchange.markets or {}
        market = markets.get(symbol)
        if market is None:
            raise errors.UnknownSymbol(f"{self.name} does not list {symbol}")
        return dict(market)

    def _step(self, precision: Any) -> Decimal:
        """ccxt precision is a tick size (TICK_SIZE mode) or a count of decimals (DECIMAL_PLACES)."""
        value = to_decimal(precision)
        if value is None:
            return Decimal(0)
        if self.exchange.precisionMode == ccxt.DECIMAL_PLACES:
            return Decimal(1).scaleb(-int(value))
        return value

    # ------------------------------------------------------------------ account

    async def equity(self) -> Decimal:
        await self.ensure_markets()
        balance = await self._call(self.exchange.fetch_balance, retry=True)
        info = balance.get("info") or {}
        if isinstance(info, dict) and "totalWalletBalance" in info:
            return Decimal(info["totalWalletBalance"]) + Decimal(info.get("totalUnrealizedProfit") or "0")
        total = (balance.get("total") or {}).get(self.quote_currency)
        return to_decimal(total) or ZERO

    async def positions(self) -> list[Position]:
        await self.ensure_markets()
        if self._is_derivatives_venue():
            raw = await self._call(self.exchange.fetch_positions, retry=True)
            return [p for p in (self._position(entry) for entry in raw) if p is not None]
        # spot: every coin held, the user's own as much as the copies' (marked a balance)
        balance = await self._call(self.exchange.fetch_balance, retry=True)
        held = []
        for currency, amount in (balance.get("total") or {}).items():
            quantity = to_decimal(amount)
            symbol = f"{currency}/{self.quote_currency}"
            if currency != self.quote_currency and quantity and symbol in (self.exchange.markets or {}):
                held.append(Position(symbol, quantity, balance=True))
        return held

    def _position(self, entry: Mapping[str, Any]) -> Position | None:
        info = entry.get("info") or {}
        raw_amount = info.get("positionAmt") if isinstance(info, dict) else None
        if raw_amount is not None:
            quantity = Decimal(raw_amount)
        else:
            contracts = to_decimal(entry.get("contracts")) or ZERO
            size = to_decimal(entry.get("contractSize")) or Decimal(1)
            quantity = contracts * size * (-1 if entry.get("side") == "short" else 1)
        if not quantity:
            return None
        side = PositionSide.of(info.get("positionSide") if isinstance(info, dict) else None)
        return Position(entry["symbol"], quantity, to_decimal(entry.get("entryPrice")), side)

    async def validate(self) -> None:
        """Authenticate, read the balance, and refuse keys that may withdraw or may not trade."""
        await self.ensure_markets()
        if self.name in BINANCE_FAMILY:
            restrictions = await self._call(self.exchange.sapi_get_account_apirestrictions, retry=True)
            if restrictions.get("enableWithdrawals"):
                raise errors.PermissionDenied(
                    "withdrawal-enabled keys are refused: create a key with withdrawals switched off"
                )
            trading_flag = "enableFutures" if self._is_derivatives_venue() else "enableSpotAndMarginTrading"
            if not restrictions.get(trading_flag):
                raise errors.PermissionDenied(f"this key may not trade on {self.name}: enable {trading_flag} for it")
        await self.equity()

    def _is_derivatives_venue(self) -> bool:
        default_type = self.exchange.options.get("defaultType", "spot")
        return default_type in ("swap", "future", "linear", "inverse", "delivery")

    # ------------------------------------------------------------------ orders

    async def prepare_order(self, intent: OrderIntent) -> OrderIntent:
        """Markets, the symbol's settings and a spot sell's free balance, before the send."""
        return await self._prepared(intent, None)

    async def place_order(self, intent: OrderIntent, settings: FuturesSettings | None = None) -> OrderReport:
        """Send ``intent`` once. Never retried here; see the module docstring. What was prepared
        before (``prepare_order``) is cached: only a spot sell reads its free balance again."""
        intent = await self._prepared(intent, settings)
        market = self._ccxt_market(intent.symbol)
        derivative = bool(market.get("contract"))
        amount = self._rounded_amount(intent)
        price = (
            self._rounded_price(intent.symbol, intent.price)
            if intent.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
            else None
        )
        self._check_minimums(intent, market, amount, price)
        order = await self._send_order(intent, derivative, amount, price)
        if self._lacks_commission(order, market):
            streamed = self._streamed_trades(order, market)
            if streamed is not None:
                order = _attached(order, streamed)
            elif derivative:  # no read here, in the sender's slot: completed later (``completed_commission``)
                return dataclasses.replace(await self._report(order, intent.client_order_id), fee_pending=True)
            else:  # spot: a buy's commission in the coin bought changes what the holding receives
                try:
                    order = _attached(order, await self._read_trades(order, intent.symbol, derivative))
                except errors.VenueError as exc:  # the order is placed: report it, say what is missing
                    return dataclasses.replace(
                        await self._report(order, intent.client_order_id),
                        reason=f"its commission could not be read from {self.name}: {exc}",
                    )
        return await self._report(order, intent.client_order_id)

    async def ready_to_send(self) -> None:
        """Binance: wait until one more new order keeps this account's ORDERS limits and no 429 or
        418 holds its IP back (an order weighs 0 on the IP's weight, so reads never delay it)."""
        requests: AccountRequests | None = getattr(self.exchange, "weighed_requests", None)
        if requests is not None:
            await requests.order_slot()

    async def completed_commission(self, report: OrderReport, symbol: str, *, read: bool) -> OrderReport | None:
        """A futures fill's commission after its answer (which carries none): from this account's
        order stream when it showed every execution, else with ``read`` one ``userTrades`` read by
        order id (weight 5); ``None`` while neither has every execution of the fill. Raises
        ``VenueError`` when the read fails."""
        await self.ensure_markets()
        market = self._ccxt_market(symbol)
        if not report.venue_order_id or report.filled_quantity <= 0:
            return None
        order: dict[str, Any] = {
            "id": report.venue_order_id,
            "symbol": market["symbol"],
            "filled": str(report.filled_quantity),
            "average": str(report.average_price) if report.average_price is not None else None,
        }
        trades = self._streamed_trades(order, market)
        if trades is None:
            if not read:
                return None
            trades = await self._read_trades(order, symbol, bool(market.get("contract")))
            executed = sum((to_decimal(t.get("amount")) or ZERO for t in trades), ZERO)
            if executed != report.filled_quantity:  # the trade list does not show every execution yet
                return None
        completed = await self._report(_attached(order, trades), report.client_order_id)
        return dataclasses.replace(
            report, fee=completed.fee, base_fee=completed.base_fee, reason=completed.reason, fee_pending=False
        )

    async def _prepared(self, intent: OrderIntent, settings: FuturesSettings | None) -> OrderIntent:
        await self.ensure_markets()
        market = self._ccxt_market(intent.symbol)
        derivative = bool(market.get("contract"))
        if derivative:
            if settings is None and (intent.leverage is not None or intent.margin_mode is not None):  # the follow's own
                settings = dataclasses.replace(
                    self.settings,
                    leverage=intent.leverage if intent.leverage is not None else self.settings.leverage,
                    margin_mode=intent.margin_mode or self.settings.margin_mode,
                )
            await self._prepare_symbol(intent.symbol, settings or self.settings)
        if not derivative and intent.side is Side.SELL:
            intent = await self._capped_to_free_balance(intent, market)
        return intent

    async def _send_order(self, intent: OrderIntent, derivative: bool, amount: str, price: str | None) -> Any:
        """``create_order`` once; once more only after an answer that surely placed nothing and
        that this adapter can cure: -1021 (clock resynced) and -4061 (position mode read again).
        With ``intent.send_deadline`` each attempt is signed for that same deadline (``_deadline_params``)."""
        cured: set[str] = set()
        while True:
            order_type, params = await self._order_params(intent, derivative)
            if intent.send_deadline is not None:
                params.update(self._deadline_params(intent.send_deadline))
            try:
                return await self.exchange.create_order(
                    intent.symbol, order_type, intent.side.value, amount, price, params
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                cure = await self._cure_rejection(exc, derivative)
                if cure is None or cure in cured:
                    raise self._map(exc, placing_order=True) from None
                cured.add(cure)

    def _deadline_params(self, deadline: datetime) -> dict[str, int]:
        """``timestamp`` (the venue's clock as estimated now, ms) and ``recvWindow`` such that their
        sum is ``deadline`` in whole ms, rounded down: Binance refuses the request after that moment
        (docs/research/binance.md §9). ccxt's ``sign()`` takes both from the params (binance.py
        12521–12529) and runs after its throttle (async exchange.py 998–1015), so a throttled
        request keeps this deadline. ``NotSent`` when less than ``MIN_RECV_WINDOW_MS`` is left."""
        if self.send_window is None:
            raise errors.InvalidOrder(f"{self.name} cannot bound an order request by a deadline")
        timestamp = self._estimated_venue_ms()
        recv_window = (deadline - EPOCH) // MILLISECOND - timestamp
        if recv_window < MIN_RECV_WINDOW_MS:
            raise errors.NotSent(
                f"{self.name}: {max(recv_window, 0)} ms left of the send deadline, below {MIN_RECV_WINDOW_MS} ms:"
                " the order was not sent"
            )
        if recv_window > MAX_RECV_WINDOW_MS:
            raise errors.InvalidOrder(f"{self.name}: a send deadline {recv_window} ms ahead is beyond Binance's 60 s")
        return {"timestamp": timestamp, "recvWindow": recv_window}

    def _estimated_venue_ms(self) -> int:
        """The venue's clock in ms as ccxt estimates it: local minus ``options['timeDifference']``,
        the offset ``_resync_clock`` measures (ccxt's own ``nonce()`` for Binance, binance.py 2971)."""
        difference = self.exchange.options.get("timeDifference") or 0
        return int(self.exchange.milliseconds() - int(difference))

    def estimated_venue_time(self) -> datetime:
        return EPOCH + self._estimated_venue_ms() * MILLISECOND

    async def venue_time(self) -> datetime:
        """The venue's clock as it answers it (Binance ``GET /fapi/v1/time`` / ``/api/v3/time``)."""
        if not self.exchange.has.get("fetchTime"):
            return await super().venue_time()
        answer = await self._call(self.exchange.fetch_time, retry=True, public=True)
        if answer is None:
            raise errors.TemporaryError(f"{self.name} gave no server time")
        return EPOCH + int(answer) * MILLISECOND

    async def _cure_rejection(self, exc: Exception, derivative: bool) -> str | None:
        """What was fixed for a rejection the venue gave before processing the order, if anything."""
        code = binance_code(str(exc)) if self.name in BINANCE_FAMILY else None
        if code == INVALID_TIMESTAMP or isinstance(exc, ccxt.InvalidNonce):
            await self._resync_clock()
            return "clock"
        if code == POSITION_SIDE_MISMATCH and derivative and self.settings.hedge_mode is None:
            # not learnt yet, or the user switched modes on the venue: read it (30 weight)
            sent, self._hedge_mode = bool(self._hedge_mode), None
            return "position mode" if await self._is_hedge_mode() != sent else None
        return None

    async def _capped_to_free_balance(self, intent: OrderIntent, market: Mapping[str, Any]) -> OrderIntent:
        """A spot sell never asks for more than the free balance of the coin: Binance refuses it
        whole (-2010 "Account has insufficient balance", docs/research/binance.md §6), while what
        the account holds may be a little less than the copies bought (a commission taken in the
        coin, an open order locking part of it)."""
        balance = await self._call(self.exchange.fetch_balance, retry=True)
        free = to_decimal((balance.get("free") or {}).get(market["base"])) or ZERO
        if intent.quantity <= free:
            return intent
        if free <= 0:
            raise errors.InsufficientFunds(f"no {market['base']} is free to sell on {self.name}")
        log.info("%s: selling the free %s %s instead of %s", self.name, free, market["base"], intent.quantity)
        return dataclasses.replace(intent, quantity=free)

    def _rounded_amount(self, intent: OrderIntent) -> str:
        try:
            return str(self.exchange.amount_to_precision(intent.symbol, format(intent.quantity, "f")))
        except ccxt.InvalidOrder:
            step = self._ccxt_market(intent.symbol)["precision"].get("amount")
            raise errors.InvalidOrder(
                f"{intent.symbol}: quantity {intent.quantity} rounds to zero with step {to_decimal(step)}"
            ) from None

    def _rounded_price(self, symbol: str, price: Decimal | None) -> str | None:
        if price is None:
            return None
        precision = self._ccxt_market(symbol)["precision"].get("price")
        return str(
            self.exchange.decimal_to_precision(
                format(price, "f"), TRUNCATE, precision, self.exchange.precisionMode, self.exchange.paddingMode
            )
        )

    def _check_minimums(self, intent: OrderIntent, market: Mapping[str, Any], amount: str, price: str | None) -> None:
        limits = market.get("limits") or {}
        quantity = Decimal(amount)
        min_amount = to_decimal((limits.get("amount") or {}).get("min"))
        if min_amount is not None and quantity < min_amount:
            raise errors.InvalidOrder(
                f"{intent.symbol}: quantity {_plain(quantity)} is below the minimum {_plain(min_amount)}"
            )
        min_cost = to_decimal((limits.get("cost") or {}).get("min"))
        reference = Decimal(price) if price is not None else (intent.stop_price or intent.reference_price)
        if min_cost is None or reference is None or intent.reduce_only:
            return  # Binance waives the minimum notional for reduce-only orders
        contract_size = to_decimal(market.get("contractSize")) or Decimal(1)
        notional = quantity * contract_size * reference
        if notional < min_cost:
            raise errors.InvalidOrder(
                f"{intent.symbol}: order value {_plain(notional)} ({_plain(quantity)} x {_plain(reference)})"
                f" is below the minimum {_plain(min_cost)}"
            )

    async def _order_params(self, intent: OrderIntent, derivative: bool) -> tuple[str, dict[str, Any]]:
        params: dict[str, Any] = {"clientOrderId": intent.client_order_id}
        if intent.order_type in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_MARKET):
            if intent.stop_price is None:
                raise errors.InvalidOrder(f"{intent.order_type.value} order for {intent.symbol} has no stop price")
            stop = self._rounded_price(intent.symbol, intent.stop_price)
            key = "takeProfitPrice" if intent.order_type is OrderType.TAKE_PROFIT_MARKET else "stopLossPrice"
            params[key] = stop
        if derivative:
            if await self._order_in_hedge_mode():
                # hedge mode: the copied position the order moves, else buys open longs and close
                # shorts; Binance rejects reduceOnly here
                if intent.position_side is PositionSide.BOTH:
                    long_side = (intent.side is Side.BUY) != intent.reduce_only
                else:
                    long_side = intent.position_side is PositionSide.LONG
                params["positionSide"] = "LONG" if long_side else "SHORT"
            elif intent.reduce_only:
                params["reduceOnly"] = True
        order_type = "limit" if intent.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) else "market"
        if order_type == "limit" and intent.time_in_force == "IOC":
            params["timeInForce"] = "IOC"
        return order_type, params

    def bounds_exits(self, rules: MarketRules) -> bool:
        """Futures: Binance refuses a reduce-only order above the position (-2022; the FAQ "Summary
        of Failed Orders in Binance Futures"). Spot sells are capped to the free balance instead."""
        return rules.derivative

    async def _order_in_hedge_mode(self) -> bool:
        """The position mode an order is sent in. On Binance, until it is known, one-way (the
        venue's default) without reading it: an order in the wrong mode is refused whole, either
        way (-4061, docs/research/binance.md §5), and that refusal reads the mode and sends the
        order again (``_cure_rejection``); so only accounts in hedge mode ever pay the read, once.
        Binance pushes no event when the mode changes (ACCOUNT_CONFIG_UPDATE carries leverage and
        the multi-assets mode only): a change is learnt from the next -4061 the same way."""
        if self._hedge_mode is None and self.name in BINANCE_FAMILY and self.settings.hedge_mode is None:
            return False
        return await self._is_hedge_mode()

    async def hedge_mode(self) -> bool:
        if not self._is_derivatives_venue():
            return False
        return await self._is_hedge_mode()

    async def _is_hedge_mode(self) -> bool:
        if self._hedge_mode is None:
            if self.exchange.has.get("fetchPositionMode"):
                answer = await self._call(self.exchange.fetch_position_mode, retry=True)
                self._hedge_mode = bool(answer.get("hedged"))
            else:
                self._hedge_mode = False
        return self._hedge_mode

    async def _prepare_symbol(self, symbol: str, settings: FuturesSettings) -> None:
        """Apply margin mode and leverage once per symbol (again only if the settings change)."""
        if settings.leverage is None and settings.margin_mode is None:
            return
        lock = self._symbol_locks.setdefault(symbol, asyncio.Lock())
        async with lock:
            applied = self._applied.get(symbol)
            if applied == settings:
                return
            if settings.margin_mode is not None and (applied is None or applied.margin_mode != settings.margin_mode):
                await self._set_margin_mode(symbol, settings.margin_mode)
            if settings.leverage is not None and (applied is None or applied.leverage != settings.leverage):
                await self._call(lambda: self.exchange.set_leverage(settings.leverage, symbol), retry=True)
            self._applied[symbol] = settings

    async def _set_margin_mode(self, symbol: str, margin_mode: str) -> None:
        try:
            await self._call(lambda: self.exchange.set_margin_mode(margin_mode, symbol), retry=True, raw=True)
        except ccxt.MarginModeAlreadySet:
            return

    async def price(self, symbol: str) -> Decimal:
        """Last traded price from the ticker."""
        await self.ensure_markets()
        ticker = await self._call(lambda: self.exchange.fetch_ticker(symbol), retry=True, public=True)
        price = to_decimal(ticker.get("last") or ticker.get("close"))
        if price is None or price <= 0:
            raise errors.TemporaryError(f"{self.name} gave no price for {symbol}")
        return price

    @property
    def supports_conditional_orders(self) -> bool:  # type: ignore[override]
        """Binance USD-M holds stop-market and take-profit-market orders (its algo orders)."""
        return self.name in CONDITIONAL_ORDER_VENUES

    async def cancel_order(self, client_order_id: str, symbol: str) -> bool:
        """Cancel a resting order by client order id (conditional orders are tried second);
        False when it is no longer open."""
        await self.ensure_markets()
        attempts: list[dict[str, Any]] = [{"clientOrderId": client_order_id}]
        if self._ccxt_market(symbol).get("contract") and self.name in BINANCE_FAMILY:
            attempts.append({"clientOrderId": client_order_id, "trigger": True})
        for params in attempts:
            try:
                await self._call(
                    functools.partial(self.exchange.cancel_order, None, symbol, params), retry=True, raw=True
                )
            except ccxt.OrderNotFound:
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                code = binance_code(str(exc))
                if code == ORDER_DOES_NOT_EXIST:
                    continue
                if code == UNKNOWN_ORDER_SENT:
                    return False  # found, but no longer open
                raise self._map(exc) from None
            return True
        return False

    async def fetch_order(self, client_order_id: str, symbol: str) -> OrderReport | None:
        """Look the order up by client order id; conditional (algo) orders are tried second."""
        await self.ensure_markets()
        market = self._ccxt_market(symbol)
        lookups: list[dict[str, Any]] = [{"clientOrderId": client_order_id}]
        if market.get("contract") and self.name in BINANCE_FAMILY:
            lookups.append({"clientOrderId": client_order_id, "trigger": True})
        for params in lookups:
            try:
                order = await self._call(
                    functools.partial(self.exchange.fetch_order, None, symbol, params), retry=True, raw=True
                )
            except ccxt.OrderNotFound:
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if binance_code(str(exc)) == ORDER_DOES_NOT_EXIST:
                    continue
                raise self._map(exc) from None
            actual = str((order.get("info") or {}).get("actualOrderId") or "")
            if actual and actual != "0":
                # a triggered conditional order: its fill lives on the market order it created
                child = await self._call(functools.partial(self.exchange.fetch_order, actual, symbol), retry=True)
                ack = await self._report(await self._with_trades(child, symbol), client_order_id)
                return dataclasses.replace(ack, venue_order_id=str(order.get("id") or ack.venue_order_id))
            return await self._report(await self._with_trades(order, symbol), client_order_id)
        return None

    async def order_by_id(self, order_id: str, symbol: str) -> Mapping[str, Any] | None:
        """ccxt's order by the venue's order id (a master's, for listeners); None when the venue
        no longer has it (Binance USD-M finds no order created more than 90 days ago, -2013)."""
        await self.ensure_markets()
        try:
            order: Mapping[str, Any] = await self._call(
                functools.partial(self.exchange.fetch_order, order_id, symbol), retry=True, raw=True
            )
        except ccxt.OrderNotFound:
            return None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if binance_code(str(exc)) == ORDER_DOES_NOT_EXIST:
                return None
            raise self._map(exc) from None
        return order

    async def _with_trades(self, order: Mapping[str, Any], symbol: str) -> Mapping[str, Any]:
        """An order that executed, with its executions and their fees attached when it carries
        none: Binance's order answers and look-ups (spot and USD-M) have no commission, each
        execution has (docs/research/binance.md §3, §4). They come from this account's order stream
        when it showed every execution (``StreamedExecutions``), else from the trade list by order
        id — one read (USD-M ``userTrades`` weight 5, spot ``myTrades`` weight 20), and only for an
        order with a fill. Raises ``VenueError`` when that read fails."""
        market = self._ccxt_market(symbol)
        if not self._lacks_commission(order, market):
            return order
        trades = self._streamed_trades(order, market)
        if trades is None:
            trades = await self._read_trades(order, symbol, bool(market.get("contract")))
        return _attached(order, trades)

    def _lacks_commission(self, order: Mapping[str, Any], market: Mapping[str, Any]) -> bool:
        """An order with a fill and no fee: a Binance order answer (another exchange's derivatives
        orders are taken as they are)."""
        if (to_decimal(order.get("filled")) or ZERO) <= 0 or order.get("trades") or self._fee_entries(order):
            return False
        return not market.get("contract") or self.name in BINANCE_FAMILY

    def _streamed_trades(self, order: Mapping[str, Any], market: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        """The order's executions as this account's order stream pushed them, when it showed all."""
        filled = to_decimal(order.get("filled")) or ZERO
        return self._streamed.trades(str(market.get("id") or ""), str(order.get("id") or ""), filled)

    async def _read_trades(self, order: Mapping[str, Any], symbol: str, derivative: bool) -> list[dict[str, Any]]:
        if derivative:  # ccxt's fetch_order_trades is spot-only on Binance: userTrades by order id
            read = functools.partial(self.exchange.fetch_my_trades, symbol, None, TRADES_PAGE, {"orderId": order["id"]})
        else:
            read = functools.partial(self.exchange.fetch_order_trades, order["id"], symbol)
        trades: list[dict[str, Any]] = await self._call(read, retry=True)
        return trades

    @staticmethod
    def _fee_entries(order: Mapping[str, Any]) -> list[tuple[Decimal, str | None]]:
        """The order's fees as (amount, coin), zero amounts left out."""
        entries = order.get("fees") or ([order["fee"]] if order.get("fee") else [])
        fees = [(to_decimal((entry or {}).get("cost")) or ZERO, (entry or {}).get("currency")) for entry in entries]
        return [(cost, coin) for cost, coin in fees if cost]

    async def _report(self, order: Mapping[str, Any], client_order_id: str) -> OrderReport:
        """``_ack`` with the price of every third coin a fee was paid in (Binance's BNB when the
        account pays fees with BNB): read from the venue, never guessed."""
        market = self._ccxt_market(order["symbol"]) if order.get("symbol") else {}
        base, quote = market.get("base"), market.get("quote")
        coins = {coin for _, coin in self._fee_entries(order) if coin not in (None, base, quote)}
        prices = {coin: await self._coin_price(coin, quote or self.quote_currency) for coin in sorted(coins)}
        return self._ack(order, client_order_id, prices)

    async def _coin_price(self, coin: str, quote: str) -> Decimal | None:
        """The venue's price of ``coin`` in ``quote`` (its ``coin/quote`` market, spot or perpetual),
        kept ``FEE_COIN_PRICE_SECONDS``; None when the venue lists no such market or gives no price."""
        cached = self._coin_prices.get(coin)
        now = time.monotonic()
        if cached is not None and now - cached[1] < FEE_COIN_PRICE_SECONDS:
            return cached[0]
        markets = self.exchange.markets or {}
        symbol = next((s for s in (f"{coin}/{quote}", f"{coin}/{quote}:{quote}") if s in markets), None)
        if symbol is None:
            return None
        try:
            price = await self.price(symbol)
        except errors.VenueError as exc:
            log.warning("%s: no price for %s to count a fee paid in it: %s", self.name, symbol, exc)
            return None
        self._coin_prices[coin] = (price, now)
        return price

    def _ack(
        self, order: Mapping[str, Any], client_order_id: str, coin_prices: Mapping[str, Decimal | None]
    ) -> OrderReport:
        """ccxt's unified order as our report: state, cumulative fill, fees converted to the quote
        (a fee in the base asset at the order's average price, and kept apart as ``base_fee``:
        Binance spot takes a buy's commission from the coin received; a fee in a third coin at
        ``coin_prices``). A fee whose coin has no price is left out of ``fee`` and named in the
        report's ``reason``, in its own coin."""
        info = order.get("info") or {}
        filled = to_decimal(order.get("filled")) or ZERO
        average = to_decimal(order.get("average")) if filled else None
        market = self._ccxt_market(order["symbol"]) if order.get("symbol") else {}
        quote = market.get("quote", "")
        fee = base_fee = ZERO
        unpriced: dict[str, Decimal] = {}
        for cost, asset in self._fee_entries(order):
            quote_cost = fee_in_quote(
                cost,
                asset,
                base=market.get("base", ""),
                quote=quote,
                price=average or ZERO,
                coin_price=coin_prices.get(asset or ""),
            )
            if quote_cost is None:
                unpriced[str(asset)] = unpriced.get(str(asset), ZERO) + cost
                continue
            fee += quote_cost
            if asset is not None and asset == market.get("base"):
                base_fee += cost
        reason = None
        if unpriced:
            reason = "; ".join(
                f"a commission of {_plain(cost)} {coin} is not counted in {quote}:"
                f" {self.name} gave no {coin}/{quote} price"
                for coin, cost in sorted(unpriced.items())
            )
            log.warning("%s: %s (order %s)", self.name, reason, client_order_id)
        executions = tuple(
            Execution(str(trade["id"]), Decimal(str(trade["amount"])), Decimal(str(trade["price"])))
            for trade in order.get("trades") or []
            if trade.get("id") and trade.get("amount") and trade.get("price")
        )
        return OrderReport(
            venue_order_id=str(order.get("id") or info.get("orderId") or info.get("algoId") or ""),
            client_order_id=order.get("clientOrderId") or client_order_id,
            state=self._state(order, filled),
            filled_quantity=filled,
            average_price=average,
            fee=fee,
            base_fee=base_fee,
            reason=reason,
            executions=executions,
        )

    @staticmethod
    def _state(order: Mapping[str, Any], filled: Decimal) -> OrderState:
        status = order.get("status")
        amount = to_decimal(order.get("amount"))
        if status == "closed" or (amount is not None and filled > 0 and filled >= amount):
            return OrderState.FILLED
        if status in ("canceled", "expired", "rejected"):
            return {"canceled": OrderState.CANCELED, "expired": OrderState.EXPIRED}.get(status, OrderState.REJECTED)
        return OrderState.PARTIALLY_FILLED if filled > 0 else OrderState.ACKNOWLEDGED

    # ------------------------------------------------------------------ plumbing

    async def read(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run a read-only ccxt call with this venue's error mapping and retries (for listeners)."""
        await self.ensure_markets()
        return await self._call(call, retry=True)

    async def _call(
        self, call: Callable[[], Awaitable[T]], *, retry: bool, raw: bool = False, public: bool = False
    ) -> T:
        """Run a read (or idempotent settings) call, retrying ``TemporaryError`` with backoff, and
        ``RateLimited`` (a 429 or 418 refused it unprocessed; the IP's budget holds the retry back
        until the pause ends).

        ``raw`` re-raises ccxt's own exception after retries so callers can match specific ones.
        ``public``: the call is not signed, so its success says nothing of the key (-2015 below).
        """

        async def mapped_call() -> T:
            try:
                answer = await call()
                self._key_worked = self._key_worked or not public
                return answer
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                mapped = self._map(exc)
                if isinstance(exc, ccxt.InvalidNonce) or binance_code(str(exc)) == -1021:
                    await self._resync_clock()
                if raw and isinstance(exc, ccxt.BaseError) and not isinstance(mapped, RETRIED_READ_ERRORS):
                    raise
                raise mapped from None

        def log_retry(error: Exception, delay: float) -> None:
            log.warning("%s: temporary error, retrying: %s", self.name, error)

        return await retrying.retry(
            mapped_call,
            attempts=1 + (self._read_retries if retry else 0),
            backoff=self._retry_backoff,
            retryable=lambda error: isinstance(error, RETRIED_READ_ERRORS),
            on_retry=log_retry,
        )

    async def _resync_clock(self) -> None:
        """After a -1021 (clock outside recvWindow), measure the offset to the venue's clock."""
        if not self.exchange.has.get("fetchTime"):
            return
        try:
            await self.exchange.load_time_difference()
        except Exception as exc:  # the original error is the one worth reporting
            log.warning("%s: could not resync the clock: %s", self.name, self._map(exc))

    def order_events(self) -> CcxtOrderEvents:
        """This account's order updates over a ccxt.pro client of its own (same keys, same URLs)."""
        stream = CcxtVenue.create(
            self.name,
            self.exchange.apiKey,
            self.exchange.secret,
            password=getattr(self.exchange, "password", None) or None,
            egress_proxy=self._egress_proxy,  # its requests leave from the account's IP, on its budget
            egress=self._egress,
            markets_cache=self._markets_cache,
            sandbox=self.sandbox,
            streaming=True,
            weights=self._weights,
        )
        stream.exchange.urls["api"] = copy.deepcopy(self.exchange.urls["api"])
        return CcxtOrderEvents(stream, self._streamed, keepalive_seconds=self._listen_key_keepalive)

    def mapped(self, exc: BaseException) -> errors.VenueError:
        """A ccxt exception as our error (for this account's streams)."""
        return self._map(exc)

    def _map(self, exc: BaseException, *, placing_order: bool = False) -> errors.VenueError:
        retry_after = None
        if isinstance(exc, (ccxt.RateLimitExceeded, ccxt.DDoSProtection)) or binance_code(str(exc)) in (-1003, -1015):
            headers = self.exchange.last_response_headers or {}
            header = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
            retry_after = retry_after_seconds(header)
            requests: AccountRequests | None = getattr(self.exchange, "weighed_requests", None)
            if requests is not None:  # the IP's pause: this answer's own, or a later one
                retry_after = max(retry_after or 0.0, requests.budget.paused_for()) or None
        return map_ccxt_error(
            exc,
            exchange_id=self.name,
            placing_order=placing_order,
            key_worked=self._key_worked,
            retry_after=retry_after,
            secrets=(self.exchange.apiKey, self.exchange.secret, getattr(self.exchange, "password", None) or ""),
        )

    async def close(self) -> None:
        session = None if self.exchange.own_session else self.exchange.session
        await self.exchange.close()
        if session is not None:
            await session.close()
