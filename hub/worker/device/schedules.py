"""Running the schedules: plan each pending occurrence and tell the device what to do.

Every pending occurrence is re-planned with hub.scheduler (a started contiguous run is never
moved, an interruptible one is re-optimised for what is left), the occurrence rolls over at
its ready-by time (DST-safe, local time), and the device gets a command only when the command
differs from the last one sent, which is stored with the schedule, so a restart never
switches a device twice. Devices that run windows themselves (EmonESP) get the active or next
window (if it starts within a day, as their timer repeats daily); the others are switched on
and off at the window edges.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from functools import cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from hub.device.adapters import Command
from hub.device.adapters.registry import adapter_for
from hub.device.schedule import ScheduleStore, StoredSchedule
from hub.device.store import Device
from hub.scheduler.errors import ReadyByPassed
from hub.scheduler.plan import Occurrence, Plan, advance, explain, new_occurrence, plan, roll_over
from hub.worker.device.flood import ProblemLog
from hub.worker.device.table import DeviceTable

if TYPE_CHECKING:  # numpy: only a smart schedule's plan needs a signal (service.py)
    from hub.scheduler.signal import Signal

log = logging.getLogger("hub.worker.device")

TIMER_HORIZON_S = 86_400 - 60  # EmonESP's timer repeats daily: only send windows within a day
Publish = Callable[..., None]


class ScheduleRunner:
    def __init__(self, schedules: ScheduleStore, table: DeviceTable, publish: Publish,
                 timezone: str, problem: ProblemLog, clock: Callable[[], float]) -> None:
        self.schedules = schedules
        self.table = table
        self.publish = publish
        self.tz = ZoneInfo(timezone)
        self.problem = problem
        self.clock = clock
        self.sent_at: dict[int, float] = {}  # device id → when it was last commanded

    def run_all(self, signal: Callable[[], Signal], now: float) -> None:
        """Plan every active device's schedule. `signal` is called once, when the first smart
        schedule is planned: without one, the worker never builds a signal (numpy)."""
        signal = cache(signal)
        self.table.refresh()
        for stored in self.schedules.list():
            device = self.table.by_id.get(stored.device_id)
            if device is None or device.status != "active":
                continue
            try:
                self.run(device, stored, signal, now)
            except Exception:  # one bad schedule must not stop the others
                self.problem(f"schedule:{device.id}", "schedule of device %s failed",
                             device.id)
                log.debug("schedule failure", exc_info=True)

    def run(self, device: Device, stored: StoredSchedule, signal: Callable[[], Signal],
            now: float) -> Command:
        defn = stored.definition
        occ: Occurrence | None = stored.occurrence
        runtime = stored.last_plan or {}
        mode = defn.mode
        result: Plan | None = None
        if mode == "smart":
            t_now = int(now)
            try:
                if occ is None:
                    occ = new_occurrence(defn, t_now, self.tz)
                else:
                    occ = advance(occ, int(runtime.get("advanced_to", t_now)), t_now)
                if t_now >= occ.ready_by:
                    mode, occ = roll_over(defn, t_now, self.tz)
                    if mode != "smart":
                        self.schedules.set_mode(device.id, mode)
                        log.info("schedule of device %s completed; mode is now %s",
                                 device.id, mode)
            except ReadyByPassed:
                mode, occ = "off", None
                self.schedules.set_mode(device.id, "off")
        if mode == "smart" and occ is not None:
            current = signal()
            result = plan(replace(defn, mode="smart"), occ, current, int(now))
            occ = replace(occ, windows=result.windows)
            runtime = {"advanced_to": int(now), **explain(result, current, int(now), self.tz)}
        else:
            runtime = {"advanced_to": int(now), "status": mode, "windows": []}
        self.schedules.save_runtime(device.id, occ, runtime)
        command = self.command_for(device, mode, result, now)
        self.send(device, command, stored.last_command)
        return command

    def command_for(self, device: Device, mode: str, result: Plan | None,
                    now: float) -> Command:
        if mode in ("on", "off"):
            return Command(mode)
        windows = [w for w in (result.windows if result else ()) if w.end > now]
        if not windows:
            return Command("off")
        current = windows[0]
        active = current.start <= now < current.end
        if adapter_for(device.type).runs_windows:
            if current.start - now >= TIMER_HORIZON_S:
                return Command("off")
            return Command("window", current.start, current.end)
        return Command("on" if active else "off")

    def send(self, device: Device, command: Command, last: dict[str, Any] | None) -> bool:
        """Publish `command` unless it is what the device was last told."""
        if last == command.to_json():
            return False
        for msg in adapter_for(device.type).command(device, command, self.tz):
            self.publish(msg.topic, msg.payload, qos=1, retain=msg.retain)
        self.sent_at[device.id] = self.clock()
        self.schedules.save_last_command(device.id, command.to_json())
        log.info("device %s: %s", device.id, command.to_json())
        return True
