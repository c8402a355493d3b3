"""Calendar periods in the household's zone: a day, a week (Monday first) or a month, and
its half-hours. Day boundaries are local midnights, so the two DST days have 46 and 50
half-hours (23 h and 25 h) and a month is its real length in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

KINDS = ("day", "week", "month")
HALF_HOUR = 1800


@dataclass(frozen=True)
class Period:
    kind: str
    first: date  # first local day
    last: date   # last local day (inclusive)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def bounds(self, tz: ZoneInfo) -> tuple[int, int]:
        """Unix seconds of the first local midnight and of the one after the last day."""
        return local_midnight(self.first, tz), local_midnight(self.last + timedelta(days=1), tz)

    def half_hours(self, tz: ZoneInfo) -> list[int]:
        start, end = self.bounds(tz)
        return list(range(start, end, HALF_HOUR))

    def day_starts(self, tz: ZoneInfo) -> list[int]:
        return [local_midnight(self.first + timedelta(days=i), tz) for i in range(self.days)]

    def step(self, offset: int) -> Period:
        """The period `offset` periods before (negative) or after this one."""
        if self.kind == "day":
            return period("day", self.first + timedelta(days=offset))
        if self.kind == "week":
            return period("week", self.first + timedelta(weeks=offset))
        month = self.first.month - 1 + offset
        return period("month", date(self.first.year + month // 12, month % 12 + 1, 1))

    def contains(self, day: date) -> bool:
        return self.first <= day <= self.last


def local_midnight(day: date, tz: ZoneInfo) -> int:
    # Midnight exists on every UK date (clocks change at 01:00/02:00), so no fold issue.
    return int(datetime.combine(day, time(0), tz).timestamp())


def period(kind: str, day: date) -> Period:
    """The period of `kind` that contains the local day `day`."""
    if kind == "day":
        return Period("day", day, day)
    if kind == "week":
        first = day - timedelta(days=day.weekday())
        return Period("week", first, first + timedelta(days=6))
    if kind == "month":
        first = day.replace(day=1)
        nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        return Period("month", first, nxt - timedelta(days=1))
    raise ValueError(f"period must be one of {', '.join(KINDS)}, got {kind!r}")


def today(tz: ZoneInfo, now: float) -> date:
    return datetime.fromtimestamp(now, tz).date()
