"""What the engine tells an observer as it works: the edge (``copytrade/http/metrics.py``) turns it
into Prometheus metrics; the domain stays free of any metrics library. Every call is cheap and
never raises into trading: an observer only counts."""

from __future__ import annotations

from typing import Protocol


class EngineObserver(Protocol):
    def copy_acknowledged(self, venue: str, seconds: float) -> None:
        """A copy order's first answer from ``venue``, ``seconds`` after its master fill arrived."""

    def copy_outcome(self, status: str, reason: str | None) -> None:
        """How copying one master fill for one follow ended first (a ``CopyStatus`` value and
        the skip reason or error code, if any)."""

    def order_retried(self, venue: str, cause: str) -> None:
        """A send to ``venue`` is retried (``rate_limited`` or ``unknown_outcome``)."""

    def journal_committed(self, operation: str, seconds: float) -> None:
        """A journal write the copy path waits for (``fill`` or ``report``) took ``seconds``."""


class NullObserver:
    """Observes nothing (tests, tools, and a service without metrics)."""

    def copy_acknowledged(self, venue: str, seconds: float) -> None:
        return None

    def copy_outcome(self, status: str, reason: str | None) -> None:
        return None

    def order_retried(self, venue: str, cause: str) -> None:
        return None

    def journal_committed(self, operation: str, seconds: float) -> None:
        return None
