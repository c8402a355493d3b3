"""`python3 -m hub.scheduler`: plan one run from JSON on stdin, print the plan as JSON.

Input (one object; unknown keys are refused):
  profile        {start, interval, values[, higher_is_better]}   required
  period         run length in seconds                           required
  ready_by       unix seconds, or "HH:MM" local (next occurrence) required
  interruptible  true/false                                      default false
  now            unix seconds                                    default: the clock
  timezone       IANA name for "HH:MM" and *_local fields        default "UTC"
  compare_ds     also run the Demand Shaper's rule (port)        default false
Output: {status, periods[{start, end, seconds, start_local, end_local}], ready_by,
requested_s, scheduled_s, shortfall_s, explanation{...}[, demand_shaper{...}]}.
A run starts at the earliest on now rounded up to the minute, as the hub's own planning does.
Exit 0 on success, 2 with "error: <what to fix>" on stderr for bad input.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

from . import reference_ds
from .errors import InvalidRequest, SchedulerError
from .localtime import iso_local, zone
from .optimise import Window, total_signal
from .plan import ScheduleDefinition, earliest_start, explain, next_ready_by, plan_run
from .signal import MAX_START, MIN_START, Signal

KEYS = {"profile", "period", "ready_by", "interruptible", "now", "timezone", "compare_ds"}
MAX_INPUT = 4 * 1024 * 1024
USAGE = "usage: python3 -m hub.scheduler < request.json   (see hub/scheduler/README.md)\n"


def main(argv: list[str], stdin: TextIO, stdout: TextIO, stderr: TextIO | None = None) -> int:
    stderr = stderr or sys.stderr
    if argv:
        (stdout if argv[0] in ("-h", "--help") else stderr).write(USAGE + __doc__)
        return 0 if argv[0] in ("-h", "--help") else 2
    try:
        result = run(_read(stdin))
    except SchedulerError as exc:
        stderr.write(f"error: {exc}\n")
        return 2
    json.dump(result, stdout, indent=1)
    stdout.write("\n")
    return 0


def run(request: dict[str, Any]) -> dict[str, Any]:
    unknown = set(request) - KEYS
    if unknown:
        raise InvalidRequest(f"unknown keys: {', '.join(sorted(unknown))}")
    for key in ("profile", "period", "ready_by"):
        if key not in request:
            raise InvalidRequest(f"missing key: {key}")
    signal = Signal.from_json(request["profile"])
    tz = zone(request.get("timezone", "UTC"))
    now = request.get("now", int(time.time()))
    period, interruptible = request["period"], request.get("interruptible", False)
    for name, value in (("now", now), ("period", period)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidRequest(f"{name} must be an integer number of seconds, got {value!r}")
    if not MIN_START <= now <= MAX_START:
        raise InvalidRequest(f"now must be a unix time in seconds (2000..2100), got {now}")
    if not isinstance(interruptible, bool):
        raise InvalidRequest("interruptible must be true or false")
    ready_by = request["ready_by"]
    if isinstance(ready_by, str):
        ready_by = next_ready_by(ScheduleDefinition(ready_by, max(period, 1)), now, tz)
    elif isinstance(ready_by, bool) or not isinstance(ready_by, int):
        raise InvalidRequest(f"ready_by must be unix seconds or 'HH:MM', got {ready_by!r}")
    if not MIN_START <= ready_by <= MAX_START:
        raise InvalidRequest(
            f"ready_by must be a unix time in seconds (2000..2100), got {ready_by}"
        )
    if ready_by <= now:
        raise InvalidRequest(f"ready_by {ready_by} is not after now {now}")
    if period <= 0:
        raise InvalidRequest(f"period must be positive, got {period}")
    # the same start rule as the hub's own planning (plan.plan), so both give one answer
    result = plan_run(signal, period, earliest_start(now), ready_by, interruptible=interruptible)
    explanation = explain(result, signal, now, tz)
    out = {
        "status": result.status,
        "periods": explanation["windows"],
        "ready_by": ready_by,
        "ready_by_local": iso_local(ready_by, tz),
        "requested_s": period,
        "scheduled_s": sum(w.seconds for w in result.windows),
        "shortfall_s": result.shortfall_s,
        "latest_start": result.latest_start,
        "explanation": explanation,
    }
    if request.get("compare_ds"):
        periods = reference_ds.schedule(
            now - now % signal.interval, signal.interval, signal.values.tolist(), period,
            ready_by, interruptible=interruptible, higher_is_better=signal.higher_is_better,
        )
        windows = [Window(a, b) for a, b in periods]
        out["demand_shaper"] = {
            "note": "port of scheduler2 for comparison; may start in the current half hour",
            "periods": [{"start": w.start, "end": w.end} for w in windows],
            "total_signal": total_signal(signal.covering(now, ready_by), windows),
        }
    return out


def _read(stdin: TextIO) -> dict[str, Any]:
    try:
        text = stdin.read(MAX_INPUT + 1)
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"input is not UTF-8 text: {exc.reason}") from None
    if len(text) > MAX_INPUT:
        raise InvalidRequest(f"input is larger than {MAX_INPUT} bytes")
    try:
        request = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"input is not valid JSON: {exc}") from exc
    except RecursionError:  # deeply nested arrays/objects: the parser's stack runs out
        raise InvalidRequest("input is nested too deeply to be a schedule request") from None
    if not isinstance(request, dict):
        raise InvalidRequest("input must be a JSON object")
    return request
