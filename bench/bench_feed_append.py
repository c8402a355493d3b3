"""Bench (2): append throughput through the Redis feed buffer.

Target >= 1M points/s batched (append_many).  Reference, measured in the same run: a naive
per-point file append (open, seek to the end, write 4 bytes, close) as an unbuffered
emoncms post does.  Also shown: per-point buffer appends and flush throughput.
Starts its own redis-server on a free loopback port (devstack/servers.py).

    .venv/bin/python bench/bench_feed_append.py
"""

from __future__ import annotations

import json
import os
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from devstack.servers import Servers
from hub.feed.buffer import FeedBuffer
from hub.feed.phpfina import PHPFina

FEEDS = 20
BATCH = 10_000
BATCHED_POINTS = 2_000_000
SINGLE_POINTS = 20_000
NAIVE_POINTS = 100_000
START = 1_704_067_200


def naive_append(path: str, n: int) -> float:
    """Points/s of open + seek(end) + write(4 bytes) + close per point."""
    open(path, "wb").close()
    packed = [struct.pack("<f", float(i)) for i in range(n)]
    t0 = time.perf_counter()
    for value in packed:
        with open(path, "r+b") as f:
            f.seek(0, os.SEEK_END)
            f.write(value)
    return n / (time.perf_counter() - t0)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-feed-append-") as root:
        servers = Servers(root=Path(root))
        servers.start_redis()
        try:
            client = redis.Redis.from_url(servers.redis_url)
            buffer = FeedBuffer(client, "bench:feedbuffer:")
            per_feed = BATCHED_POINTS // FEEDS
            times = START + 10.0 * np.arange(per_feed)
            values = np.random.default_rng(1).random(per_feed)
            t0 = time.perf_counter()
            for feed_id in range(1, FEEDS + 1):
                for i in range(0, per_feed, BATCH):
                    buffer.append_many(feed_id, times[i:i + BATCH], values[i:i + BATCH])
            batched = BATCHED_POINTS / (time.perf_counter() - t0)

            engine = PHPFina(str(Path(root) / "feeds"), fsync=True)
            for feed_id in range(1, FEEDS + 1):
                engine.create(feed_id, 10)
            t0 = time.perf_counter()
            stats = buffer.flush(engine)
            flush_rate = stats.points / (time.perf_counter() - t0)

            t0 = time.perf_counter()
            for i in range(SINGLE_POINTS):
                buffer.append(1, START + 10.0 * (per_feed + i), float(i))
            single = SINGLE_POINTS / (time.perf_counter() - t0)
            client.close()
        finally:
            servers.stop()
        naive = naive_append(str(Path(root) / "naive.dat"), NAIVE_POINTS)

    print(f"append through the Redis buffer ({FEEDS} feeds, batches of {BATCH:,})")
    print(f"  batched append_many: {batched:14,.0f} points/s   (target >= 1,000,000)")
    print(f"  per-point append:    {single:14,.0f} points/s")
    print(f"  flush to PHPFina:    {flush_rate:14,.0f} points/s   "
          f"({stats.points:,} points, {stats.feeds} feeds, one block each)")
    print(f"  reference, naive per-point file append: {naive:,.0f} points/s")
    for name, value in (("feed_append_batched", batched), ("feed_append_single", single)):
        print(json.dumps({"bench": name, "value": round(value), "unit": "points/s",
                          "reference": round(naive)}))
    print(json.dumps({"bench": "feed_flush", "value": round(flush_rate), "unit": "points/s",
                      "reference": round(naive)}))


if __name__ == "__main__":
    main()
