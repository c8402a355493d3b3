"""Feed buffer against a real Redis (the session `servers`) and a real PHPFina directory."""

from __future__ import annotations

import struct
import threading
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
import redis

from hub.feed.buffer import FeedBuffer, FeedBufferError, InvalidPoints
from hub.feed.phpfina import PHPFina

NOW = 2_000_000_000


@pytest.fixture
def redis_client(servers) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(servers.redis_url)
    yield client
    client.close()


@pytest.fixture
def buffer(redis_client) -> Iterator[FeedBuffer]:
    prefix = f"test-{uuid.uuid4().hex[:8]}:feedbuffer:"
    yield FeedBuffer(redis_client, prefix)
    for key in redis_client.scan_iter(prefix + "*"):
        redis_client.delete(key)


@pytest.fixture
def engine(tmp_path) -> PHPFina:
    engine = PHPFina(str(tmp_path), now=lambda: NOW)
    engine.create(1, 10)
    engine.create(2, 10)
    return engine


def dat(engine: PHPFina, feed_id: int) -> bytes:
    with open(engine.dat_path(feed_id), "rb") as f:
        return f.read()


def test_append_many_is_one_rpush_of_packed_pairs(buffer, redis_client):
    buffer.append_many(1, np.array([1000, 1010]), np.array([1.5, 2.5]))
    items = redis_client.lrange(buffer.points_key(1), 0, -1)
    assert items == [struct.pack("<4d", 1000, 1.5, 1010, 2.5)]
    assert buffer.pending_feeds() == [1]


def test_pending_returns_points_in_arrival_order(buffer):
    buffer.append(1, 1020, 3.0)
    buffer.append_many(1, [1000, 1010], [1.0, 2.0])
    assert buffer.pending(1).tolist() == [[1020, 3.0], [1000, 1.0], [1010, 2.0]]
    assert buffer.pending(2).shape == (0, 2)


@pytest.mark.parametrize("times, values, mode", [
    ([1, 2], [1.0], None),
    ([[1, 2]], [[1, 2]], None),
    ([1], [1.0], "linear"),
])
def test_append_many_rejects_bad_input(buffer, times, values, mode):
    with pytest.raises(InvalidPoints):
        buffer.append_many(1, times, values, mode)


@pytest.mark.parametrize("feed_id", [0, -3, "1", True])
def test_append_rejects_bad_feed_id(buffer, feed_id):
    with pytest.raises(FeedBufferError):
        buffer.append(feed_id, 1000, 1.0)


def test_flush_writes_one_block_per_feed_and_empties_buffer(buffer, engine, redis_client):
    for i in range(30):
        buffer.append(1, 1000 + 10 * i, float(i))
    buffer.append_many(2, [1000, 1010], [5.0, 6.0])
    stats = buffer.flush(engine)
    assert (stats.feeds, stats.points, stats.bytes) == (2, 32, 30 * 4 + 2 * 4 + 2 * 16)
    assert dat(engine, 1) == struct.pack("<30f", *range(30))
    assert dat(engine, 2) == struct.pack("<2f", 5.0, 6.0)
    assert buffer.pending_feeds() == []
    assert list(redis_client.scan_iter(buffer.prefix + "*")) == []
    assert buffer.flush(engine).feeds == 0


def test_flush_sorts_late_points_and_last_arrival_wins(buffer, engine):
    buffer.append_many(1, [1000, 1010, 1020], [1.0, 2.0, 3.0])
    buffer.flush(engine)
    buffer.append(1, 1040, 5.0)
    buffer.append(1, 1010, 20.0)  # late reading for an old slot: overwrite in place
    buffer.append(1, 1040, 50.0)  # same slot again: the later arrival wins
    buffer.flush(engine)
    assert dat(engine, 1) == struct.pack("<5f", 1.0, 20.0, 3.0, float("nan"), 50.0)


def test_flush_join_padding_from_buffer(buffer, engine):
    buffer.append(1, 1000, 1.0, "join")
    buffer.append(1, 1030, 4.0, "join")
    assert buffer.padding_mode(1) == "join"
    buffer.flush(engine)
    assert dat(engine, 1) == struct.pack("<4f", 1.0, 2.0, 3.0, 4.0)
    assert buffer.padding_mode(1) is None


def test_read_merges_pending_before_flush(buffer, engine):
    buffer.append_many(1, [1000, 1010], [1.0, 2.0])
    buffer.flush(engine)
    buffer.append(1, 1010, 9.0)
    buffer.append(1, 1020, 3.0)
    rows = engine.read(1, 1000, 1020, 10, pending=buffer.pending(1),
                       padding_mode=buffer.padding_mode(1))
    assert rows == [[1000, 1.0], [1010, 9.0], [1020, 3.0]]
    assert engine.read(1, 1000, 1020, 10)[1:] == [[1010, 2.0], [1020, None]]
    buffer.flush(engine)
    assert engine.read(1, 1000, 1020, 10) == rows


def test_flush_keeps_points_appended_during_the_write(buffer, engine):
    buffer.append_many(1, [1000, 1010], [1.0, 2.0])
    real_write = engine.write_points

    def write_then_race(feed_id, points, padding_mode=None):
        result = real_write(feed_id, points, padding_mode)
        buffer.append(feed_id, 1020, 3.0)  # arrives after the list was read
        return result

    engine.write_points = write_then_race
    stats = buffer.flush(engine)
    assert stats.points == 2
    assert buffer.pending(1).tolist() == [[1020, 3.0]]
    assert buffer.pending_feeds() == [1]
    engine.write_points = real_write
    buffer.flush(engine)
    assert dat(engine, 1) == struct.pack("<3f", 1.0, 2.0, 3.0)


def test_flush_discards_points_of_deleted_feed(buffer, engine):
    buffer.append(1, 1000, 1.0)
    engine.delete(1)
    stats = buffer.flush(engine)
    assert stats.discarded == {1: 1}
    assert buffer.pending_feeds() == []


def test_flush_keeps_points_when_feed_is_corrupt(buffer, engine):
    buffer.append(1, 1000, 1.0)
    buffer.append(2, 1000, 2.0)
    with open(engine.meta_path(1), "wb") as f:
        f.write(b"\x00" * 5)
    stats = buffer.flush(engine)
    assert list(stats.errors) == [1] and "corrupt" in stats.errors[1]
    assert stats.feeds == 1  # feed 2 still written
    assert buffer.pending(1).tolist() == [[1000, 1.0]]


def test_flush_skips_malformed_entries(buffer, engine, redis_client):
    buffer.append(1, 1000, 1.0)
    redis_client.rpush(buffer.points_key(1), b"garbage")
    buffer.append(1, 1010, 2.0)
    stats = buffer.flush(engine)
    assert stats.points == 2
    assert dat(engine, 1) == struct.pack("<2f", 1.0, 2.0)
    assert buffer.pending_feeds() == []


def test_buffer_survives_a_new_client(buffer, engine, servers):
    """A killed worker loses nothing: another process (client) flushes what Redis holds."""
    buffer.append_many(1, [1000, 1010], [1.0, 2.0])
    other = FeedBuffer(redis.Redis.from_url(servers.redis_url), buffer.prefix)
    assert other.flush(engine).points == 2
    assert dat(engine, 1) == struct.pack("<2f", 1.0, 2.0)


def test_discard(buffer):
    buffer.append(1, 1000, 1.0, "join")
    buffer.discard(1)
    assert buffer.pending_feeds() == [] and buffer.pending(1).size == 0
    assert buffer.padding_mode(1) is None


def test_concurrent_flushes_lose_nothing(buffer, engine):
    """Two flushers (say a stuck worker and its replacement) are serialised by a Redis lock,
    so neither trims points the other has not written."""

    total = 2000
    for i in range(total):
        buffer.append(1, NOW - 50_000 + i * 10, float(i))
    results = []
    threads = [threading.Thread(target=lambda: results.append(buffer.flush(engine)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(r.points for r in results) == total
    assert buffer.pending_count() == 0
    assert engine.get_meta(1).npoints == total
