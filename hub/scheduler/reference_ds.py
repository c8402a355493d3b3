"""PORT FOR COMPARISON ONLY: the Demand Shaper's scheduler2 greedy rule, in Python.

Not used to schedule anything. Tests and bench/bench_scheduler.py run it next to our
optimiser to prove ours is never worse on the same input.

Behaviour ported (rewritten, not copied) from emoncms/demandshaper `lib/scheduler2.php` as of
11abe31e (schedule_block, schedule_interruptible, forecast_calc_min_max; our reference notes
demandshaper.md §1.3), quirks included on purpose:
- block: the threshold is seeded with the sum at td=0; `<=` / `>=` means ties go to the
  LATEST window; a slot is usable when it STARTS before the end; a partial period is
  left-aligned in the window if its first value < its last value, else right-aligned
  (right-aligned ends on the slot boundary, which may pass a non-aligned end);
- interruptible: n = ceil(period / interval) rounds of "best unallocated slot", seeded with
  the profile's max (MIN) or min (MAX), `<=` / `>=` so the latest equal slot wins; the
  partial remainder goes at the END of the slot picked last; touching slots are joined;
- end is clamped to the forecast end, the period to the profile length and to end-start;
  `start` is the start of the current half hour, so its elapsed part counts as available.
Periods are returned as (start, end) unix-second pairs; the decimal hours the PHP adds for
display are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN = 0  # lower is better
MAX = 1  # higher is better


@dataclass
class Forecast:
    start: int
    end: int
    interval: int
    profile: list[float]
    optimise: int = MIN
    min: float = 0.0
    max: float = 0.0


def forecast_calc_min_max(forecast: Forecast) -> Forecast:
    forecast.min, forecast.max = 1_000_000.0, -1_000_000.0
    for value in forecast.profile:
        forecast.max = max(forecast.max, float(value))
        forecast.min = min(forecast.min, float(value))
    return forecast


def _limits(forecast: Forecast, period: int, end: int) -> tuple[int, int] | None:
    if end < forecast.start:
        return None
    end = min(end, forecast.end)
    if period <= 0:
        return None
    period = min(period, len(forecast.profile) * forecast.interval, end - forecast.start)
    return period, end


def schedule_block(forecast: Forecast, period: int, end: int) -> list[tuple[int, int]]:
    limits = _limits(forecast, period, end)
    if limits is None:
        return []
    period, end = limits
    profile, interval = forecast.profile, forecast.interval
    slots = math.ceil(period / interval)
    threshold, pos = 0.0, -1
    for td in range(len(profile)):
        window = profile[td : td + slots]
        valid = len(window) == slots and all(
            forecast.start + (td + i) * interval < end for i in range(slots)
        )
        total = sum(window)
        if td == 0:
            threshold = total
        if valid and (
            (forecast.optimise == MIN and total <= threshold)
            or (forecast.optimise == MAX and total >= threshold)
        ):
            threshold, pos = total, td
    if pos == -1:
        return []
    if profile[pos] < profile[pos + slots - 1]:
        start = forecast.start + pos * interval
        return [(start, start + period)]
    stop = forecast.start + (pos + slots) * interval
    return [(stop - period, stop)]


def schedule_interruptible(forecast: Forecast, period: int, end: int) -> list[tuple[int, int]]:
    """Needs forecast_calc_min_max() first, as upstream."""
    limits = _limits(forecast, period, end)
    if limits is None:
        return []
    period, end = limits
    profile, interval = forecast.profile, forecast.interval
    allocated = [False] * len(profile)
    pos = -1
    for _ in range(math.ceil(period / interval)):
        threshold = forecast.max if forecast.optimise == MIN else forecast.min
        pos = -1
        for td, value in enumerate(profile):
            usable = forecast.start + td * interval < end and not allocated[td]
            if usable and (
                (forecast.optimise == MIN and value <= threshold)
                or (forecast.optimise == MAX and value >= threshold)
            ):
                threshold, pos = value, td
        if pos != -1:
            allocated[pos] = True
    last_allocated, partial = pos, int(period) % interval
    segments = []
    for td, taken in enumerate(allocated):
        if taken:
            seg_start = forecast.start + td * interval
            seg_end = seg_start + interval
            if partial > 0 and td == last_allocated:
                seg_start = seg_end - partial
            segments.append((seg_start, seg_end))
    periods: list[tuple[int, int]] = []
    for seg_start, seg_end in segments:
        if periods and periods[-1][1] == seg_start:
            periods[-1] = (periods[-1][0], seg_end)
        else:
            periods.append((seg_start, seg_end))
    return periods


def schedule(
    start: int, interval: int, profile: list[float], period: int, end: int, *,
    interruptible: bool, higher_is_better: bool = False,
) -> list[tuple[int, int]]:
    """Build the forecast object as the Demand Shaper does and run the matching rule."""
    forecast = forecast_calc_min_max(Forecast(
        start, start + len(profile) * interval, interval, [float(v) for v in profile],
        MAX if higher_is_better else MIN,
    ))
    rule = schedule_interruptible if interruptible else schedule_block
    return rule(forecast, period, end)
