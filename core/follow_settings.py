"""Every setting of a follow, declared once.

One ``FollowSetting`` per setting says how a value a follower sends is parsed and checked (the
error names the setting), how a stored value becomes the engine's (``FollowSettings``), how
/settings edits it (a typed value, a toggle or a choice: callback code, button and prompt texts,
keyboard row) and which line of the follow's summary shows it. Validation, the storage mapping,
the /settings keyboard and the summary all loop over ``FOLLOW_SETTINGS``: a new setting is an
entry here, its field in ``FollowSettings`` and its storage column with a migration.

The order of the table is the order of the summary's lines (and of the checks: with several bad
values, the first one in the table is reported).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from types import MappingProxyType
from typing import Any

from core.errors import UserError
from core.model import (
    DEFAULT_PRICE_PROTECTION_PCT,
    DEFAULT_REPRICE_ATTEMPTS,
    ClosedMarketAction,
    EntrySides,
    MarginMode,
    OrderType,
    OversizeAction,
    RemainderAction,
    SizingMode,
    SlippageAction,
    plain,
)
from core.risk import normalise_symbol_list
from core.validation import (
    CLEAR_WORDS,
    MONEY_LIMIT_MAX,
    SLIPPAGE_MAX,
    TAKE_PROFIT_MAX,
    parse_bool,
    parse_choice,
    parse_decimal,
    parse_leverage,
    parse_optional_choice,
    parse_optional_decimal,
    parse_order_types,
    parse_sizing,
    parse_stop_loss,
    parse_symbols,
)

#: "Follow with recommended settings" (one confirmation): each trade sized in proportion to the
#: account (the master's quantity x your equity / the master's equity), every other setting at
#: its default (no take-profit or stop-loss), from the master's next trade on
RECOMMENDED_SETTINGS: Mapping[str, str] = MappingProxyType(
    {"sizing_mode": SizingMode.EQUITY_RATIO.value, "sizing_value": "1"}
)

#: what take-profit / stop-loss and the daily loss limit do, as the bot explains them
TP_SL_EXPLAINED = (
    "in % of your own average entry price: a resting reduce-only order on your exchange where it supports them, "
    "otherwise the price is watched every few seconds and the position closed when the level is crossed"
)
LOSS_LIMIT_EXPLAINED = (
    "when today's loss (UTC day, realized after fees plus open positions at the current price) reaches it, "
    "the follow is paused; with “close on loss limit” on, the copied positions are closed too"
)


# -- how /settings edits a setting ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SizingPicker:
    """Sizing mode and value, edited together: the mode is picked, then its value typed."""

    button: str
    row: int  # of the /settings keyboard


@dataclass(frozen=True, slots=True)
class Typed:
    """A value typed after a prompt; a "Clear (off)" button turns the setting off."""

    code: str  # in the callback data: se:e:<follow>:<code>
    button: str
    prompt: str
    row: int


@dataclass(frozen=True, slots=True)
class Toggle:
    """On/off, flipped by its button, which shows the current state."""

    code: str  # se:t:<follow>:<code>
    button: str  # shown as "<button>: on|off"
    row: int


@dataclass(frozen=True, slots=True)
class Option:
    value: enum.StrEnum | None  # None: the setting is cleared
    button: str
    shown: str  # in the follow's summary

    @property
    def code(self) -> str:
        """In the callback data: se:v:<follow>:<setting code>:<option code>."""
        return "none" if self.value is None else self.value.value


@dataclass(frozen=True, slots=True)
class Choice:
    """One of a few values, picked from a question's buttons."""

    code: str  # se:o:<follow>:<code>
    button: str  # shown as "<button>: <current value, or unset>"
    question: str
    options: tuple[Option, ...]
    row: int
    unset: str = ""  # the button's text for a cleared setting

    def option(self, code: str) -> Option | None:
        return next((option for option in self.options if option.code == code), None)

    def shown(self, value: object) -> str:
        """The summary's words for ``value`` (a stored string or the enum)."""
        return next(option.shown for option in self.options if option.value == value)


Widget = SizingPicker | Typed | Toggle | Choice


# -- the table --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FollowSetting:
    """One setting: a field of ``FollowSettings`` and a column of the ``follows`` table."""

    name: str
    #: a value a follower sent -> the value stored; raises ``UserError`` naming the setting.
    #: None for the sizing mode and value, checked as a pair (``parse_sizing``: the range depends on the mode)
    parse: Callable[[object], Any] | None
    #: the summary's line for a follow (a row or ``FollowSettings``); None: shown on another's line, or not shown
    line: Callable[[Any], str] | None = None
    widget: Widget | None = None  # None: not edited in /settings
    #: a stored value -> the engine's (``FollowSettings``)
    load: Callable[[Any], Any] = lambda value: value


def _on_off(value: bool) -> str:
    return "on" if value else "off"


def _money(value: Decimal | None) -> str:
    return "off" if value is None else plain(value)


def _percent(value: Decimal | None) -> str:
    return "off" if value is None else f"{plain(value)} %"


def sizing_text(mode: SizingMode, value: Decimal) -> str:
    if mode is SizingMode.COEFFICIENT:
        return f"coefficient × {plain(value)}"
    if mode is SizingMode.EQUITY_RATIO:
        return f"equity ratio × {plain(value)}"
    if mode is SizingMode.FIXED_NOTIONAL:
        return f"{plain(value)} (quote currency) per entry"
    return f"{plain(value)} units per entry"


def _take_profit_line(follow: Any) -> str:
    line = f"Take-profit: {_percent(follow.take_profit_pct)}, stop-loss: {_percent(follow.stop_loss_pct)}"
    if follow.take_profit_pct is None and follow.stop_loss_pct is None:
        return line
    return (
        line + " (of your own entry price; resting orders where your exchange supports them, "
        "otherwise watched every few seconds)"
    )


def _daily_loss_line(follow: Any) -> str:
    if follow.daily_loss_limit is None:
        return f"Daily loss limit: {_money(None)}"
    then = " and closes the copied positions" if follow.close_on_daily_loss else ""
    return f"Daily loss limit: {_money(follow.daily_loss_limit)} — pauses the follow{then}"


def _slippage_line(follow: Any) -> str:
    if follow.slippage_pct is None:
        return f"Slippage limit: {_percent(None)}"
    return f"Slippage limit: {_percent(follow.slippage_pct)} — {SLIPPAGE_ACTION.shown(follow.slippage_action)}"


SLIPPAGE_ACTION = Choice(
    "sa",
    "Slippage action",
    "When the price moved past your slippage limit:",
    (
        Option(SlippageAction.SKIP, "Skip the copy", "skip the copy"),
        Option(
            SlippageAction.LIMIT,
            "Send a limit order at the limit",
            "limit order at the allowed price (cancelled at once where unfilled, or after a short window "
            "where the exchange takes no immediate-or-cancel orders)",
        ),
    ),
    row=4,
)
ENTRY_SIDES = Choice(
    "es",
    "↕ Entries",
    "Which of the master's entries should be copied? (Exits are always copied.)",
    (
        Option(EntrySides.BOTH, "Long and short", "long and short"),
        Option(EntrySides.LONG, "Long only", "long only"),
        Option(EntrySides.SHORT, "Short only", "short only"),
    ),
    row=5,
)
MARGIN_MODE = Choice(
    "mm",
    "⚙ Margin",
    "Margin mode of copied futures orders:",
    (
        Option(MarginMode.CROSS, "Cross", "cross"),
        Option(MarginMode.ISOLATED, "Isolated", "isolated"),
        Option(None, "Exchange default", "exchange default"),
    ),
    row=5,
    unset="default",
)


def _optional(choices: type[enum.StrEnum]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else choices(value)


#: the longest a resting limit copy may be left to rest: one week, in minutes
MAX_RESTING_MINUTES = 7 * 24 * 60


def parse_max_resting(value: object) -> int | None:
    """Whole minutes; "off" keeps copies resting until filled, cancelled by the master, or
    cancelled on the venue."""
    minutes = parse_optional_decimal(value, field="max resting time (minutes)", high=Decimal(MAX_RESTING_MINUTES))
    if minutes is None:
        return None
    if minutes != minutes.to_integral_value() or minutes < 1:
        raise UserError("max resting time (minutes) must be a whole number of minutes, at least 1")
    return int(minutes)


#: the longest a copy offered for confirmation waits for the follower's answer: one hour
MAX_CONFIRM_SECONDS = 3600
#: the shortest: time to read the offer and press a button
MIN_CONFIRM_SECONDS = 10


def parse_confirm_seconds(value: object) -> int | None:
    """Whole seconds each copy waits for Copy or Skip; "off" sends every copy at once."""
    field_name = "manual confirmation (seconds)"
    seconds = parse_optional_decimal(value, field=field_name, high=Decimal(MAX_CONFIRM_SECONDS))
    if seconds is None:
        return None
    if seconds != seconds.to_integral_value() or seconds < MIN_CONFIRM_SECONDS:
        raise UserError(f"{field_name} must be a whole number of seconds, at least {MIN_CONFIRM_SECONDS}")
    return int(seconds)


def _confirm_line(follow: Any) -> str:
    if follow.confirm_seconds is None:
        return "Manual confirmation: off (every copy is sent at once)"
    return (
        f"Manual confirmation: on — each copy waits up to {follow.confirm_seconds} s for your Copy or Skip, "
        "then it is skipped (not confirmed)"
    )


def _resting_line(follow: Any) -> str:
    if follow.max_resting_minutes is None:
        return "Max resting time of limit copies: off (until filled, or the master cancels or moves its order)"
    return f"Max resting time of limit copies: {follow.max_resting_minutes} min (then cancelled; what filled is kept)"


def _protection_line(follow: Any) -> str:
    protection = follow.price_protection_pct
    shown = _percent(protection) if protection is not None else f"{_percent(DEFAULT_PRICE_PROTECTION_PCT)} (default)"
    return f"Price protection: {shown} — market copies as limits where the exchange takes no market orders"


def parse_product(value: object) -> str | None:
    """A venue's product type, upper case (Angel One: INTRADAY, DELIVERY, CARRYFORWARD, MARGIN);
    "off" copies the master's."""
    if value is None or str(value).strip().lower() in CLEAR_WORDS:
        return None
    product = str(value).strip().upper()
    if not re.fullmatch(r"[A-Z_]{1,16}", product):
        raise UserError("product type must be one word of letters, e.g. DELIVERY or INTRADAY")
    return product


#: the most re-sends of one protected limit a follow may ask for
MAX_REPRICE_ATTEMPTS = 10


def parse_reprice_attempts(value: object) -> int:
    """A whole number from 0 (never re-send: cancel the remainder) to ``MAX_REPRICE_ATTEMPTS``."""
    if value is None or str(value).strip().lower() in CLEAR_WORDS:
        return 0
    attempts = parse_decimal(
        value, field="re-price attempts", low=Decimal(0), high=Decimal(MAX_REPRICE_ATTEMPTS), low_inclusive=True
    )
    if attempts != attempts.to_integral_value():
        raise UserError(f"re-price attempts must be a whole number from 0 to {MAX_REPRICE_ATTEMPTS}")
    return int(attempts)


REMAINDER_ACTION = Choice(
    "ra",
    "Unfilled limit copies",
    "When a market copy sent as a limit order (exchanges without market orders) has not filled within its "
    "short window:",
    (
        Option(
            RemainderAction.REPRICE,
            "Re-price the rest",
            "the rest is cancelled and sent again at the current price, within your slippage limit",
        ),
        Option(RemainderAction.CANCEL, "Cancel the rest", "the rest is cancelled; what filled is kept"),
    ),
    row=10,
)


OVERSIZE_ACTION = Choice(
    "ov",
    "Large orders",
    "When a copy is larger than your exchange takes in one order (Binance: MARKET_LOT_SIZE for market "
    "orders, LOT_SIZE for limit orders):",
    (
        Option(
            OversizeAction.SPLIT,
            "Split into several orders",
            "split into several orders, each within the maximum",
        ),
        Option(
            OversizeAction.CAP,
            "Cap at the maximum",
            "an entry is capped at the maximum and the rest is not copied (exits are always split, so that "
            "they close the position)",
        ),
    ),
    row=11,
)
CLOSED_MARKET_ACTION = Choice(
    "cm",
    "Market closed",
    "When a copy comes while its market is closed (after the close, a holiday; Angel One):",
    (
        Option(ClosedMarketAction.SKIP, "Skip it", "skipped and recorded (market closed)"),
        Option(
            ClosedMarketAction.AFTER_MARKET,
            "After-market order",
            "sent as an after-market order (AMO) for the next open, where the broker takes one",
        ),
    ),
    row=11,
)


def _remainder_line(follow: Any) -> str:
    line = f"Unfilled limit copies: {REMAINDER_ACTION.shown(follow.remainder_action)}"
    if follow.remainder_action == RemainderAction.REPRICE:
        line += f" (at most {follow.reprice_attempts} times)"
    return line


def _symbols(value: Iterable[str]) -> frozenset[str]:
    return normalise_symbol_list(tuple(value))


FOLLOW_SETTINGS: tuple[FollowSetting, ...] = (
    FollowSetting(
        "sizing_mode",
        None,
        line=lambda f: f"Sizing: {sizing_text(f.sizing_mode, f.sizing_value)}",
        widget=SizingPicker("📏 Sizing", row=0),
        load=SizingMode,
    ),
    FollowSetting("sizing_value", None),
    FollowSetting(
        "reverse",
        partial(parse_bool, field="reverse"),
        line=lambda f: f"Reverse: {_on_off(f.reverse)}",
        widget=Toggle("rv", "🔁 Reverse", row=0),
    ),
    FollowSetting(
        "max_position_notional",
        partial(parse_optional_decimal, field="max position", high=MONEY_LIMIT_MAX),
        line=lambda f: f"Max position: {_money(f.max_position_notional)}",
        widget=Typed(
            "mp",
            "📦 Max position",
            "Send the maximum position value per symbol in the quote currency (e.g. 1000).",
            row=3,
        ),
    ),
    FollowSetting(
        "allowed_symbols",
        partial(parse_symbols, field="allow list"),
        line=lambda f: f"Allow list: {', '.join(f.allowed_symbols) or 'all symbols'}",
        widget=Typed(
            "al",
            "✅ Allow list",
            "Send the symbols to copy, separated by spaces or commas (e.g. BTC ETH). Only these will be copied.",
            row=6,
        ),
        load=_symbols,
    ),
    FollowSetting(
        "blocked_symbols",
        partial(parse_symbols, field="block list"),
        line=lambda f: f"Block list: {', '.join(f.blocked_symbols) or 'none'}",
        widget=Typed(
            "bl", "🚫 Block list", "Send the symbols never to copy, separated by spaces or commas (e.g. DOGE).", row=6
        ),
        load=_symbols,
    ),
    FollowSetting(
        "dry_run",
        partial(parse_bool, field="dry run"),
        line=lambda f: f"Dry run: {'on — orders are recorded, not sent' if f.dry_run else 'off'}",
        widget=Toggle("dr", "🧪 Dry run", row=7),
    ),
    FollowSetting(
        "take_profit_pct",
        partial(parse_optional_decimal, field="take-profit %", high=TAKE_PROFIT_MAX),
        line=_take_profit_line,
        widget=Typed(
            "tp", "🎯 Take-profit", f"Send the take-profit in % (e.g. 5). It is set {TP_SL_EXPLAINED}.", row=1
        ),
    ),
    FollowSetting(
        "stop_loss_pct",
        parse_stop_loss,
        widget=Typed("sl", "🛑 Stop-loss", f"Send the stop-loss in % (e.g. 3). It is set {TP_SL_EXPLAINED}.", row=1),
    ),
    FollowSetting(
        "daily_loss_limit",
        partial(parse_optional_decimal, field="daily loss limit", high=MONEY_LIMIT_MAX),
        line=_daily_loss_line,
        widget=Typed(
            "dl",
            "📉 Daily loss limit",
            f"Send the daily loss limit in the quote currency (e.g. 200): {LOSS_LIMIT_EXPLAINED}.",
            row=2,
        ),
    ),
    FollowSetting(
        "close_on_daily_loss",
        partial(parse_bool, field="close on loss limit"),
        line=lambda f: f"Close on loss limit: {_on_off(f.close_on_daily_loss)}",
        widget=Toggle("cl", "🔒 Close on loss limit", row=2),
    ),
    FollowSetting(
        "max_total_notional",
        partial(parse_optional_decimal, field="max total position", high=MONEY_LIMIT_MAX),
        line=lambda f: f"Max total position: {_money(f.max_total_notional)}",
        widget=Typed(
            "mt",
            "🧮 Max total position",
            "Send the maximum value of all copied positions together, in the quote currency (e.g. 5000). "
            "An entry that would go over it is not copied.",
            row=3,
        ),
    ),
    FollowSetting(
        "slippage_pct",
        partial(parse_optional_decimal, field="slippage limit %", high=SLIPPAGE_MAX),
        line=_slippage_line,
        widget=Typed(
            "sp",
            "🐢 Slippage limit",
            "Send the slippage limit in % (e.g. 0.5, at most 50): how far your exchange's price may be from the "
            "master's fill before a market copy is skipped or sent as a limit order (see “Slippage action”).",
            row=4,
        ),
    ),
    FollowSetting(
        "slippage_action",
        partial(parse_choice, choices=SlippageAction, field="slippage action"),
        widget=SLIPPAGE_ACTION,
        load=SlippageAction,
    ),
    FollowSetting(
        "entry_sides",
        partial(parse_choice, choices=EntrySides, field="entry sides"),
        line=lambda f: f"Entries copied: {ENTRY_SIDES.shown(f.entry_sides)}",
        widget=ENTRY_SIDES,
        load=EntrySides,
    ),
    FollowSetting(
        "margin_mode",
        partial(parse_optional_choice, choices=MarginMode, field="margin mode"),
        line=lambda f: f"Margin mode: {MARGIN_MODE.shown(f.margin_mode)}",
        widget=MARGIN_MODE,
        load=_optional(MarginMode),
    ),
    FollowSetting(
        "auto_sync",
        partial(parse_bool, field="auto-sync"),
        line=lambda f: (
            "Auto-sync: "
            + (
                "on — drift found by the periodic check is fixed at once"
                if f.auto_sync
                else "off — drift is reported; /sync fixes it"
            )
        ),
        widget=Toggle("as", "⚖️ Auto-sync", row=7),
    ),
    FollowSetting(
        "max_resting_minutes",
        parse_max_resting,
        line=_resting_line,
        widget=Typed(
            "mr",
            "⏳ Max resting time",
            "Send the longest a copied limit order may rest unfilled, in minutes (e.g. 30; 60 unless you set it). "
            "It is then cancelled; whatever filled is kept. “off” leaves it until it fills, or until the master "
            "cancels or moves its order.",
            row=8,
        ),
    ),
    FollowSetting(
        "confirm_seconds",
        parse_confirm_seconds,
        line=_confirm_line,
        widget=Typed(
            "cf",
            "✋ Confirm each copy",
            "Send how many seconds each copy should wait for your Copy or Skip button (e.g. 60); "
            "unanswered, it is skipped. Clear turns manual confirmation off.",
            row=8,
        ),
    ),
    FollowSetting(
        "price_protection_pct",
        partial(parse_optional_decimal, field="price protection %", high=SLIPPAGE_MAX),
        line=_protection_line,
        widget=Typed(
            "pp",
            "🛡 Price protection",
            "Send the price protection in % (e.g. 0.5, at most 50). On exchanges that take no market orders "
            "(Angel One), a market copy is sent as a limit order at the master's price plus (buy) or minus (sell) "
            "this much; it rests for a short window, then its unfilled rest is re-priced or cancelled "
            "(see “Unfilled limit copies”).",
            row=9,
        ),
    ),
    FollowSetting(
        "product",
        parse_product,
        line=lambda f: f"Product type: {f.product or 'as the master (Angel One)'}",
        widget=Typed(
            "pt",
            "🏷 Product type",
            "Send the product type your copies use instead of the master's (Angel One: INTRADAY, DELIVERY, "
            "CARRYFORWARD or MARGIN), or off to copy the master's.",
            row=9,
        ),
    ),
    FollowSetting(
        "remainder_action",
        partial(parse_choice, choices=RemainderAction, field="unfilled limit copies"),
        line=_remainder_line,
        widget=REMAINDER_ACTION,
        load=RemainderAction,
    ),
    FollowSetting(
        "reprice_attempts",
        parse_reprice_attempts,
        widget=Typed(
            "rp",
            "🔂 Re-price attempts",
            f"Send how many times at most the unfilled rest of a limit copy is sent again at the current price "
            f"(0 to {MAX_REPRICE_ATTEMPTS}; default {DEFAULT_REPRICE_ATTEMPTS}). Each new price stays within your "
            "slippage limit from the master's price (or your price protection when no slippage limit is set).",
            row=10,
        ),
    ),
    FollowSetting(
        "oversize_action",
        partial(parse_choice, choices=OversizeAction, field="large orders"),
        line=lambda f: f"Large orders: {OVERSIZE_ACTION.shown(f.oversize_action)}",
        widget=OVERSIZE_ACTION,
        load=OversizeAction,
    ),
    FollowSetting(
        "closed_market_action",
        partial(parse_choice, choices=ClosedMarketAction, field="market closed"),
        line=lambda f: f"Market closed: {CLOSED_MARKET_ACTION.shown(f.closed_market_action)}",
        widget=CLOSED_MARKET_ACTION,
        load=ClosedMarketAction,
    ),
    FollowSetting("leverage", parse_leverage),
    FollowSetting("order_types", parse_order_types, load=lambda types: frozenset(OrderType(t) for t in types)),
)
#: every setting a follower may change (the columns of ``follows`` they own)
SETTING_FIELDS = tuple(setting.name for setting in FOLLOW_SETTINGS)
SETTINGS_BY_NAME = {setting.name: setting for setting in FOLLOW_SETTINGS}


def validate_follow_changes(changes: dict[str, Any], current_mode: SizingMode | None = None) -> dict[str, Any]:
    """Check and convert a set of follow settings; raises before anything is changed."""
    unknown = set(changes) - SETTINGS_BY_NAME.keys()
    if unknown:
        raise UserError(f"unknown setting {sorted(unknown)[0]!r}")
    out: dict[str, Any] = {}
    if "sizing_mode" in changes or "sizing_value" in changes:
        if "sizing_value" not in changes:
            raise UserError("give a value together with the sizing mode")
        mode = changes.get("sizing_mode", current_mode or SizingMode.COEFFICIENT)
        out["sizing_mode"], out["sizing_value"] = parse_sizing(mode, changes["sizing_value"])
    for setting in FOLLOW_SETTINGS:
        if setting.parse is not None and setting.name in changes:
            out[setting.name] = setting.parse(changes[setting.name])
    return out
