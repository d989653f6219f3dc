"""Inline keyboards. Callback data is ``prefix:action[:arg…]`` (at most 64 bytes), routed by
``pattern=`` in ``bot/app.py``; every id in it is re-checked against the pressing user."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

Button = tuple[str, str]  # (text, callback data)


def button(text: str, data: str) -> InlineKeyboardButton:
    if len(data.encode()) > 64:
        raise ValueError(f"callback data too long: {data!r}")
    return InlineKeyboardButton(text, callback_data=data)


def rows(buttons: Iterable[Button], per_row: int = 1) -> list[list[InlineKeyboardButton]]:
    out: list[list[InlineKeyboardButton]] = []
    for text, data in buttons:
        if not out or len(out[-1]) >= per_row:
            out.append([])
        out[-1].append(button(text, data))
    return out


def keyboard(*groups: Sequence[Button]) -> InlineKeyboardMarkup:
    """``keyboard([("A", "a:1"), ("B", "b:1")], [("Cancel", "x")])``: each argument is one row."""
    markup: list[list[InlineKeyboardButton]] = []
    for group in groups:
        if not group:
            continue
        markup.append([button(text, data) for text, data in group])
    return InlineKeyboardMarkup(markup)


def column(buttons: Iterable[Button], *extra_rows: Sequence[Button]) -> InlineKeyboardMarkup:
    """One button per row, then extra rows (navigation, cancel)."""
    markup = rows(buttons)
    for extra in extra_rows:
        if extra:
            markup.append([button(text, data) for text, data in extra])
    return InlineKeyboardMarkup(markup)


def pager(prefix: str, page: int, pages: int) -> list[Button]:
    """◀ / ▶ buttons, only those that lead somewhere."""
    nav: list[Button] = []
    if page > 0:
        nav.append(("◀ Previous", f"{prefix}:{page - 1}"))
    if page + 1 < pages:
        nav.append(("Next ▶", f"{prefix}:{page + 1}"))
    return nav
