"""Real data for the display tests and the bench: a power feed with history, the input that
logs to it, a tariff, hydro and community profiles, a demand-shaper signal and a device with
a schedule. Everything goes through the hub's own stores."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

import numpy as np

from hub.context import HubContext
from hub.input.readings import NodePost

TARIFF = {"standing": 45.0, "bands": [
    {"name": "Night", "start": "00:00", "end": "07:00", "price": 7.5},
    {"name": "Day", "start": "07:00", "end": "00:00", "price": 24.5}]}
HALF = 1800


@dataclass
class Seeded:
    user_id: int
    feed_id: int
    device_id: int
    signal: dict


def power_at(t: np.ndarray) -> np.ndarray:
    """A plausible house: 300 W base, a daily evening peak, a little ripple."""
    hours = (t % 86400) / 3600
    return 300 + 900 * np.exp(-((hours - 18.5) ** 2) / 3) + 50 * np.sin(t / 600)


def seed(ctx: HubContext, user_id: int, history_s: int = 8 * 3600, now: float | None = None,
         tariff: bool = True) -> Seeded:
    now = time.time() if now is None else now
    feed = ctx.feeds.create(user_id, "use", "house", 10)
    ctx.inputs.ingest(user_id, [NodePost("house", 1_000_000_000, {"use": 0.0})])
    found = next(i for i in ctx.inputs.list(user_id) if i["name"] == "use")
    ctx.inputs.set_processlist(user_id, found["id"], [{"fn": "log_to_feed", "args": [feed.id]}])
    end = int(now) // 10 * 10
    times = np.arange(end - history_s, end, 10)
    if len(times):
        ctx.feeds.insert_many(feed.id, times.tolist(), power_at(times).round(1).tolist())
        ctx.feeds.flush()
    if tariff:
        ctx.households.set_tariff(user_id, TARIFF)
    day0 = int(now) // HALF * HALF - 6 * 86400
    slots = np.arange(day0, int(now) // HALF * HALF + HALF, HALF)
    hours = (slots % 86400) / 3600
    ctx.feeds.store_profile(user_id, "community", day0, HALF,
                            (20000 + 15000 * np.exp(-((hours - 18) ** 2) / 4)).round().tolist())
    ctx.feeds.store_profile(user_id, "hydro", day0, HALF,
                            (18000 + 4000 * np.sin(slots / 20000)).round().tolist())
    start = int(now) // HALF * HALF
    values = [round(10 + 8 * math.cos((i - 12) / 48 * 2 * math.pi), 2) for i in range(48)]
    signal = {"start": start, "interval": HALF, "values": values}
    ctx.signal.save(json.dumps(signal).encode())
    device = ctx.devices.create(user_id, "Washing machine", "emonesp", "emon/esp-seed")
    ctx.schedules.set(device.id, {"ready_by": "07:00", "period": 7200, "interruptible": False,
                                  "repeat": [0, 1, 2, 3, 4, 5, 6], "mode": "smart",
                                  "on_completion": "smart"})
    return Seeded(user_id, feed.id, device.id, signal)
