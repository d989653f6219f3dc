"""Storage behaviour on both backends (SQLite and PostgreSQL): migrations, the copy journal,
exact money columns, UTC time columns, group-committed copy rows and the account store."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select, text
from sqlalchemy.exc import StatementError
from sqlmodel import SQLModel, col

from core.errors import NotFound, UserError
from core.journal import CopyDraft, PositionChange, ReportedOrder
from core.model import (
    CopyResult,
    CopyStatus,
    Fill,
    FollowStatus,
    OrderReport,
    OrderState,
    OrderType,
    PositionSide,
    Side,
)
from core.vault import Vault, generate_key
from storage import models  # noqa: F401  (every table on the metadata)
from storage.accounts import AccountStore
from storage.db import Database, create_sync_engine
from storage.journal import JournalStore
from storage.migrate import current_revision, head_revision, upgrade
from storage.models import (
    CopyOrder,
    Credential,
    Follow,
    FollowPosition,
    Master,
    MasterFill,
    MasterPosition,
    MasterStatus,
    User,
)

_ids = itertools.count(1)


# -- helpers: prerequisite rows -------------------------------------------------------------------


def saved(row_id: int | None) -> int:
    """The id of a flushed row (SQLModel types a primary key ``int | None`` until its INSERT)."""
    assert row_id is not None
    return row_id


async def make_user(db: Database, *, telegram_id: int | None = None, name: str = "user") -> User:
    async with db.session() as session:
        user = User(telegram_id=telegram_id, display_name=name)
        session.add(user)
        await session.flush()
        return user


async def make_credential(
    db: Database, user_id: int | None, *, label: str | None = None, venue: str = "paper", ciphertext: bytes = b"sealed"
) -> Credential:
    number = next(_ids)
    async with db.session() as session:
        row = Credential(
            id=f"cred{number:028d}",
            user_id=saved(user_id),
            venue=venue,
            label=label or f"account {number}",
            environment="paper",
            ciphertext=ciphertext,
            key_fingerprint="abc123",
        )
        session.add(row)
        await session.flush()
        return row


async def make_master(
    db: Database,
    *,
    name: str | None = None,
    status: MasterStatus = MasterStatus.ACTIVE,
    credential_id: str | None = None,
) -> Master:
    async with db.session() as session:
        row = Master(name=name or f"master {next(_ids)}", venue="paper", credential_id=credential_id, status=status)
        session.add(row)
        await session.flush()
        return row


async def make_follow(
    db: Database, user_id: int | None, master_id: int | None, credential_id: str, **fields: Any
) -> Follow:
    async with db.session() as session:
        row = Follow(user_id=saved(user_id), master_id=saved(master_id), credential_id=credential_id, **fields)
        session.add(row)
        await session.flush()
        return row


async def make_setup(db: Database) -> tuple[User, Credential, Master, Follow]:
    """A user with one key following one active master."""
    user = await make_user(db)
    credential = await make_credential(db, user.id)
    master = await make_master(db)
    follow = await make_follow(db, user.id, master.id, credential.id)
    return user, credential, master, follow


def make_fill(
    master_id: int | None,
    trade_id: str,
    *,
    side: Side = Side.BUY,
    quantity: str = "1",
    price: str = "60000",
    venue: str = "paper:master",
    symbol: str = "BTC/USDT:USDT",
) -> Fill:
    return Fill(
        master_id=saved(master_id),
        venue=venue,
        trade_id=trade_id,
        order_id=f"order-{trade_id}",
        symbol=symbol,
        side=side,
        quantity=Decimal(quantity),
        price=Decimal(price),
        executed_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
    )


def draft(client_order_id: str, fill_id: int, follow: Follow, *, status: CopyStatus = CopyStatus.PENDING) -> CopyDraft:
    return CopyDraft(
        client_order_id=client_order_id,
        fill_id=fill_id,
        follow_id=saved(follow.id),
        user_id=follow.user_id,
        symbol="BTC/USDT:USDT",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        reduce_only=False,
        status=status,
        requested_quantity=Decimal("0.5"),
        master_price=Decimal("60000"),
    )


async def count(db: Database, model: type[SQLModel]) -> int:
    async with db.session() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


# -- migrations -----------------------------------------------------------------------------------


def test_migrations_bring_an_empty_database_exactly_to_the_models(database_url):
    assert current_revision(database_url) is None
    upgrade(database_url)
    engine = create_sync_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_migrated_database_is_at_the_head_revision(database_url):
    upgrade(database_url)
    assert head_revision() is not None
    assert current_revision(database_url) == head_revision()


async def test_running_upgrade_twice_is_a_no_op_that_keeps_the_data(database_url):
    upgrade(database_url)
    db = Database(database_url)
    try:
        user = await make_user(db, telegram_id=42, name="kept")
        await asyncio.to_thread(upgrade, database_url)
        assert current_revision(database_url) == head_revision()
        kept = await AccountStore(db).user(saved(user.id))
        assert kept is not None and kept.display_name == "kept"
        assert await count(db, User) == 1
    finally:
        await db.dispose()


# -- journal_fill ---------------------------------------------------------------------------------


async def test_journal_fill_records_a_new_fill_with_position_before_zero(db, journal):
    master = await make_master(db)
    entry = await journal.journal_fill(make_fill(master.id, "t1"))
    assert entry is not None
    assert entry.master_position_before == Decimal(0)
    row = await journal.fill(entry.fill_id)
    assert row.trade_id == "t1" and row.master_id == master.id and row.quantity == Decimal(1)
    assert row.planned is False


async def test_journal_fill_second_delivery_of_same_trade_returns_none_and_writes_nothing(db, journal):
    master = await make_master(db)
    assert await journal.journal_fill(make_fill(master.id, "t1")) is not None
    assert await journal.journal_fill(make_fill(master.id, "t1")) is None
    assert await count(db, MasterFill) == 1
    # the duplicate must not move the master's position either
    async with db.session() as session:
        position = await session.get(MasterPosition, (master.id, "BTC/USDT:USDT", PositionSide.BOTH))
    assert position.quantity == Decimal(1)


async def test_journal_fill_same_trade_id_on_another_venue_is_a_new_fill(db, journal):
    master = await make_master(db)
    first = await journal.journal_fill(make_fill(master.id, "t1", venue="paper:a"))
    second = await journal.journal_fill(make_fill(master.id, "t1", venue="paper:b"))
    assert first is not None and second is not None
    assert first.fill_id != second.fill_id
    assert await count(db, MasterFill) == 2


async def test_journal_fill_unknown_master_raises_not_found_and_writes_nothing(db, journal):
    with pytest.raises(NotFound):
        await journal.journal_fill(make_fill(999_999, "t1"))
    assert await count(db, MasterFill) == 0
    assert await count(db, MasterPosition) == 0


async def test_journal_fill_retired_master_raises_not_found_and_writes_nothing(db, journal):
    master = await make_master(db, status=MasterStatus.RETIRED)
    with pytest.raises(NotFound):
        await journal.journal_fill(make_fill(master.id, "t1"))
    assert await count(db, MasterFill) == 0
    assert await count(db, MasterPosition) == 0


async def test_journal_fill_hidden_master_is_still_journaled(db, journal):
    master = await make_master(db, status=MasterStatus.HIDDEN)
    assert await journal.journal_fill(make_fill(master.id, "t1")) is not None


async def test_journal_fill_master_position_moves_with_fills(db, journal):
    master = await make_master(db)
    await journal.journal_fill(make_fill(master.id, "t1", side=Side.BUY, quantity="2"))
    second = await journal.journal_fill(make_fill(master.id, "t2", side=Side.SELL, quantity="0.5"))
    assert second.master_position_before == Decimal(2)
    third = await journal.journal_fill(make_fill(master.id, "t3", side=Side.BUY, quantity="1"))
    assert third.master_position_before == Decimal("1.5")
    other_symbol = await journal.journal_fill(make_fill(master.id, "t4", symbol="ETH/USDT:USDT"))
    assert other_symbol.master_position_before == Decimal(0)


async def test_set_master_position_seeds_the_position_before_the_first_fill(db, journal):
    master = await make_master(db)
    await journal.set_master_position(master.id, "BTC/USDT:USDT", Decimal("3"))
    entry = await journal.journal_fill(make_fill(master.id, "t1", side=Side.SELL, quantity="1"))
    assert entry.master_position_before == Decimal(3)


# -- ExactDecimal and UTCDateTime -----------------------------------------------------------------


@pytest.mark.parametrize("value", ["0.000000000000000001", "60000.5", "0.1", "-42.000000000000000001", "100"])
async def test_exact_decimal_round_trips_money_values_exactly(db, value):
    master = await make_master(db)
    async with db.session() as session:
        session.add(MasterPosition(master_id=saved(master.id), symbol="X", quantity=Decimal(value)))
    async with db.session() as session:
        row = await session.get(MasterPosition, (master.id, "X", PositionSide.BOTH))
    assert isinstance(row.quantity, Decimal)
    assert row.quantity == Decimal(value)


async def test_exact_decimal_round_trips_a_38_digit_value_exactly(db):
    value = Decimal("12345678901234567890.123456789012345678")
    master = await make_master(db)
    async with db.session() as session:
        session.add(MasterPosition(master_id=saved(master.id), symbol="X", quantity=value))
    async with db.session() as session:
        row = await session.get(MasterPosition, (master.id, "X", PositionSide.BOTH))
    assert row.quantity == value


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (Decimal(1) / Decimal(3), Decimal("0.333333333333333333")),
        (Decimal("2") / Decimal("3"), Decimal("0.666666666666666667")),
        (Decimal("0.0000000000000000005"), Decimal(0)),  # half-even: ties go to the even digit
        (Decimal("0.0000000000000000015"), Decimal("0.000000000000000002")),
    ],
    ids=["one-third", "two-thirds", "tie-down", "tie-up"],
)
async def test_exact_decimal_rounds_beyond_18_places_the_same_on_every_backend(db, value, stored):
    master = await make_master(db)
    async with db.session() as session:
        session.add(MasterPosition(master_id=saved(master.id), symbol="X", quantity=value))
    async with db.session() as session:
        row = await session.get(MasterPosition, (master.id, "X", PositionSide.BOTH))
    assert row.quantity == stored


async def test_exact_decimal_refuses_a_value_too_large_for_numeric_38_18(db):
    master = await make_master(db)
    with pytest.raises(StatementError, match="does not fit"):
        async with db.session() as session:
            session.add(
                MasterPosition(master_id=saved(master.id), symbol="X", quantity=Decimal("123456789012345678901.5"))
            )
    assert await count(db, MasterPosition) == 0


async def test_exact_decimal_refuses_a_float_for_a_money_column(db):
    master = await make_master(db)
    with pytest.raises(StatementError, match="expected Decimal"):
        async with db.session() as session:
            session.add(MasterPosition(master_id=saved(master.id), symbol="X", quantity=0.1))  # type: ignore[arg-type]
    assert await count(db, MasterPosition) == 0


async def test_utc_datetime_returns_aware_utc_for_any_offset(db):
    ist = timezone(timedelta(hours=5, minutes=30))
    moment = datetime(2025, 6, 1, 9, 15, 30, 123456, tzinfo=ist)
    user = await make_user(db)
    async with db.session() as session:
        row = await session.get(User, user.id)
        row.created_at = moment
        session.add(row)
    async with db.session() as session:
        row = await session.get(User, user.id)
    assert row.created_at.tzinfo is not None
    assert row.created_at.utcoffset() == timedelta(0)
    assert row.created_at == moment
    assert row.created_at.hour == 3 and row.created_at.minute == 45


async def test_utc_datetime_refuses_a_naive_datetime(db):
    with pytest.raises(StatementError, match="naive datetime"):
        async with db.session() as session:
            session.add(User(display_name="naive", created_at=datetime(2025, 1, 1, 12, 0)))
    assert await count(db, User) == 0


# -- copy orders: begin_copies / finish_copies -----------------------------------------------------


async def test_begin_copies_inserts_pending_rows_and_reports_existing_ids_on_repeat(db, journal):
    _, _, master, follow = await make_setup(db)
    entry = await journal.journal_fill(make_fill(master.id, "t1"))
    drafts = [draft("coid-a", entry.fill_id, follow), draft("coid-b", entry.fill_id, follow)]
    assert await journal.begin_copies(drafts) == set()
    row = await journal.copy_order("coid-a")
    assert row.status is CopyStatus.PENDING and row.requested_quantity == Decimal("0.5")
    assert row.completed_at is None
    assert await journal.begin_copies([*drafts, draft("coid-c", entry.fill_id, follow)]) == {"coid-a", "coid-b"}
    assert await count(db, CopyOrder) == 3


async def test_begin_copies_skip_draft_is_stored_as_completed(db, journal):
    _, _, master, follow = await make_setup(db)
    entry = await journal.journal_fill(make_fill(master.id, "t1"))
    await journal.begin_copies([draft("coid-s", entry.fill_id, follow, status=CopyStatus.SKIPPED)])
    row = await journal.copy_order("coid-s")
    assert row.status is CopyStatus.SKIPPED and row.completed_at is not None
    assert await journal.pending_copies() == []


async def test_pending_copies_lists_unresolved_rows_with_their_credential(db, journal):
    _, credential, master, follow = await make_setup(db)
    entry = await journal.journal_fill(make_fill(master.id, "t1"))
    await journal.begin_copies([draft("coid-p", entry.fill_id, follow)])
    [pending] = await journal.pending_copies()
    assert (pending.client_order_id, pending.follow_id, pending.credential_id) == ("coid-p", follow.id, credential.id)


async def test_concurrent_begin_copies_all_land_exactly_once(db, journal):
    _, _, master, follow = await make_setup(db)
    entry = await journal.journal_fill(make_fill(master.id, "t1"))
    ids = [f"coid-{n:03d}" for n in range(50)]
    results = await asyncio.gather(*(journal.begin_copies([draft(i, entry.fill_id, follow)]) for i in ids))
    assert results == [set()] * 50
    async with db.session() as session:
        stored = list((await session.execute(select(col(CopyOrder.client_order_id)))).scalars())
    assert sorted(stored) == ids


async def test_concurrent_begin_copies_of_the_same_id_write_one_row(db, journal):
    _, _, master, follow = await make_setup(db)
    entry = await journal.journal_fill(make_fill(master.id, "t1"))
    results = await asyncio.gather(*(journal.begin_copies([draft("same", entry.fill_id, follow)]) for _ in range(5)))
    assert sorted(len(r) for r in results) == [0, 1, 1, 1, 1]
    assert await count(db, CopyOrder) == 1


async def test_one_failing_begin_copies_does_not_fail_the_others_in_its_group(db, journal):
    _, _, master, follow = await make_setup(db)
    entry = await journal.journal_fill(make_fill(master.id, "t1"))
    good = [journal.begin_copies([draft(f"good-{n}", entry.fill_id, follow)]) for n in range(5)]
    bad = journal.begin_copies([draft("bad", 999_999, follow)])  # no such fill: foreign key violation
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert results[:5] == [set()] * 5
    assert isinstance(results[5], Exception)
    assert await count(db, CopyOrder) == 5
    assert await journal.copy_order("bad") is None


def _result(fill: Fill, follow: Follow, client_order_id: str, **fields) -> CopyResult:
    return CopyResult(
        follow_id=saved(follow.id),
        user_id=follow.user_id,
        master_id=fill.master_id,
        client_order_id=client_order_id,
        fill=fill,
        **fields,
    )


async def test_finish_copies_stores_the_outcome(db, journal):
    _, _, master, follow = await make_setup(db)
    fill = make_fill(master.id, "t1")
    entry = await journal.journal_fill(fill)
    await journal.begin_copies([draft("coid-1", entry.fill_id, follow)])
    await journal.finish_copies(
        [
            _result(
                fill,
                follow,
                "coid-1",
                status=CopyStatus.FILLED,
                side=Side.BUY,
                filled_quantity=Decimal("0.5"),
                average_price=Decimal("60001.5"),
                venue_order_id="v-9",
                fee=Decimal("0.012"),
                latency_ms=12.5,
            )
        ],
        [],
    )
    row = await journal.copy_order("coid-1")
    assert row.status is CopyStatus.FILLED
    assert row.filled_quantity == Decimal("0.5") and row.average_price == Decimal("60001.5")
    assert row.venue_order_id == "v-9" and row.fee == Decimal("0.012") and row.latency_ms == 12.5
    assert row.completed_at is not None and row.reason_code is None
    assert await journal.pending_copies() == []


async def test_finish_copies_stores_the_failure_reason(db, journal):
    _, _, master, follow = await make_setup(db)
    fill = make_fill(master.id, "t1")
    entry = await journal.journal_fill(fill)
    await journal.begin_copies([draft("coid-1", entry.fill_id, follow)])
    await journal.finish_copies(
        [
            _result(
                fill,
                follow,
                "coid-1",
                status=CopyStatus.FAILED,
                error="margin is insufficient",
                error_code="insufficient_funds",
            )
        ],
        [],
    )
    row = await journal.copy_order("coid-1")
    assert row.status is CopyStatus.FAILED
    assert (row.reason_code, row.reason) == ("insufficient_funds", "margin is insufficient")
    assert row.filled_quantity == Decimal(0)


async def _position(db: Database, follow_id: int, symbol: str = "BTC") -> FollowPosition:
    async with db.session() as session:
        position = await session.get(FollowPosition, (follow_id, symbol, False, PositionSide.BOTH))
    assert position is not None
    return position


async def test_finish_copies_moves_the_follow_position_through_add_reduce_and_flip(db, journal):
    _, _, _, follow = await make_setup(db)
    assert follow.id is not None
    await journal.finish_copies([], [PositionChange(follow.id, "BTC", Decimal(1), Decimal(100))])
    await journal.finish_copies([], [PositionChange(follow.id, "BTC", Decimal(1), Decimal(200))])
    position = await _position(db, follow.id)
    assert (position.quantity, position.entry_price, position.realized_pnl) == (Decimal(2), Decimal(150), Decimal(0))

    await journal.finish_copies([], [PositionChange(follow.id, "BTC", Decimal(-1), Decimal(250))])
    position = await _position(db, follow.id)
    assert (position.quantity, position.entry_price, position.realized_pnl) == (Decimal(1), Decimal(150), Decimal(100))

    await journal.finish_copies([], [PositionChange(follow.id, "BTC", Decimal(-2), Decimal(300))])
    position = await _position(db, follow.id)
    assert (position.quantity, position.entry_price, position.realized_pnl) == (Decimal(-1), Decimal(300), Decimal(250))
    assert await journal.follow_positions([follow.id], "BTC") == {follow.id: Decimal(-1)}


async def test_finish_copies_closing_a_short_realizes_profit_and_clears_entry(db, journal):
    _, _, _, follow = await make_setup(db)
    assert follow.id is not None
    await journal.finish_copies([], [PositionChange(follow.id, "BTC", Decimal(-2), Decimal(300))])
    await journal.finish_copies([], [PositionChange(follow.id, "BTC", Decimal(2), Decimal(250))])
    position = await _position(db, follow.id)
    assert (position.quantity, position.entry_price, position.realized_pnl) == (Decimal(0), None, Decimal(100))


# -- follows in the journal -----------------------------------------------------------------------


async def test_pause_follow_pauses_an_active_follow_once(db, journal, accounts):
    _, _, _, follow = await make_setup(db)
    assert await journal.pause_follow(follow.id, "key rejected") is True
    assert await journal.pause_follow(follow.id, "key rejected again") is False
    row = await accounts.follow(follow.id)
    assert row.status is FollowStatus.PAUSED and row.status_reason == "key rejected"


async def test_active_follows_excludes_paused_and_stopped(db, journal):
    user = await make_user(db)
    master = await make_master(db)
    creds = [await make_credential(db, user.id) for _ in range(3)]
    active = await make_follow(
        db, user.id, master.id, creds[0].id, sizing_value=Decimal("0.25"), allowed_symbols=["btc"]
    )
    await make_follow(db, user.id, master.id, creds[1].id, status=FollowStatus.PAUSED)
    await make_follow(db, user.id, master.id, creds[2].id, status=FollowStatus.STOPPED)
    follows = await journal.active_follows(master.id)
    assert [f.follow_id for f in follows] == [active.id]
    assert follows[0].sizing_value == Decimal("0.25")
    assert follows[0].allowed_symbols == frozenset({"BTC"})
    assert await journal.active_follows(saved(master.id) + 1000) == []


# -- AccountStore ---------------------------------------------------------------------------------


async def test_add_follow_twice_for_same_master_and_credential_raises_80005(db, accounts):
    user = await make_user(db)
    credential = await make_credential(db, user.id)
    master = await make_master(db)
    user_id, master_id = saved(user.id), saved(master.id)
    await accounts.add_follow(Follow(user_id=user_id, master_id=master_id, credential_id=credential.id))
    with pytest.raises(UserError, match="80005"):
        await accounts.add_follow(Follow(user_id=user_id, master_id=master_id, credential_id=credential.id))
    assert await count(db, Follow) == 1


async def test_credential_label_is_unique_per_user_only(db, accounts):
    alice = await make_user(db, name="alice")
    bob = await make_user(db, name="bob")

    def row(user_id: int | None, cid: str) -> Credential:
        return Credential(
            id=cid, user_id=saved(user_id), venue="paper", label="main", ciphertext=b"x", key_fingerprint="f"
        )

    await accounts.add_credential(row(alice.id, "c1"))
    with pytest.raises(UserError, match="main"):
        await accounts.add_credential(row(alice.id, "c2"))
    view = await accounts.add_credential(row(bob.id, "c3"))
    assert view.label == "main" and view.user_id == bob.id
    assert [c.id for c in await accounts.credentials(alice.id)] == ["c1"]
    assert await count(db, Credential) == 2


async def test_masters_counts_only_active_followers_and_lists_by_status(db, accounts):
    user = await make_user(db)
    busy = await make_master(db, name="busy")
    idle = await make_master(db, name="idle")
    hidden = await make_master(db, name="hidden", status=MasterStatus.HIDDEN)
    await make_master(db, name="retired", status=MasterStatus.RETIRED)
    creds = [await make_credential(db, user.id) for _ in range(4)]
    await make_follow(db, user.id, busy.id, creds[0].id)
    await make_follow(db, user.id, busy.id, creds[1].id)
    await make_follow(db, user.id, busy.id, creds[2].id, status=FollowStatus.PAUSED)
    await make_follow(db, user.id, hidden.id, creds[3].id)

    listed = {m.name: m.followers for m in await accounts.masters()}
    assert listed == {"busy": 2, "idle": 0}
    with_hidden = {m.name: m.followers for m in await accounts.masters(include_hidden=True)}
    assert with_hidden == {"busy": 2, "idle": 0, "hidden": 1}
    assert idle.id in {m.id for m in await accounts.masters()}


async def test_pause_all_active_pauses_everything_active_and_returns_master_ids(db, accounts):
    user = await make_user(db)
    m1, m2, m3 = await make_master(db), await make_master(db), await make_master(db)
    creds = [await make_credential(db, user.id) for _ in range(4)]
    f1 = await make_follow(db, user.id, m1.id, creds[0].id)
    f2 = await make_follow(db, user.id, m2.id, creds[1].id)
    f3 = await make_follow(db, user.id, m2.id, creds[2].id)
    stopped = await make_follow(db, user.id, m3.id, creds[3].id, status=FollowStatus.STOPPED)

    assert await accounts.pause_all_active("kill switch") == (3, {m1.id, m2.id})
    for follow in (f1, f2, f3):
        row = await accounts.follow(follow.id)
        assert row.status is FollowStatus.PAUSED and row.status_reason == "kill switch"
    assert (await accounts.follow(stopped.id)).status is FollowStatus.STOPPED
    assert await accounts.pause_all_active("again") == (0, set())


async def test_credential_ciphertext_column_never_holds_the_plaintext_secret(db, accounts):
    user = await make_user(db)
    assert user.id is not None
    vault = Vault(generate_key())
    secret = "SUPER-SECRET-api-secret-value-0123456789"
    blob = vault.encrypt({"api_key": "my-api-key-visible", "secret": secret}, owner_id=user.id, credential_id="c1")
    await accounts.add_credential(
        Credential(id="c1", user_id=user.id, venue="binance", label="main", ciphertext=blob, key_fingerprint="f")
    )
    async with db.session() as session:
        raw = (await session.execute(text("SELECT ciphertext FROM credentials WHERE id = 'c1'"))).scalar_one()
    raw = bytes(raw)
    assert raw == blob
    assert secret.encode() not in raw and b"my-api-key-visible" not in raw
    sealed = await accounts.sealed_credential("c1")
    assert vault.decrypt(sealed.ciphertext, owner_id=user.id, credential_id="c1")["secret"] == secret


async def test_replace_ciphertext_is_compare_and_swap(db, accounts):
    user = await make_user(db)
    credential = await make_credential(db, user.id, ciphertext=b"old")
    assert await accounts.replace_ciphertext(credential.id, b"not-current", b"new") is False
    assert (await accounts.sealed_credential(credential.id)).ciphertext == b"old"
    assert await accounts.replace_ciphertext(credential.id, b"old", b"new") is True
    assert (await accounts.sealed_credential(credential.id)).ciphertext == b"new"


async def test_telegram_id_above_32_bits_round_trips(db, accounts):
    big = 7_000_000_000
    user = await accounts.ensure_user(big, "big id")
    assert (await accounts.user_by_telegram_id(big)).id == user.id
    assert (await accounts.user(user.id)).telegram_id == big
    again = await accounts.ensure_user(big, "renamed")
    assert again.id == user.id and again.display_name == "renamed"
    assert await count(db, User) == 1


# -- order reports (issue 13) ----------------------------------------------------------------------


async def test_reports_of_several_orders_in_one_write_move_each_position_once(db, journal):
    user = await make_user(db)
    master = await make_master(db)
    follows = [await make_follow(db, user.id, master.id, (await make_credential(db, user.id)).id) for _ in range(2)]
    drafts = [
        CopyDraft(
            f"ct-report-{n}",
            None,
            saved(f.id),
            saved(user.id),
            "BTC/USDT:USDT",
            Side.BUY,
            OrderType.MARKET,
            False,
            CopyStatus.PENDING,
            Decimal(1),
            Decimal(100),
        )
        for n, f in enumerate(follows)
    ]
    await journal.begin_copies(drafts)
    reports = [
        ReportedOrder(
            OrderReport("v", d.client_order_id, OrderState.FILLED, Decimal("0.5"), Decimal(100), Decimal("0.1"))
        )
        for d in drafts
    ]
    first = await journal.record_reports(reports)
    again = await journal.record_reports(reports)
    assert [t is not None for t in first] == [True, True] and again == [None, None]
    for follow in follows:
        assert await journal.follow_positions([saved(follow.id)], "BTC/USDT:USDT") == {saved(follow.id): Decimal("0.5")}
    async with db.session() as session:
        rows = (
            await session.execute(select(CopyOrder).where(col(CopyOrder.client_order_id).like("ct-report-%")))
        ).scalars()
        assert (
            sorted((r.state, r.filled_quantity, r.fee) for r in rows)
            == [(OrderState.FILLED, Decimal("0.5"), Decimal("0.1"))] * 2
        )


async def test_two_processes_recording_fills_of_one_follow_at_once_lose_no_execution(db):
    """Two copiers (each its own engine and writer) record executions of one follow's copies at
    the same moment: each read-modify-write of the position holds the row (PostgreSQL) or the
    write lock (SQLite) until it commits, so no execution is lost from the ledger."""
    user = await make_user(db)
    master = await make_master(db)
    follow = await make_follow(db, user.id, master.id, (await make_credential(db, user.id)).id)
    other = Database(db.url)  # the second process
    writers = [JournalStore(db), JournalStore(other)]
    try:
        drafts = [
            CopyDraft(
                f"ct-race-{n}",
                None,
                saved(follow.id),
                saved(user.id),
                "BTC/USDT:USDT",
                Side.BUY,
                OrderType.MARKET,
                False,
                CopyStatus.PENDING,
                Decimal(1),
                Decimal(100),
            )
            for n in range(40)
        ]
        await writers[0].begin_copies(drafts)
        for pair in range(0, len(drafts), 2):  # both write at once, twenty times
            await asyncio.gather(
                *(
                    writer.record_reports(
                        [
                            ReportedOrder(
                                OrderReport("v", d.client_order_id, OrderState.FILLED, Decimal(1), Decimal(100))
                            )
                        ]
                    )
                    for writer, d in zip(writers, drafts[pair : pair + 2], strict=True)
                )
            )
        assert await writers[0].follow_positions([saved(follow.id)], "BTC/USDT:USDT") == {saved(follow.id): Decimal(40)}
    finally:
        await other.dispose()
