"""Bench (1): averaged read of one year of 10 s data into 1,000 points.

Target <= 10 ms.  Reference, measured in the same run: a plain-Python port of emoncms'
PHPFina get_data_combined (per division: seek, read the block, unpack and add point by point).

    .venv/bin/python bench/bench_feed_read.py
"""

from __future__ import annotations

import json
import math
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hub.feed.phpfina import PHPFina

FEED_INTERVAL = 10
YEAR = 365 * 86400
START = 1_704_067_200  # 2024-01-01 00:00 UTC
OUTPUT_POINTS = 1000
RUNS = 30


def make_year_feed(engine: PHPFina, feed_id: int) -> None:
    n = YEAR // FEED_INTERVAL
    rng = np.random.default_rng(1)
    values = 500 + 400 * np.sin(np.arange(n) / 8640 * 2 * np.pi) + rng.normal(0, 50, n)
    values[rng.integers(0, n, n // 100)] = np.nan  # 1 % gaps
    times = START + FEED_INTERVAL * np.arange(n)
    engine.create(feed_id, FEED_INTERVAL)
    engine.write_points(feed_id, np.column_stack([times, values]))


def reference_read(datadir: str, feed_id: int, start: int, end: int, interval: int) -> list:
    """emoncms PHPFina::get_data_combined with average=1, line for line in plain Python."""
    with open(f"{datadir}/{feed_id}.meta", "rb") as f:
        f.seek(8)
        feed_interval, start_time = struct.unpack("<II", f.read(8))
    npoints = Path(f"{datadir}/{feed_id}.dat").stat().st_size // 4
    interval = round(max(interval, feed_interval) / feed_interval) * feed_interval
    data = []
    with open(f"{datadir}/{feed_id}.dat", "rb") as fh:
        t = start
        while t <= end:
            div_start, div_end = t, t + interval
            pos_start = min(max((div_start - start_time) // feed_interval, 0), npoints)
            pos_end = min(max((div_end - start_time) // feed_interval, 0), npoints)
            total, n = 0.0, 0
            if pos_end > pos_start:
                fh.seek(pos_start * 4)
                block = fh.read(4 * (pos_end - pos_start))
                for (v,) in struct.iter_unpack("<f", block):
                    if not math.isnan(v):
                        total += v
                        n += 1
            data.append([div_start, total / n if n else None])
            t = div_end
    return data


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-feed-read-") as datadir:
        engine = PHPFina(datadir, fsync=False)
        make_year_feed(engine, 1)
        start, end = START, START + YEAR
        interval = YEAR // OUTPUT_POINTS
        result = engine.read(1, start, end, interval, average=True)  # warm the page cache
        timings = []
        for _ in range(RUNS):
            t0 = time.perf_counter()
            result = engine.read(1, start, end, interval, average=True)
            timings.append(time.perf_counter() - t0)
        ours_ms = statistics.median(timings) * 1000

        t0 = time.perf_counter()
        reference = reference_read(datadir, 1, start, end, interval)
        ref_ms = (time.perf_counter() - t0) * 1000

        assert len(result) == len(reference)
        worst = max(abs(a[1] - b[1]) for a, b in zip(result, reference, strict=True)
                    if a[1] is not None)
        print(f"averaged read, 1 year of {FEED_INTERVAL} s data "
              f"({YEAR // FEED_INTERVAL:,} points) -> {len(result)} points")
        print(f"  engine (numpy, memmap): {ours_ms:8.2f} ms  (median of {RUNS})")
        print(f"  reference (plain Python, emoncms algorithm): {ref_ms:8.1f} ms")
        print(f"  speed-up {ref_ms / ours_ms:.0f}x; largest difference {worst:.2e}; "
              "target <= 10 ms")
        print(json.dumps({"bench": "feed_read_year_avg_1000", "value": round(ours_ms, 3),
                          "unit": "ms", "reference": round(ref_ms, 1)}))


if __name__ == "__main__":
    main()
