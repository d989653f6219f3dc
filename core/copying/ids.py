"""Deterministic client order ids: the same decision always gets the same id, so a restart, a
second process or a repeated job finds an order instead of placing it twice."""

from __future__ import annotations

import hashlib

from core.model import Fill


def client_order_id(fill: Fill, follow_id: int, leg_index: int) -> str:
    """Per (master fill, follow, leg): 32 chars of [0-9a-z], valid on every venue."""
    digest = hashlib.sha256(f"{fill.venue}|{fill.trade_id}|{follow_id}|{leg_index}".encode()).hexdigest()
    return "ct" + digest[:30]


def reprice_order_id(client_order_id: str, attempt: int) -> str:
    """The id of a protected limit's ``attempt``-th re-send, derived from the order it replaces: a
    restart re-deciding the same re-send finds it instead of sending it twice."""
    return "cr" + hashlib.sha256(f"{client_order_id}|reprice|{attempt}".encode()).hexdigest()[:30]


def moved_order_id(client_order_id: str, attempt: int) -> str:
    """The id of the ``attempt``-th replacement of a copy whose master moved its order's price,
    derived from the order it replaces: a restart re-deciding it finds it instead of sending twice."""
    return "cm" + hashlib.sha256(f"{client_order_id}|moved|{attempt}".encode()).hexdigest()[:30]


def direct_order_id(*parts: object) -> str:
    """The id of an order the copier decides itself (same follow, symbol, reason and position:
    same id)."""
    return "cx" + hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:30]


def split_order_id(client_order_id: str, part: int) -> str:
    """The id of part ``part`` (0, 1, …) of an order larger than the venue takes at once, derived
    from the order's own id: a restart re-deciding the same split finds each part instead of
    sending it twice."""
    return "cs" + hashlib.sha256(f"{client_order_id}|split|{part}".encode()).hexdigest()[:30]


def write_off_id(client_order_id: str) -> str:
    """The id of the write-off an order's decision found (what the ledger held beyond the venue's
    position when the order ``client_order_id`` was bounded by it): a re-plan finds it, never writes
    it off twice."""
    return "cw" + hashlib.sha256(f"{client_order_id}|write_off".encode()).hexdigest()[:30]
