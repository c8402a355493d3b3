"""PHPFina engine: byte layout against hand-packed bytes, emoncms write and read semantics."""

from __future__ import annotations

import calendar
import math
import os
import struct

import numpy as np
import pytest

from hub.feed import phpfina
from hub.feed.phpfina import (
    CorruptFeed,
    FeedExists,
    FeedNotFound,
    InvalidInterval,
    InvalidReadRequest,
    PHPFina,
    TimestampOutOfRange,
)

NOW = 2_000_000_000  # injected clock: far enough ahead of every test timestamp
NAN_BYTES = b"\x00\x00\xc0\x7f"  # PHP pack("f", NAN), by hand


def f32(*values: float) -> bytes:
    """float32 little-endian, packed by hand (not through the module)."""
    return b"".join(NAN_BYTES if math.isnan(v) else struct.pack("<f", v) for v in values)


def utc(*args: int) -> int:
    return calendar.timegm((*args, 0, 0, 0)[:6])


@pytest.fixture
def engine(tmp_path) -> PHPFina:
    return PHPFina(str(tmp_path), now=lambda: NOW)


def dat(engine: PHPFina, feed_id: int) -> bytes:
    with open(engine.dat_path(feed_id), "rb") as f:
        return f.read()


def meta(engine: PHPFina, feed_id: int) -> bytes:
    with open(engine.meta_path(feed_id), "rb") as f:
        return f.read()


class TestCreate:
    def test_create_writes_16_byte_meta_and_empty_dat(self, engine):
        engine.create(1, 10)
        assert meta(engine, 1) == b"\x00" * 8 + b"\x0a\x00\x00\x00" + b"\x00\x00\x00\x00"
        assert dat(engine, 1) == b""
        assert engine.size(1) == 16

    def test_create_existing_raises(self, engine):
        engine.create(1, 10)
        with pytest.raises(FeedExists):
            engine.create(1, 60)
        assert engine.get_meta(1).interval == 10

    @pytest.mark.parametrize("interval", [0, -10, 1.5, "10", True, 10**9])
    def test_create_bad_interval_raises(self, engine, interval):
        with pytest.raises(InvalidInterval):
            engine.create(1, interval)
        assert not engine.exists(1)

    @pytest.mark.parametrize("feed_id", [0, -1, "1", True, 1.0])
    def test_create_bad_id_raises(self, engine, feed_id):
        with pytest.raises(phpfina.FeedError):
            engine.create(feed_id, 10)

    def test_delete_removes_both_files(self, engine):
        engine.create(1, 10)
        engine.delete(1)
        assert not os.path.exists(engine.meta_path(1))
        assert not os.path.exists(engine.dat_path(1))
        with pytest.raises(FeedNotFound):
            engine.delete(1)

    def test_missing_feed_raises_not_found(self, engine):
        with pytest.raises(FeedNotFound):
            engine.get_meta(7)
        with pytest.raises(FeedNotFound):
            engine.write_points(7, [(1000, 1)])
        with pytest.raises(FeedNotFound):
            engine.read(7, 0, 100, 10)


class TestWrite:
    def test_write_points_byte_layout(self, engine):
        engine.create(1, 10)
        engine.write_points(1, [(1000, 1.0), (1010, -2.5), (1020, 100.25)])
        assert meta(engine, 1) == struct.pack("<IIII", 0, 0, 10, 1000)
        assert meta(engine, 1)[12:] == b"\xe8\x03\x00\x00"  # 1000 LE, by hand
        assert dat(engine, 1) == b"\x00\x00\x80\x3f" + b"\x00\x00\x20\xc0" + b"\x00\x80\xc8\x42"
        assert engine.size(1) == 16 + 12

    def test_write_points_aligns_to_epoch_not_start(self, engine):
        engine.create(1, 60)
        engine.write_points(1, [(1_000_059, 1.0), (1_000_199, 2.0)])
        m = engine.get_meta(1)
        assert m.start_time == 1_000_020  # 1_000_059 - 1_000_059 % 60
        assert dat(engine, 1) == f32(1.0, math.nan, 2.0)

    def test_write_points_gap_is_nan(self, engine):
        engine.create(1, 10)
        engine.write_points(1, [(1000, 1.0)])
        engine.write_points(1, [(1040, 5.0)])
        assert dat(engine, 1) == f32(1.0) + NAN_BYTES * 3 + f32(5.0)

    def test_write_points_overwrites_in_range(self, engine):
        engine.create(1, 10)
        engine.write_points(1, [(1000, 1.0), (1010, 2.0), (1020, 3.0)])
        result = engine.write_points(1, [(1012, 9.0), (1020, 8.0)])
        assert result.overwritten == 2 and result.appended == 0
        assert dat(engine, 1) == f32(1.0, 9.0, 8.0)

    def test_write_points_before_start_dropped(self, engine):
        engine.create(1, 10)
        engine.write_points(1, [(1000, 1.0)])
        result = engine.write_points(1, [(990, 7.0), (1010, 2.0)])
        assert result.dropped == {"before_start": 1}
        assert engine.get_meta(1).start_time == 1000
        assert dat(engine, 1) == f32(1.0, 2.0)

    def test_post_before_start_raises(self, engine):
        engine.create(1, 10)
        engine.post(1, 1000, 1.0)
        with pytest.raises(TimestampOutOfRange):
            engine.post(1, 500, 1.0)

    def test_write_points_future_dropped(self, engine):
        engine.create(1, 10)
        result = engine.write_points(1, [(1000, 1.0), (NOW + engine.max_future + 10, 2.0)])
        assert result.dropped == {"future": 1}
        assert dat(engine, 1) == f32(1.0)
        with pytest.raises(TimestampOutOfRange):
            engine.post(1, NOW + 10**7, 1.0)
        engine.create(2, 1800)
        engine.post(2, NOW + 86400, 1.0)  # forecasts a day ahead are fine

    def test_write_points_invalid_times_dropped(self, engine):
        engine.create(1, 10)
        result = engine.write_points(1, [(0, 1.0), (-50, 1.0), (math.nan, 1.0), (1000, 2.0)])
        assert result.dropped == {"invalid_time": 3}
        assert dat(engine, 1) == f32(2.0)

    def test_write_points_same_slot_last_wins(self, engine):
        engine.create(1, 10)
        engine.write_points(1, [(1000, 1.0), (1003, 2.0), (1009, 3.0)])
        assert dat(engine, 1) == f32(3.0)

    def test_write_points_out_of_order_sorted(self, engine):
        engine.create(1, 10)
        engine.write_points(1, [(1020, 3.0), (1000, 1.0), (1010, 2.0)])
        assert engine.get_meta(1).start_time == 1000
        assert dat(engine, 1) == f32(1.0, 2.0, 3.0)

    def test_write_points_nan_value_stored_as_gap(self, engine):
        engine.create(1, 10)
        engine.write_points(1, [(1000, math.nan)])
        assert dat(engine, 1) == NAN_BYTES

    def test_write_points_join_interpolates_like_emoncms(self, engine):
        engine.create(1, 10)
        engine.write_points(1, [(1000, 1.0)])
        engine.write_points(1, [(1040, 2.0)], "join")
        # emoncms: v += (new - last) / (padding + 1), in double, then packed to float32
        v, step, expected = 1.0, (2.0 - 1.0) / 4, []
        for _ in range(3):
            v += step
            expected.append(v)
        assert dat(engine, 1) == f32(1.0, *expected, 2.0)
        assert dat(engine, 1)[4:8] == b"\x00\x00\xa0\x3f"  # 1.25

    def test_write_points_join_within_batch_uses_unrounded_last(self, engine):
        engine.create(1, 10)
        engine.write_points(1, [(1000, 0.1), (1030, 0.7)], "join")
        v, step, expected = 0.1, (0.7 - 0.1) / 3, []
        for _ in range(2):
            v += step
            expected.append(v)
        assert dat(engine, 1) == f32(0.1, *expected, 0.7)

    def test_write_points_join_after_nan_pads_nan(self, engine):
        engine.create(1, 10)
        engine.write_points(1, [(1000, math.nan)])
        engine.write_points(1, [(1030, 3.0)], "join")
        assert dat(engine, 1) == NAN_BYTES * 3 + f32(3.0)

    def test_write_points_padding_too_long_dropped(self, engine, monkeypatch):
        monkeypatch.setattr(phpfina, "MAX_PADDING", 5)
        engine.create(1, 10)
        engine.write_points(1, [(1000, 1.0)])
        result = engine.write_points(1, [(1060, 2.0), (1200, 3.0)])
        assert result.dropped == {"padding_too_long": 1}
        assert dat(engine, 1) == f32(1.0) + NAN_BYTES * 5 + f32(2.0)

    def test_write_points_batch_is_one_tail_write(self, engine, monkeypatch):
        engine.create(1, 10)
        engine.write_points(1, [(1000, 0.0), (1010, 0.0), (1020, 0.0), (1030, 0.0)])
        calls = []
        real = os.pwrite

        def counting_pwrite(fd, data, offset):
            calls.append((offset, len(data)))
            return real(fd, data, offset)

        monkeypatch.setattr(os, "pwrite", counting_pwrite)
        points = [(1010, 1.0), (1020, 2.0), (1030, 3.0)] + [(1040 + 10 * i, i) for i in range(100)]
        result = engine.write_points(1, points)
        assert calls == [(4, 12), (16, 400)]  # one run of overwrites, one tail block
        assert result.bytes_written == 412

    def test_write_points_repins_start_after_crash_left_empty_dat(self, engine):
        engine.create(1, 10)
        with open(engine.meta_path(1), "wb") as f:  # meta written, data never made it
            f.write(struct.pack("<IIII", 0, 0, 10, 5000))
        assert engine.get_meta(1).npoints == 0
        engine.write_points(1, [(9000, 1.0)])
        assert meta(engine, 1) == struct.pack("<IIII", 0, 0, 10, 9000)
        assert dat(engine, 1) == f32(1.0)


class TestCorrupt:
    def test_short_meta_raises_corrupt(self, engine):
        engine.create(1, 10)
        with open(engine.meta_path(1), "wb") as f:
            f.write(struct.pack("<III", 0, 0, 10))
        with pytest.raises(CorruptFeed) as err:
            engine.read(1, 0, 100, 10)
        assert err.value.path == engine.meta_path(1)
        with pytest.raises(CorruptFeed):
            engine.write_points(1, [(1000, 1.0)])

    def test_zero_interval_raises_corrupt(self, engine):
        engine.create(1, 10)
        with open(engine.meta_path(1), "wb") as f:
            f.write(struct.pack("<IIII", 0, 0, 0, 1000))
        with pytest.raises(CorruptFeed):
            engine.get_meta(1)

    def test_data_without_start_time_raises_corrupt(self, engine):
        engine.create(1, 10)
        with open(engine.dat_path(1), "wb") as f:
            f.write(f32(1.0, 2.0))
        with pytest.raises(CorruptFeed):
            engine.timevalue(1)

    def test_missing_dat_raises_corrupt(self, engine):
        engine.create(1, 10)
        os.unlink(engine.dat_path(1))
        with pytest.raises(CorruptFeed) as err:
            engine.get_meta(1)
        assert err.value.path == engine.dat_path(1)
        with pytest.raises(CorruptFeed):
            engine.write_points(1, [(1000, 1.0)])

    def test_torn_trailing_float_ignored_then_overwritten(self, engine):
        engine.create(1, 10)
        engine.write_points(1, [(1000, 1.0), (1010, 2.0)])
        with open(engine.dat_path(1), "ab") as f:
            f.write(b"\x00\x00")  # a power cut in the middle of an append
        assert engine.get_meta(1).npoints == 2
        assert engine.read(1, 1000, 1020, 10) == [[1000, 1.0], [1010, 2.0], [1020, None]]
        engine.write_points(1, [(1020, 3.0)])
        assert dat(engine, 1) == f32(1.0, 2.0, 3.0)


@pytest.fixture
def ramp(engine) -> PHPFina:
    """Feed 1, 10 s interval, slots 1000..1190 holding 0..19, slot 1050 a gap."""
    engine.create(1, 10)
    values = [float(i) for i in range(20)]
    values[5] = math.nan
    engine.write_points(1, [(1000 + 10 * i, v) for i, v in enumerate(values)])
    return engine


class TestRead:
    def test_read_original_end_inclusive(self, ramp):
        rows = ramp.read(1, 1000, 1060, "original")
        assert rows == [[1000, 0.0], [1010, 1.0], [1020, 2.0], [1030, 3.0], [1040, 4.0],
                        [1050, None], [1060, 6.0]]

    def test_read_unaligned_start_uses_floor(self, ramp):
        assert ramp.read(1, 1005, 1025, 10) == [[1005, 0.0], [1015, 1.0], [1025, 2.0]]

    def test_read_outside_data_is_null(self, ramp):
        assert ramp.read(1, 980, 1000, 10) == [[980, None], [990, None], [1000, 0.0]]
        assert ramp.read(1, 1190, 1210, 10) == [[1190, 19.0], [1200, None], [1210, None]]

    def test_read_newest_slot_answers_for_its_whole_interval(self, engine):
        """Issue 11 #12: points at T and T+10; a sample anywhere in T+10's slot shows it."""
        engine.create(2, 10)
        engine.write_points(2, [(1000, 1.0), (1010, 2.0)])
        assert engine.read(2, 1003, 1013, 10) == [[1003, 1.0], [1013, 2.0]]
        assert engine.read(2, 1009, 1029, 10) == [[1009, 1.0], [1019, 2.0], [1029, None]]
        assert engine.read(2, 1000, 1020, 10) == [[1000, 1.0], [1010, 2.0], [1020, None]]

    def test_read_average_ignores_nan(self, ramp):
        rows = ramp.read(1, 1000, 1100, 50, average=True)
        # [1000,1050): 0..4 -> 2; [1050,1100): nan,6,7,8,9 -> 7.5; [1100,1150): 10..14 -> 12
        assert rows == [[1000, 2.0], [1050, 7.5], [1100, 12.0]]

    def test_read_without_average_samples_division_start(self, ramp):
        assert ramp.read(1, 1000, 1100, 50) == [[1000, 0.0], [1050, None], [1100, 10.0]]

    def test_read_limitinterval_rounds_to_feed_interval(self, ramp):
        rows = ramp.read(1, 1000, 1040, 14)  # 14 -> round(1.4) * 10 = 10
        assert [t for t, _ in rows] == [1000, 1010, 1020, 1030, 1040]
        rows = ramp.read(1, 1000, 1014, 7, limitinterval=False)
        assert rows == [[1000, 0.0], [1007, 0.0], [1014, 1.0]]

    def test_read_average_partly_outside(self, ramp):
        assert ramp.read(1, 1150, 1250, 50, average=True) == [
            [1150, 17.0], [1200, None], [1250, None]]

    def test_read_skipmissing(self, ramp):
        rows = ramp.read(1, 1030, 1070, 10, skipmissing=True)
        assert rows == [[1030, 3.0], [1040, 4.0], [1060, 6.0], [1070, 7.0]]

    def test_read_dp(self, engine):
        engine.create(1, 10)
        engine.write_points(1, [(1000, 1.23456)])
        assert engine.read(1, 1000, 1010, 10, dp=2) == [[1000, 1.23], [1010, None]]
        assert engine.read(1, 1000, 1010, 10)[0][1] == struct.unpack("<f", f32(1.23456))[0]

    def test_read_timeformats(self, ramp):
        assert ramp.read(1, 1000, 1010, 10, timeformat="unixms") == [[1000000, 0.0],
                                                                     [1010000, 1.0]]
        assert ramp.read(1, 1000, 1010, 10, timeformat="notime") == [0.0, 1.0]
        rows = ramp.read(1, 1000, 1010, 10, timeformat="iso8601", timezone="Europe/London")
        assert rows[0] == ["1970-01-01T01:16:40+01:00", 0.0]  # UK was on BST all of 1970
        rows = ramp.read(1, 1000, 1010, 10, timeformat="excel", timezone="UTC")
        assert rows[1] == ["01/01/1970 00:16:50", 1.0]

    def test_read_milliseconds_are_converted(self, ramp):
        ms = ramp.read(1, 1000, 1020, 10)
        t0 = 1_600_000_000
        ramp.create(2, 10)
        ramp.write_points(2, [(t0, 5.0)])
        assert ramp.read(2, t0 * 1000, (t0 + 10) * 1000, 10) == [[t0, 5.0], [t0 + 10, None]]
        assert ms == ramp.read(1, 1000, 1020, 10)

    @pytest.mark.parametrize("kwargs", [
        {"start": 2000, "end": 1000, "interval": 10},
        {"start": 1000, "end": 1000, "interval": 10},
        {"start": 1000, "end": 2000, "interval": "hourly"},
        {"start": 1000, "end": 2000, "interval": None},
        {"start": 1000, "end": 2000, "interval": 10, "dp": -1},
        {"start": 1000, "end": 2000, "interval": 10, "timeformat": "rfc"},
        {"start": 1000, "end": 2000, "interval": "daily", "timezone": "Mars/Olympus"},
        {"start": "yesterday", "end": 2000, "interval": 10},
        {"start": 0, "end": 10 * 30_000, "interval": 10},  # over MAX_DATAPOINTS
    ])
    def test_read_invalid_request_raises(self, ramp, kwargs):
        start, end, interval = kwargs.pop("start"), kwargs.pop("end"), kwargs.pop("interval")
        with pytest.raises(InvalidReadRequest):
            ramp.read(1, start, end, interval, **kwargs)

    def test_read_delta(self, engine):
        engine.create(1, 10)
        engine.write_points(1, [(1000, 10.0), (1010, 12.0), (1020, 15.0), (1030, 15.5)])
        assert engine.read(1, 1000, 1020, 10, delta=True) == [
            [1000, 2.0], [1010, 3.0], [1020, 0.5]]

    def test_read_delta_last_division_uses_current_value(self, engine):
        engine.create(1, 600)
        engine.write_points(1, [(7200, 10.0), (7800, 10.5), (8400, 11.0)])
        # one hourly division: its closing slot (10800) does not exist yet, so the feed's
        # latest value (8400 -> 11.0, or a pending 9000 -> 11.5) stands in for it
        assert engine.read(1, 7200, 7200 + 1, 3600, delta=True) == [[7200, 1.0]]
        rows = engine.read(1, 7200, 7201, 3600, delta=True, pending=[(9000, 11.5)])
        assert rows == [[7200, 1.5]]
        engine.write_points(1, [(10800, 14.0)])
        assert engine.read(1, 7200, 7201, 3600, delta=True) == [[7200, 4.0]]

    def test_value_and_timevalue(self, ramp):
        assert ramp.timevalue(1) == {"time": 1190, "value": 19.0}
        assert ramp.value(1) == 19.0
        assert ramp.value_at(1, 1004) == 0.0 and ramp.value_at(1, 1005) == 1.0  # round
        ramp.create(2, 10)
        assert ramp.timevalue(2) == {"time": None, "value": None}

    def test_export_csv(self, ramp):
        text = "".join(ramp.export_csv(1, 1030, 1060, 10))
        assert text == "1030,3.00\n1040,4.00\n1050,null\n1060,6.00\n"
        text = "".join(ramp.export_csv(1, 1030, 1040, 10, separator=";", decimals=1,
                                       timeformat="unixms"))
        assert text == "1030;3.0\n1040;4.0\n"

    def test_export_dat_resends_last_point(self, ramp):
        assert b"".join(ramp.export_dat(1, 0)) == dat(ramp, 1)
        assert b"".join(ramp.export_dat(1, 17)) == dat(ramp, 1)[12:]


class TestPending:
    def test_pending_overrides_and_extends(self, ramp):
        pending = [(1010, 100.0), (1210, 21.0)]
        rows = ramp.read(1, 1000, 1220, 10, pending=pending)
        assert rows[1] == [1010, 100.0]
        assert rows[20] == [1200, None] and rows[21] == [1210, 21.0] and rows[22] == [1220, None]
        assert ramp.timevalue(1, pending=pending) == {"time": 1210, "value": 21.0}
        assert dat(ramp, 1)[4:8] == f32(1.0)  # nothing written

    def test_pending_matches_what_a_write_then_stores(self, ramp):
        pending = [(1200, 30.0), (1250, 35.0), (1020, -1.0), (990, 7.0)]
        merged = ramp.read(1, 990, 1260, 10, pending=pending, padding_mode="join")
        merged_avg = ramp.read(1, 990, 1260, 30, pending=pending, padding_mode="join",
                               average=True)
        ramp.write_points(1, pending, "join")
        assert ramp.read(1, 990, 1260, 10) == merged
        assert ramp.read(1, 990, 1260, 30, average=True) == merged_avg

    def test_pending_on_empty_feed_sets_start(self, engine):
        engine.create(1, 10)
        rows = engine.read(1, 990, 1010, 10, pending=np.array([[1000.0, 4.0]]))
        assert rows == [[990, None], [1000, 4.0], [1010, None]]


# Europe/London 2024: BST from 31 Mar 01:00 UTC to 27 Oct 01:00 UTC (hand-written constants).
MAR31 = utc(2024, 3, 31)  # local midnight 31 Mar = 00:00 GMT
APR1 = utc(2024, 3, 31, 23)  # local midnight 1 Apr = 00:00 BST
OCT27 = utc(2024, 10, 26, 23)  # local midnight 27 Oct = 00:00 BST
OCT28 = utc(2024, 10, 28)  # local midnight 28 Oct = 00:00 GMT


@pytest.fixture
def hourly_counter(engine) -> PHPFina:
    """Feed 1: hourly slots from 1 Mar to 30 Nov 2024 UTC; value = hours since start (kWh
    counter at 1 kW), so a day's delta is its length in hours."""
    engine.create(1, 3600)
    start, end = utc(2024, 3, 1), utc(2024, 11, 30)
    times = np.arange(start, end, 3600)
    engine.write_points(1, np.column_stack([times, (times - start) / 3600]))
    return engine


class TestCalendar:
    def test_daily_across_spring_change(self, hourly_counter):
        rows = hourly_counter.read(1, utc(2024, 3, 30, 12), utc(2024, 4, 1, 12), "daily",
                                   timezone="Europe/London", delta=True)
        assert [t for t, _ in rows] == [utc(2024, 3, 30), MAR31, APR1]
        assert [v for _, v in rows] == [24.0, 23.0, 24.0]

    def test_daily_across_autumn_change(self, hourly_counter):
        rows = hourly_counter.read(1, OCT27 - 3600, OCT28 + 3600, "daily",
                                   timezone="Europe/London", delta=True)
        assert [t for t, _ in rows] == [OCT27 - 86400, OCT27, OCT28]
        assert [v for _, v in rows] == [24.0, 25.0, 24.0]

    def test_daily_average_over_23_and_25_hour_days(self, hourly_counter):
        start = utc(2024, 3, 1)

        def mean_hours(a, b):  # mean of the counter over [a, b)
            return ((a - start) / 3600 + (b - start) / 3600 - 1) / 2

        rows = hourly_counter.read(1, MAR31, APR1, "daily", timezone="Europe/London",
                                   average=True)
        assert rows == [[MAR31, mean_hours(MAR31, APR1)], [APR1, mean_hours(APR1, APR1 + 86400)]]
        rows = hourly_counter.read(1, OCT27, OCT27 + 3600, "daily", timezone="Europe/London",
                                   average=True)
        assert rows == [[OCT27, mean_hours(OCT27, OCT28)]]

    def test_daily_in_utc_has_24_hour_days(self, hourly_counter):
        rows = hourly_counter.read(1, utc(2024, 3, 30), utc(2024, 4, 1), "daily", delta=True)
        assert [v for _, v in rows] == [24.0, 24.0, 24.0]

    def test_weekly_aligns_to_monday_on_or_after_start(self, hourly_counter):
        # Wed 27 Mar 2024 -> first division Mon 1 Apr (PHP "this monday" moves forward)
        rows = hourly_counter.read(1, utc(2024, 3, 27, 12), utc(2024, 4, 10), "weekly",
                                   timezone="Europe/London", delta=True)
        assert [t for t, _ in rows] == [APR1, APR1 + 7 * 86400]
        assert [v for _, v in rows] == [168.0, 168.0]
        rows = hourly_counter.read(1, utc(2024, 3, 25), utc(2024, 3, 26), "weekly",
                                   timezone="Europe/London", delta=True)
        assert rows == [[utc(2024, 3, 25), 167.0]]  # Mon 25 Mar: the week of the change

    def test_monthly_across_both_changes(self, hourly_counter):
        rows = hourly_counter.read(1, utc(2024, 3, 15), utc(2024, 10, 15), "monthly",
                                   timezone="Europe/London", delta=True)
        assert rows[0] == [utc(2024, 3, 1), 31 * 24 - 1.0]  # March loses an hour
        assert rows[1] == [utc(2024, 3, 31, 23), 30 * 24.0]  # 1 Apr 00:00 BST
        assert rows[-1] == [utc(2024, 9, 30, 23), 31 * 24 + 1.0]  # October gains one
        assert len(rows) == 8

    def test_delta_end_on_a_day_the_next_month_lacks(self, hourly_counter):
        # delta extends end by PHP "+1 month"/"+1 year", which overflow: 31 Mar -> 1 May,
        # so April comes out too, as in emoncms (it used to raise ValueError)
        rows = hourly_counter.read(1, utc(2024, 3, 1), utc(2024, 3, 31, 12), "monthly",
                                   timezone="UTC", delta=True)
        assert rows == [[utc(2024, 3, 1), 31 * 24.0], [utc(2024, 4, 1), 30 * 24.0]]
        rows = hourly_counter.read(1, utc(2024, 3, 1), utc(2024, 3, 31, 12), "annual",
                                   delta=True)
        assert rows == [[utc(2024, 1, 1), None]]

    def test_annual(self, hourly_counter):
        rows = hourly_counter.read(1, utc(2024, 6, 1), utc(2024, 6, 2), "annual")
        assert rows == [[utc(2024, 1, 1), None]]
