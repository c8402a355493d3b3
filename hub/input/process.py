"""Input process lists: a registry of small functions with emoncms' ids and keys.

A process list is a JSON list of steps `[{"fn": "process__scale", "args": [0.001]}, …]`; each
step gets the running value and returns the value for the next step (emoncms'
`Process::input`). `parse_processlist` accepts what emoncms clients send — that JSON form, with
`fn` as a key (`process__log_to_feed`), a bare name (`log_to_feed`) or an id (`1`), or the
legacy stored string "1:5,2:0.1" — and checks every step against the registry and the user's
feeds; a bad list raises a `ProcessError` subclass naming the step.

Execution writes through a `ProcessBatch`, which buffers feed writes and process state for a
batch of readings and commits them in bulk (one `insert_many` per feed), so MQTT ingest costs
a few Redis round trips per batch rather than per reading.

Semantics follow emoncms (reference/emoncms.md §3) with two deliberate safety changes for
at-least-once delivery (QoS 1 re-sends old readings after a reconnect):
- `power_to_kwh` ignores a reading not newer than the feed's last point instead of writing
  the old total at that (older) time;
- `wh_accumulator`/`kwh_accumulator` do not move their saved counter back on an older
  reading, so a re-delivered old reading cannot make the next delta count twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from hub.errors import SERVER_ERRORS
from hub.input.readings import IngestError, check_value
from hub.names import RedisKeys

log = logging.getLogger(__name__)

MAX_STEPS = 32
KWH_DT_MAX_S = 7200  # power_to_kwh: no energy across a gap this long (monitor was down)
MAX_ACCUMULATOR_POWER_W = 60_000  # wh/kwh_accumulator: a faster rise is a glitch, not energy

# Argument types (emoncms ProcessArg).
VALUE, INPUTID, FEEDID, NONE = 0, 1, 2, 3


class ProcessError(ValueError):
    """Base of process list errors."""


class BadProcessList(ProcessError):
    """The list is not a JSON list of {"fn": …, "args": […]} steps (or is too long)."""


class UnknownProcess(ProcessError):
    """A step names a process the hub does not have."""


class BadArgument(ProcessError):
    """A step's argument is missing or of the wrong type."""


class MissingFeed(ProcessError):
    """A step writes to a feed that does not exist."""


class ForeignFeed(ProcessError):
    """A step writes to a feed of another user."""


class FeedWriter(Protocol):
    """What a batch needs of the feed store (hub.feed.store.FeedStore)."""

    def last(self, feed_id: int) -> tuple[int, float | None] | None: ...

    def insert(self, feed_id: int, t: int, value: float, join: bool = False) -> None: ...

    def insert_many(self, feed_id: int, times: list[int], values: list[float],
                    join: bool = False) -> None: ...


class ProcessBatch:
    """Feed writes and process state of a batch of readings, committed together.

    `last(feed)` sees points written earlier in the same batch, so accumulators chain
    correctly within a batch.
    """

    def __init__(self, feeds: FeedWriter, redis_client: redis.Redis, keys: RedisKeys) -> None:
        self.feeds = feeds
        self.redis = redis_client
        self.keys = keys
        self.writes: dict[int, list[tuple[int, float, bool]]] = {}
        self._last: dict[int, tuple[int, float | None] | None] = {}
        self._newest: dict[int, tuple[int, float]] = {}
        self._state: dict[str, dict | None] = {}
        self._dirty: set[str] = set()
        self.errors: list[str] = []
        self.not_stored = 0  # feed points (or process steps) that did not make it

    def last(self, feed_id: int) -> tuple[int, float | None] | None:
        if feed_id not in self._last:
            stored = self.feeds.last(feed_id)
            newest = self._newest.pop(feed_id, None)
            self._last[feed_id] = newest if newest and (
                stored is None or newest[0] >= stored[0]) else stored
        return self._last[feed_id]

    def insert(self, feed_id: int, t: int, value: float, join: bool = False) -> None:
        self.writes.setdefault(feed_id, []).append((t, value, join))
        # Track the newest point without asking Redis: plain logging never reads it back.
        table = self._last if feed_id in self._last else self._newest
        current = table.get(feed_id)
        if current is None or t >= current[0]:
            table[feed_id] = (t, value)

    def state(self, name: str) -> dict | None:
        if name not in self._state:
            raw = self.redis.get(self.keys.process_state(name))
            self._state[name] = json.loads(raw) if raw else None
        return self._state[name]

    def set_state(self, name: str, value: dict) -> None:
        self._state[name] = value
        self._dirty.add(name)

    def commit(self) -> int:
        """Write everything; a failing feed is logged and reported, the others still go."""
        written = 0
        for feed_id, points in self.writes.items():
            try:
                joins = {join for _, _, join in points}
                if len(joins) == 1:  # the usual case: one RPUSH for the whole batch
                    self.feeds.insert_many(feed_id, [p[0] for p in points],
                                               [p[1] for p in points], join=joins.pop())
                else:
                    for t, v, join in points:
                        self.feeds.insert(feed_id, t, v, join=join)
                written += len(points)
            except SERVER_ERRORS:
                raise
            except Exception as exc:
                log.warning("feed %s: %d points not written: %s", feed_id, len(points), exc)
                self.errors.append(f"feed {feed_id}: {exc}")
                self.not_stored += len(points)
        if self._dirty:
            with self.redis.pipeline(transaction=False) as pipe:
                for name in self._dirty:
                    pipe.set(self.keys.process_state(name), json.dumps(self._state[name]))
                pipe.execute()
        self.writes.clear()
        self._dirty.clear()
        return written


Fn = Callable[[ProcessBatch, Any, int, float], float | None]


@dataclass(frozen=True)
class Process:
    id: int  # emoncms id_num
    name: str  # emoncms function name; the key is "process__<name>"
    arg: int  # VALUE, FEEDID or NONE
    fn: Fn
    description: str

    @property
    def key(self) -> str:
        return f"process__{self.name}"


# --- the processes --------------------------------------------------------------------------

def log_to_feed(run: ProcessBatch, feed_id: int, t: int, value: float) -> float:
    run.insert(feed_id, t, value)
    return value


def log_to_feed_join(run: ProcessBatch, feed_id: int, t: int, value: float) -> float:
    run.insert(feed_id, t, value, join=True)
    return value


def scale(run: ProcessBatch, factor: float, t: int, value: float) -> float:
    return value * factor


def offset(run: ProcessBatch, amount: float, t: int, value: float) -> float:
    return value + amount


def allowpositive(run: ProcessBatch, _arg: None, t: int, value: float) -> float:
    return max(value, 0.0)


def allownegative(run: ProcessBatch, _arg: None, t: int, value: float) -> float:
    return min(value, 0.0)


def max_value_allowed(run: ProcessBatch, limit: float, t: int, value: float) -> float:
    return min(value, limit)


def min_value_allowed(run: ProcessBatch, limit: float, t: int, value: float) -> float:
    return max(value, limit)


def abs_value(run: ProcessBatch, _arg: None, t: int, value: float) -> float:
    return abs(value)


def reset2zero(run: ProcessBatch, _arg: None, t: int, value: float) -> float:
    return 0.0


def power_to_kwh(run: ProcessBatch, feed_id: int, t: int, watts: float) -> float:
    """kWh += W·dt when 0 < dt < 2 h since the feed's last point; posted with join.

    Returns the input watts (emoncms), so the list can go on logging power.
    """
    last = run.last(feed_id)
    if last is None:
        run.insert(feed_id, t, 0.0, join=True)
        return watts
    last_t, last_kwh = last[0], last[1] or 0.0
    elapsed = t - last_t
    if elapsed <= 0:
        return watts  # old or repeated reading: the total already counts it
    kwh = last_kwh + watts * elapsed / 3.6e6 if elapsed < KWH_DT_MAX_S else last_kwh
    run.insert(feed_id, t, kwh, join=True)
    return watts


def _accumulate(run: ProcessBatch, feed_id: int, t: int, counter: float,
                seconds_per_unit: float) -> float:
    """Add counter increases to the feed total; skip resets (Δ ≤ 0) and implausible rates."""
    name = f"accumulator:{feed_id}"
    last = run.last(feed_id)
    total = (last[1] or 0.0) if last is not None else 0.0
    saved = run.state(name)
    if saved is None:
        run.set_state(name, {"time": t, "value": counter})  # first reading only primes
        return total
    dt = t - saved["time"]
    if dt <= 0:
        return total
    delta = counter - saved["value"]
    if delta > 0 and delta * seconds_per_unit / dt < MAX_ACCUMULATOR_POWER_W:
        total += delta
    run.insert(feed_id, t, total, join=True)
    run.set_state(name, {"time": t, "value": counter})
    return total


def wh_accumulator(run: ProcessBatch, feed_id: int, t: int, wh: float) -> float:
    return _accumulate(run, feed_id, t, wh, 3600.0)


def kwh_accumulator(run: ProcessBatch, feed_id: int, t: int, kwh: float) -> float:
    return _accumulate(run, feed_id, t, kwh, 3.6e6)


PROCESSES: tuple[Process, ...] = (
    Process(1, "log_to_feed", FEEDID, log_to_feed, "Store the value in a feed"),
    Process(2, "scale", VALUE, scale, "Multiply by a factor"),
    Process(3, "offset", VALUE, offset, "Add an amount"),
    Process(4, "power_to_kwh", FEEDID, power_to_kwh,
            "Integrate W into a cumulative kWh feed (no energy across gaps over 2 h)"),
    Process(24, "allowpositive", NONE, allowpositive, "Negative values become 0"),
    Process(25, "allownegative", NONE, allownegative, "Positive values become 0"),
    Process(33, "reset2zero", NONE, reset2zero, "Value becomes 0"),
    Process(34, "wh_accumulator", FEEDID, wh_accumulator,
            "Add increases of a Wh counter to a feed; ignore resets and rates over 60 kW"),
    Process(61, "max_value_allowed", VALUE, max_value_allowed, "Clamp to at most the limit"),
    Process(62, "min_value_allowed", VALUE, min_value_allowed, "Clamp to at least the limit"),
    Process(63, "abs_value", NONE, abs_value, "Absolute value"),
    Process(64, "kwh_accumulator", FEEDID, kwh_accumulator,
            "Add increases of a kWh counter to a feed; ignore resets and rates over 60 kW"),
    Process(65, "log_to_feed_join", FEEDID, log_to_feed_join,
            "Store the value in a feed, joining gaps linearly"),
)
BY_ID = {p.id: p for p in PROCESSES}
BY_NAME = {p.name: p for p in PROCESSES}


def lookup(fn: object) -> Process:
    """A process by emoncms key ("process__scale"), name ("scale") or id (2 or "2")."""
    if isinstance(fn, int) and not isinstance(fn, bool):
        found = BY_ID.get(fn)
    elif isinstance(fn, str):
        text = fn.strip()
        name = text.removeprefix("process__")
        found = BY_ID.get(int(text)) if text.isascii() and text.isdigit() \
            and len(text) < 10 else BY_NAME.get(name)
    else:
        found = None
    if found is None:
        raise UnknownProcess(f"unknown process {str(fn)[:40]!r}; known: "
                             f"{', '.join(p.name for p in PROCESSES)}")
    return found


# --- validation -----------------------------------------------------------------------------

Step = tuple[Process, Any]


def _legacy_steps(text: str) -> list[dict]:
    steps = []
    for item in text.split(","):
        if item.strip():
            fn, _, arg = item.partition(":")
            steps.append({"fn": fn, "args": [arg] if arg else []})
    return steps


def parse_processlist(raw: Any, feed_owner: Callable[[int], int | None],
                      user_id: int) -> list[dict]:
    """Check a process list and return its stored form [{"fn": key, "args": [...]}, ...].

    `feed_owner(feed_id)` answers the owning user id, or None when the feed does not exist.
    """
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("["):
            try:
                raw = json.loads(text)
            except ValueError as exc:
                raise BadProcessList(f"process list is not valid JSON: {exc}") from None
            except RecursionError:
                raise BadProcessList("process list is nested too deeply") from None
        else:
            raw = _legacy_steps(text)
    if not isinstance(raw, list):
        raise BadProcessList('process list must be a list of {"fn": …, "args": […]}')
    if len(raw) > MAX_STEPS:
        raise BadProcessList(f"process list has {len(raw)} steps; at most {MAX_STEPS}")
    stored = []
    for index, step in enumerate(raw, start=1):
        if not isinstance(step, dict) or "fn" not in step:
            raise BadProcessList(f'step {index} must be {{"fn": …, "args": […]}}')
        process = lookup(step["fn"])
        args = step.get("args", [])
        if not isinstance(args, list):
            args = [args]
        stored.append({"fn": process.key, "args": _check_args(process, args, index,
                                                              feed_owner, user_id)})
    return stored


def _check_args(process: Process, args: list, index: int,
                feed_owner: Callable[[int], int | None], user_id: int) -> list:
    where = f"step {index} ({process.name})"
    if process.arg == NONE:
        return []
    if len(args) != 1:
        raise BadArgument(f"{where} takes one argument, got {len(args)}")
    arg = args[0]
    if process.arg == VALUE:
        try:
            return [check_value(arg, "argument")]
        except IngestError:
            raise BadArgument(f"{where} needs a finite number, got {str(arg)[:40]!r}") from None
    try:
        feed_id = int(arg)
        if isinstance(arg, (bool, float)) or feed_id <= 0:
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise BadArgument(f"{where} needs a feed id, got {str(arg)[:40]!r}") from None
    owner = feed_owner(feed_id)
    if owner is None:
        raise MissingFeed(f"{where}: feed {feed_id} does not exist")
    if owner != user_id:
        raise ForeignFeed(f"{where}: feed {feed_id} belongs to another user")
    return [feed_id]


def compile_processlist(stored: list[dict]) -> list[Step]:
    """Stored form → runnable steps (the stored form is already validated)."""
    return [(lookup(step["fn"]), (step["args"] or [None])[0]) for step in stored]


def run_processlist(run: ProcessBatch, steps: list[Step], t: int, value: float) -> float | None:
    """Run the steps in order on one reading; a failing step is logged and the rest go on."""
    current: float | None = value
    for process, arg in steps:
        if current is None:
            break
        try:
            current = process.fn(run, arg, t, current)
        except SERVER_ERRORS:
            raise
        except Exception as exc:
            log.warning("process %s(%s) failed: %s", process.name, arg, exc)
            run.errors.append(f"{process.name}({arg}): {exc}")
            run.not_stored += 1
    return current


def describe() -> list[dict]:
    """The registry, for `input/process/list.json` and the UI."""
    kinds = {VALUE: "value", FEEDID: "feed", NONE: "none", INPUTID: "input"}
    return [{"id": p.id, "key": p.key, "name": p.name, "argtype": kinds[p.arg],
             "description": p.description} for p in PROCESSES]
