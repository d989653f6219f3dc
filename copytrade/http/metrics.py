"""Prometheus metrics of one running service, in a registry of its own (never the library's
global one: two apps in one process, or two tests, never share counters).

Fed three ways: the engine calls ``Metrics`` as its ``core.observe.EngineObserver``; the
Telegram pacer calls ``telegram_rate_limited``; and what the service already keeps (the
listeners' health, the notification queue) is read at each scrape by ``_ServiceCollector``.

``/metrics`` is public (a scraper has no token): its labels are venues, statuses, reasons and
operations, never a master's or a user's id; the masters' streams are counted together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.model import utcnow

#: copy latency, fill received → venue's first answer (seconds): a paper venue answers in
#: milliseconds, a live exchange in tens to hundreds
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


@dataclass(frozen=True)
class ServiceSources:
    """What the collector reads at scrape time."""

    listener_health: Callable[[], Mapping[int, Any]]  # master id -> core.listeners StreamHealth
    notification_backlog: Callable[[], int]
    notifications_dropped: Callable[[], int]
    clock: Callable[[], datetime] = utcnow


class _ServiceCollector(Collector):
    def __init__(self, sources: ServiceSources) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Metric]:
        streams = list(self._sources.listener_health().values())
        now = self._sources.clock()
        ages = [max(0.0, (now - h.last_fill_at).total_seconds()) for h in streams if h.last_fill_at is not None]
        yield CounterMetricFamily(
            "copytrade_fills_received",
            "Master fills received from the masters' streams",
            value=sum(h.fills for h in streams),
        )
        yield CounterMetricFamily(
            "copytrade_listener_reconnects",
            "Restarts and reconnects of the masters' streams",
            value=sum(h.restarts for h in streams),
        )
        yield GaugeMetricFamily("copytrade_listeners", "Masters' streams watched", value=len(streams))
        yield GaugeMetricFamily(
            "copytrade_listeners_connected", "Masters' streams connected", value=sum(1 for h in streams if h.running)
        )
        if ages:
            yield GaugeMetricFamily(
                "copytrade_listener_last_event_age_seconds",
                "Seconds since the stream quiet the longest last delivered an event (absent before any)",
                value=max(ages),
            )
        yield GaugeMetricFamily(
            "copytrade_notification_backlog",
            "Notifications queued, not yet handed to Telegram",
            value=self._sources.notification_backlog(),
        )
        yield CounterMetricFamily(
            "copytrade_notifications_dropped",
            "Notifications dropped because the queue was full",
            value=self._sources.notifications_dropped(),
        )


class Metrics:
    """The service's metrics: a ``core.observe.EngineObserver`` (given to the engine when the
    service is built) plus the scrape-time collector of the service it watches."""

    def __init__(self, sources: ServiceSources | None = None) -> None:
        self._watching = False
        self.registry = CollectorRegistry(auto_describe=True)
        self._latency = Histogram(
            "copytrade_copy_latency_seconds",
            "Master fill received to the follower venue's first answer",
            ["venue"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._orders = Counter(
            "copytrade_copy_orders",
            "Copies of a master fill by their first outcome and its reason",
            ["status", "reason"],
            registry=self.registry,
        )
        self._retries = Counter(
            "copytrade_order_retries", "Order sends retried", ["venue", "cause"], registry=self.registry
        )
        self._commits = Histogram(
            "copytrade_journal_commit_seconds",
            "Journal writes the copy path waits for",
            ["operation"],
            buckets=COMMIT_BUCKETS,
            registry=self.registry,
        )
        self._telegram_429 = Counter(
            "copytrade_telegram_rate_limited", "Telegram answers 429 (flood control)", registry=self.registry
        )
        if sources is not None:
            self.watch(sources)

    def watch(self, sources: ServiceSources) -> None:
        """Read the service's state at each scrape (once: a second call changes nothing)."""
        if not self._watching:
            self.registry.register(_ServiceCollector(sources))
            self._watching = True

    # core.observe.EngineObserver
    def copy_acknowledged(self, venue: str, seconds: float) -> None:
        self._latency.labels(venue).observe(seconds)

    def copy_outcome(self, status: str, reason: str | None) -> None:
        self._orders.labels(status, reason or "").inc()

    def order_retried(self, venue: str, cause: str) -> None:
        self._retries.labels(venue, cause).inc()

    def journal_committed(self, operation: str, seconds: float) -> None:
        self._commits.labels(operation).observe(seconds)

    # the Telegram pacer
    def telegram_rate_limited(self) -> None:
        self._telegram_429.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
