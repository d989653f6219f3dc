"""The copier's settings and the collaborators it is given (not the storage it is given them by)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from core.model import CopyResult
from core.venues.base import Venue


@dataclass(frozen=True, slots=True)
class EngineConfig:
    max_fill_age: timedelta = timedelta(seconds=30)
    max_concurrent_orders: int = 500
    per_account_concurrency: int = 2
    retry_delays: tuple[float, ...] = (0.25, 0.5, 1.0)  # refusals that placed nothing: rate limits, 5xx
    follows_ttl: float = 30.0  # seconds; settings changes also invalidate explicitly
    #: how long a protected limit (a market copy sent as a limit) rests before its unfilled remainder
    #: is re-priced or cancelled: a marketable limit fills at once unless the price ran past it, so
    #: seconds, not the follow's maximum resting time (which is for copies of the master's limits).
    #: Checked by each tracking pass (every 10 s by default): a window ends 10-20 s after the send.
    protected_window: timedelta = timedelta(seconds=10)
    #: on a venue with no send window (nothing proves a lost request dead: Angel One), a copy whose
    #: answer was lost and that the venue still does not show this long after its send is recorded
    #: failed — never re-sent automatically
    unproven_after: timedelta = timedelta(minutes=2)
    #: a stopped follow's copies still pending (another process's send, a lost answer) are waited
    #: for this long before its positions are closed without them
    stop_settle_timeout: timedelta = timedelta(seconds=15)
    #: a futures fill recorded with its commission still to come (Binance's order answers carry
    #: none) waits this long for the follower's order stream to push it before a tracking pass
    #: reads the order's trades instead (one ``userTrades`` read, weight 5)
    commission_stream_wait: timedelta = timedelta(seconds=5)
    #: at most this many such reads per tracking pass (every 10 s): 40 x 5 weight is 1,200 a minute,
    #: half of Binance USD-M's 2,400 per IP, so a fan-out's commissions never crowd out its orders
    commission_reads_per_pass: int = 40
    #: a commission not known this long after its fill is recorded missing (not counted, with why)
    commission_give_up: timedelta = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class FollowPaused:
    """Published when the engine pauses a follow on its own (e.g. the venue rejected the key)."""

    follow_id: int
    user_id: int
    reason: str


Notify = Callable[[CopyResult | FollowPaused], None]


class VenueProvider(Protocol):
    async def venue_for(self, credential_id: str) -> Venue:
        """The long-lived adapter for one stored credential (decrypted once, then cached)."""
        ...

    async def open_many(self, credential_ids: Sequence[str], *, warm_up: bool = False) -> None:
        """Open the adapters not open yet in one go (a cold start must not read each key apart);
        with ``warm_up``, also fetch what their first order needs."""
        ...
