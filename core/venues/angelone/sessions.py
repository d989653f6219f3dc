"""When each Angel One exchange segment trades: regular sessions, holidays (a day closed, or only
one of MCX's sessions open) and the windows in which an after-market order (variety AMO) is taken.

The table is ``calendar.json`` beside this module, shipped with the package (the service needs no
network to know a holiday). Its sources are named in the file; the exchanges publish each year's
holidays in December. To update it: edit the file from the exchanges' circulars, then run
``python -m core.venues.angelone.sessions --check``, which validates it and prints the years it
covers. A date in a year the table does not cover is taken as a regular weekday or weekend (its
holidays are unknown) and logged once a day.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from importlib import resources
from typing import Any

from core.venues.angelone.constants import IST, LAST_ORDER_MARGIN

log = logging.getLogger(__name__)

Interval = tuple[time, time]


@dataclass(frozen=True, slots=True)
class Segment:
    """One exchange segment's hours: its regular session, the AMO windows (every calendar day,
    outside the sessions) and the days that differ (a holiday: no session, or MCX's evening only)."""

    session: Interval
    amo: tuple[Interval, ...]
    days: Mapping[date, tuple[str, tuple[Interval, ...]]]


@dataclass(frozen=True, slots=True)
class Admission:
    """What the calendar says of an order sent now: ``"open"`` (a regular order), ``"after_market"``
    (only an AMO is taken now) or ``"closed"``; ``why`` words it for the follower."""

    verdict: str
    why: str


def _time(text: str) -> time:
    return time.fromisoformat(text)


def _interval(pair: list[str]) -> Interval:
    opens, closes = _time(pair[0]), _time(pair[1])
    if not opens < closes:
        raise ValueError(f"an interval must end after it starts: {pair}")
    return opens, closes


class TradingCalendar:
    def __init__(self, segments: Mapping[str, Segment], years: frozenset[int]) -> None:
        self._segments = dict(segments)
        self.years = years
        self._warned: set[int] = set()

    @classmethod
    def packaged(cls) -> TradingCalendar:
        """The table shipped with the package (``calendar.json``)."""
        text = resources.files(__package__).joinpath("calendar.json").read_text(encoding="utf-8")
        return cls.from_json(json.loads(text))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TradingCalendar:
        """Read the table; ``ValueError`` names what is malformed."""
        raw = data["segments"]
        segments: dict[str, Segment] = {}
        for name, spec in raw.items():
            days_spec = raw[spec["same_days_as"]]["days"] if "same_days_as" in spec else spec.get("days", {})
            days = {
                date.fromisoformat(day): (str(entry["name"]), tuple(_interval(p) for p in entry["sessions"]))
                for day, entry in days_spec.items()
            }
            segments[name] = Segment(_interval(spec["session"]), tuple(_interval(p) for p in spec["amo"]), days)
        years = frozenset(int(year) for year in data["years"])
        for segment in segments.values():
            stray = sorted(day for day in segment.days if day.year not in years)
            if stray:
                raise ValueError(f"{stray[0]} is listed but its year is not among the years covered")
        return cls(segments, years)

    @property
    def exchanges(self) -> frozenset[str]:
        return frozenset(self._segments)

    def sessions_on(self, exchange: str, day: date) -> tuple[str | None, tuple[Interval, ...]]:
        """The name of ``day``'s exception (a holiday) if any, and the sessions it trades."""
        segment = self._segments[exchange]
        if day.year not in self.years and day.year not in self._warned:
            self._warned.add(day.year)
            log.warning("the Angel One trading calendar does not cover %d: its holidays are unknown", day.year)
        if day in segment.days:
            return segment.days[day]
        if day.weekday() >= 5:
            return "the weekend", ()
        return None, (segment.session,)

    def admission(self, exchange: str, moment: datetime, *, margin: timedelta = LAST_ORDER_MARGIN) -> Admission:
        """Whether an order of ``exchange`` sent at ``moment`` is a regular order, an AMO or neither.
        A regular order is not sent in the last ``margin`` of a session (it would reach the exchange
        after the close)."""
        now = moment.astimezone(IST)
        holiday, sessions = self.sessions_on(exchange, now.date())
        for opens, closes in sessions:
            last = (datetime.combine(now.date(), closes, IST) - margin).time()
            if opens <= now.time() < last:
                return Admission("open", f"{exchange} is open until {closes:%H:%M}")
            if last <= now.time() < closes:
                return Admission(
                    "closed",
                    f"{exchange} closes at {closes:%H:%M}: an order sent at {now:%H:%M:%S} would arrive too late",
                )
        if holiday is not None:
            why = (
                f"{now:%d %b %Y} is {holiday}"
                if holiday == "the weekend"
                else f"{now:%d %b %Y} is a holiday ({holiday})"
            )
        else:
            first, last_close = sessions[0][0], sessions[-1][1]
            why = f"{exchange} is closed at {now:%H:%M} (open {first:%H:%M}-{last_close:%H:%M})"
            if now.time() >= last_close:
                why = f"{exchange} closed at {last_close:%H:%M}"
        if any(start <= now.time() <= end for start, end in self._segments[exchange].amo):
            return Admission("after_market", why)
        return Admission("closed", f"{why}, and after-market orders are not taken at {now:%H:%M}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check the packaged Angel One trading calendar.")
    parser.add_argument("--check", action="store_true", help="validate calendar.json and print what it covers")
    args = parser.parse_args(argv)
    if not args.check:
        parser.print_help()
        return 2
    calendar = TradingCalendar.packaged()
    print(f"years covered: {', '.join(str(y) for y in sorted(calendar.years))}")
    print(f"segments: {', '.join(sorted(calendar.exchanges))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
