"""Feed store against real MariaDB, Redis and PHPFina files: metadata, buffered writes,
reads that merge unflushed points, flush, last values and daily profiles."""

from __future__ import annotations

import math
import struct
import time

import pytest

from hub.feed.phpfina import FeedError
from hub.feed.store import (
    FeedExists,
    FeedNotFound,
    InvalidFeed,
    InvalidPoint,
    InvalidProfile,
    NotOwner,
)

T0 = 1_700_000_000  # a multiple of 10: slot-aligned for 10 s feeds


@pytest.fixture
def store(ctx):
    return ctx.feeds


@pytest.fixture
def user_id(ctx) -> int:
    return ctx.users.register("owner", "correct horse").id


@pytest.fixture
def other_id(ctx) -> int:
    return ctx.users.register("other", "correct horse").id


def dat_floats(ctx, feed_id: int) -> list[float]:
    raw = (ctx.config.feed_dir / f"{feed_id}.dat").read_bytes()
    return [v for (v,) in struct.iter_unpack("<f", raw)]


def test_create_writes_row_and_phpfina_files(store, ctx, user_id):
    feed = store.create(user_id, "use", tag="house", interval=10, unit="W")
    assert store.get(feed.id) == feed
    assert (feed.name, feed.tag, feed.interval, feed.unit, feed.public, feed.engine) == \
        ("use", "house", 10, "W", False, 5)
    meta = (ctx.config.feed_dir / f"{feed.id}.meta").read_bytes()
    assert meta == struct.pack("<IIII", 0, 0, 10, 0)
    assert (ctx.config.feed_dir / f"{feed.id}.dat").read_bytes() == b""


def test_tag_and_name_are_unique_per_user(store, user_id, other_id):
    first = store.create(user_id, "use", tag="house")
    with pytest.raises(FeedExists) as err:
        store.create(user_id, "use", tag="house")
    assert err.value.feed_id == first.id
    store.create(user_id, "use", tag="garage")  # another tag is another feed
    store.create(other_id, "use", tag="house")  # another user too


@pytest.mark.parametrize("kwargs", [
    {"name": ""}, {"name": "x" * 65}, {"name": "semi;colon"}, {"tag": "<script>"},
    {"unit": "u" * 17}, {"engine": 2}, {"interval": 0}, {"interval": "10"},
])
def test_create_validates(store, user_id, kwargs):
    args = {"name": "ok", **kwargs}
    with pytest.raises(InvalidFeed):
        store.create(user_id, **args)
    assert store.feeds(user_id) == []


def test_insert_is_buffered_then_flush_writes_one_block(store, ctx, user_id):
    feed = store.create(user_id, "use")
    store.insert_many(feed.id, [T0, T0 + 10, T0 + 30], [1.0, 2.0, 4.0])
    assert dat_floats(ctx, feed.id) == []  # nothing on disk before the flush
    rows = store.data(feed.id, T0, T0 + 30, 10)
    assert rows == [[T0, 1.0], [T0 + 10, 2.0], [T0 + 20, None], [T0 + 30, 4.0]]
    stats = store.flush()
    assert stats.feeds == 1 and stats.points == 3
    assert dat_floats(ctx, feed.id)[:2] == [1.0, 2.0]
    assert math.isnan(dat_floats(ctx, feed.id)[2])
    assert store.buffer.pending_count() == 0
    assert store.data(feed.id, T0, T0 + 30, 10) == rows  # same answer from the file


def test_reads_merge_unflushed_points_over_flushed_ones(store, user_id):
    feed = store.create(user_id, "use")
    store.insert_many(feed.id, [T0, T0 + 10], [1.0, 2.0])
    store.flush()
    store.insert(feed.id, T0 + 10, 5.0)  # overwrite, still in Redis
    store.insert(feed.id, T0 + 20, 6.0)  # append, still in Redis
    assert store.data(feed.id, T0, T0 + 20, 10) == [[T0, 1.0], [T0 + 10, 5.0], [T0 + 20, 6.0]]
    assert store.meta(feed.id) == {"interval": 10, "start_time": T0, "npoints": 3,
                                   "end_time": T0 + 20}
    assert store.value_at(feed.id, T0 + 11) == 5.0


def test_join_interpolates_the_gap(store, user_id):
    feed = store.create(user_id, "kwh")
    store.insert(feed.id, T0, 10.0)
    store.insert(feed.id, T0 + 40, 14.0, join=True)
    store.flush()
    values = [v for _, v in store.data(feed.id, T0, T0 + 40, 10)]
    assert values == pytest.approx([10.0, 11.0, 12.0, 13.0, 14.0])


def test_last_value_follows_newest_point_not_last_call(store, ctx, user_id):
    feed = store.create(user_id, "use")
    assert store.last(feed.id) is None
    store.insert(feed.id, T0 + 20, 3.0)
    store.insert(feed.id, T0, 1.0)  # an older point does not replace the last value
    assert store.last(feed.id) == (T0 + 20, 3.0)
    store.insert_many(feed.id, [T0 + 30, T0 + 30], [7.0, 8.0])  # last given wins
    assert store.last(feed.id) == (T0 + 30, 8.0)


def test_last_value_is_reloaded_from_the_file_after_redis_loses_it(store, ctx, user_id):
    feed = store.create(user_id, "use")
    store.insert_many(feed.id, [T0, T0 + 10], [1.0, 2.5])
    store.flush()
    ctx.redis.delete(ctx.keys.feed(feed.id))
    assert store.last(feed.id) == (T0 + 10, 2.5)


@pytest.mark.parametrize("t,value", [
    (float("nan"), 1.0), (-5, 1.0), ("soon", 1.0), (T0, float("inf")), (T0, None),
    (time.time() + 30 * 86400, 1.0),
])
def test_insert_rejects_bad_points_and_queues_nothing(store, user_id, t, value):
    feed = store.create(user_id, "use")
    with pytest.raises(InvalidPoint):
        store.insert_many(feed.id, [T0, t], [1.0, value])
    assert store.buffer.pending_count() == 0


def test_insert_into_missing_feed(store):
    with pytest.raises(FeedNotFound):
        store.insert(999, T0, 1.0)


def test_list_with_meta(store, user_id, other_id):
    a = store.create(user_id, "a", unit="W")
    store.create(other_id, "theirs")
    store.insert_many(a.id, [T0, T0 + 10], [1.0, 2.0])
    store.flush()
    (row,) = store.list(user_id, meta=True)
    assert row["id"] == a.id and row["userid"] == user_id
    assert row["size"] == 16 + 8
    assert (row["time"], row["value"]) == (T0 + 10, 2.0)
    assert (row["start_time"], row["npoints"], row["interval"]) == (T0, 2, 10)


def test_public_only_list_and_update(store, user_id):
    a = store.create(user_id, "a")
    store.create(user_id, "b")
    assert store.list(user_id, public_only=True) == []
    updated = store.update(a.id, public=True, unit="kWh", name="a2")
    assert (updated.public, updated.unit, updated.name) == (True, "kWh", "a2")
    assert [r["id"] for r in store.list(user_id, public_only=True)] == [a.id]
    with pytest.raises(FeedExists):
        store.update(a.id, name="b")
    with pytest.raises(InvalidFeed):
        store.update(a.id, public="yes")


def test_get_owned(store, user_id, other_id):
    feed = store.create(user_id, "a")
    assert store.get_owned(feed.id, user_id) == feed
    with pytest.raises(NotOwner):
        store.get_owned(feed.id, other_id)
    with pytest.raises(FeedNotFound):
        store.get_owned(feed.id + 100, user_id)


def test_delete_removes_row_files_buffer_and_last_value(store, ctx, user_id):
    feed = store.create(user_id, "a")
    store.insert(feed.id, T0, 1.0)
    store.delete(feed.id)
    with pytest.raises(FeedNotFound):
        store.get(feed.id)
    assert not (ctx.config.feed_dir / f"{feed.id}.dat").exists()
    assert store.buffer.pending_count() == 0
    assert ctx.redis.exists(ctx.keys.feed(feed.id)) == 0
    with pytest.raises(FeedNotFound):
        store.delete(feed.id)


def test_create_clears_files_left_by_a_crashed_delete(store, ctx, user_id):
    feed = store.create(user_id, "a")
    store.insert(feed.id, T0, 1.0)
    store.flush()
    with ctx.db.cursor() as cur:  # a crash after the row went, before the files did
        cur.execute("DELETE FROM feeds WHERE id = %s", (feed.id,))
        cur.execute("ALTER TABLE feeds AUTO_INCREMENT = 1")
    again = store.create(user_id, "b", interval=60)
    assert again.id == feed.id
    assert store.meta(again.id) == {"interval": 60, "start_time": 0, "npoints": 0,
                                    "end_time": 0}


def test_data_options_pass_through_to_the_engine(store, user_id):
    feed = store.create(user_id, "a")
    store.insert_many(feed.id, [T0 + 10 * i for i in range(6)], [1, 2, 3, 4, 5, 6])
    assert store.data(feed.id, T0, T0 + 50, 30, average=True) == [[T0, 2.0], [T0 + 30, 5.0]]
    assert store.data(feed.id, T0, T0 + 20, 10, timeformat="unixms")[0] == [T0 * 1000, 1.0]
    with pytest.raises(FeedError):
        store.data(feed.id, T0 + 50, T0, 10)


def test_csv_single_and_multi(store, user_id):
    a = store.create(user_id, "a", tag="t")
    b = store.create(user_id, "b")
    store.insert_many(a.id, [T0, T0 + 10], [1.0, 2.0])
    store.insert_many(b.id, [T0 + 10], [3.25])
    assert "".join(store.csv(a.id, T0, T0 + 10, 10)) == f"{T0},1.00\n{T0 + 10},2.00\n"
    text = "".join(store.csv_multi([a, b], T0, T0 + 10, 10, [False, False], timeformat="unix"))
    assert text == f"time,t:a,b\n{T0},1.00,null\n{T0 + 10},2.00,3.25\n"


def test_export_streams_flushed_bytes_from_an_offset(store, user_id):
    feed = store.create(user_id, "a")
    store.insert_many(feed.id, [T0, T0 + 10, T0 + 20], [1.0, 2.0, 3.0])
    store.flush()
    length, chunks = store.export(feed.id, 0)
    assert length == 12 and b"".join(chunks) == struct.pack("<3f", 1.0, 2.0, 3.0)
    length, chunks = store.export(feed.id, 9)  # rounded down to 8, minus one point
    assert length == 8 and b"".join(chunks) == struct.pack("<2f", 2.0, 3.0)


def test_profile_creates_feed_on_first_use_and_overwrites_later(store, user_id):
    day = T0 - T0 % 86400
    feed = store.store_profile(user_id, "hydro", day, 1800, [1.0, None, 3.0])
    assert (feed.name, feed.tag, feed.interval) == ("hydro", "profile", 1800)
    again = store.store_profile(user_id, "hydro", day + 1800, 1800, [2.0, 4.0])
    assert again.id == feed.id
    store.flush()
    assert [v for _, v in store.data(feed.id, day, day + 3 * 1800, 1800)] == \
        [1.0, 2.0, 4.0, None]
    assert store.last(feed.id) == (day + 3600, 4.0)
    other = store.store_profile(user_id, "community", day, 1800, [9.0])
    assert other.id != feed.id


@pytest.mark.parametrize("kind,interval,values", [
    ("weather", 1800, [1.0]), ("hydro", 0, [1.0]), ("hydro", 1800, []),
    ("hydro", 1800, "1,2"), ("hydro", 1800, [1.0, "x"]), ("hydro", 1800, [math.inf]),
])
def test_profile_validation(store, user_id, kind, interval, values):
    with pytest.raises(InvalidProfile):
        store.store_profile(user_id, kind, T0, interval, values)
    assert store.feeds(user_id) == []


def test_profile_interval_must_match_its_feed(store, user_id):
    store.store_profile(user_id, "demandshaper", T0, 1800, [1.0])
    with pytest.raises(InvalidProfile, match="stores 1800 s"):
        store.store_profile(user_id, "demandshaper", T0, 3600, [1.0])


def test_profile_reaching_too_far_ahead_is_refused_before_creating_its_feed(store, user_id):
    with pytest.raises(InvalidProfile, match="in the future"):
        store.store_profile(user_id, "hydro", time.time(), 86400, [1.0] * 9)
    assert store.feeds(user_id) == []


def test_concurrent_style_last_value_race_keeps_newest(store, ctx, user_id):
    """The last-value update is one atomic compare-and-set in Redis."""
    feed = store.create(user_id, "a")
    store.insert(feed.id, T0 + 100, 2.0)
    ctx.redis.hset(ctx.keys.feed(feed.id), "time", T0 + 200)  # another process got further
    store.insert(feed.id, T0 + 150, 3.0)
    assert store.last(feed.id)[0] == T0 + 200
