"""The signal schedules are planned on, and what a schedule would do if planned now.

Both sides use this: the worker's schedule runner plans with `SignalStore.current()`, and the
web's schedule/explain shows `preview()` when the runner's own last plan is stale. The last
demand-shaper profile is kept in Redis (key `devices:profile`), so a restarted worker and the
web process see the same one. Without a current profile the flat off-peak tariff is used.
"""

from __future__ import annotations

import json
import logging
from functools import cached_property
from typing import TYPE_CHECKING, Any

import redis

from hub.device.schedule import StoredSchedule
from hub.names import RedisKeys
from hub.scheduler.errors import NoSignal, SchedulerError
from hub.scheduler.plan import explain, new_occurrence, plan

# Signals are numpy arrays: imported when a signal is built, not with the schedule store.
if TYPE_CHECKING:
    from hub.scheduler.signal import OffPeakTariffSource, ProfileSource, Signal

log = logging.getLogger(__name__)

PLAN_EVERY_S = 60  # the runner re-plans every schedule this often


class SignalStore:
    def __init__(self, redis_client: redis.Redis, keys: RedisKeys, timezone: str) -> None:
        self.redis = redis_client
        self.key = keys.signal_profile
        self.timezone = timezone

    @cached_property
    def tariff(self) -> OffPeakTariffSource:
        from hub.scheduler.signal import OffPeakTariffSource

        return OffPeakTariffSource(self.timezone)

    def load(self) -> ProfileSource:
        """The stored profile; an empty one if there is none or it cannot be read."""
        from hub.scheduler.signal import ProfileSource

        profile = ProfileSource()
        raw = self.redis.get(self.key)
        if raw:
            try:
                profile.update(json.loads(raw))
            except (ValueError, SchedulerError) as exc:
                log.warning("stored demand-shaper profile ignored: %s", exc)
        return profile

    def save(self, payload: bytes) -> None:
        self.redis.set(self.key, payload)

    def current(self, profile: ProfileSource, now: float) -> tuple[Signal, str]:
        """The profile while it still covers now; the off-peak tariff otherwise."""
        try:
            sig = profile.signal(int(now))
            if sig.end > now:
                return sig, "demand-shaper profile"
        except NoSignal:
            pass
        return self.tariff.signal(int(now)), "off-peak tariff"


def preview(stored: StoredSchedule, signal: Signal, source: str, now: float,
            timezone: str) -> dict[str, Any]:
    """What the schedule does if planned now: the scheduler's explanation of its choice."""
    defn = stored.definition
    if defn.mode != "smart":
        return {"status": defn.mode, "windows": []}
    occ = stored.occurrence
    if occ is None or occ.ready_by <= now:
        occ = new_occurrence(defn, int(now), timezone)
    result = plan(defn, occ, signal, int(now))
    return {**explain(result, signal, int(now), timezone),
            "ready_by": result.ready_by, "remaining_s": result.remaining_s,
            "signal_source": source}
