"""Feed store: feed metadata in MariaDB, data in PHPFina files behind the Redis write buffer.

- A feed is a row of `feeds` (owner, name, tag, unit, public, engine, interval) plus the two
  PHPFina files `<feed_dir>/<id>.meta|.dat`. Tag + name are unique per user (as in emoncms).
- Writes (`insert`, `insert_many`, `store_profile`) only queue points in the feed buffer
  (hub.feed.buffer); the worker calls `flush()` every `flush_interval` seconds, which
  writes one block per feed. Reads (`data`, `csv`, `meta`, `value_at`) lay the unflushed
  points over the file, so a reader sees a point as soon as `insert` returns.
- The last value of each feed, `{time, value}`, is a Redis hash `feed:<id>` (emoncms
  `set_timevalue`): updated on insert when the point is not older than the cached one,
  loaded lazily from the file when absent (after a Redis restart).
- Daily profiles (hydro, community, demand shaper) are ordinary feeds, one per kind per user,
  named after the kind with tag "profile", created on first use.

Errors all derive from `common.FeedError` (the same class as `phpfina.FeedError`), so a
caller can catch engine and store failures together; the store's own failures are the
subclasses below. The engine (numpy) is imported on first read or write, not with the store.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pymysql
import redis

from hub.db import Database
from hub.feed import common
from hub.feed.common import FLOAT32_MAX, FeedError
from hub.names import PROFILE_KINDS, RedisKeys

if TYPE_CHECKING:
    from hub.feed.buffer import FeedBuffer
    from hub.feed.common import FlushStats
    from hub.feed.phpfina import PHPFina

log = logging.getLogger(__name__)

ENGINE_PHPFINA = 5  # emoncms engine number; the only engine the hub stores
ENGINES = {ENGINE_PHPFINA: "PHPFina"}
DEFAULT_INTERVAL = 10
NAME_RE = re.compile(r"^[\w\s:.-]{1,64}$")  # emoncms allows \p{N}\p{L}_\s\-: (plus "." here)
TAG_RE = re.compile(r"^[\w\s:.-]{0,64}$")
UNIT_RE = re.compile(r"^[^\x00-\x1f\x7f]{0,16}$")
PROFILE_TAG = "profile"
MAX_PROFILE_POINTS = 10_000  # a day at 10 s is 8,640 points
CSV_DECIMALS = common.CSV_DECIMALS


# emoncms post_multiple: an older point does not replace the cached last value.
_SET_LAST = """
local cached = redis.call('HGET', KEYS[1], 'time')
if cached and tonumber(cached) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'time', ARGV[1], 'value', ARGV[2])
return 1
"""


class FeedNotFound(common.FeedNotFound):
    def __init__(self, feed_id: int) -> None:
        FeedError.__init__(self, f"feed {feed_id} does not exist")
        self.feed_id = feed_id


class FeedExists(FeedError):
    def __init__(self, tag: str, name: str, feed_id: int | None = None) -> None:
        label = f"{tag}:{name}" if tag else name
        super().__init__(f"feed {label!r} already exists" +
                         (f" (id {feed_id})" if feed_id else ""))
        self.feed_id = feed_id


class NotOwner(FeedError):
    def __init__(self, feed: Feed) -> None:
        super().__init__(f"feed {feed.id} belongs to another user")
        self.feed = feed


class InvalidFeed(FeedError):
    """A name, tag, unit, engine or interval that a feed cannot have."""


class InvalidPoint(FeedError):
    """A time or value that cannot be stored."""


class InvalidProfile(FeedError):
    """A daily profile that is malformed or does not fit its feed."""


@dataclass(frozen=True)
class Feed:
    id: int
    user_id: int
    name: str
    tag: str
    interval: int
    unit: str
    public: bool
    engine: int

    def as_dict(self) -> dict[str, Any]:
        """emoncms field names (`userid`), as feed/list.json and feed/aget.json answer."""
        row = asdict(self)
        row["userid"] = row.pop("user_id")
        return row


_COLUMNS = "id, user_id, name, tag, `interval`, unit, public, engine"


def _row_to_feed(row: dict) -> Feed:
    return Feed(id=row["id"], user_id=row["user_id"], name=row["name"], tag=row["tag"],
                interval=row["interval"], unit=row["unit"], public=bool(row["public"]),
                engine=row["engine"])


def _check_text(value: Any, pattern: re.Pattern, what: str, rule: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise InvalidFeed(f"{what} must be {rule}, got {value!r}")
    return value


def _check_name(name: Any) -> str:
    return _check_text(name, NAME_RE, "name", "1-64 letters, digits, spaces or _ - : .")


def _check_tag(tag: Any) -> str:
    return _check_text(tag, TAG_RE, "tag", "0-64 letters, digits, spaces or _ - : .")


def _check_unit(unit: Any) -> str:
    return _check_text(unit, UNIT_RE, "unit", "at most 16 printable characters")


def _check_time(t: Any, now: float) -> float:
    try:
        t = float(t)
    except (TypeError, ValueError):
        raise InvalidPoint(f"time must be a number, got {t!r}") from None
    if not math.isfinite(t) or t <= 0:
        raise InvalidPoint(f"time must be a positive unix time, got {t!r}")
    if t > now + common.MAX_FUTURE_SECONDS:
        raise InvalidPoint(f"time {t:.0f} is more than {common.MAX_FUTURE_SECONDS} s "
                           f"in the future")
    return t


def _check_value(value: Any) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InvalidPoint(f"value must be a number, got {value!r}") from None
    if not math.isfinite(value) or abs(value) > FLOAT32_MAX:
        raise InvalidPoint(f"value must be a finite number a float32 can hold, got {value!r}")
    return value


class FeedStore:
    def __init__(self, db: Database, redis_client: redis.Redis, keys: RedisKeys,
                 feed_dir: Path) -> None:
        self.db = db
        self.redis = redis_client
        self.feed_dir = feed_dir
        self._buffer_prefix = keys.feed_buffer
        self._last_key = keys.feed
        self._set_last_script = redis_client.register_script(_SET_LAST)
        self.now = time.time

    # The engine and the buffer (numpy) are imported on first use: a `hub web` that only
    # lists feeds' rows or serves inputs and accounts never loads numpy (issue 12).
    @cached_property
    def engine(self) -> PHPFina:
        from hub.feed.phpfina import PHPFina

        return PHPFina(str(self.feed_dir))

    @cached_property
    def buffer(self) -> FeedBuffer:
        from hub.feed.buffer import FeedBuffer

        return FeedBuffer(self.redis, self._buffer_prefix)

    # -- metadata ----------------------------------------------------------------------------

    def create(self, user_id: int, name: str, tag: str = "", interval: int = DEFAULT_INTERVAL,
               unit: str = "", engine: int = ENGINE_PHPFINA) -> Feed:
        _check_name(name)
        _check_tag(tag)
        _check_unit(unit)
        if engine not in ENGINES:
            raise InvalidFeed(f"engine {engine!r} is not supported: only {ENGINE_PHPFINA} "
                              f"(PHPFina) is")
        try:
            interval = common.validate_interval(interval, self.engine.min_interval)
        except common.InvalidInterval as exc:
            raise InvalidFeed(str(exc)) from None
        try:
            with self.db.cursor() as cur:
                cur.execute("INSERT INTO feeds (user_id, name, tag, engine, `interval`, unit)"
                            " VALUES (%s, %s, %s, %s, %s, %s)",
                            (user_id, name, tag, engine, interval, unit))
                feed_id = cur.lastrowid
        except pymysql.err.IntegrityError as exc:
            if exc.args[0] == 1062:  # ER_DUP_ENTRY on (user_id, tag, name)
                existing = self.find(user_id, name, tag)
                raise FeedExists(tag, name, existing.id if existing else None) from None
            raise
        try:
            self._create_files(feed_id, interval)
        except BaseException:
            with self.db.cursor() as cur:
                cur.execute("DELETE FROM feeds WHERE id = %s", (feed_id,))
            raise
        return Feed(feed_id, user_id, name, tag, interval, unit, False, engine)

    def _create_files(self, feed_id: int, interval: int) -> None:
        # A crash during delete() can leave the files (and buffered points) of a feed whose
        # row is gone; its id may come back, and those leftovers belong to nobody.
        self.buffer.discard(feed_id)
        self.redis.delete(self._last_key(feed_id))
        try:
            self.engine.create(feed_id, interval)
        except common.FeedExists:
            log.warning("feed %s: removing files left by a deleted feed", feed_id)
            self.engine.delete(feed_id)
            self.engine.create(feed_id, interval)

    def get(self, feed_id: int) -> Feed:
        # SQL built only from the fixed _COLUMNS; values are bound parameters (bandit B608).
        return _row_to_feed(self.db.one(f"SELECT {_COLUMNS} FROM feeds WHERE id = %s",  # nosec B608
                                        (feed_id,), FeedNotFound(feed_id)))

    def get_owned(self, feed_id: int, user_id: int) -> Feed:
        """The feed if `user_id` owns it; NotOwner otherwise (whether public or not)."""
        feed = self.get(feed_id)
        if feed.user_id != user_id:
            raise NotOwner(feed)
        return feed

    def find(self, user_id: int, name: str, tag: str | None = None) -> Feed | None:
        """A user's feed by name (and tag when given; the lowest id if names repeat)."""
        # bandit B608: fixed columns.
        sql = f"SELECT {_COLUMNS} FROM feeds WHERE user_id = %s AND name = %s"  # nosec B608
        args: tuple = (user_id, name)
        if tag is not None:
            sql += " AND tag = %s"
            args += (tag,)
        with self.db.cursor() as cur:
            cur.execute(sql + " ORDER BY id LIMIT 1", args)
            row = cur.fetchone()
        return _row_to_feed(row) if row else None

    def feeds(self, user_id: int, public_only: bool = False) -> list[Feed]:
        # bandit B608: fixed columns.
        sql = f"SELECT {_COLUMNS} FROM feeds WHERE user_id = %s"  # nosec B608
        if public_only:
            sql += " AND public = TRUE"
        with self.db.cursor() as cur:
            cur.execute(sql + " ORDER BY id", (user_id,))
            return [_row_to_feed(row) for row in cur.fetchall()]

    def list(self, user_id: int, meta: bool = False, public_only: bool = False
             ) -> list[dict[str, Any]]:
        """emoncms feed/list: each feed with size, last time and value (and file meta)."""
        out = []
        for feed in self.feeds(user_id, public_only):
            row = feed.as_dict()
            last = self.last(feed.id)
            row["time"], row["value"] = last if last else (None, None)
            try:
                row["size"] = self.engine.size(feed.id)
                if meta:
                    row.update(self.meta(feed.id))
            except FeedError as exc:  # one broken feed must not hide the others
                log.error("feed %s: %s", feed.id, exc)
                row["size"] = None
                row["error"] = getattr(exc, "problem", str(exc))  # no file paths
            out.append(row)
        return out

    def update(self, feed_id: int, *, name: str | None = None, tag: str | None = None,
               unit: str | None = None, public: bool | None = None) -> Feed:
        feed = self.get(feed_id)
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = _check_name(name)
        if tag is not None:
            changes["tag"] = _check_tag(tag)
        if unit is not None:
            changes["unit"] = _check_unit(unit)
        if public is not None:
            if not isinstance(public, bool):
                raise InvalidFeed(f"public must be true or false, got {public!r}")
            changes["public"] = public
        if not changes:
            return feed
        assignments = ", ".join(f"{column} = %s" for column in changes)
        try:
            with self.db.cursor() as cur:
                # bandit B608: fixed columns.
                cur.execute(f"UPDATE feeds SET {assignments} WHERE id = %s",  # nosec B608
                            (*changes.values(), feed_id))
        except pymysql.err.IntegrityError as exc:
            if exc.args[0] == 1062:
                raise FeedExists(changes.get("tag", feed.tag),
                                 changes.get("name", feed.name)) from None
            raise
        return self.get(feed_id)

    def delete(self, feed_id: int) -> None:
        """Remove the row first: if we crash after it, the files are orphans that the next
        create() of that id clears, never a row pointing at missing files."""
        self.get(feed_id)
        with self.db.cursor() as cur:
            cur.execute("DELETE FROM feeds WHERE id = %s", (feed_id,))
        self.buffer.discard(feed_id)
        self.redis.delete(self._last_key(feed_id))
        try:
            self.engine.delete(feed_id)
        except common.FeedNotFound:
            log.warning("feed %s had no files to delete", feed_id)

    # -- writing -----------------------------------------------------------------------------

    def insert(self, feed_id: int, t: float, value: float, join: bool = False) -> None:
        """Queue one point; it is readable at once and on disk after the next flush."""
        self.insert_many(feed_id, [t], [value], join)

    def insert_many(self, feed_id: int, times: Sequence[float], values: Sequence[float],
                    join: bool = False) -> int:
        """Queue a batch (all points are checked first: one bad point rejects the batch)."""
        if len(times) != len(values):
            raise InvalidPoint(f"{len(times)} times but {len(values)} values")
        if not len(times):
            return 0
        if not self.engine.exists(feed_id):
            raise FeedNotFound(feed_id)
        import numpy as np  # loaded with the buffer anyway; see `engine`

        now = self.now()
        checked_t = np.array([_check_time(t, now) for t in times], dtype=np.float64)
        checked_v = np.array([_check_value(v) for v in values], dtype=np.float64)
        n = self.buffer.append_many(feed_id, checked_t, checked_v, "join" if join else None)
        latest = len(checked_t) - 1 - int(np.argmax(checked_t[::-1]))  # last given wins
        self._set_last(feed_id, int(checked_t[latest]), float(checked_v[latest]))
        return n

    def _set_last(self, feed_id: int, t: int, value: float) -> None:
        # One atomic round trip: web and worker may both write the same feed.
        self._set_last_script(keys=[self._last_key(feed_id)], args=[t, repr(value)])

    def store_profile(self, user_id: int, kind: str, start: float, interval: int,
                      values: Sequence[float | None]) -> Feed:
        """Store a daily profile {start, interval, values[]} in the user's `kind` feed.

        None values are gaps. The feed is created on first use with `interval`; a later
        profile with another interval is refused (a PHPFina feed has one interval).
        """
        if kind not in PROFILE_KINDS:
            raise InvalidProfile(f"profile kind must be one of {PROFILE_KINDS}, got {kind!r}")
        if isinstance(interval, bool) or not isinstance(interval, int) or not (
                1 <= interval <= 86400):
            raise InvalidProfile(f"interval must be an integer 1..86400 s, got {interval!r}")
        if not isinstance(values, (list, tuple)) or not 1 <= len(values) <= MAX_PROFILE_POINTS:
            raise InvalidProfile(f"values must be a list of 1..{MAX_PROFILE_POINTS} numbers")
        try:
            start = _check_time(start, self.now())
            _check_time(start + (len(values) - 1) * interval, self.now())
            points = [(start + i * interval, _check_value(v))
                      for i, v in enumerate(values) if v is not None]
        except InvalidPoint as exc:
            raise InvalidProfile(str(exc)) from None
        feed = self.find(user_id, kind, PROFILE_TAG)
        if feed is None:
            try:
                feed = self.create(user_id, kind, PROFILE_TAG, interval)
            except FeedExists:  # created by a concurrent call
                feed = self.find(user_id, kind, PROFILE_TAG)
                assert feed is not None
        if feed.interval != interval:
            raise InvalidProfile(f"{kind} profile has interval {interval} s but its feed "
                                 f"{feed.id} stores {feed.interval} s")
        if points:
            times, vals = zip(*points, strict=True)
            self.insert_many(feed.id, times, vals)
        return feed

    def flush(self) -> FlushStats:
        """Write every buffered point to disk, one block per feed (the worker's job). With
        nothing buffered, one EXISTS answers, without the flush lock and without loading the
        buffer and the engine (numpy): a worker that stores no feed never needs them."""
        if not self.redis.exists(common.buffer_active_key(self._buffer_prefix)):
            return common.FlushStats()
        return self.buffer.flush(self.engine)

    # -- reading -----------------------------------------------------------------------------

    def _pending(self, feed_id: int) -> dict[str, Any]:
        return {"pending": self.buffer.pending(feed_id),
                "padding_mode": self.buffer.padding_mode(feed_id)}

    def last(self, feed_id: int) -> tuple[int, float | None] | None:
        """(time, value) of the latest point, or None for a feed with no data."""
        cached = self.redis.hmget(self._last_key(feed_id), ["time", "value"])
        if cached[0] is not None:
            value = float(cached[1])
            return int(cached[0]), (None if math.isnan(value) else value)
        last = self.engine.timevalue(feed_id, **self._pending(feed_id))
        if last["time"] is None:
            return None
        value = math.nan if last["value"] is None else last["value"]
        self.redis.hset(self._last_key(feed_id),
                        mapping={"time": last["time"], "value": repr(value)})
        return last["time"], last["value"]

    def meta(self, feed_id: int) -> dict[str, int]:
        """{interval, start_time, npoints, end_time}, counting unflushed points."""
        pending = self._pending(feed_id)
        return self.engine.open_view(feed_id, pending["pending"],
                                     pending["padding_mode"]).meta.as_dict()

    def size(self, feed_id: int) -> int:
        return self.engine.size(feed_id)

    def value_at(self, feed_id: int, t: float) -> float | None:
        return self.engine.value_at(feed_id, t, **self._pending(feed_id))

    def data(self, feed_id: int, start: float, end: float, interval: int | str = 0,
             **opts: Any) -> list:
        """emoncms feed/data rows; `opts` are PHPFina.read's (average, timeformat, ...)."""
        return self.engine.read(feed_id, start, end, interval, **self._pending(feed_id),
                                **opts)

    def csv(self, feed_id: int, start: float, end: float, interval: int | str = 0,
            **opts: Any) -> Iterator[str]:
        """Single-feed CSV lines `time,value` (emoncms: unixms is shown as unix here)."""
        return self.engine.export_csv(feed_id, start, end, interval,
                                      **self._pending(feed_id), **opts)

    def csv_multi(self, feeds: Sequence[Feed], start: float, end: float,
                  interval: int | str, averages: Sequence[bool], timeformat: str = "unixms",
                  timezone: str = "UTC", **opts: Any) -> Iterator[str]:
        """Multi-feed CSV: a header `time,<tag:name>...` then one row per time of any feed."""
        columns: list[dict] = []
        for feed, average in zip(feeds, averages, strict=True):
            rows = self.data(feed.id, start, end, interval, average=average, timezone=timezone,
                             timeformat="unix", **opts)
            columns.append(dict(rows))
        times = sorted(set().union(*columns))
        labels = [f"{f.tag}:{f.name}" if f.tag else f.name for f in feeds]
        fmt = "unix" if timeformat == "notime" else timeformat
        from hub.feed.phpfina import format_rows

        shown = [row[0] for row in format_rows(times, times, fmt, timezone)]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["time", *labels])
        yield _take(buf)
        for t, label in zip(times, shown, strict=True):
            writer.writerow([label, *("null" if col.get(t) is None
                                      else f"{col[t]:.{CSV_DECIMALS}f}" for col in columns)])
            if buf.tell() > 65536:
                yield _take(buf)
        yield _take(buf)

    def export(self, feed_id: int, start_byte: int = 0) -> tuple[int, Iterator[bytes]]:
        """(byte count, chunks) of the .dat file from `start_byte` as emoncms feed/export:
        rounded down to a whole point, minus one point. Flushed data only."""
        meta = self.engine.get_meta(feed_id)
        offset = max(0, int(start_byte) // common.VALUE_SIZE * common.VALUE_SIZE)
        if offset >= common.VALUE_SIZE:
            offset -= common.VALUE_SIZE
        length = max(0, meta.npoints * common.VALUE_SIZE - offset)
        return length, _limit(self.engine.export_dat(feed_id, start_byte), length)


def _take(buf: io.StringIO) -> str:
    text = buf.getvalue()
    buf.seek(0)
    buf.truncate()
    return text


def _limit(chunks: Iterator[bytes], length: int) -> Iterator[bytes]:
    """At most `length` bytes: a flush may grow the file while we stream it."""
    for chunk in chunks:
        if length <= 0:
            break
        yield chunk[:length]
        length -= len(chunk)
