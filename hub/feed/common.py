"""What the feed modules share that needs no numpy: the errors, the limits and names a
caller validates against, and the .dat value size.

`hub web` imports the feed store for routes that never read a feed (health, inputs,
accounts); importing the engine (hub.feed.phpfina, numpy) only when a feed is read or
written keeps ~12 MB of numpy out of such a process (issue 12). phpfina and buffer
re-export these names, so `phpfina.FeedError` and the rest stay the same objects.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

MIN_INTERVAL = 1  # smallest feed interval accepted by create() (emoncms min_feed_interval)
MAX_INTERVAL = 366 * 86400  # largest feed interval accepted by create()
MAX_FUTURE_SECONDS = 7 * 86400  # points further ahead of now are dropped (forecasts fit)
DEFAULT_DIVISIONS = 800  # interval < 1 in a read means (end - start) / DEFAULT_DIVISIONS
CSV_DECIMALS = 2  # emoncms csv_decimal_places
VALUE_SIZE = 4  # one little-endian float32 per slot in the .dat
FLOAT32_MAX = 3.4028234663852886e38  # largest finite float32: larger values would be inf

CALENDAR_INTERVALS = ("daily", "weekly", "monthly", "annual")
TIME_FORMATS = ("unix", "unixms", "excel", "iso8601", "notime")


# --- engine errors -------------------------------------------------------------------------
class FeedError(Exception):
    """Base of every error raised by the feed engine (hub.feed.phpfina)."""


class FeedNotFound(FeedError):
    def __init__(self, feed_id: int):
        super().__init__(f"feed {feed_id} does not exist (no {feed_id}.meta)")
        self.feed_id = feed_id


class FeedExists(FeedError):
    def __init__(self, feed_id: int):
        super().__init__(f"feed {feed_id} already exists; delete it first")
        self.feed_id = feed_id


class InvalidInterval(FeedError):
    pass


class TimestampOutOfRange(FeedError):
    pass


class InvalidReadRequest(FeedError):
    pass


class CorruptFeed(FeedError):
    def __init__(self, path: str, problem: str):
        super().__init__(f"corrupt feed file {path}: {problem}")
        self.path = path
        self.problem = problem


# --- buffer errors -------------------------------------------------------------------------
class FeedBufferError(Exception):
    """Base of the errors raised by the feed buffer (hub.feed.buffer)."""


class InvalidPoints(FeedBufferError):
    pass


def _is_integer(value: object) -> bool:
    # numbers.Integral covers int and numpy's integer types without importing numpy; the ABC
    # check is slower, so plain ints (nearly every call) skip it.
    return type(value) is int or (isinstance(value, numbers.Integral)
                                  and not isinstance(value, bool))


def check_feed_id(feed_id: int, error: type[Exception] = FeedError) -> int:
    """A feed id as int; `error` (the caller's error family) unless a positive integer."""
    if not _is_integer(feed_id) or feed_id < 1:
        raise error(f"feed id must be a positive integer, got {feed_id!r}")
    return int(feed_id)


def validate_interval(interval, min_interval: int) -> int:
    """Rules for a feed interval: 1. an integer; 2. >= min_interval; 3. <= MAX_INTERVAL."""
    if not _is_integer(interval):
        raise InvalidInterval(f"interval must be an integer number of seconds, got {interval!r}")
    if interval < min_interval:
        raise InvalidInterval(f"interval {interval} s is below the minimum {min_interval} s")
    if interval > MAX_INTERVAL:
        raise InvalidInterval(f"interval {interval} s is above the maximum {MAX_INTERVAL} s")
    return int(interval)


# --- the Redis buffer (hub.feed.buffer) ----------------------------------------------------
def buffer_active_key(prefix: str) -> str:
    """The Redis set of feeds with buffered points: empty when there is nothing to flush."""
    return prefix + "active"


@dataclass
class FlushStats:
    feeds: int = 0  # feeds written
    points: int = 0  # buffered points taken out of Redis and handed to the engine
    bytes: int = 0  # bytes the engine wrote to files
    seconds: float = 0.0
    dropped: dict[str, int] = field(default_factory=dict)  # engine's reasons -> points
    discarded: dict[int, int] = field(default_factory=dict)  # feed gone -> points thrown away
    errors: dict[int, str] = field(default_factory=dict)  # feed -> error; points kept

    def as_dict(self) -> dict:
        return {"feeds": self.feeds, "points": self.points, "bytes": self.bytes,
                "seconds": round(self.seconds, 6), "dropped": self.dropped,
                "discarded": self.discarded, "errors": self.errors}
