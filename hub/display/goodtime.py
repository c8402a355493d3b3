"""The "good time to use power?" card and the best-times list, from one signal, on the server.

One rule, used by S1 (the card), S2 (the bars and the list) and the live endpoint, so the
lamp never disagrees with the chart (CY computed it twice, differently). The score of a slot
is 0-10 over the next 24 h: 10 for the best slot, 0 for the worst (lower signal is better
unless the signal says higher is better). The lamp is green at GREEN_AT or more, amber at
AMBER_AT or more, red below; a slot with no data has no score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

GREEN_AT = 7.0
AMBER_AT = 4.0
HORIZON_S = 24 * 3600
LIGHTS = ("green", "amber", "red")
ICONS = {"green": "✓", "amber": "-", "red": "✕", "unknown": "?"}


@dataclass(frozen=True)
class Slot:
    start: int
    end: int
    value: float | None
    score: float | None
    light: str  # green / amber / red / unknown


@dataclass(frozen=True)
class Card:
    light: str          # green / amber / red / unknown (no signal)
    icon: str
    score: float | None  # 0-10 now
    until: int | None   # when the light next changes (unix s), None if not within 24 h
    next_green: int | None  # start of the next green slot, when not green now


@dataclass(frozen=True)
class Window:
    start: int
    end: int
    score: float  # mean score
    value: float | None  # mean signal


def light_of(score: float | None) -> str:
    if score is None:
        return "unknown"
    if score >= GREEN_AT:
        return "green"
    return "amber" if score >= AMBER_AT else "red"


def slots(start: int, interval: int, values: Sequence[float], now: float,
          higher_is_better: bool = False, horizon: int = HORIZON_S) -> list[Slot]:
    """Scored slots from the one containing `now` to `horizon` seconds later."""
    first = max(0, int((now - start) // interval))
    last = min(len(values), math.ceil((now + horizon - start) / interval))
    picked = [(start + k * interval, float(values[k])) for k in range(first, last)]
    known = [v for _, v in picked if v == v]
    if not known:
        return [Slot(t, t + interval, None, None, "unknown") for t, _ in picked]
    lo, hi = min(known), max(known)
    out = []
    for t, v in picked:
        if v != v:
            out.append(Slot(t, t + interval, None, None, "unknown"))
            continue
        score = 10.0 if hi == lo else 10.0 * (v - lo if higher_is_better else hi - v) / (hi - lo)
        score = round(score, 1)
        out.append(Slot(t, t + interval, v, score, light_of(score)))
    return out


def card(scored: Sequence[Slot], now: float) -> Card:
    """The card for `now`: the lit lamp, its icon, the score and when it next changes."""
    current = next((s for s in scored if s.start <= now < s.end), None)
    if current is None or current.score is None:
        return Card("unknown", ICONS["unknown"], None, None, None)
    until = next((s.start for s in scored if s.start > current.start
                  and s.light != current.light), None)
    next_green = None
    if current.light != "green":
        next_green = next((s.start for s in scored if s.start > now and s.light == "green"),
                          None)
    return Card(current.light, ICONS[current.light], current.score, until, next_green)


def best_windows(scored: Sequence[Slot], count: int = 3) -> list[Window]:
    """The best `count` runs of green slots (amber if there is no green), best first."""
    for wanted in ("green", "amber"):
        runs: list[list[Slot]] = []
        for slot in scored:
            if slot.light == wanted and runs and runs[-1][-1].end == slot.start \
                    and runs[-1][-1].light == wanted:
                runs[-1].append(slot)
            elif slot.light == wanted:
                runs.append([slot])
        if runs:
            windows = [Window(r[0].start, r[-1].end,
                              round(sum(s.score for s in r) / len(r), 1),
                              sum(s.value for s in r) / len(r)) for r in runs]
            windows.sort(key=lambda w: (-w.score, w.start))
            return sorted(windows[:count], key=lambda w: (-w.score, w.start))
    return []
