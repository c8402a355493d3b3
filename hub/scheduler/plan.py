"""Schedules: from "ready by 07:00 on weekdays, 2 h, interruptible" to concrete windows.

A `ScheduleDefinition` is what the household sets (and the API stores). An `Occurrence` is
one concrete run of it: the unix ready-by time, the run time still owed, the windows last
planned and whether the run has started. The runtime loop (not here) keeps occurrences,
counts run time down with `advance()`, and calls `plan()` every minute and whenever a new
profile arrives; it switches devices according to the returned windows.

Rules:
- Ready-by is a local wall-clock time in the schedule's time zone (DST rules in localtime.py).
  The next occurrence is the first one strictly after now on an allowed weekday; a one-off
  with a date whose ready-by is past raises ReadyByPassed; a one-off without a date is the
  next HH:MM (alarm-clock style). Windows are unix seconds, so runs across midnight or a DST
  change need no special case and last their real length.
- A contiguous run that has started is never moved; an interruptible one is re-optimised for
  the run time still owed.
- Planning starts at now rounded up to the minute (devices switch on minutes), except while
  a window is running, where it starts at now exactly so a running device is not cut.
- If the signal does not reach the ready-by time and the uncovered tail could still hold the
  whole remaining run, nothing is committed yet (status "waiting_for_signal"; the next day's
  profile normally arrives first). Otherwise time the signal does not cover counts as a gap
  (worst known value), so a run due before the next profile still ends by ready-by.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from .errors import InvalidRequest, InvalidSchedule, ReadyByPassed
from .localtime import iso_local, local_to_unix, parse_hhmm, unix_to_local, zone
from .window import MAX_PERIOD, Window

# The optimiser and the signal (numpy) are imported by the functions that plan: a schedule's
# definition and occurrence (the web's schedule forms) do not need them (issue 12).
if TYPE_CHECKING:
    from .signal import Signal

MODES = ("smart", "on", "off")
WAIT_MARGIN = 600  # wait for a new profile only while the uncovered tail has this much slack
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class ScheduleDefinition:
    """What the household sets. `repeat`: weekdays 0=Monday..6=Sunday; empty = once.

    `on_completion` is the mode the schedule switches to when an occurrence's ready-by time
    passes: "smart" keeps a repeating schedule going, "off"/"on" hand the device back to
    manual off/on. A one-off with "smart" ends as "off".
    """

    ready_by: str
    period_s: int
    interruptible: bool = False
    repeat: frozenset[int] = field(default_factory=frozenset)
    once_on: date | None = None
    mode: str = "smart"
    on_completion: str = "off"

    def __post_init__(self) -> None:
        parse_hhmm(self.ready_by)
        if isinstance(self.period_s, bool) or not isinstance(self.period_s, int) or not (
            0 < self.period_s <= MAX_PERIOD
        ):
            raise InvalidSchedule(f"period must be 1..{MAX_PERIOD} seconds, got {self.period_s!r}")
        if not isinstance(self.interruptible, bool):
            raise InvalidSchedule("interruptible must be true or false")
        days = frozenset(self.repeat)
        if not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6 for d in days):
            raise InvalidSchedule(f"repeat must be weekdays 0 (Monday)..6 (Sunday), got {days}")
        object.__setattr__(self, "repeat", days)
        if days and self.once_on is not None:
            raise InvalidSchedule("a repeating schedule cannot also have a one-off date")
        for name in ("mode", "on_completion"):
            if getattr(self, name) not in MODES:
                raise InvalidSchedule(f"{name} must be one of {', '.join(MODES)}")

    @classmethod
    def from_json(cls, obj: Any) -> ScheduleDefinition:
        """From the API's `{ready_by, period, interruptible, repeat, once_on, mode,
        on_completion}`; `repeat` is a list of weekday numbers or names ("mon")."""
        if not isinstance(obj, dict):
            raise InvalidSchedule("schedule must be a JSON object")
        repeat = obj.get("repeat", [])
        if not isinstance(repeat, list):
            raise InvalidSchedule("repeat must be a list of weekdays")
        days = [WEEKDAYS.index(d) if d in WEEKDAYS else d for d in repeat]
        once_on = obj.get("once_on")
        if once_on is not None:
            try:
                once_on = date.fromisoformat(once_on)
            except (TypeError, ValueError) as exc:
                raise InvalidSchedule(f"once_on must be YYYY-MM-DD, got {once_on!r}") from exc
        return cls(
            ready_by=obj.get("ready_by"),
            period_s=obj.get("period"),
            interruptible=obj.get("interruptible", False),
            repeat=frozenset(days),
            once_on=once_on,
            mode=obj.get("mode", "smart"),
            on_completion=obj.get("on_completion", "off"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ready_by": self.ready_by,
            "period": self.period_s,
            "interruptible": self.interruptible,
            "repeat": sorted(self.repeat),
            "once_on": self.once_on.isoformat() if self.once_on else None,
            "mode": self.mode,
            "on_completion": self.on_completion,
        }


@dataclass(frozen=True)
class Occurrence:
    """One concrete run: owed run time, deadline, and the windows last planned."""

    ready_by: int
    remaining_s: int
    windows: tuple[Window, ...] = ()
    started: bool = False


@dataclass(frozen=True)
class Plan:
    """status: "scheduled" (windows chosen), "running" (a started contiguous run, kept),
    "waiting_for_signal", "done" (nothing owed or ready-by passed), "on"/"off" (manual)."""

    status: str
    windows: tuple[Window, ...] = ()
    ready_by: int | None = None
    remaining_s: int = 0
    shortfall_s: int = 0
    latest_start: int | None = None


def next_ready_by(defn: ScheduleDefinition, now: int, tz: ZoneInfo | str) -> int:
    """Unix time of the next ready-by strictly after `now`."""
    tz = zone(tz) if isinstance(tz, str) else tz
    at = parse_hhmm(defn.ready_by)
    if defn.once_on is not None:
        ready_by = local_to_unix(defn.once_on, at, tz)
        if ready_by <= now:
            raise ReadyByPassed(
                f"ready-by {iso_local(ready_by, tz)} is in the past (now {iso_local(now, tz)})"
            )
        return ready_by
    today = unix_to_local(now, tz).date()
    for offset in range(9):  # a week plus a day covers any weekday set and DST
        day = today + timedelta(days=offset)
        if defn.repeat and day.weekday() not in defn.repeat:
            continue
        ready_by = local_to_unix(day, at, tz)
        if ready_by > now:
            return ready_by
    raise InvalidSchedule("no ready-by time found in the next week")  # unreachable


def new_occurrence(defn: ScheduleDefinition, now: int, tz: ZoneInfo | str) -> Occurrence:
    return Occurrence(next_ready_by(defn, now, tz), defn.period_s)


def seconds_in_windows(windows: tuple[Window, ...], t0: int, t1: int) -> int:
    """How long the windows cover between t0 and t1."""
    return sum(max(0, min(w.end, t1) - max(w.start, t0)) for w in windows)


def advance(occ: Occurrence, t0: int, t1: int) -> Occurrence:
    """Count down the run time delivered by the planned windows between t0 and t1."""
    ran = seconds_in_windows(occ.windows, t0, t1)
    if not ran:
        return occ
    return replace(occ, remaining_s=max(0, occ.remaining_s - ran), started=True)


def roll_over(
    defn: ScheduleDefinition, now: int, tz: ZoneInfo | str
) -> tuple[str, Occurrence | None]:
    """After an occurrence's ready-by: the schedule's new mode and its next occurrence."""
    mode = defn.on_completion
    if mode == "smart" and not defn.repeat:
        mode = "off"  # a one-off has nothing left to schedule
    return mode, (new_occurrence(defn, now, tz) if mode == "smart" else None)


def earliest_start(now: int) -> int:
    """Where planning a run that is not running starts: now rounded up to the minute."""
    return -(-now // 60) * 60


def plan(defn: ScheduleDefinition, occ: Occurrence, signal: Signal, now: int) -> Plan:
    """Plan (or re-plan) an occurrence of `defn` against `signal` at time `now`."""
    if defn.mode != "smart":
        return Plan(defn.mode)
    running = any(w.start <= now < w.end for w in occ.windows)
    earliest = now if running else earliest_start(now)
    frozen = occ.windows[0] if occ.started and not defn.interruptible and occ.windows else None
    return plan_run(signal, occ.remaining_s, earliest, occ.ready_by,
                    interruptible=defn.interruptible, frozen=frozen)


def plan_run(
    signal: Signal,
    remaining_s: int,
    earliest: int,
    ready_by: int,
    *,
    interruptible: bool,
    frozen: Window | None = None,
) -> Plan:
    """Windows for `remaining_s` seconds of running in [earliest, ready_by).

    `frozen`: the window of a contiguous run that has started; it is returned unchanged.
    """
    if remaining_s <= 0:
        return Plan("done", (), ready_by)
    if frozen is not None:
        return Plan("running", (frozen,), ready_by, remaining_s)
    if earliest >= ready_by:
        return Plan("done", (), ready_by, 0, remaining_s)
    from .optimise import choose
    from .signal import MAX_SPAN

    covered_to = max(signal.end, earliest)
    if ready_by - covered_to - remaining_s >= WAIT_MARGIN:
        return Plan("waiting_for_signal", (), ready_by, remaining_s,
                    latest_start=ready_by - remaining_s)
    if ready_by - earliest > MAX_SPAN:
        raise InvalidRequest(
            f"cannot plan over {(ready_by - earliest) / 86_400:.1f} days: the profile must "
            f"cover a window of at most {MAX_SPAN // 86_400} days before ready-by"
        )
    choice = choose(signal.covering(earliest, ready_by), remaining_s, earliest, ready_by,
                    interruptible=interruptible)
    return Plan("scheduled", choice.windows, ready_by, remaining_s, choice.shortfall_s)


def explain(
    result: Plan, signal: Signal, earliest: int, tz: ZoneInfo | str = "UTC"
) -> dict[str, Any]:
    """The chosen slots, their signal, the total, and the total of running now instead."""
    from .optimise import filled_costs, total_signal

    tz = zone(tz) if isinstance(tz, str) else tz
    out: dict[str, Any] = {
        "status": result.status,
        "higher_is_better": signal.higher_is_better,
        "windows": [_window_json(w, tz) for w in result.windows],
    }
    if not result.windows or result.ready_by is None:
        return out
    lo = min(earliest, result.windows[0].start)
    hi = max(result.ready_by, result.windows[-1].end)
    sig = signal.covering(lo, hi)
    values = filled_costs(sig, lo, hi)
    values = -values if sig.higher_is_better else values
    knots = sig.knots
    slots, unknown = [], 0
    for w in result.windows:
        for k in range(len(sig.values)):
            used = min(int(knots[k + 1]), w.end) - max(int(knots[k]), w.start)
            if used <= 0:
                continue
            gap = bool(signal_gap(sig, k))
            unknown += used if gap else 0
            slots.append({
                "start": int(knots[k]),
                "start_local": iso_local(int(knots[k]), tz),
                "value": None if gap else float(sig.values[k]),
                "seconds": used,
                "signal": float(values[k]) * used / sig.interval,
            })
    seconds = sum(w.seconds for w in result.windows)
    run_now = Window(earliest, earliest + seconds)
    total = total_signal(sig, result.windows, lo=lo, hi=hi)
    now_total = total_signal(sig, (run_now,), lo=lo, hi=hi)
    saving = (total - now_total) if sig.higher_is_better else (now_total - total)
    out.update(
        slots=slots,
        total_signal=total,
        run_now={**_window_json(run_now, tz), "total_signal": now_total},
        better_than_run_now_by=saving,
        better_than_run_now_percent=(100.0 * saving / abs(now_total)) if now_total else None,
        unknown_seconds=unknown,
    )
    return out


def signal_gap(signal: Signal, k: int) -> bool:
    return bool(signal.values[k] != signal.values[k])  # NaN


def _window_json(w: Window, tz: ZoneInfo) -> dict[str, Any]:
    return {"start": w.start, "end": w.end, "seconds": w.seconds,
            "start_local": iso_local(w.start, tz), "end_local": iso_local(w.end, tz)}
