"""What the engine tells its observer (the service's metrics): acknowledgements with their venue
and latency, first outcomes with their reason, retries with their cause, journal commits."""

from __future__ import annotations

from decimal import Decimal as D

from core.errors import InsufficientFunds, RateLimited, TemporaryError


class Recording:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def copy_acknowledged(self, venue: str, seconds: float) -> None:
        assert seconds >= 0
        self.calls.append(("ack", venue))

    def copy_outcome(self, status: str, reason: str | None) -> None:
        self.calls.append(("outcome", status, reason or ""))

    def order_retried(self, venue: str, cause: str) -> None:
        self.calls.append(("retry", venue, cause))

    def journal_committed(self, operation: str, seconds: float) -> None:
        assert seconds >= 0
        self.calls.append(("commit", operation))


async def test_the_observer_hears_retries_by_cause_then_the_acknowledgement_and_outcome(h):
    observer = Recording()
    h.build_engine(observer=observer)
    _, venue = await h.add_follower()
    venue.fail_next(TemporaryError("503"))
    venue.fail_next(RateLimited("429", retry_after=0.001))
    await h.engine.on_fill(h.fill(qty="0.1"))
    assert observer.calls == [
        ("commit", "fill"),
        ("retry", "paper", "unknown_outcome"),
        ("retry", "paper", "rate_limited"),
        ("ack", "paper"),
        ("commit", "report"),
        ("outcome", "filled", ""),
    ]


async def test_a_refused_order_is_an_outcome_with_its_reason_and_no_acknowledgement(h):
    observer = Recording()
    h.build_engine(observer=observer)
    _, venue = await h.add_follower(balance="1")
    venue.fail_next(InsufficientFunds("margin is insufficient"))
    outcome = await h.engine.on_fill(h.fill(qty="0.1"))
    assert outcome.results[0].filled_quantity == D(0)
    assert ("outcome", "failed", "insufficient_funds") in observer.calls
    assert not any(call[0] == "ack" for call in observer.calls)
