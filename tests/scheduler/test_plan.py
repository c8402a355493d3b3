"""Schedule definitions -> occurrences -> plans: DST, midnight, re-planning, explanation."""

from datetime import UTC, date, datetime

import pytest

from hub.scheduler.errors import InvalidSchedule, ReadyByPassed
from hub.scheduler.localtime import iso_local, zone
from hub.scheduler.optimise import Window
from hub.scheduler.plan import (
    Occurrence,
    ScheduleDefinition,
    advance,
    explain,
    new_occurrence,
    next_ready_by,
    plan,
    plan_run,
    roll_over,
)
from hub.scheduler.signal import Signal

LONDON = zone("Europe/London")
SLOT = 1800


def utc(*args) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())


def local(ts: int) -> str:
    return iso_local(ts, LONDON)


@pytest.mark.parametrize(
    ("now", "ready_by", "repeat", "expected"),
    [
        # Monday 25 March 08:00 GMT, Mondays only: next Monday is in BST
        (utc(2024, 3, 25, 8), "07:00", {0}, "2024-04-01T07:00:00+01:00"),
        # once, ready-by already passed today: tomorrow (alarm clock)
        (utc(2024, 3, 25, 8), "07:00", set(), "2024-03-26T07:00:00+00:00"),
        # midnight crossing: 22:00 -> 06:00 next day
        (utc(2024, 3, 25, 22), "06:00", set(), "2024-03-26T06:00:00+00:00"),
        # spring forward: 07:00 is only 8 h after 22:00 the evening before
        (utc(2024, 3, 30, 22), "07:00", set(range(7)), "2024-03-31T07:00:00+01:00"),
        # spring forward: 01:30 does not exist -> 02:30 BST
        (utc(2024, 3, 30, 22), "01:30", set(), "2024-03-31T02:30:00+01:00"),
        # fall back: 01:30 happens twice -> the first (BST)
        (utc(2024, 10, 26, 22), "01:30", set(), "2024-10-27T01:30:00+01:00"),
        # fall back: 07:00 is 10 h after 22:00 BST the evening before
        (utc(2024, 10, 26, 21), "07:00", {6}, "2024-10-27T07:00:00+00:00"),
        # exactly at ready-by: the next one
        (utc(2024, 3, 26, 7), "07:00", set(), "2024-03-27T07:00:00+00:00"),
    ],
)
def test_next_ready_by(now, ready_by, repeat, expected):
    defn = ScheduleDefinition(ready_by, 3600, repeat=frozenset(repeat))
    assert local(next_ready_by(defn, now, LONDON)) == expected


def test_next_ready_by_dst_interval_lengths():
    defn = ScheduleDefinition("07:00", 3600, repeat=frozenset(range(7)))
    assert next_ready_by(defn, utc(2024, 3, 30, 22), "Europe/London") - utc(2024, 3, 30, 22) == (
        8 * 3600)
    assert next_ready_by(defn, utc(2024, 10, 26, 21), LONDON) - utc(2024, 10, 26, 21) == 10 * 3600


def test_next_ready_by_one_off_date():
    defn = ScheduleDefinition("07:00", 3600, once_on=date(2024, 3, 31))
    assert local(next_ready_by(defn, utc(2024, 3, 30, 12), LONDON)) == "2024-03-31T07:00:00+01:00"
    with pytest.raises(ReadyByPassed, match="in the past"):
        next_ready_by(defn, utc(2024, 3, 31, 9), LONDON)


@pytest.mark.parametrize(
    "bad",
    [
        {"ready_by": "7:00", "period": 3600},
        {"ready_by": "24:00", "period": 3600},
        {"ready_by": 700, "period": 3600},
        {"ready_by": "07:00", "period": 0},
        {"ready_by": "07:00", "period": "1h"},
        {"ready_by": "07:00", "period": 3600, "repeat": [7]},
        {"ready_by": "07:00", "period": 3600, "repeat": "weekdays"},
        {"ready_by": "07:00", "period": 3600, "repeat": [1], "once_on": "2024-03-31"},
        {"ready_by": "07:00", "period": 3600, "once_on": "31/03/2024"},
        {"ready_by": "07:00", "period": 3600, "mode": "timer"},
        {"ready_by": "07:00", "period": 3600, "on_completion": "reboot"},
        {"ready_by": "07:00", "period": 3600, "interruptible": "yes"},
        ["07:00"],
    ],
)
def test_definition_from_json_rejects(bad):
    with pytest.raises(InvalidSchedule):
        ScheduleDefinition.from_json(bad)


def test_definition_json_round_trip():
    obj = {"ready_by": "07:30", "period": 5400, "interruptible": True, "repeat": ["mon", 4],
           "once_on": None, "mode": "smart", "on_completion": "smart"}
    defn = ScheduleDefinition.from_json(obj)
    assert defn.repeat == {0, 4}
    assert ScheduleDefinition.from_json(defn.to_json()) == defn


def night_signal(start, values):
    return Signal(start, SLOT, values)


def test_plan_across_midnight_and_spring_forward():
    # 22:00 GMT Sat 30 March; cheapest hour 02:00-03:00 UTC (03:00-04:00 BST); ready 07:00 BST
    now = utc(2024, 3, 30, 22)
    values = [9.0] * 16
    values[8:10] = [1.0, 1.0]
    signal = night_signal(now, values)
    defn = ScheduleDefinition("07:00", 3600)
    occ = new_occurrence(defn, now, LONDON)
    result = plan(defn, occ, signal, now)
    assert result.status == "scheduled"
    assert [(local(w.start), local(w.end)) for w in result.windows] == [
        ("2024-03-31T03:00:00+01:00", "2024-03-31T04:00:00+01:00")]


def test_plan_run_across_fall_back_lasts_real_time():
    now = utc(2024, 10, 26, 23)  # 00:00 BST
    signal = night_signal(now, [5.0] * 20)
    defn = ScheduleDefinition("03:00", 3 * 3600)  # 03:00 GMT is 4 real hours away
    result = plan(defn, new_occurrence(defn, now, LONDON), signal, now)
    (window,) = result.windows
    assert window.seconds == 3 * 3600 and window.start == now  # flat: earliest
    assert local(window.end) == "2024-10-27T02:00:00+00:00"  # wall clock shows 2 h
    assert result.ready_by - now == 4 * 3600


def test_plan_contiguous_started_is_never_moved():
    now = utc(2024, 5, 1, 0)
    defn = ScheduleDefinition("06:00", 2 * 3600)
    occ = new_occurrence(defn, now, "UTC")
    first = plan(defn, occ, night_signal(now, [1, 1, 1, 1, 9, 9, 9, 9, 9, 9, 9, 9]), now)
    assert first.windows == (Window(now, now + 7200),)
    occ = Occurrence(occ.ready_by, occ.remaining_s, first.windows)
    occ = advance(occ, now, now + 1800)
    assert occ.started and occ.remaining_s == 5400
    cheaper_later = night_signal(now, [9, 9, 9, 9, 0, 0, 0, 0, 0, 0, 0, 0])
    again = plan(defn, occ, cheaper_later, now + 1800)
    assert again.status == "running" and again.windows == first.windows


def test_plan_contiguous_not_started_moves_with_new_profile():
    now = utc(2024, 5, 1, 0)
    defn = ScheduleDefinition("06:00", 3600)
    occ = new_occurrence(defn, now, "UTC")
    before = plan(defn, occ, night_signal(now, [9, 9, 9, 9, 1, 1, 9, 9, 9, 9, 9, 9]), now)
    occ = Occurrence(occ.ready_by, occ.remaining_s, before.windows)
    after = plan(defn, occ, night_signal(now, [9, 9, 9, 9, 9, 9, 9, 9, 0, 0, 9, 9]), now + 60)
    assert before.windows[0].start == now + 4 * SLOT
    assert after.windows[0].start == now + 8 * SLOT


def test_plan_interruptible_reoptimises_what_is_left():
    now = utc(2024, 5, 1, 0)
    defn = ScheduleDefinition("06:00", 3 * SLOT, interruptible=True)
    occ = new_occurrence(defn, now, "UTC")
    first = plan(defn, occ, night_signal(now, [1, 9, 1, 9, 1, 9, 9, 9, 9, 9, 9, 9]), now)
    assert [w.start - now for w in first.windows] == [0, 2 * SLOT, 4 * SLOT]
    occ = advance(Occurrence(occ.ready_by, occ.remaining_s, first.windows), now, now + SLOT)
    assert occ.remaining_s == 2 * SLOT
    new_profile = night_signal(now, [1, 9, 9, 9, 9, 9, 9, 9, 9, 2, 2, 9])
    again = plan(defn, occ, new_profile, now + SLOT)
    assert [(w.start - now, w.end - now) for w in again.windows] == [(9 * SLOT, 11 * SLOT)]


def test_plan_running_interruptible_is_not_cut_by_minute_rounding():
    now = utc(2024, 5, 1, 0)
    defn = ScheduleDefinition("02:00", SLOT, interruptible=True)
    occ = Occurrence(now + 4 * SLOT, SLOT - 30, (Window(now, now + SLOT),), started=True)
    again = plan(defn, occ, night_signal(now, [1, 5, 5, 5]), now + 30)
    assert again.windows == (Window(now + 30, now + SLOT),)


def test_plan_waits_for_next_profile_when_the_tail_can_hold_the_run():
    now = utc(2024, 5, 1, 12)
    signal = night_signal(now, [1.0] * 24)  # covers until midnight
    defn = ScheduleDefinition("07:00", 3600)
    occ = new_occurrence(defn, now, "UTC")
    result = plan(defn, occ, signal, now)
    assert result.status == "waiting_for_signal" and not result.windows
    assert result.latest_start == occ.ready_by - 3600
    # no new profile came: at the latest start it runs in the unknown tail
    late = plan(defn, occ, signal, occ.ready_by - 3600)
    assert late.status == "scheduled"
    assert late.windows == (Window(occ.ready_by - 3600, occ.ready_by),)


def test_plan_uses_known_slots_before_unknown_when_tail_is_short():
    now = utc(2024, 5, 1, 20)
    signal = night_signal(now, [5, 5, 1, 5, 5, 5, 5, 5])  # until midnight; ready 01:00
    result = plan_run(signal, 2 * 3600, now, utc(2024, 5, 2, 1), interruptible=True)
    assert result.status == "scheduled"
    assert sum(w.seconds for w in result.windows) == 7200
    assert all(w.end <= utc(2024, 5, 2, 0) for w in result.windows)


def test_plan_manual_modes_and_done():
    now = utc(2024, 5, 1, 0)
    signal = night_signal(now, [1, 2])
    for mode in ("on", "off"):
        defn = ScheduleDefinition("06:00", 600, mode=mode)
        assert plan(defn, new_occurrence(defn, now, "UTC"), signal, now).status == mode
    defn = ScheduleDefinition("06:00", 600)
    assert plan(defn, Occurrence(now + 100, 0), signal, now).status == "done"
    missed = plan(defn, Occurrence(now - 100, 600), signal, now)
    assert missed.status == "done" and missed.shortfall_s == 600


def test_plan_started_contiguous_with_nothing_owed_is_done():
    now = utc(2024, 5, 1, 0)
    defn = ScheduleDefinition("06:00", 600)
    occ = Occurrence(now + 3600, 0, (Window(now - 600, now),), started=True)
    assert plan(defn, occ, night_signal(now, [1, 2]), now).status == "done"


def test_roll_over_modes():
    now = utc(2024, 5, 1, 7)
    daily = ScheduleDefinition("06:00", 600, repeat=frozenset(range(7)), on_completion="smart")
    mode, occ = roll_over(daily, now, "UTC")
    assert mode == "smart" and occ.ready_by == utc(2024, 5, 2, 6) and occ.remaining_s == 600
    once = ScheduleDefinition("06:00", 600, on_completion="smart")
    assert roll_over(once, now, "UTC") == ("off", None)
    assert roll_over(ScheduleDefinition("06:00", 600, on_completion="on"), now, "UTC") == (
        "on", None)


def test_explain_totals_and_run_now():
    now = utc(2024, 5, 1, 0)
    signal = night_signal(now, [4, 4, 1, 1, 4, 4])
    result = plan_run(signal, 2700, now, now + 6 * SLOT, interruptible=False)
    info = explain(result, signal, now, "Europe/London")
    assert [w["start"] - now for w in info["windows"]] == [2 * SLOT]
    assert [(s["value"], s["seconds"], s["signal"]) for s in info["slots"]] == [
        (1.0, 1800, 1.0), (1.0, 900, 0.5)]
    assert info["total_signal"] == pytest.approx(1.5)
    assert info["run_now"]["total_signal"] == pytest.approx(6.0)
    assert info["better_than_run_now_by"] == pytest.approx(4.5)
    assert info["better_than_run_now_percent"] == pytest.approx(75.0)
    assert info["windows"][0]["start_local"] == "2024-05-01T02:00:00+01:00"
    assert info["unknown_seconds"] == 0
