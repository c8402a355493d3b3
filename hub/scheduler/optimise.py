"""Choose when to run: the exact optimum of a piecewise-constant signal.

Model
-----
Time is continuous (integer unix seconds). The signal is piecewise constant: value v[k] holds
on slot k = [start + k*I, start + (k+1)*I). Running during [a, b) costs
    cost(a, b) = integral of v(t) dt over [a, b), divided by I,
so a whole slot costs v[k] and 600 s of a 1800 s slot costs v[k]/3 ("total signal" in the
Demand Shaper's units: a sum of slot values, with partial slots pro rata). Signals where
higher is better are minimised on -v. Gaps (NaN) cost the worst known value in the
horizon (so known-good slots are always preferred to unknown ones); with no known value at
all in the horizon every slot is equal and the tie-break applies.

The horizon is [max(earliest, signal.start), min(ready_by, signal.end)): a run never starts
before `earliest` (normally now) and always ends by the ready-by time. A run longer than
the horizon is shortened to it and the shortfall is reported, never hidden.

Contiguous run of P seconds: cost(s, s+P) is piecewise linear in the start s, with kinks only
where s or s+P crosses a slot boundary, so its minimum over [lo, hi-P] is at one of the
candidates {lo, hi-P, boundary b, b-P}. All candidates are evaluated at once with the
cumulative integral F(t) = interp(t, boundaries, cumsum(v)) as F(s+P) - F(s). Runs need not
start or end on a slot boundary (a 75 min run over 30 min slots may start at 10:15 or now).

Interruptible run of P seconds: cut the horizon into pieces (slots clipped to the horizon)
and take the cheapest pieces until P is filled; the last piece taken may be partial. This is
the fractional-knapsack optimum: no set of total length P costs less.

Tie-break (stated and tested): among equal-cost choices the one with the fewest unknown
(gap) seconds wins, then the EARLIEST.
- contiguous: among starts whose cost is within TIE_TOLERANCE of the minimum, the fewest
  gap seconds, then the earliest start;
- interruptible: pieces are taken by (value, known before gap, start time), so among equal
  values the earlier slot is used first;
- a partial piece sits at the start of its slot, or at the end when that joins it to the
  chosen slot that follows and there is none it could join before (fewer switchings, same
  cost).
The Demand Shaper (scheduler2) breaks ties the other way (latest) and works in whole slots;
see reference_ds.py. Our result is never worse than it on the same input (tests and bench).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InvalidRequest, NoTimeLeft
from .signal import Signal
from .window import MAX_PERIOD, Window

TIE_TOLERANCE = 1e-9  # relative to the sum of |cost| over the horizon (float noise only)


@dataclass(frozen=True)
class Choice:
    """What the optimiser chose: windows in time order, touching ones merged."""

    windows: tuple[Window, ...]
    requested_s: int
    horizon: Window

    @property
    def scheduled_s(self) -> int:
        return sum(w.seconds for w in self.windows)

    @property
    def shortfall_s(self) -> int:
        return self.requested_s - self.scheduled_s


def choose(
    signal: Signal, period_s: int, earliest: int, ready_by: int, *, interruptible: bool
) -> Choice:
    """The best windows for `period_s` seconds of running between `earliest` and `ready_by`."""
    chooser = choose_interruptible if interruptible else choose_contiguous
    return chooser(signal, period_s, earliest, ready_by)


def choose_contiguous(signal: Signal, period_s: int, earliest: int, ready_by: int) -> Choice:
    """One window of `period_s` seconds with the minimum total signal (earliest on ties)."""
    lo, hi, period = _horizon(signal, period_s, earliest, ready_by)
    knots = signal.knots
    cumulative = np.concatenate(([0.0], np.cumsum(filled_costs(signal, lo, hi))))
    candidates = np.concatenate(([lo, hi - period], knots, knots - period))
    candidates = np.unique(candidates[(candidates >= lo) & (candidates <= hi - period)])
    costs = np.interp(candidates + period, knots, cumulative) - np.interp(
        candidates, knots, cumulative
    )
    gap_total = np.concatenate(([0.0], np.cumsum(np.isnan(signal.values))))
    unknown = np.interp(candidates + period, knots, gap_total) - np.interp(
        candidates, knots, gap_total
    )
    tied = costs <= costs.min() + _tolerance(cumulative)
    tied &= unknown <= unknown[tied].min() + 1e-9  # then the fewest unknown (gap) seconds
    best = int(np.argmax(tied))  # then the first candidate, i.e. the earliest start
    start = int(candidates[best])
    return Choice((Window(start, start + period),), period_s, Window(lo, hi))


def choose_interruptible(signal: Signal, period_s: int, earliest: int, ready_by: int) -> Choice:
    """The cheapest `period_s` seconds between `earliest` and `ready_by`, in any pieces."""
    lo, hi, period = _horizon(signal, period_s, earliest, ready_by)
    costs = filled_costs(signal, lo, hi)
    knots = signal.knots
    piece_start = np.clip(knots[:-1], lo, hi)
    piece_end = np.clip(knots[1:], lo, hi)
    inside = np.flatnonzero(piece_end > piece_start)  # slots overlapping the horizon
    gaps = np.isnan(signal.values)
    # by value, then known before unknown, then time
    order = inside[np.lexsort((piece_start[inside], gaps[inside], costs[inside]))]
    lengths = piece_end[order] - piece_start[order]
    filled = np.cumsum(lengths)
    full = int(np.searchsorted(filled, period, side="right"))  # pieces taken whole
    chosen = {int(k): (int(piece_start[k]), int(piece_end[k])) for k in order[:full]}
    remainder = period - (int(filled[full - 1]) if full else 0)
    if remainder > 0:
        k = int(order[full])
        a, b = int(piece_start[k]), int(piece_end[k])
        joins_before = (k - 1) in chosen and chosen[k - 1][1] == a
        joins_after = (k + 1) in chosen and chosen[k + 1][0] == b
        chosen[k] = (b - remainder, b) if joins_after and not joins_before else (a, a + remainder)
    return Choice(merge(Window(a, b) for a, b in chosen.values()), period_s, Window(lo, hi))


def merge(windows) -> tuple[Window, ...]:
    """Sort windows and join the ones that touch or overlap."""
    merged: list[Window] = []
    for w in sorted(windows):
        if merged and w.start <= merged[-1].end:
            merged[-1] = Window(merged[-1].start, max(merged[-1].end, w.end))
        else:
            merged.append(w)
    return tuple(merged)


def filled_costs(signal: Signal, lo: int, hi: int) -> np.ndarray:
    """Oriented costs (lower is better) with gaps set to the worst known cost in [lo, hi)."""
    costs = signal.costs()
    gaps = np.isnan(costs)
    if gaps.any():
        knots = signal.knots
        in_horizon = (knots[1:] > lo) & (knots[:-1] < hi) & ~gaps
        costs[gaps] = costs[in_horizon].max() if in_horizon.any() else 0.0
    return costs


def total_signal(signal: Signal, windows, *, lo: int | None = None, hi: int | None = None):
    """Total signal (value x fraction of slot, summed) of `windows`, in the signal's own
    orientation, with gaps valued as the optimiser values them over the horizon [lo, hi)."""
    lo = signal.start if lo is None else lo
    hi = signal.end if hi is None else hi
    values = filled_costs(signal, lo, hi)
    if signal.higher_is_better:
        values = -values
    knots = signal.knots
    total = 0.0
    for w in windows:
        overlap = np.minimum(knots[1:], w.end) - np.maximum(knots[:-1], w.start)
        used = overlap > 0
        total += float(np.sum(values[used] * overlap[used]) / signal.interval)
    return total


def _horizon(signal: Signal, period_s: int, earliest: int, ready_by: int) -> tuple[int, int, int]:
    for name, value in (("period", period_s), ("earliest", earliest), ("ready_by", ready_by)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise InvalidRequest(f"{name} must be an integer number of seconds, got {value!r}")
    if not 0 < period_s <= MAX_PERIOD:
        raise InvalidRequest(f"period must be 1..{MAX_PERIOD} seconds, got {period_s}")
    lo, hi = max(int(earliest), signal.start), min(int(ready_by), signal.end)
    if hi <= lo:
        raise NoTimeLeft(
            f"no time to run between {max(earliest, signal.start)} and "
            f"{min(ready_by, signal.end)} (now, ready-by and the signal's coverage do not overlap)"
        )
    return lo, hi, min(int(period_s), hi - lo)


def _tolerance(cumulative: np.ndarray) -> float:
    return TIE_TOLERANCE * (1.0 + float(np.abs(np.diff(cumulative)).sum()))
