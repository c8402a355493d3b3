"""Local wall-clock helpers: "HH:MM" parsing and DST-aware local time -> unix seconds.

Rules for wall-clock times that DST makes odd (the same as PHP's DateTime, which the Demand
Shaper uses, and Python's fold=0):
- a time that does not exist (spring forward, e.g. 01:30 in Europe/London on the last Sunday
  of March) means the instant the clock would show it without the jump, i.e. one hour later
  by the new clock (02:30 BST);
- a time that occurs twice (fall back) means its first occurrence (the earlier instant).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import InvalidSchedule

_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


def parse_hhmm(text: object) -> time:
    """'07:30' -> time(7, 30); anything else raises InvalidSchedule."""
    match = _HHMM.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise InvalidSchedule(f"time of day must be 'HH:MM' (00:00..23:59), got {text!r}")
    return time(int(match[1]), int(match[2]))


def zone(name: object) -> ZoneInfo:
    """An IANA time zone by name, or InvalidSchedule."""
    if not isinstance(name, str) or not name or len(name) > 64:
        raise InvalidSchedule(f"time zone must be an IANA name like 'Europe/London', got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidSchedule(f"unknown time zone {name!r}") from exc


def local_to_unix(day: date, at: time, tz: ZoneInfo) -> int:
    """Unix seconds of wall-clock `at` on `day` in `tz` (fold=0: see the module rules)."""
    return int(datetime.combine(day, at, tzinfo=tz).replace(fold=0).timestamp())


def unix_to_local(ts: int, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(ts, UTC).astimezone(tz)


def iso_local(ts: int, tz: ZoneInfo) -> str:
    """'2024-03-31T02:30:00+01:00' for the UI and the explanation."""
    return unix_to_local(ts, tz).isoformat()
