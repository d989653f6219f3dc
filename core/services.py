"""Use cases behind every bot command and CLI verb. Handlers parse, authorize, call one of these
and format; the rules (ownership, validation, key checks) live here.

Every method taking a ``user_id`` only ever reads or changes that user's own rows: another
user's follow or key id is answered with "not found", as if it did not exist.
"""

from __future__ import annotations

import logging
import re
import secrets as secrets_module
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

from core.confirmations import CopyConfirmations
from core.copying.direct import DirectOrder
from core.errors import (
    AlreadyFollowing,
    AuthenticationError,
    FollowStopped,
    InvalidFollowSettings,
    NotFound,
    OrderStatusUnknown,
    PermissionDenied,
    RateLimited,
    TemporaryError,
    UnknownMaster,
    UserError,
    VenueError,
)
from core.export import ExportFile
from core.follow_settings import validate_follow_changes
from core.model import CopyResult, FollowSettings, FollowStatus, MasterStatus, OrderOrigin, SizingMode, Skip
from core.records import (
    CopyOrderRecord,
    CredentialView,
    DailySummarySettingRecord,
    DriftRecord,
    FollowRecord,
    MasterView,
    PositionRecord,
    UserRecord,
)
from core.reports import Reports
from core.reports.admin import AdminStats
from core.reports.masters import MasterStatistics
from core.reports.pnl import PnlReport
from core.reports.summaries import DailySummary
from core.risk import symbol_aliases
from core.risk_service import RiskService
from core.stores import AccountRepository, JournalReader
from core.vault import Vault, key_fingerprint
from core.venues.catalog import clean_secrets, venue_spec
from core.venues.egress import EGRESS_UNUSABLE, EgressRefused
from core.venues.paper.constants import DEFAULT_BALANCE, PAPER_VENUE
from core.venues.registry import VenueAccount, VenueRegistry

_LABEL = re.compile(r"^[\w .@#-]{1,64}$", re.UNICODE)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FollowView:
    follow: FollowRecord
    master_name: str
    account_label: str


@dataclass(frozen=True, slots=True)
class FollowStatusView:
    """One follow in ``/status``: its copied positions and the last reconciliation's findings."""

    view: FollowView
    positions: Sequence[PositionRecord]
    drifts: Sequence[DriftRecord]


def followable(status: MasterStatus) -> bool:
    """Only a listed master takes new followers, by any door (bot, API): a hidden master keeps
    copying for its followers but takes no new ones, a retired one is copied no more."""
    return status is MasterStatus.ACTIVE


class Services:
    def __init__(
        self,
        accounts: AccountRepository,
        vault: Vault,
        venues: VenueRegistry,
        on_follows_changed: Callable[[int], None],
        *,
        reports: Reports,
        risk: RiskService,
        journal: JournalReader,
        confirmations: CopyConfirmations | None = None,
        quiesce: Callable[[int], Awaitable[Sequence[str]]] | None = None,
    ) -> None:
        """``on_follows_changed(master_id)`` tells the engine to drop the follows it cached, so
        that a change takes effect on the very next fill;
        ``quiesce(follow_id)`` waits for a stopped follow's copies in flight and settles them
        (``CopyEngine.quiesce``) before its positions are closed."""
        self.accounts = accounts
        self.vault = vault
        self.venues = venues
        self.reports = reports
        self.risk = risk
        self._journal = journal
        self._confirmations = confirmations
        self._on_follows_changed = on_follows_changed
        self._quiesce = quiesce

    async def _reset_positions(self, follow_id: int, *, simulated: bool | None = None) -> None:
        await self.accounts.clear_positions(follow_id, simulated=simulated)

    # -- users --------------------------------------------------------------------------------

    async def register_user(self, telegram_id: int | None, display_name: str = "") -> UserRecord:
        return await self.accounts.ensure_user(telegram_id, display_name)

    async def user(self, user_id: int) -> UserRecord | None:
        return await self.accounts.user(user_id)

    async def user_by_telegram_id(self, telegram_id: int) -> UserRecord | None:
        return await self.accounts.user_by_telegram_id(telegram_id)

    async def set_blocked(self, user_id: int, blocked: bool) -> None:
        """The user blocked (or unblocked) the bot: broadcasts and notifications skip them."""
        await self.accounts.set_blocked(user_id, blocked)

    async def broadcast_recipients(self, master_id: int | None = None) -> list[tuple[int, int]]:
        """``(user_id, telegram_id)`` of every reachable user, or of one master's followers."""
        return await self.accounts.broadcast_recipients(master_id)

    # -- exchange accounts --------------------------------------------------------------------

    async def connect_account(
        self, user_id: int, venue: str, label: str, raw_secrets: dict[str, str], *, environment: str = "live"
    ) -> CredentialView:
        """Validate the key against the venue, then store it sealed. Nothing is stored on failure."""
        spec = venue_spec(venue)
        available = ", ".join(sorted(self.venues.venue_names))
        if spec is None:
            raise UserError(f"{venue!r} is not a supported venue; choose one of {available}")
        label = label.strip()
        if not _LABEL.match(label):
            raise UserError("the label must be 1 to 64 letters, digits, spaces or . @ # -")
        cleaned = clean_secrets(spec, raw_secrets)
        if venue not in self.venues.venue_names:
            raise UserError(f"{venue} is not available in this deployment ({spec.title}); choose one of {available}")
        credential_id = secrets_module.token_hex(16)
        account = VenueAccount(credential_id, venue, environment, cleaned)
        # through an egress proxy, every failure but the venue's own verdict on the key reads the
        # same (EGRESS_UNUSABLE): refused, unresolvable, closed, silent or not a proxy
        through_egress = bool(cleaned.get("egress_proxy"))
        try:
            adapter = await self.venues.build(account)
            try:
                await adapter.validate()
            finally:
                await adapter.close()
        except EgressRefused:
            raise UserError(EGRESS_UNUSABLE) from None
        except (TemporaryError, RateLimited, OrderStatusUnknown):
            if through_egress:
                raise UserError(EGRESS_UNUSABLE) from None
            raise UserError(
                f"{spec.title} could not be reached to check the key; nothing was saved, try again in a minute"
            ) from None
        except VenueError as exc:
            if through_egress and not isinstance(exc, AuthenticationError | PermissionDenied):
                raise UserError(EGRESS_UNUSABLE) from None
            raise UserError(f"{spec.title} refused this key: {exc}") from None
        view = await self.accounts.create_credential(
            credential_id=credential_id,
            user_id=user_id,
            venue=venue,
            label=label,
            environment=environment,
            ciphertext=self.vault.encrypt(cleaned, owner_id=user_id, credential_id=credential_id),
            key_fingerprint=key_fingerprint(cleaned[spec.identity_field]),
        )
        await self.accounts.mark_validated(credential_id)
        return view

    async def paper_account(self, user_id: int) -> CredentialView:
        """The user's paper account, created funded with the default balance on first use:
        trying the service takes no exchange key."""
        for account in await self.accounts_of(user_id):
            if account.venue == PAPER_VENUE.name:
                return account
        return await self.connect_account(
            user_id,
            PAPER_VENUE.name,
            "paper",
            {"api_key": f"paper-{secrets_module.token_hex(8)}", "balance": str(DEFAULT_BALANCE)},
            environment="paper",
        )

    async def accounts_of(self, user_id: int) -> list[CredentialView]:
        return await self.accounts.credentials(user_id)

    async def own_account(self, user_id: int, credential_id: str) -> CredentialView:
        view = await self.accounts.credential(credential_id)
        if view is None or view.user_id != user_id:
            raise NotFound("no such exchange account")
        return view

    async def remove_account(self, user_id: int, credential_id: str) -> CredentialView:
        view = await self.own_account(user_id, credential_id)
        in_use = await self.accounts.follows_using(credential_id)
        if in_use:
            raise UserError(f"{view.label} still copies {len(in_use)} master(s); stop those follows first")
        if await self.accounts.masters_using(credential_id):
            raise UserError(f"{view.label} is the key of a master trader; retire the master first")
        await self.venues.forget(credential_id)
        await self.accounts.delete_credential(credential_id)
        return view

    # -- masters ------------------------------------------------------------------------------

    async def add_master(
        self, name: str, venue: str, *, owner_id: int, credential_id: str | None, description: str = ""
    ) -> MasterView:
        name = name.strip()
        if not 2 <= len(name) <= 64:
            raise UserError("a master's name must be 2 to 64 characters")
        if len(description) > 500:
            raise UserError("the description may be at most 500 characters")
        if credential_id is not None:
            credential = await self.own_account(owner_id, credential_id)
            if credential.venue != venue:
                raise UserError(f"that key is for {credential.venue}, not {venue}")
        return await self.accounts.create_master(
            name=name, venue=venue, credential_id=credential_id, description=description.strip()
        )

    async def masters(self, *, include_hidden: bool = False) -> list[MasterView]:
        return await self.accounts.masters(include_hidden=include_hidden)

    @property
    def venue_names(self) -> frozenset[str]:
        """The venues this deployment can open (paper mode: only the simulated one)."""
        return self.venues.venue_names

    async def master_positions(self, master_id: int) -> dict[str, Decimal]:
        """The master's net positions now, as journaled (non-zero only)."""
        return await self._journal.master_positions(master_id)

    async def master_name(self, master_id: int) -> str | None:
        """The master's name, retired masters included (``None``: no such master)."""
        master = await self.accounts.master(master_id)
        return master.name if master is not None else None

    async def set_master_status(self, master_id: int, status: MasterStatus) -> None:
        if not await self.accounts.set_master_status(master_id, status):
            raise NotFound(f"no master with id {master_id}")
        self._on_follows_changed(master_id)

    # -- follows ------------------------------------------------------------------------------

    async def master_account_warning(self, master_id: int, credential_id: str) -> str | None:
        """A master's own account about to copy another master: its copies become that master's
        own trades, which its followers copy in turn. ``None`` for any other account."""
        others = [
            m.name
            for m in await self.accounts.masters_using(credential_id)
            if m.id != master_id and m.status is not MasterStatus.RETIRED
        ]
        if not others:
            return None
        names = ", ".join(others)
        return (
            f"⚠️ This account is the master account of {names}: the copies become {names}'s own trades, "
            "and its followers copy them too."
        )

    def preview_follow(
        self, user_id: int, master_id: int, credential_id: str, settings: Mapping[str, Any]
    ) -> FollowRecord:
        """The follow ``follow`` would create with these settings, not stored (for a summary)."""
        return self.accounts.draft_follow(user_id, master_id, credential_id, validate_follow_changes(dict(settings)))

    async def follow(
        self, user_id: int, master_id: int, credential_id: str, settings: dict[str, Any] | None = None
    ) -> FollowRecord:
        master = await self.accounts.master(master_id)
        if master is None or not followable(master.status):
            raise UnknownMaster("no such master")
        credential = await self.own_account(user_id, credential_id)
        if master.credential_id == credential_id:
            raise UserError("a master cannot copy itself")
        changes = await self._valid_settings(credential.id, settings or {})
        existing = await self.accounts.follow_for(master_id, credential_id)
        if existing is not None and existing.status is not FollowStatus.STOPPED:
            raise AlreadyFollowing(f"already following {master.name} with {credential.label} (error 80005)")
        row: FollowRecord | None
        if existing is not None:  # a stopped follow is started again with the new settings
            assert existing.id is not None
            await self._reset_positions(existing.id)
            row = await self.accounts.restart_follow(existing.id, changes)
            assert row is not None
        else:
            row = await self.accounts.create_follow(user_id, master_id, credential_id, changes)
        self._on_follows_changed(master_id)
        return row

    async def answer_copy_offer(self, user_id: int, offer_id: str, *, copy: bool) -> CopyResult:
        """Manual confirmation: the follower's Copy (``copy``) or Skip for an offered copy."""
        if self._confirmations is None:
            raise UserError("manual confirmation is not available in this deployment")
        if copy:
            return await self._confirmations.confirm(user_id, offer_id)
        return await self._confirmations.decline(user_id, offer_id)

    async def own_follow(self, user_id: int, follow_id: int) -> FollowRecord:
        row = await self.accounts.follow(follow_id)
        if row is None or row.user_id != user_id:
            raise NotFound("no such follow")
        return row

    async def follows_of(self, user_id: int) -> Sequence[FollowRecord]:
        return await self.accounts.follows_of_user(user_id)

    async def update_follow(self, user_id: int, follow_id: int, changes: dict[str, Any]) -> FollowRecord:
        """Validate and apply settings; they take effect on the master's next fill."""
        row = await self.own_follow(user_id, follow_id)
        if row.status is FollowStatus.STOPPED:
            raise FollowStopped()
        assert row.credential_id is not None  # only a stopped follow loses its key
        validated = await self._valid_settings(row.credential_id, changes, current_mode=row.sizing_mode)
        if "dry_run" in validated and validated["dry_run"] != row.dry_run:
            # a simulation starts afresh and ends without a trace; real positions stay as they are
            await self._reset_positions(follow_id, simulated=True)
        updated = await self.accounts.update_follow(follow_id, validated)
        assert updated is not None
        self._on_follows_changed(row.master_id)
        return updated

    async def set_status(self, user_id: int, follow_id: int, status: FollowStatus) -> FollowRecord:
        row = await self.own_follow(user_id, follow_id)
        if row.status is FollowStatus.STOPPED and status is not FollowStatus.STOPPED:
            raise FollowStopped()
        updated = await self.accounts.update_follow(follow_id, {"status": status, "status_reason": None})
        assert updated is not None
        self._on_follows_changed(row.master_id)
        return updated

    async def stop_follow(
        self, user_id: int, follow_id: int, *, close_positions: bool
    ) -> tuple[FollowRecord, list[CopyResult]]:
        """Stop copying, then optionally close what the copier opened: reduce-only market orders
        through ``RiskService.close_positions`` — only the follow's copied positions, never the
        user's own; journaled first with an id derived from the position, so closing again looks
        the order up instead of sending it twice. The stop is written first: from then on the
        journal's fence lets no copy of this follow out, in any process; the copies already on
        their way are waited for and settled, and only then is what the follow holds closed."""
        follow = await self.set_status(user_id, follow_id, FollowStatus.STOPPED)
        if not close_positions:
            return follow, []
        if self._quiesce is not None:
            unknown = await self._quiesce(follow_id)
            if unknown:
                log.warning("follow %s stopped with %d copies of unknown outcome", follow_id, len(unknown))
        return follow, await self.risk.close_positions(await self._settings(follow_id), origin=OrderOrigin.CLOSE)

    async def pause_all(self, reason: str) -> int:
        """The admin kill switch: every active follow paused at once."""
        count, master_ids = await self.accounts.pause_all_active(reason)
        for master_id in master_ids:
            self._on_follows_changed(master_id)
        return count

    async def _valid_settings(
        self, credential_id: str, changes: dict[str, Any], *, current_mode: SizingMode | None = None
    ) -> dict[str, Any]:
        """The settings checked and converted (symbols against the account's venue); an
        ``InvalidFollowSettings`` names the first bad one."""
        try:
            validated = validate_follow_changes(changes, current_mode=current_mode)
            await self._check_symbols(credential_id, validated)
        except InvalidFollowSettings:
            raise
        except UserError as exc:
            raise InvalidFollowSettings(str(exc)) from None
        return validated

    async def _check_symbols(self, credential_id: str, changes: dict[str, Any]) -> None:
        names = [*changes.get("allowed_symbols", []), *changes.get("blocked_symbols", [])]
        if not names:
            return
        venue = await self.venues.venue_for(credential_id)
        known: set[str] = set()
        for symbol in await venue.symbols():
            known |= symbol_aliases(symbol)
        unknown = [n for n in names if n not in known]
        if unknown:
            raise UserError(f"{unknown[0]} is not traded on {venue.name}")

    async def _settings(self, follow_id: int) -> FollowSettings:
        settings = await self.accounts.follow_settings(follow_id)
        if settings is None:
            raise NotFound("no such follow")
        return settings

    # -- positions: opening the master's, checking and syncing with the venue -----------------

    async def open_master_positions(self, user_id: int, follow_id: int) -> list[CopyResult | Skip]:
        """Copy the master's open positions at the follow's sizing (a follow just started)."""
        await self.own_follow(user_id, follow_id)
        return await self.risk.open_master_positions(await self._settings(follow_id))

    async def open_positions_plan(self, user_id: int, follow_id: int) -> list[DirectOrder | Skip]:
        """What ``open_master_positions`` would send now (sizes, or why not), nothing sent: the
        offer made to a new follower while the master holds positions."""
        await self.own_follow(user_id, follow_id)
        return await self.risk.plan_open_positions(await self._settings(follow_id))

    async def check_drift(self, user_id: int, follow_id: int) -> dict[str, tuple[Decimal, Decimal]]:
        """Compare the venue's positions with the copy history: ``symbol → (wanted, held)``, a
        hedge-mode account's legs apart as ``"symbol long"`` / ``"symbol short"``."""
        await self.own_follow(user_id, follow_id)
        return await self.risk.reconcile(await self._settings(follow_id))

    async def drift_pending(self, user_id: int, follow_id: int) -> bool:
        """Whether the last check's findings are still open (auto-sync clears them as it sends)."""
        await self.own_follow(user_id, follow_id)
        return bool(await self._journal.drifts(follow_id))

    async def sync(self, user_id: int, follow_id: int) -> list[CopyResult]:
        """Send the orders that bring the venue in line with the copy history."""
        await self.own_follow(user_id, follow_id)
        return await self.risk.sync(await self._settings(follow_id))

    # -- read models for the bot (added with the Telegram front end) ---------------------------

    async def follow_views(self, user_id: int, *, include_stopped: bool = False) -> list[FollowView]:
        """The user's follows with the master's name and the account's label, for display."""
        follows = await self.accounts.follows_of_user(user_id, include_stopped=include_stopped)
        labels = {view.id: view.label for view in await self.accounts.credentials(user_id)}
        names: dict[int, str] = {}
        out = []
        for row in follows:
            if row.master_id not in names:
                master = await self.accounts.master(row.master_id)
                names[row.master_id] = master.name if master else f"master #{row.master_id}"
            out.append(FollowView(row, names[row.master_id], labels.get(row.credential_id or "", "removed account")))
        return out

    async def own_follow_view(self, user_id: int, follow_id: int) -> FollowView:
        row = await self.own_follow(user_id, follow_id)
        master = await self.accounts.master(row.master_id)
        credential = await self.accounts.credential(row.credential_id) if row.credential_id else None
        return FollowView(
            row,
            master.name if master else f"master #{row.master_id}",
            credential.label if credential else "removed account",
        )

    async def follow_statuses(self, user_id: int) -> list[FollowStatusView]:
        """``/status``: each follow (stopped ones left out) with its open copied positions and
        the last reconciliation's findings."""
        out = []
        for view in await self.follow_views(user_id):
            assert view.follow.id is not None
            positions = await self.accounts.follow_positions_of(view.follow.id)
            out.append(FollowStatusView(view, positions, await self._journal.drifts(view.follow.id)))
        return out

    async def copies_today(self, user_id: int | None) -> dict[str, int]:
        """Copy orders created since 00:00 UTC by status (every user's when ``user_id`` is None)."""
        today = datetime.combine(datetime.now(UTC).date(), time(), tzinfo=UTC)
        return await self.accounts.copy_counts_since(user_id, today)

    async def copy_history(
        self,
        user_id: int,
        *,
        limit: int,
        offset: int = 0,
        follow_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Sequence[CopyOrderRecord]:
        """The user's copy orders, newest first; of one of their follows (``NotFound`` for
        anyone else's), created in ``[since, until)``."""
        if follow_id is not None:
            await self.own_follow(user_id, follow_id)
        return await self.accounts.copy_history(
            user_id, limit=limit, offset=offset, follow_id=follow_id, since=since, until=until
        )

    async def copy_history_count(
        self,
        user_id: int,
        *,
        follow_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        return await self.accounts.copy_history_count(user_id, follow_id=follow_id, since=since, until=until)

    async def system_counts(self) -> dict[str, int]:
        """Users, keys, masters and follows by status, for the admin's ``/stats``."""
        return await self.accounts.counts()

    async def master(self, master_id: int, *, include_hidden: bool = False) -> MasterView:
        """One listed master (hidden ones only for admins); "not found" otherwise."""
        for view in await self.accounts.masters(include_hidden=include_hidden):
            if view.id == master_id:
                return view
        raise NotFound("no such master (it may have been retired)")

    async def set_statuses(self, user_id: int, status: FollowStatus) -> list[FollowRecord]:
        """Pause or resume every follow of the user that is not stopped."""
        changed = []
        for row in await self.accounts.follows_of_user(user_id):
            assert row.id is not None
            if row.status is not status:
                changed.append(await self.set_status(user_id, row.id, status))
        return changed

    # -- statistics, PnL, charts, exports, daily summaries (see core/reports/) -----------------

    async def ranked_masters(
        self, sort_by: str = "followers", *, include_hidden: bool = False, descending: bool | None = None
    ) -> list[MasterStatistics]:
        """``/masters``: listed masters with their statistics, best first by ``sort_by`` (a key of
        ``core.reports.masters.RANK_KEYS``); statistics are brought up to date first."""
        return await self.reports.masters.ranked_masters(sort_by, include_hidden=include_hidden, descending=descending)

    async def master_statistics(self, master_id: int, *, include_hidden: bool = False) -> MasterStatistics:
        """A master's detail page: every statistic (``NotFound`` for an unlisted master)."""
        return await self.reports.masters.master_detail(master_id, include_hidden=include_hidden)

    async def master_chart(self, master_id: int, *, days: int = 90, include_hidden: bool = False) -> bytes:
        """PNG (800×450) of the master's equity curve (or cumulative realized PnL without snapshots)."""
        return await self.reports.masters.master_chart(master_id, days=days, include_hidden=include_hidden)

    async def follow_pnl(self, user_id: int, *, period: str | None = None, follow_id: int | None = None) -> PnlReport:
        """``/pnl [period]`` numbers: the user's own follows only (another's follow id: ``NotFound``)."""
        return await self.reports.pnl.follow_pnl(user_id, period=period, follow_id=follow_id)

    async def pnl_chart(
        self, user_id: int, *, period: str | None = None, follow_id: int | None = None
    ) -> tuple[PnlReport, bytes]:
        """``/pnl [period]``: the report and a PNG of the user's PnL curve against the master's."""
        return await self.reports.pnl.pnl_chart(user_id, period=period, follow_id=follow_id)

    async def export_copy_log(self, user_id: int, *, follow_id: int | None = None, fmt: str = "csv") -> ExportFile:
        """``/export``: the user's own copy log as CSV or JSON (ownership enforced here)."""
        return await self.reports.exports.export_user_log(user_id, follow_id=follow_id, fmt=fmt)

    async def export_admin_log(self, *, master_id: int | None = None, fmt: str = "csv") -> ExportFile:
        """Admins only (the bot checks the role): one master's copy log, or the whole system's."""
        return await self.reports.exports.export_admin_log(master_id=master_id, fmt=fmt)

    async def admin_stats(self, *, days: int = 7, listener_health: Mapping[int, Any] | None = None) -> AdminStats:
        """Admin ``/stats``: copies per day, status and reason counts, p50/p99 latency, follows and
        stream health (pass ``App.listeners.health``)."""
        return await self.reports.admin.admin_stats(days=days, listener_health=listener_health)

    async def set_daily_summary(
        self, user_id: int, *, enabled: bool, at: str | None = None
    ) -> DailySummarySettingRecord:
        """Turn the user's daily summary on or off; ``at`` is "HH:MM" UTC (default 08:00)."""
        return await self.reports.summaries.set_daily_summary(user_id, enabled=enabled, at=at)

    async def daily_summary_setting(self, user_id: int) -> DailySummarySettingRecord:
        return await self.reports.summaries.daily_summary_setting(user_id)

    async def due_daily_summaries(self, now: datetime | None = None) -> list[DailySummary]:
        """Summaries due now (each once per day), for the bot to render and send."""
        return await self.reports.summaries.due_daily_summaries(now)
