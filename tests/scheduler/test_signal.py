"""Signal validation (hostile input) and the sources."""

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from hub.scheduler.errors import (
    EmptySignal,
    InvalidInterval,
    InvalidSignal,
    InvalidStart,
    InvalidValues,
    LengthMismatch,
    NoSignal,
    NotAnObject,
    SchedulerError,
    SignalTooLong,
)
from hub.scheduler.signal import OffPeakTariffSource, ProfileSource, Signal

T0 = 1_711_843_200  # 2024-03-31T00:00Z, the spring-forward day in Europe/London


def payload(**changes):
    return {"start": T0, "interval": 1800, "values": [1.5, 2, None, 4], **changes}


def test_from_json_accepts_gaps_as_nan():
    signal = Signal.from_json(payload())
    assert signal.end == T0 + 4 * 1800
    assert np.isnan(signal.values[2]) and signal.values[1] == 2.0
    assert not signal.values.flags.writeable
    assert signal.to_json()["values"] == [1.5, 2.0, None, 4.0]


def test_from_json_accepts_integral_float_times_and_matching_end():
    signal = Signal.from_json(payload(start=float(T0), interval=1800.0, end=T0 + 7200))
    assert (signal.start, signal.interval) == (T0, 1800)


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ([1, 2], NotAnObject),
        ({"start": T0, "values": [1]}, NotAnObject),
        (payload(start="now"), InvalidStart),
        (payload(start=T0 + 0.5), InvalidStart),
        (payload(start=12), InvalidStart),
        (payload(start=True), InvalidStart),
        (payload(interval=0), InvalidInterval),
        (payload(interval=-1800), InvalidInterval),
        (payload(interval=10**9), InvalidInterval),
        (payload(values="1,2,3"), InvalidValues),
        (payload(values=[1, "2"]), InvalidValues),
        (payload(values=[1, True]), InvalidValues),
        (payload(values=[1, [2]]), InvalidValues),
        (payload(values=[1, math.inf]), InvalidValues),
        (payload(values=[1, 1e300]), InvalidValues),
        (payload(values=[]), EmptySignal),
        (payload(values=[None, math.nan]), EmptySignal),
        (payload(values=[1.0] * 100_000), SignalTooLong),
        (payload(interval=86_400, values=[1.0] * 30), SignalTooLong),
        (payload(end=T0 + 1800), LengthMismatch),
        (payload(higher_is_better="yes"), NotAnObject),
    ],
)
def test_from_json_rejects_bad_input(bad, error):
    with pytest.raises(error) as caught:
        Signal.from_json(bad)
    assert isinstance(caught.value, InvalidSignal | SchedulerError)
    assert str(caught.value)


def test_from_json_expected_length():
    with pytest.raises(LengthMismatch, match="expected 48"):
        Signal.from_json(payload(), expected_slots=48)


def test_costs_flip_when_higher_is_better():
    signal = Signal.from_json(payload(higher_is_better=True))
    assert signal.costs()[0] == -1.5


def test_covering_extends_with_gaps_on_the_same_grid():
    signal = Signal(T0, 1800, [1, 2])
    wider = signal.covering(T0 - 100, T0 + 3 * 1800 + 1)
    assert (wider.start, wider.end) == (T0 - 1800, T0 + 4 * 1800)
    assert np.isnan(wider.values[[0, 3, 4]]).all() and wider.values[1] == 1
    assert signal.covering(T0, T0 + 3600) is signal


def test_profile_source_keeps_last_good_profile():
    source = ProfileSource(expected_slots=4)
    with pytest.raises(NoSignal):
        source.signal(T0)
    source.update(payload())
    with pytest.raises(LengthMismatch):
        source.update(payload(values=[1, 2]))
    assert len(source.signal(T0).values) == 4


def cheap_hours(signal, off_peak=5.0):
    return float(np.sum(signal.values == off_peak)) * signal.interval / 3600


@pytest.mark.parametrize(
    ("day_start_utc", "day_hours", "hours"),
    [
        (datetime(2024, 3, 30, 0, 0, tzinfo=UTC), 24, 7.0),  # ordinary day: 00:30-07:30
        (datetime(2024, 3, 31, 0, 0, tzinfo=UTC), 23, 6.0),  # spring forward: an hour less
        (datetime(2024, 10, 26, 23, 0, tzinfo=UTC), 25, 8.0),  # fall back (midnight BST)
    ],
)
def test_off_peak_source_follows_local_time_and_dst(day_start_utc, day_hours, hours):
    source = OffPeakTariffSource("Europe/London", horizon=day_hours * 3600)
    assert cheap_hours(source.signal(int(day_start_utc.timestamp()))) == hours


def test_off_peak_source_wraps_midnight():
    source = OffPeakTariffSource("UTC", "23:00", "06:00", horizon=86_400)
    signal = source.signal(T0 + 600)
    assert signal.start == T0
    assert cheap_hours(signal) == 7.0
    assert signal.values[0] == 5.0 and signal.values[12] == 16.67 and signal.values[46] == 5.0
