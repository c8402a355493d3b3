"""Meter readings in every emoncms form, parsed as hostile input (a pure library: no I/O).

Parsing turns a message into `NodePost`s (node, time, {name: value}); `InputStore.ingest`
stores and processes them (hub.worker.ingest for MQTT, hub.web.input for HTTP). Nothing here
trusts its input: every form has limits and a bad message raises an `IngestError` subclass
naming what is wrong.

MQTT forms (base topic `emon`, setting `mqtt_base_topic`), as emoncms_mqtt reads them:

    emon/<node>/<key>[/<more>]  12.5            input <key>[_<more>], receive time
    emon/<node>               12,13,14          inputs "0", "1", "2" (0-based, as emoncms)
    emon/<node>               {"power": 10, "time": 1700000000}   one input per key
    emon/<node>/<sub>         {"power": 10}     input "sub_power"
    emon/<node>               {"power": {"name": "ct1", "value": 10}}   input "power_ct1"

Device traffic under `emon/` (describe, EmonESP in/out, OpenEVSE control topics) is routed to
the device service by the worker and never parsed here (hub/worker/device/topics.py).

HTTP forms (input/post, input/bulk): `fulljson=` (JSON object, optional "time" key), the
legacy `json=` / `csv=` / `data=` text ("a:1,b:2" or "1,2,3", bare values named "1", "2", …),
`time=` (unix seconds or ISO 8601), and `input/bulk` `data=[[t, node, v1, {"name": v}, …], …]`
with `sentat=`, `offset=` or `time=` as the time reference.

Differences from emoncms, on purpose: invalid numbers, NaN/Infinity, `null`, nested objects,
bad names or times are rejected with a message instead of being cast to 0 or to "now", and
names are checked rather than silently stripped of characters. Values beyond ±3.4e38 (what a
feed's float32 can hold; emoncms would store inf) are rejected too.

Profile topics (JSON `{"start": unix s, "interval": s, "values": [number|null, …]}`), stored
through `FeedStore.store_profile(user, kind, start, interval, values)`:

    cydynni/profile/hydro          hydro generation forecast
    cydynni/profile/community      community demand / generation profile
    cydynni/profile/demandshaper   demand-shaper signal
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hub.names import PROFILE_KINDS, PROFILE_TOPIC_ROOT

# --- limits ---------------------------------------------------------------------------------
MAX_NAME_CHARS = 64  # the inputs table columns are VARCHAR(64)
MAX_MAGNITUDE = 3.4028234663852886e38  # float32 max: feeds store float32, larger would be inf
MAX_INPUTS_PER_POST = 128  # an emonPi2 sends ~40; more is a runaway or an attack
MAX_BULK_ROWS = 10_000
MAX_PAYLOAD_BYTES = 64 * 1024  # one MQTT message
MAX_FUTURE_S = 24 * 3600  # device clocks may be a little ahead; a day ahead is a bug
MAX_AGE_S = 366 * 24 * 3600  # backfill up to a year; older would pad feeds with years of gaps
PROFILE_MAX_VALUES = 2 * 24 * 60  # two days of minutes
PROFILE_MAX_AHEAD_S = 7 * 24 * 3600

# Unicode letters and digits, "_", "-", "." and inner spaces (emoncms' \p{N}\p{L}_\s\-.).
_NAME = re.compile(r"^[\w\-.]+(?: +[\w\-.]+)*$")
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
# emoncms strips legacy json/csv to these characters before splitting on "," and ":".
_LEGACY_STRIP = re.compile(r"[^\w\s\-.:,+]")


class IngestError(ValueError):
    """Base of every rejected reading; the message says what to fix. `counter` names the
    worker counter (hash `worker:stats`) that counts it, `count` by how much."""

    counter = "bad_payloads"
    count = 1


class BadPayload(IngestError):
    """The message body is not one of the accepted forms."""


class BadName(IngestError):
    """A node or input name is empty, too long or has characters outside the allowed set."""


class BadValue(IngestError):
    """A value is not a finite number."""


class BadTime(IngestError):
    """A timestamp is not a number/ISO date, or is too far in the future or the past."""


class TooMany(IngestError):
    """A post carries more inputs (or a bulk more rows) than allowed."""


class NotStored(IngestError):
    """Readings were taken as input values, but some feed points of their process lists
    could not be written (a deleted feed, a value a feed cannot hold, a full disk …)."""

    counter = "points_not_stored"

    def __init__(self, message: str, count: int) -> None:
        super().__init__(message)
        self.count = count


@dataclass(frozen=True)
class NodePost:
    """The readings of one node at one time, in arrival order."""

    node: str
    time: int
    values: dict[str, float] = field(default_factory=dict)


# --- field checks ---------------------------------------------------------------------------

def check_name(name: object, what: str = "input name") -> str:
    text = str(name) if isinstance(name, int) and not isinstance(name, bool) else name
    if not isinstance(text, str):
        raise BadName(f"{what} must be text, got {type(name).__name__}")
    if not text:
        raise BadName(f"{what} is empty")
    if len(text) > MAX_NAME_CHARS:
        raise BadName(f"{what} {text[:20]!r}… is longer than {MAX_NAME_CHARS} characters")
    if not _NAME.match(text):
        raise BadName(f"{what} {text!r} may only hold letters, digits, '_', '-', '.' and "
                      "inner spaces")
    return text


def check_value(value: object, name: str) -> float:
    """A finite float from a JSON number, a numeric string or a boolean."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            raise BadValue(f"value of {name!r} is out of range") from None
    elif isinstance(value, str) and _NUMBER.match(value.strip()):
        number = float(value.strip())
    else:
        shown = "null" if value is None else repr(value)[:40]
        raise BadValue(f"value of {name!r} must be a number, got {shown}")
    if not math.isfinite(number):
        raise BadValue(f"value of {name!r} must be finite, got {number}")
    if abs(number) > MAX_MAGNITUDE:
        raise BadValue(f"value of {name!r} is {number:g}, beyond what a feed can store "
                       f"(±{MAX_MAGNITUDE:.4g})")
    return number


def check_time(value: object, now: float, what: str = "time") -> int:
    """Unix seconds from a number, numeric string or ISO 8601 text, within the allowed window."""
    if isinstance(value, bool):
        raise BadTime(f"{what} must be unix seconds or an ISO 8601 date, got {value!r}")
    if isinstance(value, str) and not _NUMBER.match(value.strip()):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise BadTime(f"{what} {value[:40]!r} is neither unix seconds nor an ISO 8601 "
                          "date") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        seconds = parsed.timestamp()
    else:
        try:
            seconds = check_value(value, what)
        except BadValue as exc:
            raise BadTime(str(exc)) from None
    if seconds > now + MAX_FUTURE_S:
        raise BadTime(f"{what} {int(seconds)} is more than {MAX_FUTURE_S // 3600} h in the "
                      "future; check the device clock")
    if seconds < now - MAX_AGE_S:
        raise BadTime(f"{what} {int(seconds)} is more than {MAX_AGE_S // 86400} days in the "
                      "past")
    return int(seconds)


def _check_count(count: int) -> None:
    if count > MAX_INPUTS_PER_POST:
        raise TooMany(f"{count} inputs in one post; at most {MAX_INPUTS_PER_POST} allowed")


def _json(text: str | bytes, what: str) -> Any:
    def no_constants(name: str) -> None:
        raise BadValue(f"{what}: {name} is not a number")

    try:
        return json.loads(text, parse_constant=no_constants)
    except IngestError:
        raise
    except (ValueError, RecursionError) as exc:
        raise BadPayload(f"{what} is not valid JSON: {str(exc)[:80]}") from None


def _take_time(obj: dict[str, Any], now: float) -> int | None:
    """Remove the case-insensitive "time" key (emoncms) and return it checked."""
    keys = [k for k in obj if isinstance(k, str) and k.lower() == "time"]
    if not keys:
        return None
    value = obj.pop(keys[0])
    for extra in keys[1:]:
        obj.pop(extra)
    return check_time(value, now)


def _named_values(obj: dict[str, Any], prefix: str = "") -> dict[str, float]:
    values: dict[str, float] = {}
    for key, raw in obj.items():
        name = f"{prefix}{key}"
        if isinstance(raw, dict):  # boxed form {"power": {"name": "ct1", "value": 10}}
            if "value" not in raw or set(raw) - {"name", "value"}:
                raise BadPayload(f"{name!r}: nested objects are only accepted as "
                                 '{"name": ..., "value": ...}')
            if "name" in raw:
                name = f"{name}_{raw['name']}"
            raw = raw["value"]
        elif isinstance(raw, list):
            raise BadPayload(f"{name!r}: lists are not accepted as input values")
        values[check_name(name)] = check_value(raw, name)
    _check_count(len(values))
    return values


# --- MQTT -----------------------------------------------------------------------------------

def parse_mqtt(topic: str, payload: bytes, base: str = "emon",
               now: float | None = None) -> list[NodePost]:
    """One `emon/...` message → posts. Raises IngestError naming what is wrong."""
    now = time.time() if now is None else now
    parts = topic.replace(":", "").split("/")
    if len(parts) < 2 or parts[0] != base:
        raise BadPayload(f"topic {topic[:80]!r} is not {base}/<node>[/<key>]")
    node = check_name(parts[1], "node")
    keys = parts[2:]
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise BadPayload(f"payload of {len(payload)} bytes is over {MAX_PAYLOAD_BYTES}")
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise BadPayload("payload is not UTF-8 text") from None
    if not text:
        raise BadPayload(f"empty payload on {topic[:80]!r}")
    prefix = "_".join(keys)
    if text[0] in "{[":
        doc = _json(text, "payload")
        if isinstance(doc, list):
            doc = {str(i): v for i, v in enumerate(doc)}
        t = _take_time(doc, now)
        values = _named_values(doc, f"{prefix}_" if prefix else "")
        if not values:
            raise BadPayload("JSON payload has no inputs")
        return [NodePost(node, int(now) if t is None else t, values)]
    if prefix:
        return [NodePost(node, int(now), {check_name(prefix): check_value(text, prefix)})]
    items = text.split(",")
    _check_count(len(items))
    return [NodePost(node, int(now),
                     {str(i): check_value(item, str(i)) for i, item in enumerate(items)})]


@dataclass(frozen=True)
class Profile:
    kind: str
    start: int
    interval: int
    values: list[float | None]


def parse_profile(topic: str, payload: bytes, now: float | None = None) -> Profile:
    """`cydynni/profile/<kind>` with {start, interval, values[]}; values may hold nulls (gaps)."""
    now = time.time() if now is None else now
    kind = topic[len(PROFILE_TOPIC_ROOT) + 1:] if topic.startswith(PROFILE_TOPIC_ROOT + "/") \
        else ""
    if kind not in PROFILE_KINDS:
        raise BadPayload(f"unknown profile topic {topic[:80]!r}; use "
                         f"{PROFILE_TOPIC_ROOT}/<{'|'.join(PROFILE_KINDS)}>")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise BadPayload(f"profile of {len(payload)} bytes is over {MAX_PAYLOAD_BYTES}")
    doc = _json(payload, "profile")
    if not isinstance(doc, dict) or set(doc) != {"start", "interval", "values"}:
        raise BadPayload('profile must be exactly {"start": …, "interval": …, "values": […]}')
    interval = doc["interval"]
    if isinstance(interval, bool) or not isinstance(interval, int) or not 60 <= interval <= 86400:
        raise BadPayload(f"profile interval must be whole seconds from 60 to 86400, got "
                         f"{interval!r}")
    start = check_time(doc["start"], now, "profile start")
    if start > now + PROFILE_MAX_AHEAD_S:
        raise BadTime(f"profile start is more than {PROFILE_MAX_AHEAD_S // 86400} days ahead")
    values = doc["values"]
    if not isinstance(values, list) or not 1 <= len(values) <= PROFILE_MAX_VALUES:
        raise BadPayload(f"profile values must be a list of 1 to {PROFILE_MAX_VALUES} numbers")
    checked = [None if v is None else check_value(v, f"values[{i}]")
               for i, v in enumerate(values)]
    return Profile(kind, start, interval, checked)


# --- HTTP -----------------------------------------------------------------------------------

def parse_fulljson(text: str, node: str, t: int | None, now: float) -> NodePost:
    doc = _json(text, "fulljson")
    if not isinstance(doc, dict):
        raise BadPayload('fulljson must be an object such as {"power": 100}')
    for key, value in doc.items():
        if isinstance(value, (dict, list)):
            raise BadPayload(f"fulljson value of {key!r} is nested; send plain numbers")
    in_body = _take_time(doc, now)
    values = _named_values(doc)
    if not values:
        raise BadPayload("fulljson has no inputs")
    return NodePost(node, t if t is not None else (in_body or int(now)), values)


def parse_legacy(text: str, node: str, t: int | None, now: float, what: str) -> NodePost:
    """emoncms' `json=`/`csv=`/`data=`: "a:1,b:2" or "1,2,3" (bare values named from 1)."""
    items = [item for item in _LEGACY_STRIP.sub("", text).split(",") if item.strip()]
    if not items:
        raise BadPayload(f"{what} has no values")
    _check_count(len(items))
    values: dict[str, float] = {}
    for index, item in enumerate(items, start=1):
        pair = item.split(":")
        if len(pair) == 1:
            name, raw = str(index), pair[0]
        elif len(pair) == 2:
            name, raw = pair[0].strip(), pair[1]
        else:
            raise BadPayload(f"{what}: format error at {item[:40]!r}; use name:value")
        if name.lower() == "time" and len(pair) == 2:
            if t is None:
                t = check_time(raw.strip(), now)
            continue
        values[check_name(name)] = check_value(raw, name)
    if not values:
        raise BadPayload(f"{what} has no inputs")
    return NodePost(node, int(now) if t is None else t, values)


def parse_post(params: dict[str, str], node: str | None = None,
               now: float | None = None) -> NodePost:
    """`input/post`: the request parameters (GET and POST merged) → one node post."""
    now = time.time() if now is None else now
    node = check_name(node if node is not None else (params.get("node") or "0"), "node")
    t = check_time(params["time"], now) if params.get("time") not in (None, "") else None
    if "fulljson" in params:
        return parse_fulljson(params["fulljson"], node, t, now)
    for form in ("json", "csv", "data"):
        if form in params:
            return parse_legacy(params[form], node, t, now, form)
    raise BadPayload("send the readings as fulljson=, json=, csv= or data=")


def parse_bulk(data: str, params: dict[str, str], now: float | None = None) -> list[NodePost]:
    """`input/bulk`: data=[[t, node, v1, {"name": v}, …], …] with sentat/offset/time."""
    now = time.time() if now is None else now
    rows = _json(data, "data")
    if not isinstance(rows, list):
        raise BadPayload("bulk data must be a list of [time, node, values…] rows")
    if len(rows) > MAX_BULK_ROWS:
        raise TooMany(f"{len(rows)} bulk rows; at most {MAX_BULK_ROWS} allowed")
    if not rows:
        return []
    for row in rows:
        if not isinstance(row, list):
            raise BadPayload("each bulk row must be a list [time, node, values…]")
        if not row or isinstance(row[0], bool) or not isinstance(row[0], (int, float)):
            raise BadTime(f"bulk row {str(row)[:40]} must start with a numeric time")
        try:
            finite = math.isfinite(float(row[0]))
        except OverflowError:  # an integer beyond any float
            finite = False
        if not finite:
            raise BadTime(f"bulk row time {str(row[0])[:20]} is out of range")
    try:
        if params.get("sentat") not in (None, ""):
            ref = now - float(params["sentat"])
        elif params.get("offset") not in (None, ""):
            ref = now - float(params["offset"])
        elif params.get("time") not in (None, ""):
            ref = float(params["time"])
        else:
            ref = now - rows[-1][0]
    except ValueError:
        raise BadTime("sentat, offset and time must be numbers") from None
    if not math.isfinite(ref):
        raise BadTime("sentat, offset and time must be finite")
    posts = []
    for row in rows:
        if len(row) <= 2:  # emoncms skips rows without values
            continue
        t = check_time(ref + row[0], now, "bulk row time")
        node = check_name(row[1], "node")
        values: dict[str, float] = {}
        for position, item in enumerate(row[2:], start=1):
            if isinstance(item, dict):
                values.update(_named_values(item))
            else:
                values[str(position)] = check_value(item, str(position))
        _check_count(len(values))
        posts.append(NodePost(node, t, values))
    return posts

