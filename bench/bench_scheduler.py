"""Scheduler benchmark: a year of random daily profiles, ours vs the Demand Shaper vs optimum.

For each of 365 days (fixed seed) it draws a 48 x 30 min profile (a night-cheap, evening-peak
day shape with noise; every fourth day small integers, so ties are common), a run period
(15 min..6 h in 5 min steps) and a ready-by slot, and schedules it both as a contiguous and
as an interruptible run from the start of the profile (the Demand Shaper's own `now`), with:
- ours: hub.scheduler.optimise.choose
- the port of the Demand Shaper's scheduler2 greedy rule (hub.scheduler.reference_ds)
- exhaustive search on the grid of the gcd of all times, 5 min here (hub.scheduler.bruteforce)
All three totals are measured with the same cost function. Figures: mean cost ratio
ours/DS (must be <= 1) and ours/brute force (must be 1), time per schedule for ours with
the DS port's time as reference, and our 99th percentile with brute force as reference.

Run: .venv/bin/python bench/bench_scheduler.py [--days N] [--seed S]
Exit status 1 if ours is ever worse than the DS rule or not optimal (a bug, not a speed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.scheduler import bruteforce, reference_ds
from hub.scheduler.optimise import Window, choose, total_signal
from hub.scheduler.signal import Signal

SLOT = 1800
DAY0 = 1_704_067_200  # 2024-01-01T00:00Z
TOLERANCE = 1e-9


def day_profile(rng: np.random.Generator, day: int) -> list[float]:
    if day % 4 == 3:
        return rng.integers(1, 5, 48).astype(float).tolist()
    hours = np.arange(48) / 2
    shape = 12 + 6 * np.sin((hours - 10) / 24 * 2 * np.pi) + 10 * ((hours >= 16) & (hours < 20))
    return np.round(np.clip(shape + rng.normal(0, 3, 48), 0.5, None), 2).tolist()


def emit(name: str, value: float, unit: str, reference: float | None, text: str) -> None:
    print(text)
    print(json.dumps({"bench": name, "value": round(value, 6), "unit": unit,
                      "reference": None if reference is None else round(reference, 6)}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365, help="random daily profiles")
    parser.add_argument("--seed", type=int, default=20240101, help="random seed")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    cases = []
    for day in range(args.days):
        start = DAY0 + day * 86_400
        values = day_profile(rng, day)
        period = int(rng.integers(3, 73)) * 300
        ready_slot = int(rng.integers(-(-period // SLOT), 49))
        for interruptible in (False, True):
            cases.append((Signal(start, SLOT, values), values, period,
                          start + ready_slot * SLOT, interruptible))

    ours_t, ds_t, brute_t, vs_ds, vs_brute = [], [], [], [], []
    better = 0
    for signal, values, period, ready_by, interruptible in cases:
        t0 = time.perf_counter()
        choice = choose(signal, period, signal.start, ready_by, interruptible=interruptible)
        t1 = time.perf_counter()
        periods = reference_ds.schedule(signal.start, SLOT, values, period, ready_by,
                                        interruptible=interruptible)
        t2 = time.perf_counter()
        search = bruteforce.best_interruptible if interruptible else bruteforce.best_contiguous
        optimum = search(signal, period, signal.start, ready_by)
        t3 = time.perf_counter()
        ours_t.append(t1 - t0)
        ds_t.append(t2 - t1)
        brute_t.append(t3 - t2)
        ours = total_signal(signal, choice.windows)
        theirs = total_signal(signal, [Window(a, b) for a, b in periods])
        vs_ds.append(ours / theirs)
        vs_brute.append(ours / optimum)
        better += ours < theirs * (1 - TOLERANCE)

    ours_ms, ds_ms = 1000 * float(np.mean(ours_t)), 1000 * float(np.mean(ds_t))
    brute_ms, p99_ms = 1000 * float(np.mean(brute_t)), 1000 * float(np.percentile(ours_t, 99))
    ratio_ds, ratio_brute = float(np.mean(vs_ds)), float(np.mean(vs_brute))
    print(f"scheduler: {len(cases)} schedules over {args.days} random daily profiles "
          f"(seed {args.seed}), contiguous and interruptible")
    emit("scheduler_cost_ratio_vs_ds", ratio_ds, "ratio", 1.0,
         f"  mean total signal ours/Demand Shaper: {ratio_ds:.6f} (must be <= 1; worst "
         f"{max(vs_ds):.6f}; strictly better in {better} of {len(cases)})")
    emit("scheduler_cost_ratio_vs_bruteforce", ratio_brute, "ratio", 1.0,
         f"  mean total signal ours/exhaustive optimum: {ratio_brute:.9f} (must be 1; range "
         f"{min(vs_brute):.9f}..{max(vs_brute):.9f})")
    emit("scheduler_better_than_ds_share", 100.0 * better / len(cases), "%", None,
         f"  schedules where ours is strictly cheaper than the DS rule: "
         f"{100.0 * better / len(cases):.1f} %")
    emit("scheduler_time_per_schedule", ours_ms, "ms", ds_ms,
         f"  time per schedule: ours {ours_ms:.3f} ms (target <= 1 ms), DS port {ds_ms:.3f} ms")
    emit("scheduler_time_per_schedule_p99", p99_ms, "ms", brute_ms,
         f"  99th percentile: ours {p99_ms:.3f} ms; exhaustive search mean {brute_ms:.3f} ms")
    if max(vs_ds) > 1 + TOLERANCE or abs(min(vs_brute) - 1) > TOLERANCE or abs(
        max(vs_brute) - 1
    ) > TOLERANCE:
        print("FAILED: ours is worse than the DS rule or not optimal", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
