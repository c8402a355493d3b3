"""Signals: fixed-interval profiles that say when running a device is good or bad.

A signal is `{start, interval, values[]}`: value `values[k]` holds for the half-open time
`[start + k*interval, start + (k+1)*interval)` (unix seconds, so DST never bends it).
A gap is `null` (JSON) or NaN and means "unknown". `higher_is_better` is False for price,
carbon or the EnergyLocal demand-shaper signal (lower is better) and True for e.g. solar.

Profiles come from outside (MQTT, a forecast server) and are validated as hostile input by
`Signal.from_json`, which applies these rules in order and raises the named subclass of
`InvalidSignal`:

1. the payload is a mapping with `start`, `interval`, `values`    -> NotAnObject
2. `start` is an integer unix time in 2000..2100                  -> InvalidStart
3. `interval` is an integer in MIN_INTERVAL..MAX_INTERVAL seconds  -> InvalidInterval
4. `values` is a list of numbers, null or NaN (no bool, no inf)    -> InvalidValues
5. 1..MAX_SLOTS values spanning at most MAX_SPAN seconds           -> EmptySignal/SignalTooLong
6. `end`, if given, equals start + len(values)*interval; and the
   length equals the caller's `expected_slots`, if given           -> LengthMismatch
7. at least one value is known                                     -> EmptySignal

Sources share one interface, `SignalSource.signal(now) -> Signal`:
`ProfileSource` keeps the latest valid pushed profile (the demand shaper's), and
`OffPeakTariffSource` synthesises a two-rate tariff in local time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np

from .errors import (
    EmptySignal,
    InvalidInterval,
    InvalidStart,
    InvalidValues,
    LengthMismatch,
    NoSignal,
    NotAnObject,
    SignalTooLong,
)
from .localtime import parse_hhmm

MIN_INTERVAL = 60  # one minute: devices switch at minute resolution
MAX_INTERVAL = 86_400
MAX_SLOTS = 20_160  # two weeks of minutes; a day-ahead profile has 48
MAX_SPAN = 14 * 86_400
MIN_START = 946_684_800  # 2000-01-01T00:00Z
MAX_START = 4_102_444_800  # 2100-01-01T00:00Z


@dataclass(frozen=True)
class Signal:
    """A validated profile. `values` is a read-only float64 array; NaN marks a gap."""

    start: int
    interval: int
    values: np.ndarray = field(repr=False)
    higher_is_better: bool = False

    def __post_init__(self) -> None:
        values = np.array(self.values, dtype=np.float64)  # private copy
        values.setflags(write=False)
        object.__setattr__(self, "values", values)

    @classmethod
    def from_json(
        cls,
        payload: Any,
        *,
        higher_is_better: bool | None = None,
        expected_slots: int | None = None,
    ) -> Signal:
        """Validate an untrusted `{start, interval, values[, end, higher_is_better]}`."""
        if not isinstance(payload, dict) or not {"start", "interval", "values"} <= payload.keys():
            raise NotAnObject("profile must be an object with start, interval and values")
        start = _integer(payload["start"])
        if start is None or not MIN_START <= start <= MAX_START:
            raise InvalidStart(
                f"profile start must be a unix time in seconds, got {payload['start']!r}"
            )
        interval = _integer(payload["interval"])
        if interval is None or not MIN_INTERVAL <= interval <= MAX_INTERVAL:
            raise InvalidInterval(
                f"profile interval must be an integer from {MIN_INTERVAL} to {MAX_INTERVAL} "
                f"seconds, got {payload['interval']!r}"
            )
        raw = payload["values"]
        if not isinstance(raw, list):
            raise InvalidValues("profile values must be a list of numbers (null for a gap)")
        if not raw:
            raise EmptySignal("profile has no values")
        if len(raw) > MAX_SLOTS or len(raw) * interval > MAX_SPAN:
            raise SignalTooLong(
                f"profile of {len(raw)} x {interval} s is longer than the allowed "
                f"{MAX_SLOTS} slots / {MAX_SPAN // 86_400} days"
            )
        values = np.empty(len(raw), dtype=np.float64)
        for k, v in enumerate(raw):
            if v is None:
                values[k] = math.nan
            elif isinstance(v, bool) or not isinstance(v, int | float):
                raise InvalidValues(f"profile value #{k} is not a number: {v!r}")
            elif math.isinf(v) or abs(v) > 1e12:
                raise InvalidValues(f"profile value #{k} is out of range: {v!r}")
            else:
                values[k] = v
        if "end" in payload and _integer(payload["end"]) != start + len(raw) * interval:
            raise LengthMismatch(
                f"profile end {payload['end']!r} does not match start + {len(raw)} x {interval} s"
            )
        if expected_slots is not None and len(raw) != expected_slots:
            raise LengthMismatch(f"profile has {len(raw)} values, expected {expected_slots}")
        if np.isnan(values).all():
            raise EmptySignal("profile has only gaps")
        if higher_is_better is None:
            flag = payload.get("higher_is_better", False)
            if not isinstance(flag, bool):
                raise NotAnObject("profile higher_is_better must be true or false")
            higher_is_better = flag
        return cls(start, interval, values, higher_is_better)

    @property
    def end(self) -> int:
        return self.start + len(self.values) * self.interval

    @property
    def knots(self) -> np.ndarray:
        """Slot boundaries: start, start+interval, ..., end (len(values)+1 of them)."""
        return self.start + self.interval * np.arange(len(self.values) + 1, dtype=np.int64)

    def costs(self) -> np.ndarray:
        """Values oriented so that lower is always better (NaN gaps kept)."""
        return -self.values if self.higher_is_better else self.values.copy()

    def covering(self, lo: int, hi: int) -> Signal:
        """This signal on its own grid, extended with gap slots so it covers [lo, hi)."""
        before = max(0, -((lo - self.start) // self.interval))  # ceil((start-lo)/interval)
        after = max(0, -((self.end - hi) // self.interval))
        if not before and not after:
            return self
        values = np.concatenate(
            [np.full(before, np.nan), self.values, np.full(after, np.nan)]
        )
        return Signal(self.start - before * self.interval, self.interval, values,
                      self.higher_is_better)

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "interval": self.interval,
            "values": [None if math.isnan(v) else float(v) for v in self.values],
            "higher_is_better": self.higher_is_better,
        }


def _integer(value: Any) -> int | None:
    """An int, or an integral float (JSON has one number type); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


class SignalSource(Protocol):
    """Anything that can give the signal to schedule against at time `now`."""

    def signal(self, now: int) -> Signal: ...


class ProfileSource:
    """Holds the latest valid profile pushed to it (e.g. the demand shaper's, from MQTT).

    A bad payload raises (the caller logs and drops it) and leaves the previous profile in
    place, so one malformed message never leaves devices without a signal.
    """

    def __init__(self, *, higher_is_better: bool = False, expected_slots: int | None = None):
        self._higher_is_better = higher_is_better
        self._expected_slots = expected_slots
        self._latest: Signal | None = None

    def update(self, payload: Any) -> Signal:
        signal = Signal.from_json(
            payload, higher_is_better=self._higher_is_better, expected_slots=self._expected_slots
        )
        self._latest = signal
        return signal

    def signal(self, now: int) -> Signal:
        if self._latest is None:
            raise NoSignal("no valid profile has been received yet")
        return self._latest


class OffPeakTariffSource:
    """A flat two-rate tariff: `off_peak` from `cheap_from` to `cheap_until` local time.

    The cheap period may cross midnight (00:30-07:30 does not, 23:00-06:00 does; the Demand
    Shaper's `simpleoffpeak` cannot wrap). Each slot takes the rate at its local start time,
    so the tariff follows DST. The signal starts at the slot containing `now` and covers
    `horizon` seconds.
    """

    def __init__(
        self,
        timezone: str,
        cheap_from: str = "00:30",
        cheap_until: str = "07:30",
        *,
        peak: float = 16.67,
        off_peak: float = 5.0,
        interval: int = 1800,
        horizon: int = 2 * 86_400,
    ):
        self._tz = ZoneInfo(timezone)
        self._from = parse_hhmm(cheap_from)
        self._until = parse_hhmm(cheap_until)
        if not MIN_INTERVAL <= interval <= MAX_INTERVAL or not 0 < horizon <= MAX_SPAN:
            raise InvalidInterval("tariff interval or horizon out of range")
        self._peak, self._off_peak = float(peak), float(off_peak)
        self._interval, self._horizon = interval, horizon

    def _is_cheap(self, local: time) -> bool:
        if self._from <= self._until:
            return self._from <= local < self._until
        return local >= self._from or local < self._until

    def signal(self, now: int) -> Signal:
        start = now - now % self._interval
        slots = -(-self._horizon // self._interval)
        values = np.empty(slots)
        for k in range(slots):
            local = datetime.fromtimestamp(start + k * self._interval, UTC).astimezone(self._tz)
            values[k] = self._off_peak if self._is_cheap(local.time()) else self._peak
        return Signal(start, self._interval, values, higher_is_better=False)


__all__ = [
    "OffPeakTariffSource",
    "ProfileSource",
    "Signal",
    "SignalSource",
]
