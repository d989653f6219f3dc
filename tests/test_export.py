"""The copy log export: CSV that round-trips through the csv module with the right columns, JSON,
and ownership — a follower never exports another follower's data."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal as D

import pytest

from bot.report_text import daily_summary_text
from core.errors import NotFound, UserError
from core.export import COLUMNS, NOT_COPIED, slippage_bps
from core.model import CopyStatus, FollowStatus, OrderOrigin, Side, utcnow
from storage.db import Database
from storage.models import CopyExecution, CopyOrder, Master
from tests.test_reports import BTC, ETH, World, make_world, round_trip_and_open_position


@pytest.fixture
async def world(db: Database) -> World:
    return await make_world(db)


SEED_LOG_FIELDS = {
    "timestamp",
    "master_order_id",
    "symbol",
    "master_side",
    "master_quantity",
    "master_price",
    "account",
    "client_order_id",
    "status",
    "reason",
}  # what a classic copy log (seed 001) records, by our names


def read_csv(content: bytes) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(content.decode("utf-8"), newline=""))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


async def test_csv_round_trips_through_the_csv_module_with_every_column(world):
    follows = await round_trip_and_open_position(world)
    export = await world.reports.exports.export_user_log(world.users["alice"])
    assert (
        export.mime_type == "text/csv" and export.filename.startswith("copylog-") and export.filename.endswith(".csv")
    )
    header, rows = read_csv(export.content)
    assert tuple(header) == COLUMNS
    assert SEED_LOG_FIELDS <= set(header)
    required = {
        "timestamp",
        "master",
        "master_order_id",
        "master_trade_id",
        "symbol",
        "master_side",
        "master_quantity",
        "master_price",
        "follow_id",
        "account",
        "client_order_id",
        "side",
        "requested_quantity",
        "filled_quantity",
        "average_price",
        "fee",
        "status",
        "reason_code",
        "reason",
        "latency_ms",
        "dry_run",
    }
    assert required <= set(header)
    assert export.rows == len(rows) == 3
    assert {r["follow_id"] for r in rows} == {str(follows["alice"])}
    buy, sell, eth = rows
    assert (buy["symbol"], buy["master_side"], buy["side"], buy["status"]) == (BTC, "buy", "buy", "filled")
    assert (
        D(buy["master_quantity"]) == D(1)
        and D(buy["filled_quantity"]) == D("0.5")
        and D(buy["requested_quantity"]) == D("0.5")
    )
    assert D(buy["average_price"]) == D(60000) and D(buy["fee"]) == D(12) and D(buy["slippage_bps"]) == D(0)
    assert D(sell["master_price"]) == D(61000) and sell["side"] == "sell" and sell["reduce_only"] == "true"
    assert eth["symbol"] == ETH and float(eth["latency_ms"]) >= 0
    assert buy["master"] == "Trend" and buy["account"].startswith("alice") and buy["dry_run"] == "false"
    assert all(len(r["client_order_id"]) == 32 for r in rows)


async def test_json_export_has_the_same_rows(world):
    await round_trip_and_open_position(world)
    export = await world.reports.exports.export_user_log(world.users["carol"], fmt="json")
    document = json.loads(export.content)
    assert export.filename.endswith(".json") and document["columns"] == list(COLUMNS)
    assert [(r["symbol"], r["status"], r["reason_code"]) for r in document["rows"]] == [
        (BTC, "skipped", "symbol_not_allowed"),
        (BTC, "skipped", "no_position_to_exit"),
        (ETH, "filled", None),
    ]
    assert document["rows"][2]["filled_quantity"] == "1"  # numbers as strings, never floats
    with pytest.raises(UserError):
        await world.reports.exports.export_user_log(world.users["carol"], fmt="xlsx")


async def test_a_follower_can_never_export_another_followers_data(world):
    follows = await round_trip_and_open_position(world)
    with pytest.raises(NotFound):
        await world.reports.exports.export_user_log(world.users["bob"], follow_id=follows["alice"])
    with pytest.raises(NotFound):
        await world.services().export_copy_log(world.users["bob"], follow_id=follows["alice"])
    for name in ("alice", "bob", "carol"):
        _header, rows = read_csv((await world.reports.exports.export_user_log(world.users[name])).content)
        assert {r["follow_id"] for r in rows} == {str(follows[name])}
        assert {r["user_id"] for r in rows} == {str(world.users[name])}
    _header, rows = read_csv(
        (await world.reports.exports.export_user_log(world.users["alice"], follow_id=follows["alice"])).content
    )
    assert len(rows) == 3
    stranger = await world.accounts.ensure_user(999_001, "stranger")
    _header, rows = read_csv((await world.reports.exports.export_user_log(stranger.id)).content)
    assert rows == []


async def test_fills_a_paused_follow_did_not_copy_are_listed_as_not_copied(world):
    follows = await round_trip_and_open_position(world)
    await world.accounts.set_follow_status([follows["alice"]], FollowStatus.PAUSED, "paused")
    world.engine.invalidate_follows()
    await world.trade(Side.SELL, "1", "3100", ETH)
    _header, rows = read_csv((await world.reports.exports.export_user_log(world.users["alice"])).content)
    assert [r["status"] for r in rows] == ["filled", "filled", "filled", NOT_COPIED]
    assert rows[-1]["client_order_id"] == "" and rows[-1]["master_side"] == "sell"


async def test_admins_export_one_master_or_everything(world):
    await round_trip_and_open_position(world)
    other = await world.accounts.add_master(Master(name="Quiet", venue="paper"))
    await world.trade(Side.BUY, "2", "60000", master_id=other.id)  # nobody follows Quiet
    _header, rows = read_csv((await world.reports.exports.export_admin_log(master_id=world.master_id)).content)
    assert len(rows) == 9 and {r["master"] for r in rows} == {"Trend"}
    assert len({r["follow_id"] for r in rows}) == 3
    _header, rows = read_csv((await world.reports.exports.export_admin_log()).content)
    assert len(rows) == 10
    assert rows[-1]["master"] == "Quiet" and rows[-1]["status"] == NOT_COPIED and rows[-1]["follow_id"] == ""
    with pytest.raises(NotFound):
        await world.reports.exports.export_admin_log(master_id=424242)


def test_slippage_is_positive_when_worse_for_the_follower():
    assert slippage_bps(1, D(100), D("100.5")) == D(50)  # bought higher
    assert slippage_bps(-1, D(100), D("100.5")) == D(-50)  # sold higher: better
    assert slippage_bps(1, D(100), None) is None


async def add_own_close(world, follow_id: int, user_id: int) -> None:
    """An order the copier placed itself (as /stop → close does): no master fill behind it."""
    async with world.db.session() as session:
        session.add(
            CopyOrder(
                client_order_id="cx" + "7" * 30,
                fill_id=None,
                origin=OrderOrigin.CLOSE,
                follow_id=follow_id,
                user_id=user_id,
                symbol=ETH,
                side=Side.SELL,
                reduce_only=True,
                status=CopyStatus.FILLED,
                requested_quantity=D("0.5"),
                filled_quantity=D("0.5"),
                average_price=D(3100),
                master_price=D(3100),
                fee=D("0.62"),
                created_at=utcnow(),
                completed_at=utcnow(),
            )
        )
        await session.flush()
        session.add(  # its execution, as the journal records every one the venue reports
            CopyExecution(
                client_order_id="cx" + "7" * 30,
                filled_after=D("0.5"),
                follow_id=follow_id,
                symbol=ETH,
                side=Side.SELL,
                quantity=D("0.5"),
                ledger_quantity=D("-0.5"),
                price=D(3100),
                fee=D("0.62"),
                realized_pnl=D(50),
            )
        )


async def test_orders_the_copier_placed_itself_are_in_the_log_and_the_pnl(world):
    follows = await round_trip_and_open_position(world)
    await add_own_close(world, follows["alice"], world.users["alice"])
    _header, rows = read_csv((await world.reports.exports.export_user_log(world.users["alice"])).content)
    assert [r["origin"] for r in rows] == ["copy", "copy", "copy", "close"]
    close = rows[-1]
    assert (close["symbol"], close["side"], close["status"], close["master_trade_id"], close["master"]) == (
        ETH,
        "sell",
        "filled",
        "",
        "Trend",
    )
    _header, rows = read_csv((await world.reports.exports.export_admin_log(master_id=world.master_id)).content)
    assert [r["origin"] for r in rows][-1] == "close" and len(rows) == 10
    (item,) = (await world.reports.pnl.follow_pnl(world.users["alice"])).follows
    assert item.realized_gross == D(550)  # +500 BTC, +50 on the ETH the copier closed
    assert item.fees == D("25.42")
    summary = daily_summary_text(await world.reports.summaries.day_activity(world.users["alice"], utcnow().date()))
    assert "Copies: 4 — 4 filled" in summary and "Realized PnL: +524.58 (fees 25.42)" in summary
