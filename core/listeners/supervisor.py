"""Runs one fill stream per master and hands each fill (and each change of a master's order) to
the engine without waiting for it, so that a slow follower never delays the master's next fill.
A stream that dies is restarted with backoff; its health is kept for the admins."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime

from core.errors import NotFound
from core.model import Fill, MasterEvent, utcnow
from core.retry import Retries, StepBackoff
from core.venues.base import FillSource

log = logging.getLogger(__name__)


@dataclass
class StreamHealth:
    master_id: int
    running: bool = False
    fills: int = 0
    restarts: int = 0
    last_fill_at: datetime | None = None
    last_error: str | None = None


@dataclass
class ListenerSupervisor:
    on_fill: Callable[[MasterEvent], Awaitable[object]]
    restart_delays: tuple[float, ...] = (1, 2, 5, 10, 30)

    def __post_init__(self) -> None:
        self._health: dict[int, StreamHealth] = {}
        self._sources: dict[int, FillSource] = {}
        self._streams: dict[int, asyncio.Task[None]] = {}
        self._copies: set[asyncio.Task[object]] = set()

    @property
    def health(self) -> dict[int, StreamHealth]:
        """Each master's stream as admins see it: the supervisor's counts merged with the
        listener's own view (a websocket listener reconnects by itself, unseen from here)."""
        merged = {}
        for master_id, health in self._health.items():
            view = replace(health)
            own = getattr(self._sources.get(master_id), "health", None)
            own = own() if callable(own) else own
            if own is not None:
                view.running = view.running and bool(getattr(own, "connected", True))
                view.restarts += int(getattr(own, "reconnects", 0) or 0)
                last_event = getattr(own, "last_event_at", None)
                if last_event is not None and (view.last_fill_at is None or last_event > view.last_fill_at):
                    view.last_fill_at = last_event
                view.last_error = getattr(own, "last_error", None) or view.last_error
            merged[master_id] = view
        return merged

    async def start(self, master_id: int, open_source: Callable[[], Awaitable[FillSource]]) -> None:
        """Open the master's stream (so nothing after this call is missed), then pump it."""
        if master_id in self._streams and not self._streams[master_id].done():
            return
        health = self._health.setdefault(master_id, StreamHealth(master_id))
        try:
            first = await open_source()
        except Exception as exc:
            health.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("fill stream of master %s did not open: %s", master_id, health.last_error)
            first = None
        self._streams[master_id] = asyncio.create_task(
            self._run(master_id, open_source, first), name=f"master-{master_id}"
        )

    async def _run(
        self, master_id: int, open_source: Callable[[], Awaitable[FillSource]], source: FillSource | None
    ) -> None:
        health = self._health[master_id]
        restarts = Retries(StepBackoff(self.restart_delays))
        while True:
            try:
                if source is None:
                    source = await open_source()
                self._sources[master_id] = source
                health.running = True
                async for event in source.fills():
                    restarts.reset()
                    if isinstance(event, Fill):
                        health.fills += 1
                        health.last_fill_at = utcnow()
                    task = asyncio.create_task(self._copy(event))
                    self._copies.add(task)
                    task.add_done_callback(self._copies.discard)
            except asyncio.CancelledError:
                health.running = False
                if source is not None:
                    await source.close()
                raise
            except Exception as exc:
                health.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("fill stream of master %s stopped: %s", master_id, health.last_error)
            if source is not None:
                try:
                    await source.close()
                except Exception:
                    log.exception("closing the fill stream of master %s failed", master_id)
            source = None
            health.running = False
            health.restarts += 1
            await restarts.wait()

    async def _copy(self, event: MasterEvent) -> object:
        try:
            return await self.on_fill(event)
        except NotFound as exc:
            log.warning("%s", exc)
        except Exception:
            what = f"fill {event.trade_id}" if isinstance(event, Fill) else f"{event.change} order {event.order_id}"
            log.exception("copying %s of master %s failed", what, event.master_id)
        return None

    async def idle(self) -> None:
        """Wait until every fill handed over so far has been copied."""
        while self._copies:
            await asyncio.gather(*list(self._copies), return_exceptions=True)

    async def stop(self) -> None:
        for task in self._streams.values():
            task.cancel()
        await asyncio.gather(*self._streams.values(), return_exceptions=True)
        self._streams.clear()
        await self.idle()
