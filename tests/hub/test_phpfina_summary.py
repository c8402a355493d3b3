"""PHPFina summary sidecar: reads through it equal the plain read exactly, for every read mode;
it is rebuilt when missing, stale, torn or corrupt, and kept in step by the block writes."""

from __future__ import annotations

import math
import os
import struct
import tempfile
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.feed import phpfina
from hub.feed import summary as summary_mod
from hub.feed.phpfina import FeedNotFound, PHPFina
from hub.feed.summary import (
    BASE_SIZE,
    BLOCK,
    GENERATION_OFFSET,
    HEADER_SIZE,
    LEVEL0,
    LEVEL_HIGH,
    NODE_SIZE,
    body_size,
    node_offset,
    summary_path,
    verify,
)

NOW = 2_000_000_000
START = 1_616_889_600  # 2021-03-28 00:00 UTC: a DST change day in Europe/London
TZ = "Europe/London"


def engines(datadir: str) -> tuple[PHPFina, PHPFina]:
    """The same files through the summary and through the plain read."""
    return (PHPFina(datadir, fsync=False, now=lambda: NOW),
            PHPFina(datadir, fsync=False, now=lambda: NOW, summaries=False))


def values_of(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    """Feed values: smooth power, wild magnitudes (sums not exact in float64), integers."""
    if kind == "power":
        v = 500 + 400 * np.sin(np.arange(n) / 300) + rng.normal(0, 50, n)
    elif kind == "wild":
        v = rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-30, 30, n)
        v[rng.random(n) < 0.01] = -0.0
    else:
        v = rng.integers(-5, 5000, n).astype(float)
    v[rng.random(n) < rng.choice([0.0, 0.02, 0.5])] = math.nan
    return v


def read_both(summary: PHPFina, plain: PHPFina, *args, **kwargs) -> tuple[list, list]:
    return summary.read(1, *args, **kwargs), plain.read(1, *args, **kwargs)


def assert_same_reads(summary: PHPFina, plain: PHPFina, rng: np.random.Generator,
                      pending=None) -> None:
    meta = plain.open_view(1, pending).meta
    first, last = meta.start_time, meta.end_time
    span = max(last - first, meta.interval)
    opts = {"pending": pending}
    for _ in range(4):  # random ranges, partly outside the data
        start = int(first + rng.uniform(-0.1, 1.0) * span)
        end = start + int(rng.uniform(0.01, 1.2) * span) + meta.interval
        for points in (7, 100, 1000):
            interval = max(1, (end - start) // points)
            for limit in (True, False):
                a, b = read_both(summary, plain, start, end, interval, average=True,
                                 limitinterval=limit, max_datapoints=None, **opts)
                assert a == b, (start, end, interval, limit)
        a, b = read_both(summary, plain, start, end, (end - start) // 50, average=True,
                         skipmissing=True, **opts)
        assert a == b
        a, b = read_both(summary, plain, start, end, (end - start) // 50, average=True,
                         delta=True, **opts)
        assert a == b
    for calendar in ("daily", "weekly", "monthly"):
        a, b = read_both(summary, plain, first - 86400, last + 86400, calendar,
                         average=True, timezone=TZ, **opts)
        assert a == b, calendar
        a, b = read_both(summary, plain, first, last + 1, calendar, average=True,
                         timezone=TZ, delta=True, skipmissing=True, **opts)
        assert a == b, calendar


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(seed=st.integers(0, 2**32 - 1),
       interval=st.sampled_from([10, 60, 600]),
       batches=st.lists(st.tuples(st.integers(1, 3000),  # slots in the batch
                                  st.integers(0, 400),  # gap before it (NaN padding)
                                  st.integers(0, 2000),  # slots overwritten in history
                                  st.sampled_from(["power", "wild", "int"]),
                                  st.booleans()),  # join padding
                        min_size=1, max_size=6),
       pending_slots=st.integers(0, 600),
       pending_history=st.integers(0, 300))
def test_summary_read_equals_plain_read(seed, interval, batches, pending_slots,
                                        pending_history):
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as datadir:
        summary, plain = engines(datadir)
        summary.create(1, interval)
        end = START
        for n, gap, history, kind, join in batches:
            times = end + interval * (gap + np.arange(n))
            points = np.column_stack([times, values_of(rng, n, kind)])
            if history and end > START:  # late data: overwrite slots already written
                old = START + interval * rng.integers(0, (end - START) // interval, history)
                points = np.vstack([points, np.column_stack([old, values_of(rng, history,
                                                                            kind)])])
            summary.write_points(1, points, "join" if join else None)
            end = int(times[-1]) + interval
            assert verify(summary, 1) == []
        pending = None
        if pending_slots or pending_history:  # unflushed points: overlay, tail and history
            new = end + interval * np.arange(pending_slots)
            old = START + interval * rng.integers(0, (end - START) // interval, pending_history)
            times = np.concatenate([new, old])
            pending = np.column_stack([times, values_of(rng, len(times), "power")])
        assert_same_reads(summary, plain, rng, pending)


def canonical(values: np.ndarray, a: int, b: int) -> tuple[float, int]:
    """The canonical sum and count of slots [a, b), written out as hub/feed/summary.py
    defines them: node sums pairwise from float64 leaves (NaN as +0.0), the segment-tree
    split of [a, b), left nodes by ascending level then right nodes by descending level."""
    def node(k: int, j: int) -> tuple[float, int]:
        if k == 0:
            v = float(values[j])
            return (0.0, 0) if math.isnan(v) else (v, 1)
        (s1, c1), (s2, c2) = node(k - 1, 2 * j), node(k - 1, 2 * j + 1)
        return s1 + s2, c1 + c2

    left, right, k = [], [], 0
    while a < b:
        if a & 1:
            left.append(node(k, a))
            a += 1
        if b & 1:
            b -= 1
            right.append(node(k, b))
        a, b, k = a >> 1, b >> 1, k + 1
    total, count = 0.0, 0
    for s, c in left + right[::-1]:
        total += s
        count += c
    return total, count


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 6000),
       kind=st.sampled_from(["power", "wild", "int"]), pending=st.integers(0, 300),
       align=st.sampled_from([1, 1, 16, 128]))
def test_bucket_sums_follow_the_definition(seed, n, kind, pending, align):
    """Both paths (summary nodes and plain) give the canonical sums bit for bit, including
    over pending points; guards the definition itself, which the two paths share.  ``align``
    puts the bucket edges on multiples of 16 or 128 slots (edges on block boundaries need no
    edge block; the summary path skips the levels no edge takes a node of)."""
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as datadir:
        summary, _ = engines(datadir)
        summary.create(1, 10)
        summary.write_points(1, np.column_stack([START + 10 * np.arange(n),
                                                 values_of(rng, n, kind)]))
        extra = None
        if pending:
            times = START + 10 * np.concatenate([rng.integers(0, n, pending // 2),
                                                  n + np.arange(pending - pending // 2)])
            extra = np.column_stack([times, values_of(rng, pending, kind)])
        view = summary.open_view(1, extra)
        npoints = view.meta.npoints
        values = view.values(0, npoints)
        cuts = np.sort(rng.integers(0, npoints + 1, int(rng.integers(2, 40))))
        a = np.concatenate([cuts[:-1], rng.integers(0, npoints + 1, 5)])
        b = np.concatenate([cuts[1:], np.minimum(npoints, a[-5:] + rng.integers(0, 3000, 5))])
        a, b = a - a % align, b - b % align
        expected = [canonical(values, int(x), int(y)) for x, y in zip(a, b, strict=True)]
        for nodes in (view.open_summary(), None):
            sums, counts = summary_mod.bucket_sums(view, a, b, nodes)
            assert [(struct.pack("<d", s), c) for s, c in zip(sums.tolist(), counts.tolist(),
                                                              strict=True)] == [
                (struct.pack("<d", s), c) for s, c in expected]


def test_plain_read_is_the_mean_to_float64_precision(tmp_path):
    """The canonical (pairwise) sum is a float64 sum: within rounding of math.fsum."""
    summary, _ = engines(str(tmp_path))
    rng = np.random.default_rng(7)
    summary.create(1, 10)
    values = values_of(rng, 20_000, "power").astype(np.float32)
    summary.write_points(1, np.column_stack([START + 10 * np.arange(20_000), values]))
    rows = summary.read(1, START + 5, START + 200_000, 730, average=True)
    for t, mean in rows:
        a = (t - START) // 10
        chunk = [float(v) for v in values[a: a + 73] if not math.isnan(v)]
        if not chunk:
            assert mean is None
            continue
        assert mean == pytest.approx(math.fsum(chunk) / len(chunk), rel=1e-12)


def test_integer_data_gives_the_exact_mean(tmp_path):
    """Small integers sum exactly in any order: the mean is the true mean."""
    summary, plain = engines(str(tmp_path))
    summary.create(1, 10)
    values = np.arange(10_000) % 97
    summary.write_points(1, np.column_stack([START + 10 * np.arange(10_000), values]))
    rows = summary.read(1, START, START + 99_990, 10_000, average=True)
    assert rows == plain.read(1, START, START + 99_990, 10_000, average=True)
    assert rows[0][1] == float(np.mean(values[:1000]))


# --- layout and upkeep ------------------------------------------------------------------------
@pytest.fixture
def feed(tmp_path) -> tuple[PHPFina, PHPFina]:
    """Feed 1: 10 s interval, 5,000 slots of power-like values with 2 % gaps."""
    summary, plain = engines(str(tmp_path))
    summary.create(1, 10)
    values = values_of(np.random.default_rng(3), 5000, "power")
    summary.write_points(1, np.column_stack([START + 10 * np.arange(5000), values]))
    return summary, plain


def same_everywhere(summary: PHPFina, plain: PHPFina) -> None:
    assert_same_reads(summary, plain, np.random.default_rng(11))


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def sidecar(engine: PHPFina) -> bytes:
    return read_bytes(summary_path(engine, 1))


class TestLayout:
    def test_nodes_are_stored_in_post_order(self):
        """Stored levels only (LEVEL0 and from LEVEL_HIGH up), by end slot then level, each
        node right after the one before it: an append-only file."""
        top = LEVEL_HIGH + 3
        order = sorted(((j + 1) << k, k, j) for k in range(LEVEL0, top + 1)
                       if k == LEVEL0 or k >= LEVEL_HIGH for j in range(1 << (top - k)))
        at = 0
        for _, k, j in order:
            assert node_offset(k, j) == at
            assert int(node_offset(np.array([k]), np.array([j]))[0]) == at
            at += BASE_SIZE if k == LEVEL0 else NODE_SIZE
        assert body_size(1 << top) == at

    def test_header_and_node_bytes(self, feed):
        summary, _ = feed
        raw = sidecar(summary)
        magic, version, level0, level_high, interval, start, inode = struct.unpack(
            "<4sHBBIIQ", raw[:24])
        assert (magic, version, level0, level_high, interval, start) == (
            b"PFSM", 2, LEVEL0, LEVEL_HIGH, 10, START)
        assert inode == os.stat(summary.dat_path(1)).st_ino
        assert len(raw) == HEADER_SIZE + body_size(5000)
        with open(summary.dat_path(1), "rb") as f:
            first = np.frombuffer(f.read(4 * BLOCK), dtype="<f4")
        total, count = struct.unpack("<dB", raw[HEADER_SIZE: HEADER_SIZE + BASE_SIZE])
        assert count == int(np.count_nonzero(~np.isnan(first)))
        assert total == pytest.approx(math.fsum(float(v) for v in first if not math.isnan(v)))

    def test_dat_and_meta_unchanged_by_summaries(self, tmp_path):
        values = values_of(np.random.default_rng(5), 3000, "power")
        points = np.column_stack([START + 10 * np.arange(3000), values])
        files = {}
        for on in (True, False):
            engine = PHPFina(str(tmp_path / str(on)), fsync=False, summaries=on)
            engine.create(1, 10)
            engine.write_points(1, points)
            files[on] = [read_bytes(p) for p in (engine.meta_path(1), engine.dat_path(1))]
        assert files[True] == files[False]
        assert not os.path.exists(tmp_path / "False" / "1.summary")


class TestUpkeep:
    def test_flush_appends_once_to_the_sidecar(self, feed, monkeypatch):
        summary, plain = feed
        calls = []
        real = os.pwrite

        def counting(fd, data, offset):
            calls.append((os.readlink(f"/proc/self/fd/{fd}"), offset, len(data)))
            return real(fd, data, offset)

        monkeypatch.setattr(os, "pwrite", counting)
        times = START + 10 * (5000 + np.arange(3000))
        summary.write_points(1, np.column_stack([times, np.ones(3000)]))
        side = [c for c in calls if c[0].endswith(".summary")]
        assert len(side) == 1
        assert side[0][1:] == (HEADER_SIZE + body_size(5000), body_size(8000) - body_size(5000))
        calls.clear()
        summary.write_points(1, [(START + 10 * 8000, 1.0)])  # completes no node
        assert [c for c in calls if c[0].endswith(".summary")] == []
        assert verify(summary, 1) == []
        same_everywhere(summary, plain)

    def test_history_overwrite_patches_nodes(self, feed):
        summary, plain = feed
        summary.write_points(1, [(START + 10 * 300, 1e6), (START + 10 * 4000, -5.0)])
        assert verify(summary, 1) == []
        generation = struct.unpack_from("<I", sidecar(summary), GENERATION_OFFSET)[0]
        assert generation == 2  # made odd before the .dat changed, even after
        same_everywhere(summary, plain)

    def test_bytes_written_per_point(self, tmp_path):
        summary, _ = engines(str(tmp_path))
        summary.create(1, 10)
        for i in range(300):  # 300 flushes of 300 points
            times = START + 10 * (300 * i + np.arange(300))
            summary.write_points(1, np.column_stack([times, np.ones(300)]))
        assert summary.summary_bytes_written / 90_000 <= 0.1
        assert os.path.getsize(summary_path(summary, 1)) <= 0.05 * 4 * 90_000

    def test_sidecar_comes_with_the_first_whole_block(self, tmp_path):
        summary, _ = engines(str(tmp_path))
        summary.create(1, 10)
        summary.write_points(1, [(START + 10 * i, 1.0) for i in range(BLOCK - 1)])
        assert not os.path.exists(summary_path(summary, 1))
        summary.write_points(1, [(START + 10 * (BLOCK - 1), 1.0)])
        assert len(sidecar(summary)) == HEADER_SIZE + BASE_SIZE
        assert verify(summary, 1) == []

    def test_delete_removes_sidecar(self, feed):
        summary, _ = feed
        summary.delete(1)
        assert not os.path.exists(summary_path(summary, 1))


class TestRebuild:
    def test_missing_sidecar_is_rebuilt_by_a_read(self, feed):
        summary, plain = feed
        expected = sidecar(summary)
        os.unlink(summary_path(summary, 1))
        same_everywhere(summary, plain)
        assert sidecar(summary) == expected

    def test_missing_sidecar_is_rebuilt_by_a_write(self, feed):
        summary, plain = feed
        os.unlink(summary_path(summary, 1))
        summary.write_points(1, [(START + 10 * 5000, 1.0)])
        assert verify(summary, 1) == []
        same_everywhere(summary, plain)

    @pytest.mark.parametrize("field,offset,value", [
        ("magic", 0, b"XXXX"),
        ("interval", 8, struct.pack("<I", 60)),
        ("start_time", 12, struct.pack("<I", START - 10)),
        ("dat_inode", 16, struct.pack("<Q", 1)),
        ("crc", 24, b"\x00\x00\x00\x00"),
        ("odd generation (crash mid-rewrite)", GENERATION_OFFSET, struct.pack("<I", 3)),
    ])
    def test_stale_or_corrupt_header_is_rebuilt(self, feed, field, offset, value):
        summary, plain = feed
        expected = sidecar(summary)
        path = summary_path(summary, 1)
        with open(path, "r+b") as f:
            f.seek(offset)
            f.write(value)
        same_everywhere(summary, plain)
        assert sidecar(summary) == expected, field

    def test_older_format_is_rebuilt(self, feed):
        """A version-1 sidecar (12-byte nodes from level 8) with a valid header is replaced
        by the current format on the first read."""
        summary, plain = feed
        expected = sidecar(summary)
        path = summary_path(summary, 1)
        static = struct.pack("<4sHBxIIQ", b"PFSM", 1, 8, 10, START,
                             os.stat(summary.dat_path(1)).st_ino)
        with open(path, "wb") as f:
            f.write(static + struct.pack("<II", zlib.crc32(static), 0) + bytes(12 * 37))
        same_everywhere(summary, plain)
        assert sidecar(summary) == expected

    def test_replaced_dat_makes_it_stale(self, feed):
        summary, plain = feed
        dat = summary.dat_path(1)
        with open(dat, "rb") as f:
            values = np.frombuffer(f.read(), dtype="<f4").copy()
        values[:1000] = 7.0
        with open(dat + ".new", "wb") as f:
            f.write(values.tobytes())
        os.replace(dat + ".new", dat)  # e.g. a restore: same size, new inode
        same_everywhere(summary, plain)
        assert verify(summary, 1) == []

    def test_more_nodes_than_the_dat_is_rebuilt(self, feed, tmp_path):
        summary, plain = feed
        with open(summary.dat_path(1), "r+b") as f:
            f.truncate(4 * 1000)  # the .dat shrank (emoncms clear/trim, a restore)
        same_everywhere(summary, plain)
        assert len(sidecar(summary)) == HEADER_SIZE + body_size(1000)

    @pytest.mark.parametrize("cut", [1, BASE_SIZE, NODE_SIZE, NODE_SIZE + BASE_SIZE + 1,
                                     5 * NODE_SIZE + 7])
    def test_torn_tail_after_power_cut(self, feed, cut):
        """The last append made it only partly: whole nodes are used, the rest caught up."""
        summary, plain = feed
        path = summary_path(summary, 1)
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            f.truncate(size - cut)
        same_everywhere(summary, plain)  # a read catches up
        assert verify(summary, 1) == []
        with open(path, "r+b") as f:
            f.truncate(size - cut)
        summary.write_points(1, np.column_stack([START + 10 * (5000 + np.arange(600)),
                                                 np.ones(600)]))
        assert verify(summary, 1) == []
        same_everywhere(summary, plain)

    def test_torn_dat_tail_with_sidecar(self, feed):
        summary, plain = feed
        with open(summary.dat_path(1), "ab") as f:
            f.write(b"\x00\x00")  # half a float: a power cut during a .dat append
        same_everywhere(summary, plain)
        summary.write_points(1, [(START + 10 * (5000 + i), 2.0) for i in range(300)])
        assert verify(summary, 1) == []
        same_everywhere(summary, plain)

    def test_implausible_node_is_detected_and_dropped(self, feed):
        summary, plain = feed
        path = summary_path(summary, 1)
        with open(path, "r+b") as f:  # node (LEVEL0, 0): count 255 > BLOCK slots
            f.seek(HEADER_SIZE + 8)
            f.write(struct.pack("<B", 255))
        rows = summary.read(1, START, START + 50_000, 5000, average=True)
        assert rows == plain.read(1, START, START + 50_000, 5000, average=True)
        same_everywhere(summary, plain)
        assert verify(summary, 1) == []

    def test_rewrite_during_a_read_falls_back_to_plain(self, feed):
        """A writer that starts rewriting history bumps the generation: the read that
        overlapped it recomputes on the plain path."""
        summary, plain = feed
        view = summary.open_view(1)
        opened = view.open_summary()
        path = summary_path(summary, 1)
        node = node_offset(12, 0)  # slots [0, 4096)
        with open(path, "r+b") as f:
            f.seek(HEADER_SIZE + node)
            f.write(struct.pack("<d", 1e300))  # the node changes under the reader ...
            f.seek(GENERATION_OFFSET)
            f.write(struct.pack("<I", 1))  # ... after the generation went odd
        view.open_summary = lambda: opened
        a = np.array([0, 100]), np.array([4096, 5000])
        assert np.array_equal(summary_mod.bucket_means(view, *a),
                              summary_mod.bucket_means(plain.open_view(1), *a))


def test_rebuild_of_a_large_feed_in_steps(tmp_path, monkeypatch):
    """Rebuilds and catch-ups go CATCH_UP_SLOTS at a time; the result is the same."""
    summary, plain = engines(str(tmp_path))
    summary.create(1, 10)
    values = values_of(np.random.default_rng(9), 20_000, "power")
    summary.write_points(1, np.column_stack([START + 10 * np.arange(20_000), values]))
    expected = sidecar(summary)
    monkeypatch.setattr(summary_mod, "CATCH_UP_SLOTS", 1024)
    os.unlink(summary_path(summary, 1))
    same_everywhere(summary, plain)
    assert sidecar(summary) == expected


class TestMapCache:
    """Reads reuse their .dat and .summary maps (PHPFina.maps) while the files are the same;
    a reader in another process (here: another engine) sees every change a writer makes."""

    @staticmethod
    def mean_rows(engine: PHPFina, end: int) -> list:
        return engine.read(1, START, end, 640, average=True, max_datapoints=None)

    @staticmethod
    def check(reader: PHPFina, plain: PHPFina) -> None:
        end = plain.get_meta(1).end_time + 10
        assert TestMapCache.mean_rows(reader, end) == TestMapCache.mean_rows(plain, end)
        assert reader.read(1, START, end, 10) == plain.read(1, START, end, 10)

    def test_changes_show_through_kept_maps(self, feed, tmp_path):
        writer, plain = feed
        reader = PHPFina(str(tmp_path), fsync=False, now=lambda: NOW)
        self.check(reader, plain)
        kept = dict(reader.maps._maps)
        assert len(kept) == 2  # the .dat and the .summary
        self.check(reader, plain)
        assert all(reader.maps._maps[p][1] is v[1] for p, v in kept.items())  # reused

        rng = np.random.default_rng(5)
        writer.write_points(1, np.column_stack([START + 10 * (5000 + np.arange(3000)),
                                                values_of(rng, 3000, "power")]))  # append
        self.check(reader, plain)
        old = START + 10 * rng.integers(0, 8000, 500)  # history rewrite, in place
        writer.write_points(1, np.column_stack([old, values_of(rng, 500, "wild")]))
        self.check(reader, plain)
        os.unlink(summary_path(writer, 1))  # sidecar gone: rebuilt by the next read
        self.check(reader, plain)

        new_dat = tmp_path / "replacement.dat"
        new_dat.write_bytes(np.full(4000, 7.0, dtype="<f4").tobytes())
        writer.replace_feed(1, 10, START, str(new_dat))  # a sync mirror: new inode
        self.check(reader, plain)
        assert reader.read(1, START, START + 39_990, 400, average=True)[0][1] == 7.0

        writer.delete(1)
        with pytest.raises(FeedNotFound):
            reader.read(1, START, START + 1000, 10)
        assert not reader.maps._maps  # a deleted feed's files are let go
        writer.create(1, 10)
        writer.write_points(1, np.column_stack([START + 10 * np.arange(600), np.full(600, 3.0)]))
        self.check(reader, plain)
        assert reader.read(1, START, START + 5990, 600, average=True)[0][1] == 3.0

    def test_least_recently_used_maps_are_dropped(self, tmp_path, monkeypatch):
        monkeypatch.setattr(phpfina, "MAP_CACHE_FILES", 3)
        engine = PHPFina(str(tmp_path), fsync=False, now=lambda: NOW)
        for feed_id in range(1, 5):
            engine.create(feed_id, 10)
            engine.write_points(feed_id, np.column_stack([START + 10 * np.arange(300),
                                                          np.full(300, float(feed_id))]))
            assert engine.read(feed_id, START, START + 2990, 300,
                               average=True)[0][1] == feed_id
        assert len(engine.maps._maps) == 3
