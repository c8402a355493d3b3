"""The Demand Shaper port reproduces the worked vectors of the reference notes (§1.4)."""

import pytest

from hub.scheduler import reference_ds as ds

PROFILE = [5, 3, 3, 4, 3, 3, 9, 1]


@pytest.mark.parametrize(
    ("period", "end", "interruptible", "expected"),
    [
        (3600, 14400, False, [(7200, 10800)]),  # tie at sum 6: `<=` takes the later window
        (4500, 14400, False, [(6300, 10800)]),  # 3 slots at td3 (4,3,3): right-aligned
        (5400, 12600, True, [(3600, 5400), (7200, 10800)]),  # td7 starts at end: excluded
        (4200, 14400, True, [(8400, 10800), (12600, 14400)]),  # partial at end of td4
    ],
)
def test_schedule_worked_vectors(period, end, interruptible, expected):
    assert ds.schedule(0, 1800, PROFILE, period, end, interruptible=interruptible) == expected


def test_schedule_block_left_aligns_when_first_slot_cheaper():
    assert ds.schedule(0, 1800, [1, 2, 9, 9], 2700, 7200, interruptible=False) == [(0, 2700)]


def test_schedule_ready_by_before_start_returns_nothing():
    assert ds.schedule(3600, 1800, PROFILE, 1800, 0, interruptible=False) == []
    assert ds.schedule(0, 1800, PROFILE, 0, 7200, interruptible=True) == []


def test_schedule_higher_is_better_picks_maximum():
    assert ds.schedule(0, 1800, [1, 5, 2], 1800, 5400, interruptible=False,
                       higher_is_better=True) == [(1800, 3600)]
    assert ds.schedule(0, 1800, [1, 5, 2], 3600, 5400, interruptible=True,
                       higher_is_better=True) == [(1800, 5400)]
