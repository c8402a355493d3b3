"""EXHAUSTIVE SEARCH FOR TESTS AND BENCH ONLY: the optimum by trying everything on a grid.

The grid step is the gcd of every time involved (slot boundaries, earliest, ready-by,
period), so every slot boundary lies on the grid and the signal is constant between grid
points. Then:
- contiguous: every grid start in [lo, hi - P] is costed directly (slot overlaps, no
  cumulative sums), and the best is the true optimum because the cost is linear between
  grid points;
- interruptible: the cost of any set of total length P is at least the sum of the P/step
  cheapest grid cells (rearrangement), and that set is feasible, so that sum is the optimum.
Slow on purpose (O(starts x slots)); it only checks optimise.py.
"""

from __future__ import annotations

import math

import numpy as np

from .optimise import filled_costs
from .signal import Signal


def _grid(signal: Signal, period: int, earliest: int, ready_by: int):
    lo, hi = max(earliest, signal.start), min(ready_by, signal.end)
    period = min(period, hi - lo)
    step = math.gcd(signal.interval, signal.start, lo, hi, period)
    costs = filled_costs(signal, lo, hi)
    cells = np.arange(lo, hi, step)
    cell_cost = costs[(cells - signal.start) // signal.interval] * step / signal.interval
    return lo, hi, period, step, cells, cell_cost


def best_contiguous(signal: Signal, period: int, earliest: int, ready_by: int) -> float:
    """Minimum oriented cost of one window of `period` seconds."""
    lo, hi, period, step, _, _ = _grid(signal, period, earliest, ready_by)
    costs = filled_costs(signal, lo, hi)
    knots = signal.knots
    best = math.inf
    for s in range(lo, hi - period + 1, step):
        overlap = np.minimum(knots[1:], s + period) - np.maximum(knots[:-1], s)
        used = overlap > 0
        best = min(best, float(np.sum(costs[used] * overlap[used])) / signal.interval)
    return best


def best_interruptible(signal: Signal, period: int, earliest: int, ready_by: int) -> float:
    """Minimum oriented cost of any `period` seconds in [earliest, ready_by)."""
    _, _, period, step, _, cell_cost = _grid(signal, period, earliest, ready_by)
    return float(np.sort(cell_cost)[: period // step].sum())
