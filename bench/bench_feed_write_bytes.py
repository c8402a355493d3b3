"""Bench (3): bytes written to disk per stored point, a simulated day of 20 feeds at 10 s.

Target <= 4.1 bytes/point at the file level.  Every write call the engine makes (os.pwrite)
is counted.  The buffered run appends each reading to the Redis buffer and flushes every
FLUSH_INTERVAL simulated seconds (fdatasync on, as on the device).  Reference, same run:
one engine write per point (emoncms without low-write mode).

Also shown, page level: each write call dirties whole 4 KiB pages, and writes further apart
than the kernel's writeback delay (5 s commit on ext4) each cost their pages on the card.
That is what buffering saves; the file-level figure cannot show it.
Starts its own redis-server on a free loopback port (devstack/servers.py).

    .venv/bin/python bench/bench_feed_write_bytes.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from devstack.servers import Servers
from hub.feed.buffer import FeedBuffer
from hub.feed.phpfina import PHPFina

FEEDS = 20
INTERVAL = 10
DAY = 86400
FLUSH_INTERVAL = 300
PAGE = 4096
START = 1_704_067_200


class WriteCounter:
    """Wraps os.pwrite: bytes per call and the 4 KiB pages each call touches."""

    def __init__(self) -> None:
        self.bytes = 0
        self.pages = 0
        self.calls = 0
        self._real = os.pwrite

    def __enter__(self) -> WriteCounter:
        def pwrite(fd, data, offset):
            n = self._real(fd, data, offset)
            self.calls += 1
            self.bytes += n
            self.pages += (offset + n - 1) // PAGE - offset // PAGE + 1
            return n

        os.pwrite = pwrite
        return self

    def __exit__(self, *exc) -> None:
        os.pwrite = self._real


def buffered_day(datadir: str, buffer: FeedBuffer) -> tuple[WriteCounter, int]:
    engine = PHPFina(datadir, fsync=True)
    for feed_id in range(1, FEEDS + 1):
        engine.create(feed_id, INTERVAL)
    stored = 0
    with WriteCounter() as counter:
        for t in range(START, START + DAY, INTERVAL):
            for feed_id in range(1, FEEDS + 1):
                buffer.append(feed_id, t, 230.0 + feed_id)
            if (t + INTERVAL) % FLUSH_INTERVAL == 0:
                stored += buffer.flush(engine).points
        stored += buffer.flush(engine).points
    return counter, stored


def per_point_day(datadir: str) -> tuple[WriteCounter, int]:
    engine = PHPFina(datadir, fsync=False)  # emoncms does not sync either
    for feed_id in range(1, FEEDS + 1):
        engine.create(feed_id, INTERVAL)
    stored = 0
    with WriteCounter() as counter:
        for t in range(START, START + DAY, INTERVAL):
            for feed_id in range(1, FEEDS + 1):
                stored += engine.post(feed_id, t, 230.0 + feed_id).written
    return counter, stored


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-feed-bytes-", dir="/var/tmp") as root:
        servers = Servers(root=Path(root))
        servers.start_redis()
        try:
            client = redis.Redis.from_url(servers.redis_url)
            buffer = FeedBuffer(client, "bench:feedbuffer:")
            os.makedirs(f"{root}/buffered")
            t0 = time.perf_counter()
            buffered, stored = buffered_day(f"{root}/buffered", buffer)
            buffered_s = time.perf_counter() - t0
            client.close()
        finally:
            servers.stop()
        os.makedirs(f"{root}/perpoint")
        t0 = time.perf_counter()
        naive, naive_stored = per_point_day(f"{root}/perpoint")
        naive_s = time.perf_counter() - t0
        on_disk = sum(f.stat().st_size for f in Path(f"{root}/buffered").iterdir())

    expected = FEEDS * DAY // INTERVAL
    assert stored == naive_stored == expected, (stored, naive_stored, expected)
    file_level = buffered.bytes / stored
    file_ref = naive.bytes / naive_stored
    page_level = buffered.pages * PAGE / stored
    page_ref = naive.pages * PAGE / naive_stored
    print(f"simulated day: {FEEDS} feeds x {DAY // INTERVAL:,} points at {INTERVAL} s "
          f"= {expected:,} points; flush every {FLUSH_INTERVAL} s")
    print(f"  buffered:  {buffered.calls:7,} write calls, {buffered.bytes:,} bytes "
          f"-> {file_level:.4f} bytes/point (target <= 4.1); files hold {on_disk:,} bytes "
          f"[{buffered_s:.1f} s]")
    print(f"  per-point: {naive.calls:7,} write calls, {naive.bytes:,} bytes "
          f"-> {file_ref:.4f} bytes/point [{naive_s:.1f} s]")
    print(f"  4 KiB pages dirtied: buffered {page_level:,.1f} bytes/point, "
          f"per-point {page_ref:,.1f} bytes/point ({page_ref / page_level:.0f}x less)")
    print(json.dumps({"bench": "feed_write_bytes_per_point", "value": round(file_level, 4),
                      "unit": "bytes/point", "reference": round(file_ref, 4)}))
    print(json.dumps({"bench": "feed_write_page_bytes_per_point", "value": round(page_level, 1),
                      "unit": "bytes/point", "reference": round(page_ref, 1)}))


if __name__ == "__main__":
    main()
