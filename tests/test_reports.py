"""Follower PnL (realized with fees, unrealized at the mark, tracking against the master), the
/pnl chart, equity snapshots, the admin's numbers and daily summaries — on real storage with the
engine copying onto paper accounts."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from bot.report_text import daily_summary_text, pnl_text
from core.charts import png_size
from core.copying.config import EngineConfig
from core.copying.path import OrderPath
from core.engine import CopyEngine
from core.errors import NotFound, UserError
from core.listeners.supervisor import StreamHealth
from core.model import Fill, Side, SizingMode, utcnow
from core.reports import Reports, build_reports
from core.risk_service import RiskService
from core.services import Services
from core.vault import Vault, generate_key
from core.venues.paper.venue import PaperExchange
from core.venues.registry import VenueRegistry
from storage.accounts import AccountStore
from storage.db import Database
from storage.journal import JournalStore
from storage.models import Credential, Follow, Master, MasterStatus
from storage.stats import StatsStore

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
_telegram_ids = itertools.count(5000)
_key_ids = itertools.count(1)


@dataclass
class World:
    db: Database
    accounts: AccountStore
    journal: JournalStore
    exchange: PaperExchange
    vault: Vault
    registry: VenueRegistry
    engine: CopyEngine
    reports: Reports
    master_id: int = 0
    trades: int = 0
    users: dict[str, int] = field(default_factory=dict)
    telegram: dict[str, int] = field(default_factory=dict)

    async def key(self, user_id: int, label: str = "main") -> str:
        credential_id = f"k{next(_key_ids):031d}"
        blob = self.vault.encrypt({"api_key": "k", "balance": "100000"}, owner_id=user_id, credential_id=credential_id)
        await self.accounts.add_credential(
            Credential(
                id=credential_id, user_id=user_id, venue="paper", label=label, ciphertext=blob, key_fingerprint="f"
            )
        )
        return credential_id

    async def follower(self, name: str, master_id: int | None = None, **settings) -> int:
        if name not in self.users:
            telegram_id = next(_telegram_ids)
            user = await self.accounts.ensure_user(telegram_id, name)
            assert user.id is not None
            self.users[name], self.telegram[name] = user.id, telegram_id
        user_id = self.users[name]
        credential_id = await self.key(user_id, f"{name} account {master_id or self.master_id}")
        follow = await self.accounts.add_follow(
            Follow(user_id=user_id, master_id=master_id or self.master_id, credential_id=credential_id, **settings)
        )
        self.engine.invalidate_follows()
        assert follow.id is not None
        return follow.id

    async def trade(self, side: Side, qty: str, price: str, symbol: str = BTC, master_id: int | None = None):
        self.exchange.set_price(symbol, D(price))
        self.trades += 1
        fill = Fill(
            master_id or self.master_id,
            "paper:master",
            f"t{self.trades}",
            f"o{self.trades}",
            symbol,
            side,
            D(qty),
            D(price),
        )
        return await self.engine.on_fill(fill)

    def services(self) -> Services:
        return Services(
            self.accounts,
            self.vault,
            self.registry,
            lambda _m: None,
            reports=build_reports(StatsStore(self.db), self.accounts, self.registry),
            risk=RiskService(self.journal, self.engine.path, lambda _e: None),
            journal=self.journal,
        )


@pytest.fixture
async def world(db: Database) -> World:
    return await make_world(db)


async def make_world(db: Database) -> World:
    """A paper master "Trend" with an owner, on a fresh database (no followers yet)."""
    accounts = AccountStore(db)
    exchange = PaperExchange()
    vault = Vault(generate_key())

    async def paper(account):
        return exchange.account(account.credential_id, balance=D(account.secrets.get("balance", "10000")))

    registry = VenueRegistry(accounts, vault, {"paper": paper})
    journal = JournalStore(db)
    engine = CopyEngine(OrderPath(journal, registry, lambda _e: None, EngineConfig(retry_delays=(0.001,))))
    w = World(
        db,
        accounts,
        journal,
        exchange,
        vault,
        registry,
        engine,
        build_reports(StatsStore(db), accounts, registry, settle_seconds=0),
    )
    owner = await accounts.ensure_user(None, "master owner")
    assert owner.id is not None
    master = await accounts.add_master(Master(name="Trend", venue="paper", credential_id=await w.key(owner.id)))
    w.master_id = master.id
    return w


async def round_trip_and_open_position(w: World) -> dict[str, int]:
    """Alice copies at 0.5, Bob at 1, Carol only ETH (BTC is skipped for her)."""
    follows = {
        "alice": await w.follower("alice", sizing_value=D("0.5")),
        "bob": await w.follower("bob", sizing_value=D(1)),
        "carol": await w.follower("carol", allowed_symbols=[ETH]),
    }
    await w.trade(Side.BUY, "1", "60000")
    await w.trade(Side.SELL, "1", "61000")  # master +1000
    await w.trade(Side.BUY, "1", "3000", ETH)
    w.exchange.set_price(ETH, D(3100))  # open: +100 per ETH
    return follows


# -- follower PnL ---------------------------------------------------------------------------------


async def test_follower_pnl_realized_with_fees_unrealized_at_the_mark_and_tracking(world):
    follows = await round_trip_and_open_position(world)
    report = await world.reports.pnl.follow_pnl(world.users["alice"], period="7d")
    (item,) = report.follows
    assert item.follow_id == follows["alice"] and item.master_name == "Trend"
    # 0.5 BTC: +500 gross; paper fee 0.04 %: 12 on the buy, 12.2 on the sell, 0.6 on the ETH buy
    assert item.realized_gross == D(500)
    assert item.fees == D("24.8")
    assert item.realized == D("475.2")
    assert item.unrealized == D(50) and item.unrealized_complete  # 0.5 ETH × (3100 − 3000)
    (position,) = item.positions
    assert (position.symbol, position.quantity, position.entry_price, position.mark_price, position.mark_source) == (
        ETH,
        D("0.5"),
        D(3000),
        D(3100),
        "venue",
    )
    assert item.total == D("525.2")
    assert item.ledger_realized == D(500)
    assert item.master_realized == D(1000) and item.scale == D("0.5") and item.expected == D(500)
    assert item.tracking_difference == D("-24.8")  # fees are what following cost here
    assert item.copies == {"filled": 3}
    assert item.series[-1][1] == D("475.2") and item.master_series[-1][1] == D(500)
    assert (report.realized, report.unrealized, report.total, report.tracking_difference) == (
        D("475.2"),
        D(50),
        D("525.2"),
        D("-24.8"),
    )
    assert "Trend" in pnl_text(report) and "+475.20" in pnl_text(report)


async def test_skips_show_up_as_tracking_difference(world):
    await round_trip_and_open_position(world)
    (item,) = (await world.reports.pnl.follow_pnl(world.users["carol"])).follows
    assert item.realized_gross == D(0) and item.fees == D("1.2")  # her ETH buy's fee
    assert item.expected == D(1000)  # coefficient 1: the master's round trip she did not copy
    assert item.tracking_difference == D("-1001.2")
    assert item.copies == {"skipped": 2, "filled": 1}


async def test_reverse_and_non_coefficient_sizing_scale_the_master(world):
    reverse = await world.follower("dave", sizing_value=D(1), reverse=True)
    fixed = await world.follower("erin", sizing_mode=SizingMode.FIXED_QUANTITY, sizing_value=D("0.2"))
    await world.trade(Side.BUY, "1", "60000")
    await world.trade(Side.SELL, "1", "61000")
    (dave,) = (await world.reports.pnl.follow_pnl(world.users["dave"], follow_id=reverse)).follows
    assert dave.scale == D(-1) and dave.expected == D(-1000) and dave.realized_gross == D(-1000)
    (erin,) = (await world.reports.pnl.follow_pnl(world.users["erin"], follow_id=fixed)).follows
    assert erin.scale == D("0.2") and erin.realized_gross == D(200)


async def test_a_follower_never_sees_another_followers_pnl(world):
    follows = await round_trip_and_open_position(world)
    with pytest.raises(NotFound):
        await world.reports.pnl.follow_pnl(world.users["bob"], follow_id=follows["alice"])
    report = await world.reports.pnl.follow_pnl(world.users["bob"])
    assert [i.follow_id for i in report.follows] == [follows["bob"]]


async def test_period_filters_realized_pnl(world):
    await round_trip_and_open_position(world)
    world.reports.pnl.clock = lambda: utcnow() + timedelta(days=3)
    (item,) = (await world.reports.pnl.follow_pnl(world.users["alice"], period="today")).follows
    assert item.realized == D(0) and item.master_realized == D(0)
    assert item.unrealized == D(50)  # open positions are valued now, whatever the period
    with pytest.raises(UserError):
        await world.reports.pnl.follow_pnl(world.users["alice"], period="forever and a day")


async def test_dry_run_pnl_is_reported_apart(world):
    follow_id = await world.follower("fred", sizing_value=D(1), dry_run=True)
    await world.trade(Side.BUY, "1", "60000")
    await world.trade(Side.SELL, "1", "60500")
    (item,) = (await world.reports.pnl.follow_pnl(world.users["fred"], follow_id=follow_id)).follows
    assert item.realized == D(0) and item.simulated_realized == D(500)
    assert item.dry_run


async def test_mark_falls_back_to_the_last_fill_price_without_a_venue(world):
    await round_trip_and_open_position(world)
    pnl = build_reports(StatsStore(world.db), world.accounts, None, settle_seconds=0).pnl
    (item,) = (await pnl.follow_pnl(world.users["alice"])).follows
    (position,) = item.positions
    assert (position.mark_price, position.mark_source, position.unrealized) == (D(3000), "last_fill", D(0))


async def test_pnl_chart_is_a_png_with_the_numbers(world):
    await round_trip_and_open_position(world)
    report, png = await world.reports.pnl.pnl_chart(world.users["alice"], period="30d")
    assert png_size(png) == (800, 450)
    assert report.realized == D("475.2")
    _report, png_all = await world.services().pnl_chart(world.users["alice"])
    assert png_size(png_all) == (800, 450)


# -- equity snapshots -------------------------------------------------------------------------------


async def test_equity_snapshots_of_masters_and_follows(world):
    follows = await round_trip_and_open_position(world)
    report = await world.reports.snapshots.snapshot_equity()
    assert (report.masters, report.follows, report.failed) == (1, 3, ())
    store = StatsStore(world.db)
    today = utcnow().date()
    master = (await store.snapshots("master", [world.master_id]))[world.master_id]
    assert master == [(today, D(100000))]
    alice = (await store.snapshots("follow", [follows["alice"]]))[follows["alice"]]
    assert alice[0][0] == today and alice[0][1] > D(100000)  # the round trip's profit and the open ETH
    await world.reports.snapshots.snapshot_equity()  # same day again: replaced, not added
    assert len((await store.snapshots("follow", [follows["alice"]]))[follows["alice"]]) == 1


async def test_a_failing_account_does_not_stop_the_snapshots(world):
    await world.follower("gina")
    await world.accounts.add_credential(
        Credential(
            id="broken" + "0" * 26,
            user_id=world.users["gina"],
            venue="paper",
            label="broken",
            ciphertext=b"not sealed",
            key_fingerprint="f",
        )
    )
    await world.accounts.add_follow(
        Follow(user_id=world.users["gina"], master_id=world.master_id, credential_id="broken" + "0" * 26)
    )
    report = await world.reports.snapshots.snapshot_equity()
    assert report.follows == 1 and len(report.failed) == 1


# -- admin statistics ------------------------------------------------------------------------------


async def test_admin_stats(world):
    await round_trip_and_open_position(world)
    health = {world.master_id: StreamHealth(world.master_id, running=True, fills=3)}
    stats = await world.reports.admin.admin_stats(days=7, listener_health=health)
    assert stats.status_counts == {"filled": 7, "skipped": 2}
    assert stats.reason_counts == {"skipped": {"symbol_not_allowed": 1, "no_position_to_exit": 1}}
    assert sum(sum(v.values()) for v in stats.copies_per_day.values()) == 9
    assert (
        stats.success_rate == pytest.approx(7 / 9)
        and stats.skip_rate == pytest.approx(2 / 9)
        and stats.failure_rate == 0
    )
    assert stats.latency_samples == 7 and 0 <= stats.latency_p50_ms <= stats.latency_p99_ms
    assert stats.active_follows == 3 and stats.follows == {"active": 3}
    assert [(line.master_id, line.running, line.fills) for line in stats.listeners] == [(world.master_id, True, 3)]
    with pytest.raises(UserError):
        await world.reports.admin.admin_stats(days=0)


# -- daily summaries -------------------------------------------------------------------------------


async def test_daily_summary_is_off_by_default_and_sent_once_a_day_at_the_users_time(world):
    await round_trip_and_open_position(world)
    alice, carol = world.users["alice"], world.users["carol"]
    assert (await world.reports.summaries.daily_summary_setting(alice)).enabled is False
    tomorrow = utcnow().date() + timedelta(days=1)
    early = datetime.combine(tomorrow, datetime.min.time(), tzinfo=UTC) + timedelta(hours=7, minutes=59)
    assert await world.reports.summaries.due_daily_summaries(early + timedelta(minutes=2)) == []  # nobody turned it on
    await world.reports.summaries.set_daily_summary(alice, enabled=True, at="08:00")
    await world.reports.summaries.set_daily_summary(carol, enabled=True, at="07:30")
    due = await world.reports.summaries.due_daily_summaries(early)
    assert [(s.user_id, s.telegram_id) for s in due] == [(carol, world.telegram["carol"])]
    assert "2 skipped" in daily_summary_text(
        due[0].activity
    ) and "symbol not allowed ×1, no position to exit ×1" in daily_summary_text(due[0].activity)
    due = await world.reports.summaries.due_daily_summaries(early + timedelta(minutes=1))
    assert [s.user_id for s in due] == [alice]
    assert "3 filled" in daily_summary_text(
        due[0].activity
    ) and "Realized PnL: +475.20 (fees 24.80)" in daily_summary_text(due[0].activity)
    assert await world.reports.summaries.due_daily_summaries(early + timedelta(hours=3)) == []  # once a day
    with pytest.raises(UserError):
        await world.reports.summaries.set_daily_summary(alice, enabled=True, at="8 o'clock")


async def test_blocked_users_get_no_summary(world):
    await round_trip_and_open_position(world)
    await world.reports.summaries.set_daily_summary(world.users["bob"], enabled=True, at="00:00")
    await world.accounts.set_blocked(world.users["bob"], True)
    assert await world.reports.summaries.due_daily_summaries(utcnow() + timedelta(days=1)) == []


# -- the bot's entry points ------------------------------------------------------------------------


async def test_services_expose_the_statistics(world):
    follows = await round_trip_and_open_position(world)
    services = world.services()
    services.reports.refresher.settle_seconds = 0
    ranked = await services.ranked_masters("pnl")
    assert [(m.name, m.realized_pnl, m.round_trips, m.followers) for m in ranked] == [("Trend", D(1000), 1, 3)]
    detail = await services.master_statistics(world.master_id)
    assert detail.open_positions == ((ETH, D(1)),)
    assert png_size(await services.master_chart(world.master_id)) == (800, 450)
    report = await services.follow_pnl(world.users["alice"], follow_id=follows["alice"])
    assert report.realized == D("475.2")
    export = await services.export_copy_log(world.users["alice"])
    assert export.rows == 3 and export.filename.endswith(".csv")
    assert (await services.export_admin_log(fmt="json")).rows == 9
    assert (await services.admin_stats()).status_counts["filled"] == 7
    await services.set_daily_summary(world.users["alice"], enabled=True, at="00:00")
    assert (await services.daily_summary_setting(world.users["alice"])).enabled
    assert len(await services.due_daily_summaries(utcnow() + timedelta(days=1))) == 1
    with pytest.raises(NotFound):
        await services.master_statistics(999_999)


async def test_retired_master_is_not_listed(world):
    await world.services().set_master_status(world.master_id, MasterStatus.RETIRED)
    assert await world.services().ranked_masters() == []
