"""The copy log as CSV (``csv`` module) and JSON: every master fill and what was done for each
follow — quantities, prices, fee, status, reason, latency.

Money and quantities are written as plain decimal strings (never floats), times as ISO 8601 in
UTC. A master fill the follow has no copy order for (the follow was paused, or a fill nobody
copied in an admin export) is a row with the copy columns empty and status ``not_copied``. An
order the copier placed on its own (take-profit, stop-loss, sync, close) has no master fill: its
master columns are empty, its timestamp is when it was placed and ``origin`` says what it was. A
write-off (``origin`` ``write_off``, status ``written_off``: what an exit found closed outside the
copier, taken off the copied position, never sent) sits under the master fill whose exit found it,
or stands alone when a close of the copier's own found it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from core.numbers import plain_decimal
from core.records import ExportRow

#: every column, in order (the fields of a classic copy log, and more)
COLUMNS: tuple[str, ...] = (
    "timestamp",  # the master's execution time
    "master",
    "master_id",
    "master_order_id",
    "master_trade_id",
    "symbol",
    "master_side",
    "master_quantity",
    "master_price",
    "master_order_type",
    "master_position_before",
    "received_at",
    "follow_id",
    "user_id",
    "account",
    "client_order_id",
    "origin",  # copy, an order the copier placed itself (take_profit, stop_loss, sync, open, close), or write_off
    "venue_order_id",
    "side",
    "order_type",
    "reduce_only",
    "requested_quantity",
    "filled_quantity",
    "average_price",
    "limit_price",
    "fee",
    "slippage_bps",  # against the master's price, positive = worse for the follower
    "status",
    "reason_code",
    "reason",
    "latency_ms",
    "dry_run",
    "created_at",
    "completed_at",
)

NOT_COPIED = "not_copied"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(plain_decimal(value), "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "value"):  # enums
        return str(value.value)
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def slippage_bps(side_sign: int, master_price: Decimal, average_price: Decimal | None) -> Decimal | None:
    """How much worse than the master's price the follower filled, in basis points."""
    if average_price is None or master_price <= 0:
        return None
    return ((average_price - master_price) / master_price * 10_000 * side_sign).quantize(Decimal("0.01"))


def row_values(row: ExportRow) -> dict[str, Any]:
    """One log line as typed values (``Decimal``, ``datetime``, ``bool``, ``str``, ``None``)."""
    fill, copy = row.fill, row.copy
    values: dict[str, Any] = {
        "timestamp": row.at,
        "master": row.master_name,
        "master_id": row.master_id,
        "follow_id": row.follow_id,
        "user_id": row.user_id,
        "account": row.account_label,
    }
    if fill is not None:
        values.update(
            master_order_id=fill.order_id,
            master_trade_id=fill.trade_id,
            symbol=fill.symbol,
            master_side=fill.side,
            master_quantity=fill.quantity,
            master_price=fill.price,
            master_order_type=fill.order_type,
            master_position_before=fill.master_position_before,
            received_at=fill.received_at,
        )
    if copy is None:
        values.update({name: None for name in COLUMNS if name not in values})
        values["status"] = NOT_COPIED
        return values
    sign = copy.side.sign if copy.side is not None else 1
    values.update(
        symbol=copy.symbol,
        client_order_id=copy.client_order_id,
        origin=getattr(copy, "origin", "copy"),
        venue_order_id=copy.venue_order_id,
        side=copy.side,
        order_type=copy.order_type if copy.side is not None else None,
        reduce_only=copy.reduce_only,
        requested_quantity=copy.requested_quantity,
        filled_quantity=copy.filled_quantity,
        average_price=copy.average_price,
        limit_price=copy.limit_price,
        fee=copy.fee,
        slippage_bps=slippage_bps(sign, copy.master_price, copy.average_price)
        if copy.filled_quantity and fill is not None
        else None,
        status=copy.status,
        reason_code=copy.reason_code,
        reason=copy.reason,
        latency_ms=copy.latency_ms,
        dry_run=copy.dry_run,
        created_at=copy.created_at,
        completed_at=copy.completed_at,
    )
    return values


@dataclass(frozen=True, slots=True)
class ExportFile:
    filename: str
    content: bytes
    mime_type: str
    rows: int


async def _collect(rows: AsyncIterable[ExportRow]) -> list[dict[str, Any]]:
    return [row_values(row) async for row in rows]


def to_csv(lines: Iterable[dict[str, Any]]) -> tuple[bytes, int]:
    """UTF-8 CSV with a header row; every value as text."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS), lineterminator="\r\n")
    writer.writeheader()
    count = 0
    for line in lines:
        writer.writerow({name: _text(line.get(name)) for name in COLUMNS})
        count += 1
    return buffer.getvalue().encode("utf-8"), count


def to_json(lines: Iterable[dict[str, Any]], *, scope: str, generated_at: datetime) -> tuple[bytes, int]:
    """``{"scope", "generated_at", "columns", "rows": [{column: text or null}]}``; numbers as
    strings so that no reader turns money into floats."""
    rows = [
        {name: (_text(line.get(name)) if line.get(name) is not None else None) for name in COLUMNS} for line in lines
    ]
    document = {"scope": scope, "generated_at": generated_at.isoformat(), "columns": list(COLUMNS), "rows": rows}
    return json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8"), len(rows)


async def build_export(
    rows: AsyncIterable[ExportRow], *, fmt: str, scope: str, basename: str, generated_at: datetime
) -> ExportFile:
    lines = await _collect(rows)
    if fmt == "csv":
        content, count = to_csv(lines)
        return ExportFile(f"{basename}.csv", content, "text/csv", count)
    if fmt == "json":
        content, count = to_json(lines, scope=scope, generated_at=generated_at)
        return ExportFile(f"{basename}.json", content, "application/json", count)
    raise ValueError(f"unknown export format {fmt!r}")
