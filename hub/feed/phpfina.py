"""PHPFina: fixed-interval time-series engine, byte-compatible with emoncms.

File format (two files per feed in ``datadir``; ``<id>`` is the integer feed id)::

    <id>.meta := legacy_id legacy_npoints interval start_time           16 bytes, '<IIII'
        legacy_id        uint32 LE  always written 0, never read
        legacy_npoints   uint32 LE  always written 0, never read
        interval         uint32 LE  seconds per slot, > 0
        start_time       uint32 LE  unix time of slot 0; 0 = nothing written yet

    <id>.dat  := value*                                                  no header
        value            float32 LE slot n is time start_time + n * interval;
                                    NaN (bytes 00 00 c0 7f) marks a gap

    npoints  = floor(size(<id>.dat) / 4)      a torn trailing partial float is ignored
    end_time = start_time + (npoints - 1) * interval

Write rules (emoncms ``post_multiple``), applied per batch by ``write_points``:
  1. time is truncated to whole seconds and aligned to the epoch: ts = t - t % interval.
  2. ts <= 0, non-finite times and times past ``now + max_future`` are dropped.
  3. Several points in one slot: the last one given wins.  (Deviation: emoncms drops points
     that come out of order within a batch; we sort them stably, because a merged buffer is
     in arrival order, not time order.)
  4. The first point written to an empty feed sets start_time.
  5. ts < start_time is dropped: a feed never grows backwards.
  6. start_time <= ts <= end_time overwrites the slot in place.
  7. ts > end_time appends; the slots in between are padded with NaN, or with a linear
     interpolation from the last stored value when ``padding_mode="join"``
     (emoncms ``log_to_feed_join``).  A gap longer than MAX_PADDING slots drops that point.
A batch becomes one ``pwrite`` for the whole appended tail plus one per run of adjacent
overwritten slots.

Durability: after the writes of a batch, ``fdatasync`` (FSYNC) so that the caller may
forget the points once ``write_points`` returns (the feed buffer trims Redis only then).
The meta file changes only on a feed's first write; it is replaced atomically (temp file +
rename).  If a crash leaves start_time set with an empty .dat, the next write re-pins
start_time instead of refusing every post as emoncms does (its issues #1604/#1109).

Reads (``read``) follow emoncms ``get_data_combined`` plus the ``Feed::get_data`` wrapper:
end is inclusive, averaging is over [div_start, div_end) ignoring NaN, the non-averaged value
is the slot at pos = floor((t - start_time) / interval), calendar intervals step in local time.
The last slot: slot n covers [start_time + n*interval, start_time + (n+1)*interval), the
newest one included, so a non-averaged read at t answers slot pos whenever 0 <= pos < npoints.
That is emoncms's rule wherever it reads by position (the averaged path clips to npoints,
``get_value`` and ``get_data_DMY_time_of_day`` test pos < npoints).  (Deviation: emoncms's
non-averaged path alone tests t <= end_time, the *start* of the newest slot, so a sample at
end_time + 3 s reads null and a graph polled up to "now" ends in a gap; we answer the value.)
Averages add in a fixed dyadic order and take whole-block sums from the ``<id>.summary``
sidecar when it is in step (hub/feed/summary.py): the same answers, bit for bit,
with or without it (``summaries=False`` reads plain).
Unflushed points can be passed as ``pending``: they are laid over the file exactly as a
later ``write_points`` would write them (emoncms only fills null slots; we override).

Only one process should write a feed at a time (the worker's flusher); writes take an
exclusive ``flock`` on the .dat anyway.  Readers need no lock: npoints comes from the size.
Readers keep their maps of recently read .dat and .summary files (``MapCache``): a map is
reused while the path is the same inode with the same size, so appends, replace_feed,
rebuilds and deletes (by any process) get a fresh one and in-place rewrites show through.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import math
import mmap
import os
import struct
import threading
import time as _time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from hub.feed import summary as sidecar
from hub.feed.common import (  # noqa: F401  (re-exported: phpfina.FeedError etc.)
    CALENDAR_INTERVALS,
    CSV_DECIMALS,
    DEFAULT_DIVISIONS,
    MAX_FUTURE_SECONDS,
    MAX_INTERVAL,
    MIN_INTERVAL,
    TIME_FORMATS,
    VALUE_SIZE,
    CorruptFeed,
    FeedError,
    FeedExists,
    FeedNotFound,
    InvalidInterval,
    InvalidReadRequest,
    TimestampOutOfRange,
    check_feed_id,
    validate_interval,
)

# --- tunables ------------------------------------------------------------------------------
MAX_PADDING = 15_768_000  # longest gap (slots) an append may pad: emoncms' "5 years @ 10 s"
MAX_DATAPOINTS = 20_000  # emoncms max_datapoints: largest numeric-interval read
MAX_CALENDAR_DIVISIONS = 100_000  # ~270 years of days: bounds a calendar read
FSYNC = True  # fdatasync each .dat after a batch; see "Durability" above
CSV_SEPARATOR = ","  # emoncms csv_field_separator
SUMMARIES = True  # keep a <id>.summary sidecar per feed for fast averaged reads
MAP_CACHE_FILES = 8  # read maps (.dat and .summary: 4 feeds) kept between reads; see MapCache

# --- binary layout -------------------------------------------------------------------------
META_FORMAT = "<IIII"  # legacy_id, legacy_npoints, interval, start_time
META_SIZE = struct.calcsize(META_FORMAT)  # 16
VALUE_DTYPE = np.dtype("<f4")
UINT32_MAX = 2**32 - 1

PADDING_MODES = (None, "join")


# --- value types ---------------------------------------------------------------------------
@dataclass(frozen=True)
class FeedMeta:
    feed_id: int
    interval: int
    start_time: int
    npoints: int

    @property
    def end_time(self) -> int:
        return max(0, self.start_time + self.interval * (self.npoints - 1))

    def as_dict(self) -> dict:
        return {"interval": self.interval, "start_time": self.start_time,
                "npoints": self.npoints, "end_time": self.end_time}


@dataclass
class WriteResult:
    appended: int = 0  # slots added to the file, padding included
    overwritten: int = 0
    bytes_written: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> points

    @property
    def written(self) -> int:
        return self.appended + self.overwritten


@dataclass
class _Plan:
    """What a batch does to a feed, computed without touching the disk."""

    start_time: int
    overwrite_pos: np.ndarray  # int64, sorted, unique
    overwrite_val: np.ndarray  # float32
    tail: np.ndarray  # float32, appended at slot npoints
    dropped: dict[str, int]


# --- engine --------------------------------------------------------------------------------
class PHPFina:
    """The feeds of one data directory.  ``now`` (a callable) is injectable for tests."""

    def __init__(self, datadir: str, *, min_interval: int = MIN_INTERVAL,
                 max_future: int = MAX_FUTURE_SECONDS, fsync: bool = FSYNC,
                 now: Callable[[], float] = _time.time, summaries: bool = SUMMARIES):
        self.datadir = os.fspath(datadir)
        self.min_interval = min_interval
        self.max_future = max_future
        self.fsync = fsync
        self.now = now
        self.bytes_written = 0  # every byte this engine passed to write calls (bench 3)
        self.summaries = summaries  # see hub/feed/summary.py
        self.summary_bytes_written = 0  # the part of bytes_written that went to sidecars
        self.maps = MapCache(MAP_CACHE_FILES)  # .dat and .summary maps reused by reads

    # -- paths and meta ---------------------------------------------------------------------
    def meta_path(self, feed_id: int) -> str:
        return os.path.join(self.datadir, f"{check_feed_id(feed_id)}.meta")

    def dat_path(self, feed_id: int) -> str:
        return os.path.join(self.datadir, f"{check_feed_id(feed_id)}.dat")

    def exists(self, feed_id: int) -> bool:
        return os.path.exists(self.meta_path(feed_id))

    def create(self, feed_id: int, interval: int) -> FeedMeta:
        """Create an empty feed: meta {interval, start_time=0} and an empty .dat."""
        interval = validate_interval(interval, self.min_interval)
        meta_path, dat_path = self.meta_path(feed_id), self.dat_path(feed_id)
        os.makedirs(self.datadir, exist_ok=True)
        try:
            fd = os.open(meta_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise FeedExists(feed_id) from None
        try:
            self._write_all(fd, struct.pack(META_FORMAT, 0, 0, interval, 0), 0)
            os.close(os.open(dat_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
            if self.fsync:
                os.fsync(fd)
        except OSError:
            os.close(fd)
            for path in (meta_path, dat_path):
                _unlink_quietly(path)
            raise
        os.close(fd)
        return FeedMeta(feed_id, interval, 0, 0)

    def delete(self, feed_id: int) -> None:
        if not self.exists(feed_id):
            raise FeedNotFound(feed_id)
        sidecar.delete(self, feed_id)
        _unlink_quietly(self.dat_path(feed_id))
        _unlink_quietly(self.meta_path(feed_id))
        self._forget_maps(feed_id)

    def _forget_maps(self, feed_id: int) -> None:
        """Drop kept maps of a feed's files (a kept map keeps a deleted file's space)."""
        self.maps.drop(self.dat_path(feed_id))
        self.maps.drop(sidecar.summary_path(self, feed_id))

    def get_meta(self, feed_id: int) -> FeedMeta:
        """Meta of a feed; raises FeedNotFound or CorruptFeed, never returns stale guesses."""
        meta_path, dat_path = self.meta_path(feed_id), self.dat_path(feed_id)
        try:
            with open(meta_path, "rb") as f:
                raw = f.read(META_SIZE + 1)
        except FileNotFoundError:
            raise FeedNotFound(feed_id) from None
        try:
            dat_size = os.stat(dat_path).st_size
        except FileNotFoundError:
            raise CorruptFeed(dat_path, "data file missing while meta exists") from None
        return _parse_meta(feed_id, meta_path, raw, dat_size)

    def size(self, feed_id: int) -> int:
        """Bytes on disk as emoncms reports it: 16 + size of .dat."""
        self.get_meta(feed_id)
        return META_SIZE + os.stat(self.dat_path(feed_id)).st_size

    # -- writing ----------------------------------------------------------------------------
    def write_points(self, feed_id: int, points, padding_mode: str | None = None, *,
                     now: float | None = None) -> WriteResult:
        """Apply a batch of (time, value) points as one block write; see the module rules.

        ``points`` is a sequence of pairs or an (n, 2) array.  Points that the rules drop are
        counted in ``WriteResult.dropped`` by reason; the rest are written and synced.
        """
        if padding_mode not in PADDING_MODES:
            raise FeedError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        times, values = _as_points(points)
        now = self.now() if now is None else now
        meta_path, dat_path = self.meta_path(feed_id), self.dat_path(feed_id)
        if not os.path.exists(meta_path):
            raise FeedNotFound(feed_id)
        try:
            fd = os.open(dat_path, os.O_RDWR)
        except FileNotFoundError:
            raise CorruptFeed(dat_path, "data file missing while meta exists") from None
        summary = None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with open(meta_path, "rb") as f:
                meta = _parse_meta(feed_id, meta_path, f.read(META_SIZE + 1),
                                   os.fstat(fd).st_size)
            plan = _plan_write(meta, times, values, padding_mode, now + self.max_future,
                               lambda pos: _read_slot(fd, pos))
            result = WriteResult(dropped=plan.dropped)
            if self.summaries and (len(plan.tail) or len(plan.overwrite_pos)):
                summary = sidecar.prepare_write(self, feed_id, fd, meta,
                                                        plan.overwrite_pos)
            if plan.start_time != meta.start_time:
                self._replace_meta(meta_path, meta.interval, plan.start_time)
                result.bytes_written += META_SIZE
            for first, run in _runs(plan.overwrite_pos, plan.overwrite_val):
                result.bytes_written += self._write_all(fd, run.tobytes(), first * VALUE_SIZE)
            result.overwritten = len(plan.overwrite_pos)
            if len(plan.tail):
                result.bytes_written += self._write_all(fd, plan.tail.tobytes(),
                                                        meta.npoints * VALUE_SIZE)
                result.appended = len(plan.tail)
            if self.fsync and result.written:
                os.fdatasync(fd)
            if summary is not None:
                before = self.summary_bytes_written
                sidecar.finish_write(
                    self, summary, fd, FeedMeta(feed_id, meta.interval, plan.start_time,
                                                meta.npoints + len(plan.tail)),
                    plan.overwrite_pos)
                result.bytes_written += self.summary_bytes_written - before
        finally:
            if summary is not None:
                summary.close()
            os.close(fd)  # also releases the flock
        return result

    def post(self, feed_id: int, t: float, value: float, padding_mode: str | None = None, *,
             now: float | None = None) -> WriteResult:
        """Write one point; unlike a batch, a dropped point raises TimestampOutOfRange."""
        result = self.write_points(feed_id, [(t, value)], padding_mode, now=now)
        if result.dropped:
            reason = next(iter(result.dropped))
            raise TimestampOutOfRange(f"feed {feed_id}: point at t={t} not stored ({reason})")
        return result

    def _write_all(self, fd: int, data: bytes, offset: int) -> int:
        view = memoryview(data)
        while view:
            n = os.pwrite(fd, view, offset)
            view, offset = view[n:], offset + n
        self.bytes_written += len(data)
        return len(data)

    def _replace_meta(self, meta_path: str, interval: int, start_time: int) -> None:
        tmp = meta_path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            self._write_all(fd, struct.pack(META_FORMAT, 0, 0, interval, start_time), 0)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, meta_path)
        if self.fsync:
            dir_fd = os.open(self.datadir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    # -- reading ----------------------------------------------------------------------------
    def open_view(self, feed_id: int, pending=None, padding_mode: str | None = None, *,
                  now: float | None = None) -> FeedView:
        """The feed as it will be once ``pending`` is written: memory-mapped file + overlay."""
        meta, base, dat_inode = self._map_feed(feed_id)
        view = FeedView(meta, base)
        if pending is not None and len(pending):
            times, values = _as_points(pending)
            now = self.now() if now is None else now
            plan = _plan_write(meta, times, values, padding_mode, now + self.max_future,
                               lambda pos: float(base[pos]))
            view = view.overlaid(plan)
        if self.summaries:  # opened only by an averaged read
            view.open_summary = lambda: sidecar.open_for_read(self, meta, dat_inode)
        return view

    def _map_feed(self, feed_id: int) -> tuple[FeedMeta, np.ndarray, int]:
        """Meta, read-only map of the .dat's npoints slots, and the .dat's inode, all of the
        same .dat (the map is taken from the descriptor that gave the size)."""
        meta_path, dat_path = self.meta_path(feed_id), self.dat_path(feed_id)
        try:
            fd = os.open(meta_path, os.O_RDONLY)
        except FileNotFoundError:
            self._forget_maps(feed_id)  # deleted by another process: let its files go
            raise FeedNotFound(feed_id) from None
        try:
            raw = os.read(fd, META_SIZE + 1)
        finally:
            os.close(fd)
        try:
            fd = os.open(dat_path, os.O_RDONLY)
        except FileNotFoundError:
            self._forget_maps(feed_id)
            raise CorruptFeed(dat_path, "data file missing while meta exists") from None
        try:
            st = os.fstat(fd)
            meta = _parse_meta(feed_id, meta_path, raw, st.st_size)
            if meta.npoints == 0:
                return meta, _EMPTY_VAL, st.st_ino
            base = self.maps.get(dat_path, (st.st_dev, st.st_ino, meta.npoints),
                                 lambda: _map_fd(fd, meta.npoints * VALUE_SIZE, VALUE_DTYPE))
        finally:
            os.close(fd)
        return meta, base, st.st_ino

    def read(self, feed_id: int, start: float, end: float, interval: int | str, *,
             average: bool = False, timezone: str = "UTC", timeformat: str = "unix",
             skipmissing: bool = False, limitinterval: bool = True, delta: bool = False,
             dp: int | None = None, pending=None, padding_mode: str | None = None,
             now: float | None = None, max_datapoints: int | None = MAX_DATAPOINTS) -> list:
        """emoncms ``feed/data``: [[time, value|None], ...] (or [value, ...] for notime)."""
        view = self.open_view(feed_id, pending, padding_mode, now=now)
        times, values = file_read(view, start, end, interval, average=average,
                                  timezone=timezone, skipmissing=skipmissing,
                                  limitinterval=limitinterval, delta=delta, dp=dp,
                                  max_datapoints=max_datapoints)
        return format_rows(times, values, timeformat, timezone)

    def export_csv(self, feed_id: int, start: float, end: float, interval: int | str, *,
                   average: bool = False, timezone: str = "UTC", timeformat: str = "unix",
                   skipmissing: bool = False, limitinterval: bool = True, delta: bool = False,
                   pending=None, padding_mode: str | None = None, now: float | None = None,
                   separator: str = CSV_SEPARATOR, decimals: int = CSV_DECIMALS
                   ) -> Iterator[str]:
        """emoncms single-feed CSV: lines ``time<sep>value`` (``null`` when missing).

        As in emoncms, ``unixms`` is not applied here (unix seconds instead) and the
        datapoint limit does not apply.
        """
        view = self.open_view(feed_id, pending, padding_mode, now=now)
        times, values = file_read(view, start, end, interval, average=average,
                                  timezone=timezone, skipmissing=skipmissing,
                                  limitinterval=limitinterval, delta=delta, dp=None,
                                  max_datapoints=None)
        if timeformat not in TIME_FORMATS:
            raise InvalidReadRequest(f"timeformat must be one of {TIME_FORMATS}")
        fmt = "unix" if timeformat in ("unixms", "notime") else timeformat
        tz = _zone(timezone)
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter=separator, lineterminator="\n")
        for t, v in zip(times, values, strict=True):
            writer.writerow([_format_time(int(t), fmt, tz),
                             "null" if v is None else f"{v:.{decimals}f}"])
            if buf.tell() > 65536:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue()

    def export_dat(self, feed_id: int, start_byte: int = 0, chunk: int = 8192
                   ) -> Iterator[bytes]:
        """emoncms ``feed/export``: raw .dat bytes from ``start_byte`` (re-sending one point)."""
        meta = self.get_meta(feed_id)
        offset = max(0, int(start_byte) // VALUE_SIZE * VALUE_SIZE)
        if offset >= VALUE_SIZE:
            offset -= VALUE_SIZE
        end = meta.npoints * VALUE_SIZE
        with open(self.dat_path(feed_id), "rb") as f:
            f.seek(offset)
            while offset < end:
                data = f.read(min(chunk, end - offset))
                if not data:
                    break
                offset += len(data)
                yield data

    def timevalue(self, feed_id: int, pending=None, padding_mode: str | None = None, *,
                  now: float | None = None) -> dict:
        """Last slot: {"time": end_time, "value": v}; both None for an empty feed."""
        view = self.open_view(feed_id, pending, padding_mode, now=now)
        return view.lastvalue()

    def value(self, feed_id: int, pending=None, padding_mode: str | None = None, *,
              now: float | None = None) -> float | None:
        return self.timevalue(feed_id, pending, padding_mode, now=now)["value"]

    def value_at(self, feed_id: int, t: float, pending=None,
                 padding_mode: str | None = None) -> float | None:
        """emoncms ``get_value``: the nearest slot (round, not floor)."""
        view = self.open_view(feed_id, pending, padding_mode)
        meta = view.meta
        if meta.npoints == 0:
            return None
        pos = _php_round((int(t) - meta.start_time) / meta.interval)
        return _to_py(view.take(np.array([pos], dtype=np.int64))[0])

    # -- whole-block writes from a mirror (server sync) -------------------------------------
    def append_raw(self, feed_id: int, offset: int, data: bytes) -> int:
        """Append raw float32 LE slots at byte ``offset``, which must be the feed's end
        (npoints * 4): one pwrite + fdatasync, the same single block append as a batch.
        A torn partial float past the end is overwritten. Raises FeedError if the feed
        changed meanwhile (another writer); returns the bytes written."""
        if offset % VALUE_SIZE or len(data) % VALUE_SIZE:
            raise FeedError(f"feed {feed_id}: raw append must be whole float32 slots")
        meta_path, dat_path = self.meta_path(feed_id), self.dat_path(feed_id)
        if not os.path.exists(meta_path):
            raise FeedNotFound(feed_id)
        fd = os.open(dat_path, os.O_RDWR)
        summary = None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with open(meta_path, "rb") as f:
                meta = _parse_meta(feed_id, meta_path, f.read(META_SIZE + 1),
                                   os.fstat(fd).st_size)
            if meta.npoints * VALUE_SIZE != offset or (not meta.start_time and data):
                raise FeedError(f"feed {feed_id} has {meta.npoints} points, not the "
                                f"{offset // VALUE_SIZE} the append expected")
            if not data:
                return 0
            if self.summaries:
                summary = sidecar.prepare_write(self, feed_id, fd, meta, _EMPTY_POS)
            written = self._write_all(fd, data, offset)
            if os.fstat(fd).st_size > offset + written:
                os.ftruncate(fd, offset + written)
            if self.fsync:
                os.fdatasync(fd)
            if summary is not None:  # the sidecar follows the new tail, as after a batch
                sidecar.finish_write(self, summary, fd, FeedMeta(
                    feed_id, meta.interval, meta.start_time,
                    meta.npoints + written // VALUE_SIZE), _EMPTY_POS)
        finally:
            if summary is not None:
                summary.close()
            os.close(fd)
        return written

    def replace_feed(self, feed_id: int, interval: int, start_time: int,
                     new_dat_path: str) -> FeedMeta:
        """Replace a feed's files with a complete new .dat (already written and synced by
        the caller, in ``datadir``) and a meta {interval, start_time}: the one place that
        swaps a feed's files wholesale, so derived files are dropped and rebuilt here (the
        summary sidecar, hub/feed/summary.py). Each file is swapped by rename; the .dat
        goes first, so a crash in between leaves a meta that disagrees with the mirror's
        source and is redone."""
        interval = validate_interval(interval, self.min_interval)
        if not self.exists(feed_id):
            raise FeedNotFound(feed_id)
        if os.path.dirname(os.path.abspath(new_dat_path)) != os.path.abspath(self.datadir):
            raise FeedError("the new .dat must be in the data directory (atomic rename)")
        size = os.stat(new_dat_path).st_size
        if size % VALUE_SIZE or (size and not start_time) or start_time < 0:
            raise FeedError(f"feed {feed_id}: new data of {size} bytes with start_time "
                            f"{start_time} is not a PHPFina feed")
        sidecar.delete(self, feed_id)  # describes the old .dat (stale by inode anyway)
        os.replace(new_dat_path, self.dat_path(feed_id))
        self._replace_meta(self.meta_path(feed_id), interval, int(start_time))
        meta = self.get_meta(feed_id)
        if self.summaries:  # rebuilt for the new data, as a first write would build it
            fd = os.open(self.dat_path(feed_id), os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                sidecar.finish_write(self, sidecar.prepare_write(self, feed_id, fd, meta,
                                                                 _EMPTY_POS),
                                     fd, meta, _EMPTY_POS)
            finally:
                os.close(fd)
        return meta


# --- the readable feed: file map + pending overlay ------------------------------------------
class FeedView:
    """Values of a feed, positions 0..npoints-1, with an optional overlay of pending points."""

    open_summary: Callable[[], sidecar.Summary | None] | None = None

    def __init__(self, meta: FeedMeta, base: np.ndarray, base_npoints: int | None = None,
                 overwrite_pos: np.ndarray | None = None,
                 overwrite_val: np.ndarray | None = None, tail: np.ndarray | None = None):
        self.meta = meta
        self.base = base
        self.base_npoints = len(base) if base_npoints is None else base_npoints
        self.overwrite_pos = overwrite_pos if overwrite_pos is not None else _EMPTY_POS
        self.overwrite_val = overwrite_val if overwrite_val is not None else _EMPTY_VAL
        self.tail = tail if tail is not None else _EMPTY_VAL

    def overlaid(self, plan: _Plan) -> FeedView:
        npoints = self.base_npoints + len(plan.tail)
        meta = FeedMeta(self.meta.feed_id, self.meta.interval, plan.start_time, npoints)
        return FeedView(meta, self.base, self.base_npoints, plan.overwrite_pos,
                        plan.overwrite_val, plan.tail)

    @property
    def plain(self) -> bool:
        return not len(self.overwrite_pos) and not len(self.tail)

    def values(self, a: int, b: int) -> np.ndarray:
        """float32 values of slots [a, b), clipped to the feed."""
        a, b = max(0, a), min(self.meta.npoints, b)
        if b <= a:
            return _EMPTY_VAL
        if self.plain:
            return self.base[a:b]
        out = np.empty(b - a, dtype=VALUE_DTYPE)
        nb = self.base_npoints
        if a < nb:
            out[: min(b, nb) - a] = self.base[a:min(b, nb)]
        if b > nb:
            lo = max(a, nb)
            out[lo - a:] = self.tail[lo - nb: b - nb]
        i, j = np.searchsorted(self.overwrite_pos, [a, b])
        out[self.overwrite_pos[i:j] - a] = self.overwrite_val[i:j]
        return out

    def take(self, positions: np.ndarray) -> np.ndarray:
        """float32 values at arbitrary slots; NaN outside the feed."""
        out = np.full(len(positions), np.nan, dtype=VALUE_DTYPE)
        nb = self.base_npoints
        in_base = (positions >= 0) & (positions < nb)
        out[in_base] = self.base[positions[in_base]]
        in_tail = (positions >= nb) & (positions < self.meta.npoints)
        out[in_tail] = self.tail[positions[in_tail] - nb]
        if len(self.overwrite_pos):
            idx = np.searchsorted(self.overwrite_pos, positions)
            idx_c = np.minimum(idx, len(self.overwrite_pos) - 1)
            hit = self.overwrite_pos[idx_c] == positions
            out[hit] = self.overwrite_val[idx_c[hit]]
        return out

    def lastvalue(self) -> dict:
        if self.meta.npoints == 0:
            return {"time": None, "value": None}
        v = self.take(np.array([self.meta.npoints - 1], dtype=np.int64))[0]
        return {"time": self.meta.end_time, "value": _to_py(v)}


_EMPTY_POS = np.empty(0, dtype=np.int64)
_EMPTY_VAL = np.empty(0, dtype=VALUE_DTYPE)


def file_read(view: FeedView, start: float, end: float, interval: int | str, *,
              average: bool = False, timezone: str = "UTC", skipmissing: bool = False,
              limitinterval: bool = True, delta: bool = False, dp: int | None = None,
              max_datapoints: int | None = MAX_DATAPOINTS) -> tuple[list[int], list]:
    """``read`` on an open view: (times, values) with None for missing values."""
    start, end = _seconds(start), _seconds(end)
    _validate_read_request(start, end, interval, dp)
    meta = view.meta
    tz = _zone(timezone)
    if interval == "original":
        interval = meta.interval
    if isinstance(interval, str) and interval in CALENDAR_INTERVALS:
        if delta:
            end = _calendar_step(_local(end, tz), interval, tz)
        bounds = _calendar_bounds(start, end, interval, tz)
        times, div_ends = bounds[:-1], bounds[1:]
    else:
        interval = int(interval)
        if interval < 1:
            interval = max(1, _php_round((end - start) / DEFAULT_DIVISIONS))
        if limitinterval and meta.interval:
            interval = max(interval, meta.interval)
            interval = _php_round(interval / meta.interval) * meta.interval
        if interval <= meta.interval:
            average = False  # emoncms: nothing to average at or below the feed interval
        if delta:
            end += interval
        count = (end - start) // interval + 1
        if max_datapoints is not None and count > max_datapoints + int(delta):
            raise InvalidReadRequest(
                f"request datapoint limit reached ({max_datapoints}), increase request "
                f"interval or time range, requested datapoints = {count}")
        times = start + interval * np.arange(count, dtype=np.int64)
        div_ends = times + interval
    if len(times) == 0:
        return [], []
    raw = _averages(view, times, div_ends) if average else _samples(view, times)
    values = raw.tolist()
    for i in np.flatnonzero(np.isnan(raw)).tolist():
        values[i] = None
    times = times.tolist()
    if delta:
        values = _deltas(times, values, view.lastvalue())
        times = times[:-1]
    if dp is not None:
        values = [None if v is None else round(v, dp) for v in values]
    if skipmissing:
        kept = [(t, v) for t, v in zip(times, values, strict=True) if v is not None]
        times, values = [t for t, _ in kept], [v for _, v in kept]
    return times, values


def _samples(view: FeedView, times: np.ndarray) -> np.ndarray:
    """Non-averaged: the slot holding each time, if that slot exists (0 <= pos < npoints).
    The newest slot answers for its whole interval; see "Reads" in the module docstring."""
    meta = view.meta
    positions = (times - meta.start_time) // meta.interval
    inside = (times >= meta.start_time) & (positions < meta.npoints) & (meta.npoints > 0)
    positions = np.where(inside, positions, -1)
    return view.take(positions).astype(np.float64)


def _averages(view: FeedView, div_starts: np.ndarray, div_ends: np.ndarray) -> np.ndarray:
    """Mean of the non-NaN slots in [div_start, div_end) for every division, NaN if none."""
    meta = view.meta
    a = np.minimum(np.maximum((div_starts - meta.start_time) // meta.interval, 0), meta.npoints)
    b = np.minimum(np.maximum((div_ends - meta.start_time) // meta.interval, a), meta.npoints)
    # Canonical dyadic sums, from the summary sidecar where it holds them.
    return sidecar.bucket_means(view, a, b)


def _deltas(times: list[int], values: list, current: dict) -> list:
    """emoncms delta: v[i] = v[i+1] - v[i]; the last division may use the live value."""
    out = []
    for i in range(len(values) - 1):
        v, nxt = values[i], values[i + 1]
        if v is not None and nxt is not None:
            out.append(nxt - v)
        elif (v is not None and current["value"] is not None
              and times[i] < current["time"] <= times[i + 1]):
            out.append(current["value"] - v)
        else:
            out.append(None)
    return out


# --- write planning ---------------------------------------------------------------------------
def _plan_write(meta: FeedMeta, times: np.ndarray, values: np.ndarray,
                padding_mode: str | None, latest: float,
                read_last: Callable[[int], float]) -> _Plan:
    """Turn a batch into overwrites + an appended tail, per the module's write rules."""
    dropped: dict[str, int] = {}

    def drop(reason: str, mask: np.ndarray) -> None:
        n = int(mask.sum())
        if n:
            dropped[reason] = dropped.get(reason, 0) + n

    iv = meta.interval
    finite = np.isfinite(times)
    ts = np.zeros(len(times), dtype=np.int64)
    ts[finite] = np.trunc(np.clip(times[finite], -1, UINT32_MAX))  # rule 1: (int) $t
    ts -= ts % iv
    bad = ~finite | (ts <= 0)  # rule 2
    drop("invalid_time", bad)
    future = ~bad & (times > latest)
    drop("future", future)
    keep = ~(bad | future)
    ts, vals = ts[keep], values[keep]

    order = np.argsort(ts, kind="stable")  # rule 3: sort, last given wins within a slot
    ts, vals = ts[order], vals[order]
    last_of_slot = np.append(ts[1:] != ts[:-1], True) if len(ts) else np.empty(0, bool)
    drop("same_slot", ~last_of_slot)
    ts, vals = ts[last_of_slot], vals[last_of_slot]

    start_time, npoints = meta.start_time, meta.npoints
    if npoints == 0 and len(ts):
        start_time = int(ts[0])  # rule 4 (also re-pins a start left by a crash)
    pos = (ts - start_time) // iv
    before = pos < 0
    drop("before_start", before)  # rule 5
    inside = ~before & (pos < npoints)  # rule 6
    ow_pos, ow_val = pos[inside], vals[inside].astype(VALUE_DTYPE)
    app_pos, app_val = pos[pos >= npoints], vals[pos >= npoints]

    tail = _EMPTY_VAL
    if len(app_pos):  # rule 7
        gaps = np.diff(app_pos, prepend=npoints - 1) - 1
        too_far = np.cumsum(gaps > MAX_PADDING) > 0
        drop("padding_too_long", too_far)
        app_pos, app_val, gaps = app_pos[~too_far], app_val[~too_far], gaps[~too_far]
    if len(app_pos):
        tail64 = np.full(int(app_pos[-1]) - npoints + 1, np.nan)
        tail64[app_pos - npoints] = app_val
        if padding_mode == "join":
            _join_gaps(tail64, app_pos - npoints, app_val, gaps, npoints, ow_pos, ow_val,
                       read_last)
        tail = tail64.astype(VALUE_DTYPE)
    if len(ow_pos) == 0:
        ow_pos, ow_val = _EMPTY_POS, _EMPTY_VAL
    return _Plan(start_time, ow_pos.astype(np.int64), ow_val, tail, dropped)


def _join_gaps(tail64: np.ndarray, offsets: np.ndarray, new_values: np.ndarray,
               gaps: np.ndarray, npoints: int, ow_pos: np.ndarray, ow_val: np.ndarray,
               read_last: Callable[[int], float]) -> None:
    """Linear fill of each gap, computed as emoncms does: repeated double additions."""
    for i in np.flatnonzero(gaps > 0):
        if i > 0:
            last = float(new_values[i - 1])  # emoncms keeps the unrounded double here
        elif npoints > 0:
            hit = np.flatnonzero(ow_pos == npoints - 1)
            last = float(ow_val[hit[-1]]) if len(hit) else read_last(npoints - 1)
        else:
            continue
        padding = int(gaps[i])
        step = (float(new_values[i]) - last) / (padding + 1)
        fill = np.cumsum(np.concatenate(([last], np.full(padding, step))))[1:]
        tail64[offsets[i] - padding: offsets[i]] = fill


def _runs(positions: np.ndarray, values: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """Split sorted slot positions into runs of adjacent slots: (first, values)."""
    if not len(positions):
        return
    breaks = np.flatnonzero(np.diff(positions) != 1) + 1
    for idx in np.split(np.arange(len(positions)), breaks):
        yield int(positions[idx[0]]), values[idx]


# --- validation ----------------------------------------------------------------------------
def _validate_read_request(start: int, end: int, interval, dp) -> None:
    """Rules for a read:
    1. end > start ("request end time before start time" in emoncms);
    2. interval is "original", a calendar name or an integer number of seconds;
    3. dp, if given, is an integer 0..15.
    """
    if end <= start:
        raise InvalidReadRequest(f"request end time before start time ({end} <= {start})")
    if isinstance(interval, str) and interval in ("original", *CALENDAR_INTERVALS):
        pass
    else:
        try:
            if isinstance(interval, bool) or int(interval) != float(interval):
                raise ValueError
        except (TypeError, ValueError):
            raise InvalidReadRequest(
                f"interval must be seconds, 'original' or one of {CALENDAR_INTERVALS}, "
                f"got {interval!r}") from None
    if dp is not None and (isinstance(dp, bool) or not isinstance(dp, int) or not 0 <= dp <= 15):
        raise InvalidReadRequest(f"dp must be an integer 0..15, got {dp!r}")


def _seconds(t) -> int:
    """A unix time in seconds; like emoncms, values above 1e11 are taken as milliseconds."""
    try:
        t = float(t)
    except (TypeError, ValueError):
        raise InvalidReadRequest(f"time must be a number, got {t!r}") from None
    if not math.isfinite(t):
        raise InvalidReadRequest(f"time must be finite, got {t!r}")
    if t / 1e9 > 100:
        t /= 1000
    return int(t)


def _parse_meta(feed_id: int, meta_path: str, raw: bytes, dat_size: int) -> FeedMeta:
    if len(raw) != META_SIZE:
        raise CorruptFeed(meta_path, f"meta is {len(raw)} bytes, expected {META_SIZE}")
    _, _, interval, start_time = struct.unpack(META_FORMAT, raw)
    if interval == 0:
        raise CorruptFeed(meta_path, "interval is 0")
    npoints = dat_size // VALUE_SIZE
    if start_time == 0 and npoints > 0:
        raise CorruptFeed(meta_path, f"start_time is 0 but the data file holds {npoints} points")
    return FeedMeta(feed_id, interval, start_time, npoints)


# --- small helpers ---------------------------------------------------------------------------
def _as_points(points) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(points, dtype=np.float64)
    if arr.size == 0:
        return np.empty(0), np.empty(0)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise FeedError(f"points must be (time, value) pairs, got shape {arr.shape}")
    return arr[:, 0], arr[:, 1]


def _map_fd(fd: int, length: int, dtype: np.dtype) -> np.ndarray:
    """The first ``length`` bytes of an open file as a read-only array (shared map: writes
    in place by other processes show through)."""
    return np.frombuffer(mmap.mmap(fd, length, access=mmap.ACCESS_READ), dtype=dtype,
                         count=length // dtype.itemsize)


class MapCache:
    """Read maps of recently read files, by path, reused while the file at the path is the
    same inode with the same key (size).  Mapping a file per read costs a page fault for
    every page the read touches again; a kept map costs none.

    Why a hit is the right file: a held map keeps its inode alive, so no other file can get
    that inode number while it is cached; history rewrites happen in place and show through
    the shared map; an append changes the size and a replace_feed, rebuild or delete
    changes the inode, and either gets a fresh map.  Nothing here truncates a live .dat or
    .summary (a shrinking mapped file would fault).  The pages a kept map has touched count
    in the process's RSS (clean page cache, reclaimable) until it is dropped: at most
    ``size`` maps are kept, least recently used first out."""

    def __init__(self, size: int):
        self.size = size
        self._maps: OrderedDict[str, tuple[tuple, object]] = OrderedDict()
        self._lock = threading.Lock()  # web threads read concurrently

    def get(self, path: str, key: tuple, make: Callable[[], object]):
        with self._lock:
            hit = self._maps.get(path)
            if hit is not None and hit[0] == key:
                self._maps.move_to_end(path)
                return hit[1]
        value = make()
        with self._lock:
            self._maps[path] = (key, value)
            self._maps.move_to_end(path)
            while len(self._maps) > self.size:
                self._maps.popitem(last=False)
        return value

    def drop(self, path: str) -> None:
        with self._lock:
            self._maps.pop(path, None)


def _read_slot(fd: int, pos: int) -> float:
    raw = os.pread(fd, VALUE_SIZE, pos * VALUE_SIZE)
    if len(raw) != VALUE_SIZE:
        return math.nan
    return float(np.frombuffer(raw, dtype=VALUE_DTYPE)[0])


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _php_round(x: float) -> int:
    """PHP round(): half away from zero (Python's round() is half to even)."""
    return int(math.floor(abs(x) + 0.5) * (1 if x >= 0 else -1))


def _to_py(v) -> float | None:
    v = float(v)
    return None if math.isnan(v) else v


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidReadRequest(f"unknown timezone {name!r}") from None


def _local(t: int, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(t, tz)


def _calendar_start(t: int, interval: str, tz: ZoneInfo) -> datetime:
    """emoncms alignment: midnight, then 'this monday' (forward!), 1st of month, 1 January."""
    d = _local(t, tz).date()
    if interval == "weekly":
        d += timedelta(days=(7 - d.weekday()) % 7)
    elif interval == "monthly":
        d = d.replace(day=1)
    elif interval == "annual":
        d = d.replace(month=1, day=1)
    return datetime(d.year, d.month, d.day, tzinfo=tz)


def _calendar_step(local: datetime, interval: str, tz: ZoneInfo) -> int:
    """Unix time of the next calendar boundary after local midnight ``local``."""
    d = local.date()
    if interval == "daily":
        d += timedelta(days=1)
    elif interval == "weekly":
        d += timedelta(days=7)
    elif interval == "monthly":  # PHP "+1 month" overflows: 31 Mar -> "31 Apr" = 1 May
        d = d.replace(year=d.year + d.month // 12, month=d.month % 12 + 1, day=1) + timedelta(
            days=d.day - 1)
    else:  # PHP "+1 year": 29 Feb 2024 -> 1 Mar 2025
        d = d.replace(year=d.year + 1, day=1) + timedelta(days=d.day - 1)
    return int(datetime(d.year, d.month, d.day, tzinfo=tz).timestamp())


def _calendar_bounds(start: int, end: int, interval: str, tz: ZoneInfo) -> np.ndarray:
    """Division boundaries t0 < t1 < ... with every ti <= end, plus the closing boundary.

    Boundaries are local midnights, so a day is 23 or 25 hours long on DST change days.
    """
    local = _calendar_start(start, interval, tz)
    bounds = [int(local.timestamp())]
    while bounds[-1] <= end:
        if len(bounds) > MAX_CALENDAR_DIVISIONS:
            raise InvalidReadRequest(f"more than {MAX_CALENDAR_DIVISIONS} {interval} divisions")
        bounds.append(_calendar_step(_local(bounds[-1], tz), interval, tz))
    if len(bounds) == 1:  # the first boundary is already past end
        return np.empty(0, dtype=np.int64)
    return np.array(bounds, dtype=np.int64)


def _format_time(t: int, timeformat: str, tz: ZoneInfo):
    if timeformat == "unix":
        return t
    if timeformat == "unixms":
        return t * 1000
    local = _local(t, tz)
    if timeformat == "excel":
        return local.strftime("%d/%m/%Y %H:%M:%S")
    return local.isoformat()  # iso8601, as PHP's DateTime::format("c")


def format_rows(times: Sequence[int], values: Sequence, timeformat: str,
                 timezone: str) -> list:
    if timeformat not in TIME_FORMATS:
        raise InvalidReadRequest(f"timeformat must be one of {TIME_FORMATS}, got {timeformat!r}")
    if timeformat == "notime":
        return list(values)
    tz = _zone(timezone)
    if timeformat == "unix":
        return list(map(list, zip(times, values, strict=True)))
    return [[_format_time(t, timeformat, tz), v] for t, v in zip(times, values, strict=True)]

