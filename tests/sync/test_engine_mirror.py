"""The two engine calls a mirror writes through: `append_raw` (one block at the feed's end)
and `replace_feed` (swap in a complete new .dat with its meta)."""

from __future__ import annotations

import struct

import pytest

from hub.feed import summary
from hub.feed.phpfina import FeedError, InvalidInterval, PHPFina

NAN = b"\x00\x00\xc0\x7f"


def floats(*values: float) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


@pytest.fixture
def engine(tmp_path):
    engine = PHPFina(str(tmp_path))
    engine.create(1, 10)
    engine.write_points(1, [(1000, 1.0), (1010, 2.0)], now=2000)
    return engine


def test_append_raw_writes_one_block_at_the_end(engine, tmp_path):
    written = engine.append_raw(1, 8, floats(3.0) + NAN + floats(5.0))
    assert written == 12
    assert (tmp_path / "1.dat").read_bytes() == floats(1.0, 2.0, 3.0) + NAN + floats(5.0)
    assert engine.get_meta(1).npoints == 5


def test_append_raw_refuses_a_feed_that_moved_or_half_points(engine, tmp_path):
    before = (tmp_path / "1.dat").read_bytes()
    for offset, data in ((4, floats(9.0)), (12, floats(9.0)), (8, b"\x00\x00")):
        with pytest.raises(FeedError):
            engine.append_raw(1, offset, data)
    assert (tmp_path / "1.dat").read_bytes() == before


def test_append_raw_overwrites_a_torn_trailing_float(engine, tmp_path):
    with open(tmp_path / "1.dat", "ab") as f:
        f.write(b"\x01\x02")  # a crash mid-write
    engine.append_raw(1, 8, floats(3.0))
    assert (tmp_path / "1.dat").read_bytes() == floats(1.0, 2.0, 3.0)


def test_replace_feed_swaps_data_and_meta(engine, tmp_path):
    new = tmp_path / "1.dat.sync"
    new.write_bytes(floats(7.0, 8.0, 9.0))
    meta = engine.replace_feed(1, 1800, 1_700_000_000, str(new))
    assert (meta.interval, meta.start_time, meta.npoints) == (1800, 1_700_000_000, 3)
    assert (tmp_path / "1.meta").read_bytes() == struct.pack("<IIII", 0, 0, 1800, 1_700_000_000)
    assert not new.exists()


def test_replace_feed_refuses_what_is_not_a_feed(engine, tmp_path):
    outside = tmp_path.parent / "elsewhere.dat"
    outside.write_bytes(floats(1.0))
    odd = tmp_path / "odd.dat"
    odd.write_bytes(b"\x00" * 6)
    with pytest.raises(FeedError):
        engine.replace_feed(1, 10, 1000, str(outside))
    with pytest.raises(FeedError):
        engine.replace_feed(1, 10, 1000, str(odd))
    with pytest.raises(FeedError):
        engine.replace_feed(1, 10, 0, str(tmp_path / "1.dat"))  # data without a start
    with pytest.raises(InvalidInterval):
        engine.replace_feed(1, 0, 1000, str(odd))
    assert engine.get_meta(1).npoints == 2


def test_the_summary_sidecar_follows_raw_appends_and_replacements(tmp_path):
    engine = PHPFina(str(tmp_path))
    engine.create(2, 10)
    n = 3 * summary.BLOCK + 5
    values = struct.pack(f"<{n}f", *(float(i % 97) for i in range(n)))
    new = tmp_path / "2.dat.sync"
    new.write_bytes(values)
    engine.replace_feed(2, 10, 1_700_000_000, str(new))
    assert (tmp_path / "2.summary").exists() and summary.verify(engine, 2) == []
    engine.append_raw(2, n * 4, values[: 2 * summary.BLOCK * 4])
    assert summary.verify(engine, 2) == []
    new.write_bytes(values[: 4 * 8])  # a short replacement: no whole block, no sidecar
    engine.replace_feed(2, 60, 1_700_000_000, str(new))
    assert not (tmp_path / "2.summary").exists() and summary.verify(engine, 2) == []
