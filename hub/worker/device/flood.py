"""Flood control and rate-limited problem logs for device traffic.

Each device (keyed by its topic) may send FLOOD_RATE messages a second with bursts up to
FLOOD_BURST; the rest are dropped, so a flooding device costs the others nothing. Problems
are logged at most once a minute per key, so a broken device cannot fill the journal.
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger("hub.worker.device")

FLOOD_RATE, FLOOD_BURST = 10.0, 50.0
LOG_EVERY_S = 60
MAX_KEYS = 10_000  # many distinct keys: forget them rather than grow forever


class ProblemLog:
    def __init__(self) -> None:
        self.last_log: dict[str, float] = {}

    def __call__(self, key: str, msg: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self.last_log.get(key, -LOG_EVERY_S) >= LOG_EVERY_S:
            self.last_log[key] = now
            log.warning(msg, *args)
        if len(self.last_log) > MAX_KEYS:
            self.last_log.clear()


class FloodGuard:
    """Token bucket per device topic."""

    def __init__(self, problem: ProblemLog) -> None:
        self.problem = problem
        self.buckets: dict[str, tuple[float, float]] = {}
        self.dropped: dict[str, int] = {}

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        tokens, last = self.buckets.get(key, (FLOOD_BURST, now))
        tokens = min(FLOOD_BURST, tokens + (now - last) * FLOOD_RATE)
        if tokens < 1:
            self.buckets[key] = (tokens, now)
            self.dropped[key] = self.dropped.get(key, 0) + 1
            self.problem(f"flood:{key}", "device at %r floods (%d messages dropped so far)",
                         key[:80], self.dropped[key])
            return False
        self.buckets[key] = (tokens - 1, now)
        if len(self.buckets) > MAX_KEYS:
            self.buckets.clear()
        return True
