"""The order path every part of the copier shares: one sender (the only door to the venues), one
recorder, one queue per follow and symbol, one cache of follows, one book of positions, one bound of
exits by the venue's position (and its write-offs). Built
first, so that the risk controls (which place orders through ``direct``) and the copier (which
tells the risk controls when a position moved) are each given what they need at construction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from core.copying.bounds import ExitBounds
from core.copying.config import EngineConfig, Notify, VenueProvider
from core.copying.direct import DirectOrders
from core.copying.dispatch import Dispatcher
from core.copying.follows import FollowBook
from core.copying.positions import PositionBook
from core.copying.queues import FollowQueues, Unknowns
from core.copying.recorder import Recorder
from core.copying.sender import OrderSender
from core.journal import CopyJournal
from core.model import utcnow
from core.observe import EngineObserver, NullObserver


class OrderPath:
    def __init__(
        self,
        journal: CopyJournal,
        venues: VenueProvider,
        notify: Notify,
        config: EngineConfig | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
        observer: EngineObserver | None = None,
    ) -> None:
        self.journal = journal
        self.venues = venues
        self.config = config or EngineConfig()
        self.clock = clock
        self.observer = observer or NullObserver()
        self.follows = FollowBook(journal, venues, self.config.follows_ttl)
        self.queues = FollowQueues()
        self.unknowns = Unknowns()
        self.positions = PositionBook(journal)
        self.recorder = Recorder(journal, notify, self.observer, self.follows, self.unknowns)
        self.sender = OrderSender(journal, self.config, self.observer, clock)
        self.dispatcher = Dispatcher(journal, self.sender, self.recorder, self.observer)
        self.bounds = ExitBounds(journal, self.recorder)
        self.direct = DirectOrders(
            journal=journal,
            venues=venues,
            queues=self.queues,
            recorder=self.recorder,
            dispatcher=self.dispatcher,
            bounds=self.bounds,
        )


class OnPath:
    """A part of the copier working over the shared order path."""

    def __init__(self, path: OrderPath) -> None:
        self._journal = path.journal
        self._venues = path.venues
        self._config = path.config
        self._clock = path.clock
        self._follows = path.follows
        self._queues = path.queues
        self._recorder = path.recorder
        self._dispatcher = path.dispatcher
        self._bounds = path.bounds
