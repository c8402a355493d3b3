"""Feed write buffer in Redis: points wait here and go to disk as one block per feed.

Why: a PHPFina append is 4 bytes, but the SD card pays a page (and a journal block) per
write.  Buffering a flush interval of points and writing them as one block per feed cuts
the write load by the number of points per flush (emoncms' RedisBuffer + feedwriter).
Redis, not process memory, holds the buffer so that the web process can merge what the
worker has not flushed yet, and a killed worker loses nothing Redis still holds.

Keys, under a configurable prefix (``FeedBuffer(redis, prefix)``)::

    <prefix>points:<id>   list; each element is one append: packed little-endian float64
                          pairs t0 v0 t1 v1 ... (16 bytes a point), in arrival order
    <prefix>active        set of feed ids that have pending points
    <prefix>padding       hash feed id -> "join" when the feed's last append asked for it

Flush (``flush(engine)``): for each active feed, read the list once (n elements), write the
points through the engine as ONE batch (the engine sorts them; last arrival wins a slot),
then atomically ``LTRIM`` the n elements written and drop the feed from ``active`` only if
nothing arrived meanwhile.  A crash between the write and the trim writes the same points
again next time, which rewrites the same slots with the same bytes: flushing is idempotent.

Durability trade-off: the hub's Redis keeps nothing on disk (``save ""``,
``appendonly no``), so a power cut or a Redis restart loses the points not yet flushed: at
most ``flush_interval`` seconds of data (default 300 s).  A worker SIGKILL or crash loses
nothing; on SIGTERM `hub worker` flushes once more on the way out (hub/worker/loop.py).
Once ``write_points`` returns the data is fdatasync'ed, so flushed points survive a power cut.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import numpy as np
import redis

from hub.feed import common
from hub.feed.common import (  # FeedBufferError, InvalidPoints, FlushStats: defined there
    FeedBufferError,
    FeedError,
    FeedNotFound,
    FlushStats,
    InvalidPoints,
    check_feed_id,
)
from hub.feed.phpfina import PHPFina

log = logging.getLogger(__name__)

# --- tunables ------------------------------------------------------------------------------
FLUSH_LOCK_TIMEOUT_S = 600  # a crashed flusher's lock frees itself after this

POINT_DTYPE = np.dtype("<f8")  # t and v each as float64: exact unix times, no value loss
POINT_SIZE = 2 * POINT_DTYPE.itemsize  # 16 bytes per point

# Trim exactly the n elements a flush wrote; forget the feed only if nothing new arrived.
_TRIM_SCRIPT = """
redis.call('LTRIM', KEYS[1], ARGV[1], -1)
if redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[2])
  redis.call('HDEL', KEYS[3], ARGV[2])
end
return 0
"""


class FeedBuffer:
    """Pending feed points of every process, in Redis."""

    def __init__(self, client: redis.Redis, prefix: str):
        self.redis = client
        self.prefix = prefix
        self.active_key = common.buffer_active_key(prefix)
        self.padding_key = prefix + "padding"
        self._trim = client.register_script(_TRIM_SCRIPT)

    def points_key(self, feed_id: int) -> str:
        return f"{self.prefix}points:{check_feed_id(feed_id, FeedBufferError)}"

    # -- appending --------------------------------------------------------------------------
    def append(self, feed_id: int, t: float, value: float,
               padding_mode: str | None = None) -> None:
        self.append_many(feed_id, np.array([t], dtype=float), np.array([value], dtype=float),
                         padding_mode)

    def append_many(self, feed_id: int, times, values,
                    padding_mode: str | None = None) -> int:
        """Queue a batch (two equal-length sequences or arrays) with one RPUSH; returns n."""
        times = np.asarray(times, dtype=POINT_DTYPE)
        values = np.asarray(values, dtype=POINT_DTYPE)
        if times.ndim != 1 or times.shape != values.shape:
            raise InvalidPoints(f"times and values must be 1-D and equal length, got "
                                f"{times.shape} and {values.shape}")
        if padding_mode not in (None, "join"):
            raise InvalidPoints(f"padding_mode must be None or 'join', got {padding_mode!r}")
        n = len(times)
        if n == 0:
            return 0
        packed = np.empty(2 * n, dtype=POINT_DTYPE)
        packed[0::2] = times
        packed[1::2] = values
        feed_id = check_feed_id(feed_id, FeedBufferError)
        pipe = self.redis.pipeline(transaction=True)
        pipe.rpush(self.points_key(feed_id), packed.tobytes())
        pipe.sadd(self.active_key, feed_id)
        if padding_mode == "join":
            pipe.hset(self.padding_key, str(feed_id), "join")
        else:
            pipe.hdel(self.padding_key, str(feed_id))
        pipe.execute()
        return n

    # -- reading ----------------------------------------------------------------------------
    def pending(self, feed_id: int) -> np.ndarray:
        """Unflushed points of a feed as an (n, 2) float64 array of (time, value)."""
        return _decode(self.redis.lrange(self.points_key(feed_id), 0, -1), feed_id)

    def padding_mode(self, feed_id: int) -> str | None:
        mode = self.redis.hget(self.padding_key, str(check_feed_id(feed_id, FeedBufferError)))
        return "join" if mode in (b"join", "join") else None

    def pending_feeds(self) -> list[int]:
        return sorted(int(x) for x in self.redis.smembers(self.active_key))

    def pending_count(self) -> int:
        """Total pending points over all feeds (for health and tests)."""
        total = 0
        for feed_id in self.pending_feeds():
            total += len(self.pending(feed_id))
        return total

    def discard(self, feed_id: int) -> None:
        """Forget a feed's pending points (the feed is being deleted)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self.points_key(feed_id))
        pipe.srem(self.active_key, check_feed_id(feed_id, FeedBufferError))
        pipe.hdel(self.padding_key, str(feed_id))
        pipe.execute()

    # -- flushing ---------------------------------------------------------------------------
    def flush(self, engine: PHPFina, feed_ids: Iterable[int] | None = None) -> FlushStats:
        """Write every pending feed (or only ``feed_ids``) as one block each, then trim.

        Flushes are serialised by a Redis lock: each trims the entries it read, so two
        flushers running at once would trim points the other had not written."""
        with self.redis.lock(self.prefix + "flush-lock", timeout=FLUSH_LOCK_TIMEOUT_S):
            return self._flush(engine, feed_ids)

    def _flush(self, engine: PHPFina, feed_ids: Iterable[int] | None) -> FlushStats:
        stats = FlushStats()
        began = time.monotonic()
        for feed_id in (self.pending_feeds() if feed_ids is None else feed_ids):
            key = self.points_key(feed_id)
            items = self.redis.lrange(key, 0, -1)
            if not items:
                self._trim_written(feed_id, 0)
                continue
            points = _decode(items, feed_id)
            try:
                result = engine.write_points(feed_id, points, self.padding_mode(feed_id))
            except FeedNotFound:
                log.warning("feed %s no longer exists: discarding %d buffered points",
                            feed_id, len(points))
                stats.discarded[feed_id] = len(points)
            except (FeedError, OSError) as exc:
                log.error("flush of feed %s failed, %d points kept in Redis: %s",
                          feed_id, len(points), exc)
                stats.errors[feed_id] = str(exc)
                continue
            else:
                stats.feeds += 1
                stats.points += len(points)
                stats.bytes += result.bytes_written
                for reason, n in result.dropped.items():
                    stats.dropped[reason] = stats.dropped.get(reason, 0) + n
            self._trim_written(feed_id, len(items))
        stats.seconds = time.monotonic() - began
        return stats

    def _trim_written(self, feed_id: int, n_items: int) -> None:
        self._trim(keys=[self.points_key(feed_id), self.active_key, self.padding_key],
                   args=[n_items, check_feed_id(feed_id, FeedBufferError)])


def _decode(items: list[bytes], feed_id: int) -> np.ndarray:
    good = [item for item in items if len(item) % POINT_SIZE == 0]
    if len(good) != len(items):
        log.error("feed %s: %d malformed buffer entries ignored", feed_id,
                  len(items) - len(good))
    if not good:
        return np.empty((0, 2), dtype=POINT_DTYPE)
    return np.frombuffer(b"".join(good), dtype=POINT_DTYPE).reshape(-1, 2)
