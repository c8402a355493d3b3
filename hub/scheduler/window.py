"""A run window and the longest run: the plan's data, kept apart from the optimiser (numpy).

A schedule's definition and its stored occurrence (hub.device.schedule, the web's schedule
forms) need these without loading numpy; only planning does (issue 12).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_PERIOD = 14 * 86_400


@dataclass(frozen=True, order=True)
class Window:
    """Run from `start` to `end` (unix seconds, half-open)."""

    start: int
    end: int

    @property
    def seconds(self) -> int:
        return self.end - self.start
