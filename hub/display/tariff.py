"""A household tariff: bands of local time with a p/kWh price, plus a daily standing charge.

Bands are given as local "HH:MM" start/end (end may wrap past midnight, e.g. 23:00-07:00);
together they must cover the day exactly once, so every half-hour has one price and a cost
is never a guess. `cost()` splits half-hourly kWh into per-band rows whose pence add up to
the total, rounded once at the end (rows are shown rounded; the total is the sum of exact
values, and `rows_total` is what the table adds up to).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
MAX_BANDS = 8
MAX_PRICE = 1000.0  # p/kWh; anything above is a typo


class InvalidTariff(ValueError):
    """The tariff the household entered cannot be used; the message says what to fix."""


def minutes(hhmm: str) -> int:
    match = HHMM.match(hhmm or "")
    if not match:
        raise InvalidTariff(f"time must be HH:MM (00:00-23:59), got {hhmm!r}")
    return int(match.group(1)) * 60 + int(match.group(2))


_MINUTES = {f"{h:02d}:{m:02d}": h * 60 + m for h in range(24) for m in range(60)}


@dataclass(frozen=True)
class Band:
    name: str
    start: str  # local HH:MM, inclusive
    end: str    # local HH:MM, exclusive; may be before start (wraps midnight)
    price: float  # p/kWh

    def covers(self, minute_of_day: int) -> bool:
        a, b = _MINUTES[self.start], _MINUTES[self.end]
        if a < b:
            return a <= minute_of_day < b
        return minute_of_day >= a or minute_of_day < b  # wraps (or whole day when a == b)


@dataclass(frozen=True)
class Tariff:
    bands: tuple[Band, ...]
    standing: float  # p/day

    def band_at(self, t: float, tz: ZoneInfo) -> Band:
        local = datetime.fromtimestamp(t, tz)
        minute = local.hour * 60 + local.minute
        for band in self.bands:
            if band.covers(minute):
                return band
        raise InvalidTariff("the bands do not cover the whole day")  # validate() prevents it

    def to_json(self) -> dict[str, Any]:
        return {"standing": self.standing,
                "bands": [{"name": b.name, "start": b.start, "end": b.end, "price": b.price}
                          for b in self.bands]}


def _number(value: Any, what: str, maximum: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidTariff(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0 or number > maximum:
        raise InvalidTariff(f"{what} must be between 0 and {maximum:g}, got {value!r}")
    return number


def parse(obj: Any) -> Tariff:
    """A Tariff from its JSON form (what the Settings form posts); InvalidTariff if wrong."""
    if not isinstance(obj, dict):
        raise InvalidTariff("tariff must be an object with 'bands' and 'standing'")
    raw_bands = obj.get("bands")
    if not isinstance(raw_bands, list) or not 1 <= len(raw_bands) <= MAX_BANDS:
        raise InvalidTariff(f"give between 1 and {MAX_BANDS} bands")
    bands = []
    for i, raw in enumerate(raw_bands, 1):
        if not isinstance(raw, dict):
            raise InvalidTariff(f"band {i} must be an object")
        name = str(raw.get("name", "")).strip()
        if not 1 <= len(name) <= 32:
            raise InvalidTariff(f"band {i} needs a name of 1 to 32 characters")
        start, end = str(raw.get("start", "")), str(raw.get("end", ""))
        minutes(start), minutes(end)
        bands.append(Band(name, start, end, _number(raw.get("price"), f"band {i} price",
                                                    MAX_PRICE)))
    tariff = Tariff(tuple(bands), _number(obj.get("standing", 0), "standing charge", 10000))
    _check_cover(tariff)
    return tariff


def _check_cover(tariff: Tariff) -> None:
    """Every minute of the day in exactly one band. Coverage only changes at a band's start
    or end, so checking those minutes checks them all."""
    edges = sorted({0} | {minutes(b.start) for b in tariff.bands}
                   | {minutes(b.end) for b in tariff.bands})
    for minute in edges:
        count = sum(1 for b in tariff.bands if b.covers(minute))
        if count != 1:
            hhmm = f"{minute // 60:02d}:{minute % 60:02d}"
            what = "no band" if count == 0 else f"{count} bands"
            raise InvalidTariff(f"at {hhmm} there is {what}: the bands must cover the day "
                                "exactly once")


def loads(text: str | None) -> Tariff | None:
    """The stored tariff, or None when there is none (a visible state, never a guess)."""
    if not text:
        return None
    return parse(json.loads(text))


@dataclass(frozen=True)
class CostRow:
    band: str
    price: float   # p/kWh
    kwh: float
    pence: float


@dataclass(frozen=True)
class Cost:
    rows: tuple[CostRow, ...]
    standing_days: int
    standing_pence: float
    kwh: float
    pence: float  # energy + standing, exact

    @property
    def average_price(self) -> float | None:
        energy = sum(r.pence for r in self.rows)
        return energy / self.kwh if self.kwh > 0 else None


def cost(tariff: Tariff, starts: Sequence[float], kwh: Sequence[float | None], days: int,
         tz: ZoneInfo) -> Cost:
    """Per-band kWh and pence for half-hours starting at `starts` (None = no data, skipped)."""
    per_band: dict[str, float] = {b.name: 0.0 for b in tariff.bands}
    for t, energy in zip(starts, kwh, strict=True):
        if energy is None or energy != energy:
            continue
        per_band[tariff.band_at(t, tz).name] += energy
    rows = tuple(CostRow(b.name, b.price, per_band[b.name], per_band[b.name] * b.price)
                 for b in tariff.bands)
    standing = tariff.standing * days
    total_kwh = sum(r.kwh for r in rows)
    return Cost(rows, days, standing, total_kwh, sum(r.pence for r in rows) + standing)
