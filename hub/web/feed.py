"""Feed routes, emoncms-compatible (`feed/<action>.json`).

Access (one helper, `_access`):
- Your own feeds: read routes with a read key, write key or session; write routes with the
  write key or a session.
- Another user's public feed: readable by anyone, even without a key; writing it is 403.
- Another user's private feed answers 404, exactly like a feed that does not exist, so feed
  ids of other households do not leak. Anonymous callers get 401 for any feed that is not
  public (existing or not), for the same reason.
- Writes by GET are accepted with an apikey (emoncms tools create and post by GET) but not
  with a session cookie: a cookie rides along on cross-site links, so a session writes by POST
  (`requires` in api.py enforces this for every write route).

Differences from emoncms, on purpose: errors are HTTP statuses (400 bad parameter, 401, 403,
404, 409 duplicate name) with `{"success": false, "message"}`; `start`/`end` are unix seconds
(or milliseconds), not date strings; `feed/post.json` always goes through the write buffer,
and answers `{"success": true, "points": n}`.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

import bottle
from bottle import response

from hub.feed import common as phpfina  # the engine's errors and limits, without numpy
from hub.feed import store as model
from hub.feed.common import FeedBufferError
from hub.web.api import (
    MAX_INT,
    ApiError,
    auth,
    ctx,
    ok,
    param,
    param_float,
    param_int,
    param_json,
    param_time,
    requires,
)

log = logging.getLogger(__name__)

TIME_FORMATS = phpfina.TIME_FORMATS
NAMED_INTERVALS = ("original", *phpfina.CALENDAR_INTERVALS)
SETTABLE_FIELDS = ("name", "tag", "unit", "public")
MAX_IDS = 100  # feeds in one data/fetch request
MAX_INTERVAL = 10 * 366 * 86400  # a numeric read interval longer than ten years is a mistake


def _fail(exc: Exception) -> ApiError:
    if isinstance(exc, phpfina.FeedNotFound):
        return ApiError(404, str(exc))
    if isinstance(exc, model.FeedExists):
        return ApiError(409, str(exc))
    if isinstance(exc, phpfina.CorruptFeed):
        log.error("%s", exc)
        return ApiError(500, "the feed's files are damaged; the hub log has the details")
    return ApiError(400, str(exc))


def _errors(handler: Callable) -> Callable:
    """Turn model errors into JSON answers with the right status."""

    @functools.wraps(handler)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except (phpfina.FeedError, FeedBufferError) as exc:
            raise _fail(exc) from None

    return wrapped


def readable(handler: Callable) -> Callable:
    """A read route: a read key or better for your feeds; anyone for public feeds (the
    per-feed check is `_access`). The OpenAPI document marks these `x-public-feeds`."""
    guarded = requires("anonymous")(_errors(handler))
    guarded.public_feeds = True
    return guarded


def writable(handler: Callable) -> Callable:
    """A write route: the write key or a session; GET only with an apikey (see module)."""
    return requires("write")(_errors(handler))


# -- access ---------------------------------------------------------------------------------

def _access(feed_id: int, write: bool = False) -> model.Feed:
    """The one owner check: the feed, or the ApiError that the caller deserves."""
    current = auth()
    try:
        feed = ctx().feeds.get(feed_id)
    except model.FeedNotFound:
        feed = None
    if feed is not None and current.user_id is not None and feed.user_id == current.user_id:
        if write and ctx().sync.is_mirrored(feed.id):
            raise ApiError(403, f"feed {feed.id} mirrors the server (sync): it is read-only")
        return feed
    if feed is not None and feed.public and not write:
        return feed
    if current.level == "anonymous":
        raise ApiError(401, f"feed {feed_id} is not public: log in or pass an apikey")
    if feed is not None and feed.public:
        raise ApiError(403, f"feed {feed_id} belongs to another user; its public view is "
                            f"read-only")
    raise ApiError(404, f"feed {feed_id} does not exist")


def _feed(write: bool = False) -> model.Feed:
    return _access(param_int("id", minimum=1), write)


def _ids(name: str = "ids") -> list[int]:
    text = param(name)
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
        if any(i > MAX_INT for i in ids):
            raise ValueError
    except ValueError:
        raise ApiError(400, f"parameter '{name}' must be comma-separated feed ids, "
                            f"got {text!r}") from None
    if not ids or len(ids) > MAX_IDS or min(ids) < 1:
        raise ApiError(400, f"parameter '{name}' must list 1 to {MAX_IDS} positive feed ids")
    return ids


def _flag(name: str, default: bool = False) -> bool:
    text = param(name, None)
    if text is None:
        return default
    value = text.strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no", ""):
        return False
    raise ApiError(400, f"parameter '{name}' must be 0 or 1, got {text!r}")


def _json_scalar(value: Any) -> str:
    response.content_type = "application/json"
    return json.dumps(value, allow_nan=False)


def _first_then_rest(chunks: Iterator) -> Iterator:
    """Run a streaming answer up to its first chunk here, so errors still become JSON."""
    try:
        first = next(chunks)
    except StopIteration:
        return iter(())
    except (phpfina.FeedError, FeedBufferError) as exc:
        raise _fail(exc) from None
    return itertools.chain([first], chunks)


# -- metadata routes ----------------------------------------------------------------------

@readable
def list_feeds():
    """Your feeds, or another user's public feeds with `userid` (no key needed)."""
    current = auth()
    userid = param_int("userid", None, minimum=1)
    meta = _flag("meta")
    if userid is not None and userid != current.user_id:
        return ctx().feeds.list(userid, meta=meta, public_only=True)
    if current.user_id is None:
        raise ApiError(401, "log in or pass an apikey, or give 'userid' for public feeds")
    return ctx().feeds.list(current.user_id, meta=meta)


@writable
def create_feed():
    options = param_json("options", {})
    if not isinstance(options, dict):
        raise ApiError(400, "parameter 'options' must be a JSON object like {\"interval\":10}")
    interval = options.get("interval", model.DEFAULT_INTERVAL)
    if isinstance(interval, str) and interval.strip().isdigit():
        interval = int(interval)
    unknown = set(options) - {"interval"}
    if unknown:
        raise ApiError(400, f"unknown options {sorted(unknown)}: PHPFina takes only 'interval'")
    engine = param_int("engine", model.ENGINE_PHPFINA)
    feed = ctx().feeds.create(auth().user_id, param("name"), tag=param("tag", ""),
                              interval=interval, unit=param("unit", ""), engine=engine)
    return ok(feedid=feed.id, result=True)


@readable
def get_feed():
    """The feed's fields, or one of them with `field`."""
    feed = _feed()
    row = feed.as_dict()
    last = ctx().feeds.last(feed.id)
    row["time"], row["value"] = last if last else (None, None)
    row["size"] = ctx().feeds.size(feed.id)
    field = param("field", None)
    if field is None:
        return row
    if field not in row:
        raise ApiError(400, f"parameter 'field' must be one of {sorted(row)}, got {field!r}")
    return _json_scalar(row[field])


@readable
def get_meta():
    return ctx().feeds.meta(_feed().id)


@requires("read")
@_errors
def get_id():
    """The id of your feed called `name` (and `tag`, when given)."""
    feed = ctx().feeds.find(auth().user_id, param("name"), param("tag", None))
    if feed is None:
        raise ApiError(404, f"you have no feed named {param('name')!r}")
    return _json_scalar(feed.id)


@writable
def set_feed():
    """Change name, tag, unit or public: fields={"name": "...", "public": true}."""
    feed = _feed(write=True)
    fields = param_json("fields")
    if not isinstance(fields, dict) or not fields:
        raise ApiError(400, "parameter 'fields' must be a non-empty JSON object")
    unknown = set(fields) - set(SETTABLE_FIELDS)
    if unknown:
        raise ApiError(400, f"fields {sorted(unknown)} cannot be set; settable: "
                            f"{list(SETTABLE_FIELDS)}")
    public = fields.get("public")
    if public in (0, 1, "0", "1") and not isinstance(public, bool):
        public = bool(int(public))
    for name in ("name", "tag", "unit"):
        if name in fields and not isinstance(fields[name], str):
            raise ApiError(400, f"field '{name}' must be a string")
    updated = ctx().feeds.update(feed.id, name=fields.get("name"), tag=fields.get("tag"),
                                 unit=fields.get("unit"), public=public)
    return ok(message="feed updated", feed=updated.as_dict())


@writable
def delete_feed():
    feed = _feed(write=True)
    ctx().feeds.delete(feed.id)
    return ok(message=f"feed {feed.id} deleted")


# -- values ---------------------------------------------------------------------------------

@readable
def value():
    """Last value (from the Redis cache), or the value at `time`."""
    feed = _feed()
    if param("time", None) is not None:
        return _json_scalar(ctx().feeds.value_at(feed.id, param_time("time")))
    last = ctx().feeds.last(feed.id)
    return _json_scalar(last[1] if last else None)


@readable
def timevalue():
    last = ctx().feeds.last(_feed().id)
    return {"time": last[0], "value": last[1]} if last else {"time": None, "value": None}


@readable
def fetch():
    """Last values of several feeds; `false` for a feed that is missing or not readable."""
    values: list[Any] = []
    for feed_id in _ids():
        try:
            feed = _access(feed_id)
        except ApiError:
            values.append(False)
            continue
        last = ctx().feeds.last(feed.id)
        values.append(last[1] if last else None)
    return values


# -- data -----------------------------------------------------------------------------------

def _interval() -> int | str:
    text = param("interval", None)
    if text is None:
        text = param("mode", "0")  # emoncms' legacy name for calendar intervals
    text = text.strip()
    if text in NAMED_INTERVALS:
        return text
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number != int(number) or not 0 <= number <= MAX_INTERVAL:
        raise ApiError(400, f"parameter 'interval' must be whole seconds from 0 (about 800 "
                            f"points) to {MAX_INTERVAL}, or one of {list(NAMED_INTERVALS)}, "
                            f"got {text[:40]!r}")
    return int(number)


def _timezone(owner_id: int) -> str:
    text = param("timezone", None)
    if text is not None:
        return text
    user_id = auth().user_id or owner_id
    return ctx().users.get(user_id).timezone


def _averages(count: int) -> list[bool]:
    text = param("average", "0")
    parts = [part.strip() for part in text.split(",")]
    if any(part not in ("0", "1") for part in parts) or len(parts) not in (1, count):
        raise ApiError(400, f"parameter 'average' must be 0, 1, or one 0/1 per feed "
                            f"({count}), got {text!r}")
    return [part == "1" for part in (parts * count if len(parts) == 1 else parts)]


def _read_data(average_route: bool = False, csv_route: bool = False):
    multi = param("ids", None) is not None
    feeds = [_access(i) for i in _ids()] if multi else [_feed()]
    start, end = param_time("start"), param_time("end")
    interval = _interval()
    averages = [True] * len(feeds) if average_route else _averages(len(feeds))
    timeformat = param("timeformat", "unixms")
    if timeformat not in TIME_FORMATS:
        raise ApiError(400, f"parameter 'timeformat' must be one of {list(TIME_FORMATS)}, "
                            f"got {timeformat!r}")
    opts = {"timezone": _timezone(feeds[0].user_id), "skipmissing": _flag("skipmissing"),
            "limitinterval": _flag("limitinterval"), "delta": _flag("delta"),
            "timeformat": timeformat}
    dp = param_int("dp", None, minimum=0, maximum=15)
    store = ctx().feeds
    if csv_route or _flag("csv"):
        _check_csv_rows(feeds, start, end, interval)
        response.content_type = "text/csv; charset=utf-8"
        if multi:
            name = "feeds"
            chunks = store.csv_multi(feeds, start, end, interval, averages, **opts)
        else:
            name = str(feeds[0].id)
            chunks = store.csv(feeds[0].id, start, end, interval, average=averages[0], **opts)
        response.set_header("Content-Disposition", f"attachment; filename={name}.csv")
        return _first_then_rest(chunks)
    if not multi:
        return store.data(feeds[0].id, start, end, interval, average=averages[0], dp=dp, **opts)
    return [{"feedid": feed.id,
             "data": store.data(feed.id, start, end, interval, average=average, dp=dp, **opts)}
            for feed, average in zip(feeds, averages, strict=True)]


@readable
def data():
    """Values between `start` and `end` (id or ids), averaged or sampled, JSON or CSV."""
    return _read_data()


@readable
def average():
    return _read_data(average_route=True)


def _seconds(t: float) -> float:
    return t / 1000 if t > 1e11 else t  # as phpfina: above 1e11 means milliseconds


def _check_csv_rows(feeds: list[model.Feed], start: float, end: float,
                    interval: int | str) -> None:
    """The CSV answer is built in memory, so refuse (400) a request for more rows than
    `csv_max_points` before reading anything, as feed/data.json refuses more than 20,000."""
    span = max(0.0, _seconds(end) - _seconds(start))
    if interval == 0:
        rows = phpfina.DEFAULT_DIVISIONS
    elif isinstance(interval, int):
        rows = span / interval
    elif interval == "original":
        rows = span / min(f.interval for f in feeds)
    else:  # calendar intervals: one row per day at most
        rows = span / 86400
    cap = ctx().config.csv_max_points
    if rows > cap:
        raise ApiError(400, f"that export has about {int(rows)} rows; at most {cap} per "
                            "request: ask for a shorter range or a longer interval")


@readable
def csvexport():
    """CSV of `start`..`end` at `interval`. Capped, not streamed from disk: the rows are read
    into memory first, so a request for more than `csv_max_points` rows answers 400."""
    return _read_data(csv_route=True)


@readable
def export():
    """The raw PHPFina .dat bytes from byte offset `start` (re-sending one point), as emoncms
    backup/sync expect. Only flushed data: points still in the buffer are not in the file."""
    feed = _feed()
    length, chunks = ctx().feeds.export(feed.id, param_int("start", 0, minimum=0))
    response.content_type = "application/octet-stream"
    response.set_header("Content-Length", str(length))
    response.set_header("Content-Disposition", f"attachment; filename={feed.id}.dat")
    return chunks if length else b""


# -- writes ---------------------------------------------------------------------------------

def _points() -> tuple[list[float], list[float]]:
    if param("data", None) is not None:
        rows = param_json("data")
        if not isinstance(rows, list) or not rows:
            raise ApiError(400, "parameter 'data' must be a non-empty JSON list of [time, "
                                "value] pairs")
        if not all(isinstance(r, list) and len(r) == 2 for r in rows):
            raise ApiError(400, "every item of 'data' must be a [time, value] pair")
        return [r[0] for r in rows], [r[1] for r in rows]
    value = param_float("value")
    t = param_time("time", None)
    return [ctx().feeds.now() if t is None else t], [value]


@writable
def post():
    """One point (`time`, `value`; time defaults to now) or many (`data`=[[t,v],...]);
    `join=join` fills the gap before them by linear interpolation."""
    feed = _feed(write=True)
    times, values = _points()
    join_text = param("join", "0").strip().lower()
    if join_text not in ("join", "1", "true", "0", "false", ""):
        raise ApiError(400, f"parameter 'join' must be 'join' (or 1) to interpolate the gap, "
                            f"or 0, got {join_text!r}")
    join = join_text in ("join", "1", "true")
    count = ctx().feeds.insert_many(feed.id, times, values, join=join)
    return ok(points=count)


def register(app: bottle.Bottle) -> None:
    read, write = "GET", ["GET", "POST"]
    app.route("/feed/list.json", read, list_feeds)
    app.route("/feed/create.json", write, create_feed)
    app.route("/feed/get.json", read, get_feed)
    app.route("/feed/aget.json", read, get_feed)
    app.route("/feed/getmeta.json", read, get_meta)
    app.route("/feed/getid.json", read, get_id)
    app.route("/feed/set.json", write, set_feed)
    app.route("/feed/delete.json", write, delete_feed)
    app.route("/feed/value.json", read, value)
    app.route("/feed/timevalue.json", read, timevalue)
    app.route("/feed/fetch.json", read, fetch)
    app.route("/feed/data.json", read, data)
    app.route("/feed/average.json", read, average)
    app.route("/feed/csvexport.json", read, csvexport)
    app.route("/feed/export.json", read, export)
    for path in ("/feed/post.json", "/feed/insert.json", "/feed/update.json"):
        app.route(path, write, post)
